// Activation clustering (Chen et al., "Detecting Backdoor Attacks on Deep Neural Networks by
// Activation Clustering", SafeAI 2019): inside the target class of a dirty-label backdoor the
// penultimate activations fall into two groups — the class's own samples, and the triggered
// samples of other classes that the model maps there for a different reason. Per class the
// activations are reduced to `dims` dimensions (the paper uses ICA; principal components here,
// which are deterministic) and split by 2-means.
//
// Every class splits in two, and many have two natural groups (sandals with and without straps),
// which is why a fixed rule — the paper's "smaller cluster under 35%", or a fixed silhouette —
// flags a large share of a clean dataset. The decision here is calibrated on the dataset itself:
// the classes are each other's null distribution. A class is suspect only when its split is far
// cleaner than the other classes' (its silhouette's robust z against theirs, median and MAD, is
// at least `zLimit`) and its smaller cluster is a minority (≤ `maxShare`). That assumes most
// classes are not poisoned, and needs `minClasses` testable classes to say anything.
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import {
  argmax,
  gatherRows,
  median,
  medianAbsoluteDeviation,
  principalComponents,
  project,
  type Matrix,
} from "../math/linalg.js";
import { Rng } from "../math/rng.js";
import {
  classFeatures,
  featureAppliesTo,
  round,
  sampleFinding,
  testableClasses,
} from "./spectral-signature.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";

// 1.2.0: a suspect minority is flagged from the valley in its density on, not from the midpoint.
export const ACTIVATION_CLUSTERING_VERSION = "1.2.0";

export const activationClusteringOptionsSchema = z.object({
  /** Dimensions each class is reduced to before clustering (the paper's 10). */
  dims: z.number().int().min(1).max(256).default(10),
  /** The smaller cluster of a suspect class holds at most this share of it (the paper's relative size 0.35). */
  maxShare: z.number().gt(0).lte(0.5).default(0.35),
  /** Robust z of a class's silhouette against the other classes' from which it is suspect. */
  zLimit: z.number().positive().default(3.5),
  /**
   * Floor of the spread the z divides by (silhouette units): classes of one dataset can agree
   * so closely that a tiny MAD would make any difference "significant".
   */
  minSpread: z.number().positive().default(0.02),
  /** Fewer testable classes than this and there is no null to compare with: nothing is flagged. */
  minClasses: z.number().int().min(3).default(5),
  /** 2-means restarts (k-means++ seeding); the split with the lowest inertia is kept. */
  restarts: z.number().int().min(1).max(100).default(4),
  /** The silhouette is averaged over at most this many samples of a class (seeded), each against all. */
  silhouetteSample: z.number().int().min(50).default(2000),
  minClassSize: z.number().int().min(3).default(30),
  seed: z.union([z.number().int(), z.string()]).default(0),
});
export type ActivationClusteringOptions = z.input<typeof activationClusteringOptionsSchema>;

const NAME = "activation-clustering";

export interface ClassSplit {
  class: number;
  members: Int32Array;
  /** 1 for members of the smaller cluster. */
  minority: Uint8Array;
  share: number;
  silhouette: number;
  /** Per member: distance to the larger cluster's centre over distance to the smaller one's. */
  distanceRatio: Float64Array;
  /** Per member: position along the line between the centres, 0 at the larger's, 1 at the smaller's. */
  axisPosition: Float64Array;
}

export const activationClustering: Detector<ActivationClusteringOptions> = {
  name: NAME,
  version: ACTIVATION_CLUSTERING_VERSION,
  appliesTo: featureAppliesTo,
  run(table, options = {}) {
    const opts = parseOptions(activationClusteringOptionsSchema, options, `${NAME} options`);
    const { splits, warnings } = classSplits(table, opts);
    return decide(table, splits, opts, warnings);
  },
};

/**
 * Each testable class's features reduced to `dims` principal components and split by 2-means —
 * before any decision about which split, if any, is poison (the bench applies ART's fixed rule to
 * the same splits, for comparison).
 */
export function classSplits(
  table: ScanTable,
  options: ActivationClusteringOptions = {},
): { splits: ClassSplit[]; warnings: string[] } {
  const opts = parseOptions(activationClusteringOptionsSchema, options, `${NAME} options`);
  const cf = classFeatures(table, NAME);
  const k = Math.min(opts.dims, cf.dims);
  const { testable, warnings } = testableClasses(table, cf, opts.minClassSize, k, NAME);
  const splits = testable.map((c): ClassSplit => {
    const members = cf.members[c] as Int32Array;
    const x = gatherRows(cf.features, cf.dims, members);
    const pca = principalComponents(x, k, { seed: `${NAME}/${c}` });
    const reduced = project(x, pca.components, pca.mean);
    const rng = new Rng(`${String(opts.seed)}/${NAME}/${c}`);
    const { assignment, centres } = twoMeans(reduced, opts.restarts, rng);
    let ones = 0;
    for (const a of assignment) ones += a;
    const minorityLabel = ones <= assignment.length - ones ? 1 : 0;
    const minority = assignment.map((a) => (a === minorityLabel ? 1 : 0));
    const distanceRatio = new Float64Array(members.length);
    const axisPosition = new Float64Array(members.length);
    const major = centres[1 - minorityLabel] as Float64Array;
    const axis = Float64Array.from(
      centres[minorityLabel] as Float64Array,
      (v, d) => v - (major[d] as number),
    );
    const axisLength2 = axis.reduce((a, v) => a + v * v, 0);
    for (let r = 0; r < members.length; r++) {
      let dot = 0;
      for (let d = 0; d < reduced.cols; d++)
        dot += ((reduced.data[r * reduced.cols + d] as number) - (major[d] as number)) * (axis[d] as number);
      axisPosition[r] = axisLength2 > 0 ? dot / axisLength2 : 0;
      const toMinor = Math.sqrt(squaredDistance(reduced, r, centres[minorityLabel] as Float64Array));
      const toMajor = Math.sqrt(squaredDistance(reduced, r, centres[1 - minorityLabel] as Float64Array));
      distanceRatio[r] = toMajor / Math.max(toMinor, 1e-12);
    }
    return {
      class: c,
      members,
      minority,
      share: Math.min(ones, assignment.length - ones) / assignment.length,
      silhouette: silhouette(reduced, assignment, opts.silhouetteSample, rng),
      distanceRatio,
      axisPosition,
    };
  });
  return { splits, warnings };
}

// Bins of the members' positions between the two centres, and the moving average smoothing them.
const AXIS_BINS = 20;
const AXIS_SMOOTHING = 1;

/**
 * Where along the line between the centres (0 the larger cluster's, 1 the smaller's) the members'
 * density is lowest, if that is past the midpoint. 2-means splits a class at the midpoint — the
 * perpendicular bisector — so a tight minority of poison next to a broad class takes in the
 * class's own tail on its side of the midpoint: on all 60k Fashion-MNIST images with a 4×4
 * checkerboard relabeled Trouser at 0.5 % (the CNN trained on them) the minority held the 300
 * poisoned images and 93 real trousers. Members before the valley in the density are not
 * flagged; without a valley past the midpoint the cut is the midpoint itself.
 */
export function valleyCut(positions: Float64Array): number {
  const counts = new Float64Array(AXIS_BINS);
  for (const t of positions) {
    if (!(t >= 0 && t < 1)) continue;
    const b = Math.floor(t * AXIS_BINS);
    counts[b] = (counts[b] as number) + 1;
  }
  const smoothed = counts.map((_, b) => {
    let sum = 0;
    let width = 0;
    for (let d = -AXIS_SMOOTHING; d <= AXIS_SMOOTHING; d++) {
      const v = counts[b + d];
      if (v === undefined) continue;
      sum += v;
      width++;
    }
    return sum / width;
  });
  // The valley between the midpoint and the minority's centre: the lowest smoothed bin there.
  let best = -1;
  for (let b = AXIS_BINS / 2; b < AXIS_BINS; b++)
    if (best < 0 || (smoothed[b] as number) < (smoothed[best] as number)) best = b;
  return best < 0 ? 0.5 : Math.max(0.5, (best + 0.5) / AXIS_BINS);
}

function decide(
  table: ScanTable,
  splits: readonly ClassSplit[],
  opts: z.output<typeof activationClusteringOptionsSchema>,
  warnings: string[],
): DetectorResult {
  const n = table.labels.length;
  const scores = new Float64Array(n).fill(NaN);
  const flagged = new Uint8Array(n);
  const findings: Finding[] = [];
  const silhouettes = splits.map((s) => s.silhouette);
  const centre = median(silhouettes);
  const spread = Math.max(1.4826 * medianAbsoluteDeviation(silhouettes, centre), opts.minSpread);
  const calibrated = splits.length >= opts.minClasses;
  if (!calibrated)
    warnings.push(
      `${NAME}: only ${splits.length} classes could be tested; at least ${opts.minClasses} are needed to ` +
        "calibrate the silhouette against the other classes, so no class is flagged",
    );
  const rows = splits.map((s) => {
    const zScore = (s.silhouette - centre) / spread;
    const suspect = calibrated && zScore >= opts.zLimit && s.share <= opts.maxShare;
    const name = table.classes[s.class] as string;
    const predictedElsewhere = minorityPredictedElsewhere(table, s);
    // A backdoor the model learned is predicted as its label: that is what the split shows. A
    // minority the class probabilities mostly put in other classes is label noise instead —
    // images of other classes carrying this label — and there a member they do put in the label
    // is most likely one of the class's own unusual images. On 12k Fashion-MNIST with 10 % random
    // flips (the CNN trained on them) Trouser's minority held 129 flips and 70 real trousers, 38
    // of which the probabilities call trousers; they are no longer flagged, and no flip is lost.
    const labelNoise = predictedElsewhere !== null && predictedElsewhere > 0.5;
    const cut = suspect ? valleyCut(s.axisPosition) : 0.5;
    let beforeValley = 0;
    s.members.forEach((i, m) => {
      scores[i] = s.minority[m] === 1 ? Math.max(zScore, 0) : 0;
      if (!suspect || s.minority[m] === 0) return;
      if ((s.axisPosition[m] as number) < cut) {
        beforeValley++;
        return;
      }
      if (labelNoise && topClass(table.probs as Float32Array, i, table.classes.length) === s.class) return;
      flagged[i] = 1;
      findings.push(
        sampleFinding(table, i, "activation-cluster", NAME, ACTIVATION_CLUSTERING_VERSION, zScore, {
          class: name,
          score: round(zScore),
          threshold: opts.zLimit,
          clusterShare: round(s.share),
          silhouette: round(s.silhouette),
          distanceRatio: round(s.distanceRatio[m] as number),
        }),
      );
    });
    return {
      class: name,
      samples: s.members.length,
      smallerClusterShare: round(s.share),
      silhouette: round(s.silhouette),
      robustZ: round(zScore),
      ...(predictedElsewhere !== null ? { minorityPredictedElsewhere: round(predictedElsewhere) } : {}),
      ...(suspect ? { valleyCut: round(cut), minorityBeforeValley: beforeValley } : {}),
      verdict: suspect
        ? labelNoise
          ? "suspect: a cleaner split into a minority cluster the class probabilities mostly put in other classes " +
            "(label noise); its members they put in this class are not flagged"
          : "suspect: a cleaner split than the other classes, into a minority cluster"
        : zScore >= opts.zLimit
          ? "clean split, but the smaller cluster is not a minority"
          : "split no cleaner than the other classes'",
    };
  });
  findings.sort((a, b) => b.score - a.score);
  return {
    detector: NAME,
    version: ACTIVATION_CLUSTERING_VERSION,
    scores,
    flagged,
    threshold: {
      value: opts.zLimit,
      method:
        `per class, 2-means on the top ${opts.dims} principal coordinates of its features; a class is suspect when ` +
        `its silhouette's robust z against the other classes' (median ${round(centre)}, spread ${round(spread)}) is ` +
        `≥ ${opts.zLimit} and its smaller cluster holds ≤ ${opts.maxShare} of it. A sample's score is its class's z ` +
        "when it is in the smaller cluster, else 0; the smaller clusters of suspect classes are flagged (of a cluster " +
        "the class probabilities mostly put in other classes, only the members they put there)",
    },
    findings,
    summary: {
      classes: rows,
      nullSilhouette: { median: round(centre), spread: round(spread) },
      suspectClasses: rows.filter((r) => r.verdict.startsWith("suspect")).map((r) => r.class),
      flagged: findings.length,
    },
    warnings,
  };
}

/** Lloyd's 2-means from k-means++ seeds, best of `restarts` by inertia. */
/** Share of a split's smaller cluster whose top class is not the label, or null without probabilities. */
function minorityPredictedElsewhere(table: ScanTable, split: ClassSplit): number | null {
  const C = table.classes.length;
  if (table.probs === undefined || table.probs.length !== table.labels.length * C) return null;
  let minority = 0;
  let elsewhere = 0;
  split.members.forEach((i, m) => {
    if (split.minority[m] === 0) return;
    minority++;
    if (topClass(table.probs as Float32Array, i, C) !== split.class) elsewhere++;
  });
  return minority === 0 ? null : elsewhere / minority;
}

/** Sample i's most probable class. */
function topClass(probs: Float32Array, i: number, C: number): number {
  return argmax(probs.subarray(i * C, (i + 1) * C));
}

function twoMeans(
  x: Matrix,
  restarts: number,
  rng: Rng,
): { assignment: Uint8Array; centres: Float64Array[] } {
  const { rows: n, cols: d } = x;
  let best: { assignment: Uint8Array; centres: Float64Array[]; inertia: number } | null = null;
  for (let r = 0; r < restarts; r++) {
    // k-means++: the first centre uniformly, the second with probability ∝ squared distance.
    const first = rng.int(n);
    const c0 = x.data.slice(first * d, (first + 1) * d);
    const dist = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += dist[i] = squaredDistance(x, i, c0);
    let pick = rng.next() * total;
    let second = n - 1;
    for (let i = 0; i < n; i++) {
      pick -= dist[i] as number;
      if (pick <= 0) {
        second = i;
        break;
      }
    }
    const centres = [c0, x.data.slice(second * d, (second + 1) * d)];
    const assignment = new Uint8Array(n);
    let inertia = Infinity;
    for (let iteration = 0; iteration < 100; iteration++) {
      let changed = iteration === 0;
      inertia = 0;
      for (let i = 0; i < n; i++) {
        const a = squaredDistance(x, i, centres[0] as Float64Array);
        const b = squaredDistance(x, i, centres[1] as Float64Array);
        const label = b < a ? 1 : 0;
        inertia += Math.min(a, b);
        if (assignment[i] !== label) {
          assignment[i] = label;
          changed = true;
        }
      }
      if (!changed) break;
      for (let c = 0; c < 2; c++) {
        const centre = new Float64Array(d);
        let count = 0;
        for (let i = 0; i < n; i++) {
          if (assignment[i] !== c) continue;
          count++;
          for (let j = 0; j < d; j++) centre[j] = (centre[j] as number) + (x.data[i * d + j] as number);
        }
        if (count > 0) {
          for (let j = 0; j < d; j++) centre[j] = (centre[j] as number) / count;
          centres[c] = centre;
        }
      }
    }
    if (best === null || inertia < best.inertia) best = { assignment, centres, inertia };
  }
  const chosen = best as { assignment: Uint8Array; centres: Float64Array[] };
  return { assignment: chosen.assignment, centres: chosen.centres };
}

/**
 * Mean silhouette (Rousseeuw, 1987) over a seeded sample of at most `sample` rows, each against
 * every row: s = (b − a) / max(a, b) with a the mean distance to its own cluster, b to the other.
 */
function silhouette(x: Matrix, assignment: Uint8Array, sample: number, rng: Rng): number {
  const n = x.rows;
  const rows =
    n <= sample
      ? Array.from({ length: n }, (_, i) => i)
      : rng.sample(
          Array.from({ length: n }, (_, i) => i),
          sample,
        );
  const size = [0, 0];
  for (const a of assignment) size[a] = (size[a] as number) + 1;
  if ((size[0] as number) < 2 || (size[1] as number) < 2) return 0;
  let total = 0;
  for (const i of rows) {
    const sums = [0, 0];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const a = assignment[j] as number;
      sums[a] =
        (sums[a] as number) + Math.sqrt(squaredDistance(x, i, x.data.subarray(j * x.cols, (j + 1) * x.cols)));
    }
    const own = assignment[i] as number;
    const a = (sums[own] as number) / ((size[own] as number) - 1);
    const b = (sums[1 - own] as number) / (size[1 - own] as number);
    total += (b - a) / Math.max(a, b, 1e-300);
  }
  return total / rows.length;
}

function squaredDistance(x: Matrix, row: number, point: ArrayLike<number>): number {
  const d = x.cols;
  const o = row * d;
  let acc = 0;
  for (let j = 0; j < d; j++) acc += ((x.data[o + j] as number) - (point[j] as number)) ** 2;
  return acc;
}
