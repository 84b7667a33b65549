// trace: how far a source reached (deliveries → samples → dataset versions → models →
// models built on those), and a single sample's whole story. Every step is an indexed
// lookup (sample_origins by source, dataset_members by digest, models by base model), so a
// trace stays interactive on ledgers of millions of samples.
import { AntidoteError } from "../errors.js";
import type { LedgerDb } from "./database.js";
import {
  descendantModels,
  listSources,
  modelsTrainedOn,
  quarantinedAmong,
  sampleFromRow,
  toCount,
} from "./queries.js";
import type { Decision, Finding, SampleTrace, SourceKind, SourceTrace, Transform } from "./types.js";

const DEFAULT_SAMPLE_LIMIT = 100;
const HEX64 = /^[0-9a-f]{64}$/;

export async function traceSource(
  db: LedgerDb,
  name: string,
  options: { limit?: number } = {},
): Promise<SourceTrace> {
  const source = (await listSources(db, name))[0];
  if (source === undefined) {
    const known = (await listSources(db)).map((s) => s.name);
    throw new AntidoteError(
      "SOURCE_UNKNOWN",
      `source "${name}" is not registered in the ledger (${known.length === 0 ? "no sources yet" : `known: ${known.slice(0, 10).join(", ")}`}).`,
    );
  }
  const deliveries = await db
    .selectFrom("deliveries")
    .select(["delivery_id", "at", "sample_count", "key_id"])
    .where("source", "=", name)
    .orderBy("seq")
    .execute();
  const count = await db
    .selectFrom("source_samples")
    .select((eb) => eb.fn.countAll<string | number>().as("n"))
    .where("source", "=", name)
    .executeTakeFirst();
  const samples = await sourceSamples(db, name, options.limit ?? DEFAULT_SAMPLE_LIMIT);

  const perVersion = await db
    .selectFrom("version_sources as r")
    .innerJoin("dataset_versions as v", "v.version", "r.version")
    .select(["r.version", "v.name", "v.sample_count", "r.samples"])
    .where("r.source", "=", name)
    .where("r.samples", ">", 0)
    .orderBy("v.seq")
    .execute();
  const versions = perVersion.map((v) => v.version);
  const models = await modelsTrainedOn(db, versions);
  return {
    source,
    deliveries: deliveries.map((d) => ({
      deliveryId: d.delivery_id,
      at: d.at,
      sampleCount: d.sample_count,
      keyId: d.key_id,
    })),
    sampleCount: toCount(count?.n),
    samples,
    datasetVersions: perVersion.map((v) => ({
      version: v.version,
      name: v.name,
      samplesFromSource: v.samples,
      sampleCount: v.sample_count,
    })),
    models,
    descendantModels: await descendantModels(db, models),
  };
}

async function sourceSamples(db: LedgerDb, source: string, limit: number): Promise<SourceTrace["samples"]> {
  if (limit <= 0) return [];
  const digests = (
    await db
      .selectFrom("source_samples")
      .select("digest")
      .where("source", "=", source)
      .orderBy("digest")
      .limit(limit)
      .execute()
  ).map((r) => r.digest);
  if (digests.length === 0) return [];
  const rows = await db.selectFrom("samples").selectAll().where("digest", "in", digests).execute();
  const quarantined = await quarantinedAmong(db, digests);
  const byDigest = new Map(rows.map((r) => [r.digest, r]));
  return digests.flatMap((d) => {
    const row = byDigest.get(d);
    return row === undefined ? [] : [{ ...sampleFromRow(row), quarantined: quarantined.has(d) }];
  });
}

/**
 * A sample by digest, or by id. An id can name different content over time (a file re-read
 * after an edit); then the most recent arrival is the one traced.
 */
export async function traceSample(db: LedgerDb, idOrDigest: string): Promise<SampleTrace | undefined> {
  const digest = await resolveDigest(db, idOrDigest);
  if (digest === undefined) return undefined;
  const row = await db.selectFrom("samples").selectAll().where("digest", "=", digest).executeTakeFirst();
  if (row === undefined) return undefined;

  const origins = await db
    .selectFrom("sample_origins as o")
    .innerJoin("deliveries as d", "d.delivery_id", "o.delivery_id")
    .innerJoin("sources as s", "s.name", "o.source")
    .select(["o.delivery_id", "o.source", "s.kind", "d.at", "d.key_id", "o.seq"])
    .where("o.digest", "=", digest)
    .orderBy("o.seq")
    .orderBy("o.delivery_id")
    .execute();
  const uniqueOrigins = origins.filter(
    (o, i) => origins.findIndex((p) => p.delivery_id === o.delivery_id) === i,
  );
  const versions = (
    await db
      .selectFrom("dataset_members")
      .select("version")
      .where("digest", "=", digest)
      .orderBy("version")
      .execute()
  ).map((r) => r.version);
  const deliveryIds = uniqueOrigins.map((o) => o.delivery_id);
  const sources = [...new Set(uniqueOrigins.map((o) => o.source))];

  // Steps that name this sample, a version holding it, or a delivery it arrived in.
  const transforms = await db
    .selectFrom("transforms")
    .selectAll()
    .where("subject", "in", [digest, ...versions, ...deliveryIds])
    .orderBy("seq")
    .execute();
  const findings = await db
    .selectFrom("findings")
    .selectAll()
    .where("subject_type", "=", "sample")
    .where("subject_id", "=", digest)
    .orderBy("seq")
    .execute();
  const decisions = await db
    .selectFrom("decisions")
    .selectAll()
    .where(
      "seq",
      "in",
      db
        .selectFrom("decision_subjects")
        .select("seq")
        .where((eb) =>
          eb.or([
            eb.and([eb("subject_type", "=", "sample"), eb("subject_id", "=", digest)]),
            ...(sources.length === 0
              ? []
              : [eb.and([eb("subject_type", "=", "source"), eb("subject_id", "in", sources)])]),
          ]),
        ),
    )
    .orderBy("seq")
    .execute();

  return {
    sample: sampleFromRow(row),
    origins: uniqueOrigins.map((o) => ({
      deliveryId: o.delivery_id,
      source: o.source,
      sourceKind: o.kind as SourceKind,
      at: o.at,
      keyId: o.key_id,
    })),
    transforms: transforms.map((t) => ({
      kind: t.kind,
      tool: t.tool,
      toolVersion: t.tool_version,
      parameters: JSON.parse(t.parameters) as Transform["parameters"],
      inputDigests: JSON.parse(t.input_digests) as string[],
      outputDigests: JSON.parse(t.output_digests) as string[],
      at: t.at,
      seq: t.seq,
    })),
    datasetVersions: versions,
    findings: findings.map((f) => ({
      subjectType: f.subject_type as Finding["subjectType"],
      subjectId: f.subject_id,
      kind: f.kind,
      score: f.score,
      evidence: JSON.parse(f.evidence) as Finding["evidence"],
      check: f.check_name,
      checkVersion: f.check_version,
      at: f.at,
      seq: f.seq,
    })),
    decisions: decisions.map((d) => ({
      action: d.action as Decision["action"],
      subjectType: d.subject_type as Decision["subjectType"],
      subjectIds: JSON.parse(d.subject_ids) as string[],
      actor: d.actor,
      reason: d.reason,
      at: d.at,
      seq: d.seq,
    })),
    quarantined: (await quarantinedAmong(db, [digest])).has(digest),
  };
}

async function resolveDigest(db: LedgerDb, idOrDigest: string): Promise<string | undefined> {
  if (HEX64.test(idOrDigest)) {
    const hit = await db
      .selectFrom("samples")
      .select("digest")
      .where("digest", "=", idOrDigest)
      .executeTakeFirst();
    if (hit !== undefined) return hit.digest;
  }
  const latest = await db
    .selectFrom("sample_origins")
    .select("digest")
    .where("sample_id", "=", idOrDigest)
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  return latest?.digest;
}
