// Aggregate questions about a ledger, for people watching it (the dashboard of `antidote
// serve`): which sources are risky and how their flag rate moved scan after scan, what is
// still open, how much is quarantined, and pages of a source's samples keyed by digest.
// Each answer is a few grouped, indexed queries in SQL both engines speak, so it stays
// interactive on a ledger of thousands of sources and a version of 60,000 samples — nothing
// here loads a whole table into memory to count it.
import { sql } from "kysely";
import type { LedgerDb } from "./database.js";
import { descendantModels, modelsTrainedOn, quarantinedAmong, sampleFromRow, toCount } from "./queries.js";
import type {
  BlastRadius,
  BlastRadiusNode,
  FindingCount,
  LedgerStatus,
  QuarantineSize,
  SampleSummary,
  SourceRisk,
  SourceKind,
  VersionSummary,
} from "./types.js";

/** The chain's length and its latest signed checkpoint: read from two small indexed lookups. */
export async function ledgerStatus(db: LedgerDb): Promise<LedgerStatus> {
  const events = await db
    .selectFrom("events")
    .select(["seq", "at"])
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  const checkpoints = await db
    .selectFrom("checkpoints")
    .select((eb) => eb.fn.countAll<string | number>().as("n"))
    .executeTakeFirst();
  const head = await db
    .selectFrom("checkpoints")
    .select(["seq", "at", "key_id", "root"])
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  return {
    events: events?.seq ?? 0,
    lastEventAt: events?.at ?? null,
    checkpoints: toCount(checkpoints?.n),
    head:
      head === undefined ? null : { seq: head.seq, at: head.at, keyId: head.key_id, root: head.root ?? null },
  };
}

/**
 * Every source with what makes it risky: its samples, the distinct samples flagged by any
 * check, the flag rate of each scan (findings recorded in one append are one scan) and the
 * highest source-level finding. Ranked riskiest first: by the latest scan's flag rate, then
 * the source finding's score, then the overall flag rate.
 */
export async function sourceRisks(db: LedgerDb, only?: string): Promise<SourceRisk[]> {
  const where = only === undefined ? sql`` : sql`and o.source = ${only}`;
  const sources = await db
    .selectFrom("sources")
    .select(["name", "kind", "trust"])
    .$if(only !== undefined, (q) => q.where("name", "=", only ?? ""))
    .execute();
  if (sources.length === 0) return [];
  const samples = await db
    .selectFrom("source_samples")
    .select(["source", (eb) => eb.fn.countAll<string | number>().as("n")])
    .$if(only !== undefined, (q) => q.where("source", "=", only ?? ""))
    .groupBy("source")
    .execute();
  const deliveries = await db
    .selectFrom("deliveries")
    .select(["source", (eb) => eb.fn.countAll<string | number>().as("n"), (eb) => eb.fn.max("at").as("last")])
    .$if(only !== undefined, (q) => q.where("source", "=", only ?? ""))
    .groupBy("source")
    .execute();
  // Distinct flagged samples per source and per scan; one more grouping gives the total.
  const perScan = await sql<{ source: string; at: string; n: string | number }>`
    select o.source as source, f.at as at, count(distinct f.subject_id) as n
    from findings f join sample_origins o on o.digest = f.subject_id
    where f.subject_type = 'sample' ${where}
    group by o.source, f.at`.execute(db);
  const flagged = await sql<{ source: string; n: string | number }>`
    select o.source as source, count(distinct f.subject_id) as n
    from findings f join sample_origins o on o.digest = f.subject_id
    where f.subject_type = 'sample' ${where}
    group by o.source`.execute(db);
  const sourceFindings = await db
    .selectFrom("findings")
    .select(["subject_id", (eb) => eb.fn.max("score").as("score")])
    .where("subject_type", "=", "source")
    .$if(only !== undefined, (q) => q.where("subject_id", "=", only ?? ""))
    .groupBy("subject_id")
    .execute();
  const quarantined = await db
    .selectFrom("quarantine")
    .select("subject_id")
    .where("subject_type", "=", "source")
    .where("quarantined", "=", 1)
    .execute();

  const count = new Map(samples.map((r) => [r.source, toCount(r.n)]));
  const delivered = new Map(deliveries.map((r) => [r.source, r]));
  const flaggedOf = new Map(flagged.rows.map((r) => [r.source, toCount(r.n)]));
  const scoreOf = new Map(sourceFindings.map((r) => [r.subject_id, Number(r.score)]));
  const out = new Set(quarantined.map((r) => r.subject_id));
  const scans = new Map<string, { at: string; flagged: number }[]>();
  for (const r of perScan.rows) {
    const list = scans.get(r.source) ?? [];
    list.push({ at: r.at, flagged: toCount(r.n) });
    scans.set(r.source, list);
  }
  const risks = sources.map((s): SourceRisk => {
    const n = count.get(s.name) ?? 0;
    const rate = (k: number) => (n === 0 ? 0 : k / n);
    const trend = (scans.get(s.name) ?? [])
      .sort((a, b) => (a.at < b.at ? -1 : 1))
      .map((x) => ({ at: x.at, flagged: x.flagged, rate: rate(x.flagged) }));
    const d = delivered.get(s.name);
    return {
      name: s.name,
      kind: s.kind as SourceKind,
      trust: s.trust,
      samples: n,
      deliveries: toCount(d?.n),
      lastDeliveryAt: d?.last ?? null,
      flaggedSamples: flaggedOf.get(s.name) ?? 0,
      flagRate: rate(flaggedOf.get(s.name) ?? 0),
      latestFlagRate: trend[trend.length - 1]?.rate ?? 0,
      sourceScore: scoreOf.get(s.name) ?? null,
      quarantined: out.has(s.name),
      trend,
    };
  });
  return risks.sort(
    (a, b) =>
      b.latestFlagRate - a.latestFlagRate ||
      (b.sourceScore ?? 0) - (a.sourceScore ?? 0) ||
      b.flagRate - a.flagRate ||
      (a.name < b.name ? -1 : 1),
  );
}

/**
 * Findings by kind and subject type: how many, on how many subjects, and how many of those
 * subjects are still open (not quarantined, directly or through a quarantined source).
 */
export async function findingCounts(db: LedgerDb): Promise<FindingCount[]> {
  const rows = await sql<{
    kind: string;
    subject_type: string;
    findings: string | number;
    subjects: string | number;
    open_subjects: string | number;
  }>`
    select f.kind as kind, f.subject_type as subject_type, count(*) as findings,
      count(distinct f.subject_id) as subjects,
      count(distinct case when ${openSubject} then f.subject_id end) as open_subjects
    from findings f
    group by f.kind, f.subject_type
    order by count(*) desc, f.kind`.execute(db);
  return rows.rows.map((r) => ({
    kind: r.kind,
    subjectType: r.subject_type,
    findings: toCount(r.findings),
    subjects: toCount(r.subjects),
    open: toCount(r.open_subjects),
  }));
}

// A finding's subject is open unless it is quarantined: a sample directly or through any
// source it came from, a source directly.
const openSubject = sql`not exists (
    select 1 from quarantine q where q.quarantined = 1
      and q.subject_type = f.subject_type and q.subject_id = f.subject_id)
  and not (f.subject_type = 'sample' and exists (
    select 1 from sample_origins o join quarantine q2
      on q2.subject_type = 'source' and q2.subject_id = o.source and q2.quarantined = 1
    where o.digest = f.subject_id))`;

/** Quarantined sources, and samples quarantined directly or through a source (counted once). */
export async function quarantineSize(db: LedgerDb): Promise<QuarantineSize> {
  const sources = await db
    .selectFrom("quarantine")
    .select((eb) => eb.fn.countAll<string | number>().as("n"))
    .where("subject_type", "=", "source")
    .where("quarantined", "=", 1)
    .executeTakeFirst();
  const samples = await sql<{ n: string | number }>`
    select count(*) as n from (
      select subject_id as digest from quarantine where subject_type = 'sample' and quarantined = 1
      union
      select o.digest as digest from sample_origins o join quarantine q
        on q.subject_type = 'source' and q.subject_id = o.source and q.quarantined = 1
    ) t`.execute(db);
  return { sources: toCount(sources?.n), samples: toCount(samples.rows[0]?.n) };
}

/**
 * One page of a source's samples in digest order, after `after` (keyset: an indexed range
 * scan of the (source, digest) key, whatever the page's depth), with each sample's findings.
 */
export async function sourceSamplesPage(
  db: LedgerDb,
  source: string,
  options: { after?: string; limit: number },
): Promise<{ items: SampleSummary[]; nextCursor: string | null }> {
  const digests = (
    await db
      .selectFrom("source_samples")
      .select("digest")
      .where("source", "=", source)
      .$if(options.after !== undefined, (q) => q.where("digest", ">", options.after ?? ""))
      .orderBy("digest")
      .limit(options.limit + 1)
      .execute()
  ).map((r) => r.digest);
  const more = digests.length > options.limit;
  const page = digests.slice(0, options.limit);
  return { items: await summarize(db, page), nextCursor: more ? (page[page.length - 1] ?? null) : null };
}

/** The samples of `digests` (in that order) with quarantine state and their findings' count and top score. */
export async function summarize(db: LedgerDb, digests: string[]): Promise<SampleSummary[]> {
  if (digests.length === 0) return [];
  const rows = await db.selectFrom("samples").selectAll().where("digest", "in", digests).execute();
  const findings = await db
    .selectFrom("findings")
    .select([
      "subject_id",
      (eb) => eb.fn.countAll<string | number>().as("n"),
      (eb) => eb.fn.max("score").as("score"),
    ])
    .where("subject_type", "=", "sample")
    .where("subject_id", "in", digests)
    .groupBy("subject_id")
    .execute();
  const quarantined = await quarantinedAmong(db, digests);
  const byDigest = new Map(rows.map((r) => [r.digest, r]));
  const found = new Map(findings.map((f) => [f.subject_id, f]));
  return digests.flatMap((d) => {
    const row = byDigest.get(d);
    if (row === undefined) return [];
    const f = found.get(d);
    return [
      {
        ...sampleFromRow(row),
        quarantined: quarantined.has(d),
        findings: toCount(f?.n),
        topScore: f === undefined ? null : Number(f.score),
      },
    ];
  });
}

/** Annotators of a source's samples with how many samples each labeled (samples without annotations are skipped in SQL). */
export async function sourceAnnotators(
  db: LedgerDb,
  source: string,
): Promise<{ annotator: string; samples: number }[]> {
  const counts = new Map<string, number>();
  for (let after = ""; ;) {
    const rows = await db
      .selectFrom("source_samples as ss")
      .innerJoin("samples as s", "s.digest", "ss.digest")
      .select(["s.digest", "s.annotations"])
      .where("ss.source", "=", source)
      .where("ss.digest", ">", after)
      .where("s.annotations", "!=", "[]")
      .orderBy("s.digest")
      .limit(1000)
      .execute();
    for (const r of rows)
      for (const a of JSON.parse(r.annotations) as { annotator: string }[])
        counts.set(a.annotator, (counts.get(a.annotator) ?? 0) + 1);
    if (rows.length < 1000) break;
    after = rows[rows.length - 1]?.digest ?? after;
  }
  return [...counts]
    .map(([annotator, samples]) => ({ annotator, samples }))
    .sort((a, b) => b.samples - a.samples);
}

/** A version's composition: members per source and per label, how many are flagged and quarantined. */
export async function versionSummary(db: LedgerDb, version: string): Promise<VersionSummary> {
  const bySource = await db
    .selectFrom("version_sources")
    .select(["source", "samples"])
    .where("version", "=", version)
    .where("samples", ">", 0)
    .orderBy("samples", "desc")
    .execute();
  const byLabel = await db
    .selectFrom("dataset_members as m")
    .innerJoin("samples as s", "s.digest", "m.digest")
    .select(["s.label", (eb) => eb.fn.countAll<string | number>().as("n")])
    .where("m.version", "=", version)
    .groupBy("s.label")
    .orderBy("s.label")
    .execute();
  const flagged = await sql<{ n: string | number }>`
    select count(distinct f.subject_id) as n from findings f
    join dataset_members m on m.digest = f.subject_id and m.version = ${version}
    where f.subject_type = 'sample'`.execute(db);
  const quarantined = await sql<{ n: string | number }>`
    select count(*) as n from dataset_members m where m.version = ${version} and (
      exists (select 1 from quarantine q where q.subject_type = 'sample' and q.subject_id = m.digest and q.quarantined = 1)
      or exists (select 1 from sample_origins o join quarantine q2
        on q2.subject_type = 'source' and q2.subject_id = o.source and q2.quarantined = 1
        where o.digest = m.digest))`.execute(db);
  const children = await db
    .selectFrom("dataset_versions")
    .select("version")
    .where("parent", "=", version)
    .orderBy("seq")
    .execute();
  const models = await db
    .selectFrom("model_trained_on")
    .select("model")
    .where("version", "=", version)
    .execute();
  return {
    version,
    bySource: bySource.map((r) => ({ source: r.source, samples: r.samples })),
    byLabel: byLabel.map((r) => ({ label: r.label, samples: toCount(r.n) })),
    flagged: toCount(flagged.rows[0]?.n),
    quarantined: toCount(quarantined.rows[0]?.n),
    children: children.map((r) => r.version),
    models: models.map((r) => r.model),
  };
}

/** How far down derived versions the blast radius follows (exports of exports of …). */
const MAX_DERIVATION_DEPTH = 8;

/**
 * A source's blast radius as a graph: source → its deliveries → the versions they created →
 * versions derived from those (an export without the source shows as a version it reached
 * with 0 samples) → models trained on any of them → models fine-tuned from those. Every node
 * says how many of the source's samples it holds and how many of those are quarantined;
 * every edge how many of the source's samples flow along it.
 */
export async function blastRadius(db: LedgerDb, source: string): Promise<BlastRadius> {
  const sourceQuarantined =
    (await db
      .selectFrom("quarantine")
      .select("subject_id")
      .where("subject_type", "=", "source")
      .where("subject_id", "=", source)
      .where("quarantined", "=", 1)
      .executeTakeFirst()) !== undefined;
  const deliveries = await db
    .selectFrom("deliveries")
    .select(["delivery_id", "dataset_version", "sample_count", "at"])
    .where("source", "=", source)
    .orderBy("seq")
    .execute();
  const reach = new Map(
    (
      await db
        .selectFrom("version_sources")
        .select(["version", "samples"])
        .where("source", "=", source)
        .execute()
    ).map((r) => [r.version, r.samples]),
  );
  // The versions the source's samples are in, plus every version derived from one of them.
  const versions = new Map<string, { name: string; sampleCount: number; parent: string | null }>();
  let frontier = [
    ...new Set([
      ...[...reach].filter(([, n]) => n > 0).map(([v]) => v),
      ...deliveries.map((d) => d.dataset_version),
    ]),
  ];
  for (let depth = 0; frontier.length > 0 && depth <= MAX_DERIVATION_DEPTH; depth++) {
    const rows = await db
      .selectFrom("dataset_versions")
      .select(["version", "name", "sample_count", "parent"])
      .where((eb) => eb.or([eb("version", "in", frontier), eb("parent", "in", frontier)]))
      .orderBy("seq")
      .execute();
    frontier = [];
    for (const r of rows)
      if (!versions.has(r.version)) {
        versions.set(r.version, { name: r.name, sampleCount: r.sample_count, parent: r.parent });
        frontier.push(r.version);
      }
  }
  const versionIds = [...versions.keys()];
  const quarantinedIn = new Map<string, number>();
  if (!sourceQuarantined && versionIds.length > 0) {
    const rows = await sql<{ version: string; n: string | number }>`
      select m.version as version, count(*) as n from dataset_members m
      join source_samples ss on ss.digest = m.digest and ss.source = ${source}
      join quarantine q on q.subject_type = 'sample' and q.subject_id = m.digest and q.quarantined = 1
      where m.version in (${sql.join(versionIds)})
      group by m.version`.execute(db);
    for (const r of rows.rows) quarantinedIn.set(r.version, toCount(r.n));
  }
  const fromSource = (v: string) => reach.get(v) ?? 0;
  const quarantinedOf = (v: string) => (sourceQuarantined ? fromSource(v) : (quarantinedIn.get(v) ?? 0));
  const total = deliveries.reduce((n, d) => n + d.sample_count, 0);

  const nodes: BlastRadiusNode[] = [
    {
      id: `source:${source}`,
      type: "source",
      key: source,
      label: source,
      fromSource: total,
      total,
      quarantined: sourceQuarantined
        ? total
        : [...quarantinedIn.values()].reduce((a, b) => Math.max(a, b), 0),
    },
  ];
  const edges: BlastRadius["edges"] = [];
  for (const d of deliveries) {
    nodes.push({
      id: `delivery:${d.delivery_id}`,
      type: "delivery",
      key: d.delivery_id,
      label: `${d.delivery_id.slice(0, 12)} · ${d.at.slice(0, 10)}`,
      fromSource: d.sample_count,
      total: d.sample_count,
      quarantined: sourceQuarantined ? d.sample_count : 0,
    });
    edges.push({ from: `source:${source}`, to: `delivery:${d.delivery_id}`, samples: d.sample_count });
    edges.push({
      from: `delivery:${d.delivery_id}`,
      to: `version:${d.dataset_version}`,
      samples: d.sample_count,
    });
  }
  for (const [version, v] of versions) {
    nodes.push({
      id: `version:${version}`,
      type: "version",
      key: version,
      label: version,
      fromSource: fromSource(version),
      total: v.sampleCount,
      quarantined: quarantinedOf(version),
    });
    if (v.parent !== null && versions.has(v.parent))
      edges.push({ from: `version:${v.parent}`, to: `version:${version}`, samples: fromSource(version) });
  }
  // A version the source's samples reached without a recorded step from its deliveries (a
  // merge made outside Antidote, or the same content re-delivered by another source) hangs
  // off the source itself, so no reached version floats alone in the graph.
  const entered = new Set(edges.map((e) => e.to));
  for (const version of versionIds)
    if (!entered.has(`version:${version}`))
      edges.push({ from: `source:${source}`, to: `version:${version}`, samples: fromSource(version) });
  const models = await modelsTrainedOn(db, versionIds);
  const reachOfModel = new Map<string, number>();
  for (const m of models) {
    let n = 0;
    for (const v of m.trainedOn)
      if (versions.has(v)) {
        edges.push({ from: `version:${v}`, to: `model:${m.digest}`, samples: fromSource(v) });
        n += fromSource(v);
      }
    reachOfModel.set(m.digest, n);
  }
  const descendants = await descendantModels(db, models);
  for (const m of descendants) reachOfModel.set(m.digest, reachOfModel.get(m.baseModel ?? "") ?? 0);
  for (const m of [...models, ...descendants]) {
    const n = reachOfModel.get(m.digest) ?? 0;
    nodes.push({
      id: `model:${m.digest}`,
      type: "model",
      key: m.digest,
      label: m.name,
      fromSource: n,
      total: n,
      quarantined: 0,
    });
  }
  for (const m of descendants)
    if (m.baseModel !== null)
      edges.push({
        from: `model:${m.baseModel}`,
        to: `model:${m.digest}`,
        samples: reachOfModel.get(m.digest) ?? 0,
      });
  return { source, quarantined: sourceQuarantined, nodes, edges };
}
