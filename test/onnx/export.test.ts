import { beforeAll, describe, expect, it } from "vitest";
import { isAntidoteError } from "../../src/errors.js";
import { openOnnxClassifier } from "../../src/onnx/classifier.js";
import { CLASSES_METADATA_KEY, checkNetSpec, exportOnnx } from "../../src/onnx/export.js";
import { imageBatch } from "../../src/onnx/input.js";
import { decodeOnnxModel, toNumber, valueInfoShape } from "../../src/onnx/model-file.js";
import type { NetSpec } from "../../src/onnx/net-spec.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import {
  examplesOf,
  fashionMnistSamples,
  forwardNet,
  maxAbsDiff,
  randomCnn,
  softmaxRows,
  tempDir,
  trainFashionMlp,
  writeModel,
  type TrainedMlp,
} from "./fixtures.js";

// NetSpec → ONNX → ONNX Runtime gives what a plain forward pass gives: a Fashion-MNIST MLP trained
// by the simulator's Trainer (its input-major weights converted to NetSpec layout) and a random
// CNN with padding, strides and pooling. The penultimate features ORT exposes are the hidden
// activations.

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isAntidoteError(e) && e.code === "USAGE") return e.message;
    throw e;
  }
  throw new Error("expected a USAGE error");
}

describe.runIf(hasFashionMnist())("exportOnnx on real Fashion-MNIST models", () => {
  const test = fashionMnistSamples(1000, "t10k");
  const x = imageBatch(test, [784]);
  let mlp: TrainedMlp;
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    mlp = trainFashionMlp(examplesOf(fashionMnistSamples(3000)), 1, 4);
  });

  it("writes the declared graph: symbolic batch, opset 13, classes in metadata", () => {
    const model = decodeOnnxModel(exportOnnx(mlp.net), "mlp.onnx");
    expect(model.opset).toBe(13);
    expect(toNumber(model.proto.irVersion)).toBe(7);
    const g = model.proto.graph!;
    expect(g.node!.map((n) => n.opType)).toEqual(["Gemm", "Relu", "Gemm"]);
    expect(valueInfoShape(g.input![0]!)).toEqual(["N", 784]);
    expect(valueInfoShape(g.output![0]!)).toEqual(["N", 10]);
    const classes = model.proto.metadataProps.find((p) => p.key === CLASSES_METADATA_KEY)!.value!;
    expect(JSON.parse(classes)).toEqual(mlp.net.classes);
    expect(model.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it("MLP: ORT logits, probabilities and hidden features equal the Trainer's", async () => {
    expect(mlp.trainAccuracy).toBeGreaterThan(0.75);
    const model = await openOnnxClassifier(writeModel(dir, "mlp.onnx", exportOnnx(mlp.net)), {
      classes: mlp.net.classes,
    });
    try {
      expect(model.inputShape).toEqual([784]);
      expect(model.outputIsProbabilities).toBe(false);
      expect(model.penultimate).toEqual({ name: "/layer1/relu", dims: 64 });
      expect(model.warnings).toEqual([]);
      const out = await model.run(x, test.length);
      const js = forwardNet(mlp.net, x, test.length);
      expect(maxAbsDiff(out.logits, js.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(out.features!, js.features)).toBeLessThan(1e-4);

      // And against the Trainer itself, in its own (input-major) layout.
      const examples = examplesOf(test);
      const hidden = new Float32Array(64);
      const probs = new Float32Array(10);
      let agree = 0;
      let worstHidden = 0;
      let worstProb = 0;
      for (let i = 0; i < test.length; i++) {
        mlp.trainer.hiddenActivations(mlp.params, examples, i, hidden, probs);
        worstHidden = Math.max(worstHidden, maxAbsDiff(hidden, out.features!.subarray(i * 64, (i + 1) * 64)));
        worstProb = Math.max(worstProb, maxAbsDiff(probs, out.probs.subarray(i * 10, (i + 1) * 10)));
        if (mlp.trainer.predict(mlp.params, examples, i) === argmax(out.probs.subarray(i * 10, (i + 1) * 10)))
          agree++;
      }
      expect(worstHidden).toBeLessThan(1e-4);
      expect(worstProb).toBeLessThan(1e-5);
      expect(agree).toBeGreaterThanOrEqual(test.length - 1); // float ties at most
    } finally {
      await model.close();
    }
  });

  it("CNN: ORT equals the JS forward pass through conv padding, stride and pooling", async () => {
    const cnn = randomCnn(7);
    expect(checkNetSpec(cnn).map((s) => s.join("x"))).toEqual([
      "4x28x28",
      "4x28x28",
      "4x14x14",
      "8x6x6",
      "8x6x6",
      "288",
      "16",
      "16",
      "10",
    ]);
    const model = await openOnnxClassifier(writeModel(dir, "cnn.onnx", exportOnnx(cnn)), {
      classes: cnn.classes,
    });
    try {
      expect(model.inputShape).toEqual([1, 28, 28]);
      expect(model.penultimate?.dims).toBe(16);
      const n = 300; // more than one 256-row batch
      const xc = imageBatch(test.slice(0, n), model.inputShape);
      const out = await model.run(xc, n);
      const js = forwardNet(cnn, xc, n);
      expect(maxAbsDiff(out.logits, js.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(out.features!, js.features)).toBeLessThan(1e-4);
      expect(maxAbsDiff(out.probs, softmaxRows(js.logits, 10))).toBeLessThan(1e-5);
    } finally {
      await model.close();
    }
  });

  it("exports at a newer opset that ORT also runs", async () => {
    const bytes = exportOnnx(mlp.net, { opset: 21, producer: "test" });
    const file = decodeOnnxModel(bytes, "mlp21.onnx");
    expect([file.opset, toNumber(file.proto.irVersion), file.proto.producerName]).toEqual([21, 10, "test"]);
    const model = await openOnnxClassifier(writeModel(dir, "mlp21.onnx", bytes));
    const out = await model.run(x.subarray(0, 50 * 784), 50);
    await model.close();
    expect(maxAbsDiff(out.logits, forwardNet(mlp.net, x, 50).logits)).toBeLessThan(1e-4);
  });

  it("rejects NetSpecs whose weights or shapes do not fit, naming the layer", () => {
    const base = mlp.net;
    const layers = [...base.layers];
    const first = layers[0] as Extract<NetSpec["layers"][number], { kind: "dense" }>;
    const shortWeights: NetSpec = {
      ...base,
      layers: [{ ...first, weight: first.weight.subarray(1) }, ...layers.slice(1)],
    };
    expect(usageError(() => exportOnnx(shortWeights))).toMatch(
      /layer 0 \(dense\) weight \[64\]\[784\] needs 50176 values, has 50175/,
    );
    const wrongInputs: NetSpec = { ...base, inputShape: [1, 28, 28] };
    expect(usageError(() => exportOnnx(wrongInputs))).toMatch(
      /layer 0 \(dense\) needs a flat input, gets \[1, 28, 28\]; add a flatten layer/,
    );
    const tooFewClasses: NetSpec = { ...base, classes: base.classes.slice(0, 9) };
    expect(usageError(() => exportOnnx(tooFewClasses))).toMatch(
      /last layer outputs \[10\], but there are 9 classes/,
    );
    const cnn = randomCnn(1);
    const badChannels: NetSpec = { ...cnn, inputShape: [3, 28, 28] };
    expect(usageError(() => exportOnnx(badChannels))).toMatch(
      /layer 0 \(conv2d\) declares 1 input channels, gets \[3, 28, 28\]/,
    );
    const nan = Float32Array.from(first.bias);
    nan[5] = NaN;
    expect(
      usageError(() => exportOnnx({ ...base, layers: [{ ...first, bias: nan }, ...layers.slice(1)] })),
    ).toMatch(/layer 0 \(dense\) bias \[64\] holds a non-finite value \(NaN\) at index 5/);
    expect(usageError(() => exportOnnx(base, { opset: 30 }))).toMatch(
      /opset 30 is not supported; choose 11\.\.26/,
    );
  });
});

function argmax(row: Float32Array): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
  return best;
}
