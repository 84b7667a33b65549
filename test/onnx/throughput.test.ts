import { describe, expect, it } from "vitest";
import { openOnnxClassifier } from "../../src/onnx/classifier.js";
import { exportOnnx } from "../../src/onnx/export.js";
import { imageBatch } from "../../src/onnx/input.js";
import type { Conv2dLayer, DenseLayer, NetSpec } from "../../src/onnx/net-spec.js";
import { Rng } from "../../src/math/rng.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import {
  FASHION_MNIST_CLASSES,
  examplesOf,
  fashionMnistSamples,
  forwardNet,
  maxAbsDiff,
  tempDir,
  trainFashionMlp,
  writeModel,
} from "./fixtures.js";

// ONNX Runtime throughput on the 10,000 Fashion-MNIST test images (2 intra-op threads, 256 rows
// per run, probabilities and penultimate features fetched): the trained 784→64→10 MLP and a CNN
// of the trainer's default shape (conv 8 → pool → conv 16 → pool → dense 64 → dense 10).

function defaultShapeCnn(seed: number): NetSpec {
  const rng = new Rng(seed);
  const w = (n: number, fanIn: number) =>
    Float32Array.from({ length: n }, () => rng.normal() * Math.sqrt(2 / fanIn));
  const conv = (ci: number, co: number): Conv2dLayer => ({
    kind: "conv2d",
    inChannels: ci,
    outChannels: co,
    kernel: 3,
    stride: 1,
    padding: 1,
    weight: w(co * ci * 9, ci * 9),
    bias: new Float32Array(co),
  });
  const dense = (i: number, o: number): DenseLayer => ({
    kind: "dense",
    inputs: i,
    outputs: o,
    weight: w(i * o, i),
    bias: new Float32Array(o),
  });
  return {
    inputShape: [1, 28, 28],
    classes: FASHION_MNIST_CLASSES,
    layers: [
      conv(1, 8),
      { kind: "relu" },
      { kind: "maxpool", size: 2 },
      conv(8, 16),
      { kind: "relu" },
      { kind: "maxpool", size: 2 },
      { kind: "flatten" },
      dense(784, 64),
      { kind: "relu" },
      dense(64, 10),
    ],
  };
}

describe.runIf(hasFashionMnist())("ONNX Runtime throughput on 10k Fashion-MNIST images", () => {
  const images = fashionMnistSamples(10_000, "t10k");
  const dir = tempDir();

  for (const kind of ["mlp", "cnn"] as const) {
    it(`${kind}: every row computed, the first 200 equal to the JS forward pass`, async () => {
      const net =
        kind === "mlp"
          ? trainFashionMlp(examplesOf(fashionMnistSamples(1000)), 3, 1).net
          : defaultShapeCnn(4);
      const model = await openOnnxClassifier(writeModel(dir, `${kind}.onnx`, exportOnnx(net)), {
        classes: FASHION_MNIST_CLASSES,
      });
      const x = imageBatch(images, model.inputShape);
      await model.run(x, 256); // warm-up
      const t = performance.now();
      const out = await model.run(x, images.length);
      const seconds = (performance.now() - t) / 1000;
      await model.close();
      console.log(
        `ORT ${kind}: ${images.length} images in ${seconds.toFixed(2)} s = ` +
          `${Math.round(images.length / seconds).toLocaleString("en-US")} images/s (features ${model.penultimate?.dims})`,
      );
      const js = forwardNet(net, x, 200);
      expect(maxAbsDiff(out.logits.subarray(0, 2000), js.logits)).toBeLessThan(1e-4);
      expect(out.probs.every(Number.isFinite)).toBe(true);
      // The last batch (10,000 = 39 × 256 + 16 rows) is filled too.
      expect(out.features!.subarray(out.features!.length - 64).some((v) => v > 0)).toBe(true);
    });
  }
});
