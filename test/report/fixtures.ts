// Ledger records as a real ingest → scan → export → train sequence leaves them: two
// suppliers (one of whose keys was revoked after it signed a delivery), a delivery each,
// a root version, a clean export of it, and a model fine-tuned from a two-model chain.
import { createHash } from "node:crypto";
import type { DatasetProvenance, ModelBomInput } from "../../src/report/bom.js";
import type {
  DatasetVersion,
  DeliveryRecord,
  ModelRecord,
  Source,
  Transform,
} from "../../src/ledger/types.js";

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const vendorKeyOld = sha256("vendor-a key 1");
const vendorKeyNew = sha256("vendor-a key 2");
const crawlKey = sha256("crawl key");

export const vendorA: Source = {
  name: "vendor-a",
  kind: "supplier",
  trust: 0.8,
  requireSignature: true,
  keys: [
    {
      keyId: vendorKeyOld,
      publicKeyPem: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
      addedAt: "2025-01-02T09:00:00.000Z",
      revokedAt: "2025-03-01T12:00:00.000Z",
    },
    {
      keyId: vendorKeyNew,
      publicKeyPem: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEB\n-----END PUBLIC KEY-----\n",
      addedAt: "2025-03-01T12:05:00.000Z",
      revokedAt: null,
    },
  ],
  addedAt: "2025-01-02T09:00:00.000Z",
};

export const crawl: Source = {
  name: "crawl",
  kind: "web",
  trust: 0.3,
  requireSignature: false,
  keys: [
    {
      keyId: crawlKey,
      publicKeyPem: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEC\n-----END PUBLIC KEY-----\n",
      addedAt: "2025-01-03T09:00:00.000Z",
      revokedAt: null,
    },
  ],
  addedAt: "2025-01-03T09:00:00.000Z",
};

const TOOL = { tool: "antidote", toolVersion: "0.1.0" };

// vendor-a's delivery, signed with the key that was revoked three weeks later.
const manifestA = sha256("manifest vendor-a 2025-02-10");
const rootA: DatasetVersion = {
  version: `spam-vendor-a@${manifestA.slice(0, 12)}`,
  name: "spam-vendor-a",
  merkleRoot: sha256("members of vendor-a delivery"),
  parent: null,
  sampleCount: 300,
  createdAt: "2025-02-10T08:30:00.000Z",
  transform: {
    kind: "ingest",
    ...TOOL,
    parameters: { source: "vendor-a", signed: true, target: "vendor-a-2025-02.jsonl" },
    inputDigests: [manifestA],
    outputDigests: [sha256("members of vendor-a delivery")],
  },
};
export const deliveryA: DeliveryRecord = {
  deliveryId: "vendor-a-2025-02-10",
  source: "vendor-a",
  manifestDigest: manifestA,
  merkleRoot: sha256("files of vendor-a delivery"),
  keyId: vendorKeyOld,
  sampleCount: 300,
  datasetVersion: rootA.version,
  store: "vendor-a-2025-02-10.parquet",
  at: "2025-02-10T08:30:00.000Z",
};

// The crawl's delivery: unsigned, allowed because the source does not require signatures.
const manifestC = sha256("manifest crawl 2025-02-12");
const rootC: DatasetVersion = {
  version: `spam-crawl@${manifestC.slice(0, 12)}`,
  name: "spam-crawl",
  merkleRoot: sha256("members of crawl delivery"),
  parent: null,
  sampleCount: 200,
  createdAt: "2025-02-12T17:45:00.000Z",
  transform: {
    kind: "ingest",
    ...TOOL,
    parameters: { source: "crawl", signed: false, target: "crawl-2025-02-12.jsonl" },
    inputDigests: [manifestC],
    outputDigests: [sha256("members of crawl delivery")],
  },
};
export const deliveryC: DeliveryRecord = {
  deliveryId: "crawl-2025-02-12",
  source: "crawl",
  manifestDigest: manifestC,
  merkleRoot: sha256("files of crawl delivery"),
  keyId: null,
  sampleCount: 200,
  datasetVersion: rootC.version,
  store: "crawl-2025-02-12.parquet",
  at: "2025-02-12T17:45:00.000Z",
};

// A clean export of vendor-a's version: 12 quarantined samples left out.
const cleanRoot = sha256("members of clean export");
const exportFile = {
  path: "spam-clean.parquet",
  sha256: sha256("spam-clean.parquet bytes"),
  size: 1_482_113,
};
const cleanA: DatasetVersion = {
  version: `spam-vendor-a@${sha256("clean export id").slice(0, 12)}`,
  name: "spam-vendor-a",
  merkleRoot: cleanRoot,
  parent: rootA.version,
  sampleCount: 288,
  createdAt: "2025-02-20T10:00:00.000Z",
  transform: {
    kind: "export",
    ...TOOL,
    parameters: { excludeQuarantined: true, excludeSources: [], format: "parquet", out: exportFile.path },
    inputDigests: [rootA.merkleRoot],
    outputDigests: [cleanRoot, sha256("statement of clean export")],
  },
};

function lineageStep(version: DatasetVersion): Transform & { version: string; at: string } {
  return { ...version.transform, version: version.version, at: version.createdAt };
}

export const SPAM_CLASSES = ["ham", "spam"];

export const rootAProvenance: DatasetProvenance = {
  version: rootA,
  sources: [{ source: vendorA, sampleCount: 300 }],
  deliveries: [deliveryA],
  lineage: [lineageStep(rootA)],
  findingsCount: 14,
  quarantinedCount: 12,
  classes: SPAM_CLASSES,
  labelling: { labelled: 300, distinct: 2 },
};

export const cleanAProvenance: DatasetProvenance = {
  version: cleanA,
  sources: [{ source: vendorA, sampleCount: 288 }],
  deliveries: [deliveryA],
  lineage: [lineageStep(rootA), lineageStep(cleanA)],
  findingsCount: 2,
  // Quarantined after the export, by a later scan.
  quarantinedCount: 3,
  classes: SPAM_CLASSES,
  labelling: { labelled: 288, distinct: 2 },
  files: [exportFile],
  annotations: { annotatedSamples: 288, labels: 864, annotators: ["ann-1", "ann-2", "ann-3"] },
};

export const crawlProvenance: DatasetProvenance = {
  version: rootC,
  sources: [{ source: crawl, sampleCount: 200 }],
  deliveries: [deliveryC],
  lineage: [lineageStep(rootC)],
  findingsCount: 9,
  quarantinedCount: 7,
  classes: SPAM_CLASSES,
  labelling: { labelled: 200, distinct: 2 },
};

// Foundation model → fine-tune on vendor-a's raw data → fine-tune on the clean export and the crawl.
export const foundation: ModelRecord = {
  digest: sha256("foundation.onnx"),
  name: "text-encoder-base",
  trainedOn: [],
  baseModel: null,
  format: "onnx",
  registeredAt: "2025-01-15T00:00:00.000Z",
};
export const firstTune: ModelRecord = {
  digest: sha256("spam-v1.onnx"),
  name: "spam-filter-v1",
  trainedOn: [rootA.version],
  baseModel: foundation.digest,
  format: "onnx",
  registeredAt: "2025-02-11T00:00:00.000Z",
};
export const model: ModelRecord = {
  digest: sha256("spam-v2.onnx"),
  name: "spam-filter-v2",
  trainedOn: [cleanA.version, rootC.version],
  baseModel: firstTune.digest,
  format: "onnx",
  registeredAt: "2025-02-21T00:00:00.000Z",
};

export function bomInput(): ModelBomInput {
  return {
    model,
    datasets: [cleanAProvenance, crawlProvenance, rootAProvenance],
    baseModels: [firstTune, foundation],
    tool: { name: "antidote", version: "0.1.0" },
    findings: [
      { kind: "label-issue-rate", subjectId: rootC.version, score: 0.035, check: "confident-learning" },
      { kind: "backdoor-trigger", subjectId: model.digest, score: 4.1, check: "trigger-inversion" },
    ],
  };
}
