// Parquet row groups decoded on a worker thread with a deadline. hyparquet's page decoders
// are synchronous loops over lengths the file declares, and some crafted pages keep one
// spinning (a 1.5 KB file found by our reader fuzz sends readRleBitPackedHybrid, in 1.31.5
// and 1.33.0, into a loop with a negative run length). A synchronous loop cannot be timed
// out on the thread running it, and on the main thread it would freeze `antidote serve`
// for every user. So untrusted row groups are decoded where they can be killed: the worker
// gets a deadline per row group (scaled by its compressed size), and a row group that
// misses it ends the worker and fails the read with INPUT_FORMAT, naming the row group.
//
// The footer stays on the calling thread: the Thrift reader consumes at least one byte per
// element it reads, so a footer cannot loop longer than its own length.
import { Worker } from "node:worker_threads";
import { AntidoteError } from "../../errors.js";

/** A row group may take this long, plus DEADLINE_MS_PER_MIB per MiB of compressed pages. */
export const DEFAULT_DEADLINE_MS = 60_000;
const DEADLINE_MS_PER_MIB = 2_000;

export interface ParquetDecoderOptions {
  /** Base deadline per row group in milliseconds (default DEFAULT_DEADLINE_MS). */
  deadlineMs?: number;
}

export interface RowRange {
  rowStart: number;
  rowEnd: number;
  /** Compressed bytes of the row group, which scale its deadline. */
  bytes: number;
  /** Only these top-level columns (default every column). */
  columns?: string[];
  /** Decode UTF8-annotated BYTE_ARRAY as strings (hyparquet's default) or keep the bytes. */
  utf8?: boolean;
}

export interface ParquetDecoder {
  /** The rows of one range as plain objects, as hyparquet's parquetReadObjects returns them. */
  read(range: RowRange): Promise<Record<string, unknown>[]>;
  /** End the worker (idempotent); reads still pending fail. */
  close(): Promise<void>;
}

type Reply = { id: number; rows: Record<string, unknown>[] } | { id: number; error: string };

// The worker opens the file itself (nothing large crosses threads but the decoded rows) and
// checks it is the file the caller measured; hyparquet is imported by the URL this module
// resolved, so the worker finds the same copy wherever the package is installed.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const ready = (async () => {
  const hp = await import(workerData.hyparquet);
  const { compressors } = await import(workerData.compressors);
  const file = await hp.asyncBufferFromFile(workerData.path);
  if (file.byteLength !== workerData.byteLength)
    throw new Error("the file changed size while it was being read (" + workerData.byteLength + " → " + file.byteLength + " bytes)");
  const metadata = await hp.parquetMetadataAsync(file);
  return { hp, compressors, file, metadata };
})();
parentPort.on("message", async ({ id, rowStart, rowEnd, columns, utf8 }) => {
  try {
    const { hp, compressors, file, metadata } = await ready;
    const rows = await hp.parquetReadObjects({ file, metadata, rowStart, rowEnd, columns, utf8, compressors });
    parentPort.postMessage({ id, rows });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message ? e.message : e) });
  }
});
`;

let liveThreads = 0;
/** Decoder threads running now in this process (a reader that stops early must end its own). */
export function parquetDecoderThreads(): number {
  return liveThreads;
}

let resolved: { hyparquet: string; compressors: string } | undefined;
function packageUrls(): { hyparquet: string; compressors: string } {
  resolved ??= {
    hyparquet: import.meta.resolve("hyparquet"),
    compressors: import.meta.resolve("hyparquet-compressors"),
  };
  return resolved;
}

/**
 * A decoder for the Parquet file at `path` (already opened and measured by the caller). The
 * worker starts on the first read and serves reads in the order asked, so a caller can ask
 * for the next row group while it works on this one.
 */
export function createParquetDecoder(
  path: string,
  byteLength: number,
  options: ParquetDecoderOptions = {},
): ParquetDecoder {
  const baseDeadline = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  let worker: Worker | undefined;
  let nextId = 0;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  const failAll = (e: Error) => {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };

  const start = (): Worker => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...packageUrls(), path, byteLength } });
    // An abandoned reader must not keep the process alive; a read in progress is kept alive
    // by its deadline timer.
    w.unref();
    liveThreads++;
    w.on("message", (reply: Reply) => {
      const p = pending.get(reply.id);
      pending.delete(reply.id);
      p?.resolve(reply);
    });
    w.on("error", (e) =>
      failAll(
        new AntidoteError("INTERNAL", `${path}: the Parquet decoder thread failed: ${e.message}.`, {
          cause: e,
        }),
      ),
    );
    w.on("exit", () => {
      liveThreads--;
      if (worker === w) worker = undefined;
      failAll(new AntidoteError("INTERNAL", `${path}: the Parquet decoder thread ended.`));
    });
    return w;
  };

  return {
    async read(range) {
      const w = (worker ??= start());
      const id = nextId++;
      const deadline = Math.round(baseDeadline + (DEADLINE_MS_PER_MIB * range.bytes) / 2 ** 20);
      let timer: NodeJS.Timeout | undefined;
      try {
        const reply = await new Promise<Reply>((resolve, reject) => {
          pending.set(id, { resolve, reject });
          timer = setTimeout(() => {
            failAll(
              new AntidoteError(
                "INPUT_FORMAT",
                `${path}: rows ${range.rowStart}–${range.rowEnd - 1} did not decode within ${(deadline / 1000).toFixed(0)} s; the file is malformed or built to stall readers.`,
              ),
            );
            void w.terminate();
          }, deadline);
          w.postMessage({
            id,
            rowStart: range.rowStart,
            rowEnd: range.rowEnd,
            columns: range.columns,
            utf8: range.utf8 ?? true,
          });
        });
        if ("error" in reply) throw new Error(reply.error);
        return reply.rows;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      const w = worker;
      worker = undefined;
      if (w !== undefined) await w.terminate();
    },
  };
}
