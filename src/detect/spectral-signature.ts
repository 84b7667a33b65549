// Spectral signatures (Tran, Li & Madry, NeurIPS 2018): a dirty-label backdoor leaves its
// samples, inside the target class, shifted along one direction of a model's penultimate
// features — the trigger's — so after centring the class, the top singular vector points
// at them and their squared projection on it is large.
//
// The paper (and ART) then removes 1.5 × the poison rate of every class, which needs the rate
// and always removes something. Here nothing is removed by quota: per class, the projections
// on the top singular vector are standardised by median and MAD, and a two-component mixture
// asks whether the class has a separate minor mode (`minorMode` in math/linalg.ts: a second
// peak of a kernel density estimate behind a valley, dip ratio ≤ `maxDipRatio`) that is a
// minority of the class (between `minMinorShare` and `maxMinorShare`). Only then are the samples
// beyond the valley flagged. A clean class is one population, or a few natural ones: a heavy
// tail has no valley, and a natural sub-population (coats with and without a zip) is too large
// to be taken for poison.
//
// This module also holds what the feature-space detectors share: validating the feature
// matrix, grouping it by class, skipping classes too small to test, and the sample finding.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import {
  gatherRows,
  median,
  medianAbsoluteDeviation,
  principalComponents,
  project,
  minorMode,
} from "../math/linalg.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";

export const SPECTRAL_SIGNATURE_VERSION = "1.0.0";

/** How a class's scores are split into a bulk and a suspect minor mode (shared by spectral detectors). */
export const modeTestOptions = {
  /**
   * A minor mode must be preceded by a valley of at most this fraction of its peak's density.
   * Clean Fashion-MNIST classes have no such valley on the top robustly-whitened direction except
   * for small natural groups; a 1% BadNets patch leaves one of 0.1–0.4.
   */
  maxDipRatio: z.number().gt(0).lt(1).default(0.6),
  /**
   * …and hold at least this share of its class (and `minMinorCount` samples). Classes have small
   * natural groups that are just as separate — Fashion-MNIST's trousers one of 1–3% — so poison
   * below about 3% of its target class (≈ 0.3% of a balanced 10-class dataset) is not told apart.
   */
  minMinorShare: z.number().min(0).lt(1).default(0.03),
  minMinorCount: z.number().int().min(1).default(10),
  /**
   * …and at most this share: larger modes are natural sub-populations (coats with and without a
   * zip: 29–48% of a clean Fashion-MNIST class). Poison above this share of its target class is
   * not told apart from one.
   */
  maxMinorShare: z.number().gt(0).lt(1).default(0.25),
  /** Kernel bandwidth of the density whose valleys are searched, in robust-z units (the bulk's spread). */
  bandwidth: z.number().positive().max(5).default(1),
  /** Classes with fewer samples than this (or than 2 × the dimensions analysed) are skipped with a warning. */
  minClassSize: z.number().int().min(3).default(30),
};

export const spectralSignatureOptionsSchema = z.object({ ...modeTestOptions });
export type SpectralSignatureOptions = z.input<typeof spectralSignatureOptionsSchema>;
type ModeTestSettings = z.output<z.ZodObject<typeof modeTestOptions>>;

const NAME = "spectral-signature";

export const spectralSignature: Detector<SpectralSignatureOptions> = {
  name: NAME,
  version: SPECTRAL_SIGNATURE_VERSION,
  appliesTo: featureAppliesTo,
  run(table, options = {}) {
    const opts = parseOptions(spectralSignatureOptionsSchema, options, `${NAME} options`);
    const cf = classFeatures(table, NAME);
    const { testable, warnings } = testableClasses(table, cf, opts.minClassSize, cf.dims, NAME);
    const perClass: ClassProjection[] = testable.map((c) => {
      const members = cf.members[c] as Int32Array;
      const x = gatherRows(cf.features, cf.dims, members);
      const pca = principalComponents(x, 2, { seed: `${NAME}/${c}` });
      const top = project(
        x,
        { rows: 1, cols: cf.dims, data: pca.components.data.subarray(0, cf.dims) },
        pca.mean,
      );
      return {
        class: c,
        members,
        projection: top.data,
        statistics: {
          topVariance: pca.variances[0] ?? 0,
          secondVariance: pca.variances[1] ?? 0,
        },
      };
    });
    return modeTestResult(table, perClass, opts, warnings, {
      detector: NAME,
      version: SPECTRAL_SIGNATURE_VERSION,
      kind: "spectral-signature",
      space: "the projection on the class's top singular vector of its centred features (Tran et al., 2018)",
    });
  },
};

// ---------------------------------------------------------------------------------------------
// Shared by the feature-space detectors.

/** Why a feature detector cannot run on `table`, or null. */
export function featureAppliesTo(table: ScanTable): string | null {
  const n = table.labels.length;
  if (table.features === undefined || table.featureDims === undefined)
    return "needs penultimate-layer features (from your model, or the built-in image proxy model)";
  if (!Number.isInteger(table.featureDims) || table.featureDims < 1)
    return `featureDims must be a positive whole number, got ${table.featureDims}`;
  if (table.features.length !== n * table.featureDims)
    return `the features have ${table.features.length} values, expected ${n} samples × ${table.featureDims} dimensions`;
  if (!table.labels.some((y) => y >= 0)) return "no sample has a label";
  return null;
}

/** The validated feature matrix and the positions of each class's samples. */
export interface ClassFeatures {
  dims: number;
  features: Float32Array;
  /** members[c]: positions of the samples labeled c, ascending. Unlabeled samples are in none. */
  members: Int32Array[];
}

/** Validates the features (a NaN or infinite value fails naming the sample) and groups them by class. */
export function classFeatures(table: ScanTable, detector: string): ClassFeatures {
  const why = featureAppliesTo(table);
  if (why !== null) throw new AntidoteError("USAGE", `${detector} cannot run: ${why}`);
  const features = table.features as Float32Array;
  const dims = table.featureDims as number;
  checkFiniteFeatures(features, dims, table.ids, detector);
  const C = table.classes.length;
  const lists: number[][] = Array.from({ length: C }, () => []);
  table.labels.forEach((y, i) => {
    if (y >= 0 && y < C) (lists[y] as number[]).push(i);
  });
  return { dims, features, members: lists.map((l) => Int32Array.from(l)) };
}

/** Fails naming the sample and the dimension of the first NaN or infinite feature value. */
export function checkFiniteFeatures(
  features: Float32Array,
  dims: number,
  ids: readonly string[],
  detector: string,
): void {
  for (let k = 0; k < features.length; k++) {
    if (!Number.isFinite(features[k])) {
      const i = Math.floor(k / dims);
      throw new AntidoteError(
        "USAGE",
        `${detector}: the features of sample "${ids[i] ?? i}" have ${Number.isNaN(features[k]) ? "a NaN" : "an infinite"} value (dimension ${k % dims})`,
      );
    }
  }
}

/** Classes with enough samples to test (≥ minSize and ≥ 2 × dims); a warning for each one skipped. */
export function testableClasses(
  table: ScanTable,
  cf: ClassFeatures,
  minSize: number,
  dims: number,
  detector: string,
): { testable: number[]; warnings: string[] } {
  const testable: number[] = [];
  const warnings: string[] = [];
  const needed = Math.max(minSize, 2 * dims);
  cf.members.forEach((m, c) => {
    if (m.length === 0) return;
    if (m.length < needed)
      warnings.push(
        `${detector}: class "${table.classes[c]}" has ${m.length} samples, fewer than ${needed} ` +
          `(max of ${minSize} and 2 × ${dims} dimensions): not tested`,
      );
    else testable.push(c);
  });
  const unlabeled = table.labels.reduce((a, y) => a + (y < 0 ? 1 : 0), 0);
  if (unlabeled > 0) warnings.push(`${detector}: ${unlabeled} unlabeled samples were not tested`);
  return { testable, warnings };
}

/** One flagged sample as a ledger finding. */
export function sampleFinding(
  table: ScanTable,
  i: number,
  kind: string,
  check: string,
  version: string,
  score: number,
  evidence: Record<string, unknown>,
): Finding {
  return {
    subjectType: "sample",
    subjectId: table.digests[i] as string,
    kind,
    score,
    evidence: { id: table.ids[i], ...evidence },
    check,
    checkVersion: version,
  };
}

export function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** One class's one-dimensional projection, the input of the mode test. */
export interface ClassProjection {
  class: number;
  members: Int32Array;
  /** One value per member, in member order. */
  projection: Float64Array;
  /** Extra per-class numbers for the summary. */
  statistics: Record<string, number>;
  /** Extra per-member evidence (e.g. QUE scores), by member position. */
  evidence?: (m: number) => Record<string, unknown>;
}

/**
 * The decision the spectral detectors share: per class, robust z of the projection, then the
 * minor-mode test; samples beyond the valley of a class that passes are flagged. Scores are the
 * robust z towards the minor mode (NaN outside tested classes).
 */
export function modeTestResult(
  table: ScanTable,
  perClass: readonly ClassProjection[],
  opts: ModeTestSettings,
  warnings: string[],
  meta: { detector: string; version: string; kind: string; space: string },
): DetectorResult {
  const n = table.labels.length;
  const scores = new Float64Array(n).fill(NaN);
  const flagged = new Uint8Array(n);
  const findings: Finding[] = [];
  const rows: Record<string, unknown>[] = [];
  let lowestCut = Infinity;
  for (const pc of perClass) {
    const { projection, members } = pc;
    const size = members.length;
    const med = median(projection);
    const spread = 1.4826 * medianAbsoluteDeviation(projection, med) || 1e-12;
    const z = projection.map((v) => (v - med) / spread);
    const mode = minorMode(z, {
      bandwidth: opts.bandwidth,
      maxDipRatio: opts.maxDipRatio,
      minCount: Math.max(opts.minMinorCount, Math.ceil(opts.minMinorShare * size)),
    }) ?? { side: 1, dipRatio: 1, cut: Infinity, peak: NaN, count: 0, separated: false };
    const share = mode.count / size;
    const verdict = !mode.separated
      ? "one mode"
      : share > opts.maxMinorShare
        ? "minor mode too large for poison (a natural sub-population)"
        : "separate minor mode";
    const suspect = verdict === "separate minor mode";
    const name = table.classes[pc.class] as string;
    for (let m = 0; m < size; m++) {
      const s = mode.side * (z[m] as number);
      z[m] = s;
      scores[members[m] as number] = s;
    }
    if (suspect) {
      lowestCut = Math.min(lowestCut, mode.cut);
      for (let m = 0; m < size; m++) {
        if ((z[m] as number) <= mode.cut) continue;
        const i = members[m] as number;
        flagged[i] = 1;
        findings.push(
          sampleFinding(table, i, meta.kind, meta.detector, meta.version, z[m] as number, {
            class: name,
            score: round(z[m] as number),
            threshold: round(mode.cut),
            classDipRatio: round(mode.dipRatio),
            classSuspectShare: round(share),
            ...(pc.evidence?.(m) ?? {}),
          }),
        );
      }
    }
    rows.push({
      class: name,
      samples: size,
      dipRatio: round(mode.dipRatio),
      cut: Number.isFinite(mode.cut) ? round(mode.cut) : null,
      minorPeak: Number.isFinite(mode.peak) ? round(mode.peak) : null,
      beyondCut: mode.count,
      verdict,
      flagged: suspect ? mode.count : 0,
      ...Object.fromEntries(Object.entries(pc.statistics).map(([k, v]) => [k, round(v)])),
    });
  }
  findings.sort((a, b) => b.score - a.score);
  return {
    detector: meta.detector,
    version: meta.version,
    scores,
    flagged,
    threshold: {
      value: lowestCut,
      method:
        `per class, ${meta.space}, as a robust z (median, 1.4826·MAD); a class is suspect when a kernel ` +
        `density estimate of it (bandwidth ${opts.bandwidth}) has a second mode behind a valley ≤ ${opts.maxDipRatio} ` +
        `of its peak, holding between ${opts.minMinorShare} (and ${opts.minMinorCount} samples) and ` +
        `${opts.maxMinorShare} of the class; the samples beyond the valley are flagged. No poison rate is ` +
        "assumed; the value is the lowest cut of a suspect class (Infinity when no class is suspect)",
    },
    findings,
    summary: {
      classes: rows,
      suspectClasses: rows.filter((r) => r.verdict === "separate minor mode").map((r) => r.class),
      flagged: findings.length,
    },
    warnings,
  };
}
