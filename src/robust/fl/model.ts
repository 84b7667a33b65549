// The models a simulated federation trains: softmax regression and a one-hidden-layer ReLU
// MLP over flattened pixels in [0, 1], their parameters one flat Float32Array so a client's
// update is a plain vector the aggregation rules can read. Local training is minibatch SGD
// from the global model; the update a client sends is local − global.
//
// Kernels loop over the non-zero inputs only (about half of a Fashion-MNIST image is black
// background; rows are indexed once per Examples), with weights stored input-major so the
// inner loop over classes or hidden units walks contiguous memory.
import { AntidoteError } from "../../errors.js";
import type { Rng } from "../../math/rng.js";

export type ModelKind = "softmax" | "mlp";

export interface ModelSpec {
  readonly kind: ModelKind;
  readonly inputs: number;
  /** Hidden units (mlp only; 0 for softmax). */
  readonly hidden: number;
  readonly classes: number;
  /** Parameter count: the length of every parameter vector and update. */
  readonly size: number;
}

/** Labelled examples in one block: row i is x[i·inputs, (i+1)·inputs), values in [0, 1]. */
export interface Examples {
  readonly count: number;
  readonly inputs: number;
  readonly x: Float32Array;
  readonly y: Uint8Array;
}

export interface LocalTraining {
  /** Passes over the client's data (default 1); ignored when `steps` is set. */
  epochs?: number;
  /** Minibatch steps instead of epochs. */
  steps?: number;
  batchSize: number;
  learningRate: number;
}

export function modelSpec(
  kind: ModelKind,
  shape: { inputs?: number; classes?: number; hidden?: number } = {},
): ModelSpec {
  const inputs = shape.inputs ?? 784;
  const classes = shape.classes ?? 10;
  const hidden = kind === "mlp" ? (shape.hidden ?? 64) : 0;
  const size =
    kind === "softmax" ? inputs * classes + classes : inputs * hidden + hidden + hidden * classes + classes;
  return { kind, inputs, hidden, classes, size };
}

/** Softmax starts at zero (the loss is convex); the MLP gets He-scaled normal weights. */
export function initParameters(spec: ModelSpec, rng: Rng): Float32Array {
  const p = new Float32Array(spec.size);
  if (spec.kind === "mlp") {
    const { inputs, hidden, classes } = spec;
    const w1 = Math.sqrt(2 / inputs);
    for (let i = 0; i < inputs * hidden; i++) p[i] = rng.normal() * w1;
    const w2 = Math.sqrt(1 / hidden);
    const o = inputs * hidden + hidden;
    for (let i = 0; i < hidden * classes; i++) p[o + i] = rng.normal() * w2;
  }
  return p;
}

/**
 * Reusable buffers for one model shape, so training and prediction allocate nothing per
 * sample. One Trainer per simulation is enough: clients train one after another.
 */
export class Trainer {
  private readonly grad: Float32Array;
  private readonly logits: Float32Array;
  private readonly hiddenOut: Float32Array;
  private readonly hiddenGrad: Float32Array;
  private readonly sparse = new WeakMap<Examples, SparseRows>();

  constructor(readonly spec: ModelSpec) {
    this.grad = new Float32Array(spec.size);
    this.logits = new Float32Array(spec.classes);
    this.hiddenOut = new Float32Array(spec.hidden);
    this.hiddenGrad = new Float32Array(spec.hidden);
  }

  /**
   * Train from `global` on the rows `indices` of `data` and return the update local − global.
   * The minibatch order comes from `rng`, so a client's round is reproducible.
   */
  trainLocal(
    global: Float32Array,
    data: Examples,
    indices: ArrayLike<number>,
    training: LocalTraining,
    rng: Rng,
  ): Float32Array {
    this.check(global, data);
    const n = indices.length;
    const batch = Math.max(1, Math.min(training.batchSize, n));
    const stepsPerEpoch = Math.ceil(n / batch);
    const steps = training.steps ?? Math.round((training.epochs ?? 1) * stepsPerEpoch);
    const local = new Float32Array(global);
    const order = Int32Array.from(indices);
    let cursor = n;
    for (let step = 0; step < steps; step++) {
      this.grad.fill(0);
      let taken = 0;
      for (let b = 0; b < batch; b++) {
        if (cursor >= n) {
          shuffleInPlace(order, rng);
          cursor = 0;
        }
        this.accumulate(local, data, order[cursor++] ?? 0);
        taken++;
      }
      const scale = training.learningRate / taken;
      const g = this.grad;
      for (let i = 0; i < local.length; i++) local[i] = local[i]! - scale * g[i]!;
    }
    for (let i = 0; i < local.length; i++) local[i] = local[i]! - global[i]!;
    return local;
  }

  /** The predicted class of row `row` of `data`. */
  predict(params: Float32Array, data: Examples, row: number): number {
    this.forward(params, data, row);
    let best = 0;
    const z = this.logits;
    // A diverged model (±Infinity, NaN) predicts class 0 rather than crashing the evaluation.
    for (let k = 1; k < z.length; k++) if ((z[k] ?? -Infinity) > (z[best] ?? -Infinity)) best = k;
    return best;
  }

  /** Class probabilities (softmax of the logits) of row `row` of `data` into `out`. */
  probabilities(params: Float32Array, data: Examples, row: number, out: Float32Array | Float64Array): void {
    this.forward(params, data, row);
    const z = this.logits;
    let max = -Infinity;
    for (let k = 0; k < z.length; k++) max = Math.max(max, z[k]!);
    let sum = 0;
    for (let k = 0; k < z.length; k++) {
      const e = Math.exp(z[k]! - max);
      out[k] = e;
      sum += e;
    }
    for (let k = 0; k < z.length; k++) out[k] = out[k]! / sum;
  }

  /**
   * The hidden layer's ReLU activations of row `row` (the penultimate features of an mlp) into
   * `out`, and its class probabilities into `probs` when given.
   */
  hiddenActivations(
    params: Float32Array,
    data: Examples,
    row: number,
    out: Float32Array | Float64Array,
    probs?: Float32Array | Float64Array,
  ): void {
    if (this.spec.kind !== "mlp")
      throw new AntidoteError("INTERNAL", "a softmax model has no hidden layer to read activations from.");
    if (probs === undefined) this.forward(params, data, row);
    else this.probabilities(params, data, row, probs);
    out.set(this.hiddenOut);
  }

  /** Share of `data` (or of rows `rows`) classified correctly. */
  accuracy(params: Float32Array, data: Examples, rows?: ArrayLike<number>): number {
    this.check(params, data);
    const count = rows?.length ?? data.count;
    if (count === 0) return 0;
    let correct = 0;
    for (let i = 0; i < count; i++) {
      const row = rows === undefined ? i : rows[i]!;
      if (this.predict(params, data, row) === data.y[row]) correct++;
    }
    return correct / count;
  }

  // Cross-entropy gradient of one example added to this.grad.
  private accumulate(params: Float32Array, data: Examples, row: number): void {
    const rows = this.forward(params, data, row);
    const { inputs, hidden, classes } = this.spec;
    const z = this.logits;
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, z[k] ?? 0);
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const e = Math.exp(z[k]! - max);
      z[k] = e;
      sum += e;
    }
    const label = data.y[row] ?? 0;
    for (let k = 0; k < classes; k++) z[k] = z[k]! / sum - (k === label ? 1 : 0);
    const { start, cols, vals } = rows;
    const from = start[row]!;
    const to = start[row + 1]!;
    const g = this.grad;
    if (this.spec.kind === "softmax") {
      for (let t = from; t < to; t++) {
        const j = cols[t]!;
        const v = vals[t]!;
        const o = j * classes;
        for (let k = 0; k < classes; k++) g[o + k] = g[o + k]! + z[k]! * v;
      }
      const ob = inputs * classes;
      for (let k = 0; k < classes; k++) g[ob + k] = g[ob + k]! + z[k]!;
      return;
    }
    const h = this.hiddenOut;
    const gh = this.hiddenGrad;
    const ob1 = inputs * hidden;
    const ow2 = ob1 + hidden;
    const ob2 = ow2 + hidden * classes;
    for (let u = 0; u < hidden; u++) {
      const hu = h[u]!;
      const o = ow2 + u * classes;
      let back = 0;
      for (let k = 0; k < classes; k++) {
        const zk = z[k]!;
        g[o + k] = g[o + k]! + zk * hu;
        back += zk * params[o + k]!;
      }
      gh[u] = hu > 0 ? back : 0;
    }
    for (let k = 0; k < classes; k++) g[ob2 + k] = g[ob2 + k]! + z[k]!;
    for (let u = 0; u < hidden; u++) g[ob1 + u] = g[ob1 + u]! + gh[u]!;
    for (let t = from; t < to; t++) {
      const j = cols[t]!;
      const v = vals[t]!;
      const o = j * hidden;
      for (let u = 0; u < hidden; u++) g[o + u] = g[o + u]! + gh[u]! * v;
    }
  }

  // Logits of one example into this.logits (hidden activations into this.hiddenOut);
  // returns the sparse rows of `data` so the backward pass need not look them up again.
  private forward(params: Float32Array, data: Examples, row: number): SparseRows {
    const { inputs, hidden, classes } = this.spec;
    const rows = this.rowsOf(data);
    const { start, cols, vals } = rows;
    const from = start[row]!;
    const to = start[row + 1]!;
    const z = this.logits;
    if (this.spec.kind === "softmax") {
      const ob = inputs * classes;
      for (let k = 0; k < classes; k++) z[k] = params[ob + k]!;
      for (let t = from; t < to; t++) {
        const j = cols[t]!;
        const v = vals[t]!;
        const o = j * classes;
        for (let k = 0; k < classes; k++) z[k] = z[k]! + params[o + k]! * v;
      }
      return rows;
    }
    const h = this.hiddenOut;
    const ob1 = inputs * hidden;
    for (let u = 0; u < hidden; u++) h[u] = params[ob1 + u]!;
    for (let t = from; t < to; t++) {
      const j = cols[t]!;
      const v = vals[t]!;
      const o = j * hidden;
      for (let u = 0; u < hidden; u++) h[u] = h[u]! + params[o + u]! * v;
    }
    for (let u = 0; u < hidden; u++) if (h[u]! < 0) h[u] = 0;
    const ow2 = ob1 + hidden;
    const ob2 = ow2 + hidden * classes;
    for (let k = 0; k < classes; k++) z[k] = params[ob2 + k]!;
    for (let u = 0; u < hidden; u++) {
      const hu = h[u]!;
      if (hu === 0) continue;
      const o = ow2 + u * classes;
      for (let k = 0; k < classes; k++) z[k] = z[k]! + params[o + k]! * hu;
    }
    return rows;
  }

  private rowsOf(data: Examples): SparseRows {
    let rows = this.sparse.get(data);
    if (rows === undefined) {
      rows = sparseRows(data);
      this.sparse.set(data, rows);
    }
    return rows;
  }

  private check(params: Float32Array, data: Examples): void {
    if (params.length !== this.spec.size)
      throw new AntidoteError(
        "INTERNAL",
        `parameter vector has ${params.length} values, a ${this.spec.kind} model of this shape has ${this.spec.size}.`,
      );
    if (data.inputs !== this.spec.inputs)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `examples have ${data.inputs} inputs, the ${this.spec.kind} model expects ${this.spec.inputs}.`,
      );
  }
}

/** The non-zero inputs of every row (CSR): row r is cols/vals[start[r], start[r + 1]). */
interface SparseRows {
  start: Int32Array;
  cols: Int32Array;
  vals: Float32Array;
}

function sparseRows(data: Examples): SparseRows {
  const { count, inputs, x } = data;
  let nnz = 0;
  for (let i = 0; i < count * inputs; i++) if (x[i]! !== 0) nnz++;
  const start = new Int32Array(count + 1);
  const cols = new Int32Array(nnz);
  const vals = new Float32Array(nnz);
  let t = 0;
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < inputs; j++) {
      const v = x[r * inputs + j]!;
      if (v !== 0) {
        cols[t] = j;
        vals[t++] = v;
      }
    }
    start[r + 1] = t;
  }
  return { start, cols, vals };
}

function shuffleInPlace(a: Int32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}
