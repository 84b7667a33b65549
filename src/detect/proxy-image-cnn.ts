// Out-of-sample class probabilities from a small CNN trained k-fold on the dataset itself: the
// second member of the built-in image proxy (proxy-image.ts is the first, an MLP on pixels).
//
// Why a second model: confident learning can only flag a label its probabilities disbelieve, and
// its false flags are the proxy's own confident mistakes. The MLP is ≈ 85 % accurate on 12k
// Fashion-MNIST images; the CNN (src/nn's default two-block CNN, TF.js wasm) ≈ 88 %; their mean
// is right more often than either and, above all, confidently wrong less often — they do not make
// the same mistakes. Running the CNN's k-fold twice (own splits, own initial weights) and giving
// each repeat the MLP's weight helps again. Measured while choosing this design (12k Fashion-MNIST,
// 10 % random flips, confident learning's noise-structure selection, each cell giving up the
// floor): MLP alone precision 0.82 / recall 0.83; MLP + one CNN 0.87 / 0.86; MLP + two 0.88 / 0.84.
// As implemented, confident learning's flags (the cells counting up to the Poisson 0.75 quantile
// of the floor, that many taken across cells: the scan's default): 0.887 / 0.898 on that slice,
// 0.856 / 0.927 and 0.856 / 0.921 on two other 12k slices of the training set, 0.896 / 0.936 on
// all 60k. Clean, nothing flagged (12k and 60k). The cost: 7 models instead of 4, ≈ 4.5 minutes at
// 12k images, ≈ 16 at 60k.
//
// Only probabilities come from here. The detectors' features stay the MLP's (proxy-image.ts
// explains why they must come from one model trained on everything, poison included).
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { argmax } from "../math/linalg.js";
import { Rng } from "../math/rng.js";
import { defaultArchitecture, pooledSide, type Architecture } from "../nn/architectures.js";
import { predictNet, trainClassifier } from "../nn/train.js";
import { foldRows, stratifiedFolds } from "./proxy-linear.js";

export const cnnProxyOptionsSchema = z.object({
  folds: z.number().int().min(2).max(20).default(3),
  /**
   * Times the whole k-fold is run, each with its own split and initial weights; a sample's
   * probabilities are the mean over repeats (each from a model that did not train on it).
   */
  repeats: z.number().int().min(1).max(10).default(2),
  /** Adam epochs per fold model (6: measured better than 4, at 1.5× the time). */
  epochs: z.number().int().min(1).max(200).default(6),
  batchSize: z.number().int().min(1).max(4096).default(64),
  seed: z.union([z.number().int(), z.string()]).default(0),
});
export type CnnProxyOptions = z.input<typeof cnnProxyOptionsSchema>;

/** Geometry of every image: the samples' ImageTensor shape (channels last). */
export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

export interface CnnProxyResult {
  /** Row-major n × C: each sample's probabilities from the fold model that did not train on it. */
  probs: Float32Array;
  /** Held-out accuracy of each fold model (folds × repeats), and of the mean over repeats on every labeled sample. */
  foldAccuracy: number[];
  accuracy: number;
  /** In words, for the report. */
  provenance: string;
  seconds: number;
}

/**
 * Why the CNN proxy cannot run on images of this shape, or null when it can: the CNN's two 2×
 * max-pools need a side of at least 4, and its cost grows with the pixels — above
 * `CNN_PROXY_MAX_VALUES` values per image (64×64 RGB) the MLP proxy is used alone.
 */
export function cnnProxyUnsupported(shape: ImageShape): string | null {
  if (pooledSide(shape.height) < 1 || pooledSide(shape.width) < 1)
    return `images of ${shape.height}×${shape.width} are too small for its two 2× poolings (4×4 at least)`;
  const values = shape.height * shape.width * shape.channels;
  if (values > CNN_PROXY_MAX_VALUES)
    return (
      `images of ${shape.height}×${shape.width}×${shape.channels} (${values} values) are over the ` +
      `${CNN_PROXY_MAX_VALUES} it trains on in reasonable time on a CPU; bring your own model (--model, --pred-probs)`
    );
  return null;
}

/** 64 × 64 × 3. */
export const CNN_PROXY_MAX_VALUES = 12_288;

/**
 * Train one CNN per stratified fold on the other folds' labeled samples and predict the fold.
 * `images`: row-major n × (height·width·channels), channels last, values in [0, 1] (a larger
 * range is rescaled by its maximum); `labels`: class indices, −1 = unlabeled (never trained on,
 * still predicted). The folds are the same as the MLP proxy's for the same seed.
 */
export async function cnnOutOfSampleProbs(
  images: Float32Array,
  shape: ImageShape,
  labels: Int32Array,
  classes: number,
  options: CnnProxyOptions = {},
  onModel?: (done: number, total: number) => void,
): Promise<CnnProxyResult> {
  const started = performance.now();
  const opts = parseOptions(cnnProxyOptionsSchema, options, "CNN proxy options");
  const n = labels.length;
  const { height: H, width: W, channels: K } = shape;
  const per = H * W * K;
  const why = cnnProxyUnsupported(shape);
  if (why !== null) throw new AntidoteError("USAGE", `CNN proxy: ${why}`);
  if (images.length !== n * per)
    throw new AntidoteError(
      "USAGE",
      `CNN proxy: ${images.length} pixel values are not ${n} images of ${H}×${W}×${K}`,
    );
  let labeled = 0;
  for (const y of labels) {
    if (y >= classes) throw new AntidoteError("USAGE", `CNN proxy: label ${y}, but only ${classes} classes`);
    if (y >= 0) labeled++;
  }
  if (labeled < opts.folds)
    throw new AntidoteError(
      "USAGE",
      `CNN proxy: ${labeled} labeled samples cannot be split into ${opts.folds} folds`,
    );

  for (const v of images)
    if (!Number.isFinite(v))
      throw new AntidoteError("USAGE", "CNN proxy: an image has a NaN or infinite pixel");
  const nchw = channelsFirst(images, n, shape);

  const architecture = defaultArchitecture("cnn");
  const probs = new Float32Array(n * classes);
  const foldAccuracy: number[] = [];
  let correct = 0;
  const models = opts.folds * opts.repeats;
  for (let r = 0; r < opts.repeats; r++) {
    // The first repeat's split is the MLP proxy's for the same seed.
    const seed = r === 0 ? opts.seed : `${String(opts.seed)}/repeat${r}`;
    const fold = stratifiedFolds(labels, classes, opts.folds, new Rng(seed));
    for (let f = 0; f < opts.folds; f++) {
      const { train, test } = foldRows(fold, labels, f);
      const x = new Float32Array(train.length * per);
      const y = new Uint8Array(train.length);
      train.forEach((i, j) => {
        x.set(nchw.subarray(i * per, (i + 1) * per), j * per);
        y[j] = labels[i]!;
      });
      const model = await trainClassifier({ x, y, count: train.length }, architecture, {
        inputShape: [K, H, W],
        classes,
        epochs: opts.epochs,
        batchSize: opts.batchSize,
        seed: `${String(seed)}/cnn-fold${f}`,
      });
      const xt = new Float32Array(test.length * per);
      test.forEach((i, j) => xt.set(nchw.subarray(i * per, (i + 1) * per), j * per));
      const p = await predictNet(model.net, xt, test.length);
      let foldCorrect = 0;
      let foldLabeled = 0;
      test.forEach((i, j) => {
        const row = p.subarray(j * classes, (j + 1) * classes);
        for (let c = 0; c < classes; c++)
          probs[i * classes + c] = probs[i * classes + c]! + row[c]! / opts.repeats;
        if (labels[i]! < 0) return;
        foldLabeled++;
        if (argmax(row) === labels[i]) foldCorrect++;
      });
      foldAccuracy.push(foldLabeled === 0 ? NaN : foldCorrect / foldLabeled);
      onModel?.(r * opts.folds + f + 1, models);
    }
  }
  // Accuracy of the mean over repeats (what the detectors read), on the labeled samples.
  labels.forEach((y, i) => {
    if (y >= 0 && argmax(probs.subarray(i * classes, (i + 1) * classes)) === y) correct++;
  });
  return {
    probs,
    foldAccuracy,
    accuracy: correct / labeled,
    provenance:
      `each sample's probabilities from the ${describe(architecture)} CNN (${opts.epochs} epochs of Adam) ` +
      `of the one of ${opts.folds} stratified folds that did not train on it, averaged over ${opts.repeats} ` +
      `repeat${opts.repeats === 1 ? "" : "s"} with their own folds and initial weights`,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Row-major n images, channels last (as ImageTensor holds them) → channels first (NCHW, as the
 * trainer and ONNX take them), rescaled to [0, 1] by the largest magnitude when it is above 1.
 */
export function channelsFirst(images: Float32Array, n: number, shape: ImageShape): Float32Array {
  const { height: H, width: W, channels: K } = shape;
  const per = H * W * K;
  let max = 0;
  for (const v of images) if (Math.abs(v) > max) max = Math.abs(v);
  const scale = max > 1 ? 1 / max : 1;
  const out = new Float32Array(n * per);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let c = 0; c < K; c++)
          out[i * per + c * H * W + y * W + x] = images[i * per + (y * W + x) * K + c]! * scale;
  return out;
}

function describe(a: Architecture): string {
  if (a.kind !== "cnn") return a.kind;
  const k = `${a.kernel}×${a.kernel}`;
  return `conv ${a.channels[0]}@${k} → pool → conv ${a.channels[1]}@${k} → pool${a.hidden !== undefined ? ` → dense ${a.hidden}` : ""}`;
}
