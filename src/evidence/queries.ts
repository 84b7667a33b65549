// The reads an evidence pack needs, as a handful of set queries on the ledger's own tables
// instead of one reader call per sample: a model's lineage can hold 60,000 samples, and the
// pack must be built in seconds. Every row carries the `seq` of the event that recorded it, so
// each claim can link the event that proves it; `eventRefs` then reads those events' hashes
// and actors in one pass. Nothing here writes. Both backends run the same Kysely queries.
import { sql, type Selectable } from "kysely";
import type { FindingsTable, LedgerDb } from "../ledger/database.js";

/** Largest IN list sent in one statement (SQLite's default bound-parameter limit is 32,766). */
const CHUNK = 5_000;

export interface VersionRow {
  version: string;
  name: string;
  parent: string | null;
  merkleRoot: string;
  sampleCount: number;
  transform: string;
  createdAt: string;
  seq: number;
}

export interface ModelRow {
  digest: string;
  name: string;
  baseModel: string | null;
  format: string;
  registeredAt: string;
  seq: number;
  trainedOn: string[];
}

export async function modelRow(db: LedgerDb, digest: string): Promise<ModelRow | undefined> {
  const row = await db.selectFrom("models").selectAll().where("digest", "=", digest).executeTakeFirst();
  if (row === undefined) return undefined;
  const trained = await db
    .selectFrom("model_trained_on")
    .select("version")
    .where("model", "=", digest)
    .execute();
  return {
    digest: row.digest,
    name: row.name,
    baseModel: row.base_model,
    format: row.format,
    registeredAt: row.registered_at,
    seq: row.seq,
    trainedOn: trained.map((t) => t.version).sort(),
  };
}

/** Registered models whose digest starts with `prefix` (at most 2: enough to say "ambiguous"). */
export async function modelsByPrefix(db: LedgerDb, prefix: string): Promise<string[]> {
  const rows = await db
    .selectFrom("models")
    .select("digest")
    .where("digest", "like", `${prefix.replace(/[%_]/g, "")}%`)
    .limit(2)
    .execute();
  return rows.map((r) => r.digest);
}

/** The versions and every ancestor they were derived from (parent chain), oldest first. */
export async function versionsWithAncestors(
  db: LedgerDb,
  versions: readonly string[],
): Promise<VersionRow[]> {
  const found = new Map<string, VersionRow>();
  let pending = [...new Set(versions)];
  while (pending.length > 0) {
    const rows = await db
      .selectFrom("dataset_versions")
      .selectAll()
      .where("version", "in", pending)
      .execute();
    pending = [];
    for (const r of rows) {
      found.set(r.version, {
        version: r.version,
        name: r.name,
        parent: r.parent,
        merkleRoot: r.merkle_root,
        sampleCount: Number(r.sample_count),
        transform: r.transform,
        createdAt: r.created_at,
        seq: r.seq,
      });
      if (r.parent !== null && !found.has(r.parent)) pending.push(r.parent);
    }
  }
  return [...found.values()].sort((a, b) => a.seq - b.seq);
}

/** Distinct members over all the versions (the lineage's sample count). */
export async function memberCount(db: LedgerDb, versions: readonly string[]): Promise<number> {
  if (versions.length === 0) return 0;
  const row = await db
    .selectFrom("dataset_members")
    .select(sql<number>`count(distinct digest)`.as("n"))
    .where("version", "in", versions)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export interface SourceRow {
  name: string;
  kind: string;
  trust: number;
  requireSignature: boolean;
  seq: number;
  /** Samples from the source over the lineage's versions (the largest per-version count). */
  samples: number;
}

export async function lineageSources(db: LedgerDb, versions: readonly string[]): Promise<SourceRow[]> {
  if (versions.length === 0) return [];
  const rows = await db
    .selectFrom("version_sources as vs")
    .innerJoin("sources as s", "s.name", "vs.source")
    .select(["s.name", "s.kind", "s.trust", "s.require_signature", "s.seq"])
    .select(sql<number>`max(vs.samples)`.as("samples"))
    .where("vs.version", "in", versions)
    .groupBy(["s.name", "s.kind", "s.trust", "s.require_signature", "s.seq"])
    .orderBy("s.name")
    .execute();
  return rows.map((r) => ({
    name: r.name,
    kind: r.kind,
    trust: Number(r.trust),
    requireSignature: Number(r.require_signature) === 1,
    seq: r.seq,
    samples: Number(r.samples),
  }));
}

export interface DeliveryRow {
  deliveryId: string;
  source: string;
  keyId: string | null;
  sampleCount: number;
  datasetVersion: string;
  at: string;
  seq: number;
}

export async function lineageDeliveries(db: LedgerDb, versions: readonly string[]): Promise<DeliveryRow[]> {
  if (versions.length === 0) return [];
  const rows = await db
    .selectFrom("deliveries")
    .select(["delivery_id", "source", "key_id", "sample_count", "dataset_version", "at", "seq"])
    .where("dataset_version", "in", versions)
    .orderBy("seq")
    .execute();
  return rows.map((r) => ({
    deliveryId: r.delivery_id,
    source: r.source,
    keyId: r.key_id,
    sampleCount: Number(r.sample_count),
    datasetVersion: r.dataset_version,
    at: r.at,
    seq: r.seq,
  }));
}

export interface SourceKeyRow {
  source: string;
  keyId: string;
  addedAt: string;
  revokedAt: string | null;
  revokedReason: string | null;
}

export async function sourceKeys(db: LedgerDb, sources: readonly string[]): Promise<SourceKeyRow[]> {
  if (sources.length === 0) return [];
  const rows = await db
    .selectFrom("source_keys")
    .select(["source", "key_id", "added_at", "revoked_at", "revoked_reason"])
    .where("source", "in", sources)
    .execute();
  return rows.map((r) => ({
    source: r.source,
    keyId: r.key_id,
    addedAt: r.added_at,
    revokedAt: r.revoked_at,
    revokedReason: r.revoked_reason,
  }));
}

export interface FindingRow {
  seq: number;
  subjectType: string;
  subjectId: string;
  kind: string;
  score: number;
  evidence: string;
  check: string;
  checkVersion: string;
  at: string;
}

function findingFromRow(r: Selectable<FindingsTable>): FindingRow {
  return {
    seq: r.seq,
    subjectType: r.subject_type,
    subjectId: r.subject_id,
    kind: r.kind,
    score: Number(r.score),
    evidence: r.evidence,
    check: r.check_name,
    checkVersion: r.check_version,
    at: r.at,
  };
}

/** Findings on any member sample of the versions, each once (one join, indexed on both sides). */
export async function sampleFindings(db: LedgerDb, versions: readonly string[]): Promise<FindingRow[]> {
  if (versions.length === 0) return [];
  const rows = await db
    .selectFrom("findings as f")
    .selectAll("f")
    .where("f.subject_type", "=", "sample")
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom("dataset_members as m")
          .select("m.digest")
          .whereRef("m.digest", "=", "f.subject_id")
          .where("m.version", "in", versions),
      ),
    )
    .orderBy("f.seq")
    .execute();
  return rows.map(findingFromRow);
}

/** Findings whose subject is one of `ids` of `subjectType` (sources, deliveries, versions, models). */
export async function subjectFindings(
  db: LedgerDb,
  subjectType: string,
  ids: readonly string[],
): Promise<FindingRow[]> {
  const out: FindingRow[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const rows = await db
      .selectFrom("findings")
      .selectAll()
      .where("subject_type", "=", subjectType)
      .where("subject_id", "in", ids.slice(i, i + CHUNK))
      .orderBy("seq")
      .execute();
    out.push(...rows.map(findingFromRow));
  }
  return out;
}

export interface DecisionRow {
  seq: number;
  action: string;
  subjectType: string;
  /** How many of the decision's subjects are in the lineage. */
  subjects: number;
  actor: string;
  reason: string;
  at: string;
}

/** Decisions on lineage samples (by membership) or on the named sources / telemetry batches. */
export async function lineageDecisions(
  db: LedgerDb,
  versions: readonly string[],
  sources: readonly string[],
  batches: readonly string[],
): Promise<DecisionRow[]> {
  const counts = new Map<number, number>();
  if (versions.length > 0) {
    const rows = await db
      .selectFrom("decision_subjects as d")
      .select(["d.seq"])
      .select(sql<number>`count(*)`.as("n"))
      .where("d.subject_type", "=", "sample")
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom("dataset_members as m")
            .select("m.digest")
            .whereRef("m.digest", "=", "d.subject_id")
            .where("m.version", "in", versions),
        ),
      )
      .groupBy("d.seq")
      .execute();
    for (const r of rows) counts.set(r.seq, Number(r.n));
  }
  for (const [type, ids] of [
    ["source", sources],
    ["telemetry-batch", batches],
  ] as const) {
    for (let i = 0; i < ids.length; i += CHUNK) {
      const rows = await db
        .selectFrom("decision_subjects")
        .select(["seq"])
        .select(sql<number>`count(*)`.as("n"))
        .where("subject_type", "=", type)
        .where("subject_id", "in", ids.slice(i, i + CHUNK))
        .groupBy("seq")
        .execute();
      for (const r of rows) counts.set(r.seq, (counts.get(r.seq) ?? 0) + Number(r.n));
    }
  }
  if (counts.size === 0) return [];
  const out: DecisionRow[] = [];
  const seqs = [...counts.keys()];
  for (let i = 0; i < seqs.length; i += CHUNK) {
    const rows = await db
      .selectFrom("decisions")
      .select(["seq", "action", "subject_type", "actor", "reason", "at"])
      .where("seq", "in", seqs.slice(i, i + CHUNK))
      .execute();
    for (const r of rows)
      out.push({
        seq: r.seq,
        action: r.action,
        subjectType: r.subject_type,
        subjects: counts.get(r.seq) ?? 0,
        actor: r.actor,
        reason: r.reason,
        at: r.at,
      });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

export interface TransformRow {
  seq: number;
  subject: string;
  kind: string;
  tool: string;
  toolVersion: string;
  parameters: string;
  at: string;
}

export async function transformsOn(db: LedgerDb, subjects: readonly string[]): Promise<TransformRow[]> {
  if (subjects.length === 0) return [];
  const rows = await db
    .selectFrom("transforms")
    .select(["seq", "subject", "kind", "tool", "tool_version", "parameters", "at"])
    .where("subject", "in", subjects)
    .orderBy("seq")
    .execute();
  return rows.map((r) => ({
    seq: r.seq,
    subject: r.subject,
    kind: r.kind,
    tool: r.tool,
    toolVersion: r.tool_version,
    parameters: r.parameters,
    at: r.at,
  }));
}

export interface TelemetryRow {
  batchId: string;
  agent: string;
  count: number;
  seq: number;
  at: string;
}

export async function modelTelemetry(db: LedgerDb, model: string): Promise<TelemetryRow[]> {
  const rows = await db
    .selectFrom("telemetry_batches")
    .select(["batch_id", "agent", "count", "seq", "at"])
    .where("model", "=", model)
    .orderBy("seq")
    .execute();
  return rows.map((r) => ({
    batchId: r.batch_id,
    agent: r.agent,
    count: Number(r.count),
    seq: r.seq,
    at: r.at,
  }));
}

export interface RawEvent {
  seq: number;
  kind: string;
  actor: string;
  at: string;
  hash: string;
  payload: string;
}

/** Events of the given kinds (small kinds: sources, keys, jobs, policies, model status), in order. */
export async function eventsOfKinds(
  db: LedgerDb,
  kinds: readonly string[],
  upTo: number,
): Promise<RawEvent[]> {
  return db
    .selectFrom("events")
    .select(["seq", "kind", "actor", "at", "hash", "payload"])
    .where("kind", "in", kinds)
    .where("seq", "<=", upTo)
    .orderBy("seq")
    .execute();
}

export interface EventRef {
  seq: number;
  hash: string;
  actor: string;
  at: string;
}

/** Hash, actor and time of each event in `seqs` (those after `upTo` are left out). */
export async function eventRefs(
  db: LedgerDb,
  seqs: Iterable<number>,
  upTo: number,
): Promise<Map<number, EventRef>> {
  const wanted = [...new Set(seqs)].filter((s) => s <= upTo).sort((a, b) => a - b);
  const out = new Map<number, EventRef>();
  for (let i = 0; i < wanted.length; i += CHUNK) {
    const rows = await db
      .selectFrom("events")
      .select(["seq", "hash", "actor", "at"])
      .where("seq", "in", wanted.slice(i, i + CHUNK))
      .execute();
    for (const r of rows) out.set(r.seq, r);
  }
  return out;
}
