// The K shards of a sharded scan joined into the model outputs of the whole dataset, in read
// order, for `scanDataset(dataset, { modelOutputs })`. Each shard holds a contiguous range of
// positions (scan/shard.ts), so the merge is a concatenation in shard order — once it is sure the
// shards form one whole: one plan (sample count, class list, block size), every shard of the
// split exactly once, each covering the range the plan gives it, and the same model run the same
// way (digest, input, output, penultimate layer, views). Model paths may differ: each worker has
// its own copy of the file, and the digest says whether they are the same model.
import { AntidoteError } from "../errors.js";
import type { ModelOutputs, ModelRunSummary } from "./model-run.js";
import type { PrecomputedModelOutputs } from "./precomputed.js";
import { shardRange, type ShardOutputs } from "./shard.js";

/** Join every shard of one split (in any order); USAGE naming the shard at fault otherwise. */
export function mergeShards(shards: readonly ShardOutputs[]): PrecomputedModelOutputs {
  const first = shards[0];
  if (first === undefined) throw new AntidoteError("USAGE", "no shard outputs to merge.");
  const K = first.shard.count;
  const name = (s: ShardOutputs) => `shard ${s.shard.index} of ${s.shard.count}`;
  const ordered = new Array<ShardOutputs | undefined>(K);
  for (const s of shards) {
    if (s.shard.count !== K)
      throw new AntidoteError(
        "USAGE",
        `${name(s)} is from a split into ${s.shard.count}, ${name(first)} from a split into ${K}: merge the shards of one split.`,
      );
    if (ordered[s.shard.index] !== undefined)
      throw new AntidoteError("USAGE", `${name(s)} is given twice; each shard is merged once.`);
    const why = difference(first, s);
    if (why !== null)
      throw new AntidoteError("USAGE", `${name(s)} does not belong with ${name(first)}: ${why}.`);
    const [from, to] = shardRange(s.plan.samples, s.blockSize, s.shard);
    const n = s.sampleTags.length;
    if (s.from !== from || n !== to - from || s.outputs.summary.samples !== n)
      throw new AntidoteError(
        "USAGE",
        `${name(s)} holds positions ${s.from}..${s.from + n} (${s.outputs.summary.samples} outputs), ` +
          `the plan gives it ${from}..${to}.`,
      );
    ordered[s.shard.index] = s;
  }
  const missing = [...ordered.keys()].filter((k) => ordered[k] === undefined);
  if (missing.length > 0)
    throw new AntidoteError(
      "USAGE",
      `${missing.length === 1 ? "shard" : "shards"} ${missing.join(", ")} of ${K} ${missing.length === 1 ? "is" : "are"} ` +
        `missing; the merge needs every shard of the split.`,
    );
  const all = ordered as ShardOutputs[];
  const outputs = all.map((s) => s.outputs);
  const n = first.plan.samples;
  const merged: PrecomputedModelOutputs = {
    probsFrom: first.outputs.probsFrom,
    summary: mergedSummary(outputs, n),
    warnings: [...new Set(outputs.flatMap((o) => o.warnings))],
    classes: [...first.plan.classes],
    sampleTags: concat(
      all.map((s) => s.sampleTags),
      Float64Array,
    ),
  };
  if (first.outputs.probs !== undefined) {
    merged.probs = concat(
      outputs.map((o) => o.probs as Float32Array),
      Float32Array,
    );
    merged.ownProbs = concat(
      outputs.map((o) => o.ownProbs as Float32Array),
      Float32Array,
    );
  }
  const features = first.outputs.features;
  if (features !== undefined)
    merged.features = {
      data: concat(
        outputs.map((o) => o.features?.data as Float32Array),
        Float32Array,
      ),
      dims: features.dims,
      from: features.from,
    };
  return merged;
}

// Why shard `s` cannot be merged with shard `first`, or null.
function difference(first: ShardOutputs, s: ShardOutputs): string | null {
  const a = first.outputs;
  const b = s.outputs;
  if (first.plan.samples !== s.plan.samples)
    return `it was planned for ${s.plan.samples} samples, not ${first.plan.samples}`;
  if (first.plan.classes.join("\n") !== s.plan.classes.join("\n"))
    return `its classes are [${s.plan.classes.join(", ")}], not [${first.plan.classes.join(", ")}]`;
  if (first.blockSize !== s.blockSize) return `its blocks are ${s.blockSize} samples, not ${first.blockSize}`;
  if (a.summary.digest !== b.summary.digest)
    return `it ran another model (sha256 ${b.summary.digest.slice(0, 12)}…, not ${a.summary.digest.slice(0, 12)}…)`;
  const run = (x: ModelRunSummary) =>
    JSON.stringify([x.input, x.output, x.outputIsProbabilities, x.penultimate, x.views]);
  if (run(a.summary) !== run(b.summary))
    return `it ran the model with other options (input, output, penultimate layer or views: ${run(b.summary)}, not ${run(a.summary)})`;
  if (
    (a.probs === undefined) !== (b.probs === undefined) ||
    (a.ownProbs === undefined) !== (b.ownProbs === undefined)
  )
    return "one has probabilities and the other not";
  if (a.features?.dims !== b.features?.dims)
    return `its features have ${b.features?.dims ?? 0} dimensions, not ${a.features?.dims ?? 0}`;
  return null;
}

// The merged run's summary: the first shard's model (paths differ between workers, the model
// does not), every sample, and the throughput of one worker over all of them.
function mergedSummary(outputs: readonly ModelOutputs[], n: number): ModelRunSummary {
  const first = (outputs[0] as ModelOutputs).summary;
  const seconds = outputs.reduce((a, o) => a + o.summary.samples / Math.max(o.summary.imagesPerSecond, 1), 0);
  return { ...first, samples: n, imagesPerSecond: Math.round(n / Math.max(seconds, 1e-6)) };
}

function concat<T extends Float32Array | Float64Array>(
  parts: readonly T[],
  make: new (length: number) => T,
): T {
  const out = new make(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
