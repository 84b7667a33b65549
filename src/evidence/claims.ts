// The pieces every control's judgement is made of: findings grouped into one claim per check,
// finished jobs that ran on the lineage, and the small readers of event payloads (JSON kept as
// stored, read defensively: a payload written by an older or newer Antidote must not break a pack).
import type { DraftClaim, Facts } from "./controls.js";
import type * as q from "./queries.js";

/** Detectors whose flags point at a backdoor (a trigger shared by a target class). */
export const BACKDOOR_DETECTORS = new Set([
  "spectral-signature",
  "spectre",
  "activation-clustering",
  "trigger-patches",
  "trigger-tokens",
]);

/** One claim per (check, version, kind): how many subjects, the score range, every event. */
export function checkClaims(findings: readonly q.FindingRow[], on: string): DraftClaim[] {
  const groups = new Map<string, q.FindingRow[]>();
  for (const x of findings) {
    const key = `${x.check}\u0000${x.checkVersion}\u0000${x.kind}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [x]);
    else list.push(x);
  }
  return [...groups.values()].map((list) => {
    const first = list[0] as q.FindingRow;
    const subjects = new Set(list.map((x) => x.subjectId)).size;
    const detectors = [...new Set(list.flatMap((x) => detectorsOf(x)))].sort();
    return {
      statement: `Check ${first.check} ${first.checkVersion} recorded ${list.length} "${first.kind}" finding(s) on ${subjects} ${on}${detectors.length > 0 ? ` (detectors: ${detectors.join(", ")})` : ""}.`,
      result: summarizeScores(list),
      seqs: list.map((x) => x.seq),
    };
  });
}

/** Finished jobs of a kind ("scan", "audit") whose parameters name this lineage. */
export function jobClaims(f: Facts, kind: string): DraftClaim[] {
  const subjects = new Set([
    ...f.versions.map((v) => v.version),
    ...(f.model === undefined ? [] : [f.model.digest]),
  ]);
  const submitted = new Map<string, q.RawEvent>();
  for (const e of f.others) {
    if (e.kind !== "job.submitted") continue;
    const p = parseObject(e.payload);
    if (p.kind !== kind) continue;
    const params = JSON.stringify(p.parameters ?? {});
    if ([...subjects].some((s) => params.includes(s))) submitted.set(str(p.jobId), e);
  }
  const claims: DraftClaim[] = [];
  for (const e of f.others) {
    if (e.kind !== "job.finished") continue;
    const p = parseObject(e.payload);
    const start = submitted.get(str(p.jobId));
    if (start === undefined) continue;
    claims.push({
      statement: `A ${kind} job (${str(p.jobId)}) ran on this lineage.`,
      result: `${str(p.state)}${p.resultDigest === null || p.resultDigest === undefined ? "" : `, result sha256 ${str(p.resultDigest)}`}`,
      seqs: [start.seq, e.seq],
    });
  }
  return claims;
}

// `antidote audit` records its verdict under check "audit" (audit.ts AUDIT_CHECK); monitors
// record theirs on the same model under "monitor/<name>", which is not an audit.
export function isAudit(x: q.FindingRow): boolean {
  return x.check === "audit" || x.check.startsWith("audit/");
}

export function isBackdoorFinding(x: q.FindingRow): boolean {
  if (BACKDOOR_DETECTORS.has(x.check) || BACKDOOR_DETECTORS.has(x.kind)) return true;
  const detectors = detectorsOf(x);
  return detectors.length > 0 && detectors.every((d) => BACKDOOR_DETECTORS.has(d));
}

// The scan's per-sample finding names the detectors that flagged it (scan.ts `scanFindings`).
export function detectorsOf(x: q.FindingRow): string[] {
  const evidence = parseObject(x.evidence);
  const d = evidence.detectors;
  return Array.isArray(d) ? d.filter((v): v is string => typeof v === "string") : [];
}

export function summarizeScores(list: readonly q.FindingRow[]): string {
  const scores = list.map((x) => x.score);
  return `scores ${Math.min(...scores).toFixed(3)}–${Math.max(...scores).toFixed(3)}`;
}

export function countBy(values: readonly string[]): string {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m.entries()].map(([k, n]) => `${k}: ${n}`).join(", ");
}

export function transformKind(json: string): string | undefined {
  const t = parseObject(json);
  return typeof t.kind === "string" ? t.kind : undefined;
}

export function parseObject(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function str(v: unknown): string {
  return typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v);
}
