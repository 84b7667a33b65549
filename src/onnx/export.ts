// NetSpec → ONNX: the classifiers Antidote trains are written as ordinary ONNX files, so scans
// and audits run them through the same reader and runtime as a user's model. The NetSpec
// already uses ONNX layouts (see net-spec.ts), so each layer is one node and its weights are
// copied, not rearranged. The spec is checked layer by layer first, because ONNX Runtime's own
// complaint about a wrong weight length names a node, not the layer the caller built.
import { AntidoteError } from "../errors.js";
import { VERSION } from "../version.js";
import { MAX_ORT_OPSET, encodeOnnxModel, onnx } from "./model-file.js";
import type { LayerSpec, NetSpec } from "./net-spec.js";

export interface ExportOptions {
  /** producer_name in the model; default "antidote". */
  producer?: string;
  /** Default-domain opset, 11..MAX_ORT_OPSET; default 13. */
  opset?: number;
}

export const EXPORT_INPUT = "input";
export const EXPORT_OUTPUT = "logits";
/** metadata_props key holding the class names as a JSON array, in output order. */
export const CLASSES_METADATA_KEY = "antidote.classes";
const DEFAULT_OPSET = 13;
const MIN_OPSET = 11;

/** Encode a NetSpec as an ONNX model: input "input" [N, ...inputShape], output "logits" [N, classes]. */
export function exportOnnx(net: NetSpec, options: ExportOptions = {}): Uint8Array {
  const opset = options.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_ORT_OPSET) {
    throw new AntidoteError(
      "USAGE",
      `exportOnnx: opset ${opset} is not supported; choose ${MIN_OPSET}..${MAX_ORT_OPSET}.`,
    );
  }
  checkNetSpec(net);

  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  let current = EXPORT_INPUT;
  net.layers.forEach((layer, i) => {
    const output = i === net.layers.length - 1 ? EXPORT_OUTPUT : `/layer${i}/${layer.kind}`;
    const name = `layer${i}_${layer.kind}`;
    switch (layer.kind) {
      case "dense": {
        const w = `layer${i}.weight`;
        const b = `layer${i}.bias`;
        initializers.push(floatTensor(w, [layer.outputs, layer.inputs], layer.weight));
        initializers.push(floatTensor(b, [layer.outputs], layer.bias));
        nodes.push(node("Gemm", name, [current, w, b], output, [intAttr("transB", 1)]));
        break;
      }
      case "conv2d": {
        const w = `layer${i}.weight`;
        const b = `layer${i}.bias`;
        const k = layer.kernel;
        initializers.push(floatTensor(w, [layer.outChannels, layer.inChannels, k, k], layer.weight));
        initializers.push(floatTensor(b, [layer.outChannels], layer.bias));
        const p = layer.padding;
        nodes.push(
          node("Conv", name, [current, w, b], output, [
            intsAttr("kernel_shape", [k, k]),
            intsAttr("strides", [layer.stride, layer.stride]),
            intsAttr("pads", [p, p, p, p]),
          ]),
        );
        break;
      }
      case "relu":
        nodes.push(node("Relu", name, [current], output, []));
        break;
      case "maxpool":
        nodes.push(
          node("MaxPool", name, [current], output, [
            intsAttr("kernel_shape", [layer.size, layer.size]),
            intsAttr("strides", [layer.size, layer.size]),
          ]),
        );
        break;
      case "flatten":
        nodes.push(node("Flatten", name, [current], output, [intAttr("axis", 1)]));
        break;
    }
    current = output;
  });

  const model: onnx.IModelProto = {
    irVersion: irVersionFor(opset),
    opsetImport: [{ domain: "", version: opset }],
    producerName: options.producer ?? "antidote",
    producerVersion: VERSION,
    graph: {
      name: "antidote_classifier",
      node: nodes,
      initializer: initializers,
      input: [valueInfo(EXPORT_INPUT, ["N", ...net.inputShape])],
      output: [valueInfo(EXPORT_OUTPUT, ["N", net.classes.length])],
    },
    metadataProps: [{ key: CLASSES_METADATA_KEY, value: JSON.stringify(net.classes) }],
  };
  return encodeOnnxModel(model);
}

/**
 * Check that every layer's weights have the length its shape needs and that the shapes chain
 * from the input to [classes]. Returns the activation shape after each layer (without batch).
 */
export function checkNetSpec(net: NetSpec): number[][] {
  const bad = (msg: string): AntidoteError => new AntidoteError("USAGE", `NetSpec: ${msg}`);
  if (net.inputShape.length !== 1 && net.inputShape.length !== 3) {
    throw bad(`inputShape [${net.inputShape.join(", ")}] must be [D] or [C, H, W].`);
  }
  if (!net.inputShape.every(isPositiveInt)) {
    throw bad(`inputShape [${net.inputShape.join(", ")}] must hold positive integers.`);
  }
  if (net.classes.length < 2) throw bad(`needs at least 2 classes, has ${net.classes.length}.`);
  if (net.layers.length === 0) throw bad("has no layers.");

  let shape = [...net.inputShape];
  const shapes: number[][] = [];
  net.layers.forEach((layer, i) => {
    shape = nextShape(layer, shape, `layer ${i} (${layer.kind})`, bad);
    shapes.push(shape);
  });
  if (shape.length !== 1 || shape[0] !== net.classes.length) {
    throw bad(
      `the last layer outputs [${shape.join(", ")}], but there are ${net.classes.length} classes ` +
        `(the last layer must be dense with one output per class).`,
    );
  }
  return shapes;
}

function nextShape(
  layer: LayerSpec,
  shape: number[],
  at: string,
  bad: (msg: string) => AntidoteError,
): number[] {
  const shown = `[${shape.join(", ")}]`;
  switch (layer.kind) {
    case "relu":
      return shape;
    case "flatten":
      return [shape.reduce((a, b) => a * b, 1)];
    case "dense": {
      if (!isPositiveInt(layer.inputs) || !isPositiveInt(layer.outputs)) {
        throw bad(`${at}: inputs and outputs must be positive integers.`);
      }
      if (shape.length !== 1)
        throw bad(`${at} needs a flat input, gets ${shown}; add a flatten layer before it.`);
      if (shape[0] !== layer.inputs) throw bad(`${at} declares ${layer.inputs} inputs, gets ${shown}.`);
      checkWeights(
        layer.weight,
        layer.outputs * layer.inputs,
        `${at} weight [${layer.outputs}][${layer.inputs}]`,
        bad,
      );
      checkWeights(layer.bias, layer.outputs, `${at} bias [${layer.outputs}]`, bad);
      return [layer.outputs];
    }
    case "conv2d": {
      const { inChannels: ci, outChannels: co, kernel: k, stride: s, padding: p } = layer;
      if (![ci, co, k, s].every(isPositiveInt) || !Number.isInteger(p) || p < 0) {
        throw bad(
          `${at}: channels, kernel and stride must be positive integers, padding a non-negative one.`,
        );
      }
      const [c, h, w] = imageShape(shape, at, bad);
      if (c !== ci) throw bad(`${at} declares ${ci} input channels, gets ${shown}.`);
      const oh = Math.floor((h + 2 * p - k) / s) + 1;
      const ow = Math.floor((w + 2 * p - k) / s) + 1;
      if (oh < 1 || ow < 1) throw bad(`${at}: kernel ${k} with padding ${p} does not fit input ${shown}.`);
      checkWeights(layer.weight, co * ci * k * k, `${at} weight [${co}][${ci}][${k}][${k}]`, bad);
      checkWeights(layer.bias, co, `${at} bias [${co}]`, bad);
      return [co, oh, ow];
    }
    case "maxpool": {
      if (!isPositiveInt(layer.size)) throw bad(`${at}: size must be a positive integer.`);
      const [c, h, w] = imageShape(shape, at, bad);
      const oh = Math.floor(h / layer.size);
      const ow = Math.floor(w / layer.size);
      if (oh < 1 || ow < 1) throw bad(`${at}: window ${layer.size} is larger than input ${shown}.`);
      return [c, oh, ow];
    }
  }
}

function imageShape(
  shape: number[],
  at: string,
  bad: (msg: string) => AntidoteError,
): [number, number, number] {
  const [c, h, w] = shape;
  if (shape.length !== 3 || c === undefined || h === undefined || w === undefined) {
    throw bad(`${at} needs a [C, H, W] input, gets [${shape.join(", ")}].`);
  }
  return [c, h, w];
}

function checkWeights(
  values: Float32Array,
  expected: number,
  what: string,
  bad: (msg: string) => AntidoteError,
): void {
  if (values.length !== expected) throw bad(`${what} needs ${expected} values, has ${values.length}.`);
  const i = values.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw bad(`${what} holds a non-finite value (${values[i]}) at index ${i}.`);
}

function isPositiveInt(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

// The IR version of the ONNX release that introduced each opset, so the file claims no newer
// format than it uses.
function irVersionFor(opset: number): number {
  if (opset <= 13) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

function node(
  opType: string,
  name: string,
  input: string[],
  output: string,
  attribute: onnx.IAttributeProto[],
): onnx.INodeProto {
  return { opType, name, input, output: [output], attribute };
}

function intAttr(name: string, i: number): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}

function intsAttr(name: string, ints: number[]): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints };
}

/** A float32 initializer with its values as little-endian raw_data. */
function floatTensor(name: string, dims: number[], values: Float32Array): onnx.ITensorProto {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] ?? 0, true);
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: raw };
}

function valueInfo(name: string, dims: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
