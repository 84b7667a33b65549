// A shard's outputs as bytes, for the queue that carries them from the worker that ran the shard
// to the one that merges (a job artifact, a file). The layout is safetensors (robust/safetensors.ts
// parses and bounds its header): tensors `sample_tags` (F64 [n]), `probs` and `own_probs`
// (F32 [n, classes], when the scan has classes) and `features` (F32 [n, dims], when the model has a
// penultimate layer), and two metadata strings: `antidote.shard`, the JSON of everything else
// (shard, plan, model summary), and `antidote.sha256`, a SHA-256 over that JSON, the tensors'
// names and shapes, and the data. The bytes come from another machine, so decoding trusts
// nothing: the header's bounds, the checksum (a flipped bit in a float is still a float), the
// JSON's schema, every tensor's shape against it, the range against the plan, finite values.
import { createHash } from "node:crypto";
import { endianness } from "node:os";
import { z } from "zod";
import { AntidoteError, jsonSyntaxReason } from "../errors.js";
import { encodeSafetensorsHeader, readSafetensorsHeader } from "../robust/safetensors.js";
import type { TensorInfo } from "../robust/tensor-file.js";
import type { ModelOutputs } from "./model-run.js";
import { shardRange, type ShardOutputs } from "./shard.js";

const FORMAT = "antidote-shard-outputs";
const VERSION = 1;
const META_KEY = "antidote.shard";
const SUM_KEY = "antidote.sha256";

const summarySchema = z.object({
  path: z.string(),
  digest: z.string().regex(/^[0-9a-f]{64}$/, "must be a hex SHA-256"),
  input: z.object({ name: z.string(), shape: z.array(z.number().int().min(1)) }),
  output: z.string(),
  outputIsProbabilities: z.boolean(),
  penultimate: z.string().nullable(),
  samples: z.number().int().min(0),
  imagesPerSecond: z.number().min(0),
  views: z.number().int().min(1),
});

const metaSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  shard: z
    .object({ index: z.number().int().min(0), count: z.number().int().min(1) })
    .refine((s) => s.index < s.count, { message: "index must be below count" }),
  plan: z.object({ samples: z.number().int().min(0), classes: z.array(z.string()) }),
  blockSize: z.number().int().min(1),
  from: z.number().int().min(0),
  probsFrom: z.string(),
  /** The features' provenance, or null when the model has none. */
  featuresFrom: z.string().nullable(),
  summary: summarySchema,
  warnings: z.array(z.string()),
});
type Meta = z.infer<typeof metaSchema>;

/** The shard's outputs as safetensors bytes (see the module comment). */
export function encodeShard(shard: ShardOutputs): Uint8Array {
  requireLittleEndian();
  const { outputs } = shard;
  const n = shard.sampleTags.length;
  const meta: Meta = {
    format: FORMAT,
    version: VERSION,
    shard: shard.shard,
    plan: shard.plan,
    blockSize: shard.blockSize,
    from: shard.from,
    probsFrom: outputs.probsFrom,
    featuresFrom: outputs.features?.from ?? null,
    summary: outputs.summary,
    warnings: outputs.warnings,
  };
  const C = shard.plan.classes.length;
  const tensors: { info: TensorInfo; data: Float32Array | Float64Array }[] = [
    { info: { name: "sample_tags", dtype: "F64", shape: [n] }, data: shard.sampleTags },
  ];
  if (outputs.probs !== undefined)
    tensors.push({ info: { name: "probs", dtype: "F32", shape: [n, C] }, data: outputs.probs });
  if (outputs.ownProbs !== undefined)
    tensors.push({ info: { name: "own_probs", dtype: "F32", shape: [n, C] }, data: outputs.ownProbs });
  if (outputs.features !== undefined) {
    const { data, dims } = outputs.features;
    tensors.push({ info: { name: "features", dtype: "F32", shape: [n, dims] }, data });
  }
  const json = JSON.stringify(meta);
  const data = Buffer.concat(
    tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  );
  const header = encodeSafetensorsHeader(
    tensors.map((t) => t.info),
    {
      [META_KEY]: json,
      [SUM_KEY]: checksum(
        json,
        tensors.map((t) => t.info),
        data,
      ),
    },
  );
  return new Uint8Array(Buffer.concat([header, data]));
}

/**
 * A shard's outputs from `encodeShard`'s bytes. INPUT_FORMAT names what is wrong (truncated,
 * not safetensors, not a shard, a field, a tensor's shape, a non-finite value); DIGEST_MISMATCH
 * when the bytes were altered. `name` says where the bytes came from, for the messages.
 */
export async function decodeShard(bytes: Uint8Array, name = "shard outputs"): Promise<ShardOutputs> {
  requireLittleEndian();
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (detail: string) => new AntidoteError("INPUT_FORMAT", `${name}: ${detail}`);
  const header = await readSafetensorsHeader(name, buf.length, (at, length) =>
    Promise.resolve(buf.subarray(at, at + length)),
  );
  const json = header.metadata[META_KEY];
  const sum = header.metadata[SUM_KEY];
  if (json === undefined || sum === undefined)
    throw fail(`not Antidote shard outputs (no "${META_KEY}" and "${SUM_KEY}" metadata).`);
  if (checksum(json, header.tensors, buf.subarray(header.dataStart)) !== sum)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${name}: the contents do not match their SHA-256 (${SUM_KEY}): the bytes were altered or damaged.`,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw fail(`bad ${META_KEY} metadata (${jsonSyntaxReason(e)}).`);
  }
  const parsed = metaSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw fail(`${META_KEY} field "${issue?.path.join(".") ?? ""}" ${issue?.message ?? "is invalid"}.`);
  }
  const meta = parsed.data;
  const n = meta.summary.samples;
  const [from, to] = shardRange(meta.plan.samples, meta.blockSize, meta.shard);
  if (meta.from !== from || to - from !== n)
    throw fail(
      `shard ${meta.shard.index} of ${meta.shard.count} of ${meta.plan.samples} samples in blocks of ` +
        `${meta.blockSize} covers positions ${from}..${to}, the file says ${meta.from}..${meta.from + n}.`,
    );

  const tensors = new Map(header.tensors.map((t) => [t.name, t]));
  const C = meta.plan.classes.length;
  const read = <T extends Float32Array | Float64Array>(
    tensor: string,
    dtype: "F32" | "F64",
    shape: number[],
    make: (length: number) => T,
  ): T => {
    const t = tensors.get(tensor);
    if (t === undefined) throw fail(`tensor ${tensor} is missing.`);
    tensors.delete(tensor);
    if (t.dtype !== dtype || t.shape.join(",") !== shape.join(","))
      throw fail(
        `tensor ${tensor} is ${t.dtype} [${t.shape.join(", ")}], expected ${dtype} [${shape.join(", ")}].`,
      );
    const out = make(shape.reduce((a, b) => a * b, 1));
    // A copy: the offset in `bytes` need not be aligned for a typed-array view.
    new Uint8Array(out.buffer).set(buf.subarray(t.offset, t.offset + out.byteLength));
    const bad = out.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0)
      throw fail(`tensor ${tensor} holds a non-finite value at row ${Math.floor(bad / (shape[1] ?? 1))}.`);
    return out;
  };
  const sampleTags = read("sample_tags", "F64", [n], (k) => new Float64Array(k));
  const badTag = sampleTags.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= 2 ** 48);
  if (badTag >= 0)
    throw fail(`tensor sample_tags holds ${sampleTags[badTag]} at row ${badTag}, not a sample tag.`);
  const outputs: ModelOutputs = { probsFrom: meta.probsFrom, summary: meta.summary, warnings: meta.warnings };
  if (C >= 2) {
    outputs.probs = read("probs", "F32", [n, C], (k) => new Float32Array(k));
    outputs.ownProbs = read("own_probs", "F32", [n, C], (k) => new Float32Array(k));
  }
  if (meta.featuresFrom !== null) {
    const dims = tensors.get("features")?.shape[1] ?? 0;
    if (dims < 1) throw fail("tensor features is missing or has no columns.");
    const data = read("features", "F32", [n, dims], (k) => new Float32Array(k));
    outputs.features = { data, dims, from: meta.featuresFrom };
  }
  if (tensors.size > 0) throw fail(`unexpected tensor ${[...tensors.keys()][0]}.`);
  return { shard: meta.shard, plan: meta.plan, blockSize: meta.blockSize, from, sampleTags, outputs };
}

// Over the metadata, the tensors' names, dtypes and shapes in data order (so that two tensors'
// names swapped in the header do not pass), and the data.
function checksum(json: string, tensors: readonly TensorInfo[], data: Uint8Array): string {
  const layout = tensors.map((t) => `${t.name}:${t.dtype}:${t.shape.join("x")}`).join(";");
  return createHash("sha256")
    .update(json)
    .update("\n")
    .update(layout)
    .update("\n")
    .update(data)
    .digest("hex");
}

// Tensors are written as the machine holds them; safetensors is little-endian.
function requireLittleEndian(): void {
  if (endianness() !== "LE")
    throw new AntidoteError("INTERNAL", "shard outputs are read and written on little-endian machines only.");
}
