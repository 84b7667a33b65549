// The API's reply shapes the dashboard reads, as /openapi.json describes them (generated on
// the server from the zod schemas in src/server/). Only the fields the pages use.

export type Role = "admin" | "analyst" | "supplier" | "agent" | "reader";
export type Permission =
  | "read"
  | "deliveries:read"
  | "deliver"
  | "decide"
  | "models:write"
  | "jobs:write"
  | "sources:write"
  | "tokens"
  | "telemetry";

export interface WhoAmI {
  tokenId: string;
  principal: string;
  role: Role;
  source: string | null;
  expiresAt: string | null;
  permissions: Permission[];
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface SourceRisk {
  name: string;
  kind: string;
  trust: number;
  samples: number;
  deliveries: number;
  lastDeliveryAt: string | null;
  flaggedSamples: number;
  flagRate: number;
  latestFlagRate: number;
  sourceScore: number | null;
  quarantined: boolean;
  trend: { at: string; flagged: number; rate: number }[];
}

export interface SourceRiskDetail extends SourceRisk {
  annotators: { annotator: string; samples: number }[];
}

export interface Delivery {
  deliveryId: string;
  source: string;
  manifestDigest: string;
  merkleRoot: string;
  keyId: string | null;
  sampleCount: number;
  datasetVersion: string;
  at: string;
}

/** A delivery the server refused (GET /v1/deliveries/refused): who, as which source, and why. */
export interface DeliveryRefusal {
  id: number;
  at: string;
  source: string;
  principal: string;
  code: string;
  message: string;
}

export interface FindingCount {
  kind: string;
  subjectType: string;
  findings: number;
  subjects: number;
  open: number;
}

export interface Overview {
  ledger: {
    events: number;
    lastEventAt: string | null;
    checkpoints: number;
    head: { seq: number; at: string; keyId: string; root: string | null } | null;
  };
  quarantine: { sources: number; samples: number };
  findings: FindingCount[];
  sources: { total: number; flagged: number; riskiest: SourceRisk[] };
  deliveries: { total: number; latest: Delivery[]; refused: DeliveryRefusal[] };
  versions: number;
  models: number;
}

export interface VerifyReport {
  ok: boolean;
  events: number;
  checkpoints: number;
  root?: string;
  firstBad?: { seq: number; reason: string };
  tableMismatches: string[];
  localWitness: string;
}

export interface Source {
  name: string;
  kind: string;
  trust: number;
  requireSignature: boolean;
  keys: { keyId: string; publicKeyPem: string; addedAt: string; revokedAt: string | null }[];
  addedAt: string;
}

export interface SampleSummary {
  id: string;
  digest: string;
  label: string | null;
  annotations: { annotator: string; label: string }[];
  quarantined: boolean;
  findings: number;
  topScore: number | null;
}

export interface BlastRadius {
  source: string;
  quarantined: boolean;
  nodes: {
    id: string;
    type: "source" | "delivery" | "version" | "model";
    key: string;
    label: string;
    fromSource: number;
    total: number;
    quarantined: number;
  }[];
  edges: { from: string; to: string; samples: number }[];
}

export interface Transform {
  kind: string;
  tool: string;
  toolVersion: string;
  parameters: Record<string, unknown>;
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

export interface VersionSummary {
  version: string;
  bySource: { source: string; samples: number }[];
  byLabel: { label: string | null; samples: number }[];
  flagged: number;
  quarantined: number;
  children: string[];
  models: string[];
}

export interface Member {
  id: string;
  digest: string;
  label: string | null;
  source: string | null;
  quarantined: boolean;
}

export interface Model {
  digest: string;
  name: string;
  trainedOn: string[];
  baseModel: string | null;
  format: string;
  registeredAt: string;
}

/** GET /v1/models/{digest}/lineage: bases, and every model built on it. */
export interface ModelLineage {
  model: Model & { status: "active" | "suspended"; depth: number };
  ancestors: (Model & { status: "active" | "suspended"; depth: number })[];
  unregisteredBase: string | null;
  descendants: (Model & { status: "active" | "suspended"; depth: number; base: string })[];
  findings: { seq: number; subjectId: string; kind: string; score: number }[];
}

/** GET /v1/model-reputations: the foundation-model reputation list. */
export interface ModelReputation {
  digest: string;
  verdict: "trusted" | "distrusted";
  reason: string;
  publisher: string | null;
  seq: number;
  at: string;
  actor: string;
}

export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

export interface Job {
  jobId: string;
  kind: string;
  parameters: Record<string, unknown>;
  state: JobState;
  principal: string;
  progress: { stage: string; done: number; total: number } | null;
  result: unknown;
  error: string | null;
  attempts: number;
  artifacts: string[];
  createdAt: string;
  updatedAt: string;
}

export interface Finding {
  subjectType: string;
  subjectId: string;
  kind: string;
  score: number;
  evidence: Record<string, unknown>;
  check: string;
  checkVersion: string;
  at?: string;
  seq: number;
}

export interface SampleTrace {
  sample: {
    id: string;
    digest: string;
    label: string | null;
    annotations: { annotator: string; label: string }[];
  };
  origins: { deliveryId: string; source: string; sourceKind: string; at: string; keyId: string | null }[];
  transforms: { kind: string; tool: string; at: string }[];
  datasetVersions: string[];
  findings: Finding[];
  decisions: { action: string; actor: string; reason: string; at: string }[];
  quarantined: boolean;
}

export interface IngestResult {
  deliveryId: string;
  datasetVersion: string;
  source: string;
  keyId: string | null;
  sampleCount: number;
  files: number;
  merkleRoot: string;
  alreadyIngested: boolean;
}

/** report.json of a scan job (scan/report-json.ts), the parts the dashboard draws. */
export interface ScanReport {
  createdAt: string;
  dataset: { samples: number; name: string };
  detectors: {
    name: string;
    status: "ran" | "skipped";
    reason?: string;
    seconds?: number;
    flagged?: number;
    reliability?: number;
    threshold?: { value: number | null; method: string };
    summary?: unknown;
    warnings?: string[];
  }[];
  ensemble: { method: string; flagged: number; flaggedRate: number; riskThreshold: number };
  flagged: {
    index: number;
    id: string;
    digest: string;
    label: string | null;
    source: string | null;
    risk: number;
    detectors: string[];
    combinedEvidence: number;
    evidence: Record<string, unknown>;
  }[];
  classes: unknown;
  sources: unknown;
  warnings: string[];
}

export interface AuditLabel {
  label: number;
  className: string | null;
  l1: number;
  asr: number;
  anomalyIndex: number | null;
  referenceL1: number | null;
  ratio: number | null;
  suspected: boolean;
  mask: number[];
  pattern: number[];
}

export interface AuditReportJson {
  createdAt: string;
  model: { digest: string };
  verdict: {
    method: string;
    note: string;
    backdoor: boolean;
    suspected: { label: number; className: string | null; ratio: number | null; asr: number; l1: number }[];
  };
  labels: AuditLabel[];
  inversion: { imageShape: [number, number, number] };
  strip: {
    threshold: number;
    frr: number;
    observedFrr: number;
    histogram: { edges: number[]; clean: number[]; inputs: number[] | null };
  } | null;
}

// ── deployed monitoring (GET /v1/telemetry/fleet, /v1/telemetry/batches, /v1/telemetry/refusals) ──
export interface RefusalsByCode {
  code: string;
  refusals: number;
  lastAt: string;
}

export interface FleetAgent {
  name: string;
  trust: number;
  addedAt: string;
  keys: { current: number; revoked: number };
  quarantined: boolean;
  batches: number;
  quarantinedBatches: number;
  records: number;
  feedback: number;
  lastBatch: { batchId: string; sequence: number; at: string; model: string } | null;
  gaps: { batches: number; missing: number };
  models: string[];
  refusals: { total: number; byCode: RefusalsByCode[] };
  findings: {
    count: number;
    onAgent: number;
    onBatches: number;
    maxScore: number | null;
    latest: { seq: number; check: string; kind: string; score: number; subjectId: string } | null;
  };
}

export interface FleetModel {
  digest: string;
  name: string;
  status: "active" | "suspended";
  since: string;
  reason: string | null;
  actor: string | null;
  batches: number;
  records: number;
  agents: number;
  lastBatchAt: string | null;
  findings: number;
}

export interface FleetAlert {
  seq: number;
  at: string;
  check: string;
  kind: string;
  subjectType: string;
  subjectId: string;
  score: number;
  batchId: string | null;
  agent: string | null;
}

export interface FleetStatus {
  totals: {
    agents: number;
    batches: number;
    records: number;
    refusals: number;
    monitorFindings: number;
    suspendedModels: number;
  };
  agents: FleetAgent[];
  models: FleetModel[];
  unattributedRefusals: (RefusalsByCode & { agent: string })[];
  alerts: FleetAlert[];
}

export interface TelemetryBatch {
  batchId: string;
  agent: string;
  sequence: number;
  keyId: string;
  model: string;
  window: { start: string; end: string };
  count: number;
  feedbackCount: number;
  gap: { expected: number; got: number } | null;
  quarantined: boolean;
  seq: number;
  at: string;
}

export interface TelemetryRefusal {
  id: number;
  at: string;
  agent: string;
  principal: string;
  code: string;
  message: string;
}

export interface TelemetryRefusalPage extends Page<TelemetryRefusal> {
  counts: (RefusalsByCode & { agent: string })[];
}
