// Reading the ledger: the derived tables turned back into the contract's records. Large
// results (events, members, findings) are paged by key so memory stays flat on millions
// of rows.
import type { Selectable } from "kysely";
import type {
  CheckpointsTable,
  DatasetVersionsTable,
  DeliveriesTable,
  EventsTable,
  LedgerDb,
  ModelsTable,
  SamplesTable,
} from "./database.js";
import type {
  Checkpoint,
  DatasetVersion,
  DeliveryRecord,
  Finding,
  LedgerEvent,
  ModelRecord,
  SampleRecord,
  Source,
  ApiToken,
  TokenRole,
  SourceKind,
  Transform,
} from "./types.js";

const PAGE = 1000;

export async function* events(db: LedgerDb, fromSeq = 1): AsyncGenerator<LedgerEvent> {
  for (let after = fromSeq - 1; ;) {
    const rows = await db
      .selectFrom("events")
      .selectAll()
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    for (const row of rows) yield eventFromRow(row);
    if (rows.length < PAGE) return;
    after = (rows[rows.length - 1] as Selectable<EventsTable>).seq;
  }
}

/** Events of one kind through the (kind, seq) index; `limit` defaults to every one. */
export async function eventsOfKind(
  db: LedgerDb,
  kind: string,
  options: { newestFirst?: boolean; limit?: number } = {},
): Promise<LedgerEvent[]> {
  let query = db
    .selectFrom("events")
    .selectAll()
    .where("kind", "=", kind)
    .orderBy("seq", options.newestFirst === true ? "desc" : "asc");
  if (options.limit !== undefined) query = query.limit(options.limit);
  return (await query.execute()).map(eventFromRow);
}

/** A checkpoints row as the contract's Checkpoint (no root on those from before the tree). */
export function checkpointFromRow(row: Selectable<CheckpointsTable>): Checkpoint {
  return {
    seq: row.seq,
    hash: row.hash,
    at: row.at,
    keyId: row.key_id,
    signature: row.signature,
    ...(row.root === null ? {} : { root: row.root }),
  };
}

export function eventFromRow(row: Selectable<EventsTable>): LedgerEvent {
  return {
    kind: row.kind,
    payload: JSON.parse(row.payload) as unknown,
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    prevHash: row.prev_hash,
    hash: row.hash,
  } as LedgerEvent;
}

export async function listSources(db: LedgerDb, name?: string): Promise<Source[]> {
  const sources = await db
    .selectFrom("sources")
    .selectAll()
    .$if(name !== undefined, (q) => q.where("name", "=", name ?? ""))
    .orderBy("name")
    .execute();
  if (sources.length === 0) return [];
  const keys = await db
    .selectFrom("source_keys")
    .selectAll()
    .$if(name !== undefined, (q) => q.where("source", "=", name ?? ""))
    .orderBy("added_at")
    .orderBy("key_id")
    .execute();
  return sources.map((s) => ({
    name: s.name,
    kind: s.kind as SourceKind,
    trust: s.trust,
    requireSignature: s.require_signature === 1,
    keys: keys
      .filter((k) => k.source === s.name)
      .map((k) => ({
        keyId: k.key_id,
        publicKeyPem: k.public_key_pem,
        addedAt: k.added_at,
        revokedAt: k.revoked_at,
      })),
    addedAt: s.added_at,
  }));
}

export async function findDelivery(
  db: LedgerDb,
  manifestDigest: string,
): Promise<{ deliveryId: string; datasetVersion: string } | undefined> {
  const row = await db
    .selectFrom("deliveries")
    .select(["delivery_id", "dataset_version"])
    .where("manifest_digest", "=", manifestDigest)
    .executeTakeFirst();
  return row === undefined ? undefined : { deliveryId: row.delivery_id, datasetVersion: row.dataset_version };
}

export async function listDeliveries(db: LedgerDb): Promise<DeliveryRecord[]> {
  const rows = await db.selectFrom("deliveries").selectAll().orderBy("seq").execute();
  return rows.map(deliveryFromRow);
}

function deliveryFromRow(r: Selectable<DeliveriesTable>): DeliveryRecord {
  return {
    deliveryId: r.delivery_id,
    source: r.source,
    manifestDigest: r.manifest_digest,
    merkleRoot: r.merkle_root,
    keyId: r.key_id,
    sampleCount: r.sample_count,
    datasetVersion: r.dataset_version,
    store: r.store,
    at: r.at,
  };
}

export async function getDatasetVersion(db: LedgerDb, version: string): Promise<DatasetVersion | undefined> {
  const row = await db
    .selectFrom("dataset_versions")
    .selectAll()
    .where("version", "=", version)
    .executeTakeFirst();
  return row === undefined ? undefined : versionFromRow(row);
}

export async function listDatasetVersions(db: LedgerDb): Promise<DatasetVersion[]> {
  return (await db.selectFrom("dataset_versions").selectAll().orderBy("seq").execute()).map(versionFromRow);
}

function versionFromRow(r: Selectable<DatasetVersionsTable>): DatasetVersion {
  return {
    version: r.version,
    name: r.name,
    merkleRoot: r.merkle_root,
    parent: r.parent,
    transform: JSON.parse(r.transform) as Transform,
    sampleCount: r.sample_count,
    createdAt: r.created_at,
  };
}

export async function* datasetMembers(
  db: LedgerDb,
  version: string,
  options: { after?: string; limit?: number } = {},
): AsyncGenerator<SampleRecord & { source: string | null; quarantined: boolean }> {
  let left = options.limit ?? Infinity;
  for (let after = options.after ?? ""; left > 0;) {
    const rows = await db
      .selectFrom("dataset_members as m")
      .leftJoin("samples as s", "s.digest", "m.digest")
      .select(["m.digest", "s.id", "s.label", "s.annotations"])
      .where("m.version", "=", version)
      .where("m.digest", ">", after)
      .orderBy("m.digest")
      .limit(Math.min(PAGE, left))
      .execute();
    if (rows.length === 0) return;
    left -= rows.length;
    const digests = rows.map((r) => r.digest);
    const origins = await originsOf(db, digests);
    const quarantined = await quarantinedAmong(db, digests);
    for (const r of rows)
      yield {
        id: r.id ?? r.digest,
        digest: r.digest,
        label: r.label ?? null,
        annotations: r.annotations === null ? [] : (JSON.parse(r.annotations) as SampleRecord["annotations"]),
        source: origins.get(r.digest)?.[0] ?? null,
        quarantined: quarantined.has(r.digest),
      };
    if (rows.length < Math.min(PAGE, left + rows.length)) return;
    after = (rows[rows.length - 1] as { digest: string }).digest;
  }
}

/** digest → its sources, earliest arrival first. */
async function originsOf(db: LedgerDb, digests: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (digests.length === 0) return out;
  const rows = await db
    .selectFrom("sample_origins")
    .select(["digest", "source"])
    .where("digest", "in", digests)
    .orderBy("seq")
    .orderBy("source")
    .execute();
  for (const r of rows) {
    const list = out.get(r.digest) ?? [];
    if (!list.includes(r.source)) list.push(r.source);
    out.set(r.digest, list);
  }
  return out;
}

/** Of `digests`, those quarantined directly or through any source they came from. */
export async function quarantinedAmong(db: LedgerDb, digests: readonly string[]): Promise<Set<string>> {
  if (digests.length === 0) return new Set();
  const direct = await db
    .selectFrom("quarantine")
    .select("subject_id as digest")
    .where("subject_type", "=", "sample")
    .where("quarantined", "=", 1)
    .where("subject_id", "in", digests)
    .execute();
  const viaSource = await db
    .selectFrom("sample_origins as o")
    .innerJoin("quarantine as q", (j) =>
      j
        .onRef("q.subject_id", "=", "o.source")
        .on("q.subject_type", "=", "source")
        .on("q.quarantined", "=", 1),
    )
    .select("o.digest")
    .distinct()
    .where("o.digest", "in", digests)
    .execute();
  return new Set([...direct, ...viaSource].map((r) => r.digest));
}

export async function getModel(db: LedgerDb, digest: string): Promise<ModelRecord | undefined> {
  return (await modelsWhere(db, "digest", [digest]))[0];
}

export async function listModels(db: LedgerDb): Promise<ModelRecord[]> {
  return withTrainedOn(db, await db.selectFrom("models").selectAll().orderBy("seq").execute());
}

async function modelsWhere(
  db: LedgerDb,
  column: "digest" | "base_model",
  values: string[],
): Promise<ModelRecord[]> {
  if (values.length === 0) return [];
  const rows = await db.selectFrom("models").selectAll().where(column, "in", values).orderBy("seq").execute();
  return withTrainedOn(db, rows);
}

async function withTrainedOn(db: LedgerDb, rows: Selectable<ModelsTable>[]): Promise<ModelRecord[]> {
  if (rows.length === 0) return [];
  const trained = await db
    .selectFrom("model_trained_on")
    .selectAll()
    .where(
      "model",
      "in",
      rows.map((r) => r.digest),
    )
    .orderBy("version")
    .execute();
  return rows.map((r) => ({
    digest: r.digest,
    name: r.name,
    trainedOn: trained.filter((t) => t.model === r.digest).map((t) => t.version),
    baseModel: r.base_model,
    format: r.format,
    registeredAt: r.registered_at,
  }));
}

/** Models trained directly on any of `versions`. */
export async function modelsTrainedOn(db: LedgerDb, versions: string[]): Promise<ModelRecord[]> {
  if (versions.length === 0) return [];
  const rows = await db
    .selectFrom("models")
    .selectAll()
    .where("digest", "in", db.selectFrom("model_trained_on").select("model").where("version", "in", versions))
    .orderBy("seq")
    .execute();
  return withTrainedOn(db, rows);
}

/**
 * Models whose base-model chain reaches one of `roots`, breadth first, each with `via`:
 * the chain from the root it descends from down to its own base model.
 */
export async function descendantModels(
  db: LedgerDb,
  roots: readonly ModelRecord[],
): Promise<(ModelRecord & { via: string[] })[]> {
  const seen = new Set(roots.map((m) => m.digest));
  const out: (ModelRecord & { via: string[] })[] = [];
  let frontier = roots.map((m) => ({ digest: m.digest, via: [m.digest] }));
  while (frontier.length > 0) {
    const viaOf = new Map(frontier.map((f) => [f.digest, f.via]));
    const children = await modelsWhere(db, "base_model", [...viaOf.keys()]);
    frontier = [];
    for (const child of children) {
      if (seen.has(child.digest)) continue;
      seen.add(child.digest);
      const via = viaOf.get(child.baseModel ?? "") ?? [];
      out.push({ ...child, via });
      frontier.push({ digest: child.digest, via: [...via, child.digest] });
    }
  }
  return out;
}

export async function* findings(
  db: LedgerDb,
  filter: { subjectType?: Finding["subjectType"]; minScore?: number } = {},
): AsyncGenerator<Finding & { seq: number }> {
  for (let after = 0; ;) {
    const rows = await db
      .selectFrom("findings")
      .selectAll()
      .where("seq", ">", after)
      .$if(filter.subjectType !== undefined, (q) => q.where("subject_type", "=", filter.subjectType ?? ""))
      .$if(filter.minScore !== undefined, (q) => q.where("score", ">=", filter.minScore ?? 0))
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    for (const r of rows)
      yield {
        seq: r.seq,
        subjectType: r.subject_type as Finding["subjectType"],
        subjectId: r.subject_id,
        kind: r.kind,
        score: r.score,
        evidence: JSON.parse(r.evidence) as Record<string, unknown>,
        check: r.check_name,
        checkVersion: r.check_version,
      };
    if (rows.length < PAGE) return;
    after = (rows[rows.length - 1] as { seq: number }).seq;
  }
}

export function sampleFromRow(r: Selectable<SamplesTable>): SampleRecord {
  return {
    id: r.id,
    digest: r.digest,
    label: r.label,
    annotations: JSON.parse(r.annotations) as SampleRecord["annotations"],
  };
}

/** A count from either engine (PostgreSQL returns bigint counts as strings). */
export function toCount(value: string | number | bigint | null | undefined): number {
  return value === null || value === undefined ? 0 : Number(value);
}

export async function listTokens(db: LedgerDb, tokenId?: string): Promise<ApiToken[]> {
  const rows = await db
    .selectFrom("api_tokens")
    .selectAll()
    .$if(tokenId !== undefined, (q) => q.where("token_id", "=", tokenId ?? ""))
    .orderBy("seq")
    .execute();
  return rows.map((r) => ({
    tokenId: r.token_id,
    principal: r.principal,
    role: r.role as TokenRole,
    source: r.source,
    secretSha256: r.secret_sha256,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  }));
}
