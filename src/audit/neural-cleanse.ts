// Neural Cleanse (Wang et al., IEEE S&P 2019): for each label, find the smallest trigger that
// turns clean inputs of the other labels into that label. A trigger is a mask m (H×W, shared
// by the channels) and a pattern p (C×H×W), applied as x' = (1 − m)⊙x + m⊙p; it is optimised
// for cross-entropy towards the label plus λ·‖m‖₁. A backdoor is a shortcut the model learned,
// so its label needs a far smaller mask than the others, and the MAD anomaly index of the mask
// norms says how far.
//
// Every label is optimised at once, in one batched forward pass (labels × batch images): on the
// single-threaded wasm backend one large batch is cheaper than many small ones. The gradients
// of different labels are independent (disjoint parameters, a loss that is a sum over labels),
// and Adam is element-wise, so this is exactly K separate optimisations run side by side.
import type * as tfTypes from "@tensorflow/tfjs";
import { AntidoteError } from "../errors.js";
import { median, medianAbsoluteDeviation } from "../math/linalg.js";
import { Rng } from "../math/rng.js";
import { loadTf, type Tf } from "../nn/tf.js";
import type { DifferentiableClassifier } from "./types.js";

/** Clean images, NCHW in [0, 1]: `n` rows of C·H·W values. */
export interface CleanImages {
  x: Float32Array;
  n: number;
  /** Class index per image, −1 when unknown. Without labels, the model's predictions stand in. */
  labels?: Int32Array | null;
}

export interface NeuralCleanseProgress {
  /** Optimisation steps taken so far (of `maxSteps`). */
  step: number;
  maxSteps: number;
  /** Labels whose trigger is final. */
  labelsDone: number;
  labels: number;
}

export interface NeuralCleanseOptions {
  /** [C, H, W] of the images; default: the classifier's input shape when it has three dims. */
  imageShape?: readonly number[];
  /** Labels to reverse-engineer (default: all). */
  labels?: readonly number[];
  /** Most optimisation steps per label (default 500). */
  maxSteps?: number;
  /** Images per label per step (default 12; one step of 10 labels × 12 images through a small CNN costs ≈ 0.12 s on wasm). */
  batchSize?: number;
  /** Adam step size on the mask and pattern logits (default 0.1). */
  learningRate?: number;
  /** λ once the attack first succeeds (default 1e-3); it starts at 0, as in the paper's code. */
  initialLambda?: number;
  /** λ is multiplied by this after `patience` epochs at the ASR threshold, divided by its 1.5th power after `patience` epochs below (default 1.5). */
  lambdaFactor?: number;
  /**
   * Attack success rate a trigger must reach on the optimisation batches to count (default 0.9).
   * The paper uses 0.99, which presumes a near-perfect backdoor. On Fashion-MNIST models whose
   * real trigger flips 83–98% of images, the smallest mask reaching 0.99 must add natural
   * features of the label, and the backdoor's mask came out 2–6× larger than at 0.9; measured on
   * bench/audit.ts, 0.9 also separates backdoored from clean labels better than 0.95.
   */
  asrThreshold?: number;
  /** Steps per "epoch": ASR is averaged and λ adjusted once per epoch (default 10). */
  epochSteps?: number;
  /** Epochs above/below the threshold before λ moves (default 2). */
  patience?: number;
  /** Epochs without a 1% smaller best mask, after λ has moved both ways, before a label stops (default 5). */
  earlyStopPatience?: number;
  /** Share of the images kept out of the optimisation, to measure each trigger's ASR (default 0.25). */
  heldOutFraction?: number;
  seed?: number;
  onProgress?: (p: NeuralCleanseProgress) => void;
}

/** One label's reversed trigger. */
export interface ReversedTrigger {
  label: number;
  /** ‖m‖₁ of the smallest mask that reached the ASR threshold (the last mask when none did). */
  l1: number;
  /** H×W in [0, 1]. */
  mask: Float32Array;
  /** C×H×W in [0, 1]. */
  pattern: Float32Array;
  /** Whether any epoch reached `asrThreshold` on the optimisation images. */
  reached: boolean;
  /** Share of held-out clean images of other labels that the trigger turns into `label`. */
  asr: number;
  /** Held-out images the ASR was measured on. */
  asrSamples: number;
  steps: number;
  /** λ when the label stopped. */
  lambda: number;
}

export interface MadAnomaly {
  median: number;
  /** Median absolute deviation times 1.4826 (consistent with σ for normal data). */
  mad: number;
  /** Per value: (median − value) / mad — positive below the median; ∞ when mad is 0 and value < median. */
  index: Float64Array;
}

export interface NeuralCleanseResult {
  /** [C, H, W]. */
  imageShape: [number, number, number];
  triggers: ReversedTrigger[];
  anomaly: MadAnomaly;
  /** Images used to optimise, and held out for the ASR. */
  samples: { optimisation: number; heldOut: number };
  /** Where "other label" came from: the images' labels, or the model's own predictions. */
  labelSource: "dataset" | "model";
  options: Required<Omit<NeuralCleanseOptions, "onProgress" | "labels" | "imageShape">>;
  seconds: number;
}

export const MAD_CONSISTENCY = 1.4826;
/** Wang et al.'s cut-off: an anomaly index above 2 flags a label (≈ 95% for a normal distribution). */
export const MAD_THRESHOLD = 2;

/** The MAD anomaly index of Wang et al. 2019 over mask norms (or any values). */
export function madAnomalyIndex(values: ArrayLike<number>): MadAnomaly {
  const med = median(values);
  const mad = MAD_CONSISTENCY * medianAbsoluteDeviation(values, med);
  const index = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const below = med - (values[i] as number);
    index[i] = mad > 0 ? below / mad : below > 0 ? Infinity : 0;
  }
  return { median: med, mad, index };
}

const DEFAULTS = {
  maxSteps: 500,
  batchSize: 12,
  learningRate: 0.1,
  initialLambda: 1e-3,
  lambdaFactor: 1.5,
  asrThreshold: 0.9,
  epochSteps: 10,
  patience: 2,
  earlyStopPatience: 5,
  heldOutFraction: 0.25,
  seed: 0,
};

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;
const EVAL_BATCH = 256;

/** Reverse-engineer a trigger per label and score the labels by the MAD anomaly index. */
export async function neuralCleanse(
  model: DifferentiableClassifier,
  images: CleanImages,
  options: NeuralCleanseOptions = {},
): Promise<NeuralCleanseResult> {
  const started = performance.now();
  const tf = await loadTf();
  const o = { ...DEFAULTS, ...definedOnly(options) };
  checkOptions(o);
  const shape = imageShapeOf(model, options.imageShape);
  const [C, H, W] = shape;
  const size = C * H * W;
  if (images.n < 2 || images.x.length !== images.n * size)
    throw new AntidoteError(
      "USAGE",
      `neural cleanse: expected at least 2 images of ${C}×${H}×${W} (${images.n * size} values), got ${images.x.length} values for ${images.n}.`,
    );
  const K = model.numClasses;
  const labels = [...(options.labels ?? Array.from({ length: K }, (_, k) => k))];
  for (const k of labels)
    if (!Number.isInteger(k) || k < 0 || k >= K)
      throw new AntidoteError("USAGE", `neural cleanse: label ${k} is not one of the model's ${K} classes.`);

  const forward = inputAdapter(tf, model, shape);
  const given = images.labels ?? null;
  const labelSource = given !== null && given.some((y) => y >= 0) ? "dataset" : "model";
  const classOf =
    labelSource === "dataset" ? (given as Int32Array) : await predictLabels(tf, forward, images, shape);

  // A seeded split: optimise on one part, measure each trigger's ASR on the other.
  const rng = new Rng(o.seed);
  const order = rng.shuffle(Array.from({ length: images.n }, (_, i) => i));
  const heldOutCount = Math.max(1, Math.min(images.n - 1, Math.round(images.n * o.heldOutFraction)));
  const heldOut = order.slice(0, heldOutCount).sort((a, b) => a - b);
  const optimisation = order.slice(heldOutCount).sort((a, b) => a - b);

  const X = tf.tensor4d(gatherRows(images.x, optimisation, size), [optimisation.length, C, H, W]);
  const optClass = optimisation.map((i) => classOf[i] as number);
  // Images of other labels, per label (an image of the label itself proves nothing).
  const pools = new Map<number, Int32Array>();
  for (const k of labels) {
    const pool = Int32Array.from(optClass.flatMap((y, j) => (y === k ? [] : [j])));
    pools.set(k, pool.length > 0 ? pool : Int32Array.from(optClass.keys()));
  }

  const states = labels.map((label) => newLabelState(label, new Rng(`${o.seed}:batches:${label}`)));
  const params = initialParameters(tf, states, o.seed, shape);
  let active = states.slice();
  try {
    for (let step = 1; step <= o.maxSteps && active.length > 0; step++) {
      const epochStart = (step - 1) % o.epochSteps === 0;
      // The masks as the epoch begins: the largest of the epoch, so the epoch's average success
      // rate is one they reach — the candidate kept if the epoch succeeds.
      const start = epochStart ? snapshotAll(tf, params) : null;
      const { asr, l1, grads } = gradientStep(tf, forward, X, params, active, pools, o.batchSize, shape, K);
      const last = step === o.maxSteps;
      active.forEach((s, g) => {
        s.steps = step;
        s.asrSum += asr[g] as number;
        if (start !== null)
          s.candidate = {
            ...(start[g] as { mask: Float32Array; pattern: Float32Array }),
            l1: l1[g] as number,
          };
        if (step % o.epochSteps === 0 || last) {
          const epochAsr = s.asrSum / (step % o.epochSteps === 0 ? o.epochSteps : step % o.epochSteps);
          s.asrSum = 0;
          const c = s.candidate as { mask: Float32Array; pattern: Float32Array; l1: number };
          endEpoch(s, epochAsr, c.l1, o, () => c);
        }
        if (last && s.mask === null) Object.assign(s, snapshot(tf, params, g), { l1: l1[g] as number });
        if (last) s.done = true;
      });
      adamUpdate(tf, params, grads, step, o.learningRate);
      const stillActive = active.map((s, g) => (s.done ? -1 : g)).filter((g) => g >= 0);
      if (stillActive.length < active.length) {
        keepRows(tf, params, stillActive);
        active = stillActive.map((g) => active[g] as LabelState);
      }
      o.onProgress?.({
        step,
        maxSteps: o.maxSteps,
        labelsDone: states.length - active.length,
        labels: states.length,
      });
    }
  } finally {
    disposeParameters(params);
    X.dispose();
  }

  const heldClass = heldOut.map((i) => classOf[i] as number);
  const heldX = gatherRows(images.x, heldOut, size);
  const triggers: ReversedTrigger[] = [];
  for (const s of states) {
    const rows = heldClass.flatMap((y, j) => (y === s.label ? [] : [j]));
    const mask = s.mask ?? new Float32Array(H * W);
    const pattern = s.pattern ?? new Float32Array(size);
    const hits = await countHits(tf, forward, heldX, rows, mask, pattern, shape, s.label);
    triggers.push({
      label: s.label,
      l1: s.l1,
      mask,
      pattern,
      reached: s.reached,
      asr: rows.length > 0 ? hits / rows.length : 0,
      asrSamples: rows.length,
      steps: s.steps,
      lambda: s.lambda,
    });
  }
  const { onProgress: _p, labels: _l, imageShape: _s, ...used } = o as typeof o & NeuralCleanseOptions;
  return {
    imageShape: shape,
    triggers,
    anomaly: madAnomalyIndex(triggers.map((tr) => tr.l1)),
    samples: { optimisation: optimisation.length, heldOut: heldOut.length },
    labelSource,
    options: used,
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// Per-label state and the paper's λ schedule.

interface LabelState {
  label: number;
  /** The mask and pattern at the start of the current epoch, with their norm. */
  candidate: { mask: Float32Array; pattern: Float32Array; l1: number } | null;
  /** The label's own batch sampler. */
  rng: Rng;
  lambda: number;
  steps: number;
  asrSum: number;
  /** Smallest ‖m‖₁ at the ASR threshold so far (∞ before the first). */
  l1: number;
  mask: Float32Array | null;
  pattern: Float32Array | null;
  reached: boolean;
  done: boolean;
  setCounter: number;
  upCounter: number;
  downCounter: number;
  movedUp: boolean;
  movedDown: boolean;
  earlyStopCounter: number;
  earlyStopBest: number;
}

function newLabelState(label: number, rng: Rng): LabelState {
  return {
    label,
    candidate: null,
    rng,
    lambda: 0,
    steps: 0,
    asrSum: 0,
    l1: Infinity,
    mask: null,
    pattern: null,
    reached: false,
    done: false,
    setCounter: 0,
    upCounter: 0,
    downCounter: 0,
    movedUp: false,
    movedDown: false,
    earlyStopCounter: 0,
    earlyStopBest: Infinity,
  };
}

// One epoch's bookkeeping, after Wang et al.'s reference implementation (visualizer.py): keep
// the smallest mask that reaches the threshold; λ starts at 0 and is set once the attack
// succeeds, then rises ×f while it keeps succeeding and falls ÷f^1.5 while it does not; stop
// once λ has moved both ways and the best mask has not shrunk by 1% for a while.
function endEpoch(
  s: LabelState,
  asr: number,
  l1: number,
  o: typeof DEFAULTS,
  snap: () => { mask: Float32Array; pattern: Float32Array },
): void {
  const success = asr >= o.asrThreshold;
  if (success && l1 < s.l1) {
    Object.assign(s, snap(), { l1, reached: true });
  }
  if (s.lambda === 0 && success) {
    if (++s.setCounter >= o.patience) {
      s.lambda = o.initialLambda;
      s.upCounter = s.downCounter = 0;
      s.movedUp = s.movedDown = false;
    }
  } else s.setCounter = 0;
  if (success) {
    s.upCounter++;
    s.downCounter = 0;
  } else {
    s.upCounter = 0;
    s.downCounter++;
  }
  if (s.upCounter >= o.patience) {
    s.upCounter = 0;
    s.lambda *= o.lambdaFactor;
    s.movedUp = true;
  } else if (s.downCounter >= o.patience) {
    s.downCounter = 0;
    s.lambda /= o.lambdaFactor ** 1.5;
    s.movedDown = true;
  }
  if (s.movedUp && s.movedDown) {
    s.earlyStopCounter = s.l1 >= 0.99 * s.earlyStopBest ? s.earlyStopCounter + 1 : 0;
    s.earlyStopBest = Math.min(s.l1, s.earlyStopBest);
    if (s.earlyStopCounter >= o.earlyStopPatience) s.done = true;
  }
}

// ---------------------------------------------------------------------------------------------
// The optimisation on tensors: parameters of the active labels stacked on axis 0, Adam by hand
// so that a finished label's rows (parameters and moments) can simply be dropped.

interface Parameters {
  /** [G, H, W] mask logits, [G, C, H, W] pattern logits. */
  theta: [tfTypes.Tensor, tfTypes.Tensor];
  first: [tfTypes.Tensor, tfTypes.Tensor];
  second: [tfTypes.Tensor, tfTypes.Tensor];
}

function initialParameters(
  tf: Tf,
  states: readonly LabelState[],
  seed: number,
  [C, H, W]: [number, number, number],
): Parameters {
  // Masks start between sigmoid(−2.2) ≈ 0.1 and 0.5 — visible, so the attack succeeds early and
  // the λ schedule then shrinks them; patterns start near grey. Each label draws from its own
  // generator, so its result does not depend on which other labels are optimised beside it.
  const G = states.length;
  const mask = new Float32Array(G * H * W);
  const pattern = new Float32Array(G * C * H * W);
  states.forEach((s, g) => {
    const init = new Rng(`${seed}:init:${s.label}`);
    mask.set(randomArray(init, H * W, -2.2, 0), g * H * W);
    pattern.set(randomArray(init, C * H * W, -1, 1), g * C * H * W);
  });
  const m = tf.tensor3d(mask, [G, H, W]);
  const p = tf.tensor4d(pattern, [G, C, H, W]);
  return {
    theta: [m, p],
    first: [tf.zerosLike(m), tf.zerosLike(p)],
    second: [tf.zerosLike(m), tf.zerosLike(p)],
  };
}

function disposeParameters(p: Parameters): void {
  for (const t of [...p.theta, ...p.first, ...p.second]) t.dispose();
}

function gradientStep(
  tf: Tf,
  forward: (x: tfTypes.Tensor) => tfTypes.Tensor2D,
  X: tfTypes.Tensor4D,
  params: Parameters,
  active: readonly LabelState[],
  pools: ReadonlyMap<number, Int32Array>,
  B: number,
  [C, H, W]: [number, number, number],
  K: number,
): { asr: Float32Array; l1: Float32Array; grads: [tfTypes.Tensor, tfTypes.Tensor] } {
  const G = active.length;
  const index = new Int32Array(G * B);
  const target = new Int32Array(G * B);
  active.forEach((s, g) => {
    const pool = pools.get(s.label) as Int32Array;
    for (let b = 0; b < B; b++) {
      index[g * B + b] = pool[s.rng.int(pool.length)] as number;
      target[g * B + b] = s.label;
    }
  });
  const lambdas = Float32Array.from(active, (s) => s.lambda);
  const side: tfTypes.Tensor[] = [];
  const grads = tf.tidy(() => {
    const targets = tf.tensor1d(target, "int32");
    const oneHot = tf.oneHot(targets, K).toFloat();
    const lam = tf.tensor1d(lambdas);
    const batch = tf.gather(X, tf.tensor1d(index, "int32")).reshape([G, B, C, H, W]);
    const loss = (tm: tfTypes.Tensor, tp: tfTypes.Tensor): tfTypes.Scalar => {
      const mask = tf.sigmoid(tm);
      const m = mask.reshape([G, 1, 1, H, W]);
      const p = tf.sigmoid(tp).reshape([G, 1, C, H, W]);
      const stamped = batch.add(m.mul(p.sub(batch))).reshape([G * B, C, H, W]);
      const logits = forward(stamped);
      const ce = tf.logSumExp(logits, 1).sub(logits.mul(oneHot).sum(1)).reshape([G, B]).mean(1);
      const norms = mask.sum([1, 2]);
      side.push(tf.keep(tf.argMax(logits, 1).equal(targets).toFloat().reshape([G, B]).mean(1)));
      side.push(tf.keep(norms));
      return ce.add(lam.mul(norms)).sum<tfTypes.Scalar>();
    };
    return tf.grads(loss)(params.theta) as [tfTypes.Tensor, tfTypes.Tensor];
  });
  const [asrT, l1T] = side as [tfTypes.Tensor, tfTypes.Tensor];
  const asr = asrT.dataSync() as Float32Array;
  const l1 = l1T.dataSync() as Float32Array;
  asrT.dispose();
  l1T.dispose();
  return { asr, l1, grads };
}

function adamUpdate(
  tf: Tf,
  p: Parameters,
  grads: [tfTypes.Tensor, tfTypes.Tensor],
  t: number,
  lr: number,
): void {
  const c1 = 1 - ADAM_BETA1 ** t;
  const c2 = 1 - ADAM_BETA2 ** t;
  for (let i = 0; i < 2; i++) {
    const g = grads[i] as tfTypes.Tensor;
    const next: tfTypes.Tensor[] = tf.tidy(() => {
      const m = (p.first[i] as tfTypes.Tensor).mul(ADAM_BETA1).add(g.mul(1 - ADAM_BETA1));
      const v = (p.second[i] as tfTypes.Tensor).mul(ADAM_BETA2).add(g.square().mul(1 - ADAM_BETA2));
      const update = m.div(c1).div(v.div(c2).sqrt().add(ADAM_EPSILON)).mul(lr);
      return [(p.theta[i] as tfTypes.Tensor).sub(update), m, v];
    });
    for (const old of [p.theta[i], p.first[i], p.second[i], g]) (old as tfTypes.Tensor).dispose();
    [p.theta[i], p.first[i], p.second[i]] = next as [tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor];
  }
}

function keepRows(tf: Tf, p: Parameters, rows: number[]): void {
  for (const group of [p.theta, p.first, p.second])
    for (let i = 0; i < 2; i++) {
      const old = group[i] as tfTypes.Tensor;
      group[i] = rows.length > 0 ? tf.tidy(() => tf.gather(old, tf.tensor1d(rows, "int32"))) : old.clone();
      old.dispose();
    }
}

function snapshotAll(tf: Tf, p: Parameters): { mask: Float32Array; pattern: Float32Array }[] {
  const [tm, tp] = p.theta;
  const G = tm.shape[0];
  const masks = tf.tidy(() => tf.sigmoid(tm).dataSync() as Float32Array);
  const patterns = tf.tidy(() => tf.sigmoid(tp).dataSync() as Float32Array);
  const m = masks.length / G;
  const q = patterns.length / G;
  return Array.from({ length: G }, (_, g) => ({
    mask: masks.slice(g * m, (g + 1) * m),
    pattern: patterns.slice(g * q, (g + 1) * q),
  }));
}

function snapshot(tf: Tf, p: Parameters, g: number): { mask: Float32Array; pattern: Float32Array } {
  return tf.tidy(() => {
    const [tm, tp] = p.theta;
    const mask = tf.sigmoid(tf.gather(tm, [g])).dataSync() as Float32Array;
    const pattern = tf.sigmoid(tf.gather(tp, [g])).dataSync() as Float32Array;
    return { mask: Float32Array.from(mask), pattern: Float32Array.from(pattern) };
  });
}

// ---------------------------------------------------------------------------------------------
// Evaluation helpers.

/** How many of `rows` of `x` the trigger (mask, pattern) turns into `label`. */
async function countHits(
  tf: Tf,
  forward: (x: tfTypes.Tensor) => tfTypes.Tensor2D,
  x: Float32Array,
  rows: readonly number[],
  mask: Float32Array,
  pattern: Float32Array,
  [C, H, W]: [number, number, number],
  label: number,
): Promise<number> {
  const size = C * H * W;
  const m = tf.tensor4d(mask, [1, 1, H, W]);
  const p = tf.tensor4d(pattern, [1, C, H, W]);
  let hits = 0;
  try {
    for (let at = 0; at < rows.length; at += EVAL_BATCH) {
      const chunk = rows.slice(at, at + EVAL_BATCH);
      const predicted = tf.tidy(() => {
        const batch = tf.tensor4d(gatherRows(x, chunk, size), [chunk.length, C, H, W]);
        return tf.argMax(forward(batch.add(m.mul(p.sub(batch)))), 1);
      });
      const data = await predicted.data();
      predicted.dispose();
      for (const y of data) if (y === label) hits++;
    }
  } finally {
    m.dispose();
    p.dispose();
  }
  return hits;
}

async function predictLabels(
  tf: Tf,
  forward: (x: tfTypes.Tensor) => tfTypes.Tensor2D,
  images: CleanImages,
  [C, H, W]: [number, number, number],
): Promise<Int32Array> {
  const size = C * H * W;
  const out = new Int32Array(images.n);
  for (let at = 0; at < images.n; at += EVAL_BATCH) {
    const count = Math.min(EVAL_BATCH, images.n - at);
    const predicted = tf.tidy(() =>
      tf.argMax(forward(tf.tensor4d(images.x.subarray(at * size, (at + count) * size), [count, C, H, W])), 1),
    );
    out.set(await predicted.data(), at);
    predicted.dispose();
  }
  return out;
}

type InputLayout = "chw" | "hwc" | "hw" | "flat";

/**
 * How a model takes an image of shape [C, H, W]: as is, channels last ([H, W, C], as models
 * exported from TensorFlow often do), without the channel axis ([H, W], one channel), or flat
 * ([C·H·W], in C, H, W order); null when none of these fits.
 */
function layoutOf(own: readonly number[], [C, H, W]: [number, number, number]): InputLayout | null {
  const is = (dims: number[]) => own.length === dims.length && dims.every((d, i) => own[i] === d);
  if (is([C, H, W])) return "chw";
  if (is([H, W, C])) return "hwc";
  if (C === 1 && is([H, W])) return "hw";
  if (is([C * H * W])) return "flat";
  return null;
}

/** The classifier on NCHW images: each batch is laid out as the model's own input first. */
export function inputAdapter(
  tf: Tf,
  model: DifferentiableClassifier,
  shape: [number, number, number],
): (x: tfTypes.Tensor) => tfTypes.Tensor2D {
  const [C, H, W] = shape;
  switch (layoutOf(model.inputShape, shape)) {
    case "hwc":
      return (x) => model.logits(tf.transpose(x, [0, 2, 3, 1]));
    case "hw":
      return (x) => model.logits(tf.reshape(x, [-1, H, W]));
    case "flat":
      return (x) => model.logits(tf.reshape(x, [-1, C * H * W]));
    default:
      return (x) => model.logits(x);
  }
}

/** [C, H, W] the triggers are optimised in: `given` (the images' own shape), else the model's input when it is [C, H, W]. */
export function imageShapeOf(
  model: DifferentiableClassifier,
  given?: readonly number[],
): [number, number, number] {
  const own = model.inputShape;
  const shape = given ?? (own.length === 3 ? own : undefined);
  if (shape?.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0))
    throw new AntidoteError(
      "MODEL_FORMAT",
      `the model's input [${own.join(", ")}] is not an image [C, H, W]; give the image shape (--input-shape C,H,W).`,
    );
  const [C, H, W] = shape as [number, number, number];
  if (layoutOf(own, [C, H, W]) === null)
    throw new AntidoteError(
      "MODEL_FORMAT",
      `the model takes [${own.join(", ")}] (batch excluded), which does not hold a ${C}×${H}×${W} image ` +
        `(as [C, H, W], [H, W, C], [H, W] or flat [C·H·W]).`,
    );
  return [C, H, W];
}

function checkOptions(o: typeof DEFAULTS): void {
  const bad = (name: string, why: string) => new AntidoteError("USAGE", `neural cleanse: ${name} ${why}.`);
  for (const name of ["maxSteps", "batchSize", "epochSteps", "patience", "earlyStopPatience"] as const)
    if (!Number.isInteger(o[name]) || o[name] < 1)
      throw bad(name, `must be a whole number ≥ 1, got ${o[name]}`);
  for (const name of ["learningRate", "initialLambda"] as const)
    if (!(o[name] > 0)) throw bad(name, `must be positive, got ${o[name]}`);
  if (!(o.lambdaFactor > 1)) throw bad("lambdaFactor", `must be greater than 1, got ${o.lambdaFactor}`);
  if (!(o.asrThreshold > 0 && o.asrThreshold <= 1))
    throw bad("asrThreshold", `must be in (0, 1], got ${o.asrThreshold}`);
  if (!(o.heldOutFraction > 0 && o.heldOutFraction < 1))
    throw bad("heldOutFraction", `must be in (0, 1), got ${o.heldOutFraction}`);
}

function gatherRows(x: Float32Array, rows: readonly number[], size: number): Float32Array {
  const out = new Float32Array(rows.length * size);
  rows.forEach((r, j) => out.set(x.subarray(r * size, (r + 1) * size), j * size));
  return out;
}

function randomArray(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng.next();
  return out;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
