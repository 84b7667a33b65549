// STRIP (Gao et al., ACSAC 2019): superimpose an input on random clean images and look at how
// sure the model stays. A clean input's class is washed out by the overlay, so the predictions
// spread (high entropy); a triggered input keeps pointing at the backdoor's target whatever it
// is mixed with (low entropy). The threshold is the entropy quantile of held-out clean inputs
// at the false-rejection rate the user accepts, so no poisoned example is needed to set it.
//
// Superimposition: the paper adds the two images with saturation (OpenCV addWeighted with
// weights 1, 1 on 8-bit pixels). Here images are in [0, 1] and the overlay is
// min(1, x + x_clean) by default ("add"); "average" is 0.5·x + 0.5·x_clean.
// Entropy is in bits (log₂), the mean over the N overlays.
import { AntidoteError } from "../errors.js";
import { quantile } from "../math/linalg.js";
import { Rng } from "../math/rng.js";

/** Class probabilities (n × classes, row-major) for n inputs laid out as the model takes them. */
export type BatchPredictor = (x: Float32Array, n: number) => Promise<Float32Array>;

/** Images flattened to `size` values each (NCHW for image models), in [0, 1]. */
export interface ImageSet {
  x: Float32Array;
  n: number;
}

export type Superimpose = "add" | "average";

export interface StripOptions {
  /** Clean overlays per input (default 32). */
  perturbations?: number;
  /** Accepted false-rejection rate on clean inputs: the threshold is this entropy quantile (default 0.01). */
  frr?: number;
  superimpose?: Superimpose;
  seed?: number;
  /** Overlaid images per predictor call (default 512). */
  batchSize?: number;
  /** Called with the number of inputs done. */
  onProgress?: (done: number, total: number) => void;
}

export interface StripCalibration {
  /** An input whose mean overlay entropy is below this is flagged. */
  threshold: number;
  /** The FRR asked for. */
  frr: number;
  /** Share of the clean calibration inputs below the threshold. */
  observedFrr: number;
  /** Mean overlay entropy (bits) of each clean calibration input. */
  cleanEntropies: Float64Array;
  perturbations: number;
  superimpose: Superimpose;
}

export const STRIP_DEFAULTS = {
  perturbations: 32,
  frr: 0.01,
  superimpose: "add" as Superimpose,
  seed: 0,
  batchSize: 512,
};

/** Mean prediction entropy (bits) of each input over `perturbations` overlays with `background` images. */
export async function stripEntropies(
  predict: BatchPredictor,
  inputs: ImageSet,
  background: ImageSet,
  options: StripOptions = {},
): Promise<Float64Array> {
  const o = { ...STRIP_DEFAULTS, ...definedOnly(options) };
  if (inputs.n === 0) return new Float64Array(0);
  if (background.n === 0)
    throw new AntidoteError("USAGE", "STRIP needs at least one clean image to overlay.");
  const size = inputs.x.length / inputs.n;
  if (!Number.isInteger(size) || background.x.length !== background.n * size)
    throw new AntidoteError(
      "USAGE",
      `STRIP: inputs have ${size} values each but the clean images have ${background.x.length / background.n}.`,
    );
  const N = o.perturbations;
  const perCall = Math.max(1, Math.floor(o.batchSize / N));
  const rng = new Rng(o.seed);
  const out = new Float64Array(inputs.n);
  const batch = new Float32Array(perCall * N * size);
  for (let start = 0; start < inputs.n; start += perCall) {
    const count = Math.min(perCall, inputs.n - start);
    for (let i = 0; i < count; i++) {
      const input = inputs.x.subarray((start + i) * size, (start + i + 1) * size);
      for (let j = 0; j < N; j++) {
        const b = rng.int(background.n);
        const overlay = background.x.subarray(b * size, (b + 1) * size);
        const at = (i * N + j) * size;
        if (o.superimpose === "add")
          for (let p = 0; p < size; p++)
            batch[at + p] = Math.min(1, (input[p] as number) + (overlay[p] as number));
        else
          for (let p = 0; p < size; p++)
            batch[at + p] = 0.5 * (input[p] as number) + 0.5 * (overlay[p] as number);
      }
    }
    const probs = await predict(batch.subarray(0, count * N * size), count * N);
    const K = probs.length / (count * N);
    for (let i = 0; i < count; i++) {
      let sum = 0;
      for (let j = 0; j < N; j++) sum += entropyBits(probs, (i * N + j) * K, K);
      out[start + i] = sum / N;
    }
    o.onProgress?.(start + count, inputs.n);
  }
  return out;
}

/** The entropy threshold at the chosen FRR, from clean held-out inputs. */
export async function calibrateStrip(
  predict: BatchPredictor,
  clean: ImageSet,
  background: ImageSet,
  options: StripOptions = {},
): Promise<StripCalibration> {
  const o = { ...STRIP_DEFAULTS, ...definedOnly(options) };
  if (!(o.frr > 0 && o.frr < 1)) throw new AntidoteError("USAGE", `--frr: must be in (0, 1), got ${o.frr}.`);
  if (clean.n < 2) throw new AntidoteError("USAGE", "STRIP calibration needs at least 2 clean inputs.");
  const cleanEntropies = await stripEntropies(predict, clean, background, o);
  const threshold = quantile(cleanEntropies, o.frr);
  return {
    threshold,
    frr: o.frr,
    observedFrr: flaggedShare(cleanEntropies, threshold),
    cleanEntropies,
    perturbations: o.perturbations,
    superimpose: o.superimpose,
  };
}

/** Which entropies fall below the threshold (1 = flagged as carrying a trigger). */
export function stripFlags(entropies: Float64Array, threshold: number): Uint8Array {
  return Uint8Array.from(entropies, (h) => (h < threshold ? 1 : 0));
}

/** Share of the entropies below the threshold. */
export function flaggedShare(entropies: Float64Array, threshold: number): number {
  if (entropies.length === 0) return 0;
  let n = 0;
  for (const h of entropies) if (h < threshold) n++;
  return n / entropies.length;
}

function entropyBits(probs: Float32Array, at: number, K: number): number {
  let h = 0;
  for (let k = 0; k < K; k++) {
    const p = probs[at + k] as number;
    if (p > 0) h -= p * Math.log2(p);
  }
  return h;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
