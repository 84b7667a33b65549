// The block engine every rule runs on: one pass over the coordinates gathers a block of every
// client's columns into one row-major buffer, then runs kernels over that buffer split into
// tasks. With more than one thread the buffers live in SharedArrayBuffers and worker threads
// claim tasks next to the main thread; `UpdateMatrix` stays synchronous (a file-backed matrix
// reads with readSync), so the main thread waits on Atomics instead of awaiting promises and
// `aggregate()` stays a plain synchronous call.
//
// Kernels are shipped to the workers as source text (`Function.prototype.toString`), so a kernel
// must be self-contained: it may use its parameters, globals (Math, typed arrays) and the helper
// functions passed next to it in `helpers`, and nothing imported (bundlers rewrite imported names
// inside function bodies) and no nested functions (tsx wraps those in `__name(...)`; the worker
// defines a pass-through `__name` all the same, as a safety net).
//
// A kernel set may bring a WebAssembly module (the Gram tile). The block and the Gram partials
// then live in one shared WebAssembly memory that every thread's instance imports, and kernels
// reach the module's exports through `scratch.wasm`; without WebAssembly they run in JavaScript.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { AntidoteError } from "../../errors.js";
import type { UpdateMatrix } from "../types.js";

/** The buffers a kernel sees: the current block and the per-job inputs and outputs. */
export interface BlockMemory {
  /** Clients (rows of `block`). */
  readonly n: number;
  /** Row stride of `block`: the block size. */
  readonly stride: number;
  /** n × stride float32: client c's columns [start, start + len) at c·stride. */
  readonly block: Float32Array;
  /** stride float32: the aggregate block a kernel writes, or the vector the client sums compare with. */
  readonly vector: Float32Array;
  /** n: per-client weights of a weighted sum. */
  readonly weights: Float64Array;
  /** n: a subset of client indices (bulyan's selected updates), `ints[2]` of them. */
  readonly subset: Int32Array;
  /** 2 slots × 3n running per-client sums: Σx², Σ(x − v)², Σx·v. */
  readonly sums: Float64Array;
  /** threads × n × n per-thread Gram partial sums (empty when the engine has no Gram pass). */
  readonly partial: Float64Array;
  /** Job parameters: [0] block length, [2] subset count, [3] trim or β, [4] client-sums slot ([1] unused). */
  readonly ints: Int32Array;
}

/** Per-thread scratch that kernels grow as they need it; `thread` indexes `partial`. */
export interface Scratch {
  readonly thread: number;
  f32: Float32Array;
  f64: Float64Array;
  /** The kernel set's WebAssembly exports, instantiated over the engine's memory; null without. */
  readonly wasm: Record<string, unknown> | null;
}

export type Kernel = (mem: BlockMemory, task: number, scratch: Scratch) => void;

/** Named kernels plus the helper functions they call, all self-contained (see the header). */
export interface KernelSet {
  kernels: Record<string, Kernel>;
  helpers: readonly ((...args: never[]) => unknown)[];
  /** A WebAssembly module importing `env.memory` (shared, at most `maxPages` 64 KiB pages). */
  wasm?: { bytes: Uint8Array; maxPages: number };
}

// The few WebAssembly JS-API members the engine uses (the project's lib settings do not declare them).
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}
declare const WebAssembly: WasmApi;

export interface EngineOptions {
  blockSize: number;
  threads: number;
  /** Allocate the per-thread n × n Gram partials (Krum, Bulyan, FoolsGold). */
  gram: boolean;
  /** Use the kernel set's WebAssembly module when it has one (default true; false tests the JavaScript paths). */
  wasm?: boolean | undefined;
  /** Whether the main thread claims tasks too (default true; false leaves every task to the workers, which tests them). */
  mainThreadWorks?: boolean | undefined;
  onProgress?: ((stage: string, done: number, total: number) => void) | undefined;
}

/** Where each array lives: [buffer, byte offset, length in elements]. */
type Place = [ArrayBufferLike, number, number];
interface EngineBuffers {
  block: Place;
  vector: Place;
  weights: Place;
  subset: Place;
  sums: Place;
  partial: Place;
  ints: Place;
  control: Place;
}

// Control words (Int32 indices). NEXT packs (generation & 0x7fff) << 16 | next task index, so a
// worker that wakes late for an old job can never claim a task of the next one: its
// compare-exchange on NEXT fails as soon as the main thread publishes a new generation.
const GEN = 0;
const NEXT = 1;
const TASKS = 2;
const DONE = 3;
const KERNEL = 4;
const STOP = 5;
const CONTROL_WORDS = 8;
const MAX_TASKS = 0xfffe;
/** Coordinates per block at most, so a job's tasks (256 or 512 columns each) fit NEXT's 16 bits. */
const MAX_BLOCK = 1 << 23;
const EXHAUSTED = 0xffff;
/** A job whose tasks stop completing for this long means a worker died: fail loudly, never hang. */
const STALL_MS = 120_000;

/** Typed views over the engine's buffers; shipped to the workers too, so self-contained. */
export function makeMemory(b: EngineBuffers, n: number, stride: number): BlockMemory {
  return {
    n,
    stride,
    block: new Float32Array(b.block[0], b.block[1], b.block[2]),
    vector: new Float32Array(b.vector[0], b.vector[1], b.vector[2]),
    weights: new Float64Array(b.weights[0], b.weights[1], b.weights[2]),
    subset: new Int32Array(b.subset[0], b.subset[1], b.subset[2]),
    sums: new Float64Array(b.sums[0], b.sums[1], b.sums[2]),
    partial: new Float64Array(b.partial[0], b.partial[1], b.partial[2]),
    ints: new Int32Array(b.ints[0], b.ints[1], b.ints[2]),
  };
}

interface WorkerData {
  buffers: EngineBuffers;
  n: number;
  stride: number;
  thread: number;
  /** The compiled module and the shared memory it imports (both cloneable to a worker). */
  wasm: { module: object; memory: WasmMemory } | null;
}

/** A worker's whole life: claim tasks of the current generation, run them, sleep until the next. */
function workerLoop(
  data: WorkerData,
  kernels: Kernel[],
  memoryOf: (b: EngineBuffers, n: number, stride: number) => BlockMemory,
): void {
  const mem = memoryOf(data.buffers, data.n, data.stride);
  const ctl = new Int32Array(data.buffers.control[0], data.buffers.control[1], data.buffers.control[2]);
  const wasm =
    data.wasm === null
      ? null
      : new WebAssembly.Instance(data.wasm.module, { env: { memory: data.wasm.memory } }).exports;
  const scratch = { thread: data.thread, f32: new Float32Array(0), f64: new Float64Array(0), wasm };
  for (;;) {
    if (Atomics.load(ctl, 5) === 1) return; // STOP
    const gen = Atomics.load(ctl, 0); // GEN
    for (;;) {
      const v = Atomics.load(ctl, 1); // NEXT
      if (v >>> 16 !== gen) break;
      const task = v & 0xffff;
      const tasks = Atomics.load(ctl, 2); // TASKS
      if (task >= tasks) break;
      if (Atomics.compareExchange(ctl, 1, v, v + 1) !== v) continue;
      kernels[ctl[4]!]!(mem, task, scratch); // KERNEL
      if (Atomics.add(ctl, 3, 1) + 1 >= tasks) Atomics.notify(ctl, 3); // DONE
    }
    Atomics.wait(ctl, 0, gen, 1000);
  }
}

function workerSource(set: KernelSet): string {
  const kernels = Object.values(set.kernels);
  return [
    `"use strict";`,
    `const { workerData } = require("node:worker_threads");`,
    `const __name = (f) => f;`,
    ...set.helpers.map((f) => f.toString()),
    `const KERNELS = [${kernels.map((k) => `(${k.toString()})`).join(",\n")}];`,
    `const makeMemory = (${makeMemory.toString()});`,
    `const workerLoop = (${workerLoop.toString()});`,
    `workerLoop(workerData, KERNELS, makeMemory);`,
  ].join("\n");
}

/** A fresh buffer for `length` elements of `bytesPer` bytes. */
function place(length: number, bytesPer: number, shared: boolean): Place {
  const bytes = length * bytesPer;
  return [shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes), 0, length];
}

const compiled = new Map<Uint8Array, object>();

/**
 * The block and the Gram partials in one shared WebAssembly memory, and the module compiled
 * once per process; null when the set has no module, the memory would be too large, or this
 * runtime refuses (then the kernels' JavaScript paths run).
 */
function wasmMemory(
  set: KernelSet,
  blockFloats: number,
  partialDoubles: number,
): { module: object; memory: WasmMemory; exports: Record<string, unknown> } | null {
  if (set.wasm === undefined) return null;
  const partialAt = Math.ceil((4 * blockFloats) / 8) * 8;
  const pages = Math.max(1, Math.ceil((partialAt + 8 * partialDoubles) / 65536));
  if (pages > set.wasm.maxPages) return null;
  try {
    let module = compiled.get(set.wasm.bytes);
    if (module === undefined) {
      module = new WebAssembly.Module(set.wasm.bytes);
      compiled.set(set.wasm.bytes, module);
    }
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const { exports } = new WebAssembly.Instance(module, { env: { memory } });
    return { module, memory, exports };
  } catch {
    return null;
  }
}

/** Threads to use when the caller did not say: all cores once the work outweighs starting workers. */
export function defaultThreads(work: number): number {
  // Multiply-adds, ~0.1 s on one core: workers start per call (~30 ms each), so below this
  // they would cost about what they save.
  const WORK_WORTH_A_WORKER = 2e8;
  return work >= WORK_WORTH_A_WORKER ? Math.max(1, Math.min(availableParallelism(), 16)) : 1;
}

/** Block size when the caller did not say: every client's block together in about 16 MiB. */
export function defaultBlockSize(n: number, d: number): number {
  const BLOCK_BYTES = 16 * 1024 * 1024;
  const perClient = Math.floor(BLOCK_BYTES / (4 * Math.max(1, n)));
  const aligned = Math.max(256, perClient - (perClient % 256));
  return Math.max(1, Math.min(aligned, d));
}

export class BlockEngine {
  readonly mem: BlockMemory;
  readonly n: number;
  readonly dimension: number;
  readonly blockSize: number;
  readonly threads: number;
  /** Passes over the coordinates so far (for the result's details). */
  passes = 0;
  /** Tasks run so far, and how many of them worker threads ran (the rest ran on the main thread). */
  tasksRun = 0;
  tasksOnWorkers = 0;
  private readonly kernelIndex = new Map<string, number>();
  private readonly kernelList: Kernel[];
  private readonly buffers: EngineBuffers;
  private readonly ctl: Int32Array;
  private readonly scratch: Scratch;
  private readonly wasm: { module: object; memory: WasmMemory } | null;
  private workers: Worker[] = [];
  private generation = 0;

  constructor(
    private readonly updates: UpdateMatrix,
    private readonly set: KernelSet,
    private readonly options: EngineOptions,
  ) {
    this.n = updates.clients;
    this.dimension = updates.dimension;
    this.blockSize = Math.max(1, Math.min(options.blockSize, Math.max(1, this.dimension), MAX_BLOCK));
    this.threads = Math.max(1, Math.floor(options.threads));
    this.kernelList = Object.values(set.kernels);
    Object.keys(set.kernels).forEach((name, i) => this.kernelIndex.set(name, i));
    const shared = this.threads > 1;
    const n = this.n;
    const blockFloats = n * this.blockSize;
    const partialDoubles = options.gram ? this.threads * n * n : 0;
    const wasm = options.gram && options.wasm !== false ? wasmMemory(set, blockFloats, partialDoubles) : null;
    this.wasm = wasm === null ? null : { module: wasm.module, memory: wasm.memory };
    this.buffers = {
      block: wasm === null ? place(blockFloats, 4, shared) : [wasm.memory.buffer, 0, blockFloats],
      vector: place(this.blockSize, 4, shared),
      weights: place(n, 8, shared),
      subset: place(n, 4, shared),
      sums: place(6 * n, 8, shared),
      partial:
        wasm === null
          ? place(partialDoubles, 8, shared)
          : [wasm.memory.buffer, Math.ceil((4 * blockFloats) / 8) * 8, partialDoubles],
      ints: place(8, 4, shared),
      control: place(CONTROL_WORDS, 4, shared),
    };
    this.mem = makeMemory(this.buffers, n, this.blockSize);
    this.ctl = new Int32Array(this.buffers.control[0], 0, CONTROL_WORDS);
    this.scratch = {
      thread: 0,
      f32: new Float32Array(0),
      f64: new Float64Array(0),
      wasm: wasm?.exports ?? null,
    };
  }

  /** Whether the kernels run their WebAssembly paths. */
  get usesWasm(): boolean {
    return this.wasm !== null;
  }

  /** Blocks in one pass. */
  get blocks(): number {
    return Math.ceil(this.dimension / this.blockSize);
  }

  /**
   * One pass over the coordinates: for each block, gather every client's columns into
   * `mem.block` (client c at row c) and call `step(start, len)`; report progress per block.
   */
  pass(stage: string, step: (start: number, len: number) => void): void {
    const total = this.blocks;
    this.passes++;
    for (let b = 0; b < total; b++) {
      const start = b * this.blockSize;
      const end = Math.min(this.dimension, start + this.blockSize);
      this.gather(start, end);
      this.mem.ints[0] = end - start;
      step(start, end - start);
      this.options.onProgress?.(stage, b + 1, total);
    }
  }

  private gather(start: number, end: number): void {
    const { block, stride } = this.mem;
    const len = end - start;
    for (let c = 0; c < this.n; c++) {
      const cols = this.updates.columns(c, start, end);
      if (cols.length !== len)
        throw new AntidoteError(
          "INTERNAL",
          `client ${c} returned ${cols.length} coordinates for columns [${start}, ${end}); expected ${len}.`,
        );
      block.set(cols, c * stride);
    }
  }

  /** Runs `tasks` tasks of `kernel` over the current block, on every thread; returns when all are done. */
  run(kernel: string, tasks: number): void {
    const index = this.kernelIndex.get(kernel);
    if (index === undefined) throw new AntidoteError("INTERNAL", `no kernel named ${kernel}`);
    if (tasks <= 0) return;
    const fn = this.kernelList[index]!;
    this.tasksRun += tasks;
    if (this.threads === 1 || tasks === 1) {
      for (let t = 0; t < tasks; t++) fn(this.mem, t, this.scratch);
      return;
    }
    if (tasks > MAX_TASKS)
      throw new AntidoteError("INTERNAL", `${tasks} tasks in one job (at most ${MAX_TASKS})`);
    this.startWorkers();
    const ctl = this.ctl;
    const gen = (this.generation = (this.generation + 1) & 0x7fff);
    // Close the old job before touching its parameters: a late worker's claim now fails.
    Atomics.store(ctl, NEXT, (gen << 16) | EXHAUSTED);
    Atomics.store(ctl, TASKS, tasks);
    Atomics.store(ctl, KERNEL, index);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, NEXT, gen << 16);
    Atomics.store(ctl, GEN, gen);
    Atomics.notify(ctl, GEN);
    // The main thread claims tasks like any worker, so a worker that is slow to start costs nothing.
    let own = 0;
    while (this.options.mainThreadWorks !== false) {
      const v = Atomics.load(ctl, NEXT);
      const task = v & 0xffff;
      if (v >>> 16 !== gen || task >= tasks) break;
      if (Atomics.compareExchange(ctl, NEXT, v, v + 1) !== v) continue;
      fn(this.mem, task, this.scratch);
      Atomics.add(ctl, DONE, 1);
      own++;
    }
    this.tasksOnWorkers += tasks - own;
    let last = Atomics.load(ctl, DONE);
    let since = performance.now();
    while (last < tasks) {
      Atomics.wait(ctl, DONE, last, 1000);
      const done = Atomics.load(ctl, DONE);
      if (done !== last) {
        last = done;
        since = performance.now();
      } else if (performance.now() - since > STALL_MS)
        throw new AntidoteError(
          "INTERNAL",
          `aggregation worker stalled: ${tasks - done} of ${tasks} ${kernel} tasks unfinished for ${STALL_MS / 1000} s.`,
        );
    }
  }

  private startWorkers(): void {
    if (this.workers.length > 0 || this.threads === 1) return;
    const source = workerSource(this.set);
    for (let t = 1; t < this.threads; t++) {
      const data: WorkerData = {
        buffers: this.buffers,
        n: this.n,
        stride: this.blockSize,
        thread: t,
        wasm: this.wasm,
      };
      const worker = new Worker(source, { eval: true, workerData: data });
      // A worker that fails to start never claims a task, so the main thread does its share;
      // swallowing the event keeps a broken worker from crashing the caller's process.
      worker.on("error", () => undefined);
      worker.unref();
      this.workers.push(worker);
    }
  }

  /** Stops the workers; the engine must not be used afterwards. */
  close(): void {
    if (this.workers.length === 0) return;
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) void w.terminate();
    this.workers = [];
  }
}
