// Client updates stored as files, read as one UpdateMatrix without ever loading a file whole.
// An update is one .safetensors file (named tensors), one .npy file, or a directory of .npy
// files (the tensor name is the file name without .npy). Its flat coordinate space is its
// tensors in name order, each row-major, converted to float32.
//
// Two passes over every file. The first (`scanUpdates`) streams each file once to compute
// the digest a client attests and to check that every value is finite, and compares the
// tensor layouts. The second is the rules' own block reads (`openScannedUpdates`): each
// `columns` call is one `readSync` per tensor it touches, into a buffer reused per client,
// so memory is one block per client whatever the model size.
//
// Digests: a file's is the hex SHA-256 of its bytes. A directory's is the SHA-256 of the
// text `sha256sum` prints for its .npy files in name order — "<hex>  <name>\n" per file —
// so `(cd DIR && LC_ALL=C sha256sum *.npy) | sha256sum` reproduces it.
import { createHash } from "node:crypto";
import fs from "node:fs";
import { open, readdir, rename, rm, stat, mkdir, type FileHandle } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import canonicalize from "canonicalize";
import { AntidoteError, isAntidoteError } from "../errors.js";
import { encodeNpyHeader, readNpyHeader } from "./npy.js";
import { encodeSafetensorsHeader, readSafetensorsHeader, type TensorHeaderLimits } from "./safetensors.js";
import type { UpdateMatrix } from "./types.js";

export type TensorDtype = "F32" | "F64" | "F16" | "BF16";

export const DTYPE_BYTES: Readonly<Record<TensorDtype, number>> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

export interface TensorInfo {
  name: string;
  dtype: TensorDtype;
  shape: number[];
}

/** The tensors of an update in name order: what every client of a round must share. */
export interface TensorLayout {
  tensors: TensorInfo[];
  /** Total coordinates d. */
  dimension: number;
  /** Hex SHA-256 of the RFC 8785 JSON of `tensors`: what an attestation names as `layoutDigest`. */
  digest: string;
}

/** Where one tensor's data lies, and which flat coordinates it fills. */
export interface TensorPlacement extends TensorInfo {
  file: string;
  /** Byte offset of element 0 in `file`. */
  offset: number;
  elements: number;
  /** First flat coordinate of this tensor. */
  start: number;
}

export type UpdateFormat = "safetensors" | "npy" | "npy-dir";

/** The identity of a file when it was hashed, so a later read can tell it was swapped. */
interface FileIdentity {
  path: string;
  sha256: string;
  size: number;
  dev: number;
  ino: number;
  mtimeMs: number;
}

export interface UpdateScan {
  path: string;
  format: UpdateFormat;
  /** The attested digest (see the module comment for directories). */
  digest: string;
  bytes: number;
  layout: TensorLayout;
  /** Tensors in name order (flat coordinate order). */
  tensors: TensorPlacement[];
  files: FileIdentity[];
  /** Why the update holds a NaN or infinite value (after conversion to float32), or null. */
  nonFinite: string | null;
}

export type UpdateProblemKind = "malformed" | "non-finite" | "layout-mismatch";

export interface UpdateCheck {
  path: string;
  /** Null when the file could not be parsed. */
  scan: UpdateScan | null;
  problems: { kind: UpdateProblemKind; message: string }[];
}

export interface ScanOptions {
  /** Bytes hashed so far, of all updates together. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** The layout every update must have (e.g. the server's root update's); default: the one most updates share. */
  layout?: TensorLayout;
  /** Caps on header size and tensor count, checked before a header is parsed (defaults in safetensors.ts). */
  headerLimits?: TensorHeaderLimits;
}

/** A file-backed UpdateMatrix; `close` releases its file descriptors. */
export interface FileUpdateMatrix extends UpdateMatrix {
  readonly layout: TensorLayout;
  readonly updates: readonly UpdateScan[];
  close(): void;
}

/** The tensor name of a lone .npy update (and of a flat aggregate written without a layout). */
export const SINGLE_NPY_TENSOR = "update";

/** Bytes per read in the hashing pass. */
const SCAN_CHUNK = 4 << 20;

// ---------------------------------------------------------------------------------------
// Scanning

/**
 * Hash, parse and check every update. A missing path is the caller's mistake and throws
 * FILE_NOT_FOUND; a malformed file, a non-finite value or a layout that differs from the
 * round's is a problem of that update, reported in its `problems`.
 */
export async function scanUpdates(
  paths: readonly string[],
  options: ScanOptions = {},
): Promise<{ updates: UpdateCheck[]; layout: TensorLayout | null }> {
  const listed = await Promise.all(paths.map((p) => listUpdateFiles(p)));
  const total = listed.reduce((sum, l) => sum + (l.ok ? l.bytes : 0), 0);
  let done = 0;
  const progress = (bytes: number) => {
    done += bytes;
    options.onProgress?.(done, total);
  };
  const scratch = newScanScratch();
  const updates: UpdateCheck[] = [];
  for (const [i, path] of paths.entries()) {
    const l = listed[i];
    if (l === undefined || !l.ok) {
      updates.push({ path, scan: null, problems: [{ kind: "malformed", message: l?.error ?? path }] });
      continue;
    }
    try {
      const scan = await scanListed(path, l, progress, scratch, options.headerLimits);
      updates.push({
        path,
        scan,
        problems: scan.nonFinite === null ? [] : [{ kind: "non-finite", message: scan.nonFinite }],
      });
    } catch (e) {
      if (!isAntidoteError(e) || e.code !== "INPUT_FORMAT") throw e;
      updates.push({ path, scan: null, problems: [{ kind: "malformed", message: e.message }] });
    }
  }
  const layout = options.layout ?? majorityLayout(updates);
  if (layout !== null)
    for (const u of updates) {
      if (u.scan === null) continue;
      const mismatch = layoutMismatch(u.scan, layout);
      if (mismatch !== null) u.problems.push({ kind: "layout-mismatch", message: mismatch });
    }
  return { updates, layout };
}

/** Scan one update; any problem (malformed, non-finite) throws. */
export async function scanUpdate(path: string, options: ScanOptions = {}): Promise<UpdateScan> {
  const { updates } = await scanUpdates([path], options);
  const scan = updates[0]?.scan ?? null;
  const problem = updates[0]?.problems[0];
  if (scan === null || problem !== undefined)
    throw new AntidoteError("INPUT_FORMAT", problem?.message ?? `${path}: cannot read the update.`);
  return scan;
}

/** Scan every update and open them as one matrix; any problem throws (INPUT_FORMAT). */
export async function openUpdates(
  paths: readonly string[],
  options: ScanOptions = {},
): Promise<FileUpdateMatrix> {
  const { updates, layout } = await scanUpdates(paths, options);
  for (const u of updates) {
    const problem = u.problems[0];
    if (problem !== undefined) throw new AntidoteError("INPUT_FORMAT", problem.message);
  }
  if (layout === null) throw new AntidoteError("USAGE", "no updates given.");
  return openScannedUpdates(
    updates.map((u) => u.scan as UpdateScan),
    layout,
  );
}

type Listed =
  | { ok: true; format: UpdateFormat; files: { path: string; size: number }[]; bytes: number }
  | { ok: false; error: string };

async function listUpdateFiles(path: string): Promise<Listed> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT")
      throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such update file or directory.`);
    throw new AntidoteError("FILE_NOT_FOUND", `${path}: cannot read (${e.message}).`);
  });
  if (info.isDirectory()) {
    const names = (await readdir(path, { withFileTypes: true }))
      .filter((e) => e.isFile() && e.name.endsWith(".npy"))
      .map((e) => e.name)
      .sort(byCodeUnit);
    if (names.length === 0) return { ok: false, error: `${path}: the directory holds no .npy files.` };
    const files = await Promise.all(
      names.map(async (n) => ({ path: join(path, n), size: (await stat(join(path, n))).size })),
    );
    return { ok: true, format: "npy-dir", files, bytes: files.reduce((s, f) => s + f.size, 0) };
  }
  const ext = extname(path).toLowerCase();
  if (ext !== ".safetensors" && ext !== ".npy")
    return {
      ok: false,
      error: `${path}: not an update file (expected a .safetensors file, a .npy file or a directory of .npy files).`,
    };
  return {
    ok: true,
    format: ext === ".npy" ? "npy" : "safetensors",
    files: [{ path, size: info.size }],
    bytes: info.size,
  };
}

/** The hashing pass's buffers, shared by every file of one scan: a directory of many tensors allocates them once. */
interface ScanScratch {
  raw: Uint8Array;
  floats: Float32Array;
}

function newScanScratch(): ScanScratch {
  return { raw: new Uint8Array(new ArrayBuffer(SCAN_CHUNK)), floats: new Float32Array(SCAN_CHUNK / 2) };
}

async function scanListed(
  path: string,
  listed: Extract<Listed, { ok: true }>,
  progress: (bytes: number) => void,
  scratch: ScanScratch,
  limits: TensorHeaderLimits = {},
): Promise<UpdateScan> {
  const placements: Omit<TensorPlacement, "start">[] = [];
  const files: FileIdentity[] = [];
  let nonFinite: string | null = null;
  for (const f of listed.files) {
    const handle = await open(f.path, "r");
    try {
      const info = await handle.stat();
      const read = (position: number, length: number) => readAt(handle, position, length);
      let tensors: (TensorInfo & { offset: number })[];
      if (listed.format === "safetensors") {
        tensors = (await readSafetensorsHeader(f.path, info.size, read, limits)).tensors;
      } else {
        const h = await readNpyHeader(f.path, info.size, read, limits);
        // A lone .npy holds one unnamed array; every client's must share a name to share a layout.
        const name = listed.format === "npy-dir" ? basename(f.path, ".npy") : SINGLE_NPY_TENSOR;
        tensors = [{ name, dtype: h.dtype, shape: h.shape, offset: h.offset }];
      }
      const hashed = await hashAndCheck(f.path, handle, info.size, tensors, progress, scratch);
      nonFinite ??= hashed.nonFinite;
      for (const t of tensors) placements.push({ ...t, file: f.path, elements: elementsOf(t.shape) });
      files.push({
        path: f.path,
        sha256: hashed.sha256,
        size: info.size,
        dev: info.dev,
        ino: info.ino,
        mtimeMs: info.mtimeMs,
      });
    } finally {
      await handle.close();
    }
  }
  placements.sort((a, b) => byCodeUnit(a.name, b.name));
  let start = 0;
  const tensors = placements.map((p) => {
    const t = { ...p, start };
    start += p.elements;
    return t;
  });
  const digest =
    listed.format === "npy-dir"
      ? createHash("sha256")
          .update(files.map((f) => `${f.sha256}  ${basename(f.path)}\n`).join(""))
          .digest("hex")
      : (files[0]?.sha256 ?? "");
  return {
    path,
    format: listed.format,
    digest,
    bytes: listed.bytes,
    layout: layoutOf(tensors),
    tensors,
    files,
    nonFinite,
  };
}

/**
 * One sequential pass over a file: the header, then each tensor's bytes in data order (the
 * parsers guarantee they tile the file), hashing everything and decoding the tensors to
 * float32 to find NaN and infinity — including finite F64 values too large for float32.
 */
async function hashAndCheck(
  file: string,
  handle: FileHandle,
  size: number,
  tensors: readonly (TensorInfo & { offset: number })[],
  progress: (bytes: number) => void,
  { raw, floats }: ScanScratch,
): Promise<{ sha256: string; nonFinite: string | null }> {
  const hash = createHash("sha256");
  const ordered = [...tensors].sort((a, b) => a.offset - b.offset);
  let position = 0;
  const hashRange = async (end: number) => {
    while (position < end) {
      const n = Math.min(SCAN_CHUNK, end - position);
      await readFully(handle, raw.subarray(0, n), position, file);
      hash.update(raw.subarray(0, n));
      position += n;
      progress(n);
    }
  };
  let bad = 0;
  let first: string | null = null;
  for (const t of ordered) {
    await hashRange(t.offset);
    const bytes = DTYPE_BYTES[t.dtype];
    const count = elementsOf(t.shape);
    const perChunk = Math.floor(SCAN_CHUNK / bytes);
    for (let k = 0; k < count; k += perChunk) {
      const m = Math.min(perChunk, count - k);
      const view = raw.subarray(0, m * bytes);
      await readFully(handle, view, position, file);
      hash.update(view);
      position += m * bytes;
      progress(m * bytes);
      const values = floats.subarray(0, m);
      decodeInto(t.dtype, raw.buffer, 0, m, values);
      for (let j = 0; j < m; j++) {
        const v = values[j] ?? 0;
        if (Number.isFinite(v)) continue;
        bad++;
        first ??= `tensor ${t.name} holds ${describeNonFinite(v, t.dtype)} at index ${k + j}`;
      }
    }
  }
  await hashRange(size);
  const nonFinite =
    first === null ? null : `${file}: ${first}${bad > 1 ? ` (${bad} non-finite values in all)` : ""}.`;
  return { sha256: hash.digest("hex"), nonFinite };
}

function describeNonFinite(v: number, dtype: TensorDtype): string {
  if (Number.isNaN(v)) return "NaN";
  return dtype === "F64"
    ? `${v > 0 ? "+" : "-"}Inf (or a value beyond float32 range)`
    : `${v > 0 ? "+" : "-"}Inf`;
}

// ---------------------------------------------------------------------------------------
// Layouts

export function layoutOf(tensors: readonly TensorInfo[]): TensorLayout {
  const sorted = [...tensors]
    .map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] }))
    .sort((a, b) => byCodeUnit(a.name, b.name));
  return {
    tensors: sorted,
    dimension: sorted.reduce((s, t) => s + elementsOf(t.shape), 0),
    digest: createHash("sha256")
      .update(canonicalize(sorted) ?? "[]")
      .digest("hex"),
  };
}

/** The layout most parsed updates share; ties go to the one seen first. */
function majorityLayout(updates: readonly UpdateCheck[]): TensorLayout | null {
  const counts = new Map<string, { layout: TensorLayout; count: number }>();
  for (const u of updates) {
    if (u.scan === null) continue;
    const entry = counts.get(u.scan.layout.digest) ?? { layout: u.scan.layout, count: 0 };
    entry.count++;
    counts.set(u.scan.layout.digest, entry);
  }
  let best: { layout: TensorLayout; count: number } | null = null;
  for (const e of counts.values()) if (best === null || e.count > best.count) best = e;
  return best?.layout ?? null;
}

/** Why an update's layout differs from the round's, naming the file, the tensor and the field; null when equal. */
export function layoutMismatch(scan: UpdateScan, layout: TensorLayout): string | null {
  if (scan.layout.digest === layout.digest) return null;
  const theirs = new Map(scan.tensors.map((t) => [t.name, t]));
  const ours = new Set(layout.tensors.map((t) => t.name));
  const label = (file: string) => (scan.format === "npy-dir" ? file : scan.path);
  for (const want of layout.tensors) {
    const have = theirs.get(want.name);
    if (have === undefined)
      return `${scan.path}: tensor ${want.name} is missing (the round's layout has ${layout.tensors.length} tensors: ${listNames(layout.tensors)}).`;
    if (!sameShape(have.shape, want.shape))
      return `${label(have.file)}: tensor ${want.name} has shape [${have.shape.join(",")}], the round's is [${want.shape.join(",")}].`;
    if (have.dtype !== want.dtype)
      return `${label(have.file)}: tensor ${want.name} has dtype ${have.dtype}, the round's is ${want.dtype}.`;
  }
  const extra = scan.tensors.find((t) => !ours.has(t.name));
  if (extra !== undefined)
    return `${label(extra.file)}: tensor ${extra.name} is not in the round's layout (${listNames(layout.tensors)}).`;
  return `${scan.path}: the tensor layout differs from the round's.`;
}

function listNames(tensors: readonly TensorInfo[]): string {
  const names = tensors.map((t) => t.name);
  return names.length <= 6 ? names.join(", ") : `${names.slice(0, 6).join(", ")}, …`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---------------------------------------------------------------------------------------
// Block reads

/**
 * A matrix over scanned updates, all with `layout`. Reads go through `fs.readSync` into one
 * buffer per client (grown to the largest block asked for) and one shared conversion buffer
 * for non-F32 data. A file is re-identified on open (device, inode, size, mtime): an update
 * replaced after it was hashed is refused rather than aggregated unattested.
 */
export function openScannedUpdates(scans: readonly UpdateScan[], layout: TensorLayout): FileUpdateMatrix {
  for (const s of scans) {
    const mismatch = layoutMismatch(s, layout);
    if (mismatch !== null) throw new AntidoteError("INPUT_FORMAT", mismatch);
  }
  const states = scans.map((scan) => ({
    scan,
    buffer: new Float32Array(0),
    fd: -1,
    fdFile: "",
    cursor: 0,
    identities: new Map(scan.files.map((f) => [f.path, f])),
  }));
  let scratch = new Uint8Array(0);
  let closed = false;

  const fdFor = (state: (typeof states)[number], file: string): number => {
    if (state.fdFile === file) return state.fd;
    if (state.fd >= 0) fs.closeSync(state.fd);
    state.fd = -1;
    // One open file per client: a directory update with hundreds of tensors must not hold
    // hundreds of descriptors per client, and rules read each client's tensors in order.
    const fd = fs.openSync(file, "r");
    const now = fs.fstatSync(fd);
    const then = state.identities.get(file);
    if (
      then === undefined ||
      now.dev !== then.dev ||
      now.ino !== then.ino ||
      now.size !== then.size ||
      now.mtimeMs !== then.mtimeMs
    ) {
      fs.closeSync(fd);
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${file}: the file changed after it was hashed; its bytes are no longer the attested update.`,
      );
    }
    state.fd = fd;
    state.fdFile = file;
    return fd;
  };

  return {
    clients: scans.length,
    dimension: layout.dimension,
    layout,
    updates: scans,
    columns(client, start, end) {
      if (closed) throw new Error("the update matrix is closed");
      const state = states[client];
      if (state === undefined) throw new RangeError(`client ${client} out of range 0..${states.length - 1}`);
      if (!(start >= 0 && start <= end && end <= layout.dimension))
        throw new RangeError(`columns [${start}, ${end}) out of range 0..${layout.dimension}`);
      const n = end - start;
      if (state.buffer.length < n) state.buffer = new Float32Array(n);
      const out = state.buffer.subarray(0, n);
      const tensors = state.scan.tensors;
      // Rules walk coordinates in order, so the tensor after the last one read is the usual hit.
      let t = (tensors[state.cursor]?.start ?? Infinity) <= start ? state.cursor : 0;
      let pos = start;
      while (pos < end) {
        const tensor = tensors[t];
        if (tensor === undefined) throw new Error(`coordinate ${pos} is beyond the update's tensors`);
        if (pos >= tensor.start + tensor.elements) {
          t++;
          continue;
        }
        const k0 = pos - tensor.start;
        const k1 = Math.min(tensor.elements, end - tensor.start);
        const count = k1 - k0;
        const bytes = DTYPE_BYTES[tensor.dtype];
        const fd = fdFor(state, tensor.file);
        const position = tensor.offset + k0 * bytes;
        if (tensor.dtype === "F32") {
          readSyncFully(
            fd,
            new Uint8Array(out.buffer, out.byteOffset + (pos - start) * 4, count * 4),
            position,
            tensor.file,
          );
        } else {
          if (scratch.length < count * bytes) scratch = new Uint8Array(new ArrayBuffer(count * bytes));
          readSyncFully(fd, scratch.subarray(0, count * bytes), position, tensor.file);
          decodeInto(tensor.dtype, scratch.buffer, 0, count, out.subarray(pos - start, pos - start + count));
        }
        pos += count;
        state.cursor = t;
      }
      return out;
    },
    close() {
      if (closed) return;
      closed = true;
      for (const s of states) if (s.fd >= 0) fs.closeSync(s.fd);
    },
  };
}

/** All of one scanned update's values (the server's root update: FLTrust needs it whole). */
export function readUpdateValues(scan: UpdateScan): Float32Array {
  const m = openScannedUpdates([scan], scan.layout);
  try {
    return m.columns(0, 0, m.dimension).slice();
  } finally {
    m.close();
  }
}

function readSyncFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.length) {
    const n = fs.readSync(fd, into, done, into.length - done, position + done);
    if (n === 0)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${file}: the file ended early; it changed after it was hashed.`,
      );
    done += n;
  }
}

async function readFully(
  handle: FileHandle,
  into: Uint8Array,
  position: number,
  file: string,
): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0)
      throw new AntidoteError("INPUT_FORMAT", `${file}: truncated at byte ${position + done}.`);
    done += bytesRead;
  }
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return out.subarray(0, done);
}

// ---------------------------------------------------------------------------------------
// Dtype conversion

let halfTable: Float32Array | undefined;

/** float16 bits → float32, by table (256 KB, built on first use). */
function halfToFloatTable(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    table[h] =
      exp === 0
        ? sign * mant * 2 ** -24
        : exp === 31
          ? mant === 0
            ? sign * Infinity
            : NaN
          : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  halfTable = table;
  return table;
}

/** Decode `count` little-endian values of `dtype` at byte `byteOffset` of `buffer` (aligned) into `out`. */
function decodeInto(
  dtype: TensorDtype,
  buffer: ArrayBufferLike,
  byteOffset: number,
  count: number,
  out: Float32Array,
): void {
  switch (dtype) {
    case "F32":
      out.set(new Float32Array(buffer, byteOffset, count));
      return;
    case "F64":
      out.set(new Float64Array(buffer, byteOffset, count));
      return;
    case "F16": {
      const table = halfToFloatTable();
      const h = new Uint16Array(buffer, byteOffset, count);
      for (let i = 0; i < count; i++) out[i] = table[h[i] ?? 0] ?? 0;
      return;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32: shift the bits into place.
      const h = new Uint16Array(buffer, byteOffset, count);
      const bits = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) bits[i] = (h[i] ?? 0) << 16;
      return;
    }
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → float16 bits, rounding to nearest even (overflow to ±Inf, as numpy does). */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0] ?? 0;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct rounding
  return sign | h;
}

/** float → bfloat16 bits, rounding to nearest even. */
export function floatToBfloat16(x: number): number {
  f32[0] = x;
  const b = u32[0] ?? 0;
  if (Number.isNaN(x)) return ((b >>> 16) & 0x8000) | 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian bytes of `values` as `dtype`. */
export function encodeValues(dtype: TensorDtype, values: ArrayLike<number>): Buffer {
  const n = values.length;
  const out = Buffer.alloc(n * DTYPE_BYTES[dtype]);
  for (let i = 0; i < n; i++) {
    const v = values[i] ?? 0;
    if (dtype === "F32") out.writeFloatLE(v, i * 4);
    else if (dtype === "F64") out.writeDoubleLE(v, i * 8);
    else if (dtype === "F16") out.writeUInt16LE(floatToHalf(v), i * 2);
    else out.writeUInt16LE(floatToBfloat16(v), i * 2);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Writers

export interface WrittenFile {
  path: string;
  /** Hex SHA-256 of the bytes written. */
  digest: string;
  bytes: number;
}

/**
 * Write float32 values as an update file: `.safetensors` with the layout's tensor names and
 * shapes (F32) and `metadata`, or `.npy` (the layout's shape when it has one tensor, else
 * flat). Written to a temporary file beside `path` and renamed, so a reader never sees half
 * a file and a failed write leaves the old one.
 */
export async function writeUpdateFile(
  path: string,
  values: Float32Array,
  options: { layout?: TensorLayout; metadata?: Record<string, string> } = {},
): Promise<WrittenFile> {
  const ext = extname(path).toLowerCase();
  const layout = options.layout;
  if (layout !== undefined && layout.dimension !== values.length)
    throw new Error(`${values.length} values for a layout of ${layout.dimension} coordinates`);
  const f32Tensors = (
    layout?.tensors ?? [{ name: SINGLE_NPY_TENSOR, dtype: "F32" as const, shape: [values.length] }]
  ).map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape }));
  let header: Buffer;
  if (ext === ".safetensors") header = encodeSafetensorsHeader(f32Tensors, options.metadata);
  else if (ext === ".npy") {
    const only = f32Tensors.length === 1 ? f32Tensors[0] : undefined;
    header = encodeNpyHeader("F32", only?.shape ?? [values.length]);
  } else throw new AntidoteError("USAGE", `--out ${path}: write the aggregate as .safetensors or .npy.`);
  await mkdir(dirname(resolve(path)), { recursive: true });
  const partial = `${path}.partial-${process.pid}`;
  const hash = createHash("sha256");
  const handle = await open(partial, "w");
  try {
    await handle.write(header);
    hash.update(header);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const step = 16 << 20;
    for (let i = 0; i < bytes.length; i += step) {
      const chunk = bytes.subarray(i, Math.min(bytes.length, i + step));
      await handle.write(chunk);
      hash.update(chunk);
    }
    await handle.sync();
    await handle.close();
    await rename(partial, path);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw e;
  }
  return { path, digest: hash.digest("hex"), bytes: header.length + values.byteLength };
}

/**
 * A flat float32 .npy written block by block (FoolsGold history: one client's running sum),
 * so it never has to be in memory whole. `close` returns its digest; the caller renames.
 */
export function createNpyBlockWriter(
  path: string,
  dimension: number,
): { write(block: Float32Array): void; close(): WrittenFile } {
  const fd = fs.openSync(path, "w");
  const hash = createHash("sha256");
  const header = encodeNpyHeader("F32", [dimension]);
  let written = 0;
  const put = (bytes: Uint8Array) => {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    hash.update(bytes);
  };
  put(header);
  return {
    write(block) {
      put(new Uint8Array(block.buffer, block.byteOffset, block.byteLength));
      written += block.length;
    },
    close() {
      fs.closeSync(fd);
      if (written !== dimension) throw new Error(`${path}: wrote ${written} of ${dimension} values`);
      return { path, digest: hash.digest("hex"), bytes: header.length + dimension * 4 };
    },
  };
}

/** The scan of a flat F32 .npy this process just wrote (its digest known from writing), without re-reading it. */
export async function scanOfWrittenNpy(written: WrittenFile, dimension: number): Promise<UpdateScan> {
  const info = await stat(written.path);
  const tensors: TensorPlacement[] = [
    {
      name: SINGLE_NPY_TENSOR,
      dtype: "F32",
      shape: [dimension],
      file: written.path,
      offset: encodeNpyHeader("F32", [dimension]).length,
      elements: dimension,
      start: 0,
    },
  ];
  return {
    path: written.path,
    format: "npy",
    digest: written.digest,
    bytes: info.size,
    layout: layoutOf(tensors),
    tensors,
    files: [
      {
        path: written.path,
        sha256: written.digest,
        size: info.size,
        dev: info.dev,
        ino: info.ino,
        mtimeMs: info.mtimeMs,
      },
    ],
    nonFinite: null,
  };
}

// ---------------------------------------------------------------------------------------

function elementsOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Plain code-unit order, the same in every locale (and `LC_ALL=C sort` for ASCII names). */
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
