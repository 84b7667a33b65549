// Consensus labels and per-annotator reliability from several annotations per sample (Dawid
// & Skene, 1979): each annotator has a confusion matrix π_a[true][given]; EM alternates the
// posterior of each sample's true class (E-step) with the class priors and confusion matrices
// that posterior implies (M-step), starting from the soft majority vote. A lying annotator
// is then one whose estimated accuracy sits far below the others', and a sample whose given
// label the confident consensus rejects is a label finding.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import type { Detector, DetectorResult, ScanAnnotation, ScanTable } from "./types.js";
import { unreliableAnnotations } from "./unreliable-annotations.js";

// 1.1.0: an unreliable annotator's overruled annotations are listed to drop, and samples whose
// label only its votes carry are flagged (label-decided-by-unreliable-annotator); the summary
// counts given labels that differ from the consensus.
export const DAWID_SKENE_VERSION = "1.1.0";

export const dawidSkeneOptionsSchema = z.object({
  maxIterations: z.number().int().min(1).max(10_000).default(500),
  /** Stop when no posterior moves by more than this between iterations. */
  tolerance: z.number().positive().default(1e-5),
  /** Dirichlet pseudo-count added to every cell of every confusion row and to the class prior. */
  smoothing: z.number().min(0).default(1),
  /** A sample is flagged when the posterior that its given label is wrong reaches this. */
  minPosterior: z.number().gt(0.5).max(1).default(0.95),
  /** An annotator is unreliable when its robust z (accuracy deficit from the median) reaches this… */
  annotatorZ: z.number().positive().default(3.5),
  /** …and its accuracy is at least this far below the median (ignores tiny, merely significant gaps). */
  annotatorMinGap: z.number().min(0).max(1).default(0.02),
});
export type DawidSkeneOptions = z.input<typeof dawidSkeneOptionsSchema>;

export interface AnnotatorReliability {
  annotator: string;
  annotations: number;
  /** Expected fraction of its annotations that are the true class, under the posteriors. */
  accuracy: number;
  /** Row-normalised confusion, rows = true class, columns = given class. */
  confusion: number[][];
  /** (median accuracy − accuracy) / spread, spread = max(1.4826·MAD, binomial s.e.); positive is worse
   * than the median. */
  robustZ: number;
  unreliable: boolean;
}

export interface DawidSkeneFit {
  /** Row-major n × C posteriors of the true class; NaN rows for samples nobody annotated. */
  posteriors: Float64Array;
  /** Most probable true class per sample, −1 where nobody annotated. */
  consensus: Int32Array;
  /** Plain majority vote per sample (ties to the lower class), −1 where nobody annotated. */
  majority: Int32Array;
  priors: number[];
  annotators: AnnotatorReliability[];
  iterations: number;
  converged: boolean;
  /** The posterior of one sample's true class from these annotations, leaving out `excluded`
   * annotators (under the fitted priors and confusions); null when no annotation is left. */
  posteriorWithout(
    annotations: readonly ScanAnnotation[],
    excluded: ReadonlySet<string>,
  ): Float64Array | null;
}

/** EM for the Dawid–Skene model; annotators are ranked, least reliable first. */
export function fitDawidSkene(
  annotations: readonly (readonly ScanAnnotation[])[],
  C: number,
  options: DawidSkeneOptions = {},
): DawidSkeneFit {
  const opts = parseOptions(dawidSkeneOptionsSchema, options, "dawid-skene options");
  const n = annotations.length;
  const names: string[] = [];
  const index = new Map<string, number>();
  // Flattened annotations: sample start offsets, annotator and label per entry.
  const start = new Int32Array(n + 1);
  let total = 0;
  for (const list of annotations) total += list.length;
  const who = new Int32Array(total);
  const what = new Int32Array(total);
  let e = 0;
  annotations.forEach((list, i) => {
    start[i] = e;
    for (const a of list) {
      if (a.label < 0 || a.label >= C)
        throw new AntidoteError(
          "USAGE",
          `dawid-skene: sample ${i} has an annotation of class ${a.label}, not one of ${C}`,
        );
      let k = index.get(a.annotator);
      if (k === undefined) {
        k = names.length;
        index.set(a.annotator, k);
        names.push(a.annotator);
      }
      who[e] = k;
      what[e++] = a.label;
    }
  });
  start[n] = e;
  const A = names.length;

  const T = new Float64Array(n * C);
  const majority = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const from = start[i] as number;
    const to = start[i + 1] as number;
    if (from === to) {
      T.fill(NaN, i * C, (i + 1) * C);
      continue;
    }
    for (let k = from; k < to; k++)
      T[i * C + (what[k] as number)] = (T[i * C + (what[k] as number)] as number) + 1;
    let best = 0;
    for (let c = 1; c < C; c++) if ((T[i * C + c] as number) > (T[i * C + best] as number)) best = c;
    majority[i] = best;
    for (let c = 0; c < C; c++) T[i * C + c] = (T[i * C + c] as number) / (to - from);
  }

  const logPrior = new Float64Array(C);
  const logConf = new Float64Array(A * C * C); // [a][true][given]
  const counts = new Float64Array(A * C * C);
  const mStep = (): void => {
    counts.fill(0);
    const prior = new Float64Array(C).fill(opts.smoothing);
    for (let i = 0; i < n; i++) {
      if (start[i] === start[i + 1]) continue;
      for (let c = 0; c < C; c++) prior[c] = (prior[c] as number) + (T[i * C + c] as number);
      for (let k = start[i] as number; k < (start[i + 1] as number); k++) {
        const base = (who[k] as number) * C * C + (what[k] as number);
        for (let c = 0; c < C; c++)
          counts[base + c * C] = (counts[base + c * C] as number) + (T[i * C + c] as number);
      }
    }
    const priorSum = prior.reduce((a, b) => a + b, 0);
    for (let c = 0; c < C; c++) logPrior[c] = Math.log(Math.max((prior[c] as number) / priorSum, 1e-300));
    for (let a = 0; a < A; a++)
      for (let c = 0; c < C; c++) {
        const row = a * C * C + c * C;
        let sum = 0;
        for (let l = 0; l < C; l++) sum += (counts[row + l] as number) + opts.smoothing;
        for (let l = 0; l < C; l++)
          logConf[row + l] = Math.log(Math.max(((counts[row + l] as number) + opts.smoothing) / sum, 1e-300));
      }
  };
  const eStep = (): number => {
    let moved = 0;
    const log = new Float64Array(C);
    for (let i = 0; i < n; i++) {
      if (start[i] === start[i + 1]) continue;
      log.set(logPrior);
      for (let k = start[i] as number; k < (start[i + 1] as number); k++) {
        const base = (who[k] as number) * C * C + (what[k] as number);
        for (let c = 0; c < C; c++) log[c] = (log[c] as number) + (logConf[base + c * C] as number);
      }
      let max = -Infinity;
      for (const v of log) if (v > max) max = v;
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp((log[c] as number) - max);
      for (let c = 0; c < C; c++) {
        const p = Math.exp((log[c] as number) - max) / sum;
        moved = Math.max(moved, Math.abs(p - (T[i * C + c] as number)));
        T[i * C + c] = p;
      }
    }
    return moved;
  };

  let iterations = 0;
  let converged = false;
  while (iterations < opts.maxIterations) {
    mStep();
    iterations++;
    if (eStep() < opts.tolerance) {
      converged = true;
      break;
    }
  }
  mStep(); // confusion matrices consistent with the final posteriors

  const consensus = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    if (start[i] === start[i + 1]) continue;
    let best = 0;
    for (let c = 1; c < C; c++) if ((T[i * C + c] as number) > (T[i * C + best] as number)) best = c;
    consensus[i] = best;
  }

  const annotated = new Float64Array(A);
  const correct = new Float64Array(A);
  for (let i = 0; i < n; i++)
    for (let k = start[i] as number; k < (start[i + 1] as number); k++) {
      const a = who[k] as number;
      annotated[a] = (annotated[a] as number) + 1;
      correct[a] = (correct[a] as number) + (T[i * C + (what[k] as number)] as number);
    }
  const reliability = names.map((annotator, a): AnnotatorReliability => {
    const confusion = Array.from({ length: C }, (_, c) => {
      const row = Array.from({ length: C }, (_, l) => counts[a * C * C + c * C + l] as number);
      const sum = row.reduce((x, y) => x + y, 0);
      return row.map((v) => (sum > 0 ? round(v / sum) : 0));
    });
    const m = annotated[a] as number;
    return {
      annotator,
      annotations: m,
      accuracy: m > 0 ? (correct[a] as number) / m : NaN,
      confusion,
      robustZ: 0,
      unreliable: false,
    };
  });
  scoreAnnotators(reliability, opts.annotatorZ, opts.annotatorMinGap);
  reliability.sort((x, y) => y.robustZ - x.robustZ || x.annotator.localeCompare(y.annotator));
  return {
    posteriors: T,
    consensus,
    majority,
    priors: Array.from(logPrior, (l) => round(Math.exp(l))),
    annotators: reliability,
    iterations,
    converged,
    posteriorWithout(list, excluded) {
      const log = Float64Array.from(logPrior);
      let used = 0;
      for (const a of list) {
        const k = index.get(a.annotator);
        if (k === undefined || excluded.has(a.annotator)) continue;
        used++;
        for (let c = 0; c < C; c++)
          log[c] = (log[c] as number) + (logConf[k * C * C + c * C + a.label] as number);
      }
      if (used === 0) return null;
      const max = Math.max(...log);
      const p = log.map((v) => Math.exp(v - max));
      const sum = p.reduce((x, y) => x + y, 0);
      return p.map((v) => v / sum);
    },
  };
}

// Robust z of each accuracy's deficit from the median. The spread has a floor at the binomial
// standard error of an accuracy measured on that annotator's count, so that identical honest
// annotators (MAD ≈ 0) do not turn sampling noise into findings.
function scoreAnnotators(list: AnnotatorReliability[], zLimit: number, minGap: number): void {
  const accuracies = list.map((a) => a.accuracy).filter((x) => Number.isFinite(x));
  if (accuracies.length < 3) return; // "anomalous among annotators" needs a crowd to compare with
  const median = medianOf(accuracies);
  const mad = 1.4826 * medianOf(accuracies.map((x) => Math.abs(x - median)));
  for (const a of list) {
    if (!Number.isFinite(a.accuracy) || a.annotations === 0) continue;
    const se = Math.sqrt(Math.max(median * (1 - median), 1e-4) / a.annotations);
    const spread = Math.max(mad, se);
    a.robustZ = round((median - a.accuracy) / spread);
    a.unreliable = a.robustZ >= zLimit && median - a.accuracy >= minGap;
  }
}

export const dawidSkene: Detector<DawidSkeneOptions> = {
  name: "dawid-skene",
  version: DAWID_SKENE_VERSION,

  appliesTo(table: ScanTable): string | null {
    if (table.annotations === undefined)
      return "needs several annotations per sample (an annotations column)";
    if (table.classes.length < 2) return `needs at least 2 classes, the dataset has ${table.classes.length}`;
    if (!table.annotations.some((list) => list.length >= 2)) return "no sample has two or more annotations";
    return null;
  },

  run(table: ScanTable, options: Partial<DawidSkeneOptions> = {}): DetectorResult {
    const why = this.appliesTo(table);
    if (why !== null) throw new AntidoteError("USAGE", `dawid-skene cannot run: ${why}`);
    const opts = parseOptions(dawidSkeneOptionsSchema, options, "dawid-skene options");
    const { labels, classes } = table;
    const C = classes.length;
    const n = labels.length;
    const fit = fitDawidSkene(table.annotations as ScanAnnotation[][], C, opts);
    const T = fit.posteriors;

    const scores = new Float64Array(n);
    const flagged = new Uint8Array(n);
    const findings: Finding[] = [];
    let disagreeMajority = 0;
    let annotatedSamples = 0;
    for (let i = 0; i < n; i++) {
      const y = labels[i] as number;
      const c = fit.consensus[i] as number;
      if (c >= 0) {
        annotatedSamples++;
        if (c !== fit.majority[i]) disagreeMajority++;
      }
      if (y < 0 || c < 0) {
        scores[i] = NaN;
        continue;
      }
      const wrong = 1 - (T[i * C + y] as number);
      scores[i] = wrong;
      if (wrong < opts.minPosterior || c === y) continue;
      flagged[i] = 1;
      findings.push({
        subjectType: "sample",
        subjectId: table.digests[i] as string,
        kind: "label-disagreement",
        score: round(wrong),
        evidence: {
          id: table.ids[i],
          givenLabel: classes[y],
          consensusLabel: classes[c],
          consensusPosterior: round(T[i * C + c] as number),
          annotations: (table.annotations?.[i] ?? []).map((a) => ({
            annotator: a.annotator,
            label: classes[a.label],
          })),
        },
        check: "dawid-skene",
        checkVersion: DAWID_SKENE_VERSION,
      });
    }
    const unreliable = unreliableAnnotations(table, fit, {
      name: "dawid-skene",
      version: DAWID_SKENE_VERSION,
    });
    for (const d of unreliable.decided) {
      scores[d.index] = Math.max(Number.isFinite(scores[d.index]) ? (scores[d.index] as number) : 0, d.score);
      if (flagged[d.index] === 1) continue;
      flagged[d.index] = 1;
      findings.push(d.finding);
    }
    findings.sort((a, b) => b.score - a.score);
    let givenDiffersFromConsensus = 0;
    for (let i = 0; i < n; i++) {
      const y = labels[i] as number;
      const c = fit.consensus[i] as number;
      if (y >= 0 && c >= 0 && y !== c) givenDiffersFromConsensus++;
    }

    const median = medianOf(fit.annotators.map((a) => a.accuracy).filter((x) => Number.isFinite(x)));
    for (const a of fit.annotators) {
      if (!a.unreliable) continue;
      findings.push({
        subjectType: "annotator",
        subjectId: a.annotator,
        kind: "unreliable-annotator",
        score: a.robustZ,
        evidence: {
          annotator: a.annotator,
          annotations: a.annotations,
          accuracy: round(a.accuracy),
          medianAccuracy: round(median),
          gap: round(median - a.accuracy),
          robustZ: a.robustZ,
          classes,
          confusion: a.confusion,
          annotationsToDrop:
            unreliable.perAnnotator.find((p) => p.annotator === a.annotator)?.drop.length ?? 0,
        },
        check: "dawid-skene",
        checkVersion: DAWID_SKENE_VERSION,
      });
    }

    const warnings: string[] = [];
    if (!fit.converged)
      warnings.push(`EM did not converge in ${fit.iterations} iterations; consensus is approximate`);
    if (fit.annotators.length < 3)
      warnings.push(
        `${fit.annotators.length} annotators: too few to tell which one is anomalous, none is judged`,
      );
    return {
      detector: "dawid-skene",
      version: DAWID_SKENE_VERSION,
      scores,
      flagged,
      threshold: {
        value: opts.minPosterior,
        method:
          "score = posterior probability that the given label is wrong under the Dawid–Skene consensus; flagged at " +
          `≥ ${opts.minPosterior}. Annotators: robust z of the accuracy deficit ≥ ${opts.annotatorZ} and a gap ≥ ${opts.annotatorMinGap}`,
      },
      findings,
      summary: {
        classes,
        priors: fit.priors,
        iterations: fit.iterations,
        converged: fit.converged,
        annotatedSamples,
        consensusDiffersFromMajority: disagreeMajority,
        givenDiffersFromConsensus,
        labelsDecidedByUnreliable: unreliable.decided.length,
        annotationsToDrop: unreliable.perAnnotator,
        medianAccuracy: round(median),
        annotators: fit.annotators.map((a) => ({ ...a, accuracy: round(a.accuracy) })),
      },
      warnings,
    };
  },
};

function medianOf(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
