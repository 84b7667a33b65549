// What a model's outputs look like on clean data, kept as the monitors' in-control reference: the
// predicted-label mix, the confusion matrix (true → predicted) where labels are known, and the
// distributions of the per-record entropy and confidence. Taken once, from the model's outputs on
// a clean validation set, and stored as a JSON file beside the model (or as a ledger artefact).
//
// Everything is kept as COUNTS, not rates, because the monitors do not trust a rate more than the
// data behind it: they test against its upper confidence limit (sequential.ts), which is wide for a
// confusion pair seen 0 times in 200 and narrow for a class seen 2,000 times. Entropy (bits) and
// confidence are kept as fine histograms too, so a drift chart can use the statistic's actual
// cumulant generating function instead of a Gaussian's, which misstates a skewed entropy.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { histogramAdd, type Histogram } from "./sequential.js";

export const MONITOR_BASELINE_SCHEMA = "antidote.monitor-baseline";
export const MONITOR_BASELINE_VERSION = 1;
/** Bins of the entropy and confidence histograms (bin width costs a drift chart ≈ λ·width/2 per record). */
export const BASELINE_HISTOGRAM_BINS = 256;

const count = z.number().int().min(0);
const statSchema = z
  .object({
    mean: z.number().finite(),
    sd: z.number().finite().min(0),
    histogram: z.object({ lo: z.number().finite(), hi: z.number().finite(), counts: z.array(count).min(1) }),
  })
  .strict();

export const monitorBaselineSchema = z
  .object({
    schema: z.literal(MONITOR_BASELINE_SCHEMA),
    version: z.literal(MONITOR_BASELINE_VERSION),
    /** The model's class names in output order. */
    classes: z.array(z.string().min(1)).min(2),
    /** Records (validation inputs) the baseline was taken on. */
    n: z.number().int().min(1),
    /** Records predicted as each class. */
    predicted: z.array(count),
    /** confusion[true][predicted], over the labeled records; null without labels. */
    confusion: z.array(z.array(count)).nullable(),
    /** Records with a label (the confusion matrix's total). */
    labeled: count,
    /** Shannon entropy of the probabilities, bits (0 … log2 K). */
    entropy: statSchema,
    /** The largest probability. */
    confidence: statSchema,
    /** Confidence of the records predicted as each class. */
    perClass: z.array(
      z.object({ n: count, mean: z.number().finite(), sd: z.number().finite().min(0) }).strict(),
    ),
  })
  .strict()
  .superRefine((b, ctx) => {
    const K = b.classes.length;
    const bad = (path: string, message: string): void => {
      ctx.addIssue({ code: "custom", path: [path], message });
    };
    if (b.predicted.length !== K) bad("predicted", `must have one count per class (${K})`);
    if (b.perClass.length !== K) bad("perClass", `must have one entry per class (${K})`);
    if (b.predicted.reduce((a, c) => a + c, 0) !== b.n) bad("predicted", "must sum to n");
    if (b.confusion !== null) {
      if (b.confusion.length !== K || b.confusion.some((row) => row.length !== K))
        bad("confusion", `must be ${K}×${K}`);
      else if (b.confusion.flat().reduce((a, c) => a + c, 0) !== b.labeled)
        bad("confusion", "must sum to labeled");
    }
  });
export type MonitorBaseline = z.output<typeof monitorBaselineSchema>;
export type BaselineStat = MonitorBaseline["entropy"];

/**
 * The baseline of a model from its probabilities on clean validation inputs (n × K, row-major) and,
 * when known, their true class indices (−1 for an unlabeled record).
 */
export function monitorBaseline(
  probs: Float32Array,
  n: number,
  classes: readonly string[],
  labels?: Int32Array,
): MonitorBaseline {
  const K = classes.length;
  if (K < 2) throw new AntidoteError("USAGE", "monitor baseline: a model needs at least 2 classes.");
  if (!(n >= 1) || probs.length !== n * K)
    throw new AntidoteError(
      "USAGE",
      `monitor baseline: ${probs.length} probabilities are not ${n} records × ${K} classes.`,
    );
  if (labels !== undefined && labels.length !== n)
    throw new AntidoteError("USAGE", `monitor baseline: ${labels.length} labels for ${n} records.`);
  const predicted = new Array<number>(K).fill(0);
  const confusion =
    labels === undefined ? null : Array.from({ length: K }, () => new Array<number>(K).fill(0));
  let labeled = 0;
  const entropy = new Float64Array(n);
  const confidence = new Float64Array(n);
  const byClass: number[][] = Array.from({ length: K }, () => []);
  for (let i = 0; i < n; i++) {
    const { argmax, max, entropyBits } = recordSummary(probs, i * K, K);
    if (!Number.isFinite(entropyBits))
      throw new AntidoteError("USAGE", `monitor baseline: record ${i} has non-finite probabilities.`);
    predicted[argmax] = (predicted[argmax] as number) + 1;
    entropy[i] = entropyBits;
    confidence[i] = max;
    (byClass[argmax] as number[]).push(max);
    const y = labels?.[i] ?? -1;
    if (confusion !== null && y >= 0) {
      if (y >= K)
        throw new AntidoteError("USAGE", `monitor baseline: label ${y} of record ${i} is not a class.`);
      const row = confusion[y] as number[];
      row[argmax] = (row[argmax] as number) + 1;
      labeled++;
    }
  }
  return {
    schema: MONITOR_BASELINE_SCHEMA,
    version: MONITOR_BASELINE_VERSION,
    classes: [...classes],
    n,
    predicted,
    confusion,
    labeled,
    entropy: statOf(entropy, 0, Math.log2(K)),
    confidence: statOf(confidence, 0, 1),
    perClass: byClass.map((v) => {
      const { mean, sd } = meanSd(v);
      return { n: v.length, mean, sd };
    }),
  };
}

/** Read a baseline back (from a JSON file or artefact named `label` in messages). */
export function parseMonitorBaseline(json: unknown, label: string): MonitorBaseline {
  const r = monitorBaselineSchema.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${label}: not a monitor baseline: "${issue?.path.join(".") ?? ""}" ${issue?.message ?? "is invalid"}.`,
  );
}

/** Argmax, largest probability and Shannon entropy (bits) of one record's probabilities. */
export function recordSummary(
  probs: ArrayLike<number>,
  at: number,
  K: number,
): { argmax: number; max: number; entropyBits: number } {
  let argmax = 0;
  let max = -Infinity;
  let h = 0;
  for (let k = 0; k < K; k++) {
    const p = probs[at + k] as number;
    if (p > max) {
      max = p;
      argmax = k;
    }
    if (p > 0) h -= p * Math.log2(p);
  }
  return { argmax, max, entropyBits: Math.max(0, h) };
}

function statOf(values: Float64Array, lo: number, hi: number): BaselineStat {
  const histogram: Histogram = { lo, hi, counts: new Array<number>(BASELINE_HISTOGRAM_BINS).fill(0) };
  for (const v of values) histogramAdd(histogram, v);
  return { ...meanSd(values), histogram };
}

function meanSd(values: ArrayLike<number>): { mean: number; sd: number } {
  const n = values.length;
  if (n === 0) return { mean: 0, sd: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i] as number;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ((values[i] as number) - mean) ** 2;
  return { mean, sd: n > 1 ? Math.sqrt(ss / (n - 1)) : 0 };
}
