// The trainer on real Fashion-MNIST (held-out accuracy floors), its determinism and tensor
// hygiene, and the TF → ONNX layout conversion on a task that only a correctly converted
// multi-channel CNN can solve.
import { beforeAll, describe, expect, it } from "vitest";
import { isAntidoteError } from "../../src/errors.js";
import { Rng } from "../../src/math/rng.js";
import { defaultArchitecture, parseArchitecture } from "../../src/nn/architectures.js";
import { loadTf, type Tf } from "../../src/nn/tf.js";
import { argmaxRows, netLogits, predictNet, trainClassifier, type TrainData } from "../../src/nn/train.js";
import type { Conv2dLayer, DenseLayer, NetSpec } from "../../src/onnx/net-spec.js";
import { accuracy, fashionSamples, FM_INPUT_SHAPE, toImages } from "../helpers/fm-models.js";

let tf: Tf;
let train: TrainData;
let test: TrainData;
beforeAll(async () => {
  tf = await loadTf();
  train = toImages(await fashionSamples("train", 4000));
  test = toImages(await fashionSamples("test", 1000));
});

const FM = { inputShape: [...FM_INPUT_SHAPE], classes: 10 };

describe("trainClassifier on Fashion-MNIST", () => {
  it("an MLP reaches ≥ 0.78 held-out accuracy, and no tensor outlives training or prediction", async () => {
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    const trained = await trainClassifier(train, defaultArchitecture("mlp"), {
      ...FM,
      epochs: 3,
      seed: 1,
      onEpoch: (e) => losses.push(e.loss),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(losses).toHaveLength(3);
    expect(losses[2]).toBeLessThan(losses[0] as number);
    expect(trained.trainAccuracy).toBeGreaterThan(0.75);
    expect(await accuracy(trained.net, test)).toBeGreaterThanOrEqual(0.78);
    expect(tf.memory().numTensors).toBe(before);
    const kinds = trained.net.layers.map((l) => l.kind);
    expect(kinds).toEqual(["flatten", "dense", "relu", "dense"]);
    expect(trained.net.inputShape).toEqual([1, 28, 28]);
  });

  it("a CNN reaches ≥ 0.78 held-out accuracy, with ONNX-layout weights of the right sizes", async () => {
    const before = tf.memory().numTensors;
    const trained = await trainClassifier(train, defaultArchitecture("cnn"), { ...FM, epochs: 2, seed: 1 });
    expect(tf.memory().numTensors).toBe(before);
    expect(await accuracy(trained.net, test)).toBeGreaterThanOrEqual(0.78);
    const net = trained.net;
    expect(net.layers.map((l) => l.kind)).toEqual([
      "conv2d",
      "relu",
      "maxpool",
      "conv2d",
      "relu",
      "maxpool",
      "flatten",
      "dense",
      "relu",
      "dense",
    ]);
    const conv2 = net.layers[3] as Conv2dLayer;
    expect([conv2.outChannels, conv2.inChannels, conv2.kernel, conv2.padding]).toEqual([16, 8, 3, 1]);
    expect(conv2.weight).toHaveLength(16 * 8 * 9);
    const hidden = net.layers[7] as DenseLayer;
    expect([hidden.outputs, hidden.inputs]).toEqual([64, 16 * 7 * 7]);
  });
});

describe("determinism and validation", () => {
  const small = (): TrainData => ({
    x: train.x.subarray(0, 500 * 784),
    y: train.y.subarray(0, 500),
    count: 500,
  });
  const weights = (net: NetSpec): number[] =>
    net.layers.flatMap((l) => (l.kind === "dense" || l.kind === "conv2d" ? Array.from(l.weight) : []));

  it("the same seed gives the same weights; another seed does not", async () => {
    const arch = parseArchitecture({ kind: "cnn", channels: [4, 4], kernel: 3 });
    const opts = { ...FM, epochs: 1, batchSize: 100 };
    const a = await trainClassifier(small(), arch, { ...opts, seed: 5 });
    const b = await trainClassifier(small(), arch, { ...opts, seed: 5 });
    const c = await trainClassifier(small(), arch, { ...opts, seed: 6 });
    expect(weights(a.net)).toEqual(weights(b.net));
    expect(weights(a.net)).not.toEqual(weights(c.net));
  });

  it("rejects a label out of range, a CNN on flat input, short data and a bad architecture, as USAGE", async () => {
    const usage = async (p: Promise<unknown>, words: RegExp): Promise<void> => {
      const e: unknown = await p.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isAntidoteError(e) && e.code === "USAGE" && words.test(e.message)).toBe(true);
    };
    const bad = small();
    const y = Uint8Array.from(bad.y);
    y[7] = 10;
    await usage(trainClassifier({ ...bad, y }, defaultArchitecture("mlp"), FM), /sample 7 has label 10/);
    await usage(
      trainClassifier(small(), defaultArchitecture("cnn"), { inputShape: [784], classes: 10 }),
      /CNN needs an image input shape/,
    );
    await usage(
      trainClassifier({ ...small(), count: 5000 }, defaultArchitecture("mlp"), FM),
      /x holds 392000 floats/,
    );
    await usage(
      Promise.resolve().then(() => parseArchitecture({ kind: "cnn", channels: [4], kernel: 3 })),
      /channels/,
    );
    await usage(
      Promise.resolve().then(() => parseArchitecture({ kind: "cnn", channels: [4, 4], kernel: 2 })),
      /odd/,
    );
  });
});

// Six classes: which of three channels carries a bright 3×3 blob, and whether it sits in the
// top or the bottom half; the rest is noise. Solving it needs both the channel and the position,
// so a transposed conv filter or a flatten in the wrong order would leave predictNet (which reads
// the NetSpec with ONNX semantics) near chance while training accuracy is high.
function blobs(n: number, seed: number): TrainData {
  const rng = new Rng(seed);
  const side = 8;
  const plane = side * side;
  const x = new Float32Array(n * 3 * plane);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 3 * plane; j++) x[i * 3 * plane + j] = rng.next() * 0.3;
    const channel = rng.int(3);
    const bottom = rng.int(2);
    y[i] = channel * 2 + bottom;
    const r0 = bottom * 4 + rng.int(2);
    const c0 = rng.int(side - 2);
    for (let r = r0; r < r0 + 3; r++)
      for (let c = c0; c < c0 + 3; c++) x[i * 3 * plane + channel * plane + r * side + c] = 1;
  }
  return { x, y, count: n };
}

describe("TF → ONNX layout conversion", () => {
  for (const kind of ["cnn", "mlp"] as const) {
    it(`a 3-channel ${kind.toUpperCase()} solves the blob task through predictNet, as it did in training`, async () => {
      const data = blobs(1200, 3);
      const arch =
        kind === "cnn"
          ? parseArchitecture({ kind: "cnn", channels: [6, 8], kernel: 3 })
          : parseArchitecture({ kind: "mlp", hidden: 32 });
      const trained = await trainClassifier(data, arch, {
        inputShape: [3, 8, 8],
        classes: 6,
        epochs: 6,
        batchSize: 32,
        learningRate: 0.01,
        seed: 2,
      });
      expect(trained.trainAccuracy).toBeGreaterThan(0.95);
      const held = blobs(300, 4);
      expect(await accuracy(trained.net, held)).toBeGreaterThan(0.95);
      // predictNet is softmax(netLogits).
      const logits = await netLogits(trained.net, held.x, 5);
      const probs = await predictNet(trained.net, held.x, 5);
      expect(argmaxRows(probs, 6)).toEqual(argmaxRows(logits, 6));
      const row = Array.from(logits.subarray(0, 6));
      const max = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - max), 0);
      expect(probs[0]).toBeCloseTo(Math.exp((row[0] as number) - max) / z, 5);
    });
  }
});
