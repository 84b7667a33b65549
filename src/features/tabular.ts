// Tabular features: each column z-scored with its fitted mean and population standard
// deviation (as scikit-learn's StandardScaler), from per-column moments that shards merge
// exactly. A non-finite value is a malformed row, reported by sample and feature.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Sample } from "../data/sample.js";
import {
  addObservation,
  copyMoments,
  emptyMoments,
  mergeMoments,
  standardDeviation,
  type Moments,
} from "../math/moments.js";
import { observeAll, type Featurizer } from "./matrix.js";
import { parseOptions } from "./options.js";

export const tabularOptionsSchema = z.object({
  /** z-score each column (default), or pass the values through unchanged. */
  standardize: z.boolean().default(true),
  /** Column names, in feature order, for error messages (`DatasetInfo.featureNames`). */
  featureNames: z.array(z.string()).optional(),
});
export type TabularOptions = z.input<typeof tabularOptionsSchema>;

/** Per-column moments; null before any sample. */
export interface TabularStats {
  moments: Moments | null;
}

export function mergeTabularStats(a: TabularStats, b: TabularStats): TabularStats {
  if (a.moments === null) return b;
  if (b.moments === null) return a;
  if (a.moments.mean.length !== b.moments.mean.length) {
    throw new AntidoteError(
      "USAGE",
      `cannot merge tabular statistics of ${a.moments.mean.length} and ${b.moments.mean.length} features`,
    );
  }
  return { moments: mergeMoments(a.moments, b.moments) };
}

export class TabularFeaturizer implements Featurizer<Float32Array, TabularStats> {
  private readonly standardize: boolean;
  private readonly names: string[] | undefined;
  private moments: Moments | null;
  private scaling: { mean: Float64Array; invStd: Float64Array } | null = null;

  constructor(options: TabularOptions = {}, stats?: TabularStats) {
    const o = parseOptions(tabularOptionsSchema, options, "tabular options");
    this.standardize = o.standardize;
    this.names = o.featureNames;
    this.moments = stats?.moments ? copyMoments(stats.moments) : null;
  }

  observe(sample: Sample): void {
    const x = this.featuresOf(sample);
    this.moments ??= emptyMoments(x.length);
    addObservation(this.moments, x);
    this.scaling = null;
  }

  fit(samples: AsyncIterable<Sample>): Promise<void> {
    return observeAll(this, samples);
  }

  /** The z-scores of the sample's features; a constant column gives 0. */
  transform(sample: Sample): Float32Array {
    const x = this.featuresOf(sample);
    if (!this.standardize) return Float32Array.from(x);
    const { mean, invStd } = (this.scaling ??= this.fittedScaling());
    const out = new Float32Array(x.length);
    for (let d = 0; d < x.length; d++)
      out[d] = ((x[d] as number) - (mean[d] as number)) * (invStd[d] as number);
    return out;
  }

  stats(): TabularStats {
    return { moments: this.moments && copyMoments(this.moments) };
  }

  private fittedScaling(): { mean: Float64Array; invStd: Float64Array } {
    if (this.moments === null || this.moments.count === 0) {
      throw new AntidoteError(
        "USAGE",
        "tabular standardisation needs a fit on at least one sample before transform",
      );
    }
    return {
      mean: this.moments.mean,
      invStd: standardDeviation(this.moments).map((s) => (s > 0 ? 1 / s : 0)),
    };
  }

  // Checks presence, width and finiteness, so that a NaN never silently becomes a NaN z-score.
  private featuresOf(sample: Sample): Float32Array {
    const x = sample.features;
    if (x === undefined) {
      throw new AntidoteError(
        "USAGE",
        `sample "${sample.id}" has no tabular features; use a text or image featurizer`,
      );
    }
    const width = this.moments?.mean.length ?? this.names?.length;
    if (width !== undefined && x.length !== width) {
      throw new AntidoteError(
        "ROW_MALFORMED",
        `sample "${sample.id}": has ${x.length} features, expected ${width}`,
      );
    }
    for (let d = 0; d < x.length; d++) {
      const v = x[d] as number;
      if (!Number.isFinite(v)) {
        const name = this.names?.[d];
        const feature = name === undefined ? `feature ${d}` : `feature "${name}" (index ${d})`;
        throw new AntidoteError(
          "ROW_MALFORMED",
          `sample "${sample.id}": ${feature} is ${v}; features must be finite numbers`,
        );
      }
    }
    return x;
  }
}
