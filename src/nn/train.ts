// Train a small classifier (MLP or CNN, src/nn/architectures.ts) with TF.js on the wasm
// backend and hand it back as a NetSpec in ONNX layouts, ready for src/onnx/export.ts.
//
// Inside TF.js images are NHWC (the wasm backend's convolutions take nothing else) and weights
// are in TF's layouts (dense [in][out], conv HWIO). The NetSpec is ONNX's: NCHW, dense
// [out][in], conv OIHW, and Flatten in C·H·W order — which permutes the rows of the first
// dense layer after the convolutions, so `toNetSpec` converts rather than copies.
//
// Deterministic for a seed: He-normal initial weights and every epoch's shuffle come from
// src/math/rng.ts, and the wasm backend is single-threaded, so the sums happen in one order.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { Rng } from "../math/rng.js";
import type { Conv2dLayer, DenseLayer, LayerSpec, NetSpec } from "../onnx/net-spec.js";
import { parseArchitecture, pooledSide, type Architecture } from "./architectures.js";
import { CONV2D_BACKPROP_FILTER } from "./conv-filter-grad.js";
import { loadTf, type Tf } from "./tf.js";
import type * as tfTypes from "@tensorflow/tfjs";

/** Training samples: `x` holds `count` samples of prod(inputShape) floats each, NCHW per sample. */
export interface TrainData {
  x: Float32Array;
  /** Class index per sample. */
  y: Uint8Array;
  count: number;
}

export interface EpochReport {
  /** 1-based. */
  epoch: number;
  epochs: number;
  /** Mean cross-entropy over the epoch's batches, weighted by batch size. */
  loss: number;
  /** Accuracy of the batches' predictions as they were made (the weights move during the epoch). */
  accuracy: number;
  /** Seconds spent in this epoch. */
  seconds: number;
  /** Samples per second in this epoch. */
  samplesPerSecond: number;
}

export const trainOptionsSchema = z.object({
  /** Input shape without the batch dimension: [C, H, W] for images, [D] for flat vectors. */
  inputShape: z.array(z.number().int().positive()).min(1).max(3),
  /** Class names in index order, or the number of classes (named "0", "1", …). */
  classes: z.union([z.array(z.string()).min(2), z.number().int().min(2)]),
  epochs: z.number().int().min(1).max(1000).default(3),
  batchSize: z.number().int().min(1).max(4096).default(64),
  /** Adam's step size. */
  learningRate: z.number().positive().max(1).default(0.003),
  seed: z.union([z.number().int(), z.string().min(1)]).default(0),
});

export type TrainOptions = z.input<typeof trainOptionsSchema> & {
  /** Called after every epoch. */
  onEpoch?: (report: EpochReport) => void;
};

export interface TrainedClassifier {
  net: NetSpec;
  /** Accuracy on the training samples during the last epoch (see EpochReport.accuracy). */
  trainAccuracy: number;
  /** Wall-clock seconds of training (initialisation and conversion included). */
  seconds: number;
  /** One report per epoch. */
  history: EpochReport[];
}

/** Train `arch` on `data`; see the module comment for layouts and determinism. */
export async function trainClassifier(
  data: TrainData,
  arch: Architecture,
  options: TrainOptions,
): Promise<TrainedClassifier> {
  const started = performance.now();
  const opts = parseTrainOptions(options);
  const architecture = parseArchitecture(arch);
  const classes =
    typeof opts.classes === "number"
      ? Array.from({ length: opts.classes }, (_, i) => String(i))
      : [...opts.classes];
  const shape = checkData(data, opts.inputShape, classes.length);
  if (architecture.kind === "cnn" && opts.inputShape.length !== 3) {
    throw new AntidoteError(
      "USAGE",
      `a CNN needs an image input shape [C, H, W]; got [${opts.inputShape.join(", ")}].`,
    );
  }

  const tf = await loadTf();
  const rng = new Rng(opts.seed);
  const model = buildModel(tf, architecture, shape, classes.length, rng);
  const optimizer = tf.train.adam(opts.learningRate);
  const history: EpochReport[] = [];
  try {
    const order = Array.from({ length: data.count }, (_, i) => i);
    const perSample = shape.size;
    const xBatch = new Float32Array(opts.batchSize * perSample);
    const yBatch = new Int32Array(opts.batchSize);
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      const t0 = performance.now();
      rng.shuffle(order);
      let lossSum = 0;
      let correct = 0;
      for (let start = 0; start < data.count; start += opts.batchSize) {
        const n = Math.min(opts.batchSize, data.count - start);
        for (let j = 0; j < n; j++) {
          const i = order[start + j] as number;
          yBatch[j] = data.y[i] as number;
          copySample(data.x, i, xBatch, j, shape, model.channelsLast);
        }
        const step = trainStep(tf, model, optimizer, xBatch.subarray(0, n * perSample), yBatch, n);
        lossSum += step.loss * n;
        correct += step.correct;
      }
      const seconds = (performance.now() - t0) / 1000;
      const report: EpochReport = {
        epoch,
        epochs: opts.epochs,
        loss: lossSum / data.count,
        accuracy: correct / data.count,
        seconds,
        samplesPerSecond: data.count / seconds,
      };
      history.push(report);
      options.onEpoch?.(report);
    }
    const net = toNetSpec(model, architecture, opts.inputShape, classes);
    return {
      net,
      trainAccuracy: history[history.length - 1]?.accuracy ?? 0,
      seconds: (performance.now() - started) / 1000,
      history,
    };
  } finally {
    optimizer.dispose();
    for (const v of model.variables) v.dispose();
  }
}

/** Class probabilities (row-major n × classes) of `net` on `x`, n samples laid out NCHW. */
export async function predictNet(net: NetSpec, x: Float32Array, n: number): Promise<Float32Array> {
  return runNet(net, x, n, true);
}

/** Logits (row-major n × classes) of `net` on `x`, n samples laid out NCHW. */
export async function netLogits(net: NetSpec, x: Float32Array, n: number): Promise<Float32Array> {
  return runNet(net, x, n, false);
}

/** Index of the largest value in each row of a row-major n × k matrix. */
export function argmaxRows(scores: Float32Array, k: number): Int32Array {
  const n = Math.floor(scores.length / k);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestScore = -Infinity;
    for (let c = 0; c < k; c++) {
      const s = scores[i * k + c] as number;
      if (s > bestScore) {
        bestScore = s;
        best = c;
      }
    }
    out[i] = best;
  }
  return out;
}

// ---------------------------------------------------------------------------------------

type ParsedTrainOptions = z.output<typeof trainOptionsSchema>;

function parseTrainOptions(options: TrainOptions): ParsedTrainOptions {
  const { onEpoch: _onEpoch, ...rest } = options;
  const parsed = trainOptionsSchema.safeParse(rest);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new AntidoteError(
    "USAGE",
    `training options: ${issue?.path.join(".") ?? "(top level)"}: ${issue?.message ?? "invalid"}.`,
  );
}

/** Per-sample geometry: channels, height, width (a flat input is 1 × 1 × D) and the float count. */
interface SampleShape {
  channels: number;
  height: number;
  width: number;
  size: number;
}

function checkData(data: TrainData, inputShape: readonly number[], classCount: number): SampleShape {
  const [a = 1, b, c] = inputShape;
  const shape: SampleShape =
    b === undefined
      ? { channels: 1, height: 1, width: a, size: a }
      : { channels: a, height: b, width: c ?? 1, size: a * b * (c ?? 1) };
  if (!Number.isInteger(data.count) || data.count < 1)
    throw new AntidoteError("USAGE", `training data: count must be a positive integer; got ${data.count}.`);
  if (data.x.length < data.count * shape.size) {
    throw new AntidoteError(
      "USAGE",
      `training data: x holds ${data.x.length} floats, fewer than count × [${inputShape.join(", ")}] = ${data.count * shape.size}.`,
    );
  }
  if (data.y.length < data.count)
    throw new AntidoteError(
      "USAGE",
      `training data: y has ${data.y.length} labels for ${data.count} samples.`,
    );
  for (let i = 0; i < data.count; i++) {
    if ((data.y[i] as number) >= classCount) {
      throw new AntidoteError(
        "USAGE",
        `training data: sample ${i} has label ${data.y[i]}, but there are only ${classCount} classes.`,
      );
    }
  }
  return shape;
}

// Sample i of NCHW `src` into slot j of `dst`, NHWC when `channelsLast` (a plain copy otherwise,
// and for one channel, where the two layouts coincide).
function copySample(
  src: Float32Array,
  i: number,
  dst: Float32Array,
  j: number,
  shape: SampleShape,
  channelsLast: boolean,
): void {
  const { channels: C, size } = shape;
  const from = i * size;
  const to = j * size;
  if (!channelsLast || C === 1) {
    dst.set(src.subarray(from, from + size), to);
    return;
  }
  const plane = shape.height * shape.width;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < C; c++) dst[to + p * C + c] = src[from + c * plane + p] as number;
  }
}

// ---------------------------------------------------------------------------------------
// The model in TF layouts.

interface TfModel {
  /** CNN input is NHWC; an MLP takes flat NCHW-ordered rows. */
  channelsLast: boolean;
  shape: SampleShape;
  variables: tfTypes.Variable[];
  /** `retain` must tf.keep a tensor that a hand-written gradient reads (see convBiasRelu); the caller disposes it after the step. */
  forward(x: tfTypes.Tensor, retain: (t: tfTypes.Tensor) => void): tfTypes.Tensor2D;
  /** Spatial size and channels at the flatten (CNN), for the row permutation. */
  flat?: { height: number; width: number; channels: number };
}

function buildModel(tf: Tf, arch: Architecture, shape: SampleShape, classes: number, rng: Rng): TfModel {
  const vars: tfTypes.Variable[] = [];
  const heNormal = (dims: number[], fanIn: number): tfTypes.Variable => {
    const size = dims.reduce((p, d) => p * d, 1);
    const sd = Math.sqrt(2 / fanIn);
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = rng.normal() * sd;
    return keep(tf.tensor(values, dims));
  };
  const zeros = (n: number): tfTypes.Variable => keep(tf.zeros([n]));
  // A variable shares its initial tensor's data but not its handle: dispose the handle.
  const keep = (initial: tfTypes.Tensor): tfTypes.Variable => {
    const v = tf.variable(initial, true);
    initial.dispose();
    vars.push(v);
    return v;
  };

  if (arch.kind === "mlp") {
    const w1 = heNormal([shape.size, arch.hidden], shape.size);
    const b1 = zeros(arch.hidden);
    const w2 = heNormal([arch.hidden, classes], arch.hidden);
    const b2 = zeros(classes);
    return {
      channelsLast: false,
      shape,
      variables: vars,
      forward: (x) => {
        const h = tf.relu(tf.add(tf.matMul(x as tfTypes.Tensor2D, w1), b1));
        return tf.add(tf.matMul(h, w2), b2);
      },
    };
  }

  const k = arch.kernel;
  const pad = (k - 1) / 2;
  const [c1, c2] = arch.channels;
  const f1 = heNormal([k, k, shape.channels, c1], k * k * shape.channels);
  const b1 = zeros(c1);
  const f2 = heNormal([k, k, c1, c2], k * k * c1);
  const b2 = zeros(c2);
  const height = pooledSide(shape.height);
  const width = pooledSide(shape.width);
  const flatSize = height * width * c2;
  if (flatSize === 0) {
    throw new AntidoteError(
      "USAGE",
      `a CNN needs images at least 4×4 (two 2× max-pools); got ${shape.height}×${shape.width}.`,
    );
  }
  const hidden = arch.hidden;
  const wh = hidden === undefined ? undefined : heNormal([flatSize, hidden], flatSize);
  const bh = hidden === undefined ? undefined : zeros(hidden);
  const penultimate = hidden ?? flatSize;
  const wo = heNormal([penultimate, classes], penultimate);
  const bo = zeros(classes);
  return {
    channelsLast: true,
    shape,
    variables: vars,
    flat: { height, width, channels: c2 },
    forward: (x, retain) => {
      const a1 = maxPool2(tf, convBiasRelu(tf, x, f1, b1, pad, false, retain), retain);
      const a2 = maxPool2(tf, convBiasRelu(tf, a1, f2, b2, pad, true, retain), retain);
      let h: tfTypes.Tensor2D = tf.reshape(a2, [-1, flatSize]);
      if (wh !== undefined && bh !== undefined) h = tf.relu(tf.add(tf.matMul(h, wh), bh)) as tfTypes.Tensor2D;
      return tf.add(tf.matMul(h, wo), bo);
    },
  };
}

// Two training-only ops with hand-written gradients, because the wasm backend's own are the
// slow part of a CNN step, and one is wrong. Profiled here (batch 64, the default CNN), its
// Conv2DBackpropInput took 26–40 ms and MaxPoolGrad 25 ms of a step, where a forward convolution
// (XNNPACK) of the same size takes 2 ms; a whole forward + backward step went from 58 ms with
// TF's own gradients (and our filter kernel) to 30 ms with these (best of 60 steps each,
// interleaved, on a loaded machine). And the wasm MaxPoolGrad (TF.js 4.22) drops the gradient of
// any window whose maximum is negative; the cpu backend's and ours do not.
//
// Both read tensors from their closure rather than customGrad's `save`: save clones inside the
// op, which on wasm allocates, and with IS_TEST set (src/nn/tf.ts) TF.js counts that as a leak.
// So `retain` must tf.keep each tensor handed to it, and the caller disposes them after the step.

/**
 * relu(conv2d(x, f) + b) for a stride-1 convolution with symmetric padding (k − 1)/2, forward
 * in one fused kernel. Backward, with g = dy where the output is positive: the bias gradient is
 * Σg, the filter gradient is ours (conv-filter-grad.ts), and the input gradient is itself such
 * a convolution — of g with the filter rotated 180° and its in/out channels swapped — so it runs
 * on the fast forward kernel. The first layer's input needs no gradient: `inputGradient` false
 * returns zeros for it.
 */
export function convBiasRelu(
  tf: Tf,
  x: tfTypes.Tensor,
  f: tfTypes.Tensor,
  b: tfTypes.Tensor,
  pad: number,
  inputGradient: boolean,
  retain: (t: tfTypes.Tensor) => void,
): tfTypes.Tensor4D {
  const sx = x as tfTypes.Tensor4D;
  const sf = f as tfTypes.Tensor4D;
  retain(sx);
  const op = tf.customGrad((...args: (tfTypes.Tensor | tfTypes.GradSaveFunc)[]) => {
    const [input, filter, bias] = args as [tfTypes.Tensor4D, tfTypes.Tensor4D, tfTypes.Tensor1D];
    return {
      value: tf.fused.conv2d({ x: input, filter, bias, strides: 1, pad, activation: "relu" }),
      gradFunc: (dy: tfTypes.Tensor4D) => {
        // The output is positive exactly where the pre-activation is.
        const g: tfTypes.Tensor4D = tf.mul(dy, tf.step(output));
        const dFilter = tf
          .engine()
          .runKernel<tfTypes.Tensor>(
            CONV2D_BACKPROP_FILTER,
            { x: sx, dy: g },
            { strides: 1, pad, dataFormat: "NHWC", filterShape: sf.shape },
          );
        const dInput = inputGradient
          ? tf.conv2d(g, tf.transpose(tf.reverse(sf, [0, 1]), [0, 1, 3, 2]), 1, pad)
          : tf.zerosLike(sx);
        return [dInput, dFilter, tf.sum(g, [0, 1, 2])];
      },
    };
  });
  const output = op(x, f, b);
  retain(output);
  return output;
}

/**
 * 2×2 max-pool, stride 2, no padding (odd edges dropped, as ONNX MaxPool floors). The gradient
 * goes to the first maximum of each window in row-major order, computed in JS on NHWC data.
 */
export function maxPool2(tf: Tf, x: tfTypes.Tensor, retain: (t: tfTypes.Tensor) => void): tfTypes.Tensor4D {
  const sx = x as tfTypes.Tensor4D;
  retain(sx);
  const op = tf.customGrad((...args: (tfTypes.Tensor | tfTypes.GradSaveFunc)[]) => {
    const [input] = args as [tfTypes.Tensor4D];
    return {
      value: tf.maxPool(input, 2, 2, "valid"),
      gradFunc: (dy: tfTypes.Tensor4D) => {
        const [n, h, w, c] = sx.shape;
        const dx = maxPool2Gradient(sx.dataSync() as Float32Array, dy.dataSync() as Float32Array, n, h, w, c);
        return [tf.tensor4d(dx, sx.shape)];
      },
    };
  });
  return op(x);
}

/** dL/dx of a 2×2 stride-2 max-pool over NHWC `x` [n, h, w, c], given dL/dy. */
export function maxPool2Gradient(
  x: Float32Array,
  dy: Float32Array,
  n: number,
  h: number,
  w: number,
  c: number,
): Float32Array {
  const oh = Math.floor(h / 2);
  const ow = Math.floor(w / 2);
  const dx = new Float32Array(n * h * w * c);
  const row = w * c;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const p00 = ((b * h + 2 * i) * w + 2 * j) * c;
        const p01 = p00 + c;
        const p10 = p00 + row;
        const p11 = p10 + c;
        const o = ((b * oh + i) * ow + j) * c;
        for (let k = 0; k < c; k++) {
          let at = p00 + k;
          let best = x[at] as number;
          if ((x[p01 + k] as number) > best) {
            at = p01 + k;
            best = x[at] as number;
          }
          if ((x[p10 + k] as number) > best) {
            at = p10 + k;
            best = x[at] as number;
          }
          if ((x[p11 + k] as number) > best) at = p11 + k;
          dx[at] = dy[o + k] as number;
        }
      }
    }
  }
  return dx;
}

function trainStep(
  tf: Tf,
  model: TfModel,
  optimizer: tfTypes.Optimizer,
  xb: Float32Array,
  yb: Int32Array,
  n: number,
): { loss: number; correct: number } {
  const { channels, height, width, size } = model.shape;
  let loss: tfTypes.Scalar | null = null;
  let correct: tfTypes.Tensor | undefined;
  const retained: tfTypes.Tensor[] = [];
  const retain = (t: tfTypes.Tensor): void => {
    if (!(t instanceof tf.Variable)) retained.push(tf.keep(t));
  };
  try {
    loss = optimizer.minimize(
      () => {
        const x = model.channelsLast
          ? tf.tensor4d(xb, [n, height, width, channels])
          : tf.tensor2d(xb, [n, size]);
        const labels = tf.tensor1d(yb.subarray(0, n), "int32");
        const logits = model.forward(x, retain);
        correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), "int32")));
        // logits − logΣexp rather than tf.logSoftmax: with IS_TEST set (src/nn/tf.ts), TF.js checks
        // every kernel for leaked tensors, and logSoftmax's fused gradient fails that check on wasm.
        const logp = tf.sub(logits, tf.logSumExp(logits, 1, true));
        const k = logits.shape[1] ?? 1;
        return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, k), logp), 1))) as tfTypes.Scalar;
      },
      true,
      model.variables,
    );
    return { loss: loss?.dataSync()[0] ?? NaN, correct: correct?.dataSync()[0] ?? 0 };
  } finally {
    loss?.dispose();
    correct?.dispose();
    for (const t of retained) t.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// TF layouts → ONNX layouts.

function read(v: tfTypes.Variable): Float32Array {
  return v.dataSync() as Float32Array;
}

// TF dense [in][out] → ONNX [out][in]; `row(i)` maps an ONNX input index to TF's.
function denseLayer(w: tfTypes.Variable, b: tfTypes.Variable, row?: (onnxIn: number) => number): DenseLayer {
  const [inputs = 0, outputs = 0] = w.shape;
  const src = read(w);
  const weight = new Float32Array(inputs * outputs);
  for (let i = 0; i < inputs; i++) {
    const r = row === undefined ? i : row(i);
    for (let o = 0; o < outputs; o++) weight[o * inputs + i] = src[r * outputs + o] as number;
  }
  return { kind: "dense", inputs, outputs, weight, bias: Float32Array.from(read(b)) };
}

// HWIO → OIHW.
function convLayer(f: tfTypes.Variable, b: tfTypes.Variable): Conv2dLayer {
  const [kh = 0, kw = 0, inC = 0, outC = 0] = f.shape;
  const src = read(f);
  const weight = new Float32Array(src.length);
  for (let r = 0; r < kh; r++)
    for (let s = 0; s < kw; s++)
      for (let c = 0; c < inC; c++)
        for (let o = 0; o < outC; o++)
          weight[((o * inC + c) * kh + r) * kw + s] = src[((r * kw + s) * inC + c) * outC + o] as number;
  return {
    kind: "conv2d",
    inChannels: inC,
    outChannels: outC,
    kernel: kh,
    stride: 1,
    padding: (kh - 1) / 2,
    weight,
    bias: Float32Array.from(read(b)),
  };
}

function toNetSpec(
  model: TfModel,
  arch: Architecture,
  inputShape: readonly number[],
  classes: string[],
): NetSpec {
  const v = model.variables;
  const at = (i: number): tfTypes.Variable => v[i] as tfTypes.Variable;
  const layers: LayerSpec[] = [];
  if (arch.kind === "mlp") {
    if (inputShape.length > 1) layers.push({ kind: "flatten" });
    layers.push(denseLayer(at(0), at(1)), { kind: "relu" }, denseLayer(at(2), at(3)));
  } else {
    const flat = model.flat ?? { height: 0, width: 0, channels: 0 };
    const plane = flat.height * flat.width;
    // ONNX flatten index c·H·W + p (p = h·W + w) is TF's NHWC index p·C + c.
    const nchwToNhwc = (i: number): number => (i % plane) * flat.channels + Math.floor(i / plane);
    layers.push(
      convLayer(at(0), at(1)),
      { kind: "relu" },
      { kind: "maxpool", size: 2 },
      convLayer(at(2), at(3)),
      { kind: "relu" },
      { kind: "maxpool", size: 2 },
      { kind: "flatten" },
    );
    if (arch.hidden !== undefined) {
      layers.push(denseLayer(at(4), at(5), nchwToNhwc), { kind: "relu" }, denseLayer(at(6), at(7)));
    } else {
      layers.push(denseLayer(at(4), at(5), nchwToNhwc));
    }
  }
  return { inputShape: [...inputShape], classes, layers };
}

// ---------------------------------------------------------------------------------------
// A NetSpec run in TF.js, read with ONNX semantics (NCHW in; Flatten in C·H·W order), so it is
// an independent check of the conversion above and a reference for the exported file.

const PREDICT_BATCH = 256;

async function runNet(net: NetSpec, x: Float32Array, n: number, softmax: boolean): Promise<Float32Array> {
  const tf = await loadTf();
  const perSample = net.inputShape.reduce((p, d) => p * d, 1);
  if (x.length < n * perSample) {
    throw new AntidoteError(
      "USAGE",
      `predict: x holds ${x.length} floats, fewer than ${n} × [${net.inputShape.join(", ")}].`,
    );
  }
  const k = net.classes.length;
  const out = new Float32Array(n * k);
  const weights = netTensors(tf, net);
  try {
    for (let start = 0; start < n; start += PREDICT_BATCH) {
      const m = Math.min(PREDICT_BATCH, n - start);
      const values = tf.tidy(() => {
        const input = tf.tensor(x.subarray(start * perSample, (start + m) * perSample), [
          m,
          ...net.inputShape,
        ]);
        const logits = forwardNet(tf, net, weights, input);
        return (softmax ? tf.softmax(logits) : logits).dataSync();
      });
      out.set(values, start * k);
    }
  } finally {
    for (const t of weights.flat()) t?.dispose();
  }
  return out;
}

// One TF tensor per weighted layer, in TF layouts (dense [in][out], conv HWIO); undefined elsewhere.
function netTensors(tf: Tf, net: NetSpec): (tfTypes.Tensor | undefined)[][] {
  return net.layers.map((layer) => {
    if (layer.kind === "dense") {
      const w = tf.tidy(() => tf.transpose(tf.tensor2d(layer.weight, [layer.outputs, layer.inputs])));
      return [w, tf.tensor1d(layer.bias)];
    }
    if (layer.kind === "conv2d") {
      const { outChannels: o, inChannels: c, kernel: k } = layer;
      const w = tf.tidy(() => tf.transpose(tf.tensor4d(layer.weight, [o, c, k, k]), [2, 3, 1, 0]));
      return [w, tf.tensor1d(layer.bias)];
    }
    return [];
  });
}

function forwardNet(
  tf: Tf,
  net: NetSpec,
  weights: readonly (readonly (tfTypes.Tensor | undefined)[])[],
  input: tfTypes.Tensor,
): tfTypes.Tensor2D {
  // Activations are kept NHWC while 4-D (what the wasm kernels take) and turned back to NCHW
  // at Flatten, so the flattened order is ONNX's.
  let a: tfTypes.Tensor = input.rank === 4 ? tf.transpose(input, [0, 2, 3, 1]) : input;
  net.layers.forEach((layer, i) => {
    const [w, b] = weights[i] ?? [];
    switch (layer.kind) {
      case "conv2d":
        a = tf.add(
          tf.conv2d(a as tfTypes.Tensor4D, w as tfTypes.Tensor4D, layer.stride, layer.padding),
          b as tfTypes.Tensor,
        );
        break;
      case "relu":
        a = tf.relu(a);
        break;
      case "maxpool":
        a = tf.maxPool(a as tfTypes.Tensor4D, layer.size, layer.size, "valid");
        break;
      case "flatten":
        if (a.rank === 4) a = tf.transpose(a, [0, 3, 1, 2]);
        a = tf.reshape(a, [a.shape[0] ?? -1, -1]);
        break;
      case "dense":
        a = tf.add(tf.matMul(a as tfTypes.Tensor2D, w as tfTypes.Tensor2D), b as tfTypes.Tensor);
        break;
    }
  });
  return a as tfTypes.Tensor2D;
}
