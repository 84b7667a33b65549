// One entry point from a Dataset to the dense FeatureMatrix detectors consume: pick the
// featurizer by content, fit it in one streaming pass, transform in a second. Text goes
// through hashed TF-IDF and a random projection (a 2^18-wide dense row would not fit);
// images and tabular rows are projected only when `dims` asks for it.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset } from "../data/dataset.js";
import type { DatasetInfo, Sample } from "../data/sample.js";
import { ImageFeaturizer, type ImageOptions, type ImageStats } from "./image.js";
import {
  MatrixBuilder,
  type FeatureMatrix,
  type Featurizer,
  type SparseRows,
  type SparseVector,
} from "./matrix.js";
import { parseOptions } from "./options.js";
import { RandomProjection, type ProjectionOptions } from "./projection.js";
import { TabularFeaturizer, type TabularOptions, type TabularStats } from "./tabular.js";
import { TextFeaturizer, type TextOptions, type TextStats } from "./text.js";

export type FeatureKind = "text" | "image" | "tabular";

const featurizeOptionsSchema = z.object({
  /** "auto" looks at the first sample: image, else text, else tabular features. */
  kind: z.enum(["auto", "text", "image", "tabular"]).default("auto"),
  /** Dense output width via random projection; text defaults to 256, images and tables to no projection. */
  dims: z.number().int().min(1).max(65_536).optional(),
  /** Seeds text hashing and the projection, unless their own options set one. */
  seed: z.number().int().default(0),
});

export interface FeaturizeOptions extends z.input<typeof featurizeOptionsSchema> {
  text?: TextOptions;
  image?: ImageOptions;
  tabular?: TabularOptions;
  projection?: Omit<ProjectionOptions, "outputDims">;
}

export const DEFAULT_TEXT_DIMS = 256;

export type AnyStats = TextStats | ImageStats | TabularStats;

/** A featurizer with dense rows; `stats()` is the kind's mergeable summary. */
export type DenseFeaturizer<S extends AnyStats = AnyStats> = Featurizer<Float32Array, S> & {
  readonly kind: FeatureKind;
};

/** Fit on the dataset, then featurize every sample into one dense matrix (datasets that fit in memory). */
export async function featurize(dataset: Dataset, options: FeaturizeOptions = {}): Promise<FeatureMatrix> {
  const featurizer = await fitFeaturizer(dataset, options);
  return transformDataset(dataset, featurizer);
}

/** A featurizer fitted on the whole dataset in one streaming pass, ready to transform new samples too. */
export async function fitFeaturizer(
  dataset: Dataset,
  options: FeaturizeOptions = {},
): Promise<DenseFeaturizer> {
  const { kind } = parseOptions(featurizeOptionsSchema, options, "featurize options");
  const featurizer = createFeaturizer(
    kind === "auto" ? await detectKind(dataset) : kind,
    options,
    dataset.info,
  );
  await featurizer.fit(dataset.samples());
  return featurizer;
}

/**
 * A dense featurizer of the given kind, unfitted or starting from `stats` (e.g. the merged
 * statistics of shards fitted apart with `mergeTextStats`, `mergeImageStats`, `mergeTabularStats`).
 */
export function createFeaturizer(
  kind: "text",
  options?: FeaturizeOptions,
  info?: Partial<DatasetInfo>,
  stats?: TextStats,
): DenseFeaturizer<TextStats>;
export function createFeaturizer(
  kind: "image",
  options?: FeaturizeOptions,
  info?: Partial<DatasetInfo>,
  stats?: ImageStats,
): DenseFeaturizer<ImageStats>;
export function createFeaturizer(
  kind: "tabular",
  options?: FeaturizeOptions,
  info?: Partial<DatasetInfo>,
  stats?: TabularStats,
): DenseFeaturizer<TabularStats>;
export function createFeaturizer(
  kind: FeatureKind,
  options?: FeaturizeOptions,
  info?: Partial<DatasetInfo>,
): DenseFeaturizer;
export function createFeaturizer(
  kind: FeatureKind,
  options: FeaturizeOptions = {},
  info: Partial<DatasetInfo> = {},
  stats?: AnyStats,
): DenseFeaturizer {
  const { dims, seed } = parseOptions(featurizeOptionsSchema, options, "featurize options");
  const projection = { seed, ...options.projection };
  const projectTo = dims === undefined ? undefined : { ...projection, outputDims: dims };
  switch (kind) {
    case "text": {
      const text = new TextFeaturizer({ seed, ...options.text }, stats as TextStats | undefined);
      return dense(kind, text, { ...projection, outputDims: dims ?? DEFAULT_TEXT_DIMS }, text.dims);
    }
    case "image":
      return dense(kind, new ImageFeaturizer(options.image, stats as ImageStats | undefined), projectTo);
    case "tabular": {
      const tabular = new TabularFeaturizer(
        { featureNames: info.featureNames, ...options.tabular },
        stats as TabularStats | undefined,
      );
      return dense(kind, tabular, projectTo);
    }
  }
}

/** Transform every sample of the dataset with a fitted featurizer, in dataset order. */
export async function transformDataset(
  dataset: Dataset,
  featurizer: Featurizer<Float32Array, unknown>,
): Promise<FeatureMatrix> {
  const builder = new MatrixBuilder(dataset.info.count ?? 0);
  for await (const sample of dataset.samples()) builder.push(sample.id, featurizer.transform(sample));
  return builder.finish();
}

/** Sparse TF-IDF rows of a text dataset (fit and transform), for detectors that work per token. */
export async function featurizeText(dataset: Dataset, options: TextOptions = {}): Promise<SparseRows> {
  const text = new TextFeaturizer(options);
  await text.fit(dataset.samples());
  const rows: SparseVector[] = [];
  const ids: string[] = [];
  for await (const sample of dataset.samples()) {
    rows.push(text.transform(sample));
    ids.push(sample.id);
  }
  return { cols: text.dims, rows, ids };
}

/** The kind of content the dataset's first sample carries: image, else text, else tabular features. */
export async function detectKind(dataset: Dataset): Promise<FeatureKind> {
  for await (const sample of dataset.samples()) return kindOf(sample);
  throw new AntidoteError(
    "USAGE",
    `${dataset.info.path}: the dataset is empty, there is nothing to featurize`,
  );
}

function kindOf(sample: Sample): FeatureKind {
  if (sample.image !== undefined) return "image";
  if (sample.text !== undefined) return "text";
  if (sample.features !== undefined) return "tabular";
  throw new AntidoteError(
    "USAGE",
    `sample "${sample.id}" has no text, image or tabular features to featurize`,
  );
}

// Wraps a featurizer so that transform yields a dense row, projected when `projection` is set.
// The projection is built at the first transform when the input width is known only then
// (image shape, feature count).
function dense<S extends AnyStats>(
  kind: FeatureKind,
  inner: Featurizer<SparseVector | Float32Array, S>,
  projection: ProjectionOptions | undefined,
  inputDims?: number,
): DenseFeaturizer<S> {
  let rp: RandomProjection | undefined;
  return {
    kind,
    observe: (sample) => inner.observe(sample),
    fit: (samples) => inner.fit(samples),
    stats: () => inner.stats(),
    transform(sample) {
      const out = inner.transform(sample);
      if (projection === undefined) {
        if (out instanceof Float32Array) return out;
        throw new AntidoteError("INTERNAL", "a sparse featurizer needs a projection to give dense rows");
      }
      rp ??= new RandomProjection(inputDims ?? (out as Float32Array).length, projection);
      return rp.project(out);
    },
  };
}
