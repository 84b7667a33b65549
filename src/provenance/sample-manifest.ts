// The per-sample digest manifest of a large delivery. Inlining every sample's id and digest
// in the signed statement costs ~92 bytes a sample (a 10M-sample delivery would be a ~1 GB
// bundle parsed whole in memory), so a v2 statement lists them in a separate file instead:
// the file is a subject of the statement (its SHA-256 is signed) and the predicate carries
// the sample count and a Merkle root over the sample digests in read order. The bundle stays
// a few KB; the manifest is written, hashed and checked as a stream, never held in memory.
//
// Format (antidote-samples/v1), UTF-8, one line per sample in the order the data reads:
//
//     <64 lowercase hex digits: the sample's content digest> SP <sample id> LF
//
// The id is the rest of the line, not escaped: 1–1024 bytes of UTF-8 with no control
// character (U+0000–U+001F, U+007F–U+009F), not an absolute path (/…, \…, C:\…) and with no
// ".." path segment. Every line ends with LF; there is no header and no blank line.
//
// Sample Merkle root: the RFC 6962 tree (merkle.ts) whose leaves are consecutive blocks of
// `blockSize` samples (the last block may be shorter); a leaf's data is its samples' 32-byte
// digests, concatenated in manifest order. With blockSize 1 it is `merkleRoot(digests)`;
// blocks of 1024 make the tree ~1000× cheaper to build, so checking a 10M-line manifest costs
// little more than hashing it once. Ids are bound by the manifest's own SHA-256.
//
// Where it lives: beside the bundle, named after it (`fm.sigstore.json` →
// `fm.sigstore.samples`, see `sampleManifestPathFor`), under the reserved subject name
// `.antidote-samples`. It is never put inside a delivered directory, where a reader would take
// it for data.
import { createHash, webcrypto } from "node:crypto";
import { isUtf8 } from "node:buffer";
import { open, stat, type FileHandle } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { AntidoteError } from "../errors.js";
import { stageOutput, type StageOptions } from "../data/atomic-output.js";
import { MerkleBuilder } from "./merkle.js";

/** The subject name of the manifest in a v2 statement (reserved: no delivered file may have it). */
export const SAMPLE_MANIFEST_SUBJECT = ".antidote-samples";
export const SAMPLE_MANIFEST_FORMAT = "antidote-samples/v1";
/** Samples per Merkle leaf in manifests `sign` writes. */
export const SAMPLE_MANIFEST_BLOCK = 1024;
export const MAX_BLOCK_SIZE = 65_536;
export const MAX_ID_BYTES = 1024;
/** Longest line without its LF: digest, space, id. */
export const MAX_LINE_BYTES = 64 + 1 + MAX_ID_BYTES;
const MIN_LINE_BYTES = 64 + 1 + 1 + 1; // with its LF
const READ_CHUNK = 1 << 20;
const WRITE_CHUNK = 1 << 20;
/** Leaf hashes in flight on the thread pool before the reader waits for the oldest. */
const MAX_PENDING_LEAVES = 64;
/** From this size the file's SHA-256 runs on a thread of its own while this one parses. */
const HASH_THREAD_FROM = 16 << 20;
/** Chunks handed to that thread and not yet hashed before the reader waits. */
const MAX_CHUNKS_IN_FLIGHT = 4;

/** What a v2 statement promises about its manifest file. */
export interface ExpectedSampleManifest {
  sha256: string;
  count: number;
  merkleRoot: string;
  blockSize: number;
}

export interface SampleManifestSummary extends ExpectedSampleManifest {
  bytes: number;
}

export interface ManifestEntry {
  id: string;
  digest: string;
}

/** Where the manifest of the bundle at `signaturePath` is: `x.json` → `x.samples`, else `x.samples`. */
export function sampleManifestPathFor(signaturePath: string): string {
  return `${signaturePath.replace(/\.json$/i, "")}.samples`;
}

/** Why `id` cannot be written in a manifest, or undefined when it can. */
export function sampleIdProblem(id: string): string | undefined {
  const bytes = Buffer.byteLength(id, "utf8");
  if (bytes === 0) return "the id is empty";
  if (bytes > MAX_ID_BYTES) return `the id is ${bytes} bytes, over the limit of ${MAX_ID_BYTES}`;
  const b = Buffer.from(id, "utf8");
  return idBytesProblem(b, 0, b.length);
}

// ── writing ─────────────────────────────────────────────────────────────────────────────

/**
 * Streams a manifest to `path` through a temporary (it appears only on `close`), hashing it
 * and building its Merkle root as it goes.
 */
export class SampleManifestWriter {
  readonly #path: string;
  readonly #staged: Awaited<ReturnType<typeof stageOutput>>;
  readonly #file: FileHandle;
  readonly #hash = createHash("sha256");
  readonly #tree = new MerkleBuilder();
  readonly #blockSize: number;
  #block: Buffer;
  #inBlock = 0;
  #pending: string[] = [];
  #pendingBytes = 0;
  #count = 0;
  #bytes = 0;

  private constructor(
    path: string,
    staged: Awaited<ReturnType<typeof stageOutput>>,
    file: FileHandle,
    blockSize: number,
  ) {
    this.#path = path;
    this.#staged = staged;
    this.#file = file;
    this.#blockSize = blockSize;
    this.#block = Buffer.allocUnsafe(32 * blockSize);
  }

  static async open(
    path: string,
    options: StageOptions & { blockSize?: number } = {},
  ): Promise<SampleManifestWriter> {
    const blockSize = options.blockSize ?? SAMPLE_MANIFEST_BLOCK;
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE)
      throw new AntidoteError(
        "USAGE",
        `sample manifest: blockSize must be 1–${MAX_BLOCK_SIZE}, got ${blockSize}.`,
      );
    const staged = await stageOutput(path, options);
    let file: FileHandle;
    try {
      file = await open(staged.path, "w");
    } catch (e) {
      await staged.abort();
      throw new AntidoteError("USAGE", `${path}: cannot write the sample manifest.`, { cause: e });
    }
    return new SampleManifestWriter(path, staged, file, blockSize);
  }

  /** Append one sample, in read order. Throws INPUT_FORMAT naming the sample when its id cannot be written. */
  async add(id: string, digest: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(digest))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `sample "${printable(id)}": its digest is not a lowercase hex SHA-256.`,
      );
    const problem = sampleIdProblem(id);
    if (problem !== undefined)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `sample ${this.#count + 1} ("${printable(id)}"): ${problem}, so it cannot be listed in a sample manifest; sign with --inline-samples.`,
      );
    this.#block.write(digest, 32 * this.#inBlock, "hex");
    if (++this.#inBlock === this.#blockSize) this.#flushBlock();
    const line = `${digest} ${id}\n`;
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    this.#count++;
    if (this.#pendingBytes >= WRITE_CHUNK) await this.#flushLines();
  }

  /** Finish the file and move it into place; returns what the statement must promise. */
  async close(): Promise<SampleManifestSummary> {
    try {
      await this.#flushLines();
      if (this.#inBlock > 0) this.#flushBlock();
      await this.#file.close();
      await this.#staged.commit();
    } catch (e) {
      await this.abort();
      throw e instanceof AntidoteError
        ? e
        : new AntidoteError("USAGE", `${this.#path}: cannot write the sample manifest.`, { cause: e });
    }
    return {
      sha256: this.#hash.digest("hex"),
      count: this.#count,
      merkleRoot: this.#tree.root(),
      blockSize: this.#blockSize,
      bytes: this.#bytes,
    };
  }

  async abort(): Promise<void> {
    await this.#file.close().catch(() => undefined);
    await this.#staged.abort();
  }

  #flushBlock(): void {
    this.#tree.add(this.#block.subarray(0, 32 * this.#inBlock));
    this.#inBlock = 0;
  }

  async #flushLines(): Promise<void> {
    if (this.#pending.length === 0) return;
    const chunk = Buffer.from(this.#pending.join(""), "utf8");
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    await this.#file.write(chunk);
  }
}

// ── reading ─────────────────────────────────────────────────────────────────────────────

/**
 * Check a manifest file against what the statement promises: its SHA-256, its line count and
 * its sample Merkle root, every line's syntax. Streams the file in 1 MB chunks: memory stays
 * bounded whatever the count. Throws DIGEST_MISMATCH (bytes, count or root differ) or
 * INPUT_FORMAT (a malformed line), naming `name` and the line.
 */
export async function verifySampleManifest(
  path: string,
  expected: ExpectedSampleManifest,
  name: string = path,
): Promise<SampleManifestSummary> {
  const scanner = await ManifestScanner.open(path, expected, name);
  try {
    while (await scanner.step(false));
    return await scanner.finish();
  } finally {
    await scanner.close();
  }
}

/**
 * The manifest's entries in order, with the same checks as `verifySampleManifest`: a
 * malformed line throws when reached; the digest, count and root are checked after the last
 * entry, so a caller must treat entries as provisional until the iteration ends.
 */
export async function* readSampleManifest(
  path: string,
  expected: ExpectedSampleManifest,
  name: string = path,
): AsyncGenerator<ManifestEntry, SampleManifestSummary, undefined> {
  const scanner = await ManifestScanner.open(path, expected, name);
  try {
    for (;;) {
      const more = await scanner.step(true);
      const entries = scanner.takeEntries();
      for (const e of entries) yield e;
      if (!more) break;
    }
    return await scanner.finish();
  } finally {
    await scanner.close();
  }
}

const HEX_VALUE = (() => {
  const t = new Uint8Array(256).fill(0xff);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) t[0x61 + i] = 10 + i;
  return t;
})();

const HEX_PAIR = (() => {
  const t = new Uint16Array(65_536).fill(0x100);
  for (let hi = 0; hi < 256; hi++) {
    const h = HEX_VALUE[hi]!;
    if (h > 15) continue;
    for (let lo = 0; lo < 256; lo++) {
      const l = HEX_VALUE[lo]!;
      if (l <= 15) t[(hi << 8) | lo] = (h << 4) | l;
    }
  }
  return t;
})();

class ManifestScanner {
  readonly #file: FileHandle;
  readonly #name: string;
  readonly #expected: ExpectedSampleManifest;
  readonly #hash: ChunkHasher;
  readonly #tree = new MerkleBuilder();
  #carry: Buffer = Buffer.alloc(0);
  #block: Buffer;
  #inBlock = 0;
  #pending: Promise<ArrayBuffer>[] = [];
  #entries: ManifestEntry[] = [];
  #count = 0;
  #bytes = 0;

  private constructor(file: FileHandle, expected: ExpectedSampleManifest, name: string, size: number) {
    this.#file = file;
    this.#expected = expected;
    this.#name = name;
    this.#hash = size >= HASH_THREAD_FROM ? new ThreadHasher() : new InlineHasher();
    this.#block = Buffer.allocUnsafe(32 * expected.blockSize);
  }

  static async open(path: string, expected: ExpectedSampleManifest, name: string): Promise<ManifestScanner> {
    if (
      !Number.isInteger(expected.blockSize) ||
      expected.blockSize < 1 ||
      expected.blockSize > MAX_BLOCK_SIZE
    )
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${name}: the statement's blockSize ${expected.blockSize} is not a whole number from 1 to ${MAX_BLOCK_SIZE}.`,
      );
    const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT")
        throw new AntidoteError(
          "FILE_NOT_FOUND",
          `${name}: the statement lists its samples in a manifest file (subject "${SAMPLE_MANIFEST_SUBJECT}"), and it is missing; send it with the bundle (verify/ingest --samples FILE, the "samples" upload part).`,
        );
      throw new AntidoteError("INPUT_FORMAT", `${name}: cannot read the sample manifest (${e.message}).`, {
        cause: e,
      });
    });
    if (!info.isFile())
      throw new AntidoteError("INPUT_FORMAT", `${name}: the sample manifest is not a file.`);
    // An absurd count is refused before a byte is read: every line is 67 to 1090 bytes.
    const { count } = expected;
    if (info.size < count * MIN_LINE_BYTES || info.size > count * (MAX_LINE_BYTES + 1))
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${name}: the statement's sampleCount ${count} cannot fit a manifest of ${info.size} bytes (each line is ${MIN_LINE_BYTES}–${MAX_LINE_BYTES + 1} bytes).`,
      );
    const file = await open(path, "r").catch((e: unknown) => {
      throw new AntidoteError("INPUT_FORMAT", `${name}: cannot open the sample manifest.`, { cause: e });
    });
    return new ManifestScanner(file, expected, name, info.size);
  }

  /** Read and check the next chunk; false once the file is exhausted. */
  async step(collect: boolean): Promise<boolean> {
    // A buffer of its own per chunk: it is handed to the hashing thread once parsed.
    const buffer = Buffer.allocUnsafeSlow(READ_CHUNK);
    const { bytesRead } = await this.#file.read(buffer, 0, READ_CHUNK, null);
    if (bytesRead === 0) return false;
    const chunk = buffer.subarray(0, bytesRead);
    this.#bytes += bytesRead;
    let pos = 0;
    if (this.#carry.length > 0) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        this.#carry = Buffer.concat([this.#carry, chunk]);
        if (this.#carry.length > MAX_LINE_BYTES) this.#tooLong();
        await this.#hash.update(chunk);
        return true;
      }
      const line = Buffer.concat([this.#carry, chunk.subarray(0, nl)]);
      this.#carry = Buffer.alloc(0);
      if (!isUtf8(line)) throw this.#bad(this.#count + 1, "the line is not valid UTF-8");
      this.#line(line, 0, line.length, collect);
      pos = nl + 1;
    }
    const end = chunk.lastIndexOf(10) + 1;
    if (end > pos) {
      if (!isUtf8(chunk.subarray(pos, end - 1))) this.#findBadUtf8(chunk, pos, end - 1);
      this.#lines(chunk, pos, end, collect);
      pos = end;
    }
    if (pos < chunk.length) {
      this.#carry = Buffer.from(chunk.subarray(pos));
      if (this.#carry.length > MAX_LINE_BYTES) this.#tooLong();
    }
    await this.#hash.update(chunk);
    // Leaf hashes run on the thread pool while this thread reads and parses the next chunk.
    while (this.#pending.length > MAX_PENDING_LEAVES)
      this.#tree.addLeafHash(Buffer.from(await this.#pending.shift()!));
    return true;
  }

  /**
   * Every line of buf[pos, end), which ends with LF. The common line is checked in one pass
   * (hex digits decoded into the Merkle block, the id scanned up to its LF); anything unusual
   * goes to `#line`, which says exactly what is wrong or accepts it.
   */
  #lines(buf: Buffer, pos: number, end: number, collect: boolean): void {
    const out = this.#block;
    const limit = this.#expected.count;
    while (pos < end) {
      const start = pos;
      let fast = end - start >= 67 && this.#count < limit;
      let i = start + 65;
      if (fast) {
        let o = 32 * this.#inBlock;
        let invalid = 0;
        // One lookup per byte of digest: the table maps two hex characters to their byte, or
        // to 0x100 when either is not a lowercase hex digit.
        for (let j = start; j < start + 64; j += 2) {
          const v = HEX_PAIR[(buf[j]! << 8) | buf[j + 1]!]!;
          invalid |= v;
          out[o++] = v;
        }
        const first = buf[i]!;
        fast =
          invalid < 0x100 &&
          buf[start + 64] === 0x20 &&
          first !== 0x2f &&
          first !== 0x5c &&
          buf[i + 1] !== 0x3a;
        for (; fast; i++) {
          const b = buf[i]!;
          if (b >= 0x30 && b !== 0x7f && b !== 0xc2 && b !== 0x5c) continue;
          if (b === 0x0a) break;
          if (b >= 0x20 && b < 0x30 && b !== 0x2e) continue; // space … "/"
          if (
            b === 0x2e &&
            !(
              buf[i + 1] === 0x2e &&
              isSlashOrEnd(buf[i - 1]!, i === start + 65) &&
              isSlashOrEnd(buf[i + 2]!, false)
            )
          )
            continue; // a "." that does not start a ".." segment
          fast = false; // a control character, "\\", a possible C1 or "..": checked in full below
        }
        fast = fast && i > start + 65 && i - start <= MAX_LINE_BYTES;
      }
      if (fast) {
        this.#count++;
        if (collect)
          this.#entries.push({
            id: buf.toString("utf8", start + 65, i),
            digest: buf.toString("latin1", start, start + 64),
          });
        if (++this.#inBlock === this.#expected.blockSize) this.#flushBlock();
        pos = i + 1;
      } else {
        const nl = buf.indexOf(10, start);
        this.#line(buf, start, nl, collect);
        pos = nl + 1;
      }
    }
  }

  takeEntries(): ManifestEntry[] {
    const out = this.#entries;
    this.#entries = [];
    return out;
  }

  async finish(): Promise<SampleManifestSummary> {
    if (this.#carry.length > 0)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${this.#name}: line ${this.#count + 1}: the last line does not end with a newline.`,
      );
    if (this.#inBlock > 0) this.#flushBlock();
    for (const p of this.#pending) this.#tree.addLeafHash(Buffer.from(await p));
    this.#pending = [];
    const sha256 = await this.#hash.digest();
    const e = this.#expected;
    if (sha256 !== e.sha256)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${this.#name}: sha256 ${short(sha256)} but the statement's subject "${SAMPLE_MANIFEST_SUBJECT}" says ${short(e.sha256)}.`,
      );
    if (this.#count !== e.count)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${this.#name}: ${this.#count} lines but the statement's sampleCount is ${e.count}.`,
      );
    const root = this.#tree.root();
    if (root !== e.merkleRoot)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${this.#name}: its sample Merkle root ${short(root)} does not match the statement's sampleMerkleRoot ${short(e.merkleRoot)}.`,
      );
    return { sha256, count: this.#count, merkleRoot: root, blockSize: e.blockSize, bytes: this.#bytes };
  }

  async close(): Promise<void> {
    // Leaf hashes still in flight settle on their own; nothing waits for them.
    for (const p of this.#pending) p.catch(() => undefined);
    await this.#hash.close();
    await this.#file.close().catch(() => undefined);
  }

  #line(buf: Buffer, start: number, end: number, collect: boolean): void {
    const n = ++this.#count;
    if (n > this.#expected.count)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${this.#name}: line ${n}: more lines than the statement's sampleCount ${this.#expected.count}.`,
      );
    const length = end - start;
    if (length > MAX_LINE_BYTES) throw this.#bad(n, `the line is over ${MAX_LINE_BYTES} bytes`);
    if (length < 66 || buf[start + 64] !== 0x20) throw this.#bad(n, `expected "<64 hex digits> <id>"`);
    const out = this.#block;
    let o = 32 * this.#inBlock;
    let invalid = 0;
    for (let i = start; i < start + 64; i += 2) {
      const hi = HEX_VALUE[buf[i]!]!;
      const lo = HEX_VALUE[buf[i + 1]!]!;
      invalid |= hi | lo;
      out[o++] = (hi << 4) | lo;
    }
    if (invalid > 15) throw this.#bad(n, "the digest is not 64 lowercase hex digits");
    const problem = idBytesProblem(buf, start + 65, end);
    if (problem !== undefined) throw this.#bad(n, problem);
    if (collect)
      this.#entries.push({
        id: buf.toString("utf8", start + 65, end),
        digest: buf.toString("latin1", start, start + 64),
      });
    if (++this.#inBlock === this.#expected.blockSize) this.#flushBlock();
  }

  #flushBlock(): void {
    const leaf = Buffer.allocUnsafe(1 + 32 * this.#inBlock);
    leaf[0] = 0;
    this.#block.copy(leaf, 1, 0, 32 * this.#inBlock);
    this.#pending.push(webcrypto.subtle.digest("SHA-256", leaf));
    this.#inBlock = 0;
  }

  #findBadUtf8(chunk: Buffer, from: number, to: number): void {
    let line = this.#count + 1;
    for (let pos = from; pos < to; line++) {
      const nl = chunk.indexOf(10, pos);
      const end = nl < 0 || nl > to ? to : nl;
      if (!isUtf8(chunk.subarray(pos, end))) throw this.#bad(line, "the line is not valid UTF-8");
      pos = end + 1;
    }
  }

  #tooLong(): never {
    throw this.#bad(this.#count + 1, `the line is over ${MAX_LINE_BYTES} bytes`);
  }

  #bad(line: number, why: string): AntidoteError {
    return new AntidoteError(
      "INPUT_FORMAT",
      `${this.#name}: line ${line}: ${why} (${SAMPLE_MANIFEST_FORMAT}).`,
    );
  }
}

// ── the file's SHA-256, here or on a thread of its own ─────────────────────────────────

interface ChunkHasher {
  /** Hash `chunk`; the hasher may take the chunk's memory (the caller must not reuse it). */
  update(chunk: Buffer): Promise<void>;
  digest(): Promise<string>;
  close(): Promise<void>;
}

class InlineHasher implements ChunkHasher {
  readonly #hash = createHash("sha256");
  update(chunk: Buffer): Promise<void> {
    this.#hash.update(chunk);
    return Promise.resolve();
  }
  digest(): Promise<string> {
    return Promise.resolve(this.#hash.digest("hex"));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

// Plain JavaScript, so the thread starts the same under tsx, vitest and the build.
const HASH_THREAD_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const hash = createHash("sha256");
parentPort.on("message", (m) => {
  if (m === null) parentPort.postMessage({ digest: hash.digest("hex") });
  else {
    hash.update(new Uint8Array(m.buffer, 0, m.length));
    parentPort.postMessage({ done: 1 });
  }
});`;

/** SHA-256 on a worker thread: chunks are transferred (not copied), at most a few in flight. */
class ThreadHasher implements ChunkHasher {
  readonly #worker = new Worker(HASH_THREAD_SOURCE, { eval: true });
  #inFlight = 0;
  #wake: (() => void) | undefined;
  #digest: ((hex: string) => void) | undefined;
  #failure: Error | undefined;

  constructor() {
    this.#worker.on("message", (m: { done?: number; digest?: string }) => {
      if (m.digest !== undefined) this.#digest?.(m.digest);
      else {
        this.#inFlight--;
        this.#wake?.();
      }
    });
    this.#worker.on("error", (e) => {
      this.#failure = e;
      this.#wake?.();
    });
  }

  async update(chunk: Buffer): Promise<void> {
    while (this.#inFlight >= MAX_CHUNKS_IN_FLIGHT && this.#failure === undefined)
      await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#check();
    this.#inFlight++;
    const buffer = chunk.buffer as ArrayBuffer;
    this.#worker.postMessage({ buffer, length: chunk.length }, [buffer]);
  }

  async digest(): Promise<string> {
    this.#check();
    const hex = new Promise<string>((resolve) => (this.#digest = resolve));
    this.#worker.postMessage(null);
    return hex;
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }

  #check(): void {
    if (this.#failure !== undefined)
      throw new AntidoteError(
        "INTERNAL",
        `sample manifest: the hashing thread failed (${this.#failure.message}).`,
      );
  }
}

/**
 * Why the id bytes buf[start, end) are refused: a control character (C0, DEL, C1 — C1 is
 * 0xC2 0x80–0x9F in UTF-8), an absolute path, a ".." segment. The caller checks UTF-8.
 */
function idBytesProblem(buf: Uint8Array, start: number, end: number): string | undefined {
  if (end - start > MAX_ID_BYTES) return `the id is ${end - start} bytes, over the limit of ${MAX_ID_BYTES}`;
  const first = buf[start];
  if (first === 0x2f || first === 0x5c) return "the id is an absolute path";
  if (end - start >= 3 && isLetter(first ?? 0) && buf[start + 1] === 0x3a && isSlash(buf[start + 2] ?? 0))
    return "the id is an absolute path";
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b < 0x20 || b === 0x7f || (b === 0xc2 && (buf[i + 1] ?? 0) >= 0x80 && (buf[i + 1] ?? 0) <= 0x9f))
      return `the id holds a control character at byte ${i - start + 1}`;
    if (
      b === 0x2e &&
      buf[i + 1] === 0x2e &&
      (i === start || isSlash(buf[i - 1]!)) &&
      (i + 2 === end || isSlash(buf[i + 2]!))
    )
      return 'the id has a ".." path segment';
  }
  return undefined;
}

function isSlashOrEnd(b: number, atEdge: boolean): boolean {
  return atEdge || b === 0x2f || b === 0x5c || b === 0x0a;
}

function isSlash(b: number): boolean {
  return b === 0x2f || b === 0x5c;
}

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

/** An id as it may be shown in a message: control characters replaced, at most 80 characters. */
function printable(id: string): string {
  // eslint-disable-next-line no-control-regex
  return id.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?").slice(0, 80);
}

function short(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 16)}…` : hex;
}
