// The ledger's tables as Kysely sees them. `events` and `checkpoints` are the evidence;
// every other table is a projection of the events (see project.ts) that `verify` rebuilds
// from scratch and compares. Column types are the lowest common denominator of SQLite and
// PostgreSQL: text, integer (flags are 0/1, never booleans) and double precision; JSON
// values are stored as RFC 8785 canonical text so both engines hold identical bytes.
import type { Generated, Kysely } from "kysely";

export interface EventsTable {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  /** Canonical JSON of the payload. */
  payload: string;
  prev_hash: string;
  hash: string;
}

export interface CheckpointsTable {
  seq: number;
  hash: string;
  at: string;
  key_id: string;
  signature: string;
  /** Hex RFC 9162 root over events 1..seq; null on checkpoints from before the tree. */
  root: string | null;
  /** JSON array of hex subtree roots (tree.ts `Frontier`); derivable, kept so appends are O(log n). */
  frontier: string | null;
}

export interface LedgerKeysTable {
  key_id: string;
  public_key_pem: string;
  added_at: string;
  seq: number;
}

export interface SourcesTable {
  name: string;
  kind: string;
  trust: number;
  require_signature: number;
  added_at: string;
  seq: number;
}

export interface SourceKeysTable {
  source: string;
  key_id: string;
  public_key_pem: string;
  added_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
}

export interface DeliveriesTable {
  delivery_id: string;
  source: string;
  manifest_digest: string;
  merkle_root: string;
  key_id: string | null;
  /** Canonical JSON of the file list. */
  files: string;
  sample_count: number;
  dataset_version: string;
  store: string | null;
  at: string;
  seq: number;
}

export interface SamplesTable {
  digest: string;
  /** The id and labels the content first arrived with; later arrivals are in sample_origins. */
  id: string;
  label: string | null;
  annotations: string;
  seq: number;
}

export interface SampleOriginsTable {
  digest: string;
  delivery_id: string;
  source: string;
  sample_id: string;
  seq: number;
}

/** Which content each source delivered: one row per (source, digest), however often it came. */
export interface SourceSamplesTable {
  source: string;
  digest: string;
}

export interface DatasetVersionsTable {
  version: string;
  name: string;
  merkle_root: string;
  parent: string | null;
  transform: string;
  sample_count: number;
  created_at: string;
  seq: number;
}

export interface DatasetMembersTable {
  version: string;
  digest: string;
}

/** How many member digests of a version came from a source (see project.ts `addReach`). */
export interface VersionSourcesTable {
  source: string;
  version: string;
  samples: number;
}

export interface TransformsTable {
  seq: number;
  /** A sample digest, dataset version, delivery id or model digest the step applied to. */
  subject: string;
  kind: string;
  tool: string;
  tool_version: string;
  parameters: string;
  input_digests: string;
  output_digests: string;
  at: string;
}

export interface FindingsTable {
  seq: number;
  subject_type: string;
  subject_id: string;
  kind: string;
  score: number;
  evidence: string;
  check_name: string;
  check_version: string;
  at: string;
}

export interface DecisionsTable {
  seq: number;
  action: string;
  subject_type: string;
  subject_ids: string;
  actor: string;
  reason: string;
  at: string;
}

export interface DecisionSubjectsTable {
  seq: number;
  subject_type: string;
  subject_id: string;
}

/** Current quarantine state per subject: the latest decision wins. */
export interface QuarantineTable {
  subject_type: string;
  subject_id: string;
  quarantined: number;
  seq: number;
}

export interface ModelsTable {
  digest: string;
  name: string;
  base_model: string | null;
  format: string;
  registered_at: string;
  seq: number;
}

export interface ModelTrainedOnTable {
  model: string;
  version: string;
}

/** API tokens of `antidote serve` (token.created / token.revoked). */
export interface ApiTokensTable {
  token_id: string;
  principal: string;
  role: string;
  source: string | null;
  secret_sha256: string;
  expires_at: string | null;
  created_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
  seq: number;
}

/** Jobs whose outcome is recorded (job.finished): at most one row per job. */
export interface JobOutcomesTable {
  job_id: string;
  state: string;
  result_digest: string | null;
  seq: number;
}

/**
 * The job queue's working state (jobs/in-process): operational, not evidence — it changes in
 * place as a job runs, so it is not a projection and `verify` does not replay it. What a job
 * was asked and how it ended are events (job.submitted, job.finished).
 */
export interface JobsTable {
  job_id: string;
  kind: string;
  /** Canonical JSON of the job's parameters. */
  parameters: string;
  state: string;
  principal: string;
  /** Canonical JSON { done, total, stage } or null. */
  progress: string | null;
  /** Canonical JSON of the result summary, or null. */
  result: string | null;
  error: string | null;
  attempts: number;
  /** Who runs it now ("pid@host"), and until when that claim holds without a heartbeat. */
  lease_owner: string | null;
  lease_until: string | null;
  cancel_requested: number;
  created_at: string;
  updated_at: string;
}

/** Files a job produced (report.json, report.html, an export), kept in the database so any
 * server or worker can hand them out. */
export interface JobArtifactsTable {
  job_id: string;
  name: string;
  media_type: string;
  sha256: string;
  bytes: Uint8Array;
}

/** Request ids already used on the HTTP API: a replayed mutating request is refused. */
export interface RequestIdsTable {
  request_id: string;
  token_id: string;
  at: string;
}

/**
 * Deliveries the server refused (signature, key, digest, format, or a supplier token naming
 * another source): operational, not evidence, so `verify` does not replay it; kept bounded
 * (provenance/refusals.ts prunes the oldest). Never file contents or tokens.
 */
export interface DeliveryRefusalsTable {
  /** Assigned on insert (rowid on SQLite, serial on PostgreSQL); newest is highest. */
  id: Generated<number>;
  at: string;
  /** The source the upload claimed to be from (not necessarily registered). */
  source: string;
  /** Who sent it: the token's principal. */
  principal: string;
  code: string;
  /** The refusal's message, as the client was told it (already free of paths and secrets). */
  message: string;
}

/** Telemetry batches accepted (telemetry.accepted): one row per batch, unique per (agent, sequence). */
export interface TelemetryBatchesTable {
  batch_id: string;
  agent: string;
  /** double precision: a sequence may exceed 32 bits, and both engines return it as a number. */
  sequence: number;
  key_id: string;
  model: string;
  window_start: string;
  window_end: string;
  /** Canonical JSON of the class names. */
  classes: string;
  records_sha256: string;
  count: number;
  feedback_count: number;
  bytes: number;
  store: string;
  gap_expected: number | null;
  gap_got: number | null;
  at: string;
  seq: number;
}

/** Models whose status was changed (model.status-changed): the latest change per model. */
export interface ModelStatusTable {
  digest: string;
  status: string;
  reason: string;
  actor: string;
  at: string;
  seq: number;
}

/** Telemetry batches refused (monitor/refusals.ts): operational and bounded, like delivery_refusals. */
export interface TelemetryRefusalsTable {
  id: Generated<number>;
  at: string;
  /** The agent the batch claimed to be from (possibly unregistered), as sent, capped. */
  agent: string;
  principal: string;
  code: string;
  message: string;
}

/** Refusals counted per agent and code since the ledger began (not pruned). Unregistered
 * names count under "" so a flood of made-up names adds one row per code, not one per name. */
export interface TelemetryRefusalCountsTable {
  agent: string;
  code: string;
  refusals: number;
  last_at: string;
}

export interface Database {
  events: EventsTable;
  checkpoints: CheckpointsTable;
  ledger_keys: LedgerKeysTable;
  sources: SourcesTable;
  source_keys: SourceKeysTable;
  deliveries: DeliveriesTable;
  samples: SamplesTable;
  sample_origins: SampleOriginsTable;
  source_samples: SourceSamplesTable;
  dataset_versions: DatasetVersionsTable;
  dataset_members: DatasetMembersTable;
  version_sources: VersionSourcesTable;
  transforms: TransformsTable;
  findings: FindingsTable;
  decisions: DecisionsTable;
  decision_subjects: DecisionSubjectsTable;
  quarantine: QuarantineTable;
  models: ModelsTable;
  model_trained_on: ModelTrainedOnTable;
  api_tokens: ApiTokensTable;
  job_outcomes: JobOutcomesTable;
  jobs: JobsTable;
  job_artifacts: JobArtifactsTable;
  request_ids: RequestIdsTable;
  delivery_refusals: DeliveryRefusalsTable;
  telemetry_batches: TelemetryBatchesTable;
  model_status: ModelStatusTable;
  telemetry_refusals: TelemetryRefusalsTable;
  telemetry_refusal_counts: TelemetryRefusalCountsTable;
}

export type LedgerDb = Kysely<Database>;

/** The derived tables with their primary keys: what `verify` replays and compares. */
export const DERIVED_TABLES: { [T in keyof Database]?: readonly (keyof Database[T] & string)[] } = {
  ledger_keys: ["key_id"],
  sources: ["name"],
  source_keys: ["source", "key_id"],
  deliveries: ["delivery_id"],
  samples: ["digest"],
  sample_origins: ["delivery_id", "sample_id", "digest"],
  source_samples: ["source", "digest"],
  dataset_versions: ["version"],
  dataset_members: ["version", "digest"],
  version_sources: ["source", "version"],
  transforms: ["seq"],
  findings: ["seq"],
  decisions: ["seq"],
  decision_subjects: ["seq", "subject_type", "subject_id"],
  quarantine: ["subject_type", "subject_id"],
  models: ["digest"],
  model_trained_on: ["model", "version"],
  api_tokens: ["token_id"],
  job_outcomes: ["job_id"],
  telemetry_batches: ["batch_id"],
  model_status: ["digest"],
};

/** Most bound parameters one statement may carry: SQLite's default limit is 32766, PostgreSQL's 65535. */
export interface Limits {
  maxParams: number;
}
