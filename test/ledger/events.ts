// Event builders for ledger tests: the batches an ingest, a finding, a decision or a model
// registration appends, over real Fashion-MNIST sample digests.
import { createHash, generateKeyPairSync } from "node:crypto";
import type { LedgerEventInput, SampleRecord, SourceKind } from "../../src/ledger/types.js";
import { fashionMnistSamples } from "../helpers/real-data.js";

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

export function publicKeyPem(): string {
  return generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
}

/** The first `n` Fashion-MNIST training images as the ledger records them. */
export function realSamples(n: number): SampleRecord[] {
  return fashionMnistSamples(n).map((s) => ({ id: s.id, digest: s.digest, label: s.label, annotations: [] }));
}

export function sourceAdded(
  name: string,
  kind: SourceKind = "supplier",
  keys: string[] = [],
): LedgerEventInput {
  return {
    kind: "source.added",
    payload: {
      name,
      kind,
      trust: 0.5,
      requireSignature: keys.length > 0,
      keys: keys.map((publicKeyPem) => ({ publicKeyPem })),
    },
  };
}

export interface DeliveryOptions {
  deliveryId: string;
  source: string;
  samples: readonly SampleRecord[];
  version: string;
  /** Samples per samples.added / members-added event. */
  batch?: number;
  manifestDigest?: string;
  parent?: string | null;
}

/** What an ingest appends: the delivery, its samples in batches, the version and its members. */
export function deliveryEvents(o: DeliveryOptions): LedgerEventInput[] {
  const batch = o.batch ?? 1000;
  const digests = [...new Set(o.samples.map((s) => s.digest))].sort();
  const root = sha256(digests.join("\n"));
  const events: LedgerEventInput[] = [
    {
      kind: "delivery.ingested",
      payload: {
        deliveryId: o.deliveryId,
        source: o.source,
        manifestDigest: o.manifestDigest ?? sha256(`manifest:${o.deliveryId}`),
        merkleRoot: root,
        keyId: null,
        files: [{ path: "delivery.parquet", sha256: sha256(o.deliveryId), size: 1234 }],
        sampleCount: o.samples.length,
        datasetVersion: o.version,
        store: null,
      },
    },
  ];
  for (let i = 0; i < o.samples.length; i += batch)
    events.push({
      kind: "samples.added",
      payload: { deliveryId: o.deliveryId, source: o.source, samples: o.samples.slice(i, i + batch) },
    });
  events.push(...versionEvents(o.version, digests, o.parent ?? null, batch));
  return events;
}

export function versionEvents(
  version: string,
  digests: readonly string[],
  parent: string | null = null,
  batch = 1000,
  transformKind = parent === null ? "ingest" : "export",
): LedgerEventInput[] {
  const sorted = [...new Set(digests)].sort();
  const root = sha256(sorted.join("\n"));
  const events: LedgerEventInput[] = [
    {
      kind: "dataset.version-created",
      payload: {
        version,
        name: version.split("@")[0] ?? version,
        merkleRoot: root,
        parent,
        sampleCount: sorted.length,
        transform: {
          kind: transformKind,
          tool: "antidote",
          toolVersion: "test",
          parameters: { parent },
          inputDigests: [],
          outputDigests: [root],
        },
      },
    },
  ];
  for (let i = 0; i < sorted.length; i += batch)
    events.push({ kind: "dataset.members-added", payload: { version, digests: sorted.slice(i, i + batch) } });
  return events;
}

export function model(
  digest: string,
  trainedOn: string[],
  baseModel: string | null = null,
): LedgerEventInput {
  return {
    kind: "model.registered",
    payload: { digest, name: `model-${digest.slice(0, 6)}`, trainedOn, baseModel, format: "onnx" },
  };
}

export function decision(
  action: "quarantine" | "release",
  subjectType: "sample" | "source",
  subjectIds: string[],
): LedgerEventInput {
  return {
    kind: "decision.recorded",
    payload: { action, subjectType, subjectIds, actor: "alice", reason: "test" },
  };
}

export function finding(subjectId: string, score: number, kind = "label-issue"): LedgerEventInput {
  return {
    kind: "finding.recorded",
    payload: {
      subjectType: "sample",
      subjectId,
      kind,
      score,
      evidence: { given: "Bag", suggested: "Coat" },
      check: "confident-learning",
      checkVersion: "1",
    },
  };
}
