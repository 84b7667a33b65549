// Signed telemetry batches as a deployed agent makes them, for the intake tests and the
// intake benchmark: real Fashion-MNIST test images as inputs (with their content digests),
// class probabilities peaked on the image's true class, optional feedback labels, and a DSSE
// envelope over the statement signed with the agent's Ed25519 key — built here with the
// library's own pieces (schema.ts, dsse.ts), independent of the client under test elsewhere.
import { createHash, createPrivateKey } from "node:crypto";
import { signEnvelope } from "../../src/provenance/dsse.js";
import { generateSigningKey, type SigningKey } from "../../src/provenance/keys.js";
import {
  TELEMETRY_PAYLOAD_TYPE,
  TELEMETRY_STATEMENT_TYPE,
  telemetryInput,
  type TelemetryRecord,
  type TelemetryStatement,
  type TelemetryUpload,
} from "../../src/monitor/schema.js";
import type { Sample } from "../../src/data/sample.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

export const CLASSES = FASHION_MNIST_CLASSES;

export interface TestAgent {
  name: string;
  key: SigningKey;
  publicKeyPem: string;
}

export function makeAgent(name: string): TestAgent {
  const made = generateSigningKey();
  return {
    name,
    key: {
      keyId: made.keyId,
      privateKey: createPrivateKey(made.privateKeyPem),
      publicKeyPem: made.publicKeyPem,
    },
    publicKeyPem: made.publicKeyPem,
  };
}

let images: Sample[] = [];

/** Fashion-MNIST test images i, i+1, … (wrapping at the end of the split). */
export function testImages(from: number, n: number): Sample[] {
  if (images.length === 0) images = fashionMnistSamples(10_000, "t10k");
  return Array.from({ length: n }, (_, k) => images[(from + k) % images.length] as Sample);
}

/**
 * One record per image: probabilities 0.91 on the true class and 0.01 on each other (sums to
 * 1), made at `at` plus a millisecond per record; every `feedbackEvery`-th record carries the
 * true label as human feedback.
 */
export function recordsFor(samples: readonly Sample[], at: Date, feedbackEvery = 4): TelemetryRecord[] {
  return samples.map((s, i) => {
    const label = CLASSES.indexOf(s.label ?? "");
    const probs = CLASSES.map((_, k) => (k === label ? 0.91 : 0.01));
    const record: TelemetryRecord = {
      id: `r${i}-${s.id}`,
      at: new Date(at.getTime() + i).toISOString(),
      input: telemetryInput({ image: s.image }),
      output: { probs },
    };
    if (feedbackEvery > 0 && i % feedbackEvery === 0)
      record.feedback = { label: s.label ?? "", kind: "human" };
    return record;
  });
}

export function jsonl(records: readonly unknown[]): string {
  return records.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

export interface BatchSpec {
  sequence: number;
  model: string;
  /** The JSONL text (default: `records` serialized). */
  text: string;
  window: { start: string; end: string };
  /** Change the statement before it is signed (a lying agent). */
  statement?: (s: TelemetryStatement) => TelemetryStatement;
  /** Sign with this key instead of the agent's own. */
  signer?: SigningKey;
}

/** The agent's signed upload for `spec`. */
export function signedBatch(agent: TestAgent, spec: BatchSpec): TelemetryUpload {
  const bytes = Buffer.from(spec.text, "utf8");
  const base: TelemetryStatement = {
    _type: TELEMETRY_STATEMENT_TYPE,
    agent: agent.name,
    sequence: spec.sequence,
    window: spec.window,
    model: spec.model,
    classes: [...CLASSES],
    records: {
      sha256: createHash("sha256").update(bytes).digest("hex"),
      count: spec.text.split("\n").filter((l) => l !== "").length,
      bytes: bytes.length,
    },
  };
  const statement = spec.statement?.(base) ?? base;
  const envelope = signEnvelope(
    Buffer.from(JSON.stringify(statement)),
    TELEMETRY_PAYLOAD_TYPE,
    spec.signer ?? agent.key,
  );
  return { envelope, records: spec.text };
}

/** A window of `minutes` ending at `end`. */
export function windowEnding(end: Date, minutes = 10): { start: string; end: string } {
  return { start: new Date(end.getTime() - minutes * 60_000).toISOString(), end: end.toISOString() };
}
