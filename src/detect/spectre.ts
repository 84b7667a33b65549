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
// flags nothing.
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
  classFeatures,
  featureAppliesTo,
  modeTestOptions,
  modeTestResult,
  round,
  testableClasses,
  type ClassProjection,
} from "./spectral-signature.js";
import type { Detector } from "./types.js";

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
    const perClass = testable.map((c): ClassProjection => {
      const members = cf.members[c] as Int32Array;
      const x = gatherRows(cf.features, cf.dims, members);
      const pca = principalComponents(x, k, { seed: `${NAME}/${c}` });
      // Directions without variance (dead units, a constant feature) carry nothing to whiten.
      const top = pca.variances[0] ?? 0;
      let kept = 0;
      while (kept < pca.components.rows && (pca.variances[kept] as number) > 1e-9 * top) kept++;
      const reduced = project(
        x,
        { rows: kept, cols: cf.dims, data: pca.components.data.subarray(0, kept * cf.dims) },
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
        for (let j = 0; j < kept; j++)
          acc += (weights[j] as number) * (along.data[r * kept + j] as number) ** 2;
        que[r] = acc / totalWeight;
      }
      let support = 0;
      for (const s of robust.support) support += s;
      return {
        class: c,
        members,
        projection,
        statistics: {
          dims: kept,
          topWhitenedVariance: lambdaTop,
          secondWhitenedVariance: eig.values[1] ?? 0,
          robustSupportShare: support / n,
        },
        evidence: (m) => ({ que: round(que[m] as number) }),
      };
    });
    return modeTestResult(table, perClass, opts, warnings, {
      detector: NAME,
      version: SPECTRE_VERSION,
      kind: "spectre",
      space:
        `the projection on the top eigenvector of the second moment of the class's top-${k} principal ` +
        `coordinates whitened by a minimum-covariance-determinant estimate on ${opts.supportFraction} of the class (Hayase et al., 2021)`,
    });
  },
};
