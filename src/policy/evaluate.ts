// What a policy says about the ledger as it is now, without writing anything: each source's
// effective rule (precedence in schema.ts), the decisions its autoQuarantine and maxFlagRate
// rules would record, the versions that lack a required scan, the sources below their minimum
// reputation. `policy check` prints this; `policy apply` and enforce.ts record the decisions.
//
// A scan "has run" on a version when the ledger holds a `transform.recorded` event of kind
// "scan" on that version naming the detector in `parameters.detectors` (recordScanCoverage in
// enforce.ts writes it): coverage is evidence in the log, not a claim in a report file.
import { sql } from "kysely";
import { AntidoteError } from "../errors.js";
import { ledgerConnection } from "../ledger/index.js";
import type { Decision, LedgerReader, Source } from "../ledger/types.js";
import { sourceReputations, type ReputationOptions, type SourceReputation } from "./reputation.js";
import type { Policy, Rule, RuleField } from "./schema.js";

/** A policy with its identity, as loaded from a file or read back from its adoption event. */
export interface PolicyRef {
  policy: Policy;
  digest: string;
  /** Where it came from, for messages: a file path, or `ledger event #<seq>`. */
  origin: string;
  positions?: Map<string, { line: number; col: number }>;
}

/** A field's value and the rule that set it ("kinds.supplier", "sources.acme"). */
export type EffectiveRule = { [F in RuleField]?: { value: NonNullable<Rule[F]>; rule: string } };

/** The actor a policy's decisions are recorded under. */
export function policyActor(ref: PolicyRef): string {
  return `policy:${ref.policy.name}@${ref.digest.slice(0, 12)}`;
}

/** The rule that applies to `source`, field by field; INPUT_FORMAT when two patterns disagree. */
export function ruleFor(ref: PolicyRef, source: Pick<Source, "name" | "kind">): EffectiveRule {
  const { policy } = ref;
  const out: EffectiveRule = {};
  const layer = (rule: Rule | undefined, id: string): void => {
    if (rule === undefined) return;
    for (const [field, value] of Object.entries(rule))
      if (value !== undefined) Object.assign(out, { [field]: { value, rule: id } });
  };
  layer(policy.defaults, "defaults");
  layer(policy.kinds?.[source.kind], `kinds.${source.kind}`);
  const named = policy.sources ?? {};
  if (named[source.name] !== undefined) {
    layer(named[source.name], `sources.${source.name}`);
    return out;
  }
  const matching = Object.keys(named).filter((k) => k.includes("*") && globMatches(k, source.name));
  for (const [i, a] of matching.entries())
    for (const b of matching.slice(i + 1)) {
      const ra = named[a] as Rule;
      const rb = named[b] as Rule;
      for (const field of Object.keys(ra) as RuleField[])
        if (rb[field] !== undefined && JSON.stringify(ra[field]) !== JSON.stringify(rb[field]))
          throw new AntidoteError(
            "INPUT_FORMAT",
            `${where(ref, `sources.${b}`)}: sources.${b}.${field}: source "${source.name}" is also matched by sources.${a}${ref.positions?.get(`sources.${a}`) !== undefined ? ` (line ${ref.positions.get(`sources.${a}`)?.line})` : ""} with a different ${field}: contradictory rules — name the source exactly to settle it.`,
          );
    }
  for (const k of matching) layer(named[k], `sources.${k}`);
  return out;
}

function where(ref: PolicyRef, rule: string): string {
  const pos = ref.positions?.get(rule);
  return pos === undefined ? ref.origin : `${ref.origin}:${pos.line}:${pos.col}`;
}

function globMatches(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(name);
}

// ── decisions the policy would record ────────────────────────────────────────────────────
export interface PlannedDecision {
  decision: Decision & { policy: { digest: string; rule: string } };
}

/**
 * The quarantines the policy makes on the ledger as it is: autoQuarantine on recorded
 * findings, maxFlagRate per delivery. Subjects already quarantined are left out, so running
 * it twice records nothing the second time; nothing is ever released by a policy.
 */
export async function planDecisions(ledger: LedgerReader, ref: PolicyRef): Promise<PlannedDecision[]> {
  const db = ledgerConnection(ledger);
  const sources = await ledger.listSources();
  const rules = new Map(sources.map((s) => [s.name, ruleFor(ref, s)]));
  const quarantined = await db
    .selectFrom("quarantine")
    .select(["subject_type", "subject_id"])
    .where("quarantined", "=", 1)
    .execute();
  const isQuarantined = new Set(quarantined.map((q) => `${q.subject_type}:${q.subject_id}`));
  const bySubject = new Map<
    string,
    { rule: string; reason: string; type: "sample" | "source"; ids: Set<string> }
  >();
  const plan = (type: "sample" | "source", id: string, rule: string, reason: string): void => {
    if (isQuarantined.has(`${type}:${id}`)) return;
    const key = `${type}|${rule}|${reason}`;
    const entry = bySubject.get(key) ?? { rule, reason, type, ids: new Set<string>() };
    entry.ids.add(id);
    bySubject.set(key, entry);
  };

  // autoQuarantine: findings on samples (ruled by the sources they came from) and on sources.
  const hasAuto = [...rules.values()].some((r) => r.autoQuarantine !== undefined);
  if (hasAuto) {
    const sampleFindings = await sql<{
      source: string;
      digest: string;
      kind: string;
      score: number | string;
    }>`
      select o.source as source, f.subject_id as digest, f.kind as kind, max(f.score) as score
      from findings f join sample_origins o on o.digest = f.subject_id
      where f.subject_type = 'sample'
      group by o.source, f.subject_id, f.kind`.execute(db);
    for (const f of sampleFindings.rows) {
      const auto = rules.get(f.source)?.autoQuarantine;
      auto?.value.forEach((entry, j) => {
        if (!entry.findings.includes(f.kind) || Number(f.score) < entry.minScore) return;
        const rule = `${auto.rule}.autoQuarantine[${j}]`;
        const reason = `rule ${rule}: ${f.kind} findings scored ${entry.minScore} or more`;
        if (entry.target === "sample") plan("sample", f.digest, rule, reason);
        else plan("source", f.source, rule, reason);
      });
    }
    const sourceFindings = await db
      .selectFrom("findings")
      .select(["subject_id", "kind", "score"])
      .where("subject_type", "=", "source")
      .execute();
    for (const f of sourceFindings) {
      const auto = rules.get(f.subject_id)?.autoQuarantine;
      auto?.value.forEach((entry, j) => {
        if (!entry.findings.includes(f.kind) || Number(f.score) < entry.minScore) return;
        const rule = `${auto.rule}.autoQuarantine[${j}]`;
        plan(
          "source",
          f.subject_id,
          rule,
          `rule ${rule}: ${f.kind} finding on the source scored ${entry.minScore} or more`,
        );
      });
    }
  }

  // maxFlagRate: per delivery, the share of its samples with a finding.
  const hasRate = [...rules.values()].some((r) => r.maxFlagRate !== undefined);
  if (hasRate) {
    const rates = await sql<{
      delivery: string;
      source: string;
      total: number | string;
      flagged: number | string;
    }>`
      select o.delivery_id as delivery, o.source as source, count(distinct o.digest) as total,
        count(distinct case when exists (
          select 1 from findings f where f.subject_type = 'sample' and f.subject_id = o.digest
        ) then o.digest end) as flagged
      from sample_origins o group by o.delivery_id, o.source`.execute(db);
    const over = rates.rows.filter((r) => {
      const max = rules.get(r.source)?.maxFlagRate?.value;
      return max !== undefined && Number(r.flagged) / Math.max(1, Number(r.total)) > max;
    });
    for (const r of over) {
      const max = rules.get(r.source)?.maxFlagRate;
      if (max === undefined) continue;
      const rule = `${max.rule}.maxFlagRate`;
      const share = Number(r.flagged) / Math.max(1, Number(r.total));
      const reason = `rule ${rule}: delivery ${r.delivery} has ${(100 * share).toFixed(1)}% of its samples flagged, over ${100 * max.value}%`;
      const members = await db
        .selectFrom("sample_origins")
        .select("digest")
        .distinct()
        .where("delivery_id", "=", r.delivery)
        .execute();
      for (const m of members) plan("sample", m.digest, rule, reason);
    }
  }

  return [...bySubject.values()].map((e) => ({
    decision: {
      action: "quarantine" as const,
      subjectType: e.type,
      subjectIds: [...e.ids].sort(),
      actor: policyActor(ref),
      reason: e.reason,
      policy: { digest: ref.digest, rule: e.rule },
    },
  }));
}

// ── required scans ───────────────────────────────────────────────────────────────────────
export interface MissingScans {
  version: string;
  /** Detectors required and not recorded as run, each with the rule that requires it. */
  missing: { detector: string; rule: string; source: string }[];
}

/** Versions (all, or `only`) lacking a scan their sources' rules require. */
export async function missingScans(
  ledger: LedgerReader,
  ref: PolicyRef,
  only?: readonly string[],
): Promise<MissingScans[]> {
  const db = ledgerConnection(ledger);
  const sources = new Map((await ledger.listSources()).map((s) => [s.name, ruleFor(ref, s)]));
  if (![...sources.values()].some((r) => r.requiredScans !== undefined)) return [];
  let reach = db.selectFrom("version_sources").select(["version", "source"]).where("samples", ">", 0);
  if (only !== undefined) reach = reach.where("version", "in", only.length === 0 ? [""] : [...only]);
  const rows = await reach.execute();
  const coverage = await scanCoverage(ledger);
  const byVersion = new Map<string, MissingScans>();
  for (const r of rows) {
    const required = sources.get(r.source)?.requiredScans;
    if (required === undefined) continue;
    const ran = coverage.get(r.version) ?? new Set<string>();
    for (const detector of required.value)
      if (!ran.has(detector)) {
        const entry = byVersion.get(r.version) ?? { version: r.version, missing: [] };
        if (!entry.missing.some((m) => m.detector === detector))
          entry.missing.push({ detector, rule: `${required.rule}.requiredScans`, source: r.source });
        byVersion.set(r.version, entry);
      }
  }
  return [...byVersion.values()].sort((a, b) => a.version.localeCompare(b.version));
}

/** Detectors recorded as run, per version (`transform.recorded` of kind "scan"). */
export async function scanCoverage(ledger: LedgerReader): Promise<Map<string, Set<string>>> {
  const rows = await ledgerConnection(ledger)
    .selectFrom("transforms")
    .select(["subject", "parameters"])
    .where("kind", "=", "scan")
    .execute();
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    const detectors = (JSON.parse(r.parameters) as { detectors?: unknown }).detectors;
    const set = out.get(r.subject) ?? new Set<string>();
    if (Array.isArray(detectors)) for (const d of detectors) if (typeof d === "string") set.add(d);
    out.set(r.subject, set);
  }
  return out;
}

// ── the dry run ──────────────────────────────────────────────────────────────────────────
export interface PolicyCheck {
  policy: { name: string; version: string; digest: string };
  sources: number;
  /** Sources whose reputation is under their rule's minReputation: their deliveries would be refused. */
  belowMinReputation: {
    source: string;
    kind: string;
    reputation: number;
    minReputation: number;
    rule: string;
  }[];
  /** Versions that could not be exported (or trained on, for a registered model) now. */
  missingScans: MissingScans[];
  /** The quarantines applying the policy would record now. */
  decisions: PlannedDecision["decision"][];
  /** Samples and sources those decisions would quarantine. */
  wouldQuarantine: { samples: number; sources: number };
}

/** What adopting `ref` would change now; writes nothing. */
export async function checkPolicy(
  ledger: LedgerReader,
  ref: PolicyRef,
  options: ReputationOptions = {},
): Promise<PolicyCheck> {
  const sources = await ledger.listSources();
  const rules = new Map(sources.map((s) => [s.name, ruleFor(ref, s)]));
  const needsReputation = [...rules.values()].some((r) => r.minReputation !== undefined);
  const reputations: SourceReputation[] = needsReputation ? await sourceReputations(ledger, options) : [];
  const belowMinReputation = reputations.flatMap((r) => {
    const min = rules.get(r.source)?.minReputation;
    return min !== undefined && r.score < min.value
      ? [
          {
            source: r.source,
            kind: r.kind,
            reputation: r.score,
            minReputation: min.value,
            rule: `${min.rule}.minReputation`,
          },
        ]
      : [];
  });
  const decisions = (await planDecisions(ledger, ref)).map((p) => p.decision);
  return {
    policy: { name: ref.policy.name, version: ref.policy.version, digest: ref.digest },
    sources: sources.length,
    belowMinReputation,
    missingScans: await missingScans(ledger, ref),
    decisions,
    wouldQuarantine: {
      samples: new Set(decisions.filter((d) => d.subjectType === "sample").flatMap((d) => d.subjectIds)).size,
      sources: new Set(decisions.filter((d) => d.subjectType === "source").flatMap((d) => d.subjectIds)).size,
    },
  };
}
