import { beforeAll, describe, expect, it } from "vitest";
import { openOnnxClassifier } from "../../src/onnx/classifier.js";
import { exportOnnx } from "../../src/onnx/export.js";
import { imageBatch } from "../../src/onnx/input.js";
import { onnx } from "../../src/onnx/model-file.js";
import type { DenseLayer, NetSpec } from "../../src/onnx/net-spec.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import {
  editModel,
  examplesOf,
  fashionMnistSamples,
  forwardNet,
  maxAbsDiff,
  randomCnn,
  softmaxRows,
  tempDir,
  trainFashionMlp,
  writeModel,
} from "./fixtures.js";
import { antidoteFailure } from "../helpers/errors.js";

// The classifier over user-shaped graphs: the output it picks among several, a trailing Softmax,
// a MatMul + Add head, a head it cannot read features from, a fixed batch size, symbolic spatial
// dims — and one message for each model it cannot run as a classifier of this dataset.

const failure = antidoteFailure;

const F = onnx.TensorProto.DataType.FLOAT;
const tensorInfo = (name: string, dims: (number | string)[]): onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType: F,
      shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
    },
  },
});

/** Rename the final node's output to `renamed`, so a new head can produce "logits". */
function detachHead(proto: onnx.ModelProto, renamed: string): void {
  const nodes = proto.graph!.node!;
  nodes[nodes.length - 1]!.output = [renamed];
}

describe.runIf(hasFashionMnist())("openOnnxClassifier", () => {
  const test = fashionMnistSamples(600, "t10k");
  const x = imageBatch(test, [784]);
  const n = test.length;
  let net: NetSpec;
  let bytes: Uint8Array;
  let js: ReturnType<typeof forwardNet>;
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    net = trainFashionMlp(examplesOf(fashionMnistSamples(2000)), 2, 3).net;
    bytes = exportOnnx(net);
    js = forwardNet(net, x, n);
  });

  it("several outputs: the one with a column per class, with a warning; --output chooses", async () => {
    const two = editModel(bytes, (m) => m.graph!.output!.unshift(tensorInfo("/layer1/relu", ["N", 64])));
    const path = writeModel(dir, "two-outputs.onnx", two);
    const model = await openOnnxClassifier(path, { classes: net.classes });
    expect(model.outputName).toBe("logits");
    expect(model.warnings).toEqual([
      "the model has 2 outputs ('/layer1/relu', 'logits'); using 'logits' (10 columns, one per class); " +
        "--output NAME chooses another.",
    ]);
    // The hidden layer is already an output: read, not added twice.
    expect(model.penultimate).toEqual({ name: "/layer1/relu", dims: 64 });
    const out = await model.run(x, n);
    await model.close();
    expect(maxAbsDiff(out.logits, js.logits)).toBeLessThan(1e-4);

    // Without classes to match, the first output is taken — and found not to be class scores by
    // the class count when the caller has one.
    const first = await openOnnxClassifier(path);
    expect(first.outputName).toBe("/layer1/relu");
    expect(first.warnings[0]).toMatch(/using '\/layer1\/relu' \(the first\)/);
    expect(first.penultimate).toBeNull();
    expect(first.warnings[1]).toBe(
      "features unavailable: no final Gemm/MatMul before the output (found Relu).",
    );
    await first.close();

    const chosen = await openOnnxClassifier(path, { output: "logits" });
    expect([chosen.outputName, chosen.warnings]).toEqual(["logits", []]);
    await chosen.close();

    expect(await failure(openOnnxClassifier(path, { output: "probs" }))).toEqual({
      code: "USAGE",
      message: `--output probs: ${path} has no such output; its outputs are '/layer1/relu', 'logits'.`,
    });
  });

  it("a class count that differs from the dataset's is refused, naming both", async () => {
    const path = writeModel(dir, "mlp.onnx", bytes);
    const classes = [...net.classes, "Hat", "Scarf"];
    expect(await failure(openOnnxClassifier(path, { classes }))).toEqual({
      code: "MODEL_FORMAT",
      message: `${path}: model output 'logits' has 10 classes, the dataset has 12 (T-shirt/top, Trouser, Pullover, …).`,
    });
    // Same count, other names: runs, and says how columns are read.
    const renamed = await openOnnxClassifier(path, { classes: net.classes.map((c) => c.toUpperCase()) });
    expect(renamed.modelClasses).toEqual(net.classes);
    expect(renamed.warnings[0]).toMatch(/the model names its classes T-shirt\/top, Trouser, Pullover, …/);
    await renamed.close();

    // The same classes sorted (as a dataset read without a class list has them): matched by name.
    const sorted = [...net.classes].sort();
    const byName = await openOnnxClassifier(path, { classes: sorted });
    expect(byName.classColumns).toEqual(sorted.map((c) => net.classes.indexOf(c)));
    expect(byName.warnings).toEqual([
      "the model orders its classes T-shirt/top, Trouser, Pullover, …, the dataset Ankle boot, Bag, Coat, …; " +
        "its outputs were matched to the dataset's classes by name.",
    ]);
    const out = await byName.run(x, n);
    await byName.close();
    const expected = softmaxRows(js.logits, 10);
    sorted.forEach((c, j) => {
      const k = net.classes.indexOf(c);
      for (let i = 0; i < n; i += 7) expect(out.probs[i * 10 + j]).toBeCloseTo(expected[i * 10 + k]!, 5);
    });

    // No names in the model: read by position, and said so.
    const anonymous = editModel(bytes, (m) => (m.metadataProps = []));
    const bare = await openOnnxClassifier(writeModel(dir, "anonymous.onnx", anonymous), { classes: sorted });
    expect(bare.warnings).toEqual([
      "the model does not name its classes (metadata 'antidote.classes'); output column j is read as the " +
        "dataset's class j (Ankle boot, Bag, Coat, …).",
    ]);
    await bare.close();
  });

  it("a trailing Softmax: probabilities as given, log-probabilities as logits, features behind it", async () => {
    const soft = editModel(bytes, (m) => {
      detachHead(m, "scores");
      m.graph!.node!.push({
        opType: "Softmax",
        input: ["scores"],
        output: ["logits"],
        attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      });
    });
    const model = await openOnnxClassifier(writeModel(dir, "softmax.onnx", soft), { classes: net.classes });
    expect(model.outputIsProbabilities).toBe(true);
    expect(model.penultimate).toEqual({ name: "/layer1/relu", dims: 64 });
    const out = await model.run(x, n);
    await model.close();
    const expected = softmaxRows(js.logits, 10);
    expect(maxAbsDiff(out.probs, expected)).toBeLessThan(1e-5);
    expect(maxAbsDiff(softmaxRows(out.logits, 10), expected)).toBeLessThan(1e-5);
    expect(maxAbsDiff(out.features!, js.features)).toBeLessThan(1e-4);
  });

  it("a MatMul + bias Add head (as PyTorch exports Linear) gives the same features", async () => {
    const head = net.layers[2] as DenseLayer;
    const wT = new Float32Array(64 * 10);
    for (let o = 0; o < 10; o++) for (let i = 0; i < 64; i++) wT[i * 10 + o] = head.weight[o * 64 + i]!;
    const matmul = editModel(bytes, (m) => {
      const g = m.graph!;
      g.node!.pop();
      g.initializer!.push({ name: "W2T", dims: [64, 10], dataType: F, floatData: [...wT] });
      g.node!.push(
        { opType: "MatMul", input: ["/layer1/relu", "W2T"], output: ["mm"] },
        { opType: "Add", input: ["mm", "layer2.bias"], output: ["logits"] },
      );
    });
    const model = await openOnnxClassifier(writeModel(dir, "matmul.onnx", matmul));
    expect(model.penultimate).toEqual({ name: "/layer1/relu", dims: 64 });
    const out = await model.run(x, n);
    await model.close();
    expect(maxAbsDiff(out.logits, js.logits)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.features!, js.features)).toBeLessThan(1e-4);
  });

  it("a head with no final Gemm/MatMul: probabilities, no features, a warning", async () => {
    const relu = editModel(bytes, (m) => {
      detachHead(m, "pre");
      m.graph!.node!.push({ opType: "Relu", input: ["pre"], output: ["logits"] });
    });
    const model = await openOnnxClassifier(writeModel(dir, "relu-head.onnx", relu));
    expect(model.penultimate).toBeNull();
    expect(model.warnings).toEqual([
      "features unavailable: no final Gemm/MatMul before the output (found Relu).",
    ]);
    const out = await model.run(x, 20);
    await model.close();
    expect(out.features).toBeNull();
    expect(
      maxAbsDiff(
        out.logits,
        js.logits.subarray(0, 200).map((v) => Math.max(0, v)),
      ),
    ).toBeLessThan(1e-4);
  });

  it("a model with a fixed batch size of 1 runs row by row", async () => {
    const fixed = editModel(bytes, (m) => {
      m.graph!.input = [tensorInfo("input", [1, 784])];
      m.graph!.output = [tensorInfo("logits", [1, 10])];
    });
    const model = await openOnnxClassifier(writeModel(dir, "batch1.onnx", fixed));
    const out = await model.run(x, 37);
    await model.close();
    expect(maxAbsDiff(out.logits, js.logits.subarray(0, 370))).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.features!, js.features.subarray(0, 37 * 64))).toBeLessThan(1e-4);
  });

  it("symbolic spatial dimensions need --input-shape", async () => {
    const cnn = randomCnn(5);
    const symbolic = editModel(
      exportOnnx(cnn),
      (m) => (m.graph!.input = [tensorInfo("input", ["N", 1, "H", "W"])]),
    );
    const path = writeModel(dir, "symbolic.onnx", symbolic);
    expect(await failure(openOnnxClassifier(path))).toEqual({
      code: "MODEL_FORMAT",
      message:
        `${path}: input 'input' has shape [N, 1, H, W] with symbolic or unknown dimensions; ` +
        "pass --input-shape C,H,W (or D for a flat input) to say what it takes.",
    });
    expect(await failure(openOnnxClassifier(path, { inputShape: [3, 28, 28] }))).toEqual({
      code: "USAGE",
      message:
        "--input-shape 3,28,28: the model's input 'input' is [N, 1, H, W] (batch first), which this shape contradicts.",
    });
    const model = await openOnnxClassifier(path, { inputShape: [1, 28, 28] });
    expect(model.inputShape).toEqual([1, 28, 28]);
    const xc = imageBatch(test.slice(0, 50), model.inputShape);
    const out = await model.run(xc, 50);
    await model.close();
    expect(maxAbsDiff(out.logits, forwardNet(cnn, xc, 50).logits)).toBeLessThan(1e-4);
  });

  it("inputs it cannot feed are refused", async () => {
    const twoInputs = editModel(bytes, (m) => m.graph!.input!.push(tensorInfo("mask", ["N", 784])));
    const p2 = writeModel(dir, "two-inputs.onnx", twoInputs);
    expect((await failure(openOnnxClassifier(p2))).message).toBe(
      `${p2}: the model has 2 inputs ('input', 'mask'); Antidote runs classifiers with one image or vector input.`,
    );
    const bytesIn = editModel(bytes, (m) => (m.graph!.input![0]!.type!.tensorType!.elemType = 2));
    const pu = writeModel(dir, "uint8.onnx", bytesIn);
    expect((await failure(openOnnxClassifier(pu))).message).toBe(
      `${pu}: input 'input' takes UINT8 values; Antidote feeds float32 (images scaled to [0, 1]).`,
    );
    const opset99 = editModel(bytes, (m) => (m.opsetImport = [{ domain: "", version: 99 }]));
    const po = writeModel(dir, "opset99.onnx", opset99);
    expect(await failure(openOnnxClassifier(po))).toMatchObject({
      code: "MODEL_FORMAT",
      message: /opset 99/,
    });
    // A 3-D output is not class scores.
    const cube = editModel(bytes, (m) => {
      detachHead(m, "flat");
      m.graph!.initializer!.push({ name: "axes", dims: [1], dataType: 7, int64Data: [2] });
      m.graph!.node!.push({ opType: "Unsqueeze", input: ["flat", "axes"], output: ["logits"] });
      m.graph!.output = [tensorInfo("logits", ["N", 10, 1])];
    });
    const pc = writeModel(dir, "cube.onnx", cube);
    expect((await failure(openOnnxClassifier(pc))).message).toBe(
      `${pc}: model output 'logits' has shape [1, 10, 1] for one input; Antidote needs class scores shaped [N, classes].`,
    );
  });
});
