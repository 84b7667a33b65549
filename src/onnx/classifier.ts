// A user's ONNX classifier run in ONNX Runtime, as the scan and the audits need it: class
// probabilities and logits for a batch of inputs, and the penultimate layer's activations (the
// representation the feature-space detectors read). Those activations are usually not a graph
// output, so the graph is edited once — the input of the final Gemm/MatMul becomes an extra
// output — and the edited copy is what the session runs; the file on disk is never touched.
import * as ort from "onnxruntime-node";
import { AntidoteError } from "../errors.js";
import { CLASSES_METADATA_KEY } from "./export.js";
import {
  encodeOnnxModel,
  intAttribute,
  onnx,
  readOnnxModel,
  valueInfoShape,
  type OnnxModelFile,
} from "./model-file.js";

export interface OnnxClassifierOptions {
  /** Input shape without batch ([C, H, W] or [D]); needed when the model leaves a dimension symbolic. */
  inputShape?: readonly number[];
  /** Graph output holding the class scores; needed to pick one when there are several. */
  output?: string;
  /** The dataset's class names, in label order: the model's output width must match. */
  classes?: readonly string[];
  /** ONNX Runtime intra-op threads; default 2. */
  threads?: number;
  /** Rows per session.run; default 256 (a model with a fixed batch size runs at that size). */
  batchSize?: number;
}

export interface OnnxRunResult {
  /** [n × numClasses] class distributions. */
  probs: Float32Array;
  /** [n × numClasses] scores with softmax(logits) = probs (log-probabilities when the model ends in Softmax). */
  logits: Float32Array;
  /** [n × penultimate.dims], or null when the model has no penultimate layer we can find. */
  features: Float32Array | null;
}

export interface OnnxClassifier {
  readonly file: OnnxModelFile;
  readonly digest: string;
  readonly inputName: string;
  /** Without the batch dimension. */
  readonly inputShape: number[];
  readonly outputName: string;
  readonly numClasses: number;
  /** The output is already a distribution (the graph ends in Softmax). */
  readonly outputIsProbabilities: boolean;
  /** The tensor read as penultimate features (the final Gemm/MatMul's activation input) and its width. */
  readonly penultimate: { name: string; dims: number } | null;
  /** Class names the model carries in its metadata ("antidote.classes"), if any, in output order. */
  readonly modelClasses: string[] | null;
  /**
   * When the model's class names are the caller's in another order: for each of the caller's
   * classes, the model output column holding it. run() returns columns in the caller's order.
   */
  readonly classColumns: number[] | null;
  /** Things the caller should tell the user (which output was chosen, features unavailable, …). */
  readonly warnings: string[];
  /** Run `n` inputs laid out as [n, ...inputShape] float32 (NCHW for images). */
  run(x: Float32Array, n: number): Promise<OnnxRunResult>;
  close(): Promise<void>;
}

const DEFAULT_BATCH = 256;

/** Open an ONNX classifier; MODEL_FORMAT / USAGE errors name the file and the tensor at fault. */
export async function openOnnxClassifier(
  path: string,
  options: OnnxClassifierOptions = {},
): Promise<OnnxClassifier> {
  const file = readOnnxModel(path);
  const graph = file.proto.graph as onnx.IGraphProto;
  const warnings: string[] = [];
  const fail = (msg: string) => new AntidoteError("MODEL_FORMAT", `${path}: ${msg}`);

  const input = pickInput(graph, fail);
  const inputName = input.name ?? "";
  const { shape: inputShape, fixedBatch } = resolveInputShape(input, options.inputShape, path);
  const outputName = pickOutput(graph, options, path, warnings);

  const producers = producerMap(graph);
  const constants = constantNames(graph, producers);
  const outputIsProbabilities = endsInSoftmax(outputName, producers);
  const found = findPenultimate(outputName, producers, constants);
  let penultimateName: string | null = null;
  if (typeof found === "string") {
    if (found === inputName) {
      warnings.push(
        `features unavailable: the final ${finalOpName(outputName, producers)} reads the model input directly ` +
          "(a linear model has no learned representation).",
      );
    } else penultimateName = found;
  } else warnings.push(`features unavailable: ${found.why}.`);

  // The edited copy: the penultimate activation becomes one more graph output.
  let bytes = file.bytes;
  if (penultimateName !== null && !(graph.output ?? []).some((o) => o.name === penultimateName)) {
    const edited = onnx.ModelProto.decode(file.bytes);
    const g = edited.graph as onnx.GraphProto;
    const declared = (g.valueInfo ?? []).find((v) => v.name === penultimateName);
    g.output.push(
      declared ?? {
        name: penultimateName,
        type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } },
      },
    );
    bytes = encodeOnnxModel(edited);
  }

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.threads ?? 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
    });
  } catch (e) {
    throw fail(`ONNX Runtime cannot load the model: ${firstLine(e)}`);
  }

  const fetches = penultimateName === null ? [outputName] : [outputName, penultimateName];
  const batch = fixedBatch ?? Math.max(1, Math.floor(options.batchSize ?? DEFAULT_BATCH));
  const rowSize = inputShape.reduce((a, b) => a * b, 1);

  // One run on zeros learns the output widths the graph may leave symbolic, and proves the
  // model runs at all before the caller streams a dataset into it.
  const probeRows = fixedBatch ?? 1;
  let probe: ort.InferenceSession.ReturnType;
  try {
    const zeros = new Float32Array(probeRows * rowSize);
    probe = await session.run(
      { [inputName]: new ort.Tensor("float32", zeros, [probeRows, ...inputShape]) },
      fetches,
    );
  } catch (e) {
    await session.release();
    throw fail(
      `ONNX Runtime cannot run the model on input '${inputName}' [N, ${inputShape.join(", ")}]: ${firstLine(e)}`,
    );
  }
  const outDims = tensorDims(probe[outputName]);
  if (outDims.length !== 2) {
    await session.release();
    throw fail(
      `model output '${outputName}' has shape [${outDims.join(", ")}] for one input; ` +
        "Antidote needs class scores shaped [N, classes].",
    );
  }
  const numClasses = outDims[1] as number;
  if (options.classes !== undefined && numClasses !== options.classes.length) {
    await session.release();
    throw fail(
      `model output '${outputName}' has ${numClasses} classes, the dataset has ${options.classes.length} ` +
        `(${shortList(options.classes)}).`,
    );
  }
  if (numClasses < 2) {
    await session.release();
    throw fail(
      `model output '${outputName}' has ${numClasses} column; a classifier needs at least 2 classes.`,
    );
  }
  const penultimate =
    penultimateName === null
      ? null
      : {
          name: penultimateName,
          dims: tensorDims(probe[penultimateName])
            .slice(1)
            .reduce((a, b) => a * b, 1),
        };

  const modelClasses = metadataClasses(file.proto);
  const columns = classColumns(modelClasses, options.classes, warnings);
  return {
    file,
    digest: file.digest,
    inputName,
    inputShape,
    outputName,
    numClasses,
    outputIsProbabilities,
    penultimate,
    modelClasses,
    classColumns: columns,
    warnings,
    async run(x: Float32Array, n: number): Promise<OnnxRunResult> {
      if (!Number.isInteger(n) || n < 0 || x.length < n * rowSize) {
        throw new AntidoteError(
          "USAGE",
          `${path}: run() got ${x.length} values for ${n} inputs of shape [${inputShape.join(", ")}] (${n * rowSize} needed).`,
        );
      }
      const C = numClasses;
      const F = penultimate?.dims ?? 0;
      const scores = new Float32Array(n * C);
      const features = penultimate === null ? null : new Float32Array(n * F);
      for (let start = 0; start < n; start += batch) {
        const rows = Math.min(batch, n - start);
        // A fixed-batch model gets its batch size every time; the padding rows are dropped.
        const feedRows = fixedBatch ?? rows;
        let data = x.subarray(start * rowSize, (start + rows) * rowSize);
        if (feedRows !== rows) {
          const padded = new Float32Array(feedRows * rowSize);
          padded.set(data);
          data = padded;
        }
        let out: ort.InferenceSession.ReturnType;
        try {
          out = await session.run(
            { [inputName]: new ort.Tensor("float32", data, [feedRows, ...inputShape]) },
            fetches,
          );
        } catch (e) {
          throw fail(`ONNX Runtime failed on inputs ${start}..${start + rows - 1}: ${firstLine(e)}`);
        }
        scores.set(floatData(out[outputName], outputName, rows * C, fail), start * C);
        if (features !== null && penultimate !== null) {
          features.set(floatData(out[penultimate.name], penultimate.name, rows * F, fail), start * F);
        }
      }
      const ordered = columns === null ? scores : reorderColumns(scores, columns);
      const { probs, logits } = outputIsProbabilities ? fromProbabilities(ordered) : fromLogits(ordered, C);
      return { probs, logits, features };
    },
    async close(): Promise<void> {
      await session.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Input and output selection.

function pickInput(graph: onnx.IGraphProto, fail: (msg: string) => AntidoteError): onnx.IValueInfoProto {
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ""));
  const inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name ?? ""));
  if (inputs.length !== 1) {
    throw fail(
      `the model has ${inputs.length} inputs (${inputs.map((v) => `'${v.name ?? ""}'`).join(", ")}); ` +
        "Antidote runs classifiers with one image or vector input.",
    );
  }
  const input = inputs[0] as onnx.IValueInfoProto;
  const elem = input.type?.tensorType?.elemType;
  if (input.type?.tensorType === undefined || input.type.tensorType === null) {
    throw fail(`input '${input.name ?? ""}' is not a tensor.`);
  }
  if (elem !== onnx.TensorProto.DataType.FLOAT) {
    const name = onnx.TensorProto.DataType[elem ?? 0] ?? String(elem);
    throw fail(
      `input '${input.name ?? ""}' takes ${name} values; Antidote feeds float32 (images scaled to [0, 1]).`,
    );
  }
  return input;
}

/** The input shape without batch, from the model or --input-shape, and a fixed batch size if the model has one. */
function resolveInputShape(
  input: onnx.IValueInfoProto,
  given: readonly number[] | undefined,
  path: string,
): { shape: number[]; fixedBatch: number | undefined } {
  const name = input.name ?? "";
  const declared = valueInfoShape(input);
  if (given !== undefined && !given.every((d) => Number.isInteger(d) && d > 0)) {
    throw new AntidoteError(
      "USAGE",
      `--input-shape ${given.join(",")}: dimensions must be positive integers.`,
    );
  }
  const show = (dims: (number | string | null)[]) => `[${dims.map((d) => d ?? "?").join(", ")}]`;
  if (declared === undefined || declared.length === 0) {
    if (given === undefined) {
      throw new AntidoteError(
        "MODEL_FORMAT",
        `${path}: input '${name}' declares no shape; pass --input-shape C,H,W (or D for a flat input).`,
      );
    }
    return { shape: [...given], fixedBatch: undefined };
  }
  const batchDim = declared[0];
  const fixedBatch = typeof batchDim === "number" ? batchDim : undefined;
  const rest = declared.slice(1);
  if (given !== undefined) {
    const clash =
      given.length !== rest.length || rest.some((d, i) => typeof d === "number" && d !== given[i]);
    if (clash) {
      throw new AntidoteError(
        "USAGE",
        `--input-shape ${given.join(",")}: the model's input '${name}' is ${show(declared)} ` +
          `(batch first), which this shape contradicts.`,
      );
    }
    return { shape: [...given], fixedBatch };
  }
  if (rest.length === 0 || rest.some((d) => typeof d !== "number")) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${path}: input '${name}' has shape ${show(declared)} with symbolic or unknown dimensions; ` +
        "pass --input-shape C,H,W (or D for a flat input) to say what it takes.",
    );
  }
  return { shape: rest as number[], fixedBatch };
}

function pickOutput(
  graph: onnx.IGraphProto,
  options: OnnxClassifierOptions,
  path: string,
  warnings: string[],
): string {
  const outputs = graph.output ?? [];
  const names = outputs.map((o) => o.name ?? "");
  if (options.output !== undefined) {
    if (!names.includes(options.output)) {
      throw new AntidoteError(
        "USAGE",
        `--output ${options.output}: ${path} has no such output; its outputs are ${names.map((n) => `'${n}'`).join(", ")}.`,
      );
    }
    return options.output;
  }
  if (names.length === 1) return names[0] as string;
  const width = options.classes?.length;
  const match = outputs.find((o) => {
    const shape = valueInfoShape(o);
    return width !== undefined && shape !== undefined && shape.length === 2 && shape[1] === width;
  });
  const chosen = match?.name ?? names[0] ?? "";
  warnings.push(
    `the model has ${names.length} outputs (${names.map((n) => `'${n}'`).join(", ")}); using '${chosen}'` +
      `${match !== undefined ? ` (${width} columns, one per class)` : " (the first)"}; --output NAME chooses another.`,
  );
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// Graph walks.

type Producers = Map<string, onnx.INodeProto>;

function producerMap(graph: onnx.IGraphProto): Producers {
  const map: Producers = new Map();
  for (const node of graph.node ?? []) for (const out of node.output ?? []) map.set(out, node);
  return map;
}

function constantNames(graph: onnx.IGraphProto, producers: Producers): Set<string> {
  const names = new Set((graph.initializer ?? []).map((t) => t.name ?? ""));
  for (const [name, node] of producers) if (node.opType === "Constant") names.add(name);
  return names;
}

// Ops that pass scores through unchanged in value (shape-only or identity).
const PASS_THROUGH = new Set(["Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout"]);

function endsInSoftmax(output: string, producers: Producers): boolean {
  let t = output;
  for (let step = 0; step < 32; step++) {
    const node = producers.get(t);
    if (node === undefined) return false;
    if (node.opType === "Softmax") return true;
    if (!PASS_THROUGH.has(node.opType ?? "")) return false;
    t = node.input?.[0] ?? "";
  }
  return false;
}

/**
 * Walk back from the class scores through Softmax, identity-like ops and a bias Add to the last
 * Gemm or MatMul; its activation input is the penultimate representation.
 */
function findPenultimate(
  output: string,
  producers: Producers,
  constants: Set<string>,
): string | { why: string } {
  const none = { why: "no final Gemm/MatMul before the output" };
  let t = output;
  for (let step = 0; step < 64; step++) {
    const node = producers.get(t);
    if (node === undefined) return none;
    const op = node.opType ?? "";
    const inputs = node.input ?? [];
    if (op === "Softmax" || op === "LogSoftmax" || PASS_THROUGH.has(op)) {
      t = inputs[0] ?? "";
    } else if (op === "Add") {
      const [a = "", b = ""] = inputs;
      if (constants.has(b)) t = a;
      else if (constants.has(a)) t = b;
      else return none;
    } else if (op === "Gemm" || op === "MatMul") {
      const a = inputs[0] ?? "";
      if (constants.has(a)) return { why: `the final ${op} multiplies a constant by the activations` };
      if (op === "Gemm" && intAttribute(node, "transA", 0) !== 0) {
        return { why: "the final Gemm transposes its activation input (transA = 1)" };
      }
      return a;
    } else return { why: `no final Gemm/MatMul before the output (found ${op})` };
  }
  return none;
}

function finalOpName(output: string, producers: Producers): string {
  let t = output;
  for (let step = 0; step < 64; step++) {
    const node = producers.get(t);
    if (node === undefined) break;
    if (node.opType === "Gemm" || node.opType === "MatMul") return node.opType;
    t = node.input?.[0] ?? "";
  }
  return "Gemm";
}

/**
 * The caller's classes for a classifier opened without them (a dataset whose class list only a
 * full read tells, while the model already ran): the width check and the matching by name that
 * `classes` gets at open. Returns, for each class, the output column holding it (null: the
 * columns are already in the caller's order); what the user must know goes to `model.warnings`.
 */
export function matchClasses(model: OnnxClassifier, classes: readonly string[]): number[] | null {
  if (model.numClasses !== classes.length)
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${model.file.path}: model output '${model.outputName}' has ${model.numClasses} classes, the dataset has ` +
        `${classes.length} (${shortList(classes)}).`,
    );
  return classColumns(model.modelClasses, classes, model.warnings);
}

/**
 * How the model's output columns map to the caller's classes: by name when the model's metadata
 * names the same classes in another order (a dataset read with its labels sorted, say), else by
 * position — with a warning when the names disagree or the model names none.
 */
function classColumns(
  modelClasses: string[] | null,
  classes: readonly string[] | undefined,
  warnings: string[],
): number[] | null {
  if (classes === undefined) return null;
  if (modelClasses === null) {
    warnings.push(
      `the model does not name its classes (metadata '${CLASSES_METADATA_KEY}'); output column j is read as ` +
        `the dataset's class j (${shortList(classes)}).`,
    );
    return null;
  }
  if (modelClasses.every((c, j) => c === classes[j])) return null;
  const sameSet =
    new Set(modelClasses).size === classes.length && classes.every((c) => modelClasses.includes(c));
  if (sameSet) {
    warnings.push(
      `the model orders its classes ${shortList(modelClasses)}, the dataset ${shortList(classes)}; ` +
        "its outputs were matched to the dataset's classes by name.",
    );
    return classes.map((c) => modelClasses.indexOf(c));
  }
  warnings.push(
    `the model names its classes ${shortList(modelClasses)}, the dataset ${shortList(classes)}; ` +
      "output column j is read as the dataset's class j.",
  );
  return null;
}

function reorderColumns(scores: Float32Array, columns: readonly number[]): Float32Array {
  const C = columns.length;
  const out = new Float32Array(scores.length);
  for (let i = 0; i < scores.length; i += C)
    for (let j = 0; j < C; j++) out[i + j] = scores[i + (columns[j] as number)] as number;
  return out;
}

function metadataClasses(proto: onnx.IModelProto): string[] | null {
  const entry = (proto.metadataProps ?? []).find((p) => p.key === CLASSES_METADATA_KEY);
  if (entry?.value === undefined || entry.value === null) return null;
  try {
    const parsed: unknown = JSON.parse(entry.value);
    return Array.isArray(parsed) && parsed.every((c) => typeof c === "string") ? parsed : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Tensors and scores.

function tensorDims(v: ort.OnnxValue | undefined): number[] {
  return v !== undefined && "dims" in v ? [...v.dims] : [];
}

function floatData(
  v: ort.OnnxValue | undefined,
  name: string,
  count: number,
  fail: (msg: string) => AntidoteError,
): Float32Array {
  if (v === undefined || !("data" in v)) throw fail(`output '${name}' is not a tensor.`);
  const data = v.data;
  let values: Float32Array;
  if (data instanceof Float32Array) values = data;
  else if (data instanceof Float64Array) values = Float32Array.from(data);
  else throw fail(`output '${name}' holds ${v.type} values, not float scores.`);
  if (values.length < count)
    throw fail(`output '${name}' returned ${values.length} values, ${count} expected.`);
  return values.subarray(0, count);
}

function fromLogits(logits: Float32Array, C: number): { probs: Float32Array; logits: Float32Array } {
  const probs = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i += C) {
    let max = -Infinity;
    for (let j = 0; j < C; j++) max = Math.max(max, logits[i + j] as number);
    let sum = 0;
    for (let j = 0; j < C; j++) {
      const e = Math.exp((logits[i + j] as number) - max);
      probs[i + j] = e;
      sum += e;
    }
    for (let j = 0; j < C; j++) probs[i + j] = (probs[i + j] as number) / sum;
  }
  return { probs, logits };
}

// log(0) would be -Infinity; the floor keeps logits finite without changing any argmax.
const LOG_FLOOR = 1e-30;

function fromProbabilities(probs: Float32Array): { probs: Float32Array; logits: Float32Array } {
  const logits = new Float32Array(probs.length);
  for (let k = 0; k < probs.length; k++) logits[k] = Math.log(Math.max(probs[k] as number, LOG_FLOOR));
  return { probs, logits };
}

function shortList(names: readonly string[]): string {
  const shown = names.slice(0, 3).join(", ");
  return names.length > 3 ? `${shown}, …` : shown;
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // ORT prefixes its messages with the C++ source location; the user needs the reason.
  const line = msg.split("\n")[0] ?? msg;
  return line.replace(/^\/onnxruntime_src\/\S+\s+\S.*?\)\s+/, "").trim();
}
