// The ONNX operators the TF.js translation understands, one function each, over a small value
// model: a value is either known on the host (weights, constants, and every shape computed from
// the input's static shape: Shape → Gather → Unsqueeze → Concat → Reshape chains) or a TF.js
// tensor that depends on the input. Host values never become graph operations, so the
// differentiable graph holds only the real computation and shape arithmetic costs nothing.
//
// Layout: ONNX activations are NCHW, TF.js convolutions and pools want NHWC. A 4-D tensor may be
// kept in NHWC between operators that do not care (convolution, pooling, batch norm, elementwise
// maths), and is turned back into NCHW only where an operator needs ONNX's axis order (Flatten,
// Reshape, Softmax, ...). A CNN then pays one transpose at its input and one at its flatten.
import type * as tf from "@tensorflow/tfjs";
import { AntidoteError } from "../errors.js";
import type { Tf } from "../nn/tf.js";
import {
  attributeOf,
  dimsOf,
  floatAttribute,
  initializerToFloat32,
  intAttribute,
  intsAttribute,
  onnx,
  stringAttribute,
} from "../onnx/model-file.js";

export type Layout = "nchw" | "nhwc";
export type HostDtype = "float" | "int" | "bool";

/** A tensor known before the input is: a weight, a constant, or a shape computed from the input's shape. */
export interface HostValue {
  readonly kind: "host";
  readonly dtype: HostDtype;
  readonly shape: readonly number[];
  /** Row-major values; integers are kept as doubles so int64 shape arithmetic stays exact. */
  readonly data: Float32Array | Float64Array;
  /** True for weights and folded constants: they live as long as the translation, so device copies are cached. */
  readonly persistent: boolean;
}

/** A tensor computed from the input, in `layout` (NHWC only for rank 4). */
export interface DeviceValue {
  readonly kind: "device";
  readonly tensor: tf.Tensor;
  readonly layout: Layout;
}

export type Value = HostValue | DeviceValue;

export interface OpContext {
  readonly tf: Tf;
  readonly node: onnx.INodeProto;
  /** Opset of the node's domain. */
  readonly opset: number;
  /** `model.onnx: node "conv1" (Conv, opset 13)` — the start of every message about this node. */
  readonly where: string;
  /** The value as a tensor in ONNX layout (uploading host values, transposing NHWC ones). */
  nchw(v: Value): tf.Tensor;
  /** A value of rank ≤ 4 as an NHWC tensor, its shape first left-padded with 1s to rank 4 (numpy broadcasting). */
  nhwc(v: Value): tf.Tensor;
  /** A tensor derived only from persistent values: made once, kept until the translation is disposed. */
  memo(key: string, make: () => tf.Tensor): tf.Tensor;
}

export type OpFn = (ctx: OpContext, inputs: readonly (Value | undefined)[]) => (Value | undefined)[];

// ---------------------------------------------------------------------------------------------
// Values

export function hostValue(
  dtype: HostDtype,
  shape: readonly number[],
  data: Float32Array | Float64Array,
  persistent = false,
): HostValue {
  return { kind: "host", dtype, shape: [...shape], data, persistent };
}

function deviceValue(tensor: tf.Tensor, layout: Layout = "nchw"): DeviceValue {
  return { kind: "device", tensor, layout: tensor.rank === 4 ? layout : "nchw" };
}

const DT = onnx.TensorProto.DataType;

export function dtypeOfElemType(elemType: number): HostDtype | undefined {
  switch (elemType as onnx.TensorProto.DataType) {
    case DT.FLOAT:
    case DT.DOUBLE:
    case DT.FLOAT16:
    case DT.BFLOAT16:
      return "float";
    case DT.INT8:
    case DT.INT16:
    case DT.INT32:
    case DT.INT64:
    case DT.UINT8:
    case DT.UINT16:
    case DT.UINT32:
    case DT.UINT64:
      return "int";
    case DT.BOOL:
      return "bool";
    default:
      return undefined;
  }
}

/** An initializer or Constant tensor as a persistent host value. */
export function hostFromTensorProto(t: onnx.ITensorProto, where: string): HostValue {
  const dtype = dtypeOfElemType(t.dataType ?? 0);
  if (dtype === undefined) {
    const name = DT[t.dataType ?? 0] ?? String(t.dataType);
    throw new AntidoteError(
      "MODEL_UNSUPPORTED",
      `${where}: has element type ${name}, which Antidote cannot translate.`,
    );
  }
  const values = initializerToFloat32(t, where);
  return hostValue(dtype, dimsOf(t), dtype === "float" ? values : Float64Array.from(values), true);
}

export function logicalShape(v: Value): number[] {
  if (v.kind === "host") return [...v.shape];
  const s = v.tensor.shape;
  return v.layout === "nhwc" ? [s[0], s[3]!, s[1]!, s[2]!] : [...s];
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function stridesOf(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) out[i] = out[i + 1]! * shape[i + 1]!;
  return out;
}

function tfDtype(d: HostDtype): "float32" | "int32" | "bool" {
  return d === "float" ? "float32" : d === "int" ? "int32" : "bool";
}

/** A host value as a new (scope-owned) TF.js tensor. */
export function uploadHost(tfx: Tf, v: HostValue): tf.Tensor {
  if (v.dtype === "float") {
    const data = v.data instanceof Float32Array ? v.data : Float32Array.from(v.data);
    return tfx.tensor(data, [...v.shape], "float32");
  }
  // int64 values outside int32 only appear as "to the end" sentinels (Slice); clamp them.
  const ints = Int32Array.from(v.data, (x) => Math.max(-2147483648, Math.min(2147483647, Math.trunc(x))));
  return v.dtype === "bool"
    ? tfx.tensor(ints, [...v.shape], "bool")
    : tfx.tensor(ints, [...v.shape], "int32");
}

/** An NHWC-stored rank-4 tensor back in NCHW. A reshape suffices when H·W or C is 1. */
export function nhwcToNchw(tfx: Tf, t: tf.Tensor): tf.Tensor {
  const [n, h, w, c] = t.shape as [number, number, number, number];
  if (h * w === 1 || c === 1) return tfx.reshape(t, [n, c, h, w]);
  return tfx.transpose(t, [0, 3, 1, 2]);
}

/** A rank ≤ 4 NCHW tensor as NHWC, left-padding its shape to rank 4 (numpy broadcasting). */
export function nchwToNhwc(tfx: Tf, t: tf.Tensor): tf.Tensor {
  const s = [...new Array<number>(4 - t.rank).fill(1), ...t.shape] as [number, number, number, number];
  const [n, c, h, w] = s;
  if (h * w === 1 || c === 1) return tfx.reshape(t, [n, h, w, c]);
  return tfx.transpose(t.rank === 4 ? t : tfx.reshape(t, s), [0, 2, 3, 1]);
}

function isPersistent(v: Value | undefined): boolean {
  return v === undefined || (v.kind === "host" && v.persistent);
}

// ---------------------------------------------------------------------------------------------
// Errors and input access

export function unsupported(ctx: OpContext, what: string): AntidoteError {
  return new AntidoteError("MODEL_UNSUPPORTED", `${ctx.where}: ${what}, which Antidote cannot translate.`);
}

function need(ctx: OpContext, inputs: readonly (Value | undefined)[], i: number): Value {
  const v = inputs[i];
  if (v === undefined) {
    throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: required input ${i + 1} is missing.`);
  }
  return v;
}

/** An input the translation needs before the input tensor exists (shapes, axes, pads). */
function needHost(
  ctx: OpContext,
  inputs: readonly (Value | undefined)[],
  i: number,
  role: string,
): HostValue {
  const v = need(ctx, inputs, i);
  if (v.kind !== "host") throw unsupported(ctx, `its ${role} is computed from tensor values`);
  return v;
}

function hostInts(v: HostValue): number[] {
  return Array.from(v.data, (x) => Math.trunc(x));
}

/** Integer list from an attribute (older opsets) or an optional host input (newer ones). */
function intsFrom(
  ctx: OpContext,
  inputs: readonly (Value | undefined)[],
  attr: string,
  inputIndex: number,
  role: string,
): number[] | undefined {
  const fromAttr = intsAttribute(ctx.node, attr);
  if (fromAttr !== undefined) return fromAttr;
  if (inputs[inputIndex] === undefined) return undefined;
  return hostInts(needHost(ctx, inputs, inputIndex, role));
}

function normAxis(ctx: OpContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: axis ${axis} is out of range for rank ${rank}.`);
  }
  return a;
}

function floatsOf(ctx: OpContext, v: Value): tf.Tensor {
  const t = ctx.nchw(v);
  return t.dtype === "float32" ? t : ctx.tf.cast(t, "float32");
}

// ---------------------------------------------------------------------------------------------
// Host computation (shape arithmetic and constant folding)

function hostMap(v: HostValue, f: (x: number) => number, dtype: HostDtype = v.dtype): HostValue {
  const data = dtype === "float" ? Float32Array.from(v.data, f) : Float64Array.from(v.data, f);
  return hostValue(dtype, v.shape, data, v.persistent);
}

function broadcastShape(ctx: OpContext, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new AntidoteError(
        "MODEL_FORMAT",
        `${ctx.where}: shapes [${a.join(", ")}] and [${b.join(", ")}] do not broadcast.`,
      );
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Flat index into `shape` (broadcast to `out`) for each flat index of `out`. */
function broadcastIndex(shape: readonly number[], out: readonly number[]): Int32Array {
  const n = size(out);
  const idx = new Int32Array(n);
  const padded = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  const inStrides = stridesOf(padded);
  const outStrides = stridesOf(out);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let at = 0;
    for (let d = 0; d < out.length; d++) {
      const coord = Math.floor(rem / outStrides[d]!);
      rem -= coord * outStrides[d]!;
      if (padded[d] !== 1) at += coord * inStrides[d]!;
    }
    idx[i] = at;
  }
  return idx;
}

function hostBinary(
  ctx: OpContext,
  a: HostValue,
  b: HostValue,
  f: (x: number, y: number) => number,
): HostValue {
  const shape = broadcastShape(ctx, a.shape, b.shape);
  const ia = broadcastIndex(a.shape, shape);
  const ib = broadcastIndex(b.shape, shape);
  const dtype: HostDtype = a.dtype === "float" || b.dtype === "float" ? "float" : "int";
  const n = size(shape);
  const data = dtype === "float" ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = f(a.data[ia[i]!]!, b.data[ib[i]!]!);
  if (dtype === "int") for (let i = 0; i < n; i++) data[i] = Math.trunc(data[i]!);
  return hostValue(dtype, shape, data, a.persistent && b.persistent);
}

function hostReshape(v: HostValue, shape: readonly number[]): HostValue {
  return hostValue(v.dtype, shape, v.data, v.persistent);
}

function hostTranspose(v: HostValue, perm: readonly number[]): HostValue {
  const shape = perm.map((p) => v.shape[p]!);
  const inStrides = stridesOf(v.shape);
  const outStrides = stridesOf(shape);
  const n = size(shape);
  const data = v.data instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let at = 0;
    for (let d = 0; d < shape.length; d++) {
      const coord = Math.floor(rem / outStrides[d]!);
      rem -= coord * outStrides[d]!;
      at += coord * inStrides[perm[d]!]!;
    }
    data[i] = v.data[at]!;
  }
  return hostValue(v.dtype, shape, data, v.persistent);
}

/** Take `indices` (already non-negative) along `axis`; the output keeps `indexShape` in place of the axis. */
function hostTake(
  v: HostValue,
  axis: number,
  indices: readonly number[],
  indexShape: readonly number[],
): HostValue {
  const outer = size(v.shape.slice(0, axis));
  const inner = size(v.shape.slice(axis + 1));
  const dim = v.shape[axis]!;
  const n = outer * indices.length * inner;
  const data = v.data instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const ix of indices) {
      const base = (o * dim + ix) * inner;
      for (let j = 0; j < inner; j++) data[k++] = v.data[base + j]!;
    }
  }
  const shape = [...v.shape.slice(0, axis), ...indexShape, ...v.shape.slice(axis + 1)];
  return hostValue(v.dtype, shape, data, v.persistent);
}

function hostConcat(values: readonly HostValue[], axis: number): HostValue {
  const first = values[0]!;
  const outer = size(first.shape.slice(0, axis));
  const total = values.reduce((s, v) => s + v.shape[axis]!, 0);
  const dtype: HostDtype = values.some((v) => v.dtype === "float") ? "float" : first.dtype;
  const shape = [...first.shape];
  shape[axis] = total;
  const n = size(shape);
  const data = dtype === "float" ? new Float32Array(n) : new Float64Array(n);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const v of values) {
      const run = size(v.shape.slice(axis));
      for (let j = 0; j < run; j++) data[k++] = v.data[o * run + j]!;
    }
  }
  return hostValue(
    dtype,
    shape,
    data,
    values.every((v) => v.persistent),
  );
}

// ---------------------------------------------------------------------------------------------
// Elementwise operators

/** Operators that act on each element alone: they keep whatever layout their input has. */
const UNARY: Record<string, (ctx: OpContext, x: tf.Tensor) => tf.Tensor> = {
  Relu: (c, x) => c.tf.relu(x),
  LeakyRelu: (c, x) => c.tf.leakyRelu(x, floatAttribute(c.node, "alpha", 0.01)),
  Sigmoid: (c, x) => c.tf.sigmoid(x),
  Tanh: (c, x) => c.tf.tanh(x),
  Erf: (c, x) => c.tf.erf(x),
  Gelu: (c, x) => {
    const t = c.tf;
    const approximate = stringAttribute(c.node, "approximate") ?? "none";
    if (approximate === "tanh") {
      const inner = t.mul(t.add(x, t.mul(t.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return t.mul(t.mul(x, 0.5), t.add(t.tanh(inner), 1));
    }
    if (approximate !== "none") throw unsupported(c, `it uses approximate="${approximate}"`);
    return t.mul(t.mul(x, 0.5), t.add(t.erf(t.mul(x, Math.SQRT1_2)), 1));
  },
  Elu: (c, x) => {
    const alpha = floatAttribute(c.node, "alpha", 1);
    return alpha === 1 ? c.tf.elu(x) : c.tf.where(c.tf.greater(x, 0), x, c.tf.mul(c.tf.expm1(x), alpha));
  },
  Selu: (c, x) => {
    const alpha = floatAttribute(c.node, "alpha", 1.6732632423543772);
    const gamma = floatAttribute(c.node, "gamma", 1.0507009873554805);
    const t = c.tf;
    return t.mul(t.where(t.greater(x, 0), x, t.mul(t.expm1(x), alpha)), gamma);
  },
  Softplus: (c, x) => c.tf.softplus(x),
  Softsign: (c, x) => c.tf.div(x, c.tf.add(c.tf.abs(x), 1)),
  HardSigmoid: (c, x) => {
    const alpha = floatAttribute(c.node, "alpha", 0.2);
    const beta = floatAttribute(c.node, "beta", 0.5);
    return c.tf.clipByValue(c.tf.add(c.tf.mul(x, alpha), beta), 0, 1);
  },
  HardSwish: (c, x) => c.tf.mul(x, c.tf.clipByValue(c.tf.add(c.tf.mul(x, 1 / 6), 0.5), 0, 1)),
  Exp: (c, x) => c.tf.exp(x),
  Log: (c, x) => c.tf.log(x),
  Sqrt: (c, x) => c.tf.sqrt(x),
  Reciprocal: (c, x) => c.tf.reciprocal(x),
  Abs: (c, x) => c.tf.abs(x),
  Floor: (c, x) => c.tf.floor(x),
  Ceil: (c, x) => c.tf.ceil(x),
};

function unaryOp(f: (ctx: OpContext, x: tf.Tensor) => tf.Tensor): OpFn {
  return (ctx, inputs) => {
    const v = need(ctx, inputs, 0);
    const layout = v.kind === "device" ? v.layout : "nchw";
    const x = layout === "nhwc" ? (v as DeviceValue).tensor : floatsOf(ctx, v);
    return [deviceValue(f(ctx, x), layout)];
  };
}

/**
 * A broadcasting binary operator. Two host operands are computed on the host (shape arithmetic);
 * otherwise on the device, in NHWC when an operand already is and every operand has rank ≤ 4
 * (a [C,1,1] bias broadcasts against NCHW exactly as its NHWC image broadcasts against NHWC).
 */
function binaryOp(
  device: (t: Tf, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  host?: (a: number, b: number) => number,
): OpFn {
  return (ctx, inputs) => {
    const a = need(ctx, inputs, 0);
    const b = need(ctx, inputs, 1);
    if (a.kind === "host" && b.kind === "host" && host !== undefined) return [hostBinary(ctx, a, b, host)];
    const nhwc =
      [a, b].some((v) => v.kind === "device" && v.layout === "nhwc") &&
      [a, b].every((v) => logicalShape(v).length <= 4);
    if (nhwc) return [deviceValue(device(ctx.tf, ctx.nhwc(a), ctx.nhwc(b)), "nhwc")];
    return [deviceValue(device(ctx.tf, floatsOf(ctx, a), floatsOf(ctx, b)))];
  };
}

/** Sum / Max / Min / Mean over any number of broadcasting inputs. */
function variadicOp(pair: OpFn, mean: boolean): OpFn {
  return (ctx, inputs) => {
    const present = inputs.filter((v): v is Value => v !== undefined);
    if (present.length === 0) throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: has no inputs.`);
    let acc: Value = present[0]!;
    for (const v of present.slice(1)) acc = pair(ctx, [acc, v])[0]!;
    if (!mean || present.length === 1) return [acc];
    const scale = hostValue("float", [], Float32Array.of(1 / present.length), true);
    return binaryOp(
      (t, x, y) => t.mul(x, y),
      (x, y) => x * y,
    )(ctx, [acc, scale]);
  };
}

const add = binaryOp(
  (t, a, b) => t.add(a, b),
  (a, b) => a + b,
);
const maximum = binaryOp((t, a, b) => t.maximum(a, b), Math.max);
const minimum = binaryOp((t, a, b) => t.minimum(a, b), Math.min);

const clip: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  let lo: number | undefined;
  let hi: number | undefined;
  if (ctx.opset < 11) {
    lo = attributeOf(ctx.node, "min") === undefined ? undefined : floatAttribute(ctx.node, "min", 0);
    hi = attributeOf(ctx.node, "max") === undefined ? undefined : floatAttribute(ctx.node, "max", 0);
  } else {
    if (inputs[1] !== undefined) lo = needHost(ctx, inputs, 1, "min").data[0];
    if (inputs[2] !== undefined) hi = needHost(ctx, inputs, 2, "max").data[0];
  }
  return unaryOp((c, t) => {
    let y = t;
    if (lo !== undefined) y = c.tf.maximum(y, lo);
    if (hi !== undefined) y = c.tf.minimum(y, hi);
    return y;
  })(ctx, [x]);
};

// ---------------------------------------------------------------------------------------------
// Convolution and pooling

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin, end] per spatial axis. */
  pads: [number, number][];
  out: number[];
}

/** Kernel geometry from ONNX attributes for the given spatial input sizes (pads, auto_pad, ceil_mode). */
function windowOf(
  ctx: OpContext,
  spatial: readonly number[],
  kernel: readonly number[],
  pooling: boolean,
): Window {
  const rank = spatial.length;
  const strides = intsAttribute(ctx.node, "strides") ?? new Array<number>(rank).fill(1);
  const dilations = intsAttribute(ctx.node, "dilations") ?? new Array<number>(rank).fill(1);
  const autoPad = stringAttribute(ctx.node, "auto_pad") ?? "NOTSET";
  const ceil = pooling && intAttribute(ctx.node, "ceil_mode", 0) === 1;
  const padsAttr = intsAttribute(ctx.node, "pads") ?? new Array<number>(2 * rank).fill(0);
  const pads: [number, number][] = [];
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const inSize = spatial[i]!;
    const s = strides[i] ?? 1;
    const dk = ((kernel[i] ?? 1) - 1) * (dilations[i] ?? 1) + 1;
    let begin = padsAttr[i] ?? 0;
    let end = padsAttr[i + rank] ?? 0;
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      const total = Math.max(0, (Math.ceil(inSize / s) - 1) * s + dk - inSize);
      const small = Math.floor(total / 2);
      [begin, end] = autoPad === "SAME_UPPER" ? [small, total - small] : [total - small, small];
    } else if (autoPad === "VALID") {
      [begin, end] = [0, 0];
    } else if (autoPad !== "NOTSET") {
      throw unsupported(ctx, `it uses auto_pad="${autoPad}"`);
    }
    const span = inSize + begin + end - dk;
    let n = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    // As onnxruntime does: with ceil_mode the last window must start inside the input or its left padding.
    if (ceil && (n - 1) * s >= inSize + begin) n--;
    if (n < 1) {
      throw new AntidoteError(
        "MODEL_FORMAT",
        `${ctx.where}: a ${kernel.join("×")} window does not fit an input of ${spatial.join("×")}.`,
      );
    }
    pads.push([begin, end]);
    out.push(n);
  }
  return { kernel: [...kernel], strides, dilations, pads, out };
}

/** Rank-3 (N, C, L) inputs run as rank 4 with H = 1; these lift the geometry the same way. */
function as2d(values: readonly number[], fill: number): number[] {
  return values.length === 1 ? [fill, values[0]!] : [...values];
}

function spatialInput(ctx: OpContext, x: Value): { t: tf.Tensor; oneD: boolean } {
  const shape = logicalShape(x);
  if (shape.length === 4) return { t: ctx.nhwc(x), oneD: false };
  if (shape.length === 3) {
    const [n, c, l] = shape as [number, number, number];
    return { t: ctx.tf.reshape(ctx.tf.transpose(ctx.nchw(x), [0, 2, 1]), [n, 1, l, c]), oneD: true };
  }
  throw unsupported(
    ctx,
    `its input has rank ${shape.length} (only 1-D and 2-D spatial inputs are supported)`,
  );
}

function spatialOutput(ctx: OpContext, y: tf.Tensor, oneD: boolean): DeviceValue {
  if (!oneD) return deviceValue(y, "nhwc");
  const [n, , l, c] = y.shape as [number, number, number, number];
  return deviceValue(ctx.tf.transpose(ctx.tf.reshape(y, [n, l, c]), [0, 2, 1]));
}

const conv: OpFn = (ctx, inputs) => {
  const t = ctx.tf;
  const x = need(ctx, inputs, 0);
  const w = need(ctx, inputs, 1);
  const b = inputs[2];
  if (w.kind !== "host" || !isPersistent(b))
    throw unsupported(ctx, "its weights are computed from the input");
  if (w.shape.length !== 3 && w.shape.length !== 4)
    throw unsupported(ctx, `its weight has rank ${w.shape.length}`);
  const { t: input, oneD } = spatialInput(ctx, x);
  const inChannels = input.shape[3]!;
  const group = intAttribute(ctx.node, "group", 1);
  const [outChannels, perGroup] = w.shape as [number, number];
  if (perGroup * group !== inChannels || outChannels % group !== 0) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${ctx.where}: weight [${w.shape.join(", ")}] with group ${group} does not fit ${inChannels} input channels.`,
    );
  }
  const kernel = as2d(w.shape.slice(2), 1);
  const spatial = [input.shape[1]!, input.shape[2]!];
  const geometry = windowOf(ctx, oneD ? [spatial[1]!] : spatial, w.shape.slice(2), false);
  const strides = as2d(geometry.strides, 1) as [number, number];
  const dilations = as2d(geometry.dilations, 1) as [number, number];
  const pads = oneD ? [[0, 0] as [number, number], geometry.pads[0]!] : geometry.pads;
  const explicit: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    pads[0]!,
    pads[1]!,
    [0, 0],
  ];
  const unpadded = pads.every(([p, q]) => p === 0 && q === 0);
  const x4 = input as tf.Tensor4D;
  // TF.js has no input gradient for dilated convolutions, and the wasm backend none for
  // depthwise ones, so dilation is written into the filter (zeros between taps), depthwise
  // convolutions get their input gradient from a custom rule, and other groups become one
  // block-diagonal filter (few groups) or one convolution per group (many).
  let y: tf.Tensor;
  if (perGroup === 1 && group > 1) {
    const multiplier = outChannels / group;
    const filters = ctx.memo("depthwise", () => {
      const f = prepareFilter(t, w, kernel, dilations, group, group);
      return t.reshape(f, [f.shape[0], f.shape[1]!, group, multiplier]);
    });
    // The same taps rotated by 180°, one per output channel: the backward pass's filter.
    const rotated = ctx.memo("depthwise-rotated", () =>
      t.reshape(t.reverse(filters, [0, 1]), [filters.shape[0], filters.shape[1]!, outChannels, 1]),
    );
    const source = unpadded ? x4 : t.pad(x4, explicit);
    y = depthwiseConv(t, source, filters as tf.Tensor4D, rotated as tf.Tensor4D, strides);
  } else {
    const blocks = group <= 16 ? 1 : group;
    const filters = ctx.memo(`filter/${blocks}`, () => prepareFilter(t, w, kernel, dilations, group, blocks));
    const padding = unpadded ? "valid" : explicit;
    if (blocks === 1) {
      y = t.conv2d(x4, filters as tf.Tensor4D, strides, padding);
    } else {
      const groupFilters = t.split(filters, blocks, 3);
      const groupInputs = t.split(x4, blocks, 3);
      const outputs = groupInputs.map((gx, g) =>
        t.conv2d(gx as tf.Tensor4D, groupFilters[g] as tf.Tensor4D, strides, padding),
      );
      y = t.concat(outputs, 3);
    }
  }
  if (b !== undefined) y = t.add(y, ctx.nchw(b));
  return [spatialOutput(ctx, y, oneD)];
};

/**
 * A depthwise convolution (valid padding) over NHWC `x` with filter [kh, kw, C, multiplier]:
 * tf.depthwiseConv2d forward, and for the input gradient the transposed convolution written out
 * as a depthwise convolution too — dy spread back onto the stride grid, padded by the kernel,
 * correlated with the rotated taps, and each input channel's `multiplier` outputs summed.
 */
function depthwiseConv(
  t: Tf,
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  rotated: tf.Tensor4D,
  strides: readonly [number, number],
): tf.Tensor {
  const [n, height, width, channels] = x.shape;
  const [kh, kw, , multiplier] = filter.shape;
  const [sh, sw] = strides;
  const conv = t.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor4D;
    return {
      value: t.depthwiseConv2d(input, filter, [sh, sw], "valid"),
      gradFunc: (dy: tf.Tensor) => {
        const [, oh, ow, outC] = dy.shape as [number, number, number, number];
        // Zeros between the rows and columns of dy: [n, (oh−1)·sh + 1, (ow−1)·sw + 1, outC].
        let spread: tf.Tensor = dy;
        if (sh > 1) {
          spread = t.pad(t.reshape(spread, [n * oh, 1, ow, outC]), [
            [0, 0],
            [0, sh - 1],
            [0, 0],
            [0, 0],
          ]);
          spread = t.reshape(spread, [n, oh * sh, ow, outC]);
        }
        if (sw > 1) {
          spread = t.pad(t.reshape(spread, [n * oh * sh, ow, 1, outC]), [
            [0, 0],
            [0, 0],
            [0, sw - 1],
            [0, 0],
          ]);
          spread = t.reshape(spread, [n, oh * sh, ow * sw, outC]);
        }
        const rows = (oh - 1) * sh + 1;
        const cols = (ow - 1) * sw + 1;
        spread = t.slice(spread, [0, 0, 0, 0], [n, rows, cols, outC]);
        // Full correlation, plus the input's trailing rows and columns no window reached.
        const padded = t.pad(spread, [
          [0, 0],
          [kh - 1, kh - 1 + height - (rows + kh - 1)],
          [kw - 1, kw - 1 + width - (cols + kw - 1)],
          [0, 0],
        ]);
        const perOutput = t.depthwiseConv2d(padded as tf.Tensor4D, rotated, 1, "valid");
        if (multiplier === 1) return perOutput;
        return t.sum(t.reshape(perOutput, [n, height, width, channels, multiplier]), 4);
      },
    };
  });
  return conv(x);
}

/**
 * OIHW weights as an HWIO filter with dilation written in. `blocks` = 1 gives one block-diagonal
 * filter over all input channels; `blocks` = group gives the per-group filters side by side on
 * the output axis, [kh, kw, in/group, out].
 */
function prepareFilter(
  t: Tf,
  w: HostValue,
  kernel: readonly number[],
  dilations: readonly [number, number],
  group: number,
  blocks: number,
): tf.Tensor {
  const [outC, perGroup] = w.shape as [number, number];
  const [kh, kw] = kernel as [number, number];
  const [dh, dw] = dilations;
  const eh = (kh - 1) * dh + 1;
  const ew = (kw - 1) * dw + 1;
  const inC = blocks === 1 ? perGroup * group : perGroup;
  const outPerGroup = outC / group;
  const filter = new Float32Array(eh * ew * inC * outC);
  for (let m = 0; m < outC; m++) {
    const g = Math.floor(m / outPerGroup);
    const inBase = blocks === 1 ? g * perGroup : 0;
    for (let c = 0; c < perGroup; c++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          const from = ((m * perGroup + c) * kh + y) * kw + x;
          const to = ((y * dh * ew + x * dw) * inC + inBase + c) * outC + m;
          filter[to] = w.data[from]!;
        }
      }
    }
  }
  return t.tensor4d(filter, [eh, ew, inC, outC]);
}

function poolOp(kind: "max" | "avg"): OpFn {
  return (ctx, inputs) => {
    const t = ctx.tf;
    const x = need(ctx, inputs, 0);
    const kernelShape = intsAttribute(ctx.node, "kernel_shape");
    if (kernelShape === undefined)
      throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: has no kernel_shape.`);
    const { t: input, oneD } = spatialInput(ctx, x);
    const spatial = oneD ? [input.shape[2]!] : [input.shape[1]!, input.shape[2]!];
    if (kernelShape.length !== spatial.length) {
      throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: kernel_shape does not match the input's rank.`);
    }
    const g = windowOf(ctx, spatial, kernelShape, true);
    if (g.dilations.some((d) => d !== 1)) throw unsupported(ctx, "it uses dilations");
    const kernel = as2d(g.kernel, 1) as [number, number];
    const strides = as2d(g.strides, 1) as [number, number];
    const out = as2d(g.out, 1);
    const pads = oneD ? [[0, 0] as [number, number], g.pads[0]!] : g.pads;
    const inHW = [input.shape[1]!, input.shape[2]!];
    // Windows that pass the input's end under ceil_mode read extra padding after `end`.
    const extra = [0, 1].map((i) =>
      Math.max(0, (out[i]! - 1) * strides[i]! + kernel[i]! - (inHW[i]! + pads[i]![0] + pads[i]![1])),
    );
    const padding: [number, number][] = [
      [0, 0],
      [pads[0]![0], pads[0]![1] + extra[0]!],
      [pads[1]![0], pads[1]![1] + extra[1]!],
      [0, 0],
    ];
    const anyPad = padding.some(([p, q]) => p !== 0 || q !== 0);
    let y: tf.Tensor4D;
    if (kind === "max") {
      // ONNX's padding never wins a max; -Infinity padding says exactly that.
      const padded = anyPad ? t.pad(input, padding, -Infinity) : input;
      y = maxPoolExact(t, padded as tf.Tensor4D, kernel, strides);
    } else {
      const padded = anyPad ? t.pad(input, padding) : input;
      y = t.avgPool(padded as tf.Tensor4D, kernel, strides, "valid");
      if (anyPad) {
        const includePad = intAttribute(ctx.node, "count_include_pad", 0) === 1;
        const key = `count/${inHW.join("x")}/${includePad}`;
        y = t.mul(
          y,
          ctx.memo(key, () => averageCorrection(t, inHW, kernel, strides, pads, out, includePad)),
        );
      }
    }
    return [spatialOutput(ctx, y, oneD)];
  };
}

/**
 * Max pooling over an already padded NHWC input, with an exact input gradient. tf.maxPool alone
 * will not do: the wasm backend's MaxPoolGrad sends the gradient of a window whose values are all
 * negative to the window's first cell (measured, tfjs-backend-wasm 4.22), which would corrupt
 * input gradients wherever pooling precedes the ReLU. The forward pass is tf.maxPool; the
 * backward pass sends each window's gradient to its first maximum in scan order, as onnxruntime
 * picks it, in one linear pass over the (wasm-resident, so cheap to read) values.
 */
function maxPoolExact(
  t: Tf,
  x: tf.Tensor4D,
  kernel: readonly [number, number],
  strides: readonly [number, number],
): tf.Tensor4D {
  // customGrad hands its inputs over untyped: the input tensor, then the save function.
  const pool = t.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor4D;
    (args[1] as tf.GradSaveFunc)([input]);
    return {
      value: t.maxPool(input, [...kernel], [...strides], "valid"),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        maxPoolInputGradient(t, saved[0]!, dy, kernel, strides),
    };
  });
  return pool(x);
}

function maxPoolInputGradient(
  t: Tf,
  x: tf.Tensor,
  dy: tf.Tensor,
  kernel: readonly [number, number],
  strides: readonly [number, number],
): tf.Tensor {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [, oh, ow] = dy.shape as [number, number, number, number];
  const xs = x.dataSync() as Float32Array;
  const dys = dy.dataSync() as Float32Array;
  const dx = new Float32Array(xs.length);
  const [kh, kw] = kernel;
  const [sh, sw] = strides;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const out = ((b * oh + i) * ow + j) * c;
        for (let ch = 0; ch < c; ch++) {
          let best = -1;
          let bestValue = -Infinity;
          for (let y = i * sh; y < i * sh + kh; y++) {
            for (let z = j * sw; z < j * sw + kw; z++) {
              const at = ((b * h + y) * w + z) * c + ch;
              if (best < 0 || xs[at]! > bestValue) {
                best = at;
                bestValue = xs[at]!;
              }
            }
          }
          dx[best] = dx[best]! + dys[out + ch]!;
        }
      }
    }
  }
  return t.tensor4d(dx, [n, h, w, c]);
}

/**
 * TF.js averages over the whole (padded) window; ONNX divides by the number of window cells in the
 * input (count_include_pad = 0) or in the input plus its explicit pads (= 1), never counting the
 * ceil_mode overhang. This [1, outH, outW, 1] factor turns one into the other.
 */
function averageCorrection(
  t: Tf,
  inHW: readonly number[],
  kernel: readonly [number, number],
  strides: readonly [number, number],
  pads: readonly [number, number][],
  out: readonly number[],
  includePad: boolean,
): tf.Tensor {
  const counts = [0, 1].map((a) => {
    const lo = includePad ? 0 : pads[a]![0];
    const hi = includePad ? inHW[a]! + pads[a]![0] + pads[a]![1] : pads[a]![0] + inHW[a]!;
    return Array.from({ length: out[a]! }, (_, i) => {
      const start = i * strides[a]!;
      return Math.max(0, Math.min(start + kernel[a]!, hi) - Math.max(start, lo));
    });
  });
  const [ch, cw] = counts as [number[], number[]];
  const factor = new Float32Array(ch.length * cw.length);
  for (let i = 0; i < ch.length; i++) {
    for (let j = 0; j < cw.length; j++)
      factor[i * cw.length + j] = (kernel[0] * kernel[1]) / (ch[i]! * cw[j]!);
  }
  return t.tensor4d(factor, [1, ch.length, cw.length, 1]);
}

function globalPool(kind: "max" | "avg"): OpFn {
  return (ctx, inputs) => {
    const t = ctx.tf;
    const x = need(ctx, inputs, 0);
    const rank = logicalShape(x).length;
    const reduce = (v: tf.Tensor, axes: number[]): tf.Tensor =>
      kind === "max" ? t.max(v, axes, true) : t.mean(v, axes, true);
    if (rank === 4) return [deviceValue(reduce(ctx.nhwc(x), [1, 2]), "nhwc")];
    const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
    return [deviceValue(reduce(floatsOf(ctx, x), axes))];
  };
}

// ---------------------------------------------------------------------------------------------
// Dense layers and normalisation

const gemm: OpFn = (ctx, inputs) => {
  const t = ctx.tf;
  const a = floatsOf(ctx, need(ctx, inputs, 0));
  const b = floatsOf(ctx, need(ctx, inputs, 1));
  if (a.rank !== 2 || b.rank !== 2) throw unsupported(ctx, "its A or B input is not a matrix");
  const alpha = floatAttribute(ctx.node, "alpha", 1);
  const beta = floatAttribute(ctx.node, "beta", 1);
  let y = t.matMul(
    a,
    b,
    intAttribute(ctx.node, "transA", 0) === 1,
    intAttribute(ctx.node, "transB", 0) === 1,
  );
  if (alpha !== 1) y = t.mul(y, alpha);
  const c = inputs[2];
  if (c !== undefined && beta !== 0) {
    const bias = beta === 1 ? ctx.nchw(c) : t.mul(ctx.nchw(c), beta);
    y = t.add(y, bias);
  }
  return [deviceValue(y)];
};

const matMul: OpFn = (ctx, inputs) => {
  const t = ctx.tf;
  let a = floatsOf(ctx, need(ctx, inputs, 0));
  let b = floatsOf(ctx, need(ctx, inputs, 1));
  // numpy semantics: 1-D operands gain an axis that is dropped again afterwards.
  const aVector = a.rank === 1;
  const bVector = b.rank === 1;
  if (aVector) a = t.reshape(a, [1, a.shape[0]]);
  if (bVector) b = t.reshape(b, [b.shape[0], 1]);
  let y: tf.Tensor;
  if (b.rank === 2 && a.rank > 2) {
    // The common [..., K] × [K, M] case as one 2-D product.
    const lead = a.shape.slice(0, -1);
    const k = a.shape[a.rank - 1]!;
    y = t.reshape(t.matMul(t.reshape(a, [-1, k]), b), [...lead, b.shape[1]!]);
  } else if (a.rank === 2 && b.rank === 2) {
    y = t.matMul(a, b);
  } else {
    const batch = broadcastShape(ctx, a.shape.slice(0, -2), b.shape.slice(0, -2));
    const ab = t.broadcastTo(a, [...batch, ...a.shape.slice(-2)]);
    const bb = t.broadcastTo(b, [...batch, ...b.shape.slice(-2)]);
    const [m, k] = ab.shape.slice(-2) as [number, number];
    const n = bb.shape[bb.rank - 1]!;
    const flat = t.matMul(t.reshape<tf.Rank.R3>(ab, [-1, m, k]), t.reshape<tf.Rank.R3>(bb, [-1, k, n]));
    y = t.reshape(flat, [...batch, m, n]);
  }
  if (aVector) y = t.squeeze(y, [y.rank - 2]);
  if (bVector) y = t.squeeze(y, [y.rank - 1]);
  return [deviceValue(y)];
};

const batchNorm: OpFn = (ctx, inputs) => {
  const t = ctx.tf;
  const x = need(ctx, inputs, 0);
  if (intAttribute(ctx.node, "training_mode", 0) === 1) throw unsupported(ctx, "it runs in training mode");
  if (ctx.opset < 7 && intAttribute(ctx.node, "spatial", 1) !== 1)
    throw unsupported(ctx, "it uses spatial=0");
  const params = [1, 2, 3, 4].map((i) => need(ctx, inputs, i));
  const epsilon = floatAttribute(ctx.node, "epsilon", 1e-5);
  // y = x·a + b with a = scale / √(var + ε), b = B − mean·a: two per-channel vectors.
  const affine = (): tf.Tensor => {
    const [scale, bias, mean, variance] = params.map((p) => floatsOf(ctx, p)) as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
    const a = t.mul(scale, t.rsqrt(t.add(variance, epsilon)));
    return t.stack([a, t.sub(bias, t.mul(mean, a))]);
  };
  const ab = params.every(isPersistent) ? ctx.memo("affine", affine) : affine();
  const [a, b] = t.unstack(ab) as [tf.Tensor, tf.Tensor];
  const shape = logicalShape(x);
  if (x.kind === "device" && x.layout === "nhwc") return [deviceValue(t.add(t.mul(x.tensor, a), b), "nhwc")];
  const channelShape = [shape[1]!, ...new Array<number>(Math.max(0, shape.length - 2)).fill(1)];
  const y = t.add(t.mul(floatsOf(ctx, x), t.reshape(a, channelShape)), t.reshape(b, channelShape));
  return [deviceValue(y)];
};

const layerNorm: OpFn = (ctx, inputs) => {
  const t = ctx.tf;
  const x = floatsOf(ctx, need(ctx, inputs, 0));
  const axis = normAxis(ctx, intAttribute(ctx.node, "axis", -1), x.rank);
  const epsilon = floatAttribute(ctx.node, "epsilon", 1e-5);
  const axes = Array.from({ length: x.rank - axis }, (_, i) => axis + i);
  const mean = t.mean(x, axes, true);
  const centred = t.sub(x, mean);
  const variance = t.mean(t.square(centred), axes, true);
  let y = t.mul(t.mul(centred, t.rsqrt(t.add(variance, epsilon))), ctx.nchw(need(ctx, inputs, 1)));
  if (inputs[2] !== undefined) y = t.add(y, ctx.nchw(inputs[2]));
  return [deviceValue(y)];
};

/** Softmax and LogSoftmax: before opset 13 over the flattened trailing axes, from 13 over one axis. */
function softmaxOp(log: boolean): OpFn {
  return (ctx, inputs) => {
    const t = ctx.tf;
    const x = floatsOf(ctx, need(ctx, inputs, 0));
    // tf.logSoftmax is a customGrad op, which TF.js's kernel leak check (on under IS_TEST, as
    // loadTf sets it) rejects inside tf.grad; x − logΣexp(x) is the same from plain kernels.
    const f = (v: tf.Tensor): tf.Tensor => (log ? t.sub(v, t.logSumExp(v, -1, true)) : t.softmax(v));
    if (ctx.opset < 13) {
      const axis = normAxis(ctx, intAttribute(ctx.node, "axis", 1), x.rank);
      const rows = size(x.shape.slice(0, axis));
      return [deviceValue(t.reshape(f(t.reshape(x, [rows, -1])), x.shape))];
    }
    const axis = normAxis(ctx, intAttribute(ctx.node, "axis", -1), x.rank);
    if (axis === x.rank - 1) return [deviceValue(f(x))];
    const perm = [...Array.from({ length: x.rank }, (_, i) => i).filter((i) => i !== axis), axis];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [deviceValue(t.transpose(f(t.transpose(x, perm)), inverse))];
  };
}

function reduceOp(kind: "mean" | "sum" | "max" | "min"): OpFn {
  return (ctx, inputs) => {
    const t = ctx.tf;
    const x = need(ctx, inputs, 0);
    const shape = logicalShape(x);
    const keep = intAttribute(ctx.node, "keepdims", 1) === 1;
    // Axes moved from attribute to input in opset 13 for ReduceSum and 18 for the others.
    let axes = intsFrom(ctx, inputs, "axes", 1, "axes");
    if (axes === undefined || axes.length === 0) {
      if (intAttribute(ctx.node, "noop_with_empty_axes", 0) === 1) return [x];
      axes = shape.map((_, i) => i);
    }
    const norm = [...new Set(axes.map((a) => normAxis(ctx, a, shape.length)))].sort((p, q) => p - q);
    const f = (v: tf.Tensor, ax: number[], k: boolean): tf.Tensor =>
      kind === "mean"
        ? t.mean(v, ax, k)
        : kind === "sum"
          ? t.sum(v, ax, k)
          : kind === "max"
            ? t.max(v, ax, k)
            : t.min(v, ax, k);
    // A spatial reduction of an NHWC tensor (ReduceMean over H, W is how some exporters write
    // global pooling) needs no transpose.
    if (x.kind === "device" && x.layout === "nhwc") {
      const toNhwc = [0, 3, 1, 2];
      const mapped = norm.map((a) => toNhwc[a]!).sort((p, q) => p - q);
      const cKept = !norm.includes(1);
      const orderSafe = keep || !cKept || (norm.includes(2) && norm.includes(3));
      if (orderSafe) return [deviceValue(f(x.tensor, mapped, keep), keep ? "nhwc" : "nchw")];
    }
    return [deviceValue(f(floatsOf(ctx, x), norm, keep))];
  };
}

// ---------------------------------------------------------------------------------------------
// Shape operators

const shapeOp: OpFn = (ctx, inputs) => {
  const shape = logicalShape(need(ctx, inputs, 0));
  const rank = shape.length;
  const clampAxis = (a: number): number => Math.max(0, Math.min(rank, a < 0 ? a + rank : a));
  const start = clampAxis(intAttribute(ctx.node, "start", 0));
  const end = clampAxis(intAttribute(ctx.node, "end", rank));
  const dims = shape.slice(start, Math.max(start, end));
  return [hostValue("int", [dims.length], Float64Array.from(dims))];
};

/** ONNX Reshape's target: 0 copies the input's dimension (unless allowzero), −1 is inferred. */
function resolveReshape(ctx: OpContext, input: readonly number[], target: readonly number[]): number[] {
  const allowZero = intAttribute(ctx.node, "allowzero", 0) === 1;
  const out = target.map((d, i) => (d === 0 && !allowZero ? input[i]! : d));
  const infer = out.indexOf(-1);
  const total = size(input);
  if (infer >= 0) {
    const known = size(out.filter((_, i) => i !== infer));
    out[infer] = known === 0 ? 0 : total / known;
  }
  if (out.some((d) => !Number.isInteger(d) || d < 0) || size(out) !== total) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${ctx.where}: cannot reshape [${input.join(", ")}] to [${target.join(", ")}].`,
    );
  }
  return out;
}

const reshape: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const target =
    ctx.opset < 5 ? (intsAttribute(ctx.node, "shape") ?? []) : hostInts(needHost(ctx, inputs, 1, "shape"));
  const shape = resolveReshape(ctx, logicalShape(x), target);
  if (x.kind === "host") return [hostReshape(x, shape)];
  return [deviceValue(ctx.tf.reshape(ctx.nchw(x), shape))];
};

const flatten: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const shape = logicalShape(x);
  const axis = intAttribute(ctx.node, "axis", 1);
  const a = axis < 0 ? axis + shape.length : axis;
  if (a < 0 || a > shape.length)
    throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: axis ${axis} is out of range.`);
  const out = [size(shape.slice(0, a)), size(shape.slice(a))];
  if (x.kind === "host") return [hostReshape(x, out)];
  return [deviceValue(ctx.tf.reshape(ctx.nchw(x), out))];
};

const transpose: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const rank = logicalShape(x).length;
  const perm = intsAttribute(ctx.node, "perm") ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (x.kind === "host") return [hostTranspose(x, perm)];
  // A transpose of an NHWC-stored tensor is one transpose of the stored tensor.
  const stored = x.layout === "nhwc" ? perm.map((p) => [0, 3, 1, 2][p]!) : perm;
  return [deviceValue(ctx.tf.transpose(x.tensor, stored))];
};

function axesOf(ctx: OpContext, inputs: readonly (Value | undefined)[]): number[] | undefined {
  return ctx.opset < 13 ? intsAttribute(ctx.node, "axes") : intsFrom(ctx, inputs, "axes", 1, "axes");
}

const unsqueeze: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const shape = logicalShape(x);
  const axes = axesOf(ctx, inputs);
  if (axes === undefined) throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: has no axes.`);
  const rank = shape.length + axes.length;
  const norm = new Set(axes.map((a) => normAxis(ctx, a, rank)));
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(norm.has(i) ? 1 : shape[k++]!);
  if (x.kind === "host") return [hostReshape(x, out)];
  return [deviceValue(ctx.tf.reshape(ctx.nchw(x), out))];
};

const squeeze: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const shape = logicalShape(x);
  const axes = axesOf(ctx, inputs);
  const drop = new Set(
    axes === undefined
      ? shape.flatMap((d, i) => (d === 1 ? [i] : []))
      : axes.map((a) => normAxis(ctx, a, shape.length)),
  );
  const out = shape.filter((_, i) => !drop.has(i));
  if (x.kind === "host") return [hostReshape(x, out)];
  return [deviceValue(ctx.tf.reshape(ctx.nchw(x), out))];
};

const concat: OpFn = (ctx, inputs) => {
  const values = inputs.filter((v): v is Value => v !== undefined && size(logicalShape(v)) > 0);
  if (values.length === 0) return [need(ctx, inputs, 0)];
  const rank = logicalShape(values[0]!).length;
  const axis = normAxis(ctx, intAttribute(ctx.node, "axis", 0), rank);
  if (values.every((v) => v.kind === "host")) return [hostConcat(values, axis)];
  if (values.every((v) => v.kind === "device" && v.layout === "nhwc")) {
    const tensors = values.map((v) => (v as DeviceValue).tensor);
    return [deviceValue(ctx.tf.concat(tensors, [0, 3, 1, 2][axis]), "nhwc")];
  }
  return [
    deviceValue(
      ctx.tf.concat(
        values.map((v) => floatsOf(ctx, v)),
        axis,
      ),
    ),
  ];
};

const gather: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const indices = needHost(ctx, inputs, 1, "indices");
  const shape = logicalShape(x);
  const axis = normAxis(ctx, intAttribute(ctx.node, "axis", 0), shape.length);
  const dim = shape[axis]!;
  const idx = hostInts(indices).map((i) => (i < 0 ? i + dim : i));
  if (idx.some((i) => i < 0 || i >= dim)) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${ctx.where}: an index is out of range for a dimension of ${dim}.`,
    );
  }
  if (x.kind === "host") return [hostTake(x, axis, idx, indices.shape)];
  // tf.gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks; slices and a
  // concat have gradients everywhere.
  const t = ctx.tf;
  const data = floatsOf(ctx, x);
  const pick = (i: number, count: number): tf.Tensor => {
    const begin = shape.map((_, d) => (d === axis ? i : 0));
    const sizes = shape.map((s, d) => (d === axis ? count : s));
    return t.slice(data, begin, sizes);
  };
  const contiguous = idx.every((v, k) => k === 0 || v === idx[k - 1]! + 1);
  const taken =
    contiguous && idx.length > 0
      ? pick(idx[0]!, idx.length)
      : t.concat(
          idx.map((i) => pick(i, 1)),
          axis,
        );
  const out = [...shape.slice(0, axis), ...indices.shape, ...shape.slice(axis + 1)];
  return [deviceValue(t.reshape(taken, out))];
};

const slice: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const shape = logicalShape(x);
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = intsAttribute(ctx.node, "starts") ?? [];
    ends = intsAttribute(ctx.node, "ends") ?? [];
    axes = intsAttribute(ctx.node, "axes");
  } else {
    starts = hostInts(needHost(ctx, inputs, 1, "starts"));
    ends = hostInts(needHost(ctx, inputs, 2, "ends"));
    axes = inputs[3] === undefined ? undefined : hostInts(needHost(ctx, inputs, 3, "axes"));
    steps = inputs[4] === undefined ? undefined : hostInts(needHost(ctx, inputs, 4, "steps"));
  }
  const begin = shape.map(() => 0);
  const count = [...shape];
  const stride = shape.map(() => 1);
  starts.forEach((s, k) => {
    const a = normAxis(ctx, axes?.[k] ?? k, shape.length);
    const dim = shape[a]!;
    const step = steps?.[k] ?? 1;
    if (step === 0) throw new AntidoteError("MODEL_FORMAT", `${ctx.where}: a step is 0.`);
    const clamp = (v: number, lo: number, hi: number): number =>
      Math.max(lo, Math.min(hi, v < 0 ? v + dim : v));
    const e = ends[k] ?? dim;
    if (step > 0) {
      const from = clamp(s, 0, dim);
      const to = clamp(e, 0, dim);
      begin[a] = from;
      count[a] = Math.max(0, Math.ceil((to - from) / step));
    } else {
      const from = clamp(s, -1, dim - 1);
      const to = clamp(e, -1, dim - 1);
      begin[a] = from;
      count[a] = Math.max(0, Math.ceil((to - from) / step));
    }
    stride[a] = step;
  });
  if (x.kind === "host") {
    let v = x;
    for (let a = 0; a < shape.length; a++) {
      const idx = Array.from({ length: count[a]! }, (_, i) => begin[a]! + i * stride[a]!);
      v = hostTake(v, a, idx, [idx.length]);
    }
    return [v];
  }
  if (stride.some((s) => s !== 1))
    throw unsupported(ctx, "it slices a computed tensor with a step other than 1");
  return [deviceValue(ctx.tf.slice(ctx.nchw(x), begin, count))];
};

const cast: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const to = intAttribute(ctx.node, "to", DT.FLOAT);
  const dtype = dtypeOfElemType(to);
  if (dtype === undefined) throw unsupported(ctx, `it casts to ${DT[to] ?? to}`);
  if (x.kind === "host") {
    const f =
      dtype === "float"
        ? (v: number): number => v
        : dtype === "int"
          ? Math.trunc
          : (v: number): number => (v !== 0 ? 1 : 0);
    return [hostMap(x, f, dtype)];
  }
  if (dtype === "float" && x.tensor.dtype === "float32") return [x];
  return [deviceValue(ctx.tf.cast(ctx.nchw(x), tfDtype(dtype)))];
};

const constant: OpFn = (ctx) => {
  const a = (ctx.node.attribute ?? [])[0];
  const name = a?.name ?? "";
  const where = `${ctx.where} value`;
  if (a !== undefined && name === "value" && a.t !== null && a.t !== undefined)
    return [hostFromTensorProto(a.t, where)];
  if (a !== undefined && name === "value_float")
    return [hostValue("float", [], Float32Array.of(a.f ?? 0), true)];
  if (a !== undefined && name === "value_floats")
    return [hostValue("float", [a.floats?.length ?? 0], Float32Array.from(a.floats ?? []), true)];
  if (a !== undefined && name === "value_int")
    return [hostValue("int", [], Float64Array.of(intAttribute(ctx.node, name, 0)), true)];
  if (a !== undefined && name === "value_ints") {
    const ints = intsAttribute(ctx.node, name) ?? [];
    return [hostValue("int", [ints.length], Float64Array.from(ints), true)];
  }
  throw unsupported(ctx, `it holds a ${name === "" ? "value of no known kind" : `"${name}" value`}`);
};

const constantOfShape: OpFn = (ctx, inputs) => {
  const shape = hostInts(needHost(ctx, inputs, 0, "shape"));
  const a = attributeOf(ctx.node, "value");
  const fill =
    a?.t !== null && a?.t !== undefined ? hostFromTensorProto(a.t, `${ctx.where} value`) : undefined;
  const dtype = fill?.dtype ?? "float";
  const n = size(shape);
  const data = dtype === "float" ? new Float32Array(n) : new Float64Array(n);
  data.fill(fill?.data[0] ?? 0);
  return [hostValue(dtype, shape, data)];
};

const range: OpFn = (ctx, inputs) => {
  const [start, limit, delta] = [0, 1, 2].map((i) => needHost(ctx, inputs, i, "bounds").data[0] ?? 0) as [
    number,
    number,
    number,
  ];
  const n = Math.max(0, Math.ceil((limit - start) / delta));
  const dtype = needHost(ctx, inputs, 0, "start").dtype;
  const values = Array.from({ length: n }, (_, i) => start + i * delta);
  return [hostValue(dtype, [n], dtype === "float" ? Float32Array.from(values) : Float64Array.from(values))];
};

const expand: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const target = hostInts(needHost(ctx, inputs, 1, "shape"));
  const shape = broadcastShape(ctx, logicalShape(x), target);
  if (x.kind === "host") {
    const idx = broadcastIndex(x.shape, shape);
    const data = x.data instanceof Float32Array ? new Float32Array(idx.length) : new Float64Array(idx.length);
    idx.forEach((at, i) => (data[i] = x.data[at]!));
    return [hostValue(x.dtype, shape, data, x.persistent)];
  }
  return [deviceValue(ctx.tf.broadcastTo(ctx.nchw(x), shape))];
};

const pad: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const mode = stringAttribute(ctx.node, "mode") ?? "constant";
  if (mode !== "constant") throw unsupported(ctx, `it pads in mode "${mode}"`);
  const shape = logicalShape(x);
  const rank = shape.length;
  let pads: number[];
  let value = 0;
  let axes = shape.map((_, i) => i);
  if (ctx.opset < 11) {
    pads = intsAttribute(ctx.node, "pads") ?? [];
    value = floatAttribute(ctx.node, "value", 0);
  } else {
    pads = hostInts(needHost(ctx, inputs, 1, "pads"));
    if (inputs[2] !== undefined) value = needHost(ctx, inputs, 2, "constant_value").data[0] ?? 0;
    if (inputs[3] !== undefined)
      axes = hostInts(needHost(ctx, inputs, 3, "axes")).map((a) => normAxis(ctx, a, rank));
  }
  if (pads.some((p) => p < 0)) throw unsupported(ctx, "it crops with negative pads");
  const perAxis: [number, number][] = shape.map(() => [0, 0]);
  axes.forEach((a, k) => (perAxis[a] = [pads[k] ?? 0, pads[k + axes.length] ?? 0]));
  if (x.kind === "device" && x.layout === "nhwc") {
    const stored = [0, 2, 3, 1].map((a) => perAxis[a]!);
    return [deviceValue(ctx.tf.pad(x.tensor, stored, value), "nhwc")];
  }
  return [deviceValue(ctx.tf.pad(floatsOf(ctx, x), perAxis, value))];
};

const split: OpFn = (ctx, inputs) => {
  const x = need(ctx, inputs, 0);
  const shape = logicalShape(x);
  const axis = normAxis(ctx, intAttribute(ctx.node, "axis", 0), shape.length);
  const outputs = (ctx.node.output ?? []).length;
  const dim = shape[axis]!;
  let parts = ctx.opset < 13 ? intsAttribute(ctx.node, "split") : intsFrom(ctx, inputs, "split", 1, "split");
  if (parts === undefined) {
    const count = intAttribute(ctx.node, "num_outputs", outputs);
    const each = Math.ceil(dim / count);
    parts = Array.from({ length: count }, (_, i) => Math.max(0, Math.min(each, dim - i * each)));
  }
  let at = 0;
  return parts.map((p) => {
    const begin = shape.map((_, d) => (d === axis ? at : 0));
    const sizes = shape.map((s, d) => (d === axis ? p : s));
    at += p;
    return deviceValue(ctx.tf.slice(ctx.nchw(x), begin, sizes));
  });
};

const identity: OpFn = (ctx, inputs) => [need(ctx, inputs, 0)];

// ---------------------------------------------------------------------------------------------

/** Every operator of the default ONNX domain the translation handles. */
export const OPS: Readonly<Record<string, OpFn>> = {
  ...Object.fromEntries(Object.entries(UNARY).map(([name, f]) => [name, unaryOp(f)])),
  Neg: (ctx, inputs) => {
    const x = need(ctx, inputs, 0);
    return x.kind === "host" ? [hostMap(x, (v) => -v)] : unaryOp((c, t) => c.tf.neg(t))(ctx, inputs);
  },
  Add: add,
  Sub: binaryOp(
    (t, a, b) => t.sub(a, b),
    (a, b) => a - b,
  ),
  Mul: binaryOp(
    (t, a, b) => t.mul(a, b),
    (a, b) => a * b,
  ),
  Div: binaryOp(
    (t, a, b) => t.div(a, b),
    (a, b) => a / b,
  ),
  Pow: binaryOp(
    (t, a, b) => t.pow(a, b),
    (a, b) => a ** b,
  ),
  PRelu: binaryOp((t, x, slope) => t.where(t.greater(x, 0), x, t.mul(x, slope))),
  Sum: variadicOp(add, false),
  Mean: variadicOp(add, true),
  Max: variadicOp(maximum, false),
  Min: variadicOp(minimum, false),
  Clip: clip,
  Conv: conv,
  MaxPool: poolOp("max"),
  AveragePool: poolOp("avg"),
  GlobalAveragePool: globalPool("avg"),
  GlobalMaxPool: globalPool("max"),
  Gemm: gemm,
  MatMul: matMul,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  Softmax: softmaxOp(false),
  LogSoftmax: softmaxOp(true),
  ReduceMean: reduceOp("mean"),
  ReduceSum: reduceOp("sum"),
  ReduceMax: reduceOp("max"),
  ReduceMin: reduceOp("min"),
  Shape: shapeOp,
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Concat: concat,
  Gather: gather,
  Slice: slice,
  Split: split,
  Cast: cast,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Range: range,
  Expand: expand,
  Pad: pad,
  Identity: identity,
  Dropout: identity,
};

export const SUPPORTED_OPS: readonly string[] = Object.keys(OPS).sort();
