// report.json for `antidote audit`: the audit as plain, schema-versioned JSON — which model (by
// digest), which references and clean data, the translation check, every label's reversed
// trigger (mask and pattern values included, so a consumer can redraw or re-apply them), the
// verdict and the rule behind it, STRIP's threshold and what it flagged, and what to do next. A
// consumer checks `schema` and `schemaVersion` first; fields are only ever added within a version.
import type { AuditedModel, AuditReport } from "./audit.js";
import type { ReversedTrigger } from "./neural-cleanse.js";
import { VERSION } from "../version.js";

export const AUDIT_REPORT_SCHEMA = "antidote.audit-report";
export const AUDIT_REPORT_SCHEMA_VERSION = 1;

export interface AuditLabelJson {
  label: number;
  className: string | null;
  /** ‖m‖₁ of the model's reversed trigger. */
  l1: number;
  /** Held-out attack success rate of the reversed trigger. */
  asr: number;
  /** MAD anomaly index among the model's labels (null when infinite). */
  anomalyIndex: number | null;
  /** Smallest reference ‖m‖₁ for this label, and referenceL1 / l1 (null without references). */
  referenceL1: number | null;
  ratio: number | null;
  suspected: boolean;
  steps: number;
  /** Whether the optimisation reached the ASR threshold. */
  reached: boolean;
  /** Each reference's mask norm and ASR for this label, in reference order. */
  references: { l1: number; asr: number }[];
  /** The reversed trigger: mask H×W and pattern C×H×W, values in [0, 1] rounded to 4 decimals. */
  mask: number[];
  pattern: number[];
}

export interface AuditReportJson {
  schema: typeof AUDIT_REPORT_SCHEMA;
  schemaVersion: typeof AUDIT_REPORT_SCHEMA_VERSION;
  tool: { name: "antidote"; version: string };
  createdAt: string;
  model: AuditedModelJson;
  references: AuditedModelJson[];
  data: AuditReport["data"];
  classes: string[] | null;
  verdict: {
    method: "reference" | "mad";
    note: string;
    backdoor: boolean;
    /** Suspected labels, strongest first. */
    suspected: {
      label: number;
      className: string | null;
      ratio: number | null;
      anomalyIndex: number | null;
      asr: number;
      l1: number;
    }[];
    thresholds: { ratio: number; minAsr: number; madThreshold: number };
  };
  labels: AuditLabelJson[];
  anomaly: { median: number; mad: number };
  inversion: {
    method: "neural-cleanse";
    imageShape: [number, number, number];
    samples: { optimisation: number; heldOut: number };
    labelSource: "dataset" | "model";
    settings: Record<string, number>;
    seconds: number;
    referenceSeconds: number[];
  };
  strip: {
    threshold: number;
    frr: number;
    observedFrr: number;
    perturbations: number;
    superimpose: string;
    cleanInputs: number;
    backgroundImages: number;
    /** Entropy histogram (bits): `edges` has one more entry than each count list. */
    histogram: { edges: number[]; clean: number[]; inputs: number[] | null };
    inputs: {
      name: string;
      count: number;
      flagged: number;
      flaggedRate: number;
      /** Flagged inputs, lowest entropy first (at most 1,000). */
      flaggedInputs: { id: string; entropy: number }[];
    } | null;
  } | null;
  ledger: AuditReport["ledger"];
  seed: number;
  timings: AuditReport["timings"];
  seconds: number;
  nextSteps: { why: string; command: string | null }[];
}

export type AuditedModelJson = Omit<AuditedModel, "translationMaxAbsDiff"> & {
  translationMaxAbsDiff: number | null;
};

export interface AuditReportContext {
  /** The model argument and --data as the user typed them, and the output directory. */
  model: string;
  data: string;
  outDir: string;
  createdAt?: string;
}

const HISTOGRAM_BINS = 30;
const MAX_FLAGGED_LISTED = 1000;

export function buildAuditReportJson(report: AuditReport, context: AuditReportContext): AuditReportJson {
  const v = report.verdict;
  const inv = report.inversion;
  const labels: AuditLabelJson[] = v.labels.map((l) => {
    const t = inv.triggers.find((x) => x.label === l.label) as ReversedTrigger;
    return {
      label: l.label,
      className: l.className,
      l1: round4(l.l1),
      asr: round4(l.asr),
      anomalyIndex: finite(l.anomalyIndex),
      referenceL1: l.referenceL1 === null ? null : round4(l.referenceL1),
      ratio: finite(l.ratio),
      suspected: l.suspected,
      steps: t.steps,
      reached: t.reached,
      references: report.referenceInversions.map((r) => {
        const rt = r.result.triggers.find((x) => x.label === l.label);
        return { l1: round4(rt?.l1 ?? NaN), asr: round4(rt?.asr ?? NaN) };
      }),
      mask: Array.from(t.mask, round4),
      pattern: Array.from(t.pattern, round4),
    };
  });
  const { onProgress: _p, ...settings } = inv.options as typeof inv.options & { onProgress?: unknown };
  return {
    schema: AUDIT_REPORT_SCHEMA,
    schemaVersion: AUDIT_REPORT_SCHEMA_VERSION,
    tool: { name: "antidote", version: VERSION },
    createdAt: context.createdAt ?? new Date().toISOString(),
    model: modelJson(report.model),
    references: report.references.map(modelJson),
    data: report.data,
    classes: report.classes,
    verdict: {
      method: v.method,
      note: v.note,
      backdoor: v.backdoor,
      suspected: v.suspected.map((l) => ({
        label: l.label,
        className: l.className,
        ratio: finite(l.ratio),
        anomalyIndex: finite(l.anomalyIndex),
        asr: round4(l.asr),
        l1: round4(l.l1),
      })),
      thresholds: v.thresholds,
    },
    labels,
    anomaly: { median: round4(inv.anomaly.median), mad: round4(inv.anomaly.mad) },
    inversion: {
      method: "neural-cleanse",
      imageShape: inv.imageShape,
      samples: inv.samples,
      labelSource: inv.labelSource,
      settings,
      seconds: round3(inv.seconds),
      referenceSeconds: report.referenceInversions.map((r) => round3(r.result.seconds)),
    },
    strip: stripJson(report),
    ledger: report.ledger,
    seed: report.seed,
    timings: report.timings,
    seconds: report.seconds,
    nextSteps: nextSteps(report, context),
  };
}

function modelJson(m: AuditedModel): AuditedModelJson {
  return { ...m, translationMaxAbsDiff: finite(m.translationMaxAbsDiff) };
}

function stripJson(report: AuditReport): AuditReportJson["strip"] {
  const s = report.strip;
  if (s === null) return null;
  const c = s.calibration;
  const inputs = s.inputs;
  const all = [...c.cleanEntropies, ...(inputs?.entropies ?? [])].filter(Number.isFinite);
  const top = Math.max(1e-6, ...all);
  const edges = Array.from({ length: HISTOGRAM_BINS + 1 }, (_, i) => round4((top * i) / HISTOGRAM_BINS));
  const histogram = (values: Float64Array) => {
    const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
    for (const h of values) {
      const bin = Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor((h / top) * HISTOGRAM_BINS)));
      counts[bin] = (counts[bin] ?? 0) + 1;
    }
    return counts;
  };
  let flaggedInputs: { id: string; entropy: number }[] = [];
  if (inputs !== null) {
    flaggedInputs = inputs.ids
      .map((id, i) => ({ id, entropy: inputs.entropies[i] as number }))
      .filter((e) => e.entropy < c.threshold)
      .sort((a, b) => a.entropy - b.entropy)
      .slice(0, MAX_FLAGGED_LISTED)
      .map((e) => ({ id: e.id, entropy: round4(e.entropy) }));
  }
  return {
    threshold: round4(c.threshold),
    frr: c.frr,
    observedFrr: round4(c.observedFrr),
    perturbations: c.perturbations,
    superimpose: c.superimpose,
    cleanInputs: c.cleanEntropies.length,
    backgroundImages: s.backgroundImages,
    histogram: {
      edges,
      clean: histogram(c.cleanEntropies),
      inputs: inputs === null ? null : histogram(inputs.entropies),
    },
    inputs:
      inputs === null
        ? null
        : {
            name: inputs.name,
            count: inputs.ids.length,
            flagged: inputs.flagged,
            flaggedRate: round4(inputs.flaggedRate),
            flaggedInputs,
          },
  };
}

/** What to do with the result, as commands with this audit's paths. */
export function nextSteps(report: AuditReport, context: AuditReportContext): AuditReportJson["nextSteps"] {
  const steps: AuditReportJson["nextSteps"] = [];
  const v = report.verdict;
  const model = shellQuote(context.model);
  const data = shellQuote(context.data);
  const out = shellQuote(context.outDir);
  if (v.backdoor) {
    const names = v.suspected.map((l) => l.className ?? String(l.label)).join(", ");
    steps.push({
      why: `Treat the model as backdoored towards ${names}: do not deploy it. Scan the data it was trained on; the poisoned samples are labelled ${names} and carry the trigger shown below.`,
      command: `antidote scan <training-data> --out ${shellQuote(`${context.outDir}-training-scan`)}`,
    });
    steps.push({
      why: "Screen inputs at inference with STRIP: inputs whose overlay entropy is below the threshold likely carry the trigger.",
      command: `antidote audit ${model} --data ${data} --inputs <inputs> --out ${out}`,
    });
  } else {
    steps.push({
      why: "No label needs a suspiciously small trigger. Keep report.json with the model as evidence of the check.",
      command: null,
    });
  }
  if (v.method === "mad")
    steps.push({
      why: "Without a reference the MAD index also flags labels that are naturally easy to reach. Compare with a known-clean model of the same task.",
      command: `antidote audit ${model} --data ${data} --reference <clean.onnx> --out ${out}`,
    });
  return steps;
}

/** Quote a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function finite(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : round4(x);
}

function round3(x: number): number {
  return Math.round(x * 1e3) / 1e3;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
