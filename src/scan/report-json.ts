// report.json: the scan's result as plain, schema-versioned JSON — what the dataset was, what the
// detectors saw it through, what each detector found and how long it took, which samples are
// flagged and why, which classes, sources and annotators stand out, and the commands to act on
// it. A consumer checks `schema` and `schemaVersion` before reading anything else; fields are
// only ever added within a version.
import { basename, extname, join } from "node:path";
import type { JsonValue } from "../data/sample.js";
import type { GroupRow } from "./ensemble.js";
import type { ExclusionCheckSummary } from "../detect/exclusion-check.js";
import { labelOf, toJson, type ScanReport } from "./scan.js";
import { VERSION } from "../version.js";

export const REPORT_SCHEMA = "antidote.scan-report";
export const REPORT_SCHEMA_VERSION = 1;

export interface NextStep {
  why: string;
  /** A command to run as is (arguments shell-quoted), or null when the step is not a command. */
  command: string | null;
}

export interface FlaggedSampleJson {
  /** Position in the dataset (0-based). */
  index: number;
  id: string;
  digest: string;
  label: string | null;
  source: string | null;
  risk: number;
  /** Decisive detectors that flagged it; empty when combined evidence alone did. */
  detectors: string[];
  /** Fisher's statistic over every detector's rank tail, log10 units. */
  combinedEvidence: number;
  /** Samples per scan expected to reach this combined evidence by chance. */
  expectedByChance: number;
  /** Each detector's rank-based upper-tail probability for this sample. */
  tails: Record<string, number>;
  /** Each flagging detector's own evidence (its finding). */
  evidence: Record<string, JsonValue>;
}

export interface ScanReportJson {
  schema: typeof REPORT_SCHEMA;
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  tool: { name: "antidote"; version: string };
  createdAt: string;
  /** The scan's dataset facts, plus the name the user gave (path or bundled name). */
  dataset: ScanReport["dataset"] & { name: string };
  representation: JsonValue;
  detectors: {
    name: string;
    version: string | null;
    status: "ran" | "skipped";
    reason?: string;
    seconds?: number;
    flagged?: number;
    decisive?: boolean;
    reliability?: number;
    threshold?: { value: number | null; method: string };
    summary?: JsonValue;
    warnings?: string[];
  }[];
  /** The exclusion check of the spectral detectors' minor modes (null when they flagged nothing). */
  exclusionCheck: ExclusionCheckSummary | null;
  ensemble: {
    method: string;
    flagged: number;
    flaggedRate: number;
    byDetectors: number;
    byCombinedEvidenceOnly: number;
    riskThreshold: number;
    combinedEvidenceThreshold: number | null;
  };
  flagged: FlaggedSampleJson[];
  classes: JsonValue;
  sources: JsonValue;
  unattributedSamples: number;
  annotators: JsonValue;
  triggers: JsonValue;
  /** Image patterns that carry a label (detect/trigger-patches.ts): region, pattern, target, counts. */
  imageTriggers: JsonValue;
  timings: { stage: string; seconds: number }[];
  seconds: number;
  ledger: JsonValue;
  nextSteps: NextStep[];
  warnings: string[];
}

export interface ReportContext {
  /** The dataset argument as the user typed it. */
  dataset: string;
  /** Directory the reports are written to (used in suggested commands). */
  outDir: string;
  /** `--ledger` as given, repeated in suggested commands; omitted when the default was used. */
  ledgerFlag?: string;
  createdAt?: string;
}

export function buildReportJson(report: ScanReport, context: ReportContext): ScanReportJson {
  const { table, ensemble } = report;
  const byName = new Map(report.results.map((r) => [r.detector, r]));
  const roles = new Map(ensemble.detectors.map((r) => [r.detector, r]));
  const detectors: ScanReportJson["detectors"] = [];
  for (const r of report.results) {
    const role = roles.get(r.detector);
    detectors.push({
      name: r.detector,
      version: r.version,
      status: "ran",
      seconds: r.seconds,
      flagged: role?.flagged ?? 0,
      decisive: role?.decisive ?? true,
      reliability: role?.reliability ?? 0,
      threshold: { value: numberOrNull(r.threshold.value), method: r.threshold.method },
      summary: toJson(r.summary),
      warnings: r.warnings,
      ...(role?.reason !== undefined ? { reason: role.reason } : {}),
    });
  }
  for (const s of report.skipped)
    if (!byName.has(s.detector))
      detectors.push({ name: s.detector, version: null, status: "skipped", reason: s.reason });

  const flagged: FlaggedSampleJson[] = [];
  ensemble.flagged.forEach((f, i) => {
    if (f !== 1) return;
    const tails: Record<string, number> = {};
    report.results.forEach((r, d) => (tails[r.detector] = round6(ensemble.tails[d]?.[i] ?? 1)));
    flagged.push({
      index: i,
      id: table.ids[i] as string,
      digest: table.digests[i] as string,
      label: labelOf(table, i),
      source: table.sources?.[i] ?? null,
      risk: round6(ensemble.risk[i] as number),
      detectors: ensemble.flaggedBy[i] ?? [],
      combinedEvidence: round6(ensemble.evidence[i] as number),
      expectedByChance: round6(ensemble.chance[i] as number),
      tails,
      evidence: toJson(report.evidence.get(i) ?? {}) as Record<string, JsonValue>,
    });
  });
  flagged.sort((a, b) => b.risk - a.risk || a.index - b.index);

  const triggers = report.results.flatMap((r) =>
    r.findings
      .filter((f) => f.kind === "trigger-token" && f.subjectType === "dataset")
      .map((f) => ({ ...f.evidence, score: f.score })),
  );
  const imageTriggers = report.results.flatMap((r) =>
    r.findings
      .filter((f) => f.kind === "trigger-patch" && f.subjectType === "dataset")
      .map((f) => ({ ...f.evidence, score: f.score })),
  );
  const n = report.dataset.samples;
  return {
    schema: REPORT_SCHEMA,
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: "antidote", version: VERSION },
    createdAt: context.createdAt ?? new Date().toISOString(),
    dataset: { name: context.dataset, ...report.dataset },
    representation: toJson(report.representation),
    detectors,
    exclusionCheck: report.exclusionCheck,
    ensemble: {
      method: ensemble.threshold.method,
      flagged: flagged.length,
      flaggedRate: round6(n > 0 ? flagged.length / n : 0),
      byDetectors: flagged.length - ensemble.combinedOnly.length,
      byCombinedEvidenceOnly: ensemble.combinedOnly.length,
      riskThreshold: ensemble.threshold.risk,
      combinedEvidenceThreshold: numberOrNull(ensemble.threshold.evidence),
    },
    flagged,
    classes: toJson(ensemble.classes),
    sources: toJson(ensemble.sources.map(groupJson)),
    unattributedSamples: ensemble.unattributed,
    annotators: toJson(ensemble.annotators.map(groupJson)),
    triggers: toJson(triggers),
    imageTriggers: toJson(imageTriggers),
    timings: report.timings,
    seconds: report.seconds,
    ledger: toJson(report.ledger),
    nextSteps: nextSteps(report, context),
    warnings: report.warnings,
  };
}

function groupJson(g: GroupRow): Record<string, unknown> {
  const { findings, ...rest } = g;
  return {
    ...rest,
    findings: findings.map((f) => ({ check: f.check, kind: f.kind, score: f.score, evidence: f.evidence })),
  };
}

/** What to do with the result: the exact commands, with this scan's dataset, ledger and paths. */
export function nextSteps(report: ScanReport, context: ReportContext): NextStep[] {
  const steps: NextStep[] = [];
  const flagged = report.ensemble.flagged.reduce((a, f) => a + f, 0);
  const ledger = context.ledgerFlag !== undefined ? ` --ledger ${shellQuote(context.ledgerFlag)}` : "";
  const date = (context.createdAt ?? new Date().toISOString()).slice(0, 10);
  const badSources = report.ensemble.sources.filter((s) => s.anomalous).map((s) => s.name);
  const badAnnotators = report.ensemble.annotators.filter((a) => a.anomalous).map((a) => a.name);
  const versions = report.ledger?.datasetVersions ?? [];
  const version = versions[0] ?? "<dataset-version>";
  const cleanOut = shellQuote(join(context.outDir, `clean${cleanExtension(report.dataset.path)}`));

  if (flagged === 0 && badSources.length === 0 && badAnnotators.length === 0) {
    steps.push({
      why: "Nothing was flagged. Keep report.json with the dataset as evidence of the check; scan again when new data arrives.",
      command: null,
    });
    return steps;
  }
  if (report.ledger === null) {
    steps.push({
      why: "Record the findings in a ledger so they can be quarantined and left out of a clean export.",
      command: `antidote scan ${shellQuote(context.dataset)} --ledger .antidote/ledger.db --out ${shellQuote(context.outDir)}`,
    });
  }
  if (flagged > 0)
    steps.push({
      why: `Quarantine the ${flagged} flagged samples (every sample finding of this scan scores above 0.5).`,
      command: `antidote quarantine --findings-over 0.5 --reason ${shellQuote(`antidote scan ${date}: ${flagged} flagged samples`)}${ledger}`,
    });
  for (const s of badSources) {
    steps.push({
      why: `See everything source "${s}" delivered and which versions and models it reached.`,
      command: `antidote trace --source ${shellQuote(s)}${ledger}`,
    });
    steps.push({
      why: `Quarantine source "${s}" as a whole if its deliveries cannot be trusted (it must be registered with \`antidote source add\`).`,
      command: `antidote quarantine --source ${shellQuote(s)} --reason ${shellQuote(`antidote scan ${date}: anomalous source`)}${ledger}`,
    });
  }
  if (badAnnotators.length > 0)
    steps.push({
      why: `Re-label or drop the annotations of ${badAnnotators.map((a) => `"${a}"`).join(", ")}: ${badAnnotators.length === 1 ? "its" : "their"} labels disagree with the consensus far more than the other annotators'.`,
      command: null,
    });
  const excludeSources = badSources.map((s) => ` --exclude-source ${shellQuote(s)}`).join("");
  steps.push({
    why:
      versions.length > 0
        ? `Export a clean version of ${version} without the quarantined samples${badSources.length > 0 ? " and the anomalous sources" : ""}.`
        : "Export a clean version: the dataset is not a version in the ledger yet, so ingest it first (`antidote ingest`) and use the version it prints.",
    command: `antidote export --dataset ${shellQuote(version)} --exclude-quarantined${excludeSources} --out ${cleanOut}${ledger}`,
  });
  if (
    report.results.some((r) =>
      r.findings.some((f) => f.kind === "trigger-token" && f.subjectType === "dataset"),
    )
  )
    steps.push({
      why: "A text trigger was found: any model already trained on this data may carry the backdoor; retrain it on the clean export.",
      command: null,
    });
  return steps;
}

function cleanExtension(path: string): string {
  const ext = extname(basename(path).replace(/\.gz$/i, "")).toLowerCase();
  return [".jsonl", ".csv", ".parquet"].includes(ext) ? ext : ".parquet";
}

/** POSIX shell quoting: bare when safe, else single quotes. */
export function shellQuote(s: string): string {
  if (/^[\w@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function numberOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
