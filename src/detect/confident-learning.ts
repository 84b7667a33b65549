// Confident learning (Northcutt, Jiang & Chuang, JAIR 2021): find the samples whose given
// label is wrong from out-of-sample predicted probabilities alone, without being told the
// noise rate. Per-class thresholds t_j (the model's mean confidence in class j over the
// samples labeled j) decide when a sample "confidently belongs" to a class; counting those
// gives the confident joint C[given][true]; calibrated to the label counts it estimates the
// joint distribution of given and true labels, whose off-diagonal mass is the number of
// label issues. That many samples are then pruned, per cell, by margin.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { argmax, median, normalQuantile, quantile } from "../math/linalg.js";
import type { Finding } from "../ledger/types.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";

// 1.1.0: noise-structure cells give up to a Poisson quantile of the floor; label plateaus.
// 1.2.0: the cells' count is taken lowest self-confidence first across cells; a plateau's relabel
// is undone before deciding what a sample looks like.
// 1.3.0: a plateau's leakage must be concentrated on its one label (a weak model's soft confusions spread).
// 1.4.0: an excess cell must also stand out from its own near-candidates (natural confusion is asymmetric).
export const CONFIDENT_LEARNING_VERSION = "1.4.0";

export const confidentLearningOptionsSchema = z.object({
  /**
   * How many and which samples to flag (the paper's §3.2):
   * "prune-by-noise-rate": for each off-diagonal cell (i, j), the n·Q[i][j] samples labeled i with
   * the largest margin p_j − p_i; "prune-by-class": for each class i, the n·Σ_{j≠i} Q[i][j] samples
   * labeled i with the lowest self-confidence; "both": prune-by-noise-rate ∩ the off-diagonals of the
   * confident joint; "confident-joint": the off-diagonals of the confident joint.
   */
  filterBy: z
    .enum(["prune-by-noise-rate", "prune-by-class", "both", "confident-joint", "noise-structure"])
    .default("prune-by-noise-rate"),
  /**
   * "noise-structure" (ours, for 5+ classes): a candidate is a sample whose top class j is not its
   * label y and whose label has out-of-sample probability below this; candidates are counted per
   * (y, j) cell. See `noiseStructure` for how many are flagged, and which.
   */
  candidateBelow: z.number().gt(0).lte(1).default(0.1),
  /** "noise-structure": a median cell count below this is no evidence of spread-out flips (read as 0). */
  minFloor: z.number().min(0).default(3),
  /**
   * "noise-structure": a cell's excess over its mirror cell counts as flips only beyond this many
   * standard deviations (binomial split of the pair's candidates, √(c_yj + c_jy)).
   */
  asymmetryZ: z.number().positive().default(5),
  /**
   * "noise-structure": a cell counts at most this quantile of a Poisson distribution whose mean is
   * the floor — as many candidates as spread-out flips alone would put there at this level (0: the
   * floor itself) — towards the number of spread-out flips flagged.
   */
  cellQuantile: z.number().min(0).lt(1).default(0.75),
  /**
   * "noise-structure": a label plateau — the typical image of class j (labeled j, predicted j) given
   * at least this probability of another label y, and at least `plateauRatio` times the 90th
   * percentile of all pairs' — marks a targeted relabel j → y; every sample labeled y that looks
   * like j once the relabel is undone is flagged. See `labelPlateaus`.
   */
  plateauMin: z.number().gt(0).lte(1).default(0.15),
  plateauRatio: z.number().min(1).default(3),
  /**
   * "noise-structure": and the typical image of j gives y at least this share of the probability
   * it gives away (median of p(y) / (1 − p(j))). A relabel j → y sends nearly all of it to y; a
   * weak model's soft confusion spreads it over several neighbours. See `labelPlateaus`.
   */
  plateauConcentration: z.number().gt(0).lte(1).default(0.8),
  /**
   * Keep samples whose given label is the model's own top prediction (cleanlab does the same): a
   * model that agrees with the label is no evidence against it.
   */
  keepPredictedAsGiven: z.boolean().default(false),
  /**
   * Flag only samples whose given label has at most this out-of-sample probability. 1 (the
   * default) leaves confident learning's selection as it is; a weak model (one whose own confident
   * mistakes are as common as the flips it should find) needs a stricter bar, see the scan.
   */
  maxSelfConfidence: z.number().gt(0).lte(1).default(1),
  /** A class with fewer labeled samples than this has an unreliable threshold: warned about. */
  minClassSize: z.number().int().min(1).default(10),
});
export type ConfidentLearningOptions = z.input<typeof confidentLearningOptionsSchema>;

/** What confident learning estimates about the label noise, beyond which samples to flag. */
export interface ConfidentJointEstimate {
  /** t_j: mean predicted probability of class j over the samples labeled j (NaN for an empty class). */
  thresholds: Float64Array;
  /** C × C counts, row = given label, column = confidently-true label. */
  confidentJoint: number[][];
  /** C × C, the joint of given and true labels calibrated to the label counts; sums to 1. */
  calibratedJoint: number[][];
  /** The class each sample confidently belongs to, or −1 when no class clears its threshold. */
  confidentClass: Int32Array;
  /** n · Σ off-diagonal of the calibrated joint, rounded per cell: how many labels are wrong. */
  estimatedIssues: number;
}

/** The confident joint and its calibration (paper, eqs. 1–3). */
export function estimateConfidentJoint(
  labels: Int32Array,
  probs: Float32Array,
  C: number,
): ConfidentJointEstimate {
  const n = labels.length;
  const thresholds = new Float64Array(C);
  const counts = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    const y = labels[i] as number;
    if (y < 0) continue;
    counts[y] = (counts[y] as number) + 1;
    thresholds[y] = (thresholds[y] as number) + (probs[i * C + y] as number);
  }
  for (let j = 0; j < C; j++)
    thresholds[j] = (counts[j] as number) > 0 ? (thresholds[j] as number) / (counts[j] as number) : NaN;

  const joint = square(C);
  const confidentClass = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const y = labels[i] as number;
    if (y < 0) continue;
    let best = -1;
    let bestP = -Infinity;
    for (let j = 0; j < C; j++) {
      const p = probs[i * C + j] as number;
      // A NaN threshold (no sample labeled j) never admits a sample: the model has never seen j.
      if (p >= (thresholds[j] as number) && p > bestP) {
        best = j;
        bestP = p;
      }
    }
    confidentClass[i] = best;
    if (best >= 0) (joint[y] as number[])[best] = ((joint[y] as number[])[best] as number) + 1;
  }

  // Calibrate each row to the class's label count (eq. 2), then normalise to a joint (eq. 3).
  const calibrated = square(C);
  let total = 0;
  for (let i = 0; i < C; i++) {
    const row = joint[i] as number[];
    const rowSum = row.reduce((a, b) => a + b, 0);
    for (let j = 0; j < C; j++) {
      const v =
        rowSum > 0
          ? ((row[j] as number) / rowSum) * (counts[i] as number)
          : i === j
            ? (counts[i] as number)
            : 0;
      (calibrated[i] as number[])[j] = v;
      total += v;
    }
  }
  let estimatedIssues = 0;
  const labeled = counts.reduce((a, b) => a + b, 0);
  for (let i = 0; i < C; i++)
    for (let j = 0; j < C; j++) {
      const q = total > 0 ? ((calibrated[i] as number[])[j] as number) / total : 0;
      (calibrated[i] as number[])[j] = q;
      if (i !== j) estimatedIssues += Math.round(labeled * q);
    }
  return { thresholds, confidentJoint: joint, calibratedJoint: calibrated, confidentClass, estimatedIssues };
}

export const confidentLearning: Detector<ConfidentLearningOptions> = {
  name: "confident-learning",
  version: CONFIDENT_LEARNING_VERSION,

  appliesTo(table: ScanTable): string | null {
    const C = table.classes.length;
    if (table.probs === undefined)
      return "needs out-of-sample predicted probabilities (pred_probs from your model, or the built-in proxy model)";
    if (C < 2) return `needs at least 2 classes, the dataset has ${C}`;
    if (table.probs.length !== table.labels.length * C)
      return `the predicted probabilities have ${table.probs.length} values, expected ${table.labels.length} samples × ${C} classes`;
    if (!table.labels.some((y) => y >= 0)) return "no sample has a label";
    return null;
  },

  run(table: ScanTable, options: Partial<ConfidentLearningOptions> = {}): DetectorResult {
    const why = this.appliesTo(table);
    if (why !== null) throw new AntidoteError("USAGE", `confident-learning cannot run: ${why}`);
    const opts = parseOptions(confidentLearningOptionsSchema, options, "confident-learning options");
    const probs = table.probs as Float32Array;
    const { labels, classes } = table;
    const C = classes.length;
    const n = labels.length;
    checkDistributions(probs, C, table.ids);
    const estimate = estimateConfidentJoint(labels, probs, C);
    const p = (i: number, j: number): number => probs[i * C + j] as number;

    const scores = new Float64Array(n);
    const suggested = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) {
      const y = labels[i] as number;
      scores[i] = y < 0 ? NaN : 1 - p(i, y);
    }
    const structure = opts.filterBy === "noise-structure" ? noiseStructure(labels, probs, C, opts) : null;
    const pruned =
      structure !== null ? structure.selected : prune(opts.filterBy, labels, probs, C, estimate, suggested);
    if (structure !== null) for (const [i, j] of structure.suggested) suggested[i] = j;
    // Samples flagged by a label plateau, with the plateau's leakage, for their evidence.
    const plateauOf = new Map<number, number>();
    for (const plateau of structure?.plateaus ?? [])
      for (const i of plateau.members) plateauOf.set(i, plateau.leakage);

    const flagged = new Uint8Array(n);
    for (const i of pruned) {
      const y = labels[i] as number;
      const predicted = argmaxRow(probs, i, C);
      // A plateau's member may still be predicted y: its prediction is the one with the relabel undone.
      if (!opts.keepPredictedAsGiven && predicted === y && !plateauOf.has(i)) continue;
      if (p(i, y) > opts.maxSelfConfidence) continue;
      flagged[i] = 1;
    }

    const warnings: string[] = [];
    const labelCounts = new Array<number>(C).fill(0);
    for (const y of labels) if (y >= 0) labelCounts[y] = (labelCounts[y] as number) + 1;
    classes.forEach((name, j) => {
      const count = labelCounts[j] as number;
      if (count === 0)
        warnings.push(`class "${name}" has no labeled sample: no sample can be suggested as "${name}"`);
      else if (count < opts.minClassSize)
        warnings.push(
          `class "${name}" has ${count} labeled samples: its threshold t = ${(estimate.thresholds[j] as number).toFixed(3)} is unreliable`,
        );
    });

    const findings: Finding[] = [];
    let lowest = Infinity;
    for (let i = 0; i < n; i++) {
      if (flagged[i] === 0) continue;
      const y = labels[i] as number;
      const s = suggested[i] as number;
      const to = s >= 0 ? s : argmaxOther(probs, i, C, y);
      lowest = Math.min(lowest, scores[i] as number);
      findings.push({
        subjectType: "sample",
        subjectId: table.digests[i] as string,
        kind: "label-issue",
        score: scores[i] as number,
        evidence: {
          id: table.ids[i],
          givenLabel: classes[y],
          suggestedLabel: classes[to],
          selfConfidence: round(p(i, y)),
          suggestedProbability: round(p(i, to)),
          margin: round(p(i, to) - p(i, y)),
          ...(plateauOf.has(i)
            ? {
                why:
                  `label plateau: typical ${classes[to]} images get p(${classes[y]}) ≈ ` +
                  `${(plateauOf.get(i) as number).toFixed(2)}, a targeted relabel ${classes[to]} → ${classes[y]}`,
              }
            : {}),
        },
        check: "confident-learning",
        checkVersion: CONFIDENT_LEARNING_VERSION,
      });
    }
    findings.sort((a, b) => b.score - a.score);

    return {
      detector: "confident-learning",
      version: CONFIDENT_LEARNING_VERSION,
      scores,
      flagged,
      threshold: {
        value: findings.length === 0 ? 1 : lowest,
        method:
          structure !== null
            ? `noise-structure: ${structure.candidates} samples whose label has out-of-sample probability < ` +
              `${opts.candidateBelow} and another top class; flips spread over every (given, top) cell put a floor of ` +
              `${structure.floor} under the median cell${structure.floor === 0 ? " (none: below " + opts.minFloor + ")" : ""}; ` +
              `each cell counts up to ${structure.cellCap} (the ${opts.cellQuantile} quantile of a Poisson count around the floor) ` +
              `towards ${structure.spread} spread-out flips, flagged lowest self-confidence first across cells, ` +
              `plus a ${opts.asymmetryZ}σ excess over its mirror cell and over twice its near-candidates (label probability below ${NEAR_CANDIDATE * opts.candidateBelow}) from that cell ` +
              `(${structure.excessCells.length} such cells); ` +
              `${structure.plateaus.length} label plateau${structure.plateaus.length === 1 ? "" : "s"} (images typical of one class given ` +
              `≥ ${opts.plateauMin} probability of another label, ≥ ${opts.plateauConcentration} of all they give away: a targeted relabel; the samples with that label that look like the class once the relabel is undone are flagged)` +
              `${structure.plateaus.map((p) => ` ${classes[p.looksLike]} → ${classes[p.given]} (${p.leakage.toFixed(2)})`).join(",")}; ` +
              `${findings.length} flagged. ` +
              "Scores are 1 − self-confidence; the value is the lowest score flagged (plateaus and excess cells are selected by cell)"
            : `${opts.filterBy}: ${estimate.estimatedIssues} label issues estimated as n × the off-diagonal mass of the ` +
              `calibrated confident joint (no noise rate given); ${findings.length} flagged after dropping samples ` +
              "the model predicts as labeled. Scores are 1 − self-confidence; the value is the lowest score flagged " +
              "(selection is per (given, true) cell, so it is not a single global cut)",
      },
      findings,
      summary: {
        filterBy: opts.filterBy,
        classes,
        labelCounts,
        thresholds: Array.from(estimate.thresholds, (t) => (Number.isFinite(t) ? round(t) : null)),
        confidentJoint: estimate.confidentJoint,
        calibratedJoint: estimate.calibratedJoint.map((row) => row.map(round)),
        estimatedIssues: estimate.estimatedIssues,
        estimatedNoiseRate: round(
          estimate.estimatedIssues /
            Math.max(
              1,
              labelCounts.reduce((a, b) => a + b, 0),
            ),
        ),
        flagged: findings.length,
        ...(structure !== null
          ? {
              noiseStructure: {
                candidateBelow: opts.candidateBelow,
                floor: structure.floor,
                cellCap: structure.cellCap,
                spread: structure.spread,
                medianCell: structure.medianCell,
                candidateCells: structure.cells,
                excessCells: structure.excessCells.map(([y, j, excess]) => ({
                  given: classes[y],
                  top: classes[j],
                  excess,
                })),
                plateaus: structure.plateaus.map((p) => ({
                  given: classes[p.given],
                  looksLike: classes[p.looksLike],
                  leakage: round(p.leakage),
                  flagged: p.members.length,
                })),
              },
            }
          : {}),
      },
      warnings,
    };
  },
};

// A cell's near-candidates have label probability below NEAR_CANDIDATE × candidateBelow. A natural
// confusion is a continuum: on all 60k clean Fashion-MNIST images (the user's CNN) every cell with
// 10+ candidates holds at most 1.4× as many candidates as near-candidates (Shirt → Pullover 129
// against 210, Ankle boot → Sneaker 61 against 82), while relabelled images are confidently their
// real class and pile up below the bar alone. Those cells also hold 2–12× their mirrors' counts:
// asymmetric confusion, which the mirror test alone took for targeted flips (220 clean images flagged).
const NEAR_CANDIDATE = 3;
const NEAR_RATIO = 2;

/**
 * "noise-structure" selection. A model's own confusions are structured: on Fashion-MNIST they crowd
 * into a handful of cells (Shirt ↔ T-shirt/top, Pullover ↔ Coat) and leave most of the 90 cells
 * empty, and they are as common in a clean dataset as in a poisoned one. Flips that were not chosen
 * by what the image looks like — random relabels — land in every cell alike. So the median cell
 * count is an estimate of the spread-out flips per cell (the floor), which the natural confusions,
 * being few cells, do not move. Flips land in a cell as a Poisson count around the floor, so a cell
 * holds as many flips as flips alone would plausibly put there — up to the `cellQuantile` quantile
 * of Poisson(floor); beyond that, it is the model's confusion. The sum over cells is how many
 * spread-out flips are flagged: the candidates with the lowest self-confidence, in whatever cell.
 * A targeted flip A → B instead fills one cell (labeled B, looks like A) far beyond its mirror
 * (labeled A, looks like B), which natural confusion fills about equally; a cell's excess over its
 * mirror beyond `asymmetryZ` standard deviations — and beyond twice the cell's near-candidates, which
 * natural confusion puts there in proportion — is flagged from that cell; a targeted relabel
 * too large for the candidates shows as a label plateau (`labelPlateaus`). On clean data all three
 * are zero, so the flags' false-positive rate does not rest on the model being accurate.
 * Measured on 12k Fashion-MNIST (3-fold pixel-MLP proxy, ≈ 85 % accurate, each cell giving up the
 * floor): clean 0 flagged (plain confident learning: 7.4 %); 10 % random flips precision 0.82,
 * recall 0.83. With the scan's MLP + CNN proxy (≈ 88 %), each cell giving up its own lowest: up to
 * the floor 0.877 / 0.828, up to the 0.75 quantile 0.863 / 0.873 — the quantile trades precision
 * for recall along the proxy's own curve, which is why it is an option (0 = the floor); taking the
 * same count across cells, 0.887 / 0.898.
 */
export function noiseStructure(
  labels: Int32Array,
  probs: Float32Array,
  C: number,
  opts: {
    candidateBelow: number;
    minFloor: number;
    asymmetryZ: number;
    cellQuantile: number;
    plateauMin: number;
    plateauRatio: number;
    plateauConcentration: number;
  },
): {
  selected: number[];
  suggested: [number, number][];
  candidates: number;
  cells: number[][];
  medianCell: number;
  floor: number;
  /** The most a cell counts towards the spread-out flips (its excess over its mirror aside). */
  cellCap: number;
  /** Σ over cells of min(count, cellCap): how many spread-out flips are flagged. */
  spread: number;
  excessCells: [number, number, number][];
  plateaus: LabelPlateau[];
} {
  const byCell: number[][][] = Array.from({ length: C }, () => Array.from({ length: C }, () => []));
  // The same cells one step less confident: label probability in [candidateBelow, 3 · candidateBelow).
  const nearCells: number[][] = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  let candidates = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    if (y < 0) continue;
    const top = argmaxRow(probs, i, C);
    if (top === y) continue;
    const p = probs[i * C + y] as number;
    if (!(p < opts.candidateBelow)) {
      if (p < NEAR_CANDIDATE * opts.candidateBelow) (nearCells[y] as number[])[top]! += 1;
      continue;
    }
    (byCell[y] as number[][])[top]!.push(i);
    candidates++;
  }
  const cells = byCell.map((row) => row.map((members) => members.length));
  const count = (y: number, j: number): number => (cells[y] as number[])[j] as number;
  const offDiagonal: number[] = [];
  for (let y = 0; y < C; y++) for (let j = 0; j < C; j++) if (y !== j) offDiagonal.push(count(y, j));
  offDiagonal.sort((a, b) => a - b);
  const mid = offDiagonal.length / 2;
  const medianCell =
    offDiagonal.length === 0
      ? 0
      : offDiagonal.length % 2 === 1
        ? (offDiagonal[Math.floor(mid)] as number)
        : ((offDiagonal[mid - 1] as number) + (offDiagonal[mid] as number)) / 2;
  const floor = medianCell >= opts.minFloor ? medianCell : 0;
  const cellCap = floor === 0 ? 0 : poissonQuantile(floor, opts.cellQuantile);
  const selected: number[] = [];
  const suggested: [number, number][] = [];
  const taken = new Set<number>();
  const take = (i: number, j: number): void => {
    selected.push(i);
    suggested.push([i, j]);
    taken.add(i);
  };
  const selfConfidence = (i: number): number => probs[i * C + (labels[i] as number)] as number;
  const byConfidence = (a: number, b: number): number => selfConfidence(a) - selfConfidence(b) || a - b;
  // The cells say how many spread-out flips there are — each cell up to the cap — but not which:
  // a cell can hold more flips than the cap (Poisson's upper tail) and a confusion cell fewer, so
  // that many candidates are taken wherever they fall, lowest self-confidence first. Against
  // taking each cell's own lowest up to the cap, this measured better on all four 10 %-flip
  // slices of Fashion-MNIST (MLP + CNN proxy, precision / recall): images 0–12k 0.887 / 0.898
  // (per cell 0.863 / 0.873), 24k–36k 0.856 / 0.927 (0.848 / 0.919), 36k–48k 0.856 / 0.921
  // (0.849 / 0.913), all 60k 0.896 / 0.936 (0.892 / 0.932).
  let spread = 0;
  const excessCells: [number, number, number][] = [];
  for (let y = 0; y < C; y++)
    for (let j = 0; j < C; j++) {
      if (y === j) continue;
      spread += Math.min(count(y, j), cellCap);
      // Beyond its mirror, and beyond what the cell's own near-candidates say the confusion puts
      // there (NEAR_RATIO of them), each by asymmetryZ standard deviations.
      const near = (nearCells[y] as number[])[j] as number;
      const overMirror = count(y, j) - count(j, y);
      const overNear = count(y, j) - NEAR_RATIO * near;
      if (
        overMirror > opts.asymmetryZ * Math.sqrt(count(y, j) + count(j, y)) &&
        overNear > opts.asymmetryZ * Math.sqrt(count(y, j) + NEAR_RATIO * NEAR_RATIO * near)
      )
        excessCells.push([y, j, Math.round(Math.min(overMirror, overNear))]);
    }
  const candidateRows = byCell.flatMap((row) => row.flat()).sort(byConfidence);
  for (const i of candidateRows.slice(0, Math.round(spread))) take(i, argmaxRow(probs, i, C));
  // A targeted flip A → B is one cell's excess over its mirror: taken from that cell.
  for (const [y, j, excess] of excessCells) {
    const members = ((byCell[y] as number[][])[j] as number[])
      .filter((i) => !taken.has(i))
      .sort(byConfidence);
    for (const i of members.slice(0, excess)) take(i, j);
  }
  // Targeted relabels too large for the candidates above (their labels keep p ≈ the relabelled share).
  const plateaus = labelPlateaus(
    labels,
    probs,
    C,
    opts.plateauMin,
    opts.plateauRatio,
    opts.plateauConcentration,
  );
  const row = new Float32Array(C);
  for (const plateau of plateaus) {
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] !== plateau.given || taken.has(i) || !looksLikeUnderRelabel(probs, i, C, plateau, row))
        continue;
      take(i, plateau.looksLike);
      plateau.members.push(i);
    }
  }
  return {
    selected,
    suggested,
    candidates,
    cells,
    medianCell,
    floor,
    cellCap,
    spread,
    excessCells,
    plateaus,
  };
}

/**
 * Whether sample i, labeled `given`, would be predicted `looksLike` by a model that had not learned
 * the relabel. A model trained on data where a share r of class j was relabelled y learns
 * p(j | x) = (1 − r)·q(j | x) and p(y | x) = q(y | x) + r·q(j | x), q being what it would have
 * learned from clean labels; inverting that (r ≈ the plateau's leakage, < 0.5 since it is p(y)
 * on samples whose top class is j) recovers q. The relabelled images at the boundary — where p(y)
 * edges past p(j) only because of the relabel — come back to j. On 12k Fashion-MNIST with 30 % of
 * the sneakers relabelled as sandals (MLP + CNN proxy) this raised confident learning's recall
 * from 0.883 (the samples whose top class is j) to 0.933, at precision 0.926 (from 0.972).
 * `row` is scratch space of C values.
 */
function looksLikeUnderRelabel(
  probs: Float32Array,
  i: number,
  C: number,
  plateau: LabelPlateau,
  row: Float32Array,
): boolean {
  const r = plateau.leakage;
  const j = plateau.looksLike;
  row.set(probs.subarray(i * C, (i + 1) * C));
  row[j] = (row[j] as number) / (1 - r);
  row[plateau.given] = (row[plateau.given] as number) - r * row[j];
  return argmax(row) === j;
}

export interface LabelPlateau {
  /** The label the relabelled samples carry (y). */
  given: number;
  /** The class they look like (j). */
  looksLike: number;
  /** Median p(y) over the samples labeled j that the model predicts as j. */
  leakage: number;
  /**
   * Samples labeled y that look like j once the relabel is undone (`looksLikeUnderRelabel`), not
   * already flagged by the cells: what the plateau flags.
   */
  members: number[];
}

/**
 * Label plateaus. Relabel a share r of class j's images as y, and every model trained on the data
 * learns that an image looking like j is y with probability ≈ r — for the typical j image, not only
 * at the boundary. Natural confusion reaches only the boundary images, so the median of p(y) over
 * the core of j (labeled j, predicted j) stays near 0. On 12k Fashion-MNIST that median is ≤ 0.065
 * for every pair on clean data and ≤ 0.091 with 10 % random flips, whichever proxy; relabelling
 * 30 % of the sneakers as sandals makes it 0.26–0.28 for (Sandal, Sneaker). A pair is a plateau
 * when its median is ≥ `min` and ≥ `ratio` × the 90th percentile over all pairs (a proxy that
 * leaks everywhere has no plateau). Such flips keep p(label) ≈ r, above the candidates' bar, so
 * the cells above never see them: they are found here, and the noise-structure selection above
 * covers the relabels of a small share, whose p(label) is low.
 *
 * A weak model leaks along natural confusions too: an MLP ≈ 81 % accurate on 2,500 clean images
 * (a user's model, with its probe) gave typical coats and typical shirts p(Pullover) ≈ 0.18, and
 * the plateaus flagged 61 images (2.4 %). What differs is where the rest goes. Relabelling teaches
 * "a j image is y with probability r", so the typical j gives y nearly all it gives away: the
 * median of p(y) / (1 − p(j)) over the core was 0.97 with a CNN, 0.93 with the 83 %-accurate
 * linear pixel proxy (Sneaker → Sandal at 30 %). Soft confusion spreads it: 0.69 for the coats,
 * 0.38 for the shirts. So a plateau must also reach `concentration` (0.8 by default). (The
 * mirror — y's typical image giving j — did not separate them: 4× below the leakage for the
 * linear proxy's real relabel, 3.7× for the coats.)
 */
export function labelPlateaus(
  labels: Int32Array,
  probs: Float32Array,
  C: number,
  min: number,
  ratio: number,
  concentration: number,
): LabelPlateau[] {
  const core: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    if (y >= 0 && argmaxRow(probs, i, C) === y) (core[y] as number[]).push(i);
  }
  const leakage: [number, number, number][] = [];
  const column = new Float64Array(labels.length);
  for (let j = 0; j < C; j++) {
    const rows = core[j] as number[];
    if (rows.length === 0) continue;
    for (let y = 0; y < C; y++) {
      if (y === j) continue;
      for (let k = 0; k < rows.length; k++) column[k] = probs[(rows[k] as number) * C + y] as number;
      leakage.push([y, j, median(column.subarray(0, rows.length))]);
    }
  }
  if (leakage.length === 0) return [];
  const p90 = quantile(
    leakage.map(([, , v]) => v),
    0.9,
  );
  // How much of what the core of j gives away goes to y (only for pairs that pass so far).
  const concentrated = ([y, j]: [number, number, number]): boolean => {
    const rows = core[j] as number[];
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k] as number;
      column[k] = (probs[i * C + y] as number) / Math.max(1e-12, 1 - (probs[i * C + j] as number));
    }
    return median(column.subarray(0, rows.length)) >= concentration;
  };
  return leakage
    .filter((pair) => pair[2] >= min && pair[2] >= ratio * p90 && concentrated(pair))
    .sort((a, b) => b[2] - a[2])
    .map(([y, j, v]) => ({ given: y, looksLike: j, leakage: v, members: [] }));
}

/** The smallest k with P(X ≤ k) ≥ q for X ~ Poisson(mean); q = 0 gives the mean itself. */
export function poissonQuantile(mean: number, q: number): number {
  if (q <= 0) return mean;
  // A large mean (a big dataset's cells) is normal to within a count; exp(−mean) would underflow past ≈ 700.
  if (mean > 200) return Math.ceil(mean + normalQuantile(q) * Math.sqrt(mean) - 0.5);
  let k = 0;
  let logPmf = -mean;
  let cdf = Math.exp(logPmf);
  while (cdf < q && k < 10 * mean + 100) {
    k++;
    logPmf += Math.log(mean / k);
    cdf += Math.exp(logPmf);
  }
  return k;
}

// Selects candidate issues by `filterBy`; records the true class each pruned sample is suggested as.
function prune(
  filterBy: z.output<typeof confidentLearningOptionsSchema>["filterBy"],
  labels: Int32Array,
  probs: Float32Array,
  C: number,
  estimate: ConfidentJointEstimate,
  suggested: Int32Array,
): number[] {
  const n = labels.length;
  const labeled = labels.reduce((a, y) => a + (y >= 0 ? 1 : 0), 0);
  const p = (i: number, j: number): number => probs[i * C + j] as number;
  const Q = estimate.calibratedJoint;
  const byClass: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < n; i++) {
    const y = labels[i] as number;
    if (y >= 0) (byClass[y] as number[]).push(i);
  }

  if (filterBy === "confident-joint") {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const y = labels[i] as number;
      const c = estimate.confidentClass[i] as number;
      if (y >= 0 && c >= 0 && c !== y) {
        suggested[i] = c;
        out.push(i);
      }
    }
    return out;
  }

  if (filterBy === "prune-by-class") {
    const out: number[] = [];
    for (let y = 0; y < C; y++) {
      let k = 0;
      for (let j = 0; j < C; j++) if (j !== y) k += Math.round(labeled * ((Q[y] as number[])[j] as number));
      const members = (byClass[y] as number[]).slice().sort((a, b) => p(a, y) - p(b, y));
      out.push(...members.slice(0, k));
    }
    return out;
  }

  // Prune by noise rate: cell (y, j) gives up its round(n·Q[y][j]) largest margins p_j − p_y. A
  // sample is taken once, by the first cell (largest margin wins, ties to the lower class).
  const taken = new Uint8Array(n);
  const candidates: { i: number; j: number; margin: number }[] = [];
  for (let y = 0; y < C; y++) {
    for (let j = 0; j < C; j++) {
      if (j === y) continue;
      const k = Math.round(labeled * ((Q[y] as number[])[j] as number));
      if (k === 0) continue;
      const members = (byClass[y] as number[])
        .map((i) => ({ i, j, margin: p(i, j) - p(i, y) }))
        .sort((a, b) => b.margin - a.margin);
      candidates.push(...members.slice(0, k));
    }
  }
  candidates.sort((a, b) => b.margin - a.margin);
  const out: number[] = [];
  for (const { i, j } of candidates) {
    if (taken[i] === 1) continue;
    if (filterBy === "both") {
      const c = estimate.confidentClass[i] as number;
      if (c < 0 || c === labels[i]) continue;
    }
    taken[i] = 1;
    suggested[i] = j;
    out.push(i);
  }
  return out;
}

// Probabilities come from the user's model as often as from ours: a row that is not a distribution
// (NaN, negative, not summing to 1) would silently skew every threshold, so it is refused by name.
function checkDistributions(probs: Float32Array, C: number, ids: readonly string[]): void {
  for (let i = 0; i < probs.length / C; i++) {
    let sum = 0;
    let valid = true;
    for (let j = 0; j < C; j++) {
      const v = probs[i * C + j] as number;
      if (!(v >= 0 && v <= 1)) valid = false;
      sum += v;
    }
    if (!valid || Math.abs(sum - 1) > 1e-3)
      throw new AntidoteError(
        "USAGE",
        `confident-learning: the predicted probabilities of sample "${ids[i] ?? i}" are not a distribution ` +
          `(${Array.from(probs.subarray(i * C, (i + 1) * C), (v) => round(v)).join(", ")})`,
      );
  }
}

function argmaxRow(probs: Float32Array, i: number, C: number): number {
  let best = 0;
  for (let j = 1; j < C; j++) if ((probs[i * C + j] as number) > (probs[i * C + best] as number)) best = j;
  return best;
}

function argmaxOther(probs: Float32Array, i: number, C: number, not: number): number {
  let best = -1;
  for (let j = 0; j < C; j++) {
    if (j === not) continue;
    if (best < 0 || (probs[i * C + j] as number) > (probs[i * C + best] as number)) best = j;
  }
  return best;
}

function square(C: number): number[][] {
  return Array.from({ length: C }, () => new Array<number>(C).fill(0));
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
