// SPECTRE (Hayase, Kong, Somani & Oh, ICML 2021): spectral signatures after robust whitening.
// A clean class's own large directions of variation (a bag's handle, a shoe's heel) hide a
// small poison shift from plain PCA; whitening with a covariance estimated robustly — from the
// bulk of the class, which the poison cannot move — makes every clean direction unit-variance,
// so the one direction with excess variance left is the poison's.
//
// Per class: project the centred features on their top `dims` principal directions, estimate
// location and scatter there by minimum covariance determinant (C-steps from a deterministic
// start, math/linalg.ts), whiten, and take the top eigenvector of the whitened second-moment
// matrix M. Each sample gets its projection on that direction (the score the cut is made on)
// and the paper's QUantum Entropy score τ_i = z_iᵀ U z_i / tr U with U = exp(α(M − I)/(‖M‖ − 1)),
// reported as evidence. The paper removes 1.5 × a known poison rate; here the cut is the
// data-driven minor-mode test of spectral-signature.ts, so no rate is needed and a clean class
// flags nothing. When the table holds features of several models (the scan's own proxy trains
// four from independent random starts), each is tested and their flags are united (unionOfModels).
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import {
  gatherRows,
  principalComponents,
  project,
  robustCovariance,
  symmetricEigen,
  zeros,
} from "../math/linalg.js";
import {
  checkFiniteFeatures,
  classFeatures,
  featureAppliesTo,
  modeTestOptions,
  modeTestResult,
  round,
  testableClasses,
  type ClassProjection,
} from "./spectral-signature.js";
import type { Finding } from "../ledger/types.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";

export const SPECTRE_VERSION = "1.0.0";

export const spectreOptionsSchema = z.object({
  ...modeTestOptions,
  /** Principal directions of the class kept before the robust estimate (the paper's k). */
  dims: z.number().int().min(1).max(256).default(16),
  /** Share of the class the MCD estimate rests on; poison above 1 − this share can move it. */
  supportFraction: z.number().min(0.5).max(1).default(0.75),
  /** QUE's α: 0 weighs all whitened directions equally (Mahalanobis), large α only the top one. */
  queAlpha: z.number().min(0).max(64).default(4),
});
export type SpectreOptions = z.input<typeof spectreOptionsSchema>;

const NAME = "spectre";

export const spectre: Detector<SpectreOptions> = {
  name: NAME,
  version: SPECTRE_VERSION,
  appliesTo: featureAppliesTo,
  run(table, options = {}) {
    const opts = parseOptions(spectreOptionsSchema, options, `${NAME} options`);
    const cf = classFeatures(table, NAME);
    const k = Math.min(opts.dims, cf.dims);
    const { testable, warnings } = testableClasses(table, cf, opts.minClassSize, k, NAME);
    const replicates = (table.featureReplicates ?? []).filter((f) => f.length === cf.features.length);
    if (replicates.length !== (table.featureReplicates ?? []).length)
      warnings.push("feature replicates of another shape than the features were ignored");
    const models = [cf.features, ...replicates].map((features, m) => {
      if (m > 0) checkFiniteFeatures(features, cf.dims, table.ids, `${NAME} (feature model ${m + 1})`);
      const perClass = testable.map((c): ClassProjection => {
        const members = cf.members[c] as Int32Array;
        const top = whitenedTop(features, cf.dims, members, k, opts, `${NAME}/${c}`);
        return {
          class: c,
          members,
          projection: top.projection,
          statistics: {
            dims: top.kept,
            topWhitenedVariance: top.lambdaTop,
            secondWhitenedVariance: top.lambdaSecond,
            robustSupportShare: top.supportShare,
          },
          evidence: (i) => ({ que: round(top.que[i] as number), ...(m > 0 ? { featureModel: m + 1 } : {}) }),
        };
      });
      return modeTestResult(table, perClass, opts, m === 0 ? warnings : [], {
        detector: NAME,
        version: SPECTRE_VERSION,
        kind: "spectre",
        space:
          `the projection on the top eigenvector of the second moment of the class's top-${k} principal ` +
          `coordinates whitened by a minimum-covariance-determinant estimate on ${opts.supportFraction} of the class (Hayase et al., 2021)`,
      });
    });
    return models.length === 1 ? (models[0] as DetectorResult) : unionOfModels(table, models);
  },
};

/**
 * SPECTRE over several feature models (ScanTable.featureReplicates): a sample is flagged when the
 * test on any model's features flags it. Whether a model's top whitened direction is the
 * poison's is a matter of its random start — measured on 12k Fashion-MNIST, a 0.5 % patch was
 * separated by two of four models (56 and 57 of 60 flagged) and not at all by the other two,
 * a 1 % patch likewise — so the union finds what any one model sees (59 of 60; 117 of 120). The
 * union also collects each model's accidents (two of those four found the shorts among the
 * trousers as a minor mode); the scan's exclusion check (exclusion-check.ts) dismisses such
 * natural sub-populations. Averaging the models' projections instead was measured and dropped:
 * models whose top direction misses the poison dilute the valley (0 of 60 flagged).
 * Scores are each sample's highest robust z over the models, the finding is the first model's
 * that flagged it, and the per-class rows are the union's with each model's verdict.
 */
function unionOfModels(table: ScanTable, models: readonly DetectorResult[]): DetectorResult {
  const n = table.labels.length;
  const first = models[0] as DetectorResult;
  const scores = Float64Array.from(first.scores);
  const flagged = new Uint8Array(n);
  const byModel = new Uint8Array(n);
  const findings = new Map<string, Finding>();
  for (const r of models) {
    for (let i = 0; i < n; i++) {
      const s = r.scores[i] as number;
      if (s > (scores[i] as number)) scores[i] = s;
      if (r.flagged[i] === 1) {
        flagged[i] = 1;
        byModel[i] = (byModel[i] as number) + 1;
      }
    }
    for (const f of r.findings) {
      const id = f.evidence.id as string;
      if (!findings.has(id)) findings.set(id, f);
    }
  }
  const index = new Map(table.ids.map((id, i) => [id, i]));
  const merged: Finding[] = [...findings.values()].map((f) => ({
    ...f,
    evidence: {
      ...f.evidence,
      featureModelsFlagging: `${byModel[index.get(f.evidence.id as string) as number]} of ${models.length}`,
    },
  }));
  merged.sort((a, b) => b.score - a.score);
  type Row = Record<string, unknown> & { class: string; verdict: string };
  const rowsOf = (r: DetectorResult) => r.summary.classes as Row[];
  const classes = rowsOf(first).map((row, c) => {
    const verdicts = models.map((r) => (rowsOf(r)[c] as Row).verdict);
    const flaggedInClass = merged.filter((f) => f.evidence.class === row.class).length;
    return {
      ...row,
      verdict: verdicts.includes("separate minor mode") ? "separate minor mode" : row.verdict,
      flagged: flaggedInClass,
      dipRatio: Math.min(...models.map((r) => (rowsOf(r)[c] as Row).dipRatio as number)),
      featureModels: verdicts,
    };
  });
  const cuts = models.map((r) => r.threshold.value);
  return {
    ...first,
    scores,
    flagged,
    threshold: {
      value: Math.min(...cuts),
      method:
        `${first.threshold.method}; run on each of ${models.length} feature models from independent random ` +
        "starts, a sample is flagged when any of them flags it (the score is its highest robust z)",
    },
    findings: merged,
    summary: {
      classes,
      suspectClasses: classes.filter((r) => r.verdict === "separate minor mode").map((r) => r.class),
      flagged: merged.length,
      featureModels: models.length,
    },
    warnings: first.warnings,
  };
}

interface WhitenedTop {
  /** Each member's coordinate on the top eigenvector of the whitened second moment. */
  projection: Float64Array;
  /** QUE score of each member. */
  que: Float64Array;
  kept: number;
  lambdaTop: number;
  lambdaSecond: number;
  supportShare: number;
}

function whitenedTop(
  features: Float32Array,
  D: number,
  members: Int32Array,
  k: number,
  opts: { supportFraction: number; queAlpha: number },
  seed: string,
): WhitenedTop {
  const x = gatherRows(features, D, members);
  const pca = principalComponents(x, k, { seed });
  // Directions without variance (dead units, a constant feature) carry nothing to whiten.
  const top = pca.variances[0] ?? 0;
  let kept = 0;
  while (kept < pca.components.rows && (pca.variances[kept] as number) > 1e-9 * top) kept++;
  const reduced = project(
    x,
    { rows: kept, cols: D, data: pca.components.data.subarray(0, kept * D) },
    pca.mean,
  );
  const robust = robustCovariance(reduced, { supportFraction: opts.supportFraction });
  const whitened = project(reduced, robust.whitener, robust.mean);
  const n = members.length;
  const second = zeros(kept, kept);
  for (let r = 0; r < n; r++)
    for (let a = 0; a < kept; a++) {
      const za = whitened.data[r * kept + a] as number;
      for (let b = a; b < kept; b++)
        second.data[a * kept + b] =
          (second.data[a * kept + b] as number) + za * (whitened.data[r * kept + b] as number);
    }
  for (let a = 0; a < kept; a++)
    for (let b = a; b < kept; b++) {
      const v = (second.data[a * kept + b] as number) / n;
      second.data[a * kept + b] = v;
      second.data[b * kept + a] = v;
    }
  const eig = symmetricEigen(second);
  const along = project(whitened, eig.vectors); // n × kept: coordinates on M's eigenvectors
  const lambdaTop = eig.values[0] as number;
  const weights = Array.from(eig.values, (l) =>
    Math.exp((opts.queAlpha * (l - 1)) / Math.max(lambdaTop - 1, 1e-9)),
  );
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const projection = new Float64Array(n);
  const que = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    projection[r] = along.data[r * kept] as number;
    let acc = 0;
    for (let j = 0; j < kept; j++) acc += (weights[j] as number) * (along.data[r * kept + j] as number) ** 2;
    que[r] = acc / totalWeight;
  }
  let support = 0;
  for (const s of robust.support) support += s;
  return {
    projection,
    que,
    kept,
    lambdaTop,
    lambdaSecond: eig.values[1] ?? 0,
    supportShare: support / n,
  };
}
