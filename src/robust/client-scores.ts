// What a round of aggregation says about each client: its norm, its distance and cosine to the
// final aggregate, the rule's own verdict, and whether it looks Byzantine. The sums behind the
// norm, distance and cosine are accumulated by `clientSumsKernel` in the same pass that builds
// each aggregate block, so scoring costs no extra pass over the updates.
//
// Outliers use the modified z-score of Iglewicz & Hoaglin (1993), 0.6745·(x − median)/MAD,
// flagged above 3.5: on Gaussian scores that is ~2·10⁻⁴ false alarms per client and criterion,
// so an honest round with IID-like noise flags (almost) nobody, while a Byzantine update that sits
// far from the aggregate stands out however many honest clients there are. The spread has a
// floor (5% of the median), so in high dimension only differences of 17.5% or more count.
import { AntidoteError } from "../errors.js";
import type { BlockMemory, Scratch } from "./rules/engine.js";
import type { ClientScore } from "./types.js";

/** Modified z-score above which a distance or norm (below which a cosine) counts as an outlier. */
export const OUTLIER_Z = 3.5;
/** Fewer clients than this and a median/MAD says too little to call anyone an outlier. */
export const MIN_CLIENTS_FOR_OUTLIERS = 5;
/**
 * Smallest spread the z-score divides by: 5% of the median distance or norm, 0.05 in cosine. In
 * high dimension distances concentrate and the MAD shrinks like 1/√d, so without a floor any
 * systematic effect of a few percent looks like an outlier — e.g. an honest client that Bulyan
 * left out sits ~8% farther from an aggregate built from the others. With the floor a client must
 * also be more than 3.5 × 5% = 17.5% off the median (0.175 in cosine) to be flagged; the attacks
 * these checks are for (sign flips, boosting, noise) are far beyond that.
 */
export const RELATIVE_SPREAD_FLOOR = 0.05;
export const COSINE_SPREAD_FLOOR = 0.05;

/**
 * Engine kernel: task i adds client i's Σx², Σ(x − v)², Σx·v over the current block (v = `vector`)
 * to slot ints[4] of `sums` (3 numbers per client). Each client is one task, so no two threads
 * touch the same sums.
 */
export function clientSumsKernel(mem: BlockMemory, task: number, _scratch: Scratch): void {
  const len = mem.ints[0]!;
  const base = mem.ints[4]! * 3 * mem.n + 3 * task;
  const x = mem.block;
  const v = mem.vector;
  const row = task * mem.stride;
  let sq = 0;
  let dist = 0;
  let dot = 0;
  for (let k = 0; k < len; k++) {
    const a = x[row + k]!;
    const b = v[k]!;
    const e = a - b;
    sq += a * a;
    dist += e * e;
    dot += a * b;
  }
  const s = mem.sums;
  s[base] = s[base]! + sq;
  s[base + 1] = s[base + 1]! + dist;
  s[base + 2] = s[base + 2]! + dot;
}

/** Per-client sums of one slot, copied out of the engine: squared norm, squared distance, dot. */
export interface ClientSums {
  normSq: Float64Array;
  distanceSq: Float64Array;
  dot: Float64Array;
}

export function readClientSums(sums: Float64Array, n: number, slot: number): ClientSums {
  const out: ClientSums = {
    normSq: new Float64Array(n),
    distanceSq: new Float64Array(n),
    dot: new Float64Array(n),
  };
  const base = slot * 3 * n;
  for (let i = 0; i < n; i++) {
    out.normSq[i] = sums[base + 3 * i]!;
    out.distanceSq[i] = sums[base + 3 * i + 1]!;
    out.dot[i] = sums[base + 3 * i + 2]!;
  }
  return out;
}

/**
 * Updates are assumed finite: the loaders reject a client with NaN or ±Infinity before a rule
 * runs. A library caller can still pass one, and every rule computes squared norms anyway, so a
 * non-finite one (which only a non-finite coordinate produces from float32 inputs) fails here
 * instead of turning into a silent NaN aggregate.
 */
export function assertFiniteUpdates(normSq: ArrayLike<number>): void {
  for (let i = 0; i < normSq.length; i++)
    if (!Number.isFinite(normSq[i]))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `the update of client ${i} contains NaN or ±Infinity: reject it before aggregating (the update loaders do).`,
      );
}

/** The rule's own verdict on each client, before the outlier checks. */
export interface RuleVerdict {
  ruleScore: (number | null)[];
  selected: boolean[] | null;
  /** Reasons the rule itself flags a client (excluded by selection, FLTrust trust 0); empty when it does not. */
  reasons: string[][];
}

/** Final scores: norm, distance, cosine from the sums, the rule's verdict, and the outlier checks. */
export function clientScores(sums: ClientSums, aggregate: Float32Array, verdict: RuleVerdict): ClientScore[] {
  const n = sums.normSq.length;
  assertFiniteUpdates(sums.normSq);
  let aggSq = 0;
  for (let k = 0; k < aggregate.length; k++) aggSq += aggregate[k]! * aggregate[k]!;
  const aggNorm = Math.sqrt(aggSq);
  const norm = Array.from(sums.normSq, (s) => Math.sqrt(s));
  const distance = Array.from(sums.distanceSq, (s) => Math.sqrt(Math.max(0, s)));
  const cosine = norm.map((nm, i) => {
    const den = nm * aggNorm;
    return den > 0 ? Math.max(-1, Math.min(1, sums.dot[i]! / den)) : 0;
  });
  const reasons = verdict.reasons.map((r) => [...r]);
  const everyone = norm.map((_, i) => i);
  const relative = (values: number[]) => RELATIVE_SPREAD_FLOOR * Math.abs(median(values));
  flagOutliers(reasons, distance, everyone, relative(distance), 1, "distance to the aggregate", "distance");
  flagOutliers(reasons, norm, everyone, relative(norm), 1, "norm", "norm");
  // A zero update has no direction: its cosine (0 by convention) says nothing either way.
  if (aggNorm > 0)
    flagOutliers(
      reasons,
      cosine,
      everyone.filter((i) => norm[i]! > 0),
      COSINE_SPREAD_FLOOR,
      -1,
      "cosine with the aggregate",
      "cosine",
    );
  return Array.from({ length: n }, (_, client) => ({
    client,
    norm: norm[client]!,
    distance: distance[client]!,
    cosine: cosine[client]!,
    ruleScore: verdict.ruleScore[client] ?? null,
    selected: verdict.selected === null ? null : verdict.selected[client]!,
    flagged: reasons[client]!.length > 0,
    reasons: reasons[client]!,
  }));
}

/** Adds a reason for each of `among` whose value is an outlier above (sign 1) or below (−1) the others. */
function flagOutliers(
  reasons: string[][],
  values: readonly number[],
  among: readonly number[],
  minSpread: number,
  sign: 1 | -1,
  what: string,
  noun: string,
): void {
  if (among.length < MIN_CLIENTS_FOR_OUTLIERS) return;
  const vs = among.map((i) => values[i]!);
  const med = median(vs);
  modifiedZ(vs, minSpread).forEach((z, q) => {
    const i = among[q]!;
    if (sign * z > OUTLIER_Z)
      reasons[i]!.push(
        `${what} ${fmt(values[i]!)} is far ${sign > 0 ? "above" : "below"} the median ${noun} ${fmt(med)}: ` +
          `modified z-score ${z.toFixed(1)} (flagged beyond ±${OUTLIER_Z})`,
      );
  });
}

/** A verdict with no rule score, no selection and no rule-based flags. */
export function emptyVerdict(n: number): RuleVerdict {
  return {
    ruleScore: new Array<number | null>(n).fill(null),
    selected: null,
    reasons: Array.from({ length: n }, () => []),
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * Modified z-scores 0.6745·(x − median)/MAD. When more than half the values are equal the MAD
 * is 0 and Iglewicz & Hoaglin's fallback applies: (x − median)/(1.2533·mean absolute deviation).
 * The spread is never taken below `minSpread` (see RELATIVE_SPREAD_FLOOR).
 */
export function modifiedZ(values: readonly number[], minSpread = 0): number[] {
  const med = median(values);
  const dev = values.map((v) => Math.abs(v - med));
  const mad = median(dev);
  let scale = mad / 0.6745;
  if (!(scale > 0)) scale = (1.253314 * dev.reduce((a, b) => a + b, 0)) / Math.max(1, dev.length);
  scale = Math.max(scale, minSpread);
  if (!(scale > 0)) return values.map(() => 0);
  return values.map((v) => (v - med) / scale);
}

/** Three significant digits, exponent form for very large or small magnitudes. */
export function fmt(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : String(Number(x.toPrecision(3)));
}
