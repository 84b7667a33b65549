// Reading an ONNX model file: the bytes, their digest (the model's identity in the ledger) and
// the decoded ModelProto, checked once here for what every later step relies on — a graph with
// inputs and outputs, an opset onnxruntime-node can run, weights stored inside the file — so a
// user's mistake fails with one message naming the file instead of deep inside a session.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import onnxProto from "onnx-proto";
import { AntidoteError } from "../errors.js";

// The generated protobufjs schema (ONNX v1.10.2 messages). A CommonJS package, so its namespace
// is reached through the default import; this alias carries both the classes and their types.
import onnx = onnxProto.onnx;
export { onnx };

/**
 * Highest opset of the default ONNX domain that onnxruntime-node 1.30 loads (measured: 26 loads,
 * 27 is refused as "under development").
 */
export const MAX_ORT_OPSET = 26;

export interface OnnxModelFile {
  /** Path the model was read from (or the label it was decoded under). */
  readonly path: string;
  readonly bytes: Uint8Array;
  /** Hex SHA-256 of `bytes`. */
  readonly digest: string;
  readonly proto: onnx.ModelProto;
  /** Opset version imported for the default ("" / "ai.onnx") domain. */
  readonly opset: number;
}

/** Read and check an ONNX model file; see `decodeOnnxModel` for what is checked. */
export function readOnnxModel(path: string): OnnxModelFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such model file.`);
    if (code === "EISDIR") {
      throw new AntidoteError("MODEL_FORMAT", `${path}: is a directory, not an ONNX model file.`);
    }
    throw new AntidoteError("FILE_NOT_FOUND", `${path}: cannot read (${(e as Error).message}).`);
  }
  // readFileSync returns a Buffer; keep a plain Uint8Array view so callers see one type.
  return decodeOnnxModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/**
 * Decode model bytes. Throws MODEL_FORMAT (message prefixed with `label`) when the bytes are not
 * a protobuf ModelProto, the model has no graph or the graph no inputs or outputs, the default
 * domain's opset is missing or newer than onnxruntime-node runs, or an initializer keeps its
 * data in an external file.
 */
export function decodeOnnxModel(bytes: Uint8Array, label: string): OnnxModelFile {
  const notOnnx = (why: string): AntidoteError =>
    new AntidoteError("MODEL_FORMAT", `${label}: not an ONNX model: ${why}.`);
  if (bytes.length === 0) throw notOnnx("the file is empty");
  let proto: onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw notOnnx(`the bytes are not a protobuf ModelProto (${(e as Error).message})`);
  }
  // Arbitrary bytes sometimes parse as a protobuf with unknown fields; a real model states its
  // IR version and has a graph.
  if (toNumber(proto.irVersion) <= 0) throw notOnnx("no ir_version");
  const graph = proto.graph;
  if (graph === null || graph === undefined) throw notOnnx("no graph");
  if ((graph.node ?? []).length === 0) throw notOnnx("the graph has no nodes");
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ""));
  if ((graph.input ?? []).filter((v) => !initializers.has(v.name ?? "")).length === 0) {
    throw notOnnx("the graph has no inputs");
  }
  if ((graph.output ?? []).length === 0) throw notOnnx("the graph has no outputs");

  const opset = defaultOpset(proto);
  if (opset === undefined) {
    throw new AntidoteError("MODEL_FORMAT", `${label}: declares no opset for the default ONNX domain.`);
  }
  if (opset > MAX_ORT_OPSET) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${label}: uses ONNX opset ${opset}; onnxruntime-node 1.30 runs opsets up to ${MAX_ORT_OPSET}. ` +
        `Re-export the model with opset ${MAX_ORT_OPSET} or lower.`,
    );
  }
  const external = graphTensors(graph).find(isExternal);
  if (external !== undefined) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${label}: initializer '${external.name ?? ""}' keeps its data in an external file; Antidote reads ` +
        `self-contained models only. Save the model with all tensors inside it ` +
        `(onnx.save_model(model, path, save_as_external_data=False)).`,
    );
  }
  const digest = createHash("sha256").update(bytes).digest("hex");
  return { path: label, bytes, digest, proto, opset };
}

/** Serialize a (possibly edited) ModelProto. */
export function encodeOnnxModel(proto: onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(proto).finish();
}

/** The default domain's opset version, or undefined when the model imports none. */
export function defaultOpset(proto: onnx.IModelProto): number | undefined {
  const entry = (proto.opsetImport ?? []).find(
    (o) => o.domain === undefined || o.domain === null || o.domain === "" || o.domain === "ai.onnx",
  );
  return entry === undefined ? undefined : toNumber(entry.version);
}

/**
 * protobufjs decodes int64 fields as Long objects (typed `number | Long`); every count we read
 * fits in a double. Absent fields read as 0.
 */
export function toNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "object" && v !== null && "toNumber" in v && typeof v.toNumber === "function") {
    return Number((v as { toNumber(): unknown }).toNumber());
  }
  return 0;
}

/** A tensor's dims as plain numbers. */
export function dimsOf(t: onnx.ITensorProto): number[] {
  return (t.dims ?? []).map(toNumber);
}

/**
 * The shape a value_info declares: a number per fixed dimension, the symbol's name for a
 * symbolic one, null for an unknown one; undefined when the value is not a tensor or has no shape.
 */
export function valueInfoShape(v: onnx.IValueInfoProto): (number | string | null)[] | undefined {
  const shape = v.type?.tensorType?.shape;
  if (shape === null || shape === undefined) return undefined;
  return (shape.dim ?? []).map((d) => {
    if (d.dimValue !== null && d.dimValue !== undefined && toNumber(d.dimValue) > 0)
      return toNumber(d.dimValue);
    if (d.dimParam !== null && d.dimParam !== undefined && d.dimParam !== "") return d.dimParam;
    return null;
  });
}

/** The attribute called `name` on a node, if it has one. */
export function attributeOf(node: onnx.INodeProto, name: string): onnx.IAttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

export function intAttribute(node: onnx.INodeProto, name: string, fallback: number): number {
  const a = attributeOf(node, name);
  return a?.i === undefined || a.i === null ? fallback : toNumber(a.i);
}

export function intsAttribute(node: onnx.INodeProto, name: string): number[] | undefined {
  const a = attributeOf(node, name);
  return a === undefined ? undefined : (a.ints ?? []).map(toNumber);
}

export function floatAttribute(node: onnx.INodeProto, name: string, fallback: number): number {
  const a = attributeOf(node, name);
  return a?.f === undefined || a.f === null ? fallback : a.f;
}

export function stringAttribute(node: onnx.INodeProto, name: string): string | undefined {
  const a = attributeOf(node, name);
  return a?.s === undefined || a.s === null ? undefined : Buffer.from(a.s).toString("utf8");
}

const T = onnx.TensorProto.DataType;

/**
 * A numeric tensor's values as float32, from raw_data (little-endian) or the typed repeated
 * field. `where` ("model.onnx initializer 'fc.weight'") prefixes the MODEL_FORMAT message when
 * the tensor is external, of a type we cannot read, or holds fewer values than its dims need.
 */
export function initializerToFloat32(t: onnx.ITensorProto, where: string): Float32Array {
  if (isExternal(t)) {
    throw new AntidoteError("MODEL_FORMAT", `${where}: data is stored in an external file.`);
  }
  const dims = dimsOf(t);
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = t.rawData !== null && t.rawData !== undefined && t.rawData.length > 0 ? t.rawData : undefined;
  const type = (t.dataType ?? T.UNDEFINED) as onnx.TensorProto.DataType;
  let out: Float32Array;
  if (raw !== undefined) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const width = RAW_WIDTH[type];
    if (width === undefined) throw unsupportedType(t, where);
    const n = Math.floor(raw.byteLength / width);
    out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = readRaw(view, type, i * width);
  } else {
    out = Float32Array.from(typedValues(t, where));
  }
  if (out.length !== count) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${where}: holds ${out.length} values, its dims [${dims.join(", ")}] need ${count}.`,
    );
  }
  return out;
}

const RAW_WIDTH: Partial<Record<number, number>> = {
  [T.FLOAT]: 4,
  [T.DOUBLE]: 8,
  [T.FLOAT16]: 2,
  [T.INT8]: 1,
  [T.UINT8]: 1,
  [T.INT16]: 2,
  [T.UINT16]: 2,
  [T.INT32]: 4,
  [T.INT64]: 8,
  [T.BOOL]: 1,
};

function readRaw(view: DataView, type: onnx.TensorProto.DataType, at: number): number {
  switch (type) {
    case T.FLOAT:
      return view.getFloat32(at, true);
    case T.DOUBLE:
      return view.getFloat64(at, true);
    case T.FLOAT16:
      return halfToFloat(view.getUint16(at, true));
    case T.INT8:
      return view.getInt8(at);
    case T.UINT8:
    case T.BOOL:
      return view.getUint8(at);
    case T.INT16:
      return view.getInt16(at, true);
    case T.UINT16:
      return view.getUint16(at, true);
    case T.INT32:
      return view.getInt32(at, true);
    default:
      return Number(view.getBigInt64(at, true));
  }
}

function typedValues(t: onnx.ITensorProto, where: string): number[] {
  switch (t.dataType as onnx.TensorProto.DataType | null | undefined) {
    case T.FLOAT:
      return t.floatData ?? [];
    case T.DOUBLE:
      return t.doubleData ?? [];
    case T.INT64:
      return (t.int64Data ?? []).map(toNumber);
    // ONNX stores these narrower types (and float16 bit patterns) in int32_data.
    case T.INT32:
    case T.INT16:
    case T.INT8:
    case T.UINT16:
    case T.UINT8:
    case T.BOOL:
      return t.int32Data ?? [];
    case T.FLOAT16:
      return (t.int32Data ?? []).map(halfToFloat);
    default:
      throw unsupportedType(t, where);
  }
}

function unsupportedType(t: onnx.ITensorProto, where: string): AntidoteError {
  const name = T[t.dataType ?? 0] ?? String(t.dataType);
  return new AntidoteError("MODEL_FORMAT", `${where}: has element type ${name}, which is not numeric.`);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function isExternal(t: onnx.ITensorProto): boolean {
  return t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData ?? []).length > 0;
}

/** Initializers and tensor-valued attributes of a graph and its subgraphs. */
function graphTensors(graph: onnx.IGraphProto): onnx.ITensorProto[] {
  const out: onnx.ITensorProto[] = [...(graph.initializer ?? [])];
  for (const node of graph.node ?? []) {
    for (const a of node.attribute ?? []) {
      if (a.t !== null && a.t !== undefined) out.push(a.t);
      out.push(...(a.tensors ?? []));
      if (a.g !== null && a.g !== undefined) out.push(...graphTensors(a.g));
      for (const g of a.graphs ?? []) out.push(...graphTensors(g));
    }
  }
  return out;
}
