// One shard of a sharded scan (issue 23): the part of a scan with the user's model that costs
// compute and input memory — decoding images and running them through ONNX Runtime — split over
// workers. Shard k of K runs the model, exactly as the single-process scan does (ModelRun, the same
// batches), on one contiguous range of the dataset's read order and returns the outputs for it;
// `mergeShards` (shard-merge.ts) joins the K results in read order, and `scanDataset(…,
// { modelOutputs })` runs every detector on them as on its own model's outputs.
//
// Ranges are contiguous blocks of whole inference batches (block = the ModelRun's batch size, 1,024
// 28×28 images): so every shard feeds ONNX Runtime exactly the batches the single-process scan
// would, and its outputs are the single-process ones whatever the runtime does with batch
// composition (measured: bit-identical on this machine's CPU either way, see README); a shard stops
// reading at the end of its range; and merging is concatenation in shard order. The price is that
// every shard must know the dataset's sample count (and class list) before it starts: from the
// dataset's header when the format states them (IDX, Parquet, ImageFolder), from the caller
// (`samples`, `classes`: a job that fans shards out plans once with `planShards`), else from a
// metadata pass of its own.
//
// The proxy representation (no model) does not shard: its k-fold proxy models train on the whole
// dataset, so there is nothing per-shard to compute; scanShard refuses to run without a model.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset } from "../data/dataset.js";
import type { Sample } from "../data/sample.js";
import { parseOptions } from "../features/options.js";
import { ModelRun, type ModelOutputs } from "./model-run.js";
import { sampleTag } from "./precomputed.js";
import { checkModelFile, modelRunOptions } from "./representation.js";
import { scanOptionsSchema } from "./scan.js";

export interface ShardSpec {
  /** 0-based. */
  index: number;
  count: number;
}

/** What every shard of one job must agree on before it starts. */
export interface ShardPlan {
  /** Samples the dataset yields, in read order. */
  samples: number;
  /** The scan's class list: the probabilities' column order (DatasetInfo.classes, else the sorted labels). */
  classes: string[];
}

/** A shard's result: the model's outputs for the positions [from, from + samples). */
export interface ShardOutputs {
  shard: ShardSpec;
  plan: ShardPlan;
  /** Samples per block (the model's inference batch); ranges are whole blocks. */
  blockSize: number;
  /** The first position of the shard's range in read order. */
  from: number;
  /** sampleTag(id, digest) of each sample in the range, in order. */
  sampleTags: Float64Array;
  /** The model's outputs for the range (summary.samples of them), columns in the plan's class order. */
  outputs: ModelOutputs;
}

export const shardOptionsSchema = scanOptionsSchema
  .pick({ inputShape: true, output: true, shiftedViews: true, batchSize: true })
  .extend({
    /** The user's ONNX image classifier (a sharded scan needs one: see the module comment). */
    model: z.string().min(1),
    shard: z
      .object({ index: z.number().int().min(0), count: z.number().int().min(1).max(4096) })
      .refine((s) => s.index < s.count, { message: "index must be below count" }),
    /** ONNX Runtime's threads for this shard (ModelRunOptions.threads; default 2). */
    threads: z.number().int().min(1).max(256).optional(),
    /** The plan's sample count, when the dataset's header does not state it. */
    samples: z.number().int().min(0).optional(),
    /** The plan's class list, when the dataset's header does not state it. */
    classes: z.array(z.string()).optional(),
  });

export interface ShardOptions extends z.input<typeof shardOptionsSchema> {
  /** Progress of the shard's inference: samples run of the range's. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Run the user's model over shard `shard.index` of `shard.count` of the dataset. Reads the
 * dataset up to the end of the shard's range, holding one batch of samples at a time; fails with
 * USAGE without a model, DIGEST_MISMATCH when the dataset does not yield the planned count.
 */
export async function scanShard(dataset: Dataset, options: ShardOptions): Promise<ShardOutputs> {
  if ((options as Partial<ShardOptions>).model === undefined)
    throw new AntidoteError(
      "USAGE",
      "a sharded scan needs the user's model: without one the scan trains its proxy models (k-fold) on the " +
        "whole dataset, which does not split into shards; scan it in one process instead.",
    );
  const opts = parseOptions(shardOptionsSchema, options, "shard options");
  checkModelFile(opts.model);
  const plan = await planShards(dataset, opts);
  let range: [number, number] = [0, 0];
  const run = await ModelRun.open(opts.model, {
    ...modelRunOptions(opts),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    ...(options.onProgress !== undefined
      ? { onProgress: (done: number) => options.onProgress?.(done, range[1] - range[0]) }
      : {}),
    // Matched where the single-process scan matches them (at open only when the header names
    // them), so that the columns come out of the same arithmetic.
    ...(dataset.info.classes !== undefined ? { classes: dataset.info.classes } : {}),
  });
  try {
    range = shardRange(plan.samples, run.batchSize, opts.shard);
    const [from, to] = range;
    const tags = new Float64Array(to - from);
    let batch: Sample[] = [];
    let at = 0;
    let beyond = false;
    // An empty range (more shards than blocks) reads nothing; the shard that ends the data checks its length.
    if (to > from)
      for await (const s of dataset.samples()) {
        if (at === to) {
          // One sample past the plan: the data is longer than planned.
          beyond = to === plan.samples;
          break;
        }
        if (at >= from) {
          if (s.image === undefined)
            throw new AntidoteError(
              "USAGE",
              `model ${opts.model}: sample "${s.id}" has no image; a model runs over image datasets only.`,
            );
          tags[at - from] = sampleTag(s.id, s.digest);
          batch.push(s);
          if (batch.length >= run.batchSize) {
            await run.run(batch);
            batch = [];
          }
        }
        at++;
      }
    if ((to > from && at < to) || beyond)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${dataset.info.path}: the shards were planned for ${plan.samples} samples, but the dataset yields ` +
          `${beyond ? "more" : at}; plan again (planShards) and rerun every shard.`,
      );
    if (batch.length > 0) await run.run(batch);
    const outputs = await run.finish(plan.classes);
    return { shard: opts.shard, plan, blockSize: run.batchSize, from, sampleTags: tags, outputs };
  } finally {
    await run.close();
  }
}

/**
 * The sample count and class list the shards of one job share: from the dataset's header, or the
 * caller's, and else from one pass over the samples (labels only; nothing is decoded twice by the
 * caller if it hands the result to every shard).
 */
export async function planShards(
  dataset: Dataset,
  given: { samples?: number | undefined; classes?: string[] | undefined } = {},
): Promise<ShardPlan> {
  const samples = given.samples ?? dataset.info.count;
  const classes = given.classes ?? dataset.info.classes;
  if (samples !== undefined && classes !== undefined) return { samples, classes: [...classes] };
  let n = 0;
  const seen = new Set<string>();
  for await (const s of dataset.samples()) {
    n++;
    if (s.label !== null) seen.add(s.label);
    for (const a of s.annotations) seen.add(a.label);
  }
  // The ScanTableBuilder's order (detect/table.ts); the scan checks the two agree.
  const sorted = [...seen].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return { samples: samples ?? n, classes: classes !== undefined ? [...classes] : sorted };
}

/**
 * Shard `index` of `count`'s positions [from, to): the ⌈samples / blockSize⌉ blocks split into
 * `count` contiguous runs whose sizes differ by at most one block.
 */
export function shardRange(samples: number, blockSize: number, shard: ShardSpec): [number, number] {
  const blocks = Math.ceil(samples / blockSize);
  const first = Math.floor((shard.index * blocks) / shard.count);
  const last = Math.floor(((shard.index + 1) * blocks) / shard.count);
  return [Math.min(first * blockSize, samples), Math.min(last * blockSize, samples)];
}
