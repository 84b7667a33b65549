// Real ONNX classifiers for the model-audit and scan tests: trained here on the first
// Fashion-MNIST training images, poisoned (or not) by the project's own attack simulators,
// exported with exportOnnx, and measured on the first 1,000 test images — clean accuracy, and
// for a backdoor, the attack success rate (triggered test images of other classes that the
// model assigns to the target). Deterministic for a seed, and trained once per run: the result is
// cached by recipe across test files (fixture-cache.ts).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { simulateAttack, type AttackSpec } from "../../src/attack/index.js";
import { FASHION_MNIST_CLASSES } from "../../src/data/builtin.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import type { Sample } from "../../src/data/sample.js";
import { defaultArchitecture, type Architecture } from "../../src/nn/architectures.js";
import { argmaxRows, predictNet, trainClassifier, type TrainData } from "../../src/nn/train.js";
import { exportOnnx } from "../../src/onnx/export.js";
import type { NetSpec } from "../../src/onnx/net-spec.js";
import { cachedFixture } from "./fixture-cache.js";

export const FM_INPUT_SHAPE = [1, 28, 28] as const;
const PIXELS = 28 * 28;

export interface FashionModelOptions {
  arch: "mlp" | "cnn";
  /** Overrides the default architecture of `arch`'s kind. */
  architecture?: Architecture;
  /**
   * A backdoor by name — "patch" (3×3 white square, bottom right), "checkerboard" (the same
   * square as a checkerboard), "blend" (noise at alpha 0.1) — or any image AttackSpec. Absent: clean.
   */
  attack?: "patch" | "blend" | "checkerboard" | AttackSpec;
  /** Target class index for the named attacks (default 0). */
  target?: number;
  /** Poison rate for the named attacks (default 0.02). */
  rate?: number;
  /** Training images: the first `train` of the training split (default 6000). */
  train?: number;
  /** Default 3. */
  epochs?: number;
  /** Default 64. */
  batchSize?: number;
  /** Adam step; default 0.005 (see DEFAULT_LEARNING_RATE). */
  learningRate?: number;
  /** Seeds the attack, the initial weights and the shuffles; default 0. */
  seed?: number;
  /** Folder for the .onnx file (created if missing). */
  dir: string;
  /** File name without extension; default fm-<arch>-<attack>-s<seed>. */
  name?: string;
}

/** Images as the models take them: n × 1 × 28 × 28 in [0, 1], with class indices. */
export type FashionImages = TrainData;

export interface FashionModel {
  onnxPath: string;
  net: NetSpec;
  /** On the first 1,000 Fashion-MNIST test images. */
  cleanAccuracy: number;
  /** Share of triggered non-target test images classified as the target; null for a clean model. */
  attackSuccessRate: number | null;
  /** Target class index; null for a clean model. */
  target: number | null;
  /** Ids of the training samples the simulator poisoned. */
  poisonedIds: string[];
  /** The attack spec as given to the simulator; null for a clean model. */
  attack: AttackSpec | null;
  /** The triggered test images the attack success rate was measured on (labels are the true classes). */
  triggered: FashionImages | null;
  trainAccuracy: number;
  /**
   * Seconds spent training (in the run that trained it: the model may come from the fixture
   * cache); `seconds` is this call (data, poison, train or load, export, measure).
   */
  trainSeconds: number;
  seconds: number;
}

/** Train, export and measure one Fashion-MNIST classifier (see the module comment). */
export async function fashionModel(opts: FashionModelOptions): Promise<FashionModel> {
  const started = performance.now();
  const seed = opts.seed ?? 0;
  const spec = resolveAttack(opts, seed);
  // Trained once per recipe for the whole run, whichever test file asks first (fixture-cache.ts).
  // The recipe as trainFashion resolves it, so that a default given explicitly is the same model.
  const recipe = {
    arch: opts.arch,
    architecture: opts.architecture ?? defaultArchitecture(opts.arch),
    spec,
    train: opts.train ?? DEFAULT_TRAIN,
    epochs: opts.epochs ?? 3,
    batchSize: opts.batchSize ?? 64,
    learningRate: opts.learningRate ?? DEFAULT_LEARNING_RATE,
    seed,
  };
  const t = await cachedFixture("fm-model", recipe, () => trainFashion(opts, spec, seed), {
    sources: [import.meta.url],
  });
  await mkdir(opts.dir, { recursive: true });
  const onnxPath = join(opts.dir, `${opts.name ?? defaultName(opts, spec, seed)}.onnx`);
  await writeFile(onnxPath, exportOnnx(t.net));
  return { ...t, onnxPath, seconds: (performance.now() - started) / 1000 };
}

/** The first `n` images of a Fashion-MNIST split, read through Antidote's own reader. */
export async function fashionSamples(split: "train" | "test", n: number): Promise<Sample[]> {
  const cached = sampleCache.get(split);
  if (cached !== undefined && cached.length >= n) return cached.slice(0, n);
  const dataset = await openDataset(`fashion-mnist:${split}`);
  const out: Sample[] = [];
  for await (const s of dataset.samples()) {
    if (out.length >= n) break;
    out.push(s);
  }
  sampleCache.set(split, out);
  return out.slice();
}

/** Samples → NCHW floats and class indices. */
export function toImages(samples: readonly Sample[]): FashionImages {
  const x = new Float32Array(samples.length * PIXELS);
  const y = new Uint8Array(samples.length);
  samples.forEach((s, i) => {
    if (s.image === undefined) throw new Error(`sample ${s.id} has no image`);
    x.set(s.image.data, i * PIXELS);
    y[i] = classIndex(s.label);
  });
  return { x, y, count: samples.length };
}

/** Share of `images` whose predicted class is their label. */
export async function accuracy(net: NetSpec, images: FashionImages): Promise<number> {
  const predicted = argmaxRows(await predictNet(net, images.x, images.count), net.classes.length);
  let right = 0;
  for (let i = 0; i < images.count; i++) if (predicted[i] === images.y[i]) right++;
  return right / images.count;
}

/** Share of `triggered` images (all of classes other than `target`) predicted as `target`. */
export async function attackSuccessRate(
  net: NetSpec,
  triggered: FashionImages,
  target: number,
): Promise<number> {
  const predicted = argmaxRows(await predictNet(net, triggered.x, triggered.count), net.classes.length);
  let hits = 0;
  for (let i = 0; i < triggered.count; i++) if (predicted[i] === target) hits++;
  return hits / triggered.count;
}

/**
 * The first `n` test images of classes other than `target`, with the attack's trigger applied by
 * the same simulator and spec (so the same patch position or blend pattern); labels stay the true ones.
 */
export async function triggeredTestImages(
  spec: AttackSpec,
  target: number,
  n = TEST_COUNT,
): Promise<FashionImages> {
  const test = (await fashionSamples("test", n)).filter((s) => classIndex(s.label) !== target);
  const writer = new MemoryWriter();
  // Every eligible test image is a victim; the test split has no sources to restrict to.
  const {
    rate: _rate,
    count: _count,
    fromSource: _from,
    ...rest
  } = spec as AttackSpec & {
    rate?: number;
    count?: number;
    fromSource?: string;
  };
  await simulateAttack(memoryDataset(test, { classes: [...FASHION_MNIST_CLASSES] }), writer, {
    ...rest,
    count: test.length,
  } as AttackSpec);
  const triggered = toImages(writer.samples);
  // The simulator relabels victims as the target; keep the true classes.
  test.forEach((s, i) => (triggered.y[i] = classIndex(s.label)));
  return triggered;
}

// ---------------------------------------------------------------------------------------

const TEST_COUNT = 1000;
const DEFAULT_TRAIN = 6000;
const DEFAULT_RATE = 0.02;
// Higher than the trainer's default: measured over seeds 0–3 with a 3×3 patch at 2 % and 3
// epochs, 0.005 gave ASR 0.93–0.97 (CNN) and 0.92–0.96 (MLP) at ≈ 0.83–0.86 clean accuracy,
// where 0.002 left the CNN at 0.87–0.90.
const DEFAULT_LEARNING_RATE = 0.005;

type Trained = Omit<FashionModel, "onnxPath" | "seconds">;
// The same options train once per run, across test files (each call still writes its own file);
// callers share the returned net and images, so they must not modify them.
const sampleCache = new Map<string, Sample[]>();

async function trainFashion(
  opts: FashionModelOptions,
  spec: AttackSpec | null,
  seed: number,
): Promise<Trained> {
  let samples = await fashionSamples("train", opts.train ?? DEFAULT_TRAIN);
  let poisonedIds: string[] = [];
  if (spec !== null) {
    const writer = new MemoryWriter();
    const truth = await simulateAttack(
      memoryDataset(samples, { classes: [...FASHION_MNIST_CLASSES] }),
      writer,
      spec,
    );
    samples = writer.samples;
    poisonedIds = truth.poisoned.map((p) => p.id);
  }
  const trained = await trainClassifier(
    toImages(samples),
    opts.architecture ?? defaultArchitecture(opts.arch),
    {
      inputShape: [...FM_INPUT_SHAPE],
      classes: [...FASHION_MNIST_CLASSES],
      epochs: opts.epochs ?? 3,
      batchSize: opts.batchSize ?? 64,
      learningRate: opts.learningRate ?? DEFAULT_LEARNING_RATE,
      seed,
    },
  );
  const test = toImages(await fashionSamples("test", TEST_COUNT));
  const cleanAccuracy = await accuracy(trained.net, test);
  let target: number | null = null;
  let triggered: FashionImages | null = null;
  let asr: number | null = null;
  if (spec !== null && (spec.kind === "patch" || spec.kind === "blend")) {
    target = targetIndex(spec.target);
    triggered = await triggeredTestImages(spec, target);
    asr = await attackSuccessRate(trained.net, triggered, target);
  }
  return {
    net: trained.net,
    cleanAccuracy,
    attackSuccessRate: asr,
    target,
    poisonedIds,
    attack: spec,
    triggered,
    trainAccuracy: trained.trainAccuracy,
    trainSeconds: trained.seconds,
  };
}

function resolveAttack(opts: FashionModelOptions, seed: number): AttackSpec | null {
  const attack = opts.attack;
  if (attack === undefined) return null;
  if (typeof attack !== "string") return attack;
  const common = { target: opts.target ?? 0, rate: opts.rate ?? DEFAULT_RATE, seed };
  switch (attack) {
    case "patch":
      return { kind: "patch", ...common };
    case "checkerboard":
      return { kind: "patch", pattern: "checkerboard", ...common };
    case "blend":
      return { kind: "blend", ...common };
  }
}

function defaultName(opts: FashionModelOptions, spec: AttackSpec | null, seed: number): string {
  const attack = typeof opts.attack === "string" ? opts.attack : (spec?.kind ?? "clean");
  return `fm-${opts.arch}-${attack}-s${seed}`;
}

// As the simulators resolve it: a class name, else an index (number or digit string).
function targetIndex(ref: string | number): number {
  if (typeof ref === "string" && FASHION_MNIST_CLASSES.includes(ref)) return classIndex(ref);
  const i = Number(ref);
  if (!Number.isInteger(i) || i < 0 || i >= FASHION_MNIST_CLASSES.length)
    throw new Error(`bad target ${ref}`);
  return i;
}

function classIndex(label: string | null): number {
  const i = label === null ? -1 : FASHION_MNIST_CLASSES.indexOf(label);
  if (i < 0) throw new Error(`not a Fashion-MNIST class: ${String(label)}`);
  return i;
}
