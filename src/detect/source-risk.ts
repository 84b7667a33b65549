// Per-source and per-annotator risk from the detectors' per-sample flags: a compromised
// supplier shows up as a source whose samples are flagged far more often than everyone
// else's. Each source is tested against the rest with a one-sided exact test (Fisher's, i.e.
// the hypergeometric upper tail, so a source of five samples is judged as fairly as one of
// five thousand), once per detector and once for "any detector"; all tests are corrected
// together with Holm's step-down method, so the chance that any honest source is named stays
// below `alpha` whatever the number of sources and detectors.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import { logBinomialTail, logHypergeometricTail } from "../math/tails.js";
import type { DetectorResult, ScanTable } from "./types.js";

export const SOURCE_RISK_VERSION = "1.0.0";

export const sourceRiskOptionsSchema = z.object({
  /** Family-wise error rate over every (group, detector) test. */
  alpha: z.number().gt(0).lt(1).default(0.01),
  /** A group is anomalous only if its flagged rate is also at least this multiple of the others' rate. */
  minRateRatio: z.number().min(1).default(1.5),
});
export type SourceRiskOptions = z.input<typeof sourceRiskOptionsSchema>;

export interface GroupRisk {
  name: string;
  /** Samples from the source (for an annotator: labeled samples it annotated). */
  samples: number;
  /** Of those, flagged by any detector (for an annotator: flagged while it gave the flagged label). */
  flagged: number;
  rate: number;
  /** Flagged count expected if flags were spread evenly over the groups. */
  expected: number;
  /** The others' flagged rate in the test that gave `pValue`. */
  othersRate: number;
  /** Holm-adjusted one-sided p-value of the strongest test (the detector in `test`); it underflows to
   * 0 for overwhelming evidence, where `score` stays finite. */
  pValue: number;
  /** −log10(pValue): the ranking key. */
  score: number;
  /** "any" or the detector whose flags gave the strongest evidence. */
  test: string;
  anomalous: boolean;
  /** Flagged samples of this group per detector. */
  flaggedBy: Record<string, number>;
}

export interface SourceRiskReport {
  /** Sources ranked by evidence, strongest first. */
  sources: GroupRisk[];
  /** Annotators ranked by evidence (empty without annotations). */
  annotators: GroupRisk[];
  /** Samples with no known source (left out of the source tests). */
  unattributed: number;
  findings: Finding[];
}

/**
 * Which sources (and annotators) carry significantly more flagged samples than the rest.
 * `results` are other detectors' results on the same table (same sample order).
 */
export function sourceRisk(
  table: ScanTable,
  results: readonly DetectorResult[],
  options: SourceRiskOptions = {},
): SourceRiskReport {
  const opts = parseOptions(sourceRiskOptionsSchema, options, "source-risk options");
  const n = table.labels.length;
  for (const r of results) {
    if (r.flagged.length !== n)
      throw new AntidoteError(
        "USAGE",
        `source-risk: detector "${r.detector}" flagged ${r.flagged.length} samples but the table has ${n}`,
      );
  }
  const any = new Uint8Array(n);
  for (const r of results) for (let i = 0; i < n; i++) any[i] = (any[i] as number) | (r.flagged[i] as number);
  // With one detector "any" is that detector: one test, not two identical ones.
  const families: { name: string; flagged: Uint8Array }[] = results.map((r) => ({
    name: r.detector,
    flagged: r.flagged,
  }));
  if (results.length > 1) families.push({ name: "any", flagged: any });

  const sourceGroups = groupBySource(table);
  const sources = rankGroups(sourceGroups.groups, families, any, "partition", opts);
  const annotators =
    table.annotations === undefined
      ? []
      : rankGroups(groupByAnnotator(table), families, any, "overlap", opts);

  const findings: Finding[] = [];
  const finding = (subjectType: "source" | "annotator", kind: string, g: GroupRisk): Finding => ({
    subjectType,
    subjectId: g.name,
    kind,
    score: g.score,
    evidence: {
      samples: g.samples,
      flagged: g.flagged,
      rate: g.rate,
      expected: g.expected,
      othersRate: g.othersRate,
      pValue: g.pValue,
      test: g.test,
      flaggedBy: g.flaggedBy,
    },
    check: "source-risk",
    checkVersion: SOURCE_RISK_VERSION,
  });
  for (const g of sources) if (g.anomalous) findings.push(finding("source", "anomalous-source", g));
  for (const g of annotators) if (g.anomalous) findings.push(finding("annotator", "anomalous-annotator", g));
  return { sources, annotators, unattributed: sourceGroups.unattributed, findings };
}

// A group: its member samples, and for each member whether it "counts" when flagged (a source
// answers for all its samples; an annotator only for those where it gave the given label).
interface Group {
  name: string;
  members: Int32Array;
  answersFor: Uint8Array;
}

function groupBySource(table: ScanTable): { groups: Group[]; unattributed: number } {
  const bySource = new Map<string, number[]>();
  let unattributed = 0;
  const n = table.labels.length;
  for (let i = 0; i < n; i++) {
    const s = table.sources?.[i] ?? null;
    if (s === null) {
      unattributed++;
      continue;
    }
    const list = bySource.get(s) ?? [];
    list.push(i);
    bySource.set(s, list);
  }
  const groups = [...bySource].map(([name, list]) => ({
    name,
    members: Int32Array.from(list),
    answersFor: new Uint8Array(list.length).fill(1),
  }));
  return { groups, unattributed };
}

function groupByAnnotator(table: ScanTable): Group[] {
  const byAnnotator = new Map<string, { members: number[]; answers: number[] }>();
  (table.annotations ?? []).forEach((list, i) => {
    const y = table.labels[i] as number;
    if (y < 0) return;
    for (const a of list) {
      const g = byAnnotator.get(a.annotator) ?? { members: [], answers: [] };
      g.members.push(i);
      g.answers.push(a.label === y ? 1 : 0);
      byAnnotator.set(a.annotator, g);
    }
  });
  return [...byAnnotator].map(([name, g]) => ({
    name,
    members: Int32Array.from(g.members),
    answersFor: Uint8Array.from(g.answers),
  }));
}

interface Test {
  group: number;
  family: string;
  logP: number;
  othersRate: number;
  ratio: number;
}

function rankGroups(
  groups: readonly Group[],
  families: readonly { name: string; flagged: Uint8Array }[],
  any: Uint8Array,
  layout: "partition" | "overlap",
  opts: z.output<typeof sourceRiskOptionsSchema>,
): GroupRisk[] {
  // counts[f][g]: flagged members of group g that it answers for, under family f.
  const counts = families.map((f) =>
    groups.map((g) => {
      let k = 0;
      for (let m = 0; m < g.members.length; m++)
        if ((g.answersFor[m] as number) === 1 && (f.flagged[g.members[m] as number] as number) === 1) k++;
      return k;
    }),
  );
  const sizes = groups.map((g) => g.members.length);
  const N = sizes.reduce((a, b) => a + b, 0);

  const tests: Test[] = [];
  families.forEach((family, f) => {
    const row = counts[f] as number[];
    const F = row.reduce((a, b) => a + b, 0);
    if (F === 0) return; // a detector that flagged nothing here has nothing to say
    groups.forEach((_, g) => {
      const k = row[g] as number;
      const size = sizes[g] as number;
      const restN = N - size;
      const restF = F - k;
      const othersRate = restN > 0 ? restF / restN : 0;
      const rate = size > 0 ? k / size : 0;
      // Partition: exact conditional test (Fisher). Overlapping groups (annotators share samples):
      // binomial against the others' rate, smoothed so that a rest with no flags is not certainty.
      const logP =
        layout === "partition"
          ? logHypergeometricTail(k, N, F, size)
          : logBinomialTail(k, size, (restF + 0.5) / (restN + 1));
      tests.push({
        group: g,
        family: family.name,
        logP,
        othersRate,
        ratio: othersRate > 0 ? rate / othersRate : Infinity,
      });
    });
  });
  holmInPlace(tests);

  const best = new Map<number, Test>();
  for (const t of tests) {
    const b = best.get(t.group);
    if (b === undefined || t.logP < b.logP) best.set(t.group, t);
  }
  const anyCounts = groups.map((g) => {
    let k = 0;
    for (let m = 0; m < g.members.length; m++)
      if ((g.answersFor[m] as number) === 1 && (any[g.members[m] as number] as number) === 1) k++;
    return k;
  });
  const anyTotal = anyCounts.reduce((a, b) => a + b, 0);
  const rows = groups.map((g, gi): GroupRisk => {
    const t = best.get(gi);
    const size = sizes[gi] as number;
    const flagged = anyCounts[gi] as number;
    const flaggedBy: Record<string, number> = {};
    families.forEach((f, fi) => {
      if (f.name !== "any") flaggedBy[f.name] = (counts[fi] as number[])[gi] as number;
    });
    const logP = t?.logP ?? 0;
    return {
      name: g.name,
      samples: size,
      flagged,
      rate: round(size > 0 ? flagged / size : 0),
      expected: round(N > 0 ? (size * anyTotal) / N : 0),
      othersRate: round(t?.othersRate ?? 0),
      pValue: Math.exp(logP),
      score: round(-logP / Math.LN10),
      test: t?.family ?? "none",
      anomalous: t !== undefined && logP < Math.log(opts.alpha) && t.ratio >= opts.minRateRatio,
      flaggedBy,
    };
  });
  return rows.sort((a, b) => b.score - a.score || b.rate - a.rate || a.name.localeCompare(b.name));
}

// Holm (1979): the i-th smallest of m p-values is multiplied by m − i + 1, then made monotone.
// In log space so that p-values of 1e-300 and below keep their order.
function holmInPlace(tests: Test[]): void {
  const m = tests.length;
  const order = tests.map((_, i) => i).sort((a, b) => (tests[a] as Test).logP - (tests[b] as Test).logP);
  let running = -Infinity;
  order.forEach((ti, rank) => {
    const t = tests[ti] as Test;
    const adjusted = Math.min(0, t.logP + Math.log(m - rank));
    running = Math.max(running, adjusted);
    t.logP = running;
  });
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
