// The built-in image proxy model, for a scan whose user brings no model: a one-hidden-layer
// ReLU MLP over flattened pixels (robust/fl/model.ts's Trainer, minibatch SGD) that yields
// the two things the detectors read — out-of-sample class probabilities (confident learning)
// and penultimate-layer activations (spectral signatures, SPECTRE, activation clustering,
// feature outliers).
//
// Which model each number comes from matters, and differs on purpose:
// - probs[i] comes from the model of the one fold that did not train on sample i (stratified
//   k-fold, as in proxy-linear.ts), so a mislabeled sample cannot vouch for its own label;
// - features[i] comes from one model trained on every labeled sample, poison included (and, with
//   `featureModels` > 1, the replicates from further such models from other random starts). A
//   backdoor is only visible in a representation that has learned the trigger — a model that
//   never saw the poison maps a patched shirt to where shirts go — and every sample must be
//   embedded by the same model, since the detectors compare samples within a class.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { argmax } from "../math/linalg.js";
import { Rng } from "../math/rng.js";
import { initParameters, modelSpec, Trainer, type Examples } from "../robust/fl/model.js";
import { foldRows, stratifiedFolds } from "./proxy-linear.js";

export const imageProxyOptionsSchema = z.object({
  /** Folds for the out-of-sample probabilities. */
  folds: z.number().int().min(2).max(20).default(3),
  /** Compute out-of-sample probabilities too (k more models); false trains only the feature model. */
  outOfSample: z.boolean().default(true),
  /**
   * Feature models trained on everything, each from its own random start. The first gives
   * `features`; the others `featureReplicates`, which SPECTRE tests too: whether one model's top
   * whitened direction shows the trigger as a separate mode is a matter of its random start
   * (measured: two of four starts separated a 0.5 % patch, the other two did not).
   */
  featureModels: z.number().int().min(1).max(16).default(1),
  /** Width of the hidden layer: the dimension of the features. */
  hidden: z.number().int().min(2).max(1024).default(64),
  /** Passes over the training data per model. */
  epochs: z.number().int().min(1).max(200).default(4),
  batchSize: z.number().int().min(1).max(4096).default(32),
  /** SGD step of the first epoch; epoch e uses learningRate / (1 + e/2). */
  learningRate: z.number().positive().max(10).default(0.05),
  /**
   * Z-score every pixel over the dataset first. It is what makes the proxy learn a trigger fast
   * and strongly: a corner that is black in almost every image has a tiny spread, so a white patch
   * there is many standard deviations out, where in raw [0, 1] pixels it is one input among 784.
   */
  standardize: z.boolean().default(true),
  /** Floor of a pixel's standard deviation when standardizing (in [0, 1] pixel units), so an always-black pixel is not blown up without bound. */
  minPixelSd: z.number().positive().max(1).default(0.1),
  seed: z.union([z.number().int(), z.string()]).default(0),
});
export type ImageProxyOptions = z.input<typeof imageProxyOptionsSchema>;

export interface ImageProxyResult {
  /** Row-major n × C out-of-sample probabilities (see the module comment); null when `outOfSample` is false. */
  probs: Float32Array | null;
  /** Held-out accuracy per fold and over every labeled sample (NaN without `outOfSample`). */
  foldAccuracy: number[];
  accuracy: number;
  /** Fold of each sample, or null without `outOfSample`. */
  fold: Uint8Array | null;
  /** Row-major n × featureDims hidden-layer activations of the feature model. */
  features: Float32Array;
  featureDims: number;
  /** The hidden-layer activations of the other `featureModels − 1` feature models (same shape as `features`). */
  featureReplicates: Float32Array[];
  /**
   * Row-major n × C probabilities of the (first) feature model: in sample for the labeled rows,
   * out of sample for the unlabeled ones — which is what a model trained without some rows (their
   * labels set to −1) says about them.
   */
  featureModelProbs: Float32Array;
  /** Accuracy of the feature model on the labeled samples it was trained on. */
  trainAccuracy: number;
  /** In words, which model produced the features and which the probabilities (for the report). */
  provenance: { features: string; probs: string | null };
  seconds: number;
}

/**
 * Train the proxy on `images` (row-major n × pixels, values in [0, 1]; larger ranges such as
 * 0–255 are rescaled by their maximum) with `labels` (class indices, −1 = unlabeled: never
 * trained on, still embedded and predicted). `onModel` reports models trained so far.
 */
export function imageProxyFeatures(
  images: Float32Array,
  labels: Int32Array,
  classes: readonly string[] | number,
  options: ImageProxyOptions = {},
  onModel?: (done: number, total: number) => void,
): ImageProxyResult {
  const started = performance.now();
  const opts = parseOptions(imageProxyOptionsSchema, options, "image proxy options");
  const C = typeof classes === "number" ? classes : classes.length;
  const n = labels.length;
  const examples = toExamples(images, labels, C, opts.folds, opts.standardize ? opts.minPixelSd : null);
  const spec = modelSpec("mlp", { inputs: examples.inputs, classes: C, hidden: opts.hidden });
  const trainer = new Trainer(spec);
  const total = (opts.outOfSample ? opts.folds : 0) + opts.featureModels;
  let done = 0;

  const train = (rows: Int32Array, name: string, start = "init"): Float32Array => {
    const params = initParameters(spec, new Rng(`${String(opts.seed)}/${start}`));
    const rng = new Rng(`${String(opts.seed)}/${name}`);
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const update = trainer.trainLocal(
        params,
        examples,
        rows,
        { epochs: 1, batchSize: opts.batchSize, learningRate: opts.learningRate / (1 + epoch / 2) },
        rng,
      );
      for (let k = 0; k < params.length; k++) params[k] = params[k]! + update[k]!;
    }
    onModel?.(++done, total);
    return params;
  };

  let probs: Float32Array | null = null;
  let fold: Uint8Array | null = null;
  const foldAccuracy: number[] = [];
  let accuracy = NaN;
  if (opts.outOfSample) {
    fold = stratifiedFolds(labels, C, opts.folds, new Rng(opts.seed));
    probs = new Float32Array(n * C);
    const row = new Float32Array(C);
    let correct = 0;
    let labeled = 0;
    for (let f = 0; f < opts.folds; f++) {
      const { train: trainRows, test: testRows } = foldRows(fold, labels, f);
      const params = train(trainRows, `fold${f}`);
      let foldCorrect = 0;
      let foldLabeled = 0;
      for (const i of testRows) {
        trainer.probabilities(params, examples, i, row);
        probs.set(row, i * C);
        if (labels[i]! < 0) continue;
        foldLabeled++;
        if (argmax(row) === labels[i]) foldCorrect++;
      }
      foldAccuracy.push(foldLabeled === 0 ? NaN : foldCorrect / foldLabeled);
      correct += foldCorrect;
      labeled += foldLabeled;
    }
    accuracy = labeled === 0 ? NaN : correct / labeled;
  }

  const labeledRows: number[] = [];
  for (let i = 0; i < n; i++) if (labels[i]! >= 0) labeledRows.push(i);
  const H = opts.hidden;
  const activations = new Float32Array(H);
  const p = new Float32Array(C);
  const featureModelProbs = new Float32Array(n * C);
  let trainCorrect = 0;
  const featureSets: Float32Array[] = [];
  for (let m = 0; m < opts.featureModels; m++) {
    const params =
      m === 0
        ? train(Int32Array.from(labeledRows), "features")
        : train(Int32Array.from(labeledRows), `features-${m + 1}`, `init-${m + 1}`);
    const features = new Float32Array(n * H);
    for (let i = 0; i < n; i++) {
      trainer.hiddenActivations(params, examples, i, activations, p);
      features.set(activations, i * H);
      if (m > 0) continue;
      featureModelProbs.set(p, i * C);
      if (labels[i]! >= 0 && argmax(p) === labels[i]) trainCorrect++;
    }
    featureSets.push(features);
  }
  const [features, ...featureReplicates] = featureSets as [Float32Array, ...Float32Array[]];

  const recipe =
    `${examples.inputs}→${H} ReLU→${C} MLP on ${opts.standardize ? "z-scored" : "[0, 1]"} pixels, ` +
    `${opts.epochs} epochs of minibatch SGD (batch ${opts.batchSize})`;
  return {
    probs,
    foldAccuracy,
    accuracy,
    fold,
    features,
    featureDims: H,
    featureReplicates,
    featureModelProbs,
    trainAccuracy: labeledRows.length === 0 ? NaN : trainCorrect / labeledRows.length,
    provenance: {
      features:
        `hidden-layer activations of ${opts.featureModels === 1 ? "one" : `${opts.featureModels} (from independent random starts)`} ${recipe} trained on all ${labeledRows.length} labeled samples ` +
        "(suspect ones included: a backdoor shows only in a representation that has learned its trigger)",
      probs: opts.outOfSample
        ? `each sample's probabilities from the ${recipe} of the one of ${opts.folds} stratified folds that did not train on it`
        : null,
    },
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The reclassifier of the exclusion check (exclusion-check.ts): n × C probabilities from one MLP
 * trained without the `excluded` rows (and without unlabeled ones). Past `maxTrainRows` the model
 * trains on a random subset of the rest — it only has to say what the excluded samples look
 * like, and a 60k dataset would otherwise cost a minute.
 */
export function imageProbabilitiesWithout(
  images: Float32Array,
  labels: Int32Array,
  classes: number,
  excluded: Uint8Array,
  options: { seed?: number | string; maxTrainRows?: number } = {},
): Float32Array {
  const seed = options.seed ?? 0;
  const max = options.maxTrainRows ?? 12_000;
  const trainLabels = Int32Array.from(labels);
  const rest: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (excluded[i] === 1) trainLabels[i] = -1;
    else if ((labels[i] as number) >= 0) rest.push(i);
  }
  if (rest.length > max)
    for (const i of new Rng(`${String(seed)}/exclusion-subset`).shuffle(rest).slice(max)) trainLabels[i] = -1;
  return imageProxyFeatures(images, trainLabels, classes, {
    seed: `${String(seed)}/exclusion`,
    outOfSample: false,
  }).featureModelProbs;
}

// Validates the boundary (shapes, labels, finite pixels — naming the sample) and packs the
// pixels as the Trainer's examples: rescaled to [0, 1] when they come on a larger scale, then
// z-scored per pixel when `minPixelSd` is given. The pixel statistics use every image but no
// label, so the held-out folds leak nothing about their labels.
function toExamples(
  images: Float32Array,
  labels: Int32Array,
  C: number,
  folds: number,
  minPixelSd: number | null,
): Examples {
  const n = labels.length;
  if (C < 2) throw new AntidoteError("USAGE", `image proxy model: needs at least 2 classes, got ${C}`);
  if (C > 255)
    throw new AntidoteError("USAGE", `image proxy model: supports at most 255 classes, the dataset has ${C}`);
  if (n === 0 || images.length % n !== 0)
    throw new AntidoteError(
      "USAGE",
      `image proxy model: ${images.length} pixel values cannot be ${n} images of equal size`,
    );
  const inputs = images.length / n;
  let max = 0;
  for (let i = 0; i < images.length; i++) {
    const v = images[i]!;
    if (!Number.isFinite(v))
      throw new AntidoteError(
        "USAGE",
        `image proxy model: image ${Math.floor(i / inputs)} has a NaN or infinite pixel (value ${i % inputs})`,
      );
    if (Math.abs(v) > max) max = Math.abs(v);
  }
  let labeled = 0;
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (l >= C)
      throw new AntidoteError(
        "USAGE",
        `image proxy model: sample ${i} has label ${l}, but only ${C} classes`,
      );
    if (l >= 0) {
      y[i] = l;
      labeled++;
    }
  }
  if (labeled < folds)
    throw new AntidoteError(
      "USAGE",
      `image proxy model: ${labeled} labeled samples cannot be split into ${folds} folds`,
    );
  const x = max > 1 ? images.map((v) => v / max) : images;
  return { count: n, inputs, x: minPixelSd === null ? x : standardized(x, n, inputs, minPixelSd), y };
}

function standardized(x: Float32Array, n: number, cols: number, minSd: number): Float32Array {
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < cols; j++) {
      const v = x[i * cols + j]!;
      mean[j] = mean[j]! + v;
      sq[j] = sq[j]! + v * v;
    }
  const scale = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    mean[j] = mean[j]! / n;
    scale[j] = 1 / Math.max(Math.sqrt(Math.max(sq[j]! / n - mean[j]! ** 2, 0)), minSd);
  }
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < cols; j++) out[i * cols + j] = (x[i * cols + j]! - mean[j]!) * scale[j]!;
  return out;
}
