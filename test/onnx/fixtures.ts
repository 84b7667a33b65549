// Models for the ONNX tests, built from real Fashion-MNIST: an MLP trained with the federated
// simulator's Trainer (784 → 64 → 10), a small random-weight CNN, and a plain JS forward pass
// over any NetSpec — the oracle ONNX Runtime's outputs are compared with.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sample } from "../../src/data/sample.js";
import { Rng } from "../../src/math/rng.js";
import { decodeOnnxModel, encodeOnnxModel, onnx } from "../../src/onnx/model-file.js";
import type { Conv2dLayer, DenseLayer, NetSpec } from "../../src/onnx/net-spec.js";
import { initParameters, modelSpec, Trainer, type Examples } from "../../src/robust/fl/model.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

export { FASHION_MNIST_CLASSES };

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "antidote-onnx-"));
}

export function writeModel(dir: string, name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Decode, edit and re-encode a model. */
export function editModel(bytes: Uint8Array, edit: (proto: onnx.ModelProto) => void): Uint8Array {
  const proto = onnx.ModelProto.decode(bytes);
  edit(proto);
  return encodeOnnxModel(proto);
}

/** Samples → one block of flat pixel rows (single-channel images: HWC = CHW order). */
export function examplesOf(samples: readonly Sample[]): Examples {
  const x = new Float32Array(samples.length * 784);
  const y = new Uint8Array(samples.length);
  samples.forEach((s, i) => {
    x.set(s.image!.data, i * 784);
    y[i] = FASHION_MNIST_CLASSES.indexOf(s.label!);
  });
  return { count: samples.length, inputs: 784, x, y };
}

export interface TrainedMlp {
  net: NetSpec;
  trainer: Trainer;
  params: Float32Array;
  trainAccuracy: number;
}

/** A 784 → 64 → 10 ReLU MLP trained by SGD on `examples`. */
export function trainFashionMlp(examples: Examples, seed = 1, epochs = 4): TrainedMlp {
  const spec = modelSpec("mlp", { inputs: 784, hidden: 64, classes: 10 });
  const trainer = new Trainer(spec);
  const rng = new Rng(seed);
  const params = initParameters(spec, rng);
  const all = Int32Array.from({ length: examples.count }, (_, i) => i);
  const update = trainer.trainLocal(params, examples, all, { epochs, batchSize: 32, learningRate: 0.1 }, rng);
  for (let i = 0; i < params.length; i++) params[i] = params[i]! + update[i]!;
  const net = mlpToNetSpec(params, 784, 64, 10);
  return { net, trainer, params, trainAccuracy: trainer.accuracy(params, examples) };
}

/**
 * The Trainer's flat parameters — W1 [inputs][hidden], b1, W2 [hidden][classes], b2, input-major —
 * as a NetSpec, whose dense weights are [outputs][inputs].
 */
export function mlpToNetSpec(params: Float32Array, inputs: number, hidden: number, classes: number): NetSpec {
  const transpose = (offset: number, rows: number, cols: number): Float32Array => {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) out[c * rows + r] = params[offset + r * cols + c]!;
    return out;
  };
  const b1 = inputs * hidden;
  const w2 = b1 + hidden;
  const b2 = w2 + hidden * classes;
  return {
    inputShape: [inputs],
    classes: FASHION_MNIST_CLASSES.slice(0, classes),
    layers: [
      {
        kind: "dense",
        inputs,
        outputs: hidden,
        weight: transpose(0, inputs, hidden),
        bias: params.slice(b1, w2),
      },
      { kind: "relu" },
      {
        kind: "dense",
        inputs: hidden,
        outputs: classes,
        weight: transpose(w2, hidden, classes),
        bias: params.slice(b2),
      },
    ],
  };
}

/**
 * 1×28×28 → conv 4@3×3 pad 1 → ReLU → max-pool 2 → conv 8@3×3 stride 2 → ReLU → flatten (288) →
 * dense 16 → ReLU → dense 10, with seeded random weights: exercises padding, strides and pooling.
 */
export function randomCnn(seed = 7): NetSpec {
  const rng = new Rng(seed);
  const w = (n: number, fanIn: number) =>
    Float32Array.from({ length: n }, () => rng.normal() * Math.sqrt(2 / fanIn));
  const conv = (ci: number, co: number, stride: number, padding: number): Conv2dLayer => ({
    kind: "conv2d",
    inChannels: ci,
    outChannels: co,
    kernel: 3,
    stride,
    padding,
    weight: w(co * ci * 9, ci * 9),
    bias: w(co, 4),
  });
  const dense = (i: number, o: number): DenseLayer => ({
    kind: "dense",
    inputs: i,
    outputs: o,
    weight: w(i * o, i),
    bias: w(o, 4),
  });
  return {
    inputShape: [1, 28, 28],
    classes: FASHION_MNIST_CLASSES,
    layers: [
      conv(1, 4, 1, 1),
      { kind: "relu" },
      { kind: "maxpool", size: 2 },
      conv(4, 8, 2, 0),
      { kind: "relu" },
      { kind: "flatten" },
      dense(288, 16),
      { kind: "relu" },
      dense(16, 10),
    ],
  };
}

/** Plain JS forward pass: the logits and the input of the last dense layer (penultimate features). */
export function forwardNet(
  net: NetSpec,
  x: Float32Array,
  n: number,
): { logits: Float32Array; features: Float32Array; featureDims: number } {
  const inSize = net.inputShape.reduce((a, b) => a * b, 1);
  const last = net.layers.length - 1;
  let featureDims = 0;
  const logits = new Float32Array(n * net.classes.length);
  let features = new Float32Array(0);
  for (let i = 0; i < n; i++) {
    let shape = [...net.inputShape];
    let a: Float64Array = Float64Array.from(x.subarray(i * inSize, (i + 1) * inSize));
    net.layers.forEach((layer, l) => {
      if (l === last) {
        if (features.length === 0) {
          featureDims = a.length;
          features = new Float32Array(n * featureDims);
        }
        features.set(a, i * featureDims);
      }
      switch (layer.kind) {
        case "relu":
          a = a.map((v) => Math.max(0, v));
          break;
        case "flatten":
          shape = [a.length];
          break;
        case "dense": {
          const out = new Float64Array(layer.outputs);
          for (let o = 0; o < layer.outputs; o++) {
            let s = layer.bias[o]!;
            for (let j = 0; j < layer.inputs; j++) s += layer.weight[o * layer.inputs + j]! * a[j]!;
            out[o] = s;
          }
          a = out;
          shape = [layer.outputs];
          break;
        }
        case "conv2d": {
          const [C, H, W] = shape as [number, number, number];
          const { outChannels: O, kernel: K, stride: S, padding: P } = layer;
          const OH = Math.floor((H + 2 * P - K) / S) + 1;
          const OW = Math.floor((W + 2 * P - K) / S) + 1;
          const out = new Float64Array(O * OH * OW);
          for (let o = 0; o < O; o++)
            for (let y = 0; y < OH; y++)
              for (let xx = 0; xx < OW; xx++) {
                let s = layer.bias[o]!;
                for (let c = 0; c < C; c++)
                  for (let ky = 0; ky < K; ky++)
                    for (let kx = 0; kx < K; kx++) {
                      const iy = y * S + ky - P;
                      const ix = xx * S + kx - P;
                      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                      s += layer.weight[((o * C + c) * K + ky) * K + kx]! * a[(c * H + iy) * W + ix]!;
                    }
                out[(o * OH + y) * OW + xx] = s;
              }
          a = out;
          shape = [O, OH, OW];
          break;
        }
        case "maxpool": {
          const [C, H, W] = shape as [number, number, number];
          const k = layer.size;
          const OH = Math.floor(H / k);
          const OW = Math.floor(W / k);
          const out = new Float64Array(C * OH * OW);
          for (let c = 0; c < C; c++)
            for (let y = 0; y < OH; y++)
              for (let xx = 0; xx < OW; xx++) {
                let m = -Infinity;
                for (let dy = 0; dy < k; dy++)
                  for (let dx = 0; dx < k; dx++) m = Math.max(m, a[(c * H + y * k + dy) * W + xx * k + dx]!);
                out[(c * OH + y) * OW + xx] = m;
              }
          a = out;
          shape = [C, OH, OW];
          break;
        }
      }
    });
    logits.set(a, i * net.classes.length);
  }
  return { logits, features, featureDims };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function softmaxRows(logits: Float32Array, C: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i += C) {
    const row = logits.subarray(i, i + C);
    const max = Math.max(...row);
    let sum = 0;
    for (let j = 0; j < C; j++) sum += Math.exp(row[j]! - max);
    for (let j = 0; j < C; j++) out[i + j] = Math.exp(row[j]! - max) / sum;
  }
  return out;
}

export { decodeOnnxModel, fashionMnistSamples };
