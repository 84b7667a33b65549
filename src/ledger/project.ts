// Projections: how one event changes the queryable tables. `append` runs this inside the
// same transaction that writes the event; `verify` runs the very same code over the whole
// log into a scratch database and compares. So the tables are, by construction, a pure
// function of the events — and a reference to something the log does not hold (an unknown
// source, delivery, version) fails the append, leaving nothing written.
import { createPublicKey } from "node:crypto";
import { AntidoteError } from "../errors.js";
import { canonicalJson, rotationMessage } from "./chain.js";
import type { LedgerDb } from "./database.js";
import { keyIdOf, signatureValid } from "./keys.js";
import { modelStatusChanged, requireBatches, telemetryAccepted } from "./project-telemetry.js";
import type { LedgerEvent, LedgerEventInput, Transform } from "./types.js";

type EventOf<K extends LedgerEventInput["kind"]> = Extract<LedgerEventInput, { kind: K }> & {
  seq: number;
  at: string;
  actor: string;
};

/** Apply one event; `maxParams` bounds each multi-row insert. */
export async function applyEvent(db: LedgerDb, event: LedgerEvent, maxParams: number): Promise<void> {
  const ctx = { db, maxParams };
  switch (event.kind) {
    case "source.added":
      return sourceAdded(ctx, event);
    case "source.key-added":
      return keyAdded(ctx, event);
    case "source.key-revoked":
      return keyRevoked(ctx, event);
    case "delivery.ingested":
      return deliveryIngested(ctx, event);
    case "samples.added":
      return samplesAdded(ctx, event);
    case "dataset.version-created":
      return versionCreated(ctx, event);
    case "dataset.members-added":
      return membersAdded(ctx, event);
    case "transform.recorded":
      return insertTransform(ctx, event.seq, event.at, event.payload.subject, event.payload.transform);
    case "finding.recorded":
      return findingRecorded(ctx, event);
    case "decision.recorded":
      return decisionRecorded(ctx, event);
    case "model.registered":
      return modelRegistered(ctx, event);
    case "model.status-changed":
      return modelStatusChanged(db, event);
    case "telemetry.accepted":
      return telemetryAccepted(db, event);
    case "model.reputation-set":
      // No table: the latest event per digest is in force (provenance/model-reputation.ts).
      return;
    case "policy.adopted":
      // No table: the policy in force is the latest policy.adopted event (src/policy/).
      return;
    case "ledger.key-rotated":
      return ledgerKeyRotated(ctx, event);
    case "token.created":
      return tokenCreated(ctx, event);
    case "token.revoked":
      return tokenRevoked(ctx, event);
    case "job.submitted":
      // The queue's working row is operational (jobs/); the event is the record of the request.
      return;
    case "job.finished":
      return jobFinished(ctx, event);
  }
}

async function tokenCreated({ db }: Ctx, e: EventOf<"token.created">): Promise<void> {
  const p = e.payload;
  const existing = await db
    .selectFrom("api_tokens")
    .select("token_id")
    .where("token_id", "=", p.tokenId)
    .executeTakeFirst();
  if (existing !== undefined) throw new AntidoteError("USAGE", `API token ${p.tokenId} already exists.`);
  if (
    p.source !== null &&
    (await db.selectFrom("sources").select("name").where("name", "=", p.source).executeTakeFirst()) ===
      undefined
  )
    throw new AntidoteError("SOURCE_UNKNOWN", `source "${p.source}" is not registered.`);
  await db
    .insertInto("api_tokens")
    .values({
      token_id: p.tokenId,
      principal: p.principal,
      role: p.role,
      source: p.source,
      secret_sha256: p.secretSha256,
      expires_at: p.expiresAt,
      created_at: e.at,
      revoked_at: null,
      revoked_reason: null,
      seq: e.seq,
    })
    .execute();
}

async function tokenRevoked({ db }: Ctx, e: EventOf<"token.revoked">): Promise<void> {
  const updated = await db
    .updateTable("api_tokens")
    .set({ revoked_at: e.at, revoked_reason: e.payload.reason })
    .where("token_id", "=", e.payload.tokenId)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) !== 1)
    throw new AntidoteError(
      "NOT_FOUND",
      `API token ${e.payload.tokenId} does not exist or is already revoked.`,
    );
}

async function jobFinished({ db }: Ctx, e: EventOf<"job.finished">): Promise<void> {
  const p = e.payload;
  const existing = await db
    .selectFrom("job_outcomes")
    .select("state")
    .where("job_id", "=", p.jobId)
    .executeTakeFirst();
  if (existing !== undefined)
    throw new AntidoteError("USAGE", `job ${p.jobId} already has its outcome recorded (${existing.state}).`);
  await db
    .insertInto("job_outcomes")
    .values({ job_id: p.jobId, state: p.state, result_digest: p.resultDigest, seq: e.seq })
    .execute();
}

interface Ctx {
  db: LedgerDb;
  maxParams: number;
}

async function sourceAdded({ db }: Ctx, e: EventOf<"source.added">): Promise<void> {
  const p = e.payload;
  const existing = await db
    .selectFrom("sources")
    .select(["kind", "added_at"])
    .where("name", "=", p.name)
    .executeTakeFirst();
  if (existing !== undefined)
    throw new AntidoteError(
      "SOURCE_EXISTS",
      `source "${p.name}" is already registered (${existing.kind}, since ${existing.added_at}).`,
    );
  await db
    .insertInto("sources")
    .values({
      name: p.name,
      kind: p.kind,
      trust: p.trust,
      require_signature: p.requireSignature ? 1 : 0,
      added_at: e.at,
      seq: e.seq,
    })
    .execute();
  for (const key of p.keys) await addKey(db, p.name, key.publicKeyPem, e.at);
}

async function keyAdded({ db }: Ctx, e: EventOf<"source.key-added">): Promise<void> {
  await requireSource(db, e.payload.source);
  await addKey(db, e.payload.source, e.payload.publicKeyPem, e.at);
}

// Adding a key the source already holds is a no-op; a revoked key stays revoked, because
// a key is revoked when it is believed compromised.
async function addKey(db: LedgerDb, source: string, publicKeyPem: string, at: string): Promise<void> {
  const pem = normalizedPem(publicKeyPem);
  const keyId = keyIdOf(pem);
  const existing = await db
    .selectFrom("source_keys")
    .select("revoked_at")
    .where("source", "=", source)
    .where("key_id", "=", keyId)
    .executeTakeFirst();
  if (existing?.revoked_at != null)
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `key ${keyId.slice(0, 16)}… of source "${source}" was revoked at ${existing.revoked_at} and cannot be added again.`,
    );
  if (existing !== undefined) return;
  await db
    .insertInto("source_keys")
    .values({
      source,
      key_id: keyId,
      public_key_pem: pem,
      added_at: at,
      revoked_at: null,
      revoked_reason: null,
    })
    .execute();
}

async function keyRevoked({ db }: Ctx, e: EventOf<"source.key-revoked">): Promise<void> {
  const { source, keyId, reason } = e.payload;
  await requireSource(db, source);
  const key = await db
    .selectFrom("source_keys")
    .select("revoked_at")
    .where("source", "=", source)
    .where("key_id", "=", keyId)
    .executeTakeFirst();
  if (key === undefined)
    throw new AntidoteError("NOT_FOUND", `key ${keyId} is not registered for source "${source}".`);
  if (key.revoked_at !== null) return;
  await db
    .updateTable("source_keys")
    .set({ revoked_at: e.at, revoked_reason: reason })
    .where("source", "=", source)
    .where("key_id", "=", keyId)
    .execute();
}

async function deliveryIngested({ db }: Ctx, e: EventOf<"delivery.ingested">): Promise<void> {
  const p = e.payload;
  await requireSource(db, p.source);
  const existing = await db
    .selectFrom("deliveries")
    .select("manifest_digest")
    .where("delivery_id", "=", p.deliveryId)
    .executeTakeFirst();
  if (existing !== undefined)
    throw new AntidoteError(
      "USAGE",
      `delivery id "${p.deliveryId}" is already recorded (manifest ${existing.manifest_digest.slice(0, 16)}…).`,
    );
  if (p.keyId !== null) {
    const key = await db
      .selectFrom("source_keys")
      .select("revoked_at")
      .where("source", "=", p.source)
      .where("key_id", "=", p.keyId)
      .executeTakeFirst();
    if (key === undefined || key.revoked_at !== null)
      throw new AntidoteError(
        "KEY_UNTRUSTED",
        `delivery "${p.deliveryId}" is signed by key ${p.keyId.slice(0, 16)}…, which is ${
          key === undefined ? "not registered for" : "revoked for"
        } source "${p.source}".`,
      );
  }
  await db
    .insertInto("deliveries")
    .values({
      delivery_id: p.deliveryId,
      source: p.source,
      manifest_digest: p.manifestDigest,
      merkle_root: p.merkleRoot,
      key_id: p.keyId,
      files: canonicalJson(p.files),
      sample_count: p.sampleCount,
      dataset_version: p.datasetVersion,
      store: p.store,
      at: e.at,
      seq: e.seq,
    })
    .execute();
}

async function samplesAdded({ db, maxParams }: Ctx, e: EventOf<"samples.added">): Promise<void> {
  const { deliveryId, source, samples } = e.payload;
  await requireSource(db, source);
  const delivery = await db
    .selectFrom("deliveries")
    .select("source")
    .where("delivery_id", "=", deliveryId)
    .executeTakeFirst();
  if (delivery === undefined)
    throw new AntidoteError(
      "NOT_FOUND",
      `delivery "${deliveryId}" is not in the ledger (record delivery.ingested first).`,
    );
  if (delivery.source !== source)
    throw new AntidoteError(
      "USAGE",
      `delivery "${deliveryId}" came from source "${delivery.source}", not "${source}".`,
    );
  // The first arrival of a content digest defines its id and labels; every arrival is an origin.
  const sampleRows = samples.map((s) => ({
    digest: s.digest,
    id: s.id,
    label: s.label,
    annotations: canonicalJson(s.annotations),
    seq: e.seq,
  }));
  for (const chunk of chunks(sampleRows, maxParams, 5))
    await db
      .insertInto("samples")
      .values(chunk)
      .onConflict((oc) => oc.doNothing())
      .execute();
  const originRows = samples.map((s) => ({
    digest: s.digest,
    delivery_id: deliveryId,
    source,
    sample_id: s.id,
    seq: e.seq,
  }));
  for (const chunk of chunks(originRows, maxParams, 5))
    await db
      .insertInto("sample_origins")
      .values(chunk)
      .onConflict((oc) => oc.doNothing())
      .execute();
  // Content this source had not delivered before now also reaches, through this source,
  // every version that already holds it. RETURNING yields only the pairs actually inserted.
  const firstFromSource: string[] = [];
  for (const chunk of chunks([...new Set(samples.map((s) => s.digest))], maxParams, 2))
    for (const r of await db
      .insertInto("source_samples")
      .values(chunk.map((digest) => ({ source, digest })))
      .onConflict((oc) => oc.doNothing())
      .returning("digest")
      .execute())
      firstFromSource.push(r.digest);
  const perVersion = new Map<string, number>();
  for (const chunk of chunks(firstFromSource, maxParams, 1))
    for (const r of await db
      .selectFrom("dataset_members")
      .select(["version", (eb) => eb.fn.countAll<string | number>().as("n")])
      .where("digest", "in", chunk)
      .groupBy("version")
      .execute())
      perVersion.set(r.version, (perVersion.get(r.version) ?? 0) + Number(r.n));
  await addReach(
    { db, maxParams },
    [...perVersion].map(([version, samples]) => ({ version, source, samples })),
  );
}

async function versionCreated(ctx: Ctx, e: EventOf<"dataset.version-created">): Promise<void> {
  const { db } = ctx;
  const p = e.payload;
  if (await versionExists(db, p.version))
    throw new AntidoteError("USAGE", `dataset version "${p.version}" is already recorded.`);
  if (p.parent !== null && !(await versionExists(db, p.parent)))
    throw new AntidoteError("NOT_FOUND", `parent dataset version "${p.parent}" is not in the ledger.`);
  await db
    .insertInto("dataset_versions")
    .values({
      version: p.version,
      name: p.name,
      merkle_root: p.merkleRoot,
      parent: p.parent,
      transform: canonicalJson(p.transform),
      sample_count: p.sampleCount,
      created_at: e.at,
      seq: e.seq,
    })
    .execute();
  await insertTransform(ctx, e.seq, e.at, p.version, p.transform);
}

async function membersAdded({ db, maxParams }: Ctx, e: EventOf<"dataset.members-added">): Promise<void> {
  const { version, digests } = e.payload;
  if (!(await versionExists(db, version)))
    throw new AntidoteError(
      "NOT_FOUND",
      `dataset version "${version}" is not in the ledger (record dataset.version-created first).`,
    );
  const added: string[] = [];
  for (const chunk of chunks([...new Set(digests)], maxParams, 2))
    for (const r of await db
      .insertInto("dataset_members")
      .values(chunk.map((digest) => ({ version, digest })))
      .onConflict((oc) => oc.doNothing())
      .returning("digest")
      .execute())
      added.push(r.digest);
  // Each new member reaches this version through every source it came from.
  const perSource = new Map<string, number>();
  for (const chunk of chunks(added, maxParams, 1))
    for (const r of await db
      .selectFrom("sample_origins")
      .select(["source", (eb) => eb.fn.count<string | number>("digest").distinct().as("n")])
      .where("digest", "in", chunk)
      .groupBy("source")
      .execute())
      perSource.set(r.source, (perSource.get(r.source) ?? 0) + Number(r.n));
  await addReach(
    { db, maxParams },
    [...perSource].map(([source, samples]) => ({ version, source, samples })),
  );
}

/**
 * `version_sources` counts, per dataset version and source, the member digests that came
 * from that source — what `trace --source` reports — kept up to date as members and
 * origins arrive in either order, so a trace never joins millions of rows.
 */
async function addReach(
  { db, maxParams }: Ctx,
  rows: { version: string; source: string; samples: number }[],
): Promise<void> {
  for (const chunk of chunks(rows, maxParams, 3))
    await db
      .insertInto("version_sources")
      .values(chunk)
      .onConflict((oc) =>
        oc.columns(["source", "version"]).doUpdateSet((eb) => ({
          samples: eb(eb.ref("version_sources.samples"), "+", eb.ref("excluded.samples")),
        })),
      )
      .execute();
}

async function insertTransform(
  { db }: Ctx,
  seq: number,
  at: string,
  subject: string,
  t: Transform,
): Promise<void> {
  await db
    .insertInto("transforms")
    .values({
      seq,
      subject,
      kind: t.kind,
      tool: t.tool,
      tool_version: t.toolVersion,
      parameters: canonicalJson(t.parameters),
      input_digests: canonicalJson(t.inputDigests),
      output_digests: canonicalJson(t.outputDigests),
      at,
    })
    .execute();
}

async function findingRecorded({ db }: Ctx, e: EventOf<"finding.recorded">): Promise<void> {
  const f = e.payload;
  await db
    .insertInto("findings")
    .values({
      seq: e.seq,
      subject_type: f.subjectType,
      subject_id: f.subjectId,
      kind: f.kind,
      score: f.score,
      evidence: canonicalJson(f.evidence),
      check_name: f.check,
      check_version: f.checkVersion,
      at: e.at,
    })
    .execute();
}

async function decisionRecorded({ db, maxParams }: Ctx, e: EventOf<"decision.recorded">): Promise<void> {
  const d = e.payload;
  const subjects = [...new Set(d.subjectIds)];
  if (d.subjectType === "source") for (const name of subjects) await requireSource(db, name);
  if (d.subjectType === "telemetry-batch") await requireBatches(db, subjects);
  await db
    .insertInto("decisions")
    .values({
      seq: e.seq,
      action: d.action,
      subject_type: d.subjectType,
      subject_ids: canonicalJson(d.subjectIds),
      actor: d.actor,
      reason: d.reason,
      at: e.at,
    })
    .execute();
  const subjectRows = subjects.map((subject_id) => ({ seq: e.seq, subject_type: d.subjectType, subject_id }));
  for (const chunk of chunks(subjectRows, maxParams, 3))
    await db.insertInto("decision_subjects").values(chunk).execute();
  // The latest decision on a subject is its state: quarantine, or released.
  const quarantined = d.action === "quarantine" ? 1 : 0;
  const stateRows = subjects.map((subject_id) => ({
    subject_type: d.subjectType,
    subject_id,
    quarantined,
    seq: e.seq,
  }));
  for (const chunk of chunks(stateRows, maxParams, 4))
    await db
      .insertInto("quarantine")
      .values(chunk)
      .onConflict((oc) => oc.columns(["subject_type", "subject_id"]).doUpdateSet({ quarantined, seq: e.seq }))
      .execute();
}

async function modelRegistered({ db }: Ctx, e: EventOf<"model.registered">): Promise<void> {
  const m = e.payload;
  const existing = await db
    .selectFrom("models")
    .select("name")
    .where("digest", "=", m.digest)
    .executeTakeFirst();
  if (existing !== undefined)
    throw new AntidoteError("USAGE", `model ${m.digest} is already registered (as "${existing.name}").`);
  for (const version of m.trainedOn)
    if (!(await versionExists(db, version)))
      throw new AntidoteError(
        "NOT_FOUND",
        `model "${m.name}" is trained on dataset version "${version}", which is not in the ledger.`,
      );
  await db
    .insertInto("models")
    .values({
      digest: m.digest,
      name: m.name,
      base_model: m.baseModel,
      format: m.format,
      registered_at: e.at,
      seq: e.seq,
    })
    .execute();
  const rows = [...new Set(m.trainedOn)].map((version) => ({ model: m.digest, version }));
  if (rows.length > 0) await db.insertInto("model_trained_on").values(rows).execute();
}

// The first ledger key is taken on first use; every later one must be endorsed by the key it
// replaces, so replacing the key file (or writing this event by hand) cannot re-key a ledger.
async function ledgerKeyRotated({ db }: Ctx, e: EventOf<"ledger.key-rotated">): Promise<void> {
  const pem = normalizedPem(e.payload.publicKeyPem);
  if (keyIdOf(pem) !== e.payload.keyId)
    throw new AntidoteError("USAGE", `keyId ${e.payload.keyId} is not the SHA-256 of the given public key.`);
  const current = await db
    .selectFrom("ledger_keys")
    .select(["key_id", "public_key_pem"])
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  if (current !== undefined) {
    const endorsement = e.payload.endorsement;
    if (
      current.key_id === e.payload.keyId ||
      (await db
        .selectFrom("ledger_keys")
        .select("key_id")
        .where("key_id", "=", e.payload.keyId)
        .executeTakeFirst()) !== undefined
    )
      throw new AntidoteError(
        "KEY_UNTRUSTED",
        `key ${e.payload.keyId.slice(0, 16)}… was already a ledger key; a rotation needs a new key.`,
      );
    if (
      endorsement === undefined ||
      endorsement.keyId !== current.key_id ||
      !signatureValid(rotationMessage(e.payload), endorsement.signature, current.public_key_pem)
    )
      throw new AntidoteError(
        "KEY_UNTRUSTED",
        `the rotation to key ${e.payload.keyId.slice(0, 16)}… is not endorsed by the ledger's current key ${current.key_id.slice(0, 16)}….`,
      );
  }
  await db
    .insertInto("ledger_keys")
    .values({ key_id: e.payload.keyId, public_key_pem: pem, added_at: e.at, seq: e.seq })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

async function requireSource(db: LedgerDb, name: string): Promise<void> {
  const found = await db.selectFrom("sources").select("name").where("name", "=", name).executeTakeFirst();
  if (found !== undefined) return;
  const known = await db.selectFrom("sources").select("name").orderBy("name").limit(11).execute();
  const list =
    known
      .slice(0, 10)
      .map((s) => s.name)
      .join(", ") + (known.length > 10 ? ", …" : "");
  throw new AntidoteError(
    "SOURCE_UNKNOWN",
    `source "${name}" is not registered in the ledger (${known.length === 0 ? "no sources yet" : `known: ${list}`}); add it with \`antidote source add\`.`,
  );
}

async function versionExists(db: LedgerDb, version: string): Promise<boolean> {
  return (
    (await db
      .selectFrom("dataset_versions")
      .select("version")
      .where("version", "=", version)
      .executeTakeFirst()) !== undefined
  );
}

function normalizedPem(pem: string): string {
  return createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
}

/** Split rows so that no statement binds more than `maxParams` values. */
export function* chunks<T>(rows: readonly T[], maxParams: number, columns: number): Generator<T[]> {
  const size = Math.max(1, Math.floor(maxParams / columns));
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
}
