// Deep Partition Aggregation (Levine & Feizi, ICLR 2021), step 2: the K models trained on
// the K partitions vote; the plurality is the prediction, and the vote margin certifies it.
//
// Inserting or deleting one training sample changes one partition (dpa-partition.ts), so
// it can change at most one model, which can move one vote from the top class to another:
// the gap between the top class and any rival shrinks by at most 2 per changed sample.
// Ties go to the smaller class index, so a rival with a smaller index than the top class
// wins a tie and needs one vote less. Hence the certified radius
//
//   ρ = ⌊(n_top − max_{c≠top} (n_c + 1[c < top])) / 2⌋
//
// in inserted-or-deleted training samples: any poisoning of at most ρ insertions and
// deletions leaves the prediction unchanged. A substitution (delete one, insert another)
// counts as 2, unless both have the same content (a relabelling): then they share a
// partition and it counts as 1. The certificate assumes each model is a deterministic
// function of its partition's contents (fixed seed, order-independent training).
import { AntidoteError } from "../errors.js";

export interface Vote {
  /** Plurality class; ties broken towards the smaller class index. */
  prediction: number;
  /** Certified radius ρ in inserted-or-deleted training samples (≥ 0). */
  radius: number;
}

/** Prediction and certified radius from per-class vote counts (index = class). */
export function dpaVote(votes: ArrayLike<number>): Vote {
  if (votes.length < 2)
    throw new AntidoteError("USAGE", `DPA needs at least 2 classes; got ${votes.length}.`);
  let top = 0;
  for (let c = 1; c < votes.length; c++) if ((votes[c] ?? 0) > (votes[top] ?? 0)) top = c;
  const nTop = votes[top] ?? 0;
  let rival = -Infinity;
  for (let c = 0; c < votes.length; c++) {
    if (c === top) continue;
    const need = (votes[c] ?? 0) + (c < top ? 1 : 0);
    if (need > rival) rival = need;
  }
  return { prediction: top, radius: Math.floor((nTop - rival) / 2) };
}

/** Per-class vote counts of one point's K predictions (class indices in [0, numClasses)). */
export function countVotes(predictions: ArrayLike<number>, numClasses: number): Uint32Array {
  const votes = new Uint32Array(numClasses);
  for (let m = 0; m < predictions.length; m++) {
    const c = predictions[m] ?? -1;
    if (!Number.isInteger(c) || c < 0 || c >= numClasses)
      throw new AntidoteError(
        "USAGE",
        `model ${m} predicts ${c}, outside the class range 0–${numClasses - 1}.`,
      );
    votes[c] = (votes[c] ?? 0) + 1;
  }
  return votes;
}

export interface CertifiedPoint {
  id: string;
  /** True class index. */
  label: number;
  prediction: number;
  /** Vote count per class index. */
  votes: number[];
  radius: number;
  correct: boolean;
}

export interface CurvePoint {
  /** r: number of inserted-or-deleted training samples. */
  radius: number;
  /** Share of all points predicted correctly with ρ ≥ r. */
  certifiedAccuracy: number;
  /** Number of such points. */
  certified: number;
}

export interface Certification {
  k: number;
  classes: string[];
  points: number;
  /** Accuracy of the DPA vote (= certified accuracy at r = 0). */
  accuracy: number;
  /** Accuracy of each of the K models on its own: mean, min, max. */
  modelAccuracy: { mean: number; min: number; max: number };
  /**
   * Median certified robustness as in the paper: the largest r at which at least half of
   * the points are certified correct; null when fewer than half are correct even at r = 0.
   */
  medianRadius: number | null;
  /** r = 0 … ⌊K/2⌋ (the largest radius any vote can reach). */
  curve: CurvePoint[];
}

/**
 * Certifies points one at a time, keeping only a histogram for the curve, so a vote table
 * of any length streams through. `add` returns the point's certificate.
 */
export class DpaCertifier {
  private readonly correctAtRadius: Float64Array;
  private readonly modelCorrect: Float64Array;
  private count = 0;

  constructor(
    readonly k: number,
    readonly classes: string[],
  ) {
    if (!Number.isInteger(k) || k < 1)
      throw new AntidoteError("USAGE", `K must be a positive integer; got ${k}.`);
    if (classes.length < 2)
      throw new AntidoteError("USAGE", `DPA needs at least 2 classes; got ${classes.length}.`);
    this.correctAtRadius = new Float64Array(Math.floor(k / 2) + 1);
    this.modelCorrect = new Float64Array(k);
  }

  add(id: string, label: number, predictions: ArrayLike<number>): CertifiedPoint {
    if (predictions.length !== this.k)
      throw new AntidoteError(
        "USAGE",
        `point ${id}: ${predictions.length} predictions, expected K = ${this.k}.`,
      );
    if (!Number.isInteger(label) || label < 0 || label >= this.classes.length)
      throw new AntidoteError(
        "USAGE",
        `point ${id}: label ${label} is outside 0–${this.classes.length - 1}.`,
      );
    const votes = countVotes(predictions, this.classes.length);
    const { prediction, radius } = dpaVote(votes);
    const correct = prediction === label;
    if (correct) this.correctAtRadius[radius] = (this.correctAtRadius[radius] ?? 0) + 1;
    for (let m = 0; m < this.k; m++)
      if (predictions[m] === label) this.modelCorrect[m] = (this.modelCorrect[m] ?? 0) + 1;
    this.count++;
    return { id, label, prediction, votes: Array.from(votes), radius, correct };
  }

  result(): Certification {
    const n = this.count;
    const share = (x: number) => (n === 0 ? 0 : x / n);
    const curve: CurvePoint[] = [];
    let certified = 0;
    for (let r = this.correctAtRadius.length - 1; r >= 0; r--) {
      certified += this.correctAtRadius[r] ?? 0;
      curve.push({ radius: r, certifiedAccuracy: share(certified), certified });
    }
    curve.reverse();
    const atLeastHalf = curve.filter((p) => n > 0 && 2 * p.certified >= n);
    const perModel = Array.from(this.modelCorrect, share);
    return {
      k: this.k,
      classes: this.classes,
      points: n,
      accuracy: curve[0]?.certifiedAccuracy ?? 0,
      modelAccuracy: {
        mean: perModel.reduce((a, b) => a + b, 0) / Math.max(1, perModel.length),
        min: Math.min(...perModel),
        max: Math.max(...perModel),
      },
      medianRadius: atLeastHalf.at(-1)?.radius ?? null,
      curve,
    };
  }
}

/** Certify a whole vote table held in memory: rows of K predicted class indices and the true labels. */
export function certify(
  predictions: readonly ArrayLike<number>[],
  labels: ArrayLike<number>,
  classes: string[],
  ids?: readonly string[],
): { certification: Certification; points: CertifiedPoint[] } {
  if (predictions.length !== labels.length)
    throw new AntidoteError(
      "USAGE",
      `${predictions.length} rows of predictions but ${labels.length} labels.`,
    );
  const k = predictions[0]?.length ?? 0;
  const certifier = new DpaCertifier(k, classes);
  const points = predictions.map((row, i) => certifier.add(ids?.[i] ?? String(i), labels[i] ?? -1, row));
  return { certification: certifier.result(), points };
}

/** A few radii worth printing: every r up to where the curve reaches 0, or ~10 spread over it. */
export function radiiToShow(c: Certification, at = 10): number[] {
  const last = c.curve.findIndex((p) => p.certified === 0);
  const end = last === -1 ? c.curve.length - 1 : last;
  if (end + 1 <= at) return Array.from({ length: end + 1 }, (_, r) => r);
  const radii = new Set<number>();
  for (let i = 0; i < at; i++) radii.add(Math.round((i * end) / (at - 1)));
  if (c.medianRadius !== null) radii.add(c.medianRadius);
  return [...radii].sort((a, b) => a - b);
}
