// A differentiable TF.js copy of an ONNX classifier, so audits can take gradients with respect
// to the input (trigger inversion). onnxruntime runs models but cannot differentiate them; this
// interprets the same graph with TF.js operators (src/audit/onnx-ops.ts), node by node.
//
// Work is split by when it can be done:
// - at translation: pick the input and output, keep only the nodes the output needs, refuse
//   operators we cannot translate (all of them named at once), fold every node whose inputs are
//   all constants (weight transposes, Constant nodes), and run one probe batch so shape errors
//   and unsupported operator forms surface here rather than in the middle of an audit;
// - at each call: the remaining nodes, with shape arithmetic (Shape → Gather → Concat → Reshape)
//   done on the host from the input's static shape, so only the real computation is on the tape.
import type * as tf from "@tensorflow/tfjs";
import { AntidoteError } from "../errors.js";
import { loadTf, type Tf } from "../nn/tf.js";
import { onnx, toNumber, valueInfoShape, type OnnxModelFile } from "../onnx/model-file.js";
import {
  OPS,
  SUPPORTED_OPS,
  dtypeOfElemType,
  hostFromTensorProto,
  hostValue,
  logicalShape,
  nchwToNhwc,
  nhwcToNchw,
  uploadHost,
  type HostValue,
  type OpContext,
  type OpFn,
  type Value,
} from "./onnx-ops.js";
import type { DifferentiableClassifier } from "./types.js";

export interface TranslateOptions {
  /** Input shape without the batch dimension; needed when the model's spatial dimensions are symbolic. */
  inputShape?: readonly number[];
  /** Graph output to treat as the class scores (default: the first that looks like [N, classes]). */
  output?: string;
}

export interface TranslatedModel extends DifferentiableClassifier {
  /** The graph output `logits` reproduces. */
  readonly outputName: string;
  /** The output is a Softmax: `logits` returns its log-probabilities, softmax(logits) its values. */
  readonly outputIsProbabilities: boolean;
  /** Operator types of the nodes the output depends on, sorted. */
  readonly ops: string[];
}

interface Step {
  readonly node: onnx.INodeProto;
  readonly fn: OpFn;
  readonly opset: number;
  readonly where: string;
  /** Tensors this node derived from weights (prepared filters, folded batch norm), kept for the model's life. */
  readonly memo: Map<string, tf.Tensor>;
}

/** Translate an ONNX classifier into TF.js. Throws MODEL_UNSUPPORTED, MODEL_FORMAT or USAGE (see the module notes). */
export async function translateOnnx(
  model: OnnxModelFile,
  options: TranslateOptions = {},
): Promise<TranslatedModel> {
  const tfx = await loadTf();
  const label = model.path;
  const graph = model.proto.graph;
  if (graph === null || graph === undefined)
    throw new AntidoteError("MODEL_FORMAT", `${label}: has no graph.`);

  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name ?? "", t]));
  const input = pickInput(label, graph, initializers);
  const inputShape = resolveInputShape(label, input, options.inputShape);
  const outputName = pickOutput(label, graph, options.output);

  // Names are optional in ONNX; messages need one.
  const names = new Map((graph.node ?? []).map((n, i) => [n, n.name || `${n.opType ?? "node"}_${i}`]));
  const nodes = neededNodes(
    label,
    graph,
    names,
    outputName,
    new Set([input.name ?? "", ...initializers.keys()]),
  );
  const opsets = opsetsOf(model.proto);
  refuseUnsupported(label, nodes, names, opsets);

  const constants = new Map<string, Value>();
  for (const name of referencedNames(nodes, outputName)) {
    const t = initializers.get(name);
    if (t !== undefined && name !== input.name) {
      constants.set(name, hostFromTensorProto(t, `${label}: initializer "${name}"`));
    }
  }
  const steps = nodes.map((node) => {
    const opset = opsets.get(domainOf(node)) ?? 1;
    const where = `${label}: node "${names.get(node) ?? ""}" (${node.opType ?? ""}, opset ${opset})`;
    return { node, fn: OPS[node.opType ?? ""]!, opset, where, memo: new Map<string, tf.Tensor>() };
  });
  const consumed = new Set([outputName, ...nodes.flatMap((n) => (n.input ?? []).filter((x) => x !== ""))]);
  const runtime = new Runtime(tfx, label, input.name ?? "", outputName, consumed);
  const live = runtime.fold(steps, constants);

  // The model's own Softmax on the output becomes a LogSoftmax: softmax(logits) is then the
  // model's distribution, and gradients do not vanish where a probability saturates.
  const finalSoftmax = finalSoftmaxStep(live, outputName);
  const outputIsProbabilities = finalSoftmax !== undefined;
  const program = live.map((s) => (s === finalSoftmax ? { ...s, fn: OPS.LogSoftmax! } : s));
  runtime.setProgram(program, constants);

  // A probe batch surfaces shape errors and operator forms we cannot run now, fills the weight
  // caches, and tells how many classes there are.
  const declaredBatch = valueInfoShape(input)?.[0];
  const fixedBatch = typeof declaredBatch === "number" ? declaredBatch : undefined;
  const probe = (n: number): number => {
    const out = tfx.tidy(() => runtime.evaluate(tfx.zeros([n, ...inputShape]), inputShape));
    out.dispose();
    return out.shape[1];
  };
  let numClasses: number;
  let chunk: number | undefined;
  try {
    numClasses = probe(fixedBatch ?? 2);
    // Exporters that fix the batch size often bake it into Reshape targets too ([1, 512]); such a
    // graph runs only on batches of that size, so larger batches are evaluated in chunks.
    if (fixedBatch !== undefined && !runsOn(() => probe(2 * fixedBatch) === numClasses)) chunk = fixedBatch;
  } catch (e) {
    runtime.dispose();
    throw e;
  }
  const logits = (x: tf.Tensor): tf.Tensor2D =>
    chunk === undefined || x.shape[0] === chunk
      ? runtime.evaluate(x, inputShape)
      : inChunks(tfx, x, chunk, (part) => runtime.evaluate(part, inputShape));

  const ops = [...new Set(nodes.map((n) => n.opType ?? ""))].sort();
  return {
    inputShape,
    numClasses,
    outputName,
    outputIsProbabilities,
    ops,
    logits,
    dispose: () => runtime.dispose(),
  };
}

function runsOn(attempt: () => boolean): boolean {
  try {
    return attempt();
  } catch {
    return false;
  }
}

/** `evaluate` over slices of `size` samples (the last zero-padded to full size), concatenated. */
function inChunks(
  tfx: Tf,
  x: tf.Tensor,
  size: number,
  evaluate: (part: tf.Tensor) => tf.Tensor2D,
): tf.Tensor2D {
  const n = x.shape[0];
  const parts: tf.Tensor2D[] = [];
  for (let start = 0; start < n; start += size) {
    const count = Math.min(size, n - start);
    let part = tfx.slice(x, [start], [count]);
    if (count < size)
      part = tfx.pad(part, [[0, size - count], ...x.shape.slice(1).map((): [number, number] => [0, 0])]);
    const out = evaluate(part);
    parts.push(count < size ? tfx.slice(out, [0, 0], [count, out.shape[1]]) : out);
  }
  return tfx.concat(parts, 0);
}

// ---------------------------------------------------------------------------------------------
// Graph inspection

function pickInput(
  label: string,
  graph: onnx.IGraphProto,
  initializers: ReadonlyMap<string, onnx.ITensorProto>,
): onnx.IValueInfoProto {
  const inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name ?? ""));
  if (inputs.length !== 1) {
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${label}: has ${inputs.length} inputs (${inputs.map((v) => `"${v.name ?? ""}"`).join(", ")}); ` +
        `Antidote audits classifiers with one input tensor.`,
    );
  }
  const input = inputs[0]!;
  const elemType = input.type?.tensorType?.elemType ?? 0;
  if (dtypeOfElemType(elemType) !== "float") {
    const name = onnx.TensorProto.DataType[elemType] ?? String(elemType);
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${label}: input "${input.name ?? ""}" is ${name}; Antidote audits classifiers that take a float tensor.`,
    );
  }
  return input;
}

/** The input's shape without its batch dimension: declared, or `--input-shape` where it is symbolic. */
function resolveInputShape(label: string, input: onnx.IValueInfoProto, given?: readonly number[]): number[] {
  const declared = valueInfoShape(input);
  const name = input.name ?? "";
  const show = (dims: readonly (number | string | null)[]): string =>
    `[${dims.map((d) => d ?? "?").join(", ")}]`;
  if (given !== undefined) {
    if (given.length === 0 || given.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new AntidoteError("USAGE", `--input-shape must be positive integers, got [${given.join(", ")}].`);
    }
    if (declared !== undefined) {
      const rest = declared.slice(1);
      const clash =
        rest.length !== given.length || rest.some((d, i) => typeof d === "number" && d !== given[i]);
      if (clash) {
        throw new AntidoteError(
          "USAGE",
          `--input-shape ${given.join(",")} does not fit ${label} input "${name}" of shape ${show(declared)} ` +
            `(the shape excludes the batch dimension).`,
        );
      }
    }
    return [...given];
  }
  const rest = declared?.slice(1);
  if (
    declared === undefined ||
    declared.length < 2 ||
    rest === undefined ||
    rest.some((d) => typeof d !== "number")
  ) {
    const what = declared === undefined ? "declares no shape" : `has dynamic dimensions ${show(declared)}`;
    throw new AntidoteError(
      "MODEL_FORMAT",
      `${label}: input "${name}" ${what}; pass --input-shape with the dimensions after the batch ` +
        `(for example --input-shape 3,32,32).`,
    );
  }
  return rest as number[];
}

/** The named output, or the first graph output whose last dimension looks like classes. */
function pickOutput(label: string, graph: onnx.IGraphProto, wanted?: string): string {
  const outputs = (graph.output ?? []).map((v) => v.name ?? "");
  if (wanted !== undefined) {
    if (!outputs.includes(wanted)) {
      throw new AntidoteError(
        "USAGE",
        `${label} has no output "${wanted}"; its outputs: ${outputs.map((o) => `"${o}"`).join(", ")}.`,
      );
    }
    return wanted;
  }
  const looksLikeClasses = (graph.output ?? []).find((v) => {
    const shape = valueInfoShape(v);
    const last = shape?.[shape.length - 1];
    return shape !== undefined && shape.length >= 2 && typeof last === "number" && last >= 2;
  });
  return looksLikeClasses?.name ?? outputs[0]!;
}

/** The nodes `output` depends on, in an order where every node follows the producers of its inputs. */
function neededNodes(
  label: string,
  graph: onnx.IGraphProto,
  names: ReadonlyMap<onnx.INodeProto, string>,
  output: string,
  available: ReadonlySet<string>,
): onnx.INodeProto[] {
  const producer = new Map<string, onnx.INodeProto>();
  for (const node of graph.node ?? []) for (const o of node.output ?? []) if (o !== "") producer.set(o, node);
  const order: onnx.INodeProto[] = [];
  const state = new Map<onnx.INodeProto, "visiting" | "done">();
  // Iterative depth-first search: deep graphs would overflow a recursive one.
  const visit = (start: string, user: string): void => {
    const stack: { node: onnx.INodeProto; next: number }[] = [];
    const push = (value: string, by: string): void => {
      if (available.has(value)) return;
      const node = producer.get(value);
      if (node === undefined) {
        throw new AntidoteError(
          "MODEL_FORMAT",
          `${label}: value "${value}" used by ${by} is never produced.`,
        );
      }
      const s = state.get(node);
      if (s === "done") return;
      if (s === "visiting")
        throw new AntidoteError("MODEL_FORMAT", `${label}: the graph has a cycle through "${value}".`);
      state.set(node, "visiting");
      stack.push({ node, next: 0 });
    };
    push(start, user);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const inputs = top.node.input ?? [];
      if (top.next < inputs.length) {
        const value = inputs[top.next++]!;
        if (value !== "") push(value, `node "${names.get(top.node) ?? ""}"`);
      } else {
        state.set(top.node, "done");
        order.push(top.node);
        stack.pop();
      }
    }
  };
  visit(output, "the graph output");
  return order;
}

function referencedNames(nodes: readonly onnx.INodeProto[], output: string): Set<string> {
  return new Set([output, ...nodes.flatMap((n) => n.input ?? [])]);
}

function domainOf(node: onnx.INodeProto): string {
  const d = node.domain ?? "";
  return d === "ai.onnx" ? "" : d;
}

function opsetsOf(proto: onnx.IModelProto): Map<string, number> {
  return new Map(
    (proto.opsetImport ?? []).map((o) => {
      const d = o.domain ?? "";
      return [d === "ai.onnx" ? "" : d, toNumber(o.version)];
    }),
  );
}

function refuseUnsupported(
  label: string,
  nodes: readonly onnx.INodeProto[],
  names: ReadonlyMap<onnx.INodeProto, string>,
  opsets: ReadonlyMap<string, number>,
): void {
  const bad = nodes.filter((n) => domainOf(n) !== "" || OPS[n.opType ?? ""] === undefined);
  if (bad.length === 0) return;
  // One entry per operator (its first node and how many more), so a model full of LSTMs reads in one line.
  const byOp = new Map<string, onnx.INodeProto[]>();
  for (const n of bad) {
    const key = domainOf(n) === "" ? (n.opType ?? "") : `${domainOf(n)}.${n.opType ?? ""}`;
    byOp.set(key, [...(byOp.get(key) ?? []), n]);
  }
  const parts = [...byOp].map(([op, list]) => {
    const first = list[0]!;
    const more = list.length > 1 ? ` (and ${list.length - 1} more node${list.length > 2 ? "s" : ""})` : "";
    return `node "${names.get(first) ?? ""}" uses operator ${op} (opset ${opsets.get(domainOf(first)) ?? "?"})${more}`;
  });
  throw new AntidoteError(
    "MODEL_UNSUPPORTED",
    `${label}: ${parts.join("; ")}, which Antidote cannot translate; supported: ${SUPPORTED_OPS.join(", ")}.`,
  );
}

// Operators that only move or keep values; a Softmax behind them still makes the output probabilities.
const PASS_THROUGH = new Set(["Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze"]);

/**
 * The Softmax the output is, possibly behind shape-only operators, when nothing else reads the
 * values on the way (replacing it by its logarithm must change the output alone).
 */
function finalSoftmaxStep(steps: readonly Step[], output: string): Step | undefined {
  const readers = new Map<string, number>();
  for (const s of steps) for (const i of s.node.input ?? []) readers.set(i, (readers.get(i) ?? 0) + 1);
  let name = output;
  for (;;) {
    const step = steps.find((s) => (s.node.output ?? []).includes(name));
    if (step === undefined) return undefined;
    const op = step.node.opType ?? "";
    if (op === "Softmax") return step;
    if (!PASS_THROUGH.has(op)) return undefined;
    name = step.node.input?.[0] ?? "";
    if ((readers.get(name) ?? 0) !== 1) return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

class Runtime {
  private program: readonly Step[] = [];
  private constants: ReadonlyMap<string, Value> = new Map();
  /** Device copies of persistent host values, NCHW and NHWC, kept for the model's life. */
  private readonly uploads = new WeakMap<HostValue, { nchw?: tf.Tensor; nhwc?: tf.Tensor }>();
  private readonly kept: tf.Tensor[] = [];
  private disposed = false;

  constructor(
    private readonly tf: Tf,
    private readonly label: string,
    private readonly inputName: string,
    private readonly outputName: string,
    private readonly consumed: ReadonlySet<string>,
  ) {}

  /**
   * Evaluate, once, every step whose inputs are all constants, adding the results to `constants`;
   * return the steps left for each call. Device results come back to the host so that later
   * shape arithmetic and weight preparation can read them.
   */
  fold(steps: readonly Step[], constants: Map<string, Value>): Step[] {
    const live: Step[] = [];
    for (const step of steps) {
      const inputs = (step.node.input ?? []).filter((n) => n !== "");
      if (!inputs.every((n) => constants.has(n))) {
        live.push(step);
        continue;
      }
      const scratch = new Runtime(this.tf, this.label, this.inputName, this.outputName, this.consumed);
      try {
        this.tf.tidy(() => {
          const results = scratch.run(step, constants);
          (step.node.output ?? []).forEach((name, i) => {
            const v = results[i];
            if (name === "" || v === undefined) return;
            if (v.kind === "host") {
              constants.set(name, { ...v, persistent: true });
            } else {
              const t = v.layout === "nhwc" ? nhwcToNchw(this.tf, v.tensor) : v.tensor;
              const dtype = t.dtype === "float32" ? "float" : t.dtype === "bool" ? "bool" : "int";
              const data =
                t.dtype === "float32" ? Float32Array.from(t.dataSync()) : Float64Array.from(t.dataSync());
              constants.set(name, hostValue(dtype, t.shape, data, true));
            }
          });
        });
      } finally {
        scratch.dispose();
      }
    }
    return live;
  }

  setProgram(program: readonly Step[], constants: ReadonlyMap<string, Value>): void {
    this.program = program;
    this.constants = constants;
  }

  /** Class scores [N, classes] for a batch [N, ...inputShape]; allocates only scope-owned tensors after the probe. */
  evaluate(x: tf.Tensor, inputShape: readonly number[]): tf.Tensor2D {
    if (this.disposed) throw new AntidoteError("INTERNAL", "logits() called on a disposed translation.");
    const expected = [x.shape[0], ...inputShape];
    if (x.rank !== expected.length || x.shape.some((d, i) => d !== expected[i])) {
      throw new AntidoteError(
        "USAGE",
        `${this.label}: the model takes a batch shaped [N, ${inputShape.join(", ")}], got [${x.shape.join(", ")}].`,
      );
    }
    const env = new Map<string, Value>(this.constants);
    env.set(this.inputName, { kind: "device", tensor: x, layout: "nchw" });
    for (const step of this.program) {
      const results = this.run(step, env);
      (step.node.output ?? []).forEach((name, i) => {
        const v = results[i];
        if (name === "") return;
        if (v !== undefined) env.set(name, v);
        else if (this.consumed.has(name)) {
          throw new AntidoteError(
            "MODEL_UNSUPPORTED",
            `${step.where}: output ${i + 1} ("${name}") is used, which Antidote cannot translate.`,
          );
        }
      });
    }
    const out = env.get(this.outputName);
    if (out === undefined || out.kind === "host") {
      throw new AntidoteError(
        "MODEL_FORMAT",
        `${this.label}: output "${this.outputName}" does not depend on the input; it is not a classifier output.`,
      );
    }
    const y = out.layout === "nhwc" ? nhwcToNchw(this.tf, out.tensor) : out.tensor;
    const shape = logicalShape(out);
    const n = x.shape[0];
    const rest = shape.slice(1);
    // [N, K] or [N, K] with extra unit axes ([N, K, 1, 1] from a 1×1 convolution head).
    if (shape[0] !== n || rest.filter((d) => d !== 1).length > 1 || rest.length === 0) {
      throw new AntidoteError(
        "MODEL_FORMAT",
        `${this.label}: output "${this.outputName}" has shape [${shape.join(", ")}] for a batch of ${n}; ` +
          `a classifier output is [N, classes].`,
      );
    }
    return this.tf.reshape(y, [n, rest.reduce((a, b) => a * b, 1)]);
  }

  /** Run one step over `env`, naming the node in any error the operator or TF.js raises. */
  run(step: Step, env: ReadonlyMap<string, Value>): (Value | undefined)[] {
    const inputs = (step.node.input ?? []).map((name) => {
      if (name === "") return undefined;
      const v = env.get(name);
      if (v === undefined)
        throw new AntidoteError("INTERNAL", `${step.where}: input "${name}" was not computed.`);
      return v;
    });
    try {
      return step.fn(this.context(step), inputs);
    } catch (e) {
      if (e instanceof AntidoteError) throw e;
      throw new AntidoteError(
        "MODEL_UNSUPPORTED",
        `${step.where}: cannot be evaluated in TF.js (${(e as Error).message}).`,
        { cause: e },
      );
    }
  }

  private context(step: Step): OpContext {
    const t = this.tf;
    return {
      tf: t,
      node: step.node,
      opset: step.opset,
      where: step.where,
      nchw: (v) => {
        if (v.kind === "device") return v.layout === "nhwc" ? nhwcToNchw(t, v.tensor) : v.tensor;
        if (!v.persistent) return uploadHost(t, v);
        return this.cached(v, "nchw", () => uploadHost(t, v));
      },
      nhwc: (v) => {
        if (v.kind === "device") return v.layout === "nhwc" ? v.tensor : nchwToNhwc(t, v.tensor);
        if (!v.persistent) return nchwToNhwc(t, uploadHost(t, v));
        return this.cached(v, "nhwc", () => t.tidy(() => nchwToNhwc(t, uploadHost(t, v))));
      },
      memo: (key, make) => {
        const hit = step.memo.get(key);
        if (hit !== undefined) return hit;
        const made = this.keep(t.tidy(make));
        step.memo.set(key, made);
        return made;
      },
    };
  }

  private cached(v: HostValue, layout: "nchw" | "nhwc", make: () => tf.Tensor): tf.Tensor {
    const entry = this.uploads.get(v) ?? {};
    const hit = entry[layout];
    if (hit !== undefined) return hit;
    const made = this.keep(make());
    entry[layout] = made;
    this.uploads.set(v, entry);
    return made;
  }

  private keep(t: tf.Tensor): tf.Tensor {
    this.tf.keep(t);
    this.kept.push(t);
    return t;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.kept) t.dispose();
    this.kept.length = 0;
    for (const step of this.program) step.memo.clear();
  }
}
