// The TF.js translation against onnxruntime, operator group by operator group: each test builds a
// small ONNX graph with random weights, runs it in onnxruntime and through translateOnnx on the
// same random batch, and requires agreement to 1e-4. Then what the audit relies on beyond values:
// input gradients that match finite differences of the reference model, no tensor leaks per call,
// and errors that name what is wrong.
import type { Tensor } from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { beforeEach, describe, expect, it } from "vitest";
import { translateOnnx, type TranslateOptions, type TranslatedModel } from "../../src/audit/onnx-to-tf.js";
import { AntidoteError } from "../../src/errors.js";
import { Rng } from "../../src/math/rng.js";
import { loadTf } from "../../src/nn/tf.js";
import { decodeOnnxModel, onnx, type OnnxModelFile } from "../../src/onnx/model-file.js";

// ---------------------------------------------------------------------------------------------
// A tiny ONNX graph builder

type AttrValue = number | number[] | string | { f: number } | { floats: number[] } | { t: onnx.ITensorProto };
type Dims = (number | string)[];

const A = onnx.AttributeProto.AttributeType;

function attr(name: string, v: AttrValue): onnx.IAttributeProto {
  if (typeof v === "number") return { name, type: A.INT, i: v };
  if (typeof v === "string") return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if ("f" in v) return { name, type: A.FLOAT, f: v.f };
  if ("floats" in v) return { name, type: A.FLOATS, floats: v.floats };
  return { name, type: A.TENSOR, t: v.t };
}

function node(
  opType: string,
  input: string[],
  output: string[],
  attrs: Record<string, AttrValue> = {},
  name = "",
  domain = "",
): onnx.INodeProto {
  return {
    opType,
    input,
    output,
    name,
    domain,
    attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
  };
}

function floats(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: Array.from(data) };
}

function int64s(name: string, data: number[], dims: number[] = [data.length]): onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.INT64, int64Data: data };
}

function valueInfo(name: string, dims?: Dims): onnx.IValueInfoProto {
  const shape =
    dims === undefined
      ? undefined
      : { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape } } };
}

interface GraphSpec {
  nodes: onnx.INodeProto[];
  inits?: onnx.ITensorProto[];
  /** Input "x" dims, batch first. */
  input: Dims;
  /** Output names and dims; the first is the one tests compare unless told otherwise. */
  outputs: [string, Dims | undefined][];
  opset?: number;
  extraOpsets?: { domain: string; version: number }[];
}

function makeModel(spec: GraphSpec, label = "test.onnx"): OnnxModelFile {
  const opset = spec.opset ?? 13;
  const proto = onnx.ModelProto.create({
    irVersion: opset >= 19 ? 9 : 8,
    producerName: "antidote-test",
    opsetImport: [{ domain: "", version: opset }, ...(spec.extraOpsets ?? [])],
    graph: {
      name: "g",
      node: spec.nodes,
      initializer: spec.inits ?? [],
      input: [valueInfo("x", spec.input)],
      output: spec.outputs.map(([name, dims]) => valueInfo(name, dims)),
    },
  });
  return decodeOnnxModel(onnx.ModelProto.encode(proto).finish(), label);
}

// Seeded per test, so one test's draws do not depend on which tests ran before it.
let rng = new Rng(0);
beforeEach(() => {
  rng = new Rng(expect.getState().currentTestName ?? "");
});

function randn(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** A random weight tensor scaled like a trained layer's (unit-variance outputs). */
function weight(
  name: string,
  dims: number[],
  fanIn = dims.slice(1).reduce((a, b) => a * b, 1),
): onnx.ITensorProto {
  return floats(
    name,
    dims,
    randn(
      dims.reduce((a, b) => a * b, 1),
      1 / Math.sqrt(fanIn),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Running both

async function runOrt(
  model: OnnxModelFile,
  x: Float32Array,
  dims: number[],
  output: string,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model.bytes);
  try {
    const result = await session.run({ x: new ort.Tensor("float32", x, dims) }, [output]);
    return result[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

async function runTranslation(tr: TranslatedModel, x: Float32Array, n: number): Promise<Float32Array> {
  const tf = await loadTf();
  const out = tf.tidy(() => {
    const logits = tr.logits(tf.tensor(x, [n, ...tr.inputShape]));
    return tr.outputIsProbabilities ? tf.softmax(logits) : logits;
  });
  const data = out.dataSync() as Float32Array;
  out.dispose();
  return data;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Translate, run both on the same random batch, require agreement to 1e-4; returns the translation's facts. */
async function expectMatchesOrt(
  model: OnnxModelFile,
  options: TranslateOptions = {},
  n = 3,
): Promise<{ numClasses: number; outputName: string; outputIsProbabilities: boolean; ops: string[] }> {
  const tr = await translateOnnx(model, options);
  try {
    const x = randn(n * tr.inputShape.reduce((a, b) => a * b, 1));
    const reference = await runOrt(model, x, [n, ...tr.inputShape], tr.outputName);
    const ours = await runTranslation(tr, x, n);
    expect(ours.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(reference, ours)).toBeLessThan(1e-4);
    return {
      numClasses: tr.numClasses,
      outputName: tr.outputName,
      outputIsProbabilities: tr.outputIsProbabilities,
      ops: tr.ops,
    };
  } finally {
    tr.dispose();
  }
}

/**
 * The translation's input gradient of Σ_i logits[i, target_i] against central differences of the
 * same function computed by onnxruntime, along three random directions (the model must be smooth).
 */
async function expectGradientMatchesOrt(
  model: OnnxModelFile,
  dims: number[],
  classes: number,
): Promise<void> {
  const tf = await loadTf();
  const tr = await translateOnnx(model);
  const n = dims[0]!;
  const x = randn(dims.reduce((a, b) => a * b, 1));
  const target = Array.from({ length: n }, (_, i) => i % classes);
  const f = (logits: Float32Array): number => target.reduce((s, k, i) => s + logits[i * classes + k]!, 0);
  const grad = tf.tidy(() =>
    tf
      .grad((input: Tensor) =>
        tf.sum(tf.mul(tr.logits(input), tf.oneHot(tf.tensor1d(target, "int32"), classes))),
      )(tf.tensor(x, dims))
      .dataSync(),
  ) as Float32Array;
  tr.dispose();
  expect(grad.every(Number.isFinite)).toBe(true);
  expect(Math.max(...Array.from(grad, Math.abs))).toBeGreaterThan(1e-3);
  const eps = 1e-2;
  for (let trial = 0; trial < 3; trial++) {
    const v = randn(x.length);
    const plus = Float32Array.from(x, (xi, i) => xi + eps * v[i]!);
    const minus = Float32Array.from(x, (xi, i) => xi - eps * v[i]!);
    const fd =
      (f(await runOrt(model, plus, dims, "y")) - f(await runOrt(model, minus, dims, "y"))) / (2 * eps);
    const analytic = grad.reduce((s, g, i) => s + g * v[i]!, 0);
    expect(Math.abs(fd - analytic)).toBeLessThan(1e-3 * Math.max(1, Math.abs(fd)));
  }
}

async function expectError(
  p: Promise<unknown>,
  code: string,
  ...fragments: string[]
): Promise<AntidoteError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AntidoteError);
  const err = e as AntidoteError;
  expect(err.code).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

/** x → (nodes producing "h" [N, ...]) → Flatten → Gemm → "y" [N, classes]: a classifier around `body`. */
function classifier(spec: {
  body: onnx.INodeProto[];
  inits?: onnx.ITensorProto[];
  input: Dims;
  features: number;
  classes?: number;
  opset?: number;
}): OnnxModelFile {
  const classes = spec.classes ?? 5;
  return makeModel({
    nodes: [
      ...spec.body,
      node("Flatten", ["h"], ["hf"]),
      node("Gemm", ["hf", "head_w", "head_b"], ["y"], { transB: 1 }),
    ],
    inits: [
      ...(spec.inits ?? []),
      weight("head_w", [classes, spec.features]),
      floats("head_b", [classes], randn(classes)),
    ],
    input: spec.input,
    outputs: [["y", ["N", classes]]],
    opset: spec.opset,
  });
}

// ---------------------------------------------------------------------------------------------

describe("translateOnnx matches onnxruntime", () => {
  it("Conv: explicit asymmetric pads, strides, dilations, bias; then Relu, Flatten, Gemm", async () => {
    const model = classifier({
      input: ["N", 2, 9, 8],
      body: [
        node(
          "Conv",
          ["x", "w1", "b1"],
          ["c1"],
          { pads: [1, 0, 2, 1], strides: [2, 1], dilations: [1, 2] },
          "conv1",
        ),
        node("Relu", ["c1"], ["h"]),
      ],
      // H: (9 + 3 − 3) / 2 + 1 = 5; W: (8 + 1 − 5) / 1 + 1 = 5.
      inits: [weight("w1", [3, 2, 3, 3]), floats("b1", [3], randn(3))],
      features: 3 * 5 * 5,
    });
    const facts = await expectMatchesOrt(model);
    expect(facts.numClasses).toBe(5);
    expect(facts.ops).toEqual(["Conv", "Flatten", "Gemm", "Relu"]);
  });

  it("Conv: auto_pad SAME_UPPER, SAME_LOWER and VALID, no bias", async () => {
    const model = classifier({
      input: ["N", 3, 11, 10],
      body: [
        node("Conv", ["x", "w1"], ["c1"], { auto_pad: "SAME_UPPER", strides: [2, 2], kernel_shape: [4, 4] }),
        node("Tanh", ["c1"], ["t1"]),
        node("Conv", ["t1", "w2"], ["c2"], { auto_pad: "SAME_LOWER", kernel_shape: [2, 3] }),
        node("Conv", ["c2", "w3", "b3"], ["h"], { auto_pad: "VALID" }),
      ],
      // 11×10 → 6×5 → 6×5 → 4×3
      inits: [
        weight("w1", [4, 3, 4, 4]),
        weight("w2", [4, 4, 2, 3]),
        weight("w3", [2, 4, 3, 3]),
        floats("b3", [2], randn(2)),
      ],
      features: 2 * 4 * 3,
    });
    await expectMatchesOrt(model);
  });

  it("Conv: few groups (block-diagonal), depthwise (multiplier, stride, dilation), many groups, and 1-D", async () => {
    const grouped = classifier({
      input: ["N", 4, 7, 7],
      body: [
        node("Conv", ["x", "wg", "bg"], ["g"], { group: 2, pads: [1, 1, 1, 1] }), // 6 × 7×7
        node("Conv", ["g", "wd"], ["d"], { group: 6, pads: [1, 1, 1, 1], strides: [2, 2] }), // 18 × 4×4
        node("Conv", ["d", "wdd"], ["dd"], { group: 18, dilations: [2, 2], pads: [2, 2, 2, 2] }), // 18 × 4×4
        node("Conv", ["dd", "w1x1"], ["e"]), // 34 × 4×4
        node("Conv", ["e", "wm", "bm"], ["h"], { group: 17, pads: [1, 1, 1, 1] }), // 17 groups of 2: 17 × 4×4
      ],
      inits: [
        weight("wg", [6, 2, 3, 3]),
        floats("bg", [6], randn(6)),
        weight("wd", [18, 1, 3, 3]),
        weight("wdd", [18, 1, 3, 3]),
        weight("w1x1", [34, 18, 1, 1]),
        weight("wm", [17, 2, 3, 3]),
        floats("bm", [17], randn(17)),
      ],
      features: 17 * 4 * 4,
    });
    await expectMatchesOrt(grouped);
    const oneD = classifier({
      input: ["N", 3, 20],
      body: [
        node("Conv", ["x", "w1", "b1"], ["c1"], { pads: [2, 1], strides: [2], dilations: [2] }),
        node("Relu", ["c1"], ["r1"]),
        node("MaxPool", ["r1"], ["h"], { kernel_shape: [3], strides: [2], pads: [1, 1] }),
      ],
      // L: (20 + 3 − 5) / 2 + 1 = 10 → (10 + 2 − 3) / 2 + 1 = 5
      inits: [weight("w1", [4, 3, 3]), floats("b1", [4], randn(4))],
      features: 4 * 5,
    });
    await expectMatchesOrt(oneD);
  });

  it("MaxPool and AveragePool: pads, strides, ceil_mode, count_include_pad; global pools", async () => {
    const model = makeModel({
      input: ["N", 3, 9, 9],
      nodes: [
        node("MaxPool", ["x"], ["m1"], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
        node("MaxPool", ["x"], ["m2"], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }),
        node("AveragePool", ["x"], ["a1"], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
        node("AveragePool", ["x"], ["a2"], {
          kernel_shape: [3, 3],
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          count_include_pad: 1,
        }),
        node("AveragePool", ["x"], ["a3"], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }),
        node("AveragePool", ["x"], ["a4"], { kernel_shape: [3, 2], strides: [1, 2], pads: [0, 1, 2, 0] }),
        node("GlobalAveragePool", ["x"], ["ga"]),
        node("GlobalMaxPool", ["x"], ["gm"]),
        ...["m1", "m2", "a1", "a2", "a3", "a4", "ga", "gm"].map((v) => node("Flatten", [v], [`${v}f`])),
        node("Concat", ["m1f", "m2f", "a1f", "a2f", "a3f", "a4f", "gaf", "gmf"], ["y"], { axis: 1 }),
      ],
      // 5·5 five times, 9·5, 1 and 1, times 3 channels
      outputs: [["y", ["N", 3 * (25 * 5 + 45 + 2)]]],
    });
    const facts = await expectMatchesOrt(model);
    expect(facts.numClasses).toBe(3 * (25 * 5 + 45 + 2));
  });

  it("Gemm: alpha, beta, transA, transB, bias of shape [M] and [1, M]", async () => {
    const model = makeModel({
      input: ["N", 6],
      nodes: [
        node("Gemm", ["x", "w1", "b1"], ["g1"], { alpha: { f: 0.5 }, beta: { f: 2 } }),
        node("Transpose", ["g1"], ["g1t"]),
        node("Gemm", ["g1t", "w2", "b2"], ["y"], { transA: 1, transB: 1, alpha: { f: 1.5 } }),
      ],
      inits: [
        weight("w1", [6, 8], 6),
        floats("b1", [8], randn(8)),
        weight("w2", [4, 8]),
        floats("b2", [1, 4], randn(4)),
      ],
      outputs: [["y", ["N", 4]]],
    });
    await expectMatchesOrt(model);
  });

  it("MatMul: 2-D, 3-D × 2-D, batched 3-D × 3-D, and a vector operand", async () => {
    const model = makeModel({
      input: ["N", 12],
      nodes: [
        node("MatMul", ["x", "w1"], ["m1"]), // [N, 8]
        node("Reshape", ["m1", "s3"], ["m3"]), // [N, 2, 4]
        node("MatMul", ["m3", "w2"], ["m4"]), // [N, 2, 3]
        node("Transpose", ["m4"], ["m4t"], { perm: [0, 2, 1] }), // [N, 3, 2]
        node("MatMul", ["m4", "m4t"], ["att"]), // [N, 2, 2]
        node("Flatten", ["att"], ["af"]), // [N, 4]
        node("MatMul", ["m1", "v"], ["mv"]), // [N]
        node("Unsqueeze", ["mv", "ax1"], ["mvu"]), // [N, 1]
        node("Concat", ["af", "mvu"], ["y"], { axis: 1 }),
      ],
      inits: [
        weight("w1", [12, 8], 12),
        int64s("s3", [0, 2, 4]),
        weight("w2", [4, 3], 4),
        floats("v", [8], randn(8)),
        int64s("ax1", [1]),
      ],
      outputs: [["y", ["N", 5]]],
    });
    await expectMatchesOrt(model);
  });

  it("Add, Sub, Mul, Div, Pow with ONNX broadcasting, against channel-last conv outputs and each other", async () => {
    const model = classifier({
      input: ["N", 2, 5, 6],
      body: [
        node("Conv", ["x", "w"], ["c"], { pads: [1, 1, 1, 1] }), // [N, 3, 5, 6]
        node("Add", ["c", "bias_c11"], ["a1"]), // per channel
        node("Mul", ["a1", "row_w"], ["a2"]), // per column
        node("Sub", ["a2", "scalar"], ["a3"]),
        node("Div", ["a3", "full"], ["a4"]), // [1, 3, 5, 6]
        node("Mul", ["a4", "c"], ["a5"]), // two activations
        node("Pow", ["a5", "two"], ["a6"]),
        node("Sub", ["per_h", "a6"], ["a7"]), // [5, 1] on the left
        node("Add", ["a7", "x3"], ["h"]), // the NCHW input, sliced to 3 channels by a 1×1 conv
        node("Conv", ["x", "w1x1"], ["x3"]),
      ],
      inits: [
        weight("w", [3, 2, 3, 3]),
        floats("bias_c11", [3, 1, 1], randn(3)),
        floats("row_w", [6], randn(6)),
        floats("scalar", [], [0.25]),
        floats(
          "full",
          [1, 3, 5, 6],
          Float32Array.from(randn(90), (v) => 1.5 + Math.abs(v)),
        ),
        floats("two", [], [2]),
        floats("per_h", [5, 1], randn(5)),
        weight("w1x1", [3, 2, 1, 1]),
      ],
      features: 3 * 5 * 6,
    });
    // Nodes out of topological order on purpose ("x3" is produced last): ONNX requires order, exporters mostly keep it.
    await expectMatchesOrt(model);
  });

  it("activations: Relu, LeakyRelu, Sigmoid, Tanh, Erf, Elu, Selu, Softplus, HardSigmoid, HardSwish, PRelu, Clip, Exp, Abs, Sqrt, Neg, Reciprocal", async () => {
    const ops: [string, Record<string, AttrValue>][] = [
      ["Relu", {}],
      ["LeakyRelu", { alpha: { f: 0.2 } }],
      ["Sigmoid", {}],
      ["Tanh", {}],
      ["Erf", {}],
      ["Elu", { alpha: { f: 0.7 } }],
      ["Selu", {}],
      ["Softplus", {}],
      ["HardSigmoid", { alpha: { f: 0.3 }, beta: { f: 0.4 } }],
      ["HardSwish", {}],
      ["Exp", {}],
      ["Abs", {}],
      ["Neg", {}],
    ];
    const nodes = ops.map(([op, attrs], i) => node(op, ["x"], [`a${i}`], attrs));
    nodes.push(node("PRelu", ["x", "slope"], ["pr"]));
    nodes.push(node("Clip", ["x", "lo", "hi"], ["cl"]));
    nodes.push(node("Clip", ["x", "", "hi"], ["cl2"]));
    nodes.push(node("Abs", ["x"], ["ab"]), node("Add", ["ab", "one"], ["ab1"]));
    nodes.push(node("Sqrt", ["ab1"], ["sq"]), node("Reciprocal", ["ab1"], ["rc"]));
    const names = [...ops.map((_, i) => `a${i}`), "pr", "cl", "cl2", "sq", "rc"];
    nodes.push(node("Concat", names, ["y"], { axis: 1 }));
    const model = makeModel({
      input: ["N", 7],
      nodes,
      inits: [
        floats("slope", [7], randn(7)),
        floats("lo", [], [-0.5]),
        floats("hi", [], [0.8]),
        floats("one", [], [1]),
      ],
      outputs: [["y", ["N", 7 * names.length]]],
      opset: 14,
    });
    await expectMatchesOrt(model);
  });

  it("reductions as global pooling on channel-last tensors, variadic Sum/Mean/Max/Min, Expand, ConstantOfShape, Range", async () => {
    const model = makeModel({
      input: ["N", 2, 5, 4],
      nodes: [
        node("Conv", ["x", "w"], ["c"], { pads: [1, 1, 1, 1] }), // [N, 3, 5, 4], channel-last inside
        node("ReduceMean", ["c"], ["rm"], { axes: [2, 3], keepdims: 0 }), // [N, 3]
        node("ReduceMax", ["c"], ["rx"], { axes: [-1, -2], keepdims: 1 }), // [N, 3, 1, 1]
        node("ReduceMin", ["c"], ["rn"], { axes: [1], keepdims: 0 }), // [N, 5, 4]
        node("Flatten", ["rx"], ["rxf"]),
        node("Flatten", ["rn"], ["rnf"]),
        node("Sum", ["rm", "rxf", "bias3"], ["s"]),
        node("Mean", ["rm", "rxf"], ["m"]),
        node("Max", ["rm", "rxf", "bias3"], ["mx"]),
        node("Min", ["rm", "rxf"], ["mn"]),
        node("Shape", ["rm"], ["shp"]),
        node("ConstantOfShape", ["shp"], ["ones"], { value: { t: floats("", [1], [1]) } }),
        node("Add", ["mn", "ones"], ["mn1"]),
        node("Range", ["r0", "r3", "r1"], ["rng"]), // [0, 1, 2]
        node("Cast", ["rng"], ["rngf"], { to: onnx.TensorProto.DataType.FLOAT }),
        node("Expand", ["rngf", "shp"], ["ex"]), // [N, 3]
        node("Mul", ["mn1", "ex"], ["mx2"]),
        node("LogSoftmax", ["mx"], ["ls"]),
        node("Softsign", ["s"], ["ss"]),
        node("Floor", ["m"], ["fl"]),
        node("Ceil", ["m"], ["ce"]),
        node("Concat", ["ss", "fl", "ce", "mx2", "ls", "rnf"], ["y"], { axis: 1 }),
      ],
      inits: [
        weight("w", [3, 2, 3, 3]),
        floats("bias3", [3], randn(3)),
        int64s("r0", [0], []),
        int64s("r3", [3], []),
        int64s("r1", [1], []),
      ],
      outputs: [["y", ["N", 15 + 20]]],
    });
    await expectMatchesOrt(model);
  });

  it("Gelu (opset 20), exact and tanh-approximated", async () => {
    const model = makeModel({
      input: ["N", 9],
      nodes: [
        node("Gelu", ["x"], ["g1"]),
        node("Gelu", ["x"], ["g2"], { approximate: "tanh" }),
        node("Concat", ["g1", "g2"], ["y"], { axis: 1 }),
      ],
      outputs: [["y", ["N", 18]]],
      opset: 20,
    });
    await expectMatchesOrt(model);
  });

  it("Reshape (0 and −1, from an initializer, a Constant, and a Shape→Gather→Unsqueeze→Concat chain), Transpose, Squeeze, Unsqueeze", async () => {
    const model = makeModel({
      input: ["N", 2, 3, 4],
      nodes: [
        node("Reshape", ["x", "s1"], ["r1"]), // [N, 6, 4] via 0, -1
        node("Constant", [], ["s2"], { value: { t: int64s("", [0, 4, -1]) } }),
        node("Reshape", ["r1", "s2"], ["r2"]), // [N, 4, 6]
        node("Transpose", ["r2"], ["t1"], { perm: [0, 2, 1] }), // [N, 6, 4]
        node("Unsqueeze", ["t1", "ax"], ["u1"]), // [N, 1, 6, 4]
        node("Squeeze", ["u1", "ax"], ["q1"]), // [N, 6, 4]
        node("Shape", ["q1"], ["sh"]),
        node("Gather", ["sh", "zero"], ["n"]), // scalar N
        node("Unsqueeze", ["n", "ax0"], ["n1"]),
        node("Concat", ["n1", "minus1"], ["s3"], { axis: 0 }),
        node("Reshape", ["q1", "s3"], ["y"]), // [N, 24]
      ],
      inits: [
        int64s("s1", [0, -1, 4]),
        int64s("ax", [1]),
        int64s("zero", [0], []),
        int64s("ax0", [0]),
        int64s("minus1", [-1]),
      ],
      outputs: [["y", ["N", 24]]],
    });
    await expectMatchesOrt(model);
  });

  it("Concat on channels (channel-last path) and on other axes, Slice, Split, Gather of activations, Pad", async () => {
    const model = classifier({
      input: ["N", 2, 6, 6],
      body: [
        node("Conv", ["x", "wa"], ["ca"], { pads: [1, 1, 1, 1] }),
        node("Conv", ["x", "wb"], ["cb"], { pads: [1, 1, 1, 1] }),
        node("Concat", ["ca", "cb"], ["cc"], { axis: 1 }), // [N, 5, 6, 6]
        node("Concat", ["ca", "x"], ["cw"], { axis: 3 }), // channel-last with NCHW: [N, 2, 6, 12]
        node("Slice", ["cc", "st", "en", "axs", "steps"], ["sl"]), // [N, 2, 4, 6]
        node("Split", ["sl", "parts"], ["sp1", "sp2"], { axis: 2 }), // [N,2,1,6], [N,2,3,6]
        node("Gather", ["sp2", "idx"], ["ga"], { axis: 2 }), // [N, 2, 2, 6]
        node("Gather", ["sp2", "one"], ["gs"], { axis: 1 }), // [N, 3, 6]
        node("Pad", ["gs", "pads", "pv"], ["pd"]), // [N, 4, 8]
        node("Flatten", ["cw"], ["f0"]),
        node("Flatten", ["sp1"], ["f1"]),
        node("Flatten", ["ga"], ["f2"]),
        node("Flatten", ["pd"], ["f3"]),
        node("Concat", ["f0", "f1", "f2", "f3"], ["h"], { axis: 1 }),
      ],
      inits: [
        weight("wa", [2, 2, 3, 3]),
        weight("wb", [3, 2, 3, 3]),
        int64s("st", [1, 1]),
        int64s("en", [3, -1]),
        int64s("axs", [1, 2]),
        int64s("steps", [1, 1]),
        int64s("parts", [1, 3]),
        int64s("idx", [2, -3]),
        int64s("one", [1], []),
        int64s("pads", [0, 1, 0, 0, 0, 2]),
        floats("pv", [], [0.5]),
      ],
      features: 144 + 12 + 24 + 32,
    });
    await expectMatchesOrt(model);
  });

  it("BatchNormalization (channel-last and 2-D), LayerNormalization, Softmax on an inner axis, Dropout, Identity, Cast", async () => {
    const bn = (p: string, c: number): onnx.ITensorProto[] => [
      floats(`${p}_s`, [c], randn(c)),
      floats(`${p}_b`, [c], randn(c)),
      floats(`${p}_m`, [c], randn(c)),
      floats(
        `${p}_v`,
        [c],
        Float32Array.from(randn(c), (v) => 0.5 + v * v),
      ),
    ];
    const model = makeModel({
      input: ["N", 2, 5, 5],
      nodes: [
        node("Conv", ["x", "w"], ["c"]), // [N, 4, 3, 3]
        node("BatchNormalization", ["c", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["b1"], {
          epsilon: { f: 1e-3 },
        }),
        node("Dropout", ["b1"], ["d1"]),
        node("Reshape", ["d1", "s"], ["r"]), // [N, 4, 9]
        node("LayerNormalization", ["r", "ln_s", "ln_b"], ["ln"], { axis: -1, epsilon: { f: 1e-5 } }),
        node("Softmax", ["ln"], ["sm"], { axis: 1 }), // over the 4 channels
        node("Identity", ["sm"], ["id"]),
        node("Cast", ["id"], ["ca"], { to: onnx.TensorProto.DataType.FLOAT }),
        node("Flatten", ["ca"], ["f"]),
        node("Gemm", ["f", "w2", "b2"], ["g"], { transB: 1 }),
        node("BatchNormalization", ["g", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["y"]),
      ],
      inits: [
        weight("w", [4, 2, 3, 3]),
        ...bn("bn1", 4),
        int64s("s", [0, 4, 9]),
        floats("ln_s", [9], randn(9)),
        floats("ln_b", [9], randn(9)),
        weight("w2", [6, 36]),
        floats("b2", [6], randn(6)),
        ...bn("bn2", 6),
      ],
      outputs: [["y", ["N", 6]]],
      opset: 17,
    });
    await expectMatchesOrt(model);
  });

  it("Softmax before opset 13 flattens the trailing axes; a final Softmax yields log-probabilities", async () => {
    const model = makeModel({
      input: ["N", 3, 4],
      nodes: [
        node("Softmax", ["x"], ["sm"], { axis: 1 }),
        node("Reshape", ["sm", "s"], ["r"]),
        node("Gemm", ["r", "w", "b"], ["g"], { transB: 1 }),
        node("Softmax", ["g"], ["y"]),
      ],
      inits: [int64s("s", [0, -1]), weight("w", [4, 12]), floats("b", [4], randn(4))],
      outputs: [["y", ["N", 4]]],
      opset: 11,
    });
    const facts = await expectMatchesOrt(model);
    expect(facts.outputIsProbabilities).toBe(true);
    // logits() returns log-probabilities: every row's exp sums to one.
    const tf = await loadTf();
    const tr = await translateOnnx(model);
    const sums = tf.tidy(() => tf.sum(tf.exp(tr.logits(tf.tensor(randn(12), [1, 3, 4]))), 1).dataSync());
    tr.dispose();
    expect(sums[0]).toBeCloseTo(1, 5);
  });

  it("a Softmax behind shape-only operators still makes probabilities, unless something else reads it", async () => {
    const behindReshape = makeModel({
      input: ["N", 6],
      nodes: [
        node("Gemm", ["x", "w", "b"], ["g"], { transB: 1 }),
        node("Unsqueeze", ["g", "ax"], ["u"]), // [N, 1, 4]
        node("Softmax", ["u"], ["sm"], { axis: -1 }),
        node("Flatten", ["sm"], ["f"]),
        node("Identity", ["f"], ["y"]),
      ],
      inits: [weight("w", [4, 6]), floats("b", [4], randn(4)), int64s("ax", [1])],
      outputs: [["y", ["N", 4]]],
    });
    expect((await expectMatchesOrt(behindReshape)).outputIsProbabilities).toBe(true);
    const readTwice = makeModel({
      input: ["N", 6],
      nodes: [
        node("Gemm", ["x", "w", "b"], ["g"], { transB: 1 }),
        node("Softmax", ["g"], ["sm"]),
        node("Reshape", ["sm", "s"], ["r"]),
        node("Add", ["r", "sm"], ["y"]),
      ],
      inits: [weight("w", [4, 6]), floats("b", [4], randn(4)), int64s("s", [0, 4])],
      outputs: [["y", ["N", 4]]],
    });
    expect((await expectMatchesOrt(readTwice)).outputIsProbabilities).toBe(false);
  });

  it("a PyTorch-exporter-style CNN: Conv→BatchNorm→Relu→MaxPool→Shape/Gather/Unsqueeze/Concat→Reshape→Gemm→GELU as Erf→Gemm→Softmax", async () => {
    const model = pytorchStyleCnn();
    const facts = await expectMatchesOrt(model, {}, 8);
    expect(facts.numClasses).toBe(10);
    expect(facts.outputIsProbabilities).toBe(true);
    expect(facts.ops).toContain("Erf");
  });
});

/** The graph torch.onnx.export writes for a small CNN whose forward ends in x.view(x.size(0), -1). */
function pytorchStyleCnn(): OnnxModelFile {
  const c = 6;
  return makeModel({
    input: ["batch", 1, 12, 12],
    nodes: [
      node(
        "Conv",
        ["x", "conv.weight", "conv.bias"],
        ["/conv/Conv_output_0"],
        { pads: [1, 1, 1, 1], kernel_shape: [3, 3] },
        "/conv/Conv",
      ),
      node(
        "BatchNormalization",
        ["/conv/Conv_output_0", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
        ["/bn/BatchNormalization_output_0"],
        { epsilon: { f: 1e-5 }, momentum: { f: 0.9 } },
        "/bn/BatchNormalization",
      ),
      node("Relu", ["/bn/BatchNormalization_output_0"], ["/relu/Relu_output_0"], {}, "/relu/Relu"),
      node(
        "MaxPool",
        ["/relu/Relu_output_0"],
        ["/pool/MaxPool_output_0"],
        { kernel_shape: [2, 2], strides: [2, 2] },
        "/pool/MaxPool",
      ),
      node("Shape", ["/pool/MaxPool_output_0"], ["/Shape_output_0"], {}, "/Shape"),
      node("Constant", [], ["/Constant_output_0"], { value: { t: int64s("", [0], []) } }, "/Constant"),
      node("Gather", ["/Shape_output_0", "/Constant_output_0"], ["/Gather_output_0"], { axis: 0 }, "/Gather"),
      node("Constant", [], ["/Constant_1_output_0"], { value: { t: int64s("", [0]) } }, "/Constant_1"),
      node(
        "Unsqueeze",
        ["/Gather_output_0", "/Constant_1_output_0"],
        ["/Unsqueeze_output_0"],
        {},
        "/Unsqueeze",
      ),
      node("Constant", [], ["/Constant_2_output_0"], { value: { t: int64s("", [-1]) } }, "/Constant_2"),
      node(
        "Concat",
        ["/Unsqueeze_output_0", "/Constant_2_output_0"],
        ["/Concat_output_0"],
        { axis: 0 },
        "/Concat",
      ),
      node("Reshape", ["/pool/MaxPool_output_0", "/Concat_output_0"], ["/Reshape_output_0"], {}, "/Reshape"),
      node(
        "Gemm",
        ["/Reshape_output_0", "fc1.weight", "fc1.bias"],
        ["/fc1/Gemm_output_0"],
        { alpha: { f: 1 }, beta: { f: 1 }, transB: 1 },
        "/fc1/Gemm",
      ),
      node(
        "Constant",
        [],
        ["/act/Constant_output_0"],
        { value: { t: floats("", [], [Math.SQRT2]) } },
        "/act/Constant",
      ),
      node("Div", ["/fc1/Gemm_output_0", "/act/Constant_output_0"], ["/act/Div_output_0"], {}, "/act/Div"),
      node("Erf", ["/act/Div_output_0"], ["/act/Erf_output_0"], {}, "/act/Erf"),
      node(
        "Constant",
        [],
        ["/act/Constant_1_output_0"],
        { value: { t: floats("", [], [1]) } },
        "/act/Constant_1",
      ),
      node("Add", ["/act/Erf_output_0", "/act/Constant_1_output_0"], ["/act/Add_output_0"], {}, "/act/Add"),
      node("Mul", ["/fc1/Gemm_output_0", "/act/Add_output_0"], ["/act/Mul_output_0"], {}, "/act/Mul"),
      node(
        "Constant",
        [],
        ["/act/Constant_2_output_0"],
        { value: { t: floats("", [], [0.5]) } },
        "/act/Constant_2",
      ),
      node(
        "Mul",
        ["/act/Mul_output_0", "/act/Constant_2_output_0"],
        ["/act/Mul_1_output_0"],
        {},
        "/act/Mul_1",
      ),
      node(
        "Gemm",
        ["/act/Mul_1_output_0", "fc2.weight", "fc2.bias"],
        ["/fc2/Gemm_output_0"],
        { alpha: { f: 1 }, beta: { f: 1 }, transB: 1 },
        "/fc2/Gemm",
      ),
      node("Softmax", ["/fc2/Gemm_output_0"], ["probs"], { axis: 1 }, "/Softmax"),
    ],
    inits: [
      weight("conv.weight", [c, 1, 3, 3]),
      floats("conv.bias", [c], randn(c, 0.1)),
      floats(
        "bn.weight",
        [c],
        Float32Array.from(randn(c, 0.1), (v) => 1 + v),
      ),
      floats("bn.bias", [c], randn(c, 0.1)),
      floats("bn.running_mean", [c], randn(c, 0.1)),
      floats(
        "bn.running_var",
        [c],
        Float32Array.from(randn(c, 0.1), (v) => 1 + Math.abs(v)),
      ),
      weight("fc1.weight", [32, c * 36]),
      floats("fc1.bias", [32], randn(32, 0.1)),
      weight("fc2.weight", [10, 32]),
      floats("fc2.bias", [10], randn(10, 0.1)),
    ],
    outputs: [["probs", ["batch", 10]]],
  });
}

describe("graphs that fix their batch size", () => {
  it("a batch baked into a Reshape ([1, −1]) is evaluated one fixed-size chunk at a time, gradients included", async () => {
    const tf = await loadTf();
    const model = makeModel({
      input: [1, 2, 4, 4],
      nodes: [
        node("Conv", ["x", "w"], ["c"], { pads: [1, 1, 1, 1] }),
        node("Reshape", ["c", "s"], ["r"]),
        node("Gemm", ["r", "w2", "b2"], ["y"], { transB: 1 }),
      ],
      inits: [
        weight("w", [3, 2, 3, 3]),
        int64s("s", [1, -1]),
        weight("w2", [5, 48]),
        floats("b2", [5], randn(5)),
      ],
      outputs: [["y", [1, 5]]],
    });
    const tr = await translateOnnx(model);
    const n = 5;
    const x = randn(n * 32);
    const ours = await runTranslation(tr, x, n);
    const reference = new Float32Array(n * 5);
    for (let i = 0; i < n; i++)
      reference.set(await runOrt(model, x.subarray(i * 32, (i + 1) * 32), [1, 2, 4, 4], "y"), i * 5);
    expect(maxAbsDiff(reference, ours)).toBeLessThan(1e-4);
    const grad = tf.tidy(() =>
      tf
        .grad((input: Tensor) => tf.sum(tr.logits(input)))(tf.tensor(x, [n, 2, 4, 4]))
        .dataSync(),
    );
    expect(grad.length).toBe(n * 32);
    expect(grad.every(Number.isFinite)).toBe(true);
    tr.dispose();
  });
});

describe("what the audit relies on", () => {
  it("the input gradient is finite and matches finite differences of the onnxruntime model", async () => {
    // Smooth operators only: central differences across a max-pool or ReLU kink are wrong by
    // design (max pooling has its own exact test below).
    const model = classifier({
      input: ["N", 2, 8, 8],
      body: [
        node("Conv", ["x", "w1", "b1"], ["c1"], { pads: [1, 2, 1, 0] }),
        node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"]),
        node("Tanh", ["n1"], ["t1"]),
        node("AveragePool", ["t1"], ["p1"], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
        node("Conv", ["p1", "w2"], ["c2"], { auto_pad: "SAME_UPPER", strides: [2, 2], kernel_shape: [3, 3] }),
        node("Gelu", ["c2"], ["h"]),
      ],
      // 8×7 → pool 4×4 → conv 2×2
      inits: [
        weight("w1", [3, 2, 3, 3]),
        floats("b1", [3], randn(3)),
        floats("bn_s", [3], randn(3)),
        floats("bn_b", [3], randn(3)),
        floats("bn_m", [3], randn(3, 0.1)),
        floats("bn_v", [3], [0.5, 1, 2]),
        weight("w2", [4, 3, 3, 3]),
      ],
      features: 16,
      classes: 3,
      opset: 20,
    });
    await expectGradientMatchesOrt(model, [2, 2, 8, 8], 3);
  });

  it("the input gradient of depthwise convolutions (stride, multiplier, dilation, pads) matches finite differences", async () => {
    const model = classifier({
      input: ["N", 3, 9, 8],
      body: [
        // 9×8 → pads (1, 0, 0, 2) → 10×10 → 3×3 taps, stride 2 → 4×4; row and column 9 reach no window.
        node("Conv", ["x", "dw1", "db1"], ["d1"], { group: 3, pads: [1, 0, 0, 2], strides: [2, 2] }),
        node("Tanh", ["d1"], ["t1"]),
        // Dilation 2, multiplier 1, same padding: 4×4 → 4×4.
        node("Conv", ["t1", "dw2"], ["d2"], { group: 6, pads: [2, 2, 2, 2], dilations: [2, 2] }),
        node("Sigmoid", ["d2"], ["h"]),
      ],
      inits: [weight("dw1", [6, 1, 3, 3]), floats("db1", [6], randn(6)), weight("dw2", [6, 1, 3, 3])],
      features: 6 * 16,
      classes: 3,
    });
    await expectMatchesOrt(model);
    await expectGradientMatchesOrt(model, [2, 3, 9, 8], 3);
  });

  it("max pooling's input gradient sends each window's upstream gradient to the window's maximum", async () => {
    const tf = await loadTf();
    // Overlapping 3×3 windows, stride 2, padding 1 and ceil_mode: 7×7 → 4×4.
    const model = makeModel({
      input: ["N", 2, 7, 7],
      nodes: [
        node("MaxPool", ["x"], ["m"], {
          kernel_shape: [3, 3],
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          ceil_mode: 1,
        }),
        node("Flatten", ["m"], ["y"]),
      ],
      outputs: [["y", ["N", 32]]],
    });
    const tr = await translateOnnx(model);
    const n = 2;
    // The second sample is rounded to integers: many ties, as in an image's flat background,
    // where the first maximum in scan order takes the gradient.
    const x = Float32Array.from(randn(n * 2 * 49), (v, i) => (i < 98 ? v : Math.round(v)));
    const r = randn(n * 32);
    const grad = tf.tidy(() =>
      tf
        .grad((input: Tensor) => tf.sum(tf.mul(tr.logits(input), tf.tensor(r, [n, 32]))))(
          tf.tensor(x, [n, 2, 7, 7]),
        )
        .dataSync(),
    );
    tr.dispose();
    const expected = new Float32Array(x.length);
    for (let plane = 0; plane < n * 2; plane++) {
      for (let oh = 0; oh < 4; oh++) {
        for (let ow = 0; ow < 4; ow++) {
          let best = -1;
          for (let h = Math.max(0, oh * 2 - 1); h < Math.min(7, oh * 2 + 2); h++) {
            for (let w = Math.max(0, ow * 2 - 1); w < Math.min(7, ow * 2 + 2); w++) {
              const at = plane * 49 + h * 7 + w;
              if (best < 0 || x[at]! > x[best]!) best = at;
            }
          }
          expected[best] = expected[best]! + r[plane * 16 + oh * 4 + ow]!;
        }
      }
    }
    expect(maxAbsDiff(Float32Array.from(grad), expected)).toBeLessThan(1e-6);
  });

  it("repeated logits and gradient calls inside tidy leave no tensors behind; dispose frees the weights", async () => {
    const tf = await loadTf();
    const before = tf.memory().numTensors;
    const tr = await translateOnnx(pytorchStyleCnn());
    const x = tf.tensor(randn(4 * 144), [4, 1, 12, 12]);
    const afterTranslate = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      // tidy keeps what its callback returns, so the callbacks return nothing.
      tf.tidy(() => {
        tr.logits(x);
      });
      tf.tidy(() => {
        tf.grad((input: Tensor) => tf.sum(tr.logits(input)))(x);
      });
      expect(tf.memory().numTensors).toBe(afterTranslate);
    }
    x.dispose();
    tr.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("errors name what is wrong", () => {
  it("untranslatable operators are all named, with node and opset", async () => {
    const model = makeModel({
      input: ["N", 4],
      nodes: [
        node("Reshape", ["x", "s"], ["x3"]),
        node("LSTM", ["x3", "W", "R"], ["seq", "yh"], { hidden_size: 2 }, "encoder_lstm"),
        node("Flatten", ["yh"], ["f"]),
        node("NonMaxSuppression", ["f", "f"], ["sel"], {}, "nms"),
        node("Cast", ["sel"], ["self"], { to: onnx.TensorProto.DataType.FLOAT }),
        node("FusedGemm", ["self", "f"], ["y"], {}, "fused", "com.microsoft"),
      ],
      inits: [int64s("s", [1, 0, 4]), weight("W", [1, 8, 4]), weight("R", [1, 8, 2])],
      outputs: [["y", ["N", 2]]],
      extraOpsets: [{ domain: "com.microsoft", version: 1 }],
    });
    const err = await expectError(
      translateOnnx(model),
      "MODEL_UNSUPPORTED",
      'test.onnx: node "encoder_lstm" uses operator LSTM (opset 13)',
      'node "nms" uses operator NonMaxSuppression (opset 13)',
      'node "fused" uses operator com.microsoft.FusedGemm (opset 1)',
      "which Antidote cannot translate; supported: ",
      "Conv",
    );
    expect(err.message).not.toContain("Reshape (opset");
  });

  it("an unsupported form of a supported operator names the node and the form", async () => {
    const model = makeModel({
      input: ["N", 1, 4, 4],
      nodes: [node("Pad", ["x", "pads"], ["p"], { mode: "reflect" }, "pad0"), node("Flatten", ["p"], ["y"])],
      inits: [int64s("pads", [0, 0, 1, 1, 0, 0, 1, 1])],
      outputs: [["y", ["N", 36]]],
    });
    await expectError(
      translateOnnx(model),
      "MODEL_UNSUPPORTED",
      'node "pad0" (Pad, opset 13)',
      'mode "reflect"',
    );
  });

  it("dynamic spatial dimensions need --input-shape; with it the model translates", async () => {
    const spec = classifier({
      input: ["N", 2, "H", "W"],
      body: [
        node("Conv", ["x", "w"], ["c"], { pads: [1, 1, 1, 1] }),
        node("GlobalAveragePool", ["c"], ["h"]),
      ],
      inits: [weight("w", [3, 2, 3, 3])],
      features: 3,
    });
    await expectError(
      translateOnnx(spec),
      "MODEL_FORMAT",
      'input "x" has dynamic dimensions [N, 2, H, W]',
      "--input-shape",
    );
    await expectMatchesOrt(spec, { inputShape: [2, 7, 5] });
    await expectError(translateOnnx(spec, { inputShape: [3, 7, 5] }), "USAGE", "--input-shape 3,7,5");
  });

  it("several outputs: the class-shaped one by default, --output to choose, an unknown name lists them", async () => {
    const model = makeModel({
      input: ["N", 6],
      nodes: [
        node("Gemm", ["x", "w1", "b1"], ["features"], { transB: 1 }),
        node("Relu", ["features"], ["r"]),
        node("ReduceSum", ["r", "ax"], ["energy"], { keepdims: 0 }),
        node("Gemm", ["r", "w2", "b2"], ["logits"], { transB: 1 }),
      ],
      inits: [
        weight("w1", [8, 6]),
        floats("b1", [8], randn(8)),
        int64s("ax", [1]),
        weight("w2", [4, 8]),
        floats("b2", [4], randn(4)),
      ],
      outputs: [
        ["energy", ["N"]],
        ["logits", ["N", 4]],
        ["features", ["N", 8]],
      ],
    });
    const chosen = await expectMatchesOrt(model);
    expect(chosen.outputName).toBe("logits");
    expect(chosen.numClasses).toBe(4);
    const features = await expectMatchesOrt(model, { output: "features" });
    expect(features.numClasses).toBe(8);
    await expectError(
      translateOnnx(model, { output: "probs" }),
      "USAGE",
      'no output "probs"',
      '"energy", "logits", "features"',
    );
    await expectError(
      translateOnnx(model, { output: "energy" }),
      "MODEL_FORMAT",
      'test.onnx: output "energy" has shape [2]',
    );
  });

  it("logits rejects a batch of the wrong shape", async () => {
    const tf = await loadTf();
    const tr = await translateOnnx(pytorchStyleCnn());
    expect(() => tf.tidy(() => tr.logits(tf.zeros([2, 1, 10, 12])))).toThrow(
      /\[N, 1, 12, 12\], got \[2, 1, 10, 12\]/,
    );
    tr.dispose();
  });
});
