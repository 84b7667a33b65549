// The built-in proxy model: out-of-sample class probabilities for every sample, which
// confident learning needs when the user brings no model of their own. Multinomial logistic
// regression with L2 on hashed TF-IDF rows (sparse) or dense rows, trained by plain SGD
// with Bottou's (2012) decreasing step η_t = η₀ / (1 + η₀·λ·t) and the weight-scale trick
// (W = s·V), so that the L2 shrinkage of a 2^18-wide weight matrix costs one multiply per
// step instead of a pass over every weight. Each sample's probabilities come from the model
// of the one fold that did not train on it (stratified k-fold, seeded), so a mislabeled
// sample cannot vouch for its own label.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { FeatureMatrix, SparseRows } from "../features/matrix.js";
import { parseOptions } from "../features/options.js";
import type { SparseVector } from "../math/sparse.js";
import { argmax } from "../math/linalg.js";
import { Rng } from "../math/rng.js";

/** Sparse rows (hashed TF-IDF) or a dense row-major matrix (pixels, embeddings). */
export type ProxyFeatures = Pick<SparseRows, "cols" | "rows"> | Pick<FeatureMatrix, "rows" | "cols" | "data">;

export const proxyOptionsSchema = z.object({
  folds: z.number().int().min(2).max(100).default(5),
  seed: z.union([z.number().int(), z.string()]).default(0),
  /** L2 strength λ of the objective mean(log loss) + λ/2·‖W‖² (biases are not penalised). */
  l2: z.number().positive().max(1).default(3e-6),
  /** Passes over each fold's training set; default 8 for sparse rows, 4 for dense rows. */
  epochs: z.number().int().min(1).max(1000).optional(),
  /**
   * First step size as a multiple of 1 / mean squared row norm (the curvature scale of one
   * sample's loss); default 4 for sparse rows, 0.5 for dense rows. Dense rows (pixels) are
   * strongly correlated, so a sample's step moves every other sample's score too and a large
   * step leaves SGD noisy; hashed TF-IDF rows are nearly orthogonal and take a large one.
   */
  stepScale: z.number().positive().max(100).optional(),
  /** Dense rows only: z-score each column first (pixels are on very different scales at the border). */
  standardize: z.boolean().default(true),
  /**
   * Each fold trains on at most this many of its training rows (a seeded random subset): a
   * linear model on a few dozen features learns nothing more from 48k rows than from 20k, and
   * the scan's probes at 60k images take half the time.
   */
  maxTrainRows: z.number().int().positive().optional(),
});
export type ProxyOptions = z.input<typeof proxyOptionsSchema>;

export interface ProxyResult {
  /** Row-major n × C; row i is the held-out prediction of the model whose fold holds sample i. */
  probs: Float32Array;
  /** Accuracy against the given labels on each fold's held-out labeled samples. */
  foldAccuracy: number[];
  /** Held-out accuracy over every labeled sample. */
  accuracy: number;
  /** Fold of each sample (0 … folds−1). */
  fold: Uint8Array;
  seconds: number;
}

/**
 * Out-of-sample probabilities by stratified k-fold: each fold is predicted by a model trained on
 * the other folds. Unlabeled samples (label −1) are never trained on and are predicted by the
 * model of the fold they were dealt to.
 */
export function outOfSampleProbs(
  features: ProxyFeatures,
  labels: Int32Array,
  classes: readonly string[] | number,
  options: ProxyOptions = {},
  onFold?: (done: number, folds: number) => void,
): ProxyResult {
  const started = performance.now();
  const opts = parseOptions(proxyOptionsSchema, options, "proxy model options");
  const C = typeof classes === "number" ? classes : classes.length;
  const data = prepare(features, labels.length, opts.standardize);
  checkLabels(labels, C, opts.folds);

  const fold = stratifiedFolds(labels, C, opts.folds, new Rng(opts.seed));
  const probs = new Float32Array(labels.length * C);
  const foldAccuracy: number[] = [];
  let correct = 0;
  let labeled = 0;
  const rng = new Rng(`${String(opts.seed)}/sgd`);
  const layout = data.sparse !== null ? DEFAULTS.sparse : DEFAULTS.dense;
  const schedule: Schedule = {
    l2: opts.l2,
    epochs: opts.epochs ?? layout.epochs,
    stepScale: opts.stepScale ?? layout.stepScale,
  };
  for (let f = 0; f < opts.folds; f++) {
    const { train: all, test } = foldRows(fold, labels, f);
    const train =
      opts.maxTrainRows !== undefined && all.length > opts.maxTrainRows
        ? Int32Array.from(
            new Rng(`${String(opts.seed)}/rows/${f}`).sample(Array.from(all), opts.maxTrainRows),
          )
        : all;
    const model = trainSoftmax(data, labels, C, train, schedule, rng);
    let foldCorrect = 0;
    let foldLabeled = 0;
    const p = new Float64Array(C);
    for (const i of test) {
      model.predict(i, p);
      probs.set(p, i * C);
      const y = labels[i] as number;
      if (y < 0) continue;
      foldLabeled++;
      if (argmax(p) === y) foldCorrect++;
    }
    foldAccuracy.push(foldLabeled === 0 ? NaN : foldCorrect / foldLabeled);
    correct += foldCorrect;
    labeled += foldLabeled;
    onFold?.(f + 1, opts.folds);
  }
  return {
    probs,
    foldAccuracy,
    accuracy: labeled === 0 ? NaN : correct / labeled,
    fold,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Deal each class's samples, shuffled, round-robin into folds (continuing where the previous
 * class stopped, so fold sizes differ by at most one); unlabeled samples are dealt last.
 */
export function stratifiedFolds(labels: Int32Array, classes: number, folds: number, rng: Rng): Uint8Array {
  const byClass: number[][] = Array.from({ length: classes + 1 }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    (byClass[y < 0 ? classes : y] as number[]).push(i);
  }
  const fold = new Uint8Array(labels.length);
  let next = 0;
  for (const members of byClass) {
    for (const i of rng.shuffle(members)) {
      fold[i] = next;
      next = (next + 1) % folds;
    }
  }
  return fold;
}

/** Fold `f`'s held-out rows (every sample dealt to it) and its training rows (the other folds' labeled samples). */
export function foldRows(
  fold: Uint8Array,
  labels: Int32Array,
  f: number,
): { train: Int32Array; test: number[] } {
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (fold[i] === f) test.push(i);
    else if ((labels[i] as number) >= 0) train.push(i);
  }
  return { train: Int32Array.from(train), test };
}

// The rows in the layout they came in (exactly one of sparse / dense is set), with the
// statistic that sets the step size.
interface RowData {
  n: number;
  cols: number;
  /** Mean squared row norm: sets the step-size scale. */
  meanSquaredNorm: number;
  sparse: readonly SparseVector[] | null;
  dense: Float32Array | null;
  /** Dense standardized rows: each column's mean and 1 / standard deviation (0 for a constant column). */
  columnMean?: Float64Array;
  columnScale?: Float64Array;
}

function prepare(features: ProxyFeatures, n: number, standardize: boolean): RowData {
  if (typeof features.rows !== "number") {
    const rows = features.rows;
    if (rows.length !== n) throw mismatch(rows.length, n);
    let sq = 0;
    for (const r of rows) {
      for (let k = 0; k < r.values.length; k++) {
        const v = r.values[k] as number;
        sq += v * v;
        if ((r.indices[k] as number) >= features.cols)
          throw new AntidoteError(
            "USAGE",
            `proxy model: a sparse row has column ${r.indices[k]} ≥ ${features.cols}`,
          );
      }
    }
    if (!Number.isFinite(sq)) throw notFinite(rows.findIndex((r) => !r.values.every(Number.isFinite)));
    return { n, cols: features.cols, meanSquaredNorm: n === 0 ? 1 : sq / n, sparse: rows, dense: null };
  }
  const { cols } = features;
  const source = (features as Pick<FeatureMatrix, "data">).data;
  if (features.rows !== n || source.length !== n * cols) throw mismatch(features.rows, n);
  if (!source.every(Number.isFinite))
    throw notFinite(Math.floor(source.findIndex((v) => !Number.isFinite(v)) / cols));
  const z = standardize ? standardized(source, n, cols) : null;
  const dense = z?.data ?? source;
  let sq = 0;
  for (let k = 0; k < dense.length; k++) sq += (dense[k] as number) ** 2;
  return {
    n,
    cols,
    meanSquaredNorm: n === 0 ? 1 : sq / n,
    sparse: null,
    dense,
    ...(z === null ? {} : { columnMean: z.mean, columnScale: z.scale }),
  };
}

// Column z-scores from all rows. Labels play no part, so using the held-out rows' pixels
// leaks nothing about their labels.
function standardized(
  data: Float32Array,
  n: number,
  cols: number,
): { data: Float32Array; mean: Float64Array; scale: Float64Array } {
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let i = 0; i < n; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = data[o + j] as number;
      mean[j] = (mean[j] as number) + v;
      sq[j] = (sq[j] as number) + v * v;
    }
  }
  const scale = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    const m = (mean[j] as number) / n;
    const variance = (sq[j] as number) / n - m * m;
    mean[j] = m;
    scale[j] = variance > 1e-12 ? 1 / Math.sqrt(variance) : 0; // a constant column carries nothing
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < n; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++)
      out[o + j] = ((data[o + j] as number) - (mean[j] as number)) * (scale[j] as number);
  }
  return { data: out, mean, scale };
}

interface SoftmaxModel {
  /** Class probabilities of row i into `out`. */
  predict(i: number, out: Float64Array): void;
  /** Class scores (logits) of row i into `out`, before the softmax. */
  scores(i: number, out: Float64Array): void;
  /** The weight of (standardized) column j for class c; 0 for the pinned class of a two-class model. */
  weight(j: number, c: number): number;
  /** The bias of class c; 0 for the pinned class. */
  bias(c: number): number;
}

/** A softmax regression trained on every labeled row of dense features, read as a linear model. */
export interface FittedSoftmax {
  /** Row-major n × C class scores (logits) of every row. */
  logits: Float64Array;
  /**
   * What column j at value v adds to class c's score, relative to the column at its mean:
   * weight(j, c) · (v − mean_j) / sd_j with standardization, weight(j, c) · v without.
   */
  contribution(j: number, value: number, c: number): number;
  /** Share of labeled rows whose largest score is their label (in sample). */
  accuracy: number;
  /**
   * Class scores of a row that was not fitted (raw values, standardized here as the fitted rows
   * were) into `out`: the same arithmetic as `logits`, so a fitted row scores exactly as there.
   */
  rowScores(row: ArrayLike<number>, out: Float64Array): void;
}

/**
 * Softmax regression on all labeled rows of dense features (no held-out folds): for detectors that
 * need a linear model's weights, not out-of-sample probabilities.
 */
export function fitSoftmax(
  features: Pick<FeatureMatrix, "rows" | "cols" | "data">,
  labels: Int32Array,
  classes: number,
  options: ProxyOptions = {},
): FittedSoftmax {
  const opts = parseOptions(proxyOptionsSchema, options, "softmax options");
  const data = prepare(features, labels.length, opts.standardize);
  checkLabels(labels, classes, 1);
  const train = Int32Array.from(labels.keys()).filter((i) => (labels[i] as number) >= 0);
  const model = trainSoftmax(
    data,
    labels,
    classes,
    train,
    {
      l2: opts.l2,
      epochs: opts.epochs ?? DEFAULTS.dense.epochs,
      stepScale: opts.stepScale ?? DEFAULTS.dense.stepScale,
    },
    new Rng(`${String(opts.seed)}/sgd`),
  );
  const n = labels.length;
  const logits = new Float64Array(n * classes);
  const z = new Float64Array(classes);
  let right = 0;
  for (let i = 0; i < n; i++) {
    model.scores(i, z);
    logits.set(z, i * classes);
    if ((labels[i] as number) >= 0 && argmax(z) === labels[i]) right++;
  }
  const mean = data.columnMean;
  const scale = data.columnScale;
  const cols = features.cols;
  const weights = new Float64Array(cols * classes);
  for (let j = 0; j < cols; j++)
    for (let c = 0; c < classes; c++) weights[j * classes + c] = model.weight(j, c);
  return {
    logits,
    rowScores(row, out) {
      out.fill(0);
      for (let j = 0; j < cols; j++) {
        const v = row[j] as number;
        // As standardized() stores it: a float32 z-score.
        const x =
          mean === undefined || scale === undefined
            ? v
            : Math.fround((v - (mean[j] as number)) * (scale[j] as number));
        if (x === 0) continue;
        const o = j * classes;
        for (let c = 0; c < classes; c++) out[c] = (out[c] as number) + x * (weights[o + c] as number);
      }
      for (let c = 0; c < classes; c++) out[c] = (out[c] as number) + model.bias(c);
    },
    contribution: (j, value, c) =>
      mean === undefined || scale === undefined
        ? model.weight(j, c) * value
        : model.weight(j, c) * (value - (mean[j] as number)) * (scale[j] as number),
    accuracy: train.length === 0 ? NaN : right / train.length,
  };
}

interface Schedule {
  l2: number;
  epochs: number;
  stepScale: number;
}

/** Tuned on SpamAssassin (hashed word TF-IDF) and Fashion-MNIST pixels; see the options' docs. */
const DEFAULTS = {
  sparse: { epochs: 8, stepScale: 4 },
  dense: { epochs: 4, stepScale: 0.5 },
} as const;

// Weights are stored interleaved (V[j·K + k]) so that one non-zero of a row touches K adjacent
// weights. Two classes are one logistic regression (K = 1, class 0's score pinned at 0, the
// usual identifiable form), which halves the work on the commonest case (spam/ham).
function trainSoftmax(
  data: RowData,
  labels: Int32Array,
  C: number,
  train: Int32Array,
  opts: Schedule,
  rng: Rng,
): SoftmaxModel {
  const K = C === 2 ? 1 : C;
  const first = C - K; // class of weight column 0
  const V = new Float64Array(data.cols * K);
  const bias = new Float64Array(K);
  let s = 1;
  const lambda = opts.l2;
  // η₀·λ < 1 keeps the shrink factor 1 − η·λ positive.
  const eta0 = Math.min(opts.stepScale / Math.max(data.meanSquaredNorm, 1e-12), 0.5 / lambda);
  const z = new Float64Array(C);
  const g = new Float64Array(K);
  const order = Array.from(train);
  let t = 0;

  // Class scores of row i into out[0..C): s·(x·V) + bias, and 0 for a pinned class.
  const scores = (i: number, out: Float64Array, scale: number): void => {
    const u = out.subarray(first);
    u.fill(0);
    if (data.sparse !== null) {
      const row = data.sparse[i] as SparseVector;
      const idx = row.indices;
      const val = row.values;
      if (K === 1) {
        let acc = 0;
        for (let k = 0; k < idx.length; k++) acc += (val[k] as number) * (V[idx[k] as number] as number);
        u[0] = acc;
      } else {
        for (let k = 0; k < idx.length; k++) {
          const x = val[k] as number;
          const o = (idx[k] as number) * K;
          for (let c = 0; c < K; c++) u[c] = (u[c] as number) + x * (V[o + c] as number);
        }
      }
    } else {
      const d = data.dense as Float32Array;
      const base = i * data.cols;
      for (let j = 0; j < data.cols; j++) {
        const x = d[base + j] as number;
        if (x === 0) continue;
        const o = j * K;
        for (let c = 0; c < K; c++) u[c] = (u[c] as number) + x * (V[o + c] as number);
      }
    }
    for (let c = 0; c < first; c++) out[c] = 0;
    for (let c = 0; c < K; c++) u[c] = (u[c] as number) * scale + (bias[c] as number);
  };

  // V −= step · x ⊗ g
  const update = (i: number, step: number): void => {
    if (data.sparse !== null) {
      const row = data.sparse[i] as SparseVector;
      const idx = row.indices;
      const val = row.values;
      if (K === 1) {
        const gs = (g[0] as number) * step;
        for (let k = 0; k < idx.length; k++) {
          const j = idx[k] as number;
          V[j] = (V[j] as number) - gs * (val[k] as number);
        }
        return;
      }
      for (let k = 0; k < idx.length; k++) {
        const x = (val[k] as number) * step;
        const o = (idx[k] as number) * K;
        for (let c = 0; c < K; c++) V[o + c] = (V[o + c] as number) - x * (g[c] as number);
      }
    } else {
      const d = data.dense as Float32Array;
      const base = i * data.cols;
      for (let j = 0; j < data.cols; j++) {
        const x = (d[base + j] as number) * step;
        if (x === 0) continue;
        const o = j * K;
        for (let c = 0; c < K; c++) V[o + c] = (V[o + c] as number) - x * (g[c] as number);
      }
    }
  };

  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    rng.shuffle(order);
    for (const i of order) {
      scores(i, z, s);
      softmaxInPlace(z);
      const y = labels[i] as number;
      for (let c = 0; c < K; c++) g[c] = (z[c + first] as number) - (c + first === y ? 1 : 0);
      const eta = eta0 / (1 + eta0 * lambda * t++);
      s *= 1 - eta * lambda;
      update(i, eta / s);
      for (let c = 0; c < K; c++) bias[c] = (bias[c] as number) - eta * (g[c] as number);
      // Fold the scale back in before V's entries grow large enough to lose precision.
      if (s < 1e-6) {
        for (let k = 0; k < V.length; k++) V[k] = (V[k] as number) * s;
        s = 1;
      }
    }
  }
  const finalScale = s;
  return {
    predict(i, out) {
      scores(i, out, finalScale);
      softmaxInPlace(out);
    },
    scores(i, out) {
      scores(i, out, finalScale);
    },
    weight(j, c) {
      return c < first ? 0 : (V[j * K + c - first] as number) * finalScale;
    },
    bias(c) {
      return c < first ? 0 : (bias[c - first] as number);
    },
  };
}

/** z ← softmax(z), stable for any scale. */
export function softmaxInPlace(z: Float64Array): void {
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  let sum = 0;
  for (let c = 0; c < z.length; c++) {
    const e = Math.exp((z[c] as number) - max);
    z[c] = e;
    sum += e;
  }
  for (let c = 0; c < z.length; c++) z[c] = (z[c] as number) / sum;
}

function checkLabels(labels: Int32Array, C: number, folds: number): void {
  if (C < 2) throw new AntidoteError("USAGE", `proxy model: needs at least 2 classes, got ${C}`);
  let labeled = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    if (y >= C)
      throw new AntidoteError("USAGE", `proxy model: sample ${i} has label ${y}, but only ${C} classes`);
    if (y >= 0) labeled++;
  }
  if (labeled < folds)
    throw new AntidoteError(
      "USAGE",
      `proxy model: ${labeled} labeled samples cannot be split into ${folds} folds`,
    );
}

function notFinite(row: number): AntidoteError {
  return new AntidoteError("USAGE", `proxy model: row ${row} of the features has a NaN or infinite value`);
}

function mismatch(rows: number, n: number): AntidoteError {
  return new AntidoteError("USAGE", `proxy model: the features have ${rows} rows but there are ${n} labels`);
}
