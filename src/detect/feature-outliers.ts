// Feature-space outliers: samples that do not sit where their class sits in a model's
// feature space. Three pieces of evidence, each turned into a Bonferroni-adjusted p-value
// within its class so that no contamination rate is needed:
//
// - isolation: the log of the mean distance to the sample's `neighbours` nearest samples of its
//   own class;
// - the log of the squared Mahalanobis distance from a minimum-covariance-determinant estimate
//   of the class (robust, so the outliers do not widen the ellipse that judges them);
//   both judged against the class's own upper tail (an exponential tail fitted over its top 10%,
//   `logUpperTailPValues`): penultimate features are far from Gaussian — a normal or χ² reference
//   flags ~0.6% of a clean Fashion-MNIST class at α = 0.01 — so only samples far beyond the
//   trend of their class's tail count;
// - neighbour labels: how many of the sample's nearest neighbours in the whole dataset carry
//   another label. Some classes overlap naturally (shirts and T-shirts), so the count is tested
//   against the class's own over-dispersed rate — a beta-binomial fitted to the class by moments —
//   and a sample is evidence of a flip only when its neighbourhood disagrees far more than its
//   class's usually does.
//
// All distances are taken in the top `dims` principal coordinates (of the class, or of the whole
// dataset for neighbour labels), which keeps the exact k-nearest-neighbour search affordable.
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import {
  betaBinomialUpperTail,
  gatherRows,
  logUpperTailPValues,
  median,
  principalComponents,
  project,
  robustCovariance,
  type Matrix,
} from "../math/linalg.js";
import {
  classFeatures,
  featureAppliesTo,
  round,
  sampleFinding,
  testableClasses,
} from "./spectral-signature.js";
import type { Detector, ScanTable } from "./types.js";

export const FEATURE_OUTLIERS_VERSION = "1.0.0";

export const featureOutliersOptionsSchema = z.object({
  /** Principal coordinates the distances are taken in. */
  dims: z.number().int().min(1).max(256).default(16),
  /** Nearest neighbours for isolation and for neighbour labels. */
  neighbours: z.number().int().min(1).max(100).default(10),
  /** Family-wise error rate per class and per kind of evidence (Bonferroni over the class's samples). */
  alpha: z.number().gt(0).lt(1).default(0.01),
  /** Share of the class the robust covariance rests on. */
  supportFraction: z.number().min(0.5).max(1).default(0.75),
  /** Test neighbour labels (an exact search over all labeled samples: n² · dims work). */
  neighbourLabels: z.boolean().default(true),
  minClassSize: z.number().int().min(3).default(30),
});
export type FeatureOutliersOptions = z.input<typeof featureOutliersOptionsSchema>;

const NAME = "feature-outliers";

type Reason = "isolated" | "mahalanobis" | "neighbour-labels";

export const featureOutliers: Detector<FeatureOutliersOptions> = {
  name: NAME,
  version: FEATURE_OUTLIERS_VERSION,
  appliesTo: featureAppliesTo,
  run(table, options = {}) {
    const opts = parseOptions(featureOutliersOptionsSchema, options, `${NAME} options`);
    const cf = classFeatures(table, NAME);
    const k = Math.min(opts.dims, cf.dims);
    const { testable, warnings } = testableClasses(table, cf, opts.minClassSize, k, NAME);
    const n = table.labels.length;
    const log10 = (lnP: number): number => -lnP / Math.LN10;
    // −log10 of the Bonferroni-adjusted p-value of each kind of evidence (NaN: not tested).
    const isolation = new Float64Array(n).fill(NaN);
    const mahalanobis = new Float64Array(n).fill(NaN);
    const labelsEvidence = new Float64Array(n).fill(NaN);
    const detail = new Map<number, Record<string, unknown>>();
    const note = (i: number, fields: Record<string, unknown>): void => {
      detail.set(i, { ...(detail.get(i) ?? {}), ...fields });
    };
    const rows: Record<string, unknown>[] = [];

    for (const c of testable) {
      const members = cf.members[c] as Int32Array;
      const size = members.length;
      const x = gatherRows(cf.features, cf.dims, members);
      const pca = principalComponents(x, k, { seed: `${NAME}/${c}` });
      const coords = project(x, pca.components, pca.mean);
      const logBonferroni = Math.log(size);

      const knn = nearestNeighbours(coords, coords, Math.min(opts.neighbours, size - 1), true);
      const logDistance = new Float64Array(size);
      for (let m = 0; m < size; m++) {
        let acc = 0;
        for (let j = 0; j < knn.k; j++) acc += Math.sqrt(knn.distances[m * knn.k + j] as number);
        logDistance[m] = Math.log(Math.max(acc / knn.k, 1e-300));
      }
      const robust = robustCovariance(coords, { supportFraction: opts.supportFraction });
      const logMahalanobis = robust.distances.map((d) => Math.log(Math.max(d, 1e-300)));
      const lnIsolation = logUpperTailPValues(logDistance);
      const lnMahalanobis = logUpperTailPValues(logMahalanobis);
      let isolated = 0;
      let far = 0;
      for (let m = 0; m < size; m++) {
        const i = members[m] as number;
        isolation[i] = log10((lnIsolation[m] as number) + logBonferroni);
        mahalanobis[i] = log10((lnMahalanobis[m] as number) + logBonferroni);
        if (isolation[i] >= -Math.log10(opts.alpha)) isolated++;
        if (mahalanobis[i] >= -Math.log10(opts.alpha)) far++;
        note(i, {
          meanNeighbourDistance: round(Math.exp(logDistance[m] as number)),
          isolationPValue: Math.exp(lnIsolation[m] as number),
          mahalanobisSquared: round(robust.distances[m] as number),
          mahalanobisPValue: Math.exp(lnMahalanobis[m] as number),
        });
      }
      rows.push({
        class: table.classes[c],
        samples: size,
        isolated,
        mahalanobisOutliers: far,
        medianNeighbourDistance: round(Math.exp(median(logDistance))),
      });
    }

    if (opts.neighbourLabels) {
      const evidence = neighbourLabelEvidence(table, cf.features, cf.dims, testable, k, opts.neighbours);
      for (const [i, e] of evidence.perSample) {
        labelsEvidence[i] = e.score;
        note(i, e.evidence);
      }
      rows.forEach((r, idx) => Object.assign(r, evidence.perClass[idx]));
    }

    const limit = -Math.log10(opts.alpha);
    const scores = new Float64Array(n).fill(NaN);
    const flagged = new Uint8Array(n);
    const findings: Finding[] = [];
    for (let i = 0; i < n; i++) {
      const parts: [Reason, number][] = [
        ["isolated", isolation[i] as number],
        ["mahalanobis", mahalanobis[i] as number],
        ["neighbour-labels", labelsEvidence[i] as number],
      ];
      const tested = parts.filter(([, v]) => Number.isFinite(v));
      if (tested.length === 0) continue;
      const score = Math.max(...tested.map(([, v]) => v));
      scores[i] = score;
      const reasons = tested.filter(([, v]) => v >= limit).map(([r]) => r);
      if (reasons.length === 0) continue;
      flagged[i] = 1;
      findings.push(
        sampleFinding(table, i, "feature-outlier", NAME, FEATURE_OUTLIERS_VERSION, score, {
          class: table.classes[table.labels[i] as number],
          score: round(score),
          threshold: limit,
          reasons,
          ...detail.get(i),
        }),
      );
    }
    findings.sort((a, b) => b.score - a.score);
    const byReason = (r: Reason) =>
      findings.filter((f) => (f.evidence.reasons as Reason[]).includes(r)).length;
    return {
      detector: NAME,
      version: FEATURE_OUTLIERS_VERSION,
      scores,
      flagged,
      threshold: {
        value: limit,
        method:
          `−log10 of the Bonferroni-adjusted (over the class's samples) p-value of the strongest evidence: ` +
          `isolation (log mean distance to the ${opts.neighbours} nearest same-class samples) and log robust ` +
          `Mahalanobis distance, each against an exponential fit to the class's own top-10% tail, and ` +
          `neighbour labels against the class's own beta-binomial rate; flagged at family-wise α = ${opts.alpha} per class and kind`,
      },
      findings,
      summary: {
        dims: k,
        neighbours: opts.neighbours,
        classes: rows,
        flagged: findings.length,
        byReason: {
          isolated: byReason("isolated"),
          mahalanobis: byReason("mahalanobis"),
          "neighbour-labels": byReason("neighbour-labels"),
        },
      },
      warnings,
    };
  },
};

/**
 * For every labeled sample of a tested class: how many of its nearest labeled neighbours (in the
 * dataset's top principal coordinates) carry another label, tested against its class's
 * beta-binomial rate (moments), Bonferroni over the class.
 */
function neighbourLabelEvidence(
  table: ScanTable,
  features: Float32Array,
  dims: number,
  testable: readonly number[],
  k: number,
  neighbours: number,
): {
  perSample: Map<number, { score: number; evidence: Record<string, unknown> }>;
  perClass: Record<string, unknown>[];
} {
  const labeled: number[] = [];
  table.labels.forEach((y, i) => {
    if (y >= 0) labeled.push(i);
  });
  const x = gatherRows(features, dims, labeled);
  const pca = principalComponents(x, k, { seed: `${NAME}/all` });
  const coords = project(x, pca.components, pca.mean);
  const kk = Math.min(neighbours, labeled.length - 1);
  const knn = nearestNeighbours(coords, coords, kk, true);
  const position = new Map(labeled.map((i, p) => [i, p]));
  const perSample = new Map<number, { score: number; evidence: Record<string, unknown> }>();
  const perClass: Record<string, unknown>[] = [];
  for (const c of testable) {
    const members = labeled.filter((i) => table.labels[i] === c);
    const disagree = members.map((i) => {
      const p = position.get(i) as number;
      let count = 0;
      for (let j = 0; j < kk; j++)
        if (table.labels[labeled[knn.indices[p * kk + j] as number] as number] !== c) count++;
      return count;
    });
    // Beta-binomial by moments; the rate is smoothed so a class with no disagreement at all still
    // has a proper (if strict) null, and the over-dispersion is floored at the binomial.
    const mean = disagree.reduce((a, b) => a + b, 0) / members.length;
    const variance = disagree.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, members.length - 1);
    const rate = (mean * members.length + 0.5) / (kk * members.length + 1);
    const binomialVariance = kk * rate * (1 - rate);
    const rho = kk > 1 ? Math.min(0.999, Math.max(1e-6, (variance / binomialVariance - 1) / (kk - 1))) : 1e-6;
    const a = rate * (1 / rho - 1);
    const b = (1 - rate) * (1 / rho - 1);
    const majority = new Map<number, number>();
    members.forEach((i, m) => {
      const p = position.get(i) as number;
      const tail = betaBinomialUpperTail(disagree[m] as number, kk, a, b);
      const score = -Math.log10(Math.max(tail * members.length, 1e-300));
      majority.clear();
      for (let j = 0; j < kk; j++) {
        const y = table.labels[labeled[knn.indices[p * kk + j] as number] as number] as number;
        if (y !== c) majority.set(y, (majority.get(y) ?? 0) + 1);
      }
      let suggested = -1;
      for (const [y, count] of majority)
        if (suggested < 0 || count > (majority.get(suggested) ?? 0)) suggested = y;
      perSample.set(i, {
        score,
        evidence: {
          neighboursWithOtherLabel: disagree[m],
          neighbours: kk,
          classDisagreementRate: round(rate),
          ...(suggested >= 0 ? { neighbourMajorityLabel: table.classes[suggested] } : {}),
        },
      });
    });
    perClass.push({ neighbourDisagreementRate: round(rate), neighbourOverdispersion: round(rho) });
  }
  return { perSample, perClass };
}

/**
 * Exact k nearest neighbours of every row of `queries` among the rows of `points` (squared
 * Euclidean), by a bounded insertion list per query; `excludeSelf` skips row i of `points` for
 * query i (queries and points are the same set).
 */
function nearestNeighbours(
  queries: Matrix,
  points: Matrix,
  k: number,
  excludeSelf: boolean,
): { k: number; indices: Int32Array; distances: Float64Array } {
  const d = points.cols;
  const indices = new Int32Array(queries.rows * k);
  const distances = new Float64Array(queries.rows * k).fill(Infinity);
  const q = queries.data;
  const p = points.data;
  for (let i = 0; i < queries.rows; i++) {
    const o = i * k;
    const qi = i * d;
    let worst = Infinity;
    for (let j = 0; j < points.rows; j++) {
      if (excludeSelf && i === j) continue;
      const pj = j * d;
      let acc = 0;
      for (let c = 0; c < d && acc < worst; c++) {
        const diff = (q[qi + c] as number) - (p[pj + c] as number);
        acc += diff * diff;
      }
      if (acc >= worst) continue;
      // Insert into the sorted list of the k best so far.
      let at = k - 1;
      while (at > 0 && (distances[o + at - 1] as number) > acc) {
        distances[o + at] = distances[o + at - 1] as number;
        indices[o + at] = indices[o + at - 1] as number;
        at--;
      }
      distances[o + at] = acc;
      indices[o + at] = j;
      worst = distances[o + k - 1] as number;
    }
  }
  return { k, indices, distances };
}
