// safetensors headers (huggingface/safetensors): an unsigned 64-bit little-endian header
// length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, …,
// "__metadata__": {string: string}}, then the data section the offsets index, relative to
// its start. As the reference implementation does, the tensors must tile the data section
// exactly — no overlap, no hole, nothing after the last tensor — so a file cannot carry
// bytes that no tensor accounts for. Only the header is parsed here; tensor-file.ts reads
// the data in blocks. The header is attacker-controlled JSON: its length and the number of
// tensors it declares are capped before it is parsed, because parsing and validating a
// 300,000-tensor header costs ~700 MB where a real update's costs a few.
import { z } from "zod";
import { AntidoteError, jsonSyntaxReason } from "../errors.js";
import type { TensorDtype, TensorInfo } from "./tensor-file.js";

export interface SafetensorsHeader {
  /** Tensors in the order of their data, with `offset` the absolute byte of element 0. */
  tensors: (TensorInfo & { offset: number })[];
  metadata: Record<string, string>;
  /** Byte offset of the data section (8 + N). */
  dataStart: number;
}

/** Caps on what a header may declare, checked before it is parsed. */
export interface TensorHeaderLimits {
  /**
   * The largest header accepted, in bytes. Default 16 MiB: a 70B-parameter model's shard
   * headers are under 100 kB; the reference implementation's own ceiling is 100 MB.
   */
  maxHeaderBytes?: number;
  /** The most tensors one file may declare. Default 65,536: a large model has a few thousand. */
  maxTensors?: number;
}

export const DEFAULT_TENSOR_HEADER_LIMITS: Required<TensorHeaderLimits> = {
  maxHeaderBytes: 16 * 2 ** 20,
  maxTensors: 65_536,
};
const BYTES: Record<TensorDtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };
const SUPPORTED = ["F32", "F64", "F16", "BF16"] as const;
/** Dtypes the format defines that are not float updates. */
const OTHER_DTYPES = new Set([
  "BOOL",
  "U8",
  "I8",
  "I16",
  "U16",
  "I32",
  "U32",
  "I64",
  "U64",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F6_E2M3",
  "F6_E3M2",
  "F4",
  "C64",
]);

const entrySchema = z.object({
  dtype: z.string({ error: "must be a string" }),
  shape: z.array(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), {
    error: "must be an array of non-negative integers",
  }),
  data_offsets: z.tuple(
    [
      z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
      z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    ],
    { error: "must be [begin, end] byte offsets" },
  ),
});
const metadataSchema = z.record(z.string(), z.string({ error: "must map strings to strings" }));

export async function readSafetensorsHeader(
  file: string,
  size: number,
  read: (position: number, length: number) => Promise<Buffer>,
  limits: TensorHeaderLimits = {},
): Promise<SafetensorsHeader> {
  const { maxHeaderBytes, maxTensors } = { ...DEFAULT_TENSOR_HEADER_LIMITS, ...limits };
  const fail = (detail: string) => new AntidoteError("INPUT_FORMAT", `${file}: ${detail}`);
  if (size < 8) throw fail(`truncated: ${size} bytes, shorter than the 8-byte safetensors header length.`);
  const n = (await read(0, 8)).readBigUInt64LE(0);
  if (n > BigInt(size - 8))
    throw fail(
      `header length ${n} is beyond the file size (${size} bytes): the file is truncated or not safetensors.`,
    );
  const headerLength = Number(n);
  if (headerLength > maxHeaderBytes)
    throw fail(
      `header length ${headerLength} exceeds the ${maxHeaderBytes}-byte limit; refused before parsing.`,
    );
  const raw = await read(8, headerLength);
  // Every tensor entry has a "data_offsets" key: counting them bounds the tensors without parsing.
  const declared = countOccurrences(raw, DATA_OFFSETS_KEY, maxTensors + 1);
  if (declared > maxTensors)
    throw fail(`the header declares more than ${maxTensors} tensors, the limit; refused before parsing.`);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw fail(`bad JSON header (${jsonSyntaxReason(e)}).`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw fail(`bad header: expected a JSON object mapping tensor names to {dtype, shape, data_offsets}.`);

  const dataStart = 8 + headerLength;
  const dataSize = size - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: (TensorInfo & { offset: number; begin: number; end: number })[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      const m = metadataSchema.safeParse(value);
      if (!m.success) throw fail(`header field __metadata__ ${m.error.issues[0]?.message ?? "is invalid"}.`);
      metadata = m.data;
      continue;
    }
    const entry = entrySchema.safeParse(value);
    if (!entry.success) {
      const issue = entry.error.issues[0];
      const field = String(issue?.path[0] ?? "");
      throw fail(
        field === ""
          ? `tensor ${name}: expected an object {dtype, shape, data_offsets}.`
          : `tensor ${name}: field ${field} ${issue?.message ?? "is invalid"}.`,
      );
    }
    const {
      dtype,
      shape,
      data_offsets: [begin, end],
    } = entry.data;
    if (!(SUPPORTED as readonly string[]).includes(dtype))
      throw fail(
        OTHER_DTYPES.has(dtype)
          ? `tensor ${name}: dtype ${dtype} is not a float update dtype (F32, F64, F16 or BF16).`
          : `tensor ${name}: unknown dtype "${dtype}" (F32, F64, F16 or BF16).`,
      );
    const bytes = BYTES[dtype as TensorDtype];
    if (begin > end) throw fail(`tensor ${name}: data_offsets [${begin}, ${end}] end before they begin.`);
    if (end > dataSize)
      throw fail(
        `tensor ${name}: data_offsets [${begin}, ${end}] are out of bounds (the data section holds ${dataSize} bytes).`,
      );
    const elements = shape.reduce((a, b) => a * b, 1);
    if (elements * bytes !== end - begin)
      throw fail(
        `tensor ${name}: shape [${shape.join(",")}] of ${dtype} needs ${elements * bytes} bytes, data_offsets [${begin}, ${end}] span ${end - begin}.`,
      );
    tensors.push({ name, dtype: dtype as TensorDtype, shape, offset: dataStart + begin, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = "";
  for (const t of tensors) {
    if (t.begin < covered)
      throw fail(`tensor ${t.name}: data_offsets [${t.begin}, ${t.end}] overlap tensor ${previous}'s.`);
    if (t.begin > covered)
      throw fail(
        `tensor ${t.name}: data_offsets [${t.begin}, ${t.end}] leave bytes ${covered}..${t.begin} of the data section unaccounted for.`,
      );
    covered = t.end;
    previous = t.name;
  }
  if (covered !== dataSize)
    throw fail(
      `the tensors cover ${covered} bytes of the data section, the file has ${dataSize}: ${covered < dataSize ? "trailing bytes" : "truncated"}.`,
    );
  return {
    tensors: tensors.map(({ name, dtype, shape, offset }) => ({ name, dtype, shape, offset })),
    metadata,
    dataStart,
  };
}

const DATA_OFFSETS_KEY = Buffer.from('"data_offsets"');

/** How many times `needle` occurs in `haystack`, counting no further than `stopAt`. */
function countOccurrences(haystack: Buffer, needle: Buffer, stopAt: number): number {
  let count = 0;
  for (let i = haystack.indexOf(needle); i >= 0 && count < stopAt; i = haystack.indexOf(needle, i + 1))
    count++;
  return count;
}

/**
 * The 8-byte length and JSON header for tensors stored back to back in the given order,
 * padded with spaces to a multiple of 8 bytes so the data is aligned (as the reference
 * writer does).
 */
export function encodeSafetensorsHeader(
  tensors: readonly TensorInfo[],
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}
