// The passes over the coordinates that rules are built from: the Gram pass (pairwise dot
// products), and the aggregate pass, which builds the aggregate block by block with one kernel
// and, on the same block while it is in cache, accumulates every client's norm, distance and
// dot product to it.
import { clientSumsKernel, readClientSums, type ClientSums } from "../client-scores.js";
import { gramFromPartials, gramKernel, gramTasks, gramWasmModule, WASM_MAX_PAGES } from "../gram.js";
import type { UpdateMatrix } from "../types.js";
import { BlockEngine, type KernelSet } from "./engine.js";
import {
  bulyanKernel,
  columnTasks,
  KERNEL_HELPERS,
  orderStatisticKernel,
  weightedSumKernel,
} from "./kernels.js";

const KERNELS: KernelSet = {
  kernels: {
    gram: gramKernel,
    orderStatistic: orderStatisticKernel,
    bulyan: bulyanKernel,
    weightedSum: weightedSumKernel,
    clientSums: clientSumsKernel,
  },
  helpers: KERNEL_HELPERS,
  wasm: { bytes: gramWasmModule(), maxPages: WASM_MAX_PAGES },
};

export interface PassOptions {
  blockSize: number;
  threads: number;
  gram: boolean;
  wasm?: boolean;
  mainThreadWorks?: boolean;
  onProgress?: ((stage: string, done: number, total: number) => void) | undefined;
}

export function openEngine(updates: UpdateMatrix, options: PassOptions): BlockEngine {
  return new BlockEngine(updates, KERNELS, options);
}

/** One pass: the full n × n Gram matrix G[i][j] = x_i · x_j (Float64). */
export function gramPass(engine: BlockEngine, stage: string): Float64Array {
  engine.mem.partial.fill(0);
  engine.pass(stage, (_start, len) => engine.run("gram", gramTasks(len)));
  return gramFromPartials(engine.mem.partial, engine.n, engine.threads);
}

/** How an aggregate pass fills `mem.vector[0, len)` with the aggregate of the current block. */
export type AggregateBlock =
  | { kind: "weighted"; weights: ArrayLike<number> }
  | { kind: "median" }
  | { kind: "trimmed-mean"; trim: number }
  | { kind: "bulyan"; selected: readonly number[]; beta: number };

/**
 * One pass: the aggregate (length d) and each client's sums against it. `into` receives the
 * aggregate when given (geometric-median reuses one buffer across its iterations).
 */
export function aggregatePass(
  engine: BlockEngine,
  stage: string,
  how: AggregateBlock,
  into?: Float32Array,
): { aggregate: Float32Array; sums: ClientSums } {
  const { mem, n } = engine;
  const aggregate = into ?? new Float32Array(engine.dimension);
  let kernel: string;
  if (how.kind === "weighted") {
    for (let i = 0; i < n; i++) mem.weights[i] = how.weights[i]!;
    kernel = "weightedSum";
  } else if (how.kind === "bulyan") {
    how.selected.forEach((c, q) => (mem.subset[q] = c));
    mem.ints[2] = how.selected.length;
    mem.ints[3] = how.beta;
    kernel = "bulyan";
  } else {
    for (let i = 0; i < n; i++) mem.subset[i] = i;
    mem.ints[2] = n;
    mem.ints[3] = how.kind === "median" ? -1 : how.trim;
    kernel = "orderStatistic";
  }
  mem.ints[4] = 0;
  mem.sums.fill(0, 0, 3 * n);
  engine.pass(stage, (start, len) => {
    engine.run(kernel, columnTasks(len));
    aggregate.set(mem.vector.subarray(0, len), start);
    engine.run("clientSums", n);
  });
  return { aggregate, sums: readClientSums(mem.sums, n, 0) };
}

/**
 * One pass: each client's sums against a fixed vector v (FLTrust's root update; norms alone
 * when v is null), in slot 1 so they never mix with an aggregate pass's.
 */
export function sumsAgainstPass(engine: BlockEngine, stage: string, v: Float32Array | null): ClientSums {
  const { mem, n } = engine;
  mem.ints[4] = 1;
  mem.sums.fill(0, 3 * n, 6 * n);
  if (v === null) mem.vector.fill(0);
  engine.pass(stage, (start, len) => {
    if (v !== null) mem.vector.set(v.subarray(start, start + len));
    engine.run("clientSums", n);
  });
  return readClientSums(mem.sums, n, 1);
}
