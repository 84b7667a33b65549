// The scan's ensemble: one per-sample risk and one flagged set from every detector's result on
// the same table, plus per-class, per-source and per-annotator aggregates.
//
// The rule, in order:
//
// 1. A detector's own decision stands. Every detector already flags at a threshold it calibrated
//    on this data without knowing the poison rate (Bonferroni over n-grams, a power law over
//    cluster sizes, confident learning's estimated issue count, a consensus posterior …), and the
//    ensemble has no better information about that detector's question than the detector
//    itself. The one exception the ensemble can justify from the data: a detector that flags more
//    than `maxFlagShare` of the samples has lost its null (a degenerate representation, a proxy
//    model that learned nothing), so its flags become evidence only, with a warning.
//
// 2. Evidence is combined on one scale: each detector's scores become rank-based upper-tail
//    probabilities on the same data, u = #{j : s_j ≥ s_i} / m (ties counted against the sample,
//    so a score shared by most samples carries no evidence), and Fisher's statistic in log10
//    units, S = Σ_d −log10 u_d, adds them up. Ranks need no model of each detector's score scale.
//
// 3. Combined evidence adds a sample that no detector flagged only when S is extreme beyond what
//    this scan can produce by chance: the expected number of samples at least that extreme, λ,
//    must be ≤ `alpha` (default 0.05 per scan) under *both* nulls — (a) the detectors' evidence
//    independent: the exact distribution of a sum of independent draws from each detector's own
//    evidence values, by convolving their histograms (values rounded up to 0.01, so the tail is
//    never underestimated), and (b) an exponential fitted to S's own upper tail between the 90th and 99th
//    percentiles, which keeps the dependence between detectors that a clean corpus shows (the
//    same hard samples are hard for several detectors). Even then it adds at most `budget` (0.1%)
//    of the samples. So on clean data the ensemble's false-positive rate is the detectors' own
//    plus at most `budget`, whatever the poison rate.
//
// 4. Risk ∈ [0, 1], flagged ⇔ risk > 0.5. With c = 1 / (1 + λ) the combined-evidence confidence:
//    a flagged sample's risk is 0.5 + 0.5 · (1 − (1 − c) · Π_{d flags it} (1 − ρ_d)), a noisy-OR
//    of the flagging detectors' reliabilities ρ_d (their measured precision on the bench) and the
//    combined evidence; an unflagged sample's is 0.5 · c / c*, c* being the confidence the
//    combined evidence needs to flag. So `antidote quarantine --findings-over 0.5` selects exactly
//    the flagged set, and risk orders samples within each side.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import { sourceRisk, type GroupRisk } from "../detect/source-risk.js";
import type { DetectorResult, ScanTable } from "../detect/types.js";

export const ENSEMBLE_VERSION = "1.0.0";
export const ENSEMBLE_NAME = "ensemble";

export const ensembleOptionsSchema = z.object({
  /** Expected number of samples per scan that combined evidence alone flags by chance. */
  alpha: z.number().gt(0).lt(1).default(0.05),
  /** At most this share of the samples is added by combined evidence alone. */
  budget: z.number().min(0).max(0.05).default(0.001),
  /** A detector flagging more than this share of the samples counts as evidence, not as a decision. */
  maxFlagShare: z.number().gt(0).lte(1).default(0.25),
  /** ρ_d per detector name: the chance that its flag is a real finding (its precision). */
  reliability: z.record(z.string(), z.number().gt(0).lt(1)).default({}),
  /** ρ for detectors without one. */
  defaultReliability: z.number().gt(0).lt(1).default(0.5),
});
export type EnsembleOptions = z.input<typeof ensembleOptionsSchema>;

/** How one detector took part. */
export interface DetectorRole {
  detector: string;
  flagged: number;
  /** Whether its flags are decisions (rule 1) or evidence only. */
  decisive: boolean;
  reliability: number;
  /** Samples it had an opinion on (non-NaN score). */
  scored: number;
  /** Why its flags are evidence only. */
  reason?: string;
}

export interface ClassRisk {
  name: string;
  samples: number;
  flagged: number;
  rate: number;
  meanRisk: number;
  flaggedBy: Record<string, number>;
}

/** A source or annotator: source-risk's test, plus what the detectors themselves found about it. */
export interface GroupRow extends GroupRisk {
  /** The checks that call it anomalous (source-risk, and detectors with findings on it). */
  checks: string[];
  /** Detectors' own findings about this group (e.g. dawid-skene's unreliable annotator). */
  findings: Finding[];
  /** For annotators with a consensus model: expected accuracy against the consensus. */
  accuracy?: number;
}

export interface EnsembleResult {
  n: number;
  /** Per-sample risk in [0, 1]; flagged ⇔ risk > 0.5. */
  risk: Float64Array;
  flagged: Uint8Array;
  /** Fisher's statistic in log10 units, S = Σ_d −log10 u_d. */
  evidence: Float64Array;
  /** Expected number of samples per scan with combined evidence ≥ this sample's, by chance. */
  chance: Float64Array;
  /** Per sample: the decisive detectors that flagged it. */
  flaggedBy: string[][];
  /** Samples flagged by combined evidence alone. */
  combinedOnly: number[];
  /** Per detector (same order as `detectors`): rank-based upper-tail probability of each sample. */
  tails: Float64Array[];
  detectors: DetectorRole[];
  threshold: {
    risk: number;
    /** Smallest combined evidence that may flag on its own (Infinity when none can). */
    evidence: number;
    method: string;
  };
  classes: ClassRisk[];
  sources: GroupRow[];
  annotators: GroupRow[];
  unattributed: number;
  /** source-risk's findings (anomalous sources and annotators). */
  groupFindings: Finding[];
  warnings: string[];
}

/** Combine detector results computed on `table` (same sample order) into one risk per sample. */
export function combineResults(
  table: ScanTable,
  results: readonly DetectorResult[],
  options: EnsembleOptions = {},
): EnsembleResult {
  const opts = parseOptions(ensembleOptionsSchema, options, "ensemble options");
  const n = table.labels.length;
  for (const r of results)
    if (r.scores.length !== n || r.flagged.length !== n)
      throw new AntidoteError(
        "USAGE",
        `ensemble: detector "${r.detector}" returned ${r.scores.length} scores for ${n} samples`,
      );
  const warnings: string[] = [];

  // Rule 1: which detectors decide.
  const roles: DetectorRole[] = results.map((r) => {
    const flagged = countOnes(r.flagged);
    const scored = r.scores.reduce((a, s) => a + (Number.isNaN(s) ? 0 : 1), 0);
    const role: DetectorRole = {
      detector: r.detector,
      flagged,
      decisive: true,
      reliability: opts.reliability[r.detector] ?? opts.defaultReliability,
      scored,
    };
    if (n > 0 && flagged > opts.maxFlagShare * n) {
      role.decisive = false;
      role.reason =
        `it flagged ${flagged} of ${n} samples (${pct(flagged / n)}), more than the ${pct(opts.maxFlagShare)} ` +
        "a calibrated detector can: its flags are used as evidence only";
      warnings.push(`${r.detector}: ${role.reason}.`);
    }
    return role;
  });

  // Rule 2: rank-based tails and Fisher's statistic.
  const tails = results.map((r) => upperTails(r.scores));
  const evidence = new Float64Array(n);
  for (const u of tails)
    for (let i = 0; i < n; i++) evidence[i] = (evidence[i] as number) - Math.log10(u[i] as number);

  // Rule 3: the chance of combined evidence this strong, under both nulls.
  const chance = chanceCounts(evidence, tails);

  const flagged = new Uint8Array(n);
  const flaggedBy: string[][] = Array.from({ length: n }, () => []);
  results.forEach((r, d) => {
    if (!(roles[d] as DetectorRole).decisive) return;
    for (let i = 0; i < n; i++)
      if (r.flagged[i] === 1) {
        flagged[i] = 1;
        (flaggedBy[i] as string[]).push(r.detector);
      }
  });
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (flagged[i] === 0 && (chance[i] as number) <= opts.alpha) candidates.push(i);
  candidates.sort((a, b) => (chance[a] as number) - (chance[b] as number) || a - b);
  const allowed = Math.floor(opts.budget * n);
  const combinedOnly = candidates.slice(0, allowed);
  for (const i of combinedOnly) flagged[i] = 1;
  if (candidates.length > allowed)
    warnings.push(
      `${candidates.length} samples have combined evidence over the threshold but only ${allowed} ` +
        `(${pct(opts.budget)} of the samples) may be flagged on combined evidence alone; the strongest were kept.`,
    );
  let evidenceThreshold = Infinity;
  for (let i = 0; i < n; i++)
    if ((chance[i] as number) <= opts.alpha)
      evidenceThreshold = Math.min(evidenceThreshold, evidence[i] as number);

  // Rule 4: risk.
  const cStar = 1 / (1 + opts.alpha);
  const risk = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const c = 1 / (1 + (chance[i] as number));
    if (flagged[i] === 1) {
      let keep = 1 - c;
      for (const name of flaggedBy[i] as string[])
        keep *= 1 - (roles.find((r) => r.detector === name) as DetectorRole).reliability;
      risk[i] = 0.5 + 0.5 * (1 - keep);
    } else {
      risk[i] = Math.min(0.5 * (c / cStar), 0.4999);
    }
  }

  const classes = classRisk(table, flagged, risk, flaggedBy);
  const decisive = results.filter((_, d) => (roles[d] as DetectorRole).decisive);
  const asResult: DetectorResult = {
    detector: ENSEMBLE_NAME,
    version: ENSEMBLE_VERSION,
    scores: risk,
    flagged,
    threshold: { value: 0.5, method: "risk > 0.5" },
    findings: [],
    summary: {},
    warnings: [],
  };
  // The ensemble joins source-risk only when it adds samples; otherwise it is "any" again.
  const groups = sourceRisk(table, combinedOnly.length > 0 ? [...decisive, asResult] : decisive);
  const sources = mergeGroups(groups.sources, results, "source");
  const annotators = mergeGroups(groups.annotators, results, "annotator");
  attachAccuracy(annotators, results);

  return {
    n,
    risk,
    flagged,
    evidence,
    chance,
    flaggedBy,
    combinedOnly,
    tails,
    detectors: roles,
    threshold: {
      risk: 0.5,
      evidence: evidenceThreshold,
      method:
        "flagged when a decisive detector flags the sample at its own threshold, or when the combined " +
        `evidence S = Σ −log10(rank tail) is expected in fewer than ${opts.alpha} samples per scan by chance ` +
        "under both an independence null and an exponential fit to S's own upper tail " +
        `(at most ${pct(opts.budget)} of the samples this way); risk > 0.5 ⇔ flagged`,
    },
    classes,
    sources,
    annotators,
    unattributed: groups.unattributed,
    groupFindings: groups.findings,
    warnings,
  };
}

/**
 * Rank-based upper-tail probability of each score among the scored samples: the share scoring at
 * least as high (so ties all get the tail of the lowest of them). NaN scores get 1: no evidence.
 */
export function upperTails(scores: Float64Array): Float64Array {
  const n = scores.length;
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (!Number.isNaN(scores[i])) order.push(i);
  order.sort((a, b) => (scores[b] as number) - (scores[a] as number));
  const m = order.length;
  const u = new Float64Array(n).fill(1);
  let k = 0;
  while (k < m) {
    let end = k;
    const s = scores[order[k] as number] as number;
    while (end + 1 < m && scores[order[end + 1] as number] === s) end++;
    for (let t = k; t <= end; t++) u[order[t] as number] = (end + 1) / m;
    k = end + 1;
  }
  return u;
}

/**
 * λ_i: the expected number of samples per scan of this size whose combined evidence reaches S_i by
 * chance — the larger of the independence null's and the fitted tail's (see rule 3).
 */
function chanceCounts(evidence: Float64Array, tails: readonly Float64Array[]): Float64Array {
  const n = evidence.length;
  const chance = new Float64Array(n).fill(n);
  if (n === 0 || tails.length === 0) return chance;
  const survival = independentSurvival(tails);
  const fit = fitUpperTail(evidence);
  for (let i = 0; i < n; i++) {
    const s = evidence[i] as number;
    const bin = Math.max(0, Math.ceil(s / BIN - 1e-9));
    let lambda = n * (bin < survival.length ? (survival[bin] as number) : 0);
    if (fit !== null && s > fit.from) lambda = Math.max(lambda, n * Math.exp(fit.intercept + fit.slope * s));
    chance[i] = Math.min(n, lambda);
  }
  return chance;
}

/** Width of the evidence bins (log10 units) of the independence null. */
const BIN = 0.01;

/**
 * P(S* ≥ b·BIN) for S* the sum of one independent draw from each detector's evidence values (its
 * −log10 tails over all samples), each value rounded up to a bin: the histograms convolved.
 */
function independentSurvival(tails: readonly Float64Array[]): Float64Array {
  let dist = Float64Array.of(1);
  for (const u of tails) {
    const n = u.length;
    let top = 0;
    const bins = Int32Array.from(u, (v) => {
      const b = Math.max(0, Math.ceil(-Math.log10(v) / BIN - 1e-9));
      top = Math.max(top, b);
      return b;
    });
    const hist = new Float64Array(top + 1);
    for (const b of bins) hist[b] = (hist[b] as number) + 1 / n;
    const next = new Float64Array(dist.length + top);
    for (let a = 0; a < dist.length; a++) {
      const p = dist[a] as number;
      if (p === 0) continue;
      for (let b = 0; b <= top; b++) {
        const q = hist[b] as number;
        if (q !== 0) next[a + b] = (next[a + b] as number) + p * q;
      }
    }
    dist = next;
  }
  const survival = new Float64Array(dist.length);
  let acc = 0;
  for (let b = dist.length - 1; b >= 0; b--) {
    acc += dist[b] as number;
    survival[b] = Math.min(1, acc);
  }
  return survival;
}

/**
 * Least-squares line through ln(empirical survival) of S between its 90th and 99th percentiles;
 * null when that range is flat (ties) or the slope is not negative.
 */
function fitUpperTail(evidence: Float64Array): { from: number; intercept: number; slope: number } | null {
  const n = evidence.length;
  if (n < 200) return null;
  const sorted = Float64Array.from(evidence).sort();
  const lo = Math.floor(0.9 * n);
  const hi = Math.floor(0.99 * n);
  if ((sorted[hi] as number) - (sorted[lo] as number) <= 1e-9) return null;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  let m = 0;
  for (let k = lo; k <= hi; k++) {
    const x = sorted[k] as number;
    const y = Math.log((n - k) / n); // share of samples at or above the k-th smallest
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    m++;
  }
  const varX = sxx - (sx * sx) / m;
  if (varX <= 0) return null;
  const slope = (sxy - (sx * sy) / m) / varX;
  if (!(slope < 0)) return null;
  return { from: sorted[lo] as number, intercept: (sy - slope * sx) / m, slope };
}

function classRisk(
  table: ScanTable,
  flagged: Uint8Array,
  risk: Float64Array,
  flaggedBy: string[][],
): ClassRisk[] {
  const rows = table.classes.map((name): ClassRisk => ({
    name,
    samples: 0,
    flagged: 0,
    rate: 0,
    meanRisk: 0,
    flaggedBy: {},
  }));
  const unlabeled: ClassRisk = {
    name: "(unlabeled)",
    samples: 0,
    flagged: 0,
    rate: 0,
    meanRisk: 0,
    flaggedBy: {},
  };
  table.labels.forEach((y, i) => {
    const row = y >= 0 ? (rows[y] as ClassRisk) : unlabeled;
    row.samples++;
    row.meanRisk += risk[i] as number;
    if (flagged[i] === 1) {
      row.flagged++;
      for (const d of flaggedBy[i] as string[]) row.flaggedBy[d] = (row.flaggedBy[d] ?? 0) + 1;
      if ((flaggedBy[i] as string[]).length === 0)
        row.flaggedBy[ENSEMBLE_NAME] = (row.flaggedBy[ENSEMBLE_NAME] ?? 0) + 1;
    }
  });
  const out = unlabeled.samples > 0 ? [...rows, unlabeled] : rows;
  for (const r of out) {
    r.rate = r.samples > 0 ? round(r.flagged / r.samples) : 0;
    r.meanRisk = r.samples > 0 ? round(r.meanRisk / r.samples) : 0;
  }
  return out;
}

/**
 * source-risk's ranking, with the detectors' own findings about each group folded in: a group a
 * detector names (dawid-skene's unreliable annotator, a source behind a near-duplicate burst) is
 * anomalous too. Anomalous groups come first, those named by more checks before the others, then
 * by source-risk's evidence.
 */
function mergeGroups(
  rows: readonly GroupRisk[],
  results: readonly DetectorResult[],
  subjectType: "source" | "annotator",
): GroupRow[] {
  const byName = new Map<string, GroupRow>(
    rows.map((g) => [g.name, { ...g, checks: g.anomalous ? ["source-risk"] : [], findings: [] }]),
  );
  for (const r of results)
    for (const f of r.findings) {
      if (f.subjectType !== subjectType) continue;
      let row = byName.get(f.subjectId);
      if (row === undefined) {
        row = {
          name: f.subjectId,
          samples: 0,
          flagged: 0,
          rate: 0,
          expected: 0,
          othersRate: 0,
          pValue: 1,
          score: 0,
          test: "none",
          anomalous: false,
          flaggedBy: {},
          checks: [],
          findings: [],
        };
        byName.set(f.subjectId, row);
      }
      row.findings.push(f);
      row.anomalous = true;
      if (!row.checks.includes(f.check)) row.checks.push(f.check);
    }
  return [...byName.values()].sort(
    (a, b) =>
      Number(b.anomalous) - Number(a.anomalous) ||
      b.checks.length - a.checks.length ||
      b.score - a.score ||
      b.rate - a.rate ||
      a.name.localeCompare(b.name),
  );
}

const annotatorSummarySchema = z.object({
  annotators: z.array(z.object({ annotator: z.string(), accuracy: z.number() })),
});

// A consensus detector's per-annotator accuracy (dawid-skene's summary), shown beside each annotator.
function attachAccuracy(rows: GroupRow[], results: readonly DetectorResult[]): void {
  for (const r of results) {
    const parsed = annotatorSummarySchema.safeParse(r.summary);
    if (!parsed.success) continue;
    const accuracy = new Map(parsed.data.annotators.map((a) => [a.annotator, a.accuracy]));
    for (const row of rows) {
      const a = accuracy.get(row.name);
      if (a !== undefined && Number.isFinite(a)) row.accuracy = round(a);
    }
  }
}

function countOnes(flags: Uint8Array): number {
  let k = 0;
  for (const f of flags) k += f;
  return k;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
