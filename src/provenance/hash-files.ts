// SHA-256 of many files at disk/memory speed: a pool of worker threads, one per core, each
// reading its file in large blocks with synchronous reads (a dedicated thread has nothing else
// to do, and skipping the stream machinery is what keeps it close to `sha256sum`). Largest
// files go first so one big file does not start last and leave the other cores idle.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { AntidoteError } from "../errors.js";

export interface FileDigest {
  path: string;
  sha256: string;
  size: number;
}

export interface HashFilesOptions {
  /** Worker threads (default: every core). */
  threads?: number;
  /** Called as bytes are hashed, with the total of all files' sizes. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

/** Below this many bytes in all, starting workers costs more than it saves. */
const INLINE_BYTES = 16 * 1024 * 1024;
/** Read block: large enough to amortize the syscall, small enough to stay in L2 while hashed. */
const BLOCK_BYTES = 1024 * 1024;
/** A worker reports progress at most this often (in bytes) within one large file. */
const REPORT_BYTES = 64 * 1024 * 1024;
/** Tasks queued per worker, so a worker never waits for a round trip between two small files. */
const IN_FLIGHT = 2;

// The worker is inline source rather than a file so it runs unchanged under tsx, vitest and
// the compiled dist/ (a .ts worker file would need a loader in each). It is plain CommonJS.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { openSync, readSync, closeSync } = require("node:fs");
const { createHash } = require("node:crypto");
const block = Buffer.allocUnsafe(${BLOCK_BYTES});
parentPort.on("message", ({ index, path }) => {
  let fd;
  try {
    fd = openSync(path, "r");
    const hash = createHash("sha256");
    let size = 0;
    let unreported = 0;
    for (;;) {
      const n = readSync(fd, block, 0, block.length, null);
      if (n === 0) break;
      hash.update(n === block.length ? block : block.subarray(0, n));
      size += n;
      unreported += n;
      if (unreported >= ${REPORT_BYTES}) {
        parentPort.postMessage({ type: "progress", bytes: unreported });
        unreported = 0;
      }
    }
    parentPort.postMessage({ type: "done", index, sha256: hash.digest("hex"), size, bytes: unreported });
  } catch (e) {
    parentPort.postMessage({ type: "error", index, code: e && e.code ? String(e.code) : null, message: String(e && e.message ? e.message : e) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

type WorkerMessage =
  | { type: "progress"; bytes: number }
  | { type: "done"; index: number; sha256: string; size: number; bytes: number }
  | { type: "error"; index: number; code: string | null; message: string };

/** SHA-256 and size of each file, in the order given. */
export async function hashFiles(
  paths: readonly string[],
  options: HashFilesOptions = {},
): Promise<FileDigest[]> {
  const sizes = await Promise.all(paths.map((p) => fileSize(p)));
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);
  const threads = Math.min(Math.max(1, Math.floor(options.threads ?? availableParallelism())), paths.length);
  if (paths.length === 0) return [];
  options.onProgress?.(0, bytesTotal);
  if (threads <= 1 || bytesTotal < INLINE_BYTES) return hashInline(paths, bytesTotal, options.onProgress);
  return hashInWorkers(paths, sizes, bytesTotal, threads, options.onProgress);
}

// ---------------------------------------------------------------------------------------

// One thread's worth of work stays on the main thread, streamed so the event loop keeps running.
async function hashInline(
  paths: readonly string[],
  bytesTotal: number,
  onProgress: HashFilesOptions["onProgress"],
): Promise<FileDigest[]> {
  const out: FileDigest[] = [];
  let done = 0;
  for (const path of paths) {
    const hash = createHash("sha256");
    let size = 0;
    try {
      for await (const chunk of createReadStream(path, { highWaterMark: BLOCK_BYTES })) {
        const buf = chunk as Buffer;
        hash.update(buf);
        size += buf.length;
        done += buf.length;
        onProgress?.(done, bytesTotal);
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw readError(path, err.code ?? null, err.message);
    }
    out.push({ path, sha256: hash.digest("hex"), size });
  }
  return out;
}

function hashInWorkers(
  paths: readonly string[],
  sizes: readonly number[],
  bytesTotal: number,
  threads: number,
  onProgress: HashFilesOptions["onProgress"],
): Promise<FileDigest[]> {
  const order = paths.map((_, i) => i).sort((a, b) => (sizes[b] ?? 0) - (sizes[a] ?? 0));
  const results: (FileDigest | undefined)[] = new Array<FileDigest | undefined>(paths.length);
  const workers: Worker[] = [];
  let next = 0;
  let finished = 0;
  let done = 0;
  let settled = false;

  return new Promise<FileDigest[]>((resolve, reject) => {
    const stop = (error?: Error) => {
      if (settled) return;
      settled = true;
      for (const w of workers) void w.terminate();
      if (error) reject(error);
      else resolve(results as FileDigest[]);
    };
    const feed = (worker: Worker) => {
      if (next >= order.length) return;
      const index = order[next++] ?? 0;
      worker.postMessage({ index, path: paths[index] });
    };
    for (let t = 0; t < threads; t++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      workers.push(worker);
      worker.on("message", (m: WorkerMessage) => {
        if (settled) return;
        if (m.type === "error") {
          stop(readError(paths[m.index] ?? "", m.code, m.message));
          return;
        }
        done += m.bytes;
        onProgress?.(done, bytesTotal);
        if (m.type === "progress") return;
        results[m.index] = { path: paths[m.index] ?? "", sha256: m.sha256, size: m.size };
        finished++;
        if (finished === paths.length) stop();
        else feed(worker);
      });
      worker.on("error", (e) =>
        stop(new AntidoteError("INTERNAL", `hash worker failed: ${e.message}`, { cause: e })),
      );
      for (let k = 0; k < IN_FLIGHT; k++) feed(worker);
    }
  });
}

async function fileSize(path: string): Promise<number> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new AntidoteError("INPUT_FORMAT", `${path}: not a regular file, cannot hash it.`);
    return s.size;
  } catch (e) {
    if (e instanceof AntidoteError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw readError(path, err.code ?? null, err.message);
  }
}

function readError(path: string, code: string | null, message: string): AntidoteError {
  if (code === "ENOENT") return new AntidoteError("FILE_NOT_FOUND", `${path}: no such file.`);
  return new AntidoteError("INPUT_FORMAT", `${path}: cannot read it (${message}).`);
}
