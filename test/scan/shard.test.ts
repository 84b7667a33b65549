import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AttackSpec } from "../../src/attack/index.js";
import type { Dataset } from "../../src/data/dataset.js";
import { memoryDataset } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { scanDataset, type ScanReport } from "../../src/scan/scan.js";
import { decodeShard, encodeShard } from "../../src/scan/shard-file.js";
import { mergeShards } from "../../src/scan/shard-merge.js";
import { scanShard, shardRange, type ShardOutputs } from "../../src/scan/shard.js";
import type { AntidoteErrorCode } from "../../src/errors.js";
import { encodeSafetensorsHeader } from "../../src/robust/safetensors.js";
import { antidoteFailure, expectUsage } from "../helpers/errors.js";
import { poisonedFashion, userCnn } from "../helpers/fm-user-model.js";
import { FASHION_MNIST_CLASSES, hasFashionMnist } from "../helpers/real-data.js";

// The sharded scan: 3,000 Fashion-MNIST images with a 1% BadNets patch, the CNN bench:detect's
// recipe trains on them as the user's model, run as 2 and as 3 shards whose outputs go through
// bytes (encodeShard / decodeShard), are merged, and scanned. The merged outputs must be the
// single-process run's bit for bit — shards are whole inference batches, so ONNX Runtime sees the
// same batches — and so the scan's decisions the same: flagged set, each detector's findings.

const N = 3000;
const PATCH: AttackSpec = { kind: "patch", target: "Bag", rate: 0.01, seed: 1 };
const info = { classes: [...FASHION_MNIST_CLASSES] };
let dir: string;
let samples: Sample[];
let data: Dataset;
let model: string;
let single: ScanReport;
let whole: ShardOutputs;
const splits = new Map<number, ShardOutputs[]>();

const flaggedIds = (r: ScanReport) => r.table.ids.filter((_, i) => r.ensemble.flagged[i] === 1);
const findingCounts = (r: ScanReport) => r.results.map((x) => [x.detector, x.findings.length]);
const sameBits = (a: Float32Array | Float64Array | undefined, b: Float32Array | Float64Array | undefined) =>
  a !== undefined &&
  b !== undefined &&
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

// `p` rejects with an AntidoteError of `code` whose message matches `message`.
async function rejects(p: Promise<unknown>, code: AntidoteErrorCode, message: RegExp): Promise<void> {
  const failure = await antidoteFailure(p);
  expect(failure.code).toBe(code);
  expect(failure.message).toMatch(message);
}

async function shardsOf(count: number): Promise<ShardOutputs[]> {
  const out: ShardOutputs[] = [];
  for (let index = 0; index < count; index++)
    out.push(await decodeShard(encodeShard(await scanShard(data, { model, shard: { index, count } }))));
  return out;
}

describe.runIf(hasFashionMnist())("sharded scan with the user's model, 3k Fashion-MNIST", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-shard-"));
    samples = (await poisonedFashion(N, PATCH)).samples;
    data = memoryDataset(samples, info);
    model = await userCnn(N, PATCH, dir, "patch");
    single = await scanDataset(data, { model, seed: 0 });
    whole = await scanShard(data, { model, shard: { index: 0, count: 1 } });
    for (const count of [2, 3]) splits.set(count, await shardsOf(count));
  }, 240_000); // a cold fixture cache trains the CNN (≈ 20 s); then one scan and six shards
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("shards are contiguous runs of whole batches covering every position once", () => {
    expect(shardRange(3000, 1024, { index: 0, count: 2 })).toEqual([0, 1024]);
    expect(shardRange(3000, 1024, { index: 1, count: 2 })).toEqual([1024, 3000]);
    expect(shardRange(3000, 1024, { index: 3, count: 4 })).toEqual([2048, 3000]);
    expect(shardRange(100, 1024, { index: 0, count: 2 })).toEqual([0, 0]); // more shards than blocks
    expect(shardRange(100, 1024, { index: 1, count: 2 })).toEqual([0, 100]);
    const three = splits.get(3)!;
    expect(three.map((s) => [s.from, s.sampleTags.length])).toEqual([
      [0, 1024],
      [1024, 1024],
      [2048, 952],
    ]);
  });

  it.each([2, 3])("%i shards merged give the single-process outputs bit for bit", (count) => {
    const merged = mergeShards(splits.get(count)!.slice().reverse()); // any order
    expect(merged.summary.samples).toBe(N);
    expect(merged.summary.digest).toBe(whole.outputs.summary.digest);
    expect(sameBits(merged.probs, whole.outputs.probs)).toBe(true);
    expect(sameBits(merged.ownProbs, whole.outputs.ownProbs)).toBe(true);
    expect(sameBits(merged.features?.data, whole.outputs.features?.data)).toBe(true);
    expect(sameBits(merged.sampleTags, whole.sampleTags)).toBe(true);
    // …and the features the single-process scan's detectors read.
    expect(sameBits(merged.features?.data, single.table.features)).toBe(true);
  });

  it.each([2, 3])(
    "a scan of %i merged shards makes the single-process scan's decisions",
    async (count) => {
      const sharded = await scanDataset(data, { modelOutputs: mergeShards(splits.get(count)!), seed: 0 });
      expect(sharded.representation.probabilities).toEqual(single.representation.probabilities);
      expect(sameBits(sharded.table.probs, single.table.probs)).toBe(true);
      expect(findingCounts(sharded)).toEqual(findingCounts(single));
      expect(sharded.skipped).toEqual(single.skipped);
      expect(flaggedIds(sharded)).toEqual(flaggedIds(single));
      // The patch is found at all (a scan that flagged nothing would agree trivially).
      expect(flaggedIds(single).length).toBeGreaterThanOrEqual(20);
    },
    60_000,
  );

  it("mergeShards refuses a missing shard, a duplicated one, and one from another split or model", () => {
    const [a, b, c] = splits.get(3)!;
    const [x, y] = splits.get(2)!;
    expectUsage(() => mergeShards([a!, c!]), /shard 1 of 3 is missing/);
    expectUsage(() => mergeShards([a!, b!, b!, c!]), /shard 1 of 3 is given twice/);
    expectUsage(() => mergeShards([a!, b!, y!]), /split into 2.*split into 3/);
    expectUsage(() => mergeShards([]), /no shard outputs/);
    const other = {
      ...y!,
      outputs: { ...y!.outputs, summary: { ...y!.outputs.summary, digest: "f".repeat(64) } },
    };
    expectUsage(
      () => mergeShards([x!, other]),
      /shard 1 of 2 does not belong with shard 0 of 2: it ran another model/,
    );
    const otherClasses = { ...y!, plan: { ...y!.plan, classes: [...y!.plan.classes].reverse() } };
    expectUsage(() => mergeShards([x!, otherClasses]), /its classes are/);
  });

  it("decodeShard refuses truncated, altered and foreign bytes", async () => {
    const bytes = encodeShard(splits.get(2)![1]!);
    await rejects(
      decodeShard(bytes.subarray(0, bytes.length - 100), "s1"),
      "INPUT_FORMAT",
      /^s1: tensor features: data_offsets .* are out of bounds/,
    );
    await rejects(decodeShard(bytes.subarray(0, 5), "s1"), "INPUT_FORMAT", /^s1: truncated/);
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 7]! ^= 0x01; // one bit of one float: still a finite float
    await rejects(decodeShard(flipped, "s1"), "DIGEST_MISMATCH", /altered or damaged/);
    const garbled = Uint8Array.from(bytes);
    garbled[8] = 0x78; // the JSON header's opening brace
    await rejects(decodeShard(garbled, "s1"), "INPUT_FORMAT", /bad JSON header/);
    const renamed = Uint8Array.from(bytes);
    renamed[12] = 0x7b; // "__metadata__" → "__{etadata__": still JSON, no longer a shard
    await rejects(decodeShard(renamed, "s1"), "INPUT_FORMAT", /tensor __\{etadata__: field dtype/);
    const foreign = Buffer.concat([
      encodeSafetensorsHeader([{ name: "w", dtype: "F32", shape: [2] }]),
      Buffer.alloc(8),
    ]);
    await rejects(decodeShard(foreign, "w.safetensors"), "INPUT_FORMAT", /not Antidote shard outputs/);
  });

  it("the scan refuses merged outputs for other samples, and both a model and outputs", async () => {
    const merged = mergeShards(splits.get(2)!);
    const swapped = samples.slice();
    [swapped[10], swapped[11]] = [swapped[11]!, swapped[10]!];
    await rejects(
      scanDataset(memoryDataset(swapped, info), { modelOutputs: merged }),
      "DIGEST_MISMATCH",
      /row 10 /,
    );
    const shorter = memoryDataset(samples.slice(0, N - 1), info);
    await rejects(scanDataset(shorter, { modelOutputs: merged }), "DIGEST_MISMATCH", /3000 samples/);
    await rejects(scanDataset(data, { model, modelOutputs: merged }), "USAGE", /not both/);
  });

  it("scanShard refuses to run without a model, a bad shard index, and a dataset of another length", async () => {
    await rejects(
      scanShard(data, { shard: { index: 0, count: 2 } } as never),
      "USAGE",
      /needs the user's model/,
    );
    await rejects(
      scanShard(data, { model, shard: { index: 2, count: 2 } }),
      "USAGE",
      /index must be below count/,
    );
    const planned = { model, shard: { index: 1, count: 2 }, samples: N - 24 };
    await rejects(scanShard(data, planned), "DIGEST_MISMATCH", /planned for 2976/);
  });
});
