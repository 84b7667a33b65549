// The ledger's public contract: the events it records and the questions it answers.
// Every other module (ingest, scan, audit, robust aggregation, the CLI and the server)
// talks to the ledger only through these types, so SQLite and PostgreSQL stay
// interchangeable behind `openLedger`.
import type { JsonValue } from "../data/sample.js";
import type { LedgerSigner } from "./keys.js";

/** What a source is; decides the default signature policy (see `requiresSignature`). */
export type SourceKind = "supplier" | "contractor" | "web" | "fl-client" | "agent" | "foundation-model";

export const SOURCE_KINDS: readonly SourceKind[] = [
  "supplier",
  "contractor",
  "web",
  "fl-client",
  "agent",
  "foundation-model",
];

/** A registered Ed25519 public key. `keyId` is the lowercase hex SHA-256 of the SPKI DER. */
export interface SourceKey {
  keyId: string;
  publicKeyPem: string;
  addedAt: string;
  revokedAt: string | null;
}

export interface Source {
  name: string;
  kind: SourceKind;
  /** 0..1, the operator's prior trust in this source. */
  trust: number;
  /** Whether deliveries from this source must carry a valid signature. */
  requireSignature: boolean;
  keys: SourceKey[];
  addedAt: string;
}

/** One processing step: what went in, what came out, which tool with which parameters. */
export interface Transform {
  /** e.g. "ingest", "dedup", "filter", "relabel", "augment", "export", "attack:patch". */
  kind: string;
  tool: string;
  toolVersion: string;
  parameters: Record<string, unknown>;
  /** Content digests (hex SHA-256) or Merkle roots of the inputs and outputs. */
  inputDigests: string[];
  outputDigests: string[];
}

/** One sample as the ledger knows it (content is not stored, only its digest and labels). */
export interface SampleRecord {
  /** The dataset's own id for the sample (stable across re-reads of the same file). */
  id: string;
  /** Hex SHA-256 over the sample's canonical bytes (`Sample.digest`). */
  digest: string;
  label: string | null;
  annotations: { annotator: string; label: string }[];
}

/** The common currency of every check (DESIGN.md): a subject, a kind, a score and evidence. */
export interface Finding {
  subjectType:
    "sample" | "source" | "annotator" | "model" | "client" | "delivery" | "dataset" | "telemetry-batch";
  /** Sample digest, source name (an agent is a source), annotator name, model digest, client id,
   * delivery id, version id, telemetry batch id ("<agent>#<sequence>"). */
  subjectId: string;
  /** e.g. "label-issue", "spectral-signature", "trigger-token", "split-view-mismatch". */
  kind: string;
  /** Higher is more suspicious; each check documents its scale. */
  score: number;
  evidence: Record<string, unknown>;
  check: string;
  checkVersion: string;
}

export interface Decision {
  action: "quarantine" | "release";
  subjectType: "sample" | "source" | "telemetry-batch";
  /** Sample digests, source names or telemetry batch ids ("<agent>#<sequence>"). */
  subjectIds: string[];
  /** Who decided (user name, or "policy:<name>@<digest prefix>"). */
  actor: string;
  reason: string;
  /** Set when a curation policy made the decision (src/policy/): the adopted file's SHA-256
   * and the rule that fired ("kinds.supplier.autoQuarantine[0]"). */
  policy?: { digest: string; rule: string };
}

/**
 * The team's word on a model, usually a foundation model they fine-tune: trusted (e.g. its
 * publisher's OpenSSF model signature verified) or distrusted (found poisoned, or from a
 * publisher no longer trusted). The latest event per digest is in force; `model register`
 * refuses a distrusted base.
 */
export interface ModelReputation {
  digest: string;
  verdict: "trusted" | "distrusted";
  reason: string;
  /** Key hint (SHA-256 of the PEM) of the publisher whose model signature was verified, or null. */
  publisher: string | null;
}

/** A curation policy as adopted (`antidote policy apply`, src/policy/): the latest one is in force. */
export interface PolicyAdoption {
  /** The policy's own name and version, as its file states them. */
  name: string;
  version: string;
  /** Hex SHA-256 of the policy file's bytes. */
  digest: string;
  /** The parsed policy in canonical JSON form (what enforcement reads back). */
  document: Record<string, JsonValue>;
}

/**
 * A telemetry batch the intake accepted (monitor/intake.ts): what the agent's signed statement
 * said, which key signed it, and where its records are kept. The statement is rebuilt from
 * this, so the stored envelope is evidence, never an input.
 */
export interface TelemetryBatch {
  /** "<agent>#<sequence>". */
  batchId: string;
  agent: string;
  sequence: number;
  /** The agent's key that signed the batch. */
  keyId: string;
  /** Digest of the model the agent attests it runs (registered in the ledger). */
  model: string;
  /** ISO-8601, as the agent signed them. */
  window: { start: string; end: string };
  /** The model's class names in output order. */
  classes: string[];
  /** Hex SHA-256 of the JSONL bytes: every read of the stored file is checked against it. */
  recordsSha256: string;
  count: number;
  /** Records that carry a feedback label. */
  feedbackCount: number;
  bytes: number;
  /** The JSONL file, relative to the ledger home's `telemetry/` directory ("<agent>/<file>.jsonl");
   * the envelope lies beside it with `.dsse.json` for `.jsonl`. */
  store: string;
  /** Set when the sequence skipped numbers: the one expected (last accepted + 1, or 0) and the one sent. */
  gap: null | { expected: number; got: number };
}

/** A batch as `listTelemetryBatches` returns it: with its place in the log and its state. */
export interface TelemetryBatchRecord extends TelemetryBatch {
  /** Quarantined directly, or through its agent (a quarantined source). */
  quarantined: boolean;
  /** The `telemetry.accepted` event's seq and time (the ledger's clock, not the agent's). */
  seq: number;
  at: string;
}

export interface TelemetryBatchFilter {
  agent?: string;
  /** Model digest. */
  model?: string;
  /** Only batches accepted at or after this time (ISO-8601). */
  since?: string;
  /** Keyset paging: batches accepted after this batch id. */
  after?: string;
  /** Default 1000, at most 10,000. */
  limit?: number;
}

/** Whether deployments should run a model (containment: `model suspend`). */
export interface ModelStatus {
  digest: string;
  status: "active" | "suspended";
  /** When it took this status (its registration time while it was never changed). */
  since: string;
  /** Why, and who said so; null while it was never changed. */
  reason: string | null;
  actor: string | null;
}

/** The events of the append-only log. `payload` shapes are validated on append. */
export type LedgerEventInput =
  | { kind: "source.added"; payload: Omit<Source, "addedAt" | "keys"> & { keys: { publicKeyPem: string }[] } }
  | { kind: "source.key-added"; payload: { source: string; publicKeyPem: string } }
  | { kind: "source.key-revoked"; payload: { source: string; keyId: string; reason: string } }
  | {
      kind: "delivery.ingested";
      payload: {
        deliveryId: string;
        source: string;
        /** SHA-256 of the canonical manifest (statement) — the idempotency key. */
        manifestDigest: string;
        merkleRoot: string;
        /** Key that signed the delivery, or null when unsigned (allowed only by policy). */
        keyId: string | null;
        files: { path: string; sha256: string; size: number }[];
        sampleCount: number;
        /** The dataset version this delivery created. */
        datasetVersion: string;
        /** Where the received samples were stored (a path relative to the sample store), so
         * `export` can rebuild versions from the ledger; null when the content was not kept. */
        store: string | null;
        /** SHA-256 of the store file as written: the store is checked against it on every read. */
        storeSha256?: string;
      };
    }
  | {
      kind: "samples.added";
      /** Samples of a delivery, in batches (an ingest of 60k samples is a few dozen events). */
      payload: { deliveryId: string; source: string; samples: SampleRecord[] };
    }
  | {
      kind: "dataset.version-created";
      payload: {
        version: string;
        name: string;
        /** Merkle root over the sorted sample digests. */
        merkleRoot: string;
        /** Merkle root over the sorted record digests (content, label and annotations of each
         * member: `recordDigest`), so a version's identity covers what poisoning changes. */
        recordsRoot?: string;
        parent: string | null;
        transform: Transform;
        /** Sample digests, in batches via `dataset.members-added` when large. */
        sampleCount: number;
      };
    }
  | { kind: "dataset.members-added"; payload: { version: string; digests: string[] } }
  | { kind: "transform.recorded"; payload: { subject: string; transform: Transform } }
  | { kind: "finding.recorded"; payload: Finding }
  | { kind: "decision.recorded"; payload: Decision }
  | {
      kind: "model.registered";
      payload: {
        digest: string;
        name: string;
        trainedOn: string[];
        baseModel: string | null;
        format: string;
      };
    }
  | {
      kind: "model.status-changed";
      /** Containment: a model suspended (deployments should stop serving it) or made active again. */
      payload: { digest: string; status: ModelStatus["status"]; reason: string };
    }
  | { kind: "telemetry.accepted"; payload: TelemetryBatch }
  | { kind: "policy.adopted"; payload: PolicyAdoption }
  | { kind: "model.reputation-set"; payload: ModelReputation }
  | {
      kind: "token.created";
      /** An API token of `antidote serve` (auth/tokens.ts): only the secret's SHA-256 is kept. */
      payload: ApiTokenGrant;
    }
  | { kind: "token.revoked"; payload: { tokenId: string; reason: string } }
  | {
      kind: "job.submitted";
      /** A scan, audit or export handed to the job queue (jobs/), by the event's actor. */
      payload: { jobId: string; kind: string; parameters: Record<string, JsonValue> };
    }
  | {
      kind: "job.finished";
      /** A job's outcome, recorded once however often the job ran (see AppendOptions.onceForJob). */
      payload: {
        jobId: string;
        state: "done" | "failed" | "cancelled";
        /** SHA-256 of the job's result JSON; null when it produced none. */
        resultDigest: string | null;
        error: string | null;
      };
    }
  | {
      kind: "ledger.key-rotated";
      payload: {
        keyId: string;
        publicKeyPem: string;
        /** The outgoing key's signature over the incoming one (chain.ts `rotationMessage`);
         * absent only on a ledger's first key. */
        endorsement?: { keyId: string; signature: string };
      };
    };

export type LedgerEventKind = LedgerEventInput["kind"];

/** An event as stored: its place in the chain and the hashes that bind it. */
export type LedgerEvent = LedgerEventInput & {
  seq: number;
  /** ISO-8601 UTC. */
  at: string;
  actor: string;
  /** Hex SHA-256 of the previous event's `hash` ("0"×64 for the first). */
  prevHash: string;
  /** Hex SHA-256 over prevHash and the RFC 8785 canonical JSON of {seq, at, actor, kind, payload}. */
  hash: string;
};

export interface Checkpoint {
  seq: number;
  hash: string;
  at: string;
  /** RFC 9162 Merkle tree head (hex) over the first `seq` events; absent on checkpoints
   * written before the tree existed. */
  root?: string;
  keyId: string;
  /** Base64 Ed25519 signature over the canonical JSON of {seq, hash, at, root}. */
  signature: string;
}

/**
 * A checkpoint published outside the ledger (`antidote ledger checkpoint --out`): the signed
 * head plus the public key that signed it, so a later `ledger verify --witness` can prove the
 * ledger still extends it even if everything in the ledger directory was replaced.
 */
export interface SignedTreeHead extends Checkpoint {
  format: "antidote-ledger-head/v1";
  root: string;
  publicKeyPem: string;
  /** Where the head was read from, for people; not part of what is checked. */
  ledger: string;
}

export interface VerifyReport {
  ok: boolean;
  events: number;
  checkpoints: number;
  /** Hex RFC 9162 root over all events: what the head checkpoint signs. */
  root?: string;
  /** The first event whose hash or link does not recompute, with why. */
  firstBad?: { seq: number; reason: string };
  /** Derived tables that disagree with a replay of the events. */
  tableMismatches: string[];
  /** The local witness file (see witness.ts): present, absent or unreadable. */
  localWitness: "ok" | "absent" | "unreadable";
  /** The externally kept head checked with `witness`, when one was given. */
  witness?: {
    seq: number;
    ok: boolean;
    /** The RFC 9162 consistency proof from the witnessed head to today's (hex hashes). */
    consistencyProof: string[];
  };
}

export interface VerifyOptions {
  /** A head published earlier (`ledger checkpoint --out`): the ledger must extend it unchanged. */
  witness?: SignedTreeHead;
}

export interface DatasetVersion {
  version: string;
  name: string;
  merkleRoot: string;
  parent: string | null;
  transform: Transform;
  sampleCount: number;
  createdAt: string;
}

export interface DeliveryRecord {
  deliveryId: string;
  source: string;
  manifestDigest: string;
  merkleRoot: string;
  keyId: string | null;
  sampleCount: number;
  datasetVersion: string;
  store: string | null;
  at: string;
}

export interface ModelRecord {
  digest: string;
  name: string;
  trainedOn: string[];
  baseModel: string | null;
  format: string;
  registeredAt: string;
}

/** `trace --source`: everything a source reached. */
export interface SourceTrace {
  source: Source;
  deliveries: { deliveryId: string; at: string; sampleCount: number; keyId: string | null }[];
  sampleCount: number;
  /** Up to `limit` sample records (the CLI pages; --json lists all). */
  samples: (SampleRecord & { quarantined: boolean })[];
  datasetVersions: { version: string; name: string; samplesFromSource: number; sampleCount: number }[];
  /** Models trained directly on an affected version. */
  models: ModelRecord[];
  /** Models whose base-model chain reaches an affected model. */
  descendantModels: (ModelRecord & { via: string[] })[];
}

/** `trace --sample`: a sample's whole story. */
export interface SampleTrace {
  sample: SampleRecord;
  /** Every delivery the sample arrived in (the same content may come twice). */
  origins: { deliveryId: string; source: string; sourceKind: SourceKind; at: string; keyId: string | null }[];
  transforms: (Transform & { at: string; seq: number })[];
  datasetVersions: string[];
  findings: (Finding & { at: string; seq: number })[];
  decisions: (Decision & { at: string; seq: number })[];
  quarantined: boolean;
}

export interface AppendOptions {
  actor?: string;
  /**
   * Write the batch only if no `job.finished` for this job is recorded yet (checked under the
   * write lock): a job retried after a crash records its outcome, and its findings, once.
   * Returns [] when skipped.
   */
  onceForJob?: string;
}

/** Who an API token speaks for, and what it may do (auth/roles.ts). */
export type TokenRole = "admin" | "analyst" | "supplier" | "agent" | "reader";

export interface ApiTokenGrant {
  /** Public id, the first part of the token; never secret. */
  tokenId: string;
  /** A person or system the token was issued to; recorded as the actor of its requests. */
  principal: string;
  role: TokenRole;
  /** The one source a supplier or agent token may deliver as; null for other roles. */
  source: string | null;
  /** Hex SHA-256 of the token's secret part. */
  secretSha256: string;
  /** ISO-8601; null when the token does not expire. */
  expiresAt: string | null;
}

export interface ApiToken extends ApiTokenGrant {
  createdAt: string;
  revokedAt: string | null;
}

// ── aggregates for people watching the ledger (insights.ts) ──────────────────────────────
/** The chain's length and its latest signed checkpoint (no verification: see `verify`). */
export interface LedgerStatus {
  events: number;
  lastEventAt: string | null;
  checkpoints: number;
  head: { seq: number; at: string; keyId: string; root: string | null } | null;
}

/** A source and what makes it risky: flagged samples over all scans and per scan. */
export interface SourceRisk {
  name: string;
  kind: SourceKind;
  trust: number;
  samples: number;
  deliveries: number;
  lastDeliveryAt: string | null;
  /** Distinct samples from the source with at least one finding. */
  flaggedSamples: number;
  /** flaggedSamples / samples. */
  flagRate: number;
  /** The flag rate of the latest scan that flagged any of its samples (0 when none did). */
  latestFlagRate: number;
  /** The highest score of a finding on the source itself (per-source risk), if any. */
  sourceScore: number | null;
  quarantined: boolean;
  /** One point per scan (findings appended together) that flagged any of its samples, oldest first. */
  trend: { at: string; flagged: number; rate: number }[];
}

export interface FindingCount {
  kind: string;
  subjectType: string;
  findings: number;
  /** Distinct subjects with a finding of this kind. */
  subjects: number;
  /** Of those, subjects not quarantined (directly or through their source). */
  open: number;
}

export interface QuarantineSize {
  sources: number;
  /** Samples quarantined directly or through a quarantined source, each counted once. */
  samples: number;
}

export type SampleSummary = SampleRecord & {
  quarantined: boolean;
  /** Findings on this sample, and the highest score among them (null without findings). */
  findings: number;
  topScore: number | null;
};

export interface VersionSummary {
  version: string;
  bySource: { source: string; samples: number }[];
  byLabel: { label: string | null; samples: number }[];
  /** Members with at least one finding. */
  flagged: number;
  /** Members quarantined directly or through a source. */
  quarantined: number;
  /** Versions derived from this one (exports, transforms). */
  children: string[];
  /** Digests of models trained on it. */
  models: string[];
}

export interface BlastRadiusNode {
  /** "<type>:<key>" */
  id: string;
  type: "source" | "delivery" | "version" | "model";
  /** Source name, delivery id, version id or model digest. */
  key: string;
  label: string;
  /** Samples from the source it holds (for a model: in the versions it was trained on). */
  fromSource: number;
  /** All its samples (a version's size). */
  total: number;
  /** Of `fromSource`, how many are quarantined. */
  quarantined: number;
}

/** `trace --source` as a graph: what the source reached, with counts on every edge. */
export interface BlastRadius {
  source: string;
  quarantined: boolean;
  nodes: BlastRadiusNode[];
  edges: { from: string; to: string; samples: number }[];
}

/** What every reader of a ledger may do: nothing here writes, to the database or anywhere. */
export interface LedgerReader {
  /** "sqlite:<path>" or the postgres URL with the password removed. */
  readonly location: string;
  /** Directory for the ledger's own files besides the database: `.antidote/` next to a SQLite
   * file, `.antidote/` in the working directory for PostgreSQL. The sample store lives here. */
  readonly homeDir: string;

  /** Recompute every hash, link, tree head and checkpoint signature and replay the derived tables. */
  verify(options?: VerifyOptions): Promise<VerifyReport>;

  /** The latest signed checkpoint with the key that signed it, to publish elsewhere. */
  signedHead(): Promise<SignedTreeHead | undefined>;

  /**
   * A delivery's own sample records and store digest, read from its events and checked
   * against the signed head (the events re-hash, and the Merkle root over all events is the
   * one the head checkpoint signs) — what the sample store must match.
   */
  deliveryEvidence(deliveryId: string): Promise<DeliveryEvidence>;

  /** Events in order, from `fromSeq` (inclusive), streamed in pages. */
  events(fromSeq?: number): AsyncIterable<LedgerEvent>;
  /** The one event at `seq`, as stored (the caller re-hashes it to use it as evidence). */
  getEvent(seq: number): Promise<LedgerEvent | undefined>;
  /**
   * Events of one kind, oldest first (or newest first with `newestFirst`), at most `limit`:
   * an index range (events_kind_seq), for kinds whose latest event is the state in force
   * (`policy.adopted`, `model.reputation-set`).
   */
  eventsOfKind<K extends LedgerEventKind>(
    kind: K,
    options?: { newestFirst?: boolean; limit?: number },
  ): Promise<Extract<LedgerEvent, { kind: K }>[]>;

  getSource(name: string): Promise<Source | undefined>;
  listSources(): Promise<Source[]>;
  /** A delivery already ingested with this manifest digest, if any (idempotent ingest). */
  findDelivery(manifestDigest: string): Promise<{ deliveryId: string; datasetVersion: string } | undefined>;
  listDeliveries(): Promise<DeliveryRecord[]>;
  getDatasetVersion(version: string): Promise<DatasetVersion | undefined>;
  listDatasetVersions(): Promise<DatasetVersion[]>;
  /** Member sample digests of a version, streamed in digest order: all of them, or `limit`
   * after the digest `after` (a keyset page: an indexed range read, however deep). */
  datasetMembers(
    version: string,
    options?: { after?: string; limit?: number },
  ): AsyncIterable<SampleRecord & { source: string | null; quarantined: boolean }>;
  getModel(digest: string): Promise<ModelRecord | undefined>;
  listModels(): Promise<ModelRecord[]>;
  /** Whether a registered model is suspended, since when and why; undefined for an unknown model. */
  getModelStatus(digest: string): Promise<ModelStatus | undefined>;
  /** Accepted telemetry batches in the order accepted (keyset pages after `filter.after`). */
  listTelemetryBatches(filter?: TelemetryBatchFilter): Promise<TelemetryBatchRecord[]>;
  getTelemetryBatch(batchId: string): Promise<TelemetryBatchRecord | undefined>;
  /** The highest sequence number accepted from `agent`, or null before its first batch. */
  lastTelemetrySequence(agent: string): Promise<number | null>;
  /** Whether a source (an agent included) is quarantined now. */
  isSourceQuarantined(name: string): Promise<boolean>;
  /** Sample digests currently quarantined (directly, or through a quarantined source). */
  isQuarantined(digest: string): Promise<boolean>;
  findings(filter?: {
    subjectType?: Finding["subjectType"];
    minScore?: number;
  }): AsyncIterable<Finding & { seq: number }>;
  traceSource(name: string, options?: { limit?: number }): Promise<SourceTrace>;
  /** By sample id or digest. */
  traceSample(idOrDigest: string): Promise<SampleTrace | undefined>;
  /** The chain's length and latest signed checkpoint, without verifying anything. */
  status(): Promise<LedgerStatus>;
  /** Sources ranked riskiest first (or just `source`), with their flag rate per scan. */
  sourceRisks(options?: { source?: string }): Promise<SourceRisk[]>;
  /** Findings by kind and subject type, with how many subjects are still open. */
  findingCounts(): Promise<FindingCount[]>;
  quarantineSize(): Promise<QuarantineSize>;
  /** A page of a source's samples in digest order after `after`, with their findings. */
  sourceSamples(
    source: string,
    options: { after?: string; limit: number },
  ): Promise<{ items: SampleSummary[]; nextCursor: string | null }>;
  /** Annotators who labeled the source's samples, most samples first. */
  sourceAnnotators(source: string): Promise<{ annotator: string; samples: number }[]>;
  versionSummary(version: string): Promise<VersionSummary>;
  /** What a source reached, as a graph with counts (its trace, plus derived versions). */
  blastRadius(source: string): Promise<BlastRadius>;
  /** API tokens of `antidote serve`, revoked ones included (secrets are never stored). */
  listTokens(): Promise<ApiToken[]>;
  getToken(tokenId: string): Promise<ApiToken | undefined>;

  close(): Promise<void>;
}

/** A ledger opened for writing: it holds the ledger's key. */
export interface Ledger extends LedgerReader {
  /** Path of the ledger's key file (PKCS#8 PEM), used unless the key comes from the environment
   * or a signer: it signs checkpoints, and `export` signs clean versions' manifests with it. */
  readonly keyPath: string;
  /** The ledger's current key, as a signer (the private key never leaves it). */
  readonly signer: LedgerSigner;

  /**
   * Append events atomically: all or none, one transaction, serialized against every
   * other writer (other processes included). Validates payloads before writing; refuses a
   * head the ledger's key did not sign; a checkpoint is signed at the end of each append.
   */
  append(events: LedgerEventInput[], options?: AppendOptions): Promise<LedgerEvent[]>;

  /** Hand the ledger to a new key: the current key endorses it, in the log. */
  rotateKey(next: LedgerSigner, options?: AppendOptions): Promise<LedgerEvent[]>;
}

export interface DeliveryEvidence {
  deliveryId: string;
  store: string | null;
  storeSha256: string | null;
  /** The records as ingested, in the order they arrived. */
  samples: SampleRecord[];
}

export interface OpenLedgerOptions {
  /** A SQLite file path, or a `postgres://` / `postgresql://` URL. Default `.antidote/ledger.db`. */
  location?: string;
  /** The ledger's Ed25519 signing key (PKCS#8 PEM) for checkpoints. Default: `ledger-key.pem` in
   * the `.antidote/` directory next to a SQLite file, or `.antidote/ledger-key.pem` in the working
   * directory for PostgreSQL. Created (and its public key recorded as `ledger.key-rotated`) only
   * for a ledger with no events yet; $ANTIDOTE_LEDGER_KEY, when set, takes precedence. */
  keyPath?: string;
  /** Default actor recorded on events (default: the OS user name). */
  actor?: string;
  /** Sign with this instead of a key file or $ANTIDOTE_LEDGER_KEY (a KMS or PKCS#11 hook). */
  signer?: LedgerSigner;
  /** PostgreSQL: connections held at most (default 4). A server answering many clients needs
   * more, so that reads do not wait behind an append holding one for its whole transaction. */
  poolSize?: number;
}
