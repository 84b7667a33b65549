// The ledger's schema, as Kysely migrations defined in code so the same steps run on SQLite
// and PostgreSQL and a packaged build needs no migration files on disk. Migrations only
// ever add: a released step is never edited, a new step is appended under the next name.
import { PostgresAdapter, type Kysely, type Migration, type MigrationProvider } from "kysely";

const initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const s = db.schema;
    await s
      .createTable("events")
      .addColumn("seq", "integer", (c) => c.primaryKey())
      .addColumn("at", "text", (c) => c.notNull())
      .addColumn("actor", "text", (c) => c.notNull())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("payload", "text", (c) => c.notNull())
      .addColumn("prev_hash", "text", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .execute();
    await s
      .createTable("checkpoints")
      .addColumn("seq", "integer", (c) => c.primaryKey())
      .addColumn("hash", "text", (c) => c.notNull())
      .addColumn("at", "text", (c) => c.notNull())
      .addColumn("key_id", "text", (c) => c.notNull())
      .addColumn("signature", "text", (c) => c.notNull())
      .execute();
    await createInitialDerivedTables(db);
  },
};

/** The projections. Also run on the scratch database `verify` replays into. */
async function createInitialDerivedTables<DB>(db: Kysely<DB>): Promise<void> {
  const s = db.schema;
  await s
    .createTable("ledger_keys")
    .addColumn("key_id", "text", (c) => c.primaryKey())
    .addColumn("public_key_pem", "text", (c) => c.notNull())
    .addColumn("added_at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s
    .createTable("sources")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("trust", "double precision", (c) => c.notNull())
    .addColumn("require_signature", "integer", (c) => c.notNull())
    .addColumn("added_at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s
    .createTable("source_keys")
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("public_key_pem", "text", (c) => c.notNull())
    .addColumn("added_at", "text", (c) => c.notNull())
    .addColumn("revoked_at", "text")
    .addColumn("revoked_reason", "text")
    .addPrimaryKeyConstraint("source_keys_pk", ["source", "key_id"])
    .execute();
  await s
    .createTable("deliveries")
    .addColumn("delivery_id", "text", (c) => c.primaryKey())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("manifest_digest", "text", (c) => c.notNull().unique())
    .addColumn("merkle_root", "text", (c) => c.notNull())
    .addColumn("key_id", "text")
    .addColumn("files", "text", (c) => c.notNull())
    .addColumn("sample_count", "integer", (c) => c.notNull())
    .addColumn("dataset_version", "text", (c) => c.notNull())
    .addColumn("store", "text")
    .addColumn("at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s.createIndex("deliveries_source").on("deliveries").columns(["source", "seq"]).execute();
  await s
    .createTable("samples")
    .addColumn("digest", "text", (c) => c.primaryKey())
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("label", "text")
    .addColumn("annotations", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s.createIndex("samples_id").on("samples").column("id").execute();
  await s
    .createTable("sample_origins")
    .addColumn("digest", "text", (c) => c.notNull())
    .addColumn("delivery_id", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("sample_id", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("sample_origins_pk", ["delivery_id", "sample_id", "digest"])
    .execute();
  // trace --sample and quarantine walk digest → sources; trace --source walks source_samples.
  await s.createIndex("sample_origins_digest").on("sample_origins").columns(["digest", "source"]).execute();
  await s.createIndex("sample_origins_sample_id").on("sample_origins").column("sample_id").execute();
  await s
    .createTable("source_samples")
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("digest", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("source_samples_pk", ["source", "digest"])
    .execute();
  await s
    .createTable("dataset_versions")
    .addColumn("version", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("merkle_root", "text", (c) => c.notNull())
    .addColumn("parent", "text")
    .addColumn("transform", "text", (c) => c.notNull())
    .addColumn("sample_count", "integer", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s
    .createTable("dataset_members")
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("digest", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("dataset_members_pk", ["version", "digest"])
    .execute();
  await s
    .createIndex("dataset_members_digest")
    .on("dataset_members")
    .columns(["digest", "version"])
    .execute();
  await s
    .createTable("version_sources")
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("samples", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("version_sources_pk", ["source", "version"])
    .execute();
  await s
    .createTable("transforms")
    .addColumn("seq", "integer", (c) => c.primaryKey())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("tool", "text", (c) => c.notNull())
    .addColumn("tool_version", "text", (c) => c.notNull())
    .addColumn("parameters", "text", (c) => c.notNull())
    .addColumn("input_digests", "text", (c) => c.notNull())
    .addColumn("output_digests", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .execute();
  await s.createIndex("transforms_subject").on("transforms").column("subject").execute();
  await s
    .createTable("findings")
    .addColumn("seq", "integer", (c) => c.primaryKey())
    .addColumn("subject_type", "text", (c) => c.notNull())
    .addColumn("subject_id", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("score", "double precision", (c) => c.notNull())
    .addColumn("evidence", "text", (c) => c.notNull())
    .addColumn("check_name", "text", (c) => c.notNull())
    .addColumn("check_version", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .execute();
  await s.createIndex("findings_subject").on("findings").columns(["subject_type", "subject_id"]).execute();
  await s
    .createTable("decisions")
    .addColumn("seq", "integer", (c) => c.primaryKey())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("subject_type", "text", (c) => c.notNull())
    .addColumn("subject_ids", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .execute();
  await s
    .createTable("decision_subjects")
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("subject_type", "text", (c) => c.notNull())
    .addColumn("subject_id", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("decision_subjects_pk", ["seq", "subject_type", "subject_id"])
    .execute();
  await s
    .createIndex("decision_subjects_subject")
    .on("decision_subjects")
    .columns(["subject_type", "subject_id"])
    .execute();
  await s
    .createTable("quarantine")
    .addColumn("subject_type", "text", (c) => c.notNull())
    .addColumn("subject_id", "text", (c) => c.notNull())
    .addColumn("quarantined", "integer", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("quarantine_pk", ["subject_type", "subject_id"])
    .execute();
  await s
    .createTable("models")
    .addColumn("digest", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("base_model", "text")
    .addColumn("format", "text", (c) => c.notNull())
    .addColumn("registered_at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s.createIndex("models_base_model").on("models").column("base_model").execute();
  await s
    .createTable("model_trained_on")
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("version", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("model_trained_on_pk", ["model", "version"])
    .execute();
  await s.createIndex("model_trained_on_version").on("model_trained_on").column("version").execute();
}

// Checkpoints become signed tree heads: the RFC 9162 root over the events they cover, and
// the frontier (the perfect subtrees' roots) an append extends without reading every event.
// Checkpoints written before stay valid: their signatures cover { seq, hash, at } only.
const merkleCheckpoints: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("checkpoints").addColumn("root", "text").execute();
    await db.schema.alterTable("checkpoints").addColumn("frontier", "text").execute();
  },
};

// The service (`antidote serve`): API tokens and job outcomes are projections of events; the
// job queue's working rows, job artifacts and used request ids are operational tables.
const service: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const s = db.schema;
    await createServiceDerivedTables(db);
    await s
      .createTable("jobs")
      .addColumn("job_id", "text", (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("parameters", "text", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("principal", "text", (c) => c.notNull())
      .addColumn("progress", "text")
      .addColumn("result", "text")
      .addColumn("error", "text")
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("lease_owner", "text")
      .addColumn("lease_until", "text")
      .addColumn("cancel_requested", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .execute();
    await s.createIndex("jobs_state").on("jobs").columns(["state", "created_at"]).execute();
    await s
      .createTable("job_artifacts")
      .addColumn("job_id", "text", (c) => c.notNull())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("media_type", "text", (c) => c.notNull())
      .addColumn("sha256", "text", (c) => c.notNull())
      // bytea on PostgreSQL, blob on SQLite.
      .addColumn("bytes", db.getExecutor().adapter instanceof PostgresAdapter ? "bytea" : "blob", (c) =>
        c.notNull(),
      )
      .addPrimaryKeyConstraint("job_artifacts_pk", ["job_id", "name"])
      .execute();
    await s
      .createTable("request_ids")
      .addColumn("request_id", "text", (c) => c.primaryKey())
      .addColumn("token_id", "text", (c) => c.notNull())
      .addColumn("at", "text", (c) => c.notNull())
      .execute();
  },
};

// Refused deliveries (a bad signature, an untrusted key, a digest mismatch, a supplier token
// delivering as another source): an operational record for the dashboard, bounded and pruned,
// not events — a stolen supplier token must not be able to fill the tamper-evident log.
const deliveryRefusals: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const s = db.schema;
    await s
      .createTable("delivery_refusals")
      // serial on PostgreSQL; on SQLite an integer primary key is the rowid, assigned on insert.
      .addColumn("id", db.getExecutor().adapter instanceof PostgresAdapter ? "serial" : "integer", (c) =>
        c.primaryKey(),
      )
      .addColumn("at", "text", (c) => c.notNull())
      .addColumn("source", "text", (c) => c.notNull())
      .addColumn("principal", "text", (c) => c.notNull())
      .addColumn("code", "text", (c) => c.notNull())
      .addColumn("message", "text", (c) => c.notNull())
      .execute();
    await s
      .createIndex("delivery_refusals_source")
      .on("delivery_refusals")
      .columns(["source", "id"])
      .execute();
  },
};

/** The derived tables the service migration added (replayed by `verify` like the others). */
async function createServiceDerivedTables<DB>(db: Kysely<DB>): Promise<void> {
  const s = db.schema;
  await s
    .createTable("api_tokens")
    .addColumn("token_id", "text", (c) => c.primaryKey())
    .addColumn("principal", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("source", "text")
    .addColumn("secret_sha256", "text", (c) => c.notNull())
    .addColumn("expires_at", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("revoked_at", "text")
    .addColumn("revoked_reason", "text")
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
  await s
    .createTable("job_outcomes")
    .addColumn("job_id", "text", (c) => c.primaryKey())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("result_digest", "text")
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
}

// Telemetry from deployed agents (src/monitor/): accepted batches and model status are
// projections of events; refused batches and their per-agent counts are operational, bounded
// tables like delivery_refusals (a stolen agent token must not be able to fill the log).
const telemetry: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const s = db.schema;
    await createTelemetryDerivedTables(db);
    await s
      .createTable("telemetry_refusals")
      .addColumn("id", db.getExecutor().adapter instanceof PostgresAdapter ? "serial" : "integer", (c) =>
        c.primaryKey(),
      )
      .addColumn("at", "text", (c) => c.notNull())
      .addColumn("agent", "text", (c) => c.notNull())
      .addColumn("principal", "text", (c) => c.notNull())
      .addColumn("code", "text", (c) => c.notNull())
      .addColumn("message", "text", (c) => c.notNull())
      .execute();
    await s
      .createIndex("telemetry_refusals_agent")
      .on("telemetry_refusals")
      .columns(["agent", "id"])
      .execute();
    await s
      .createTable("telemetry_refusal_counts")
      .addColumn("agent", "text", (c) => c.notNull())
      .addColumn("code", "text", (c) => c.notNull())
      .addColumn("refusals", "integer", (c) => c.notNull())
      .addColumn("last_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("telemetry_refusal_counts_pk", ["agent", "code"])
      .execute();
  },
};

async function createTelemetryDerivedTables<DB>(db: Kysely<DB>): Promise<void> {
  const s = db.schema;
  await s
    .createTable("telemetry_batches")
    .addColumn("batch_id", "text", (c) => c.primaryKey())
    .addColumn("agent", "text", (c) => c.notNull())
    .addColumn("sequence", "double precision", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("window_start", "text", (c) => c.notNull())
    .addColumn("window_end", "text", (c) => c.notNull())
    .addColumn("classes", "text", (c) => c.notNull())
    .addColumn("records_sha256", "text", (c) => c.notNull())
    .addColumn("count", "integer", (c) => c.notNull())
    .addColumn("feedback_count", "integer", (c) => c.notNull())
    .addColumn("bytes", "integer", (c) => c.notNull())
    .addColumn("store", "text", (c) => c.notNull())
    .addColumn("gap_expected", "double precision")
    .addColumn("gap_got", "double precision")
    .addColumn("at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull().unique())
    .execute();
  // One batch per (agent, sequence), whatever races: the second append of a sequence fails.
  await s
    .createIndex("telemetry_batches_agent_sequence")
    .on("telemetry_batches")
    .columns(["agent", "sequence"])
    .unique()
    .execute();
  await s
    .createIndex("telemetry_batches_agent_seq")
    .on("telemetry_batches")
    .columns(["agent", "seq"])
    .execute();
  await s
    .createIndex("telemetry_batches_model_seq")
    .on("telemetry_batches")
    .columns(["model", "seq"])
    .execute();
  await s.createIndex("telemetry_batches_at").on("telemetry_batches").column("at").execute();
  await s
    .createTable("model_status")
    .addColumn("digest", "text", (c) => c.primaryKey())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .execute();
}

// "The latest event of a kind" (the curation policy in force, foundation-model reputations) is
// read on every ingest, export and registration: an index seek, however long the log grows.
const eventsByKind: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createIndex("events_kind_seq").on("events").columns(["kind", "seq"]).execute();
  },
};

/** Every derived table at the latest schema: where `verify` replays the log. */
export async function createDerivedTables<DB>(db: Kysely<DB>): Promise<void> {
  await createInitialDerivedTables(db);
  await createServiceDerivedTables(db);
  await createTelemetryDerivedTables(db);
}

/** Migration names sort in the order they run. */
export const migrationProvider: MigrationProvider = {
  getMigrations: () =>
    Promise.resolve({
      "0001-initial": initial,
      "0002-merkle-checkpoints": merkleCheckpoints,
      "0003-service": service,
      "0004-delivery-refusals": deliveryRefusals,
      "0005-telemetry": telemetry,
      "0006-events-by-kind": eventsByKind,
    }),
};

export const LATEST_MIGRATION = "0006-events-by-kind";
