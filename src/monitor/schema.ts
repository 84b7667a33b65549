// Telemetry as deployed agents send it: a batch is a JSONL file of records (one prediction
// each) and a DSSE envelope whose statement names the agent, the batch's sequence number, its
// time window, the model the agent runs (its digest, as registered in the ledger) and the
// SHA-256 of the JSONL bytes. The signature covers the statement, the statement covers the
// bytes, so nothing in a batch is read as telemetry before the agent's key has vouched for it.
//
// This file is the contract between agents (createTelemetryClient, fleet-sim), the intake
// (intake.ts) and the monitors: the wire schemas, the limits, and the decoded in-memory form
// the monitors read. docs/telemetry.md documents the same format for agents in other languages.
import { z } from "zod";
import {
  canonicalParts,
  digestParts,
  imageFromBytes,
  imageToBytes,
  type ImageTensor,
} from "../data/sample.js";
import { AntidoteError, jsonSyntaxReason } from "../errors.js";

/** DSSE payloadType of a telemetry batch's statement. */
export const TELEMETRY_PAYLOAD_TYPE = "application/vnd.antidote.telemetry-batch+json";

/** `_type` of the statement: versioned, so a later format is never read as this one. */
export const TELEMETRY_STATEMENT_TYPE = "https://antidote.dev/telemetry-batch/v1";

/** Limits a batch must keep (the intake refuses a batch over any of them, with the limit named). */
export const TELEMETRY_LIMITS = {
  /** Records per batch. */
  maxRecords: 10_000,
  /** Bytes of JSONL per batch. */
  maxBytes: 64 * 1024 * 1024,
  /** Classes a model may have. */
  maxClasses: 1000,
  /** A window may end at most this far in the future of the server's clock (clock skew). */
  maxSkewMs: 5 * 60_000,
  /** A window may span at most this long. */
  maxWindowMs: 24 * 3600_000,
  /** A window may not end longer ago than this (stale or replayed telemetry). */
  maxAgeMs: 7 * 24 * 3600_000,
  /** Text inputs, in characters. */
  maxTextLength: 100_000,
  /** Image inputs, in pixels × channels. */
  maxImageValues: 4096 * 4096 * 4,
  /** How far a record's probabilities may sum from 1. */
  probabilitySumTolerance: 1e-3,
} as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be a lowercase hex SHA-256");
const isoTime = z.string().datetime({ offset: true, message: "must be an ISO-8601 time" });
/** Agent names are source names: the ledger's rules (printable, no path separators). */
const agentName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, "must be a registered agent's source name");

/** What the agent signs (the DSSE payload). */
export const telemetryStatementSchema = z
  .object({
    _type: z.literal(TELEMETRY_STATEMENT_TYPE),
    agent: agentName,
    /** Increases by one per batch; a number already accepted is a replay, a skipped one a gap. */
    sequence: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    window: z.object({ start: isoTime, end: isoTime }).strict(),
    /** Hex SHA-256 of the model file the agent runs: a model registered in the ledger. */
    model: sha256Hex,
    /** The model's class names in output order: `output.probs[i]` is the probability of classes[i]. */
    classes: z.array(z.string().min(1).max(200)).min(2).max(TELEMETRY_LIMITS.maxClasses),
    records: z
      .object({
        /** Hex SHA-256 of the JSONL bytes exactly as sent. */
        sha256: sha256Hex,
        count: z.number().int().min(1).max(TELEMETRY_LIMITS.maxRecords),
        bytes: z.number().int().min(1).max(TELEMETRY_LIMITS.maxBytes),
      })
      .strict(),
  })
  .strict();
export type TelemetryStatement = z.output<typeof telemetryStatementSchema>;

/**
 * One prediction. The input is its content digest (the same digest a dataset sample of that
 * content has: `sampleDigest`) and, optionally, the content itself — needed for trigger
 * screening, re-running the attested model, and for the closed-loop gate to train on it.
 */
export const telemetryRecordSchema = z
  .object({
    /** Unique within the batch. */
    id: z.string().min(1).max(200),
    /** When the prediction was made; inside the batch's window. */
    at: isoTime,
    input: z
      .object({
        digest: sha256Hex,
        text: z.string().max(TELEMETRY_LIMITS.maxTextLength).optional(),
        /** 8-bit pixels, row-major H×W×C, base64. */
        image: z
          .object({
            height: z.number().int().min(1).max(4096),
            width: z.number().int().min(1).max(4096),
            channels: z.union([z.literal(1), z.literal(3), z.literal(4)]),
            pixels: z.string().min(1),
          })
          .strict()
          .optional(),
        /** Tabular features or an embedding the agent computed. */
        features: z.array(z.number().finite()).max(100_000).optional(),
      })
      .strict(),
    output: z
      .object({
        /** Class probabilities in the statement's class order: finite, ≥ 0, summing to 1. */
        probs: z.array(z.number().finite().min(0).max(1)).min(2).max(TELEMETRY_LIMITS.maxClasses),
      })
      .strict(),
    /** A label from downstream, when there is one: what the next training set would learn. */
    feedback: z
      .object({
        label: z.string().min(1).max(200),
        kind: z.enum(["human", "auto", "vote"]),
        /** Who gave it (a user id, a labeling tool); free text, not trusted. */
        by: z.string().max(200).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type TelemetryRecord = z.output<typeof telemetryRecordSchema>;

/** A batch as uploaded: the envelope and the JSONL text (the signed bytes, as UTF-8). */
export const telemetryUploadSchema = z
  .object({
    envelope: z
      .object({
        payload: z.string().min(1),
        payloadType: z.string().min(1),
        signatures: z
          .array(z.object({ keyid: z.string(), sig: z.string().min(1) }).strict())
          .min(1)
          .max(8),
      })
      .strict(),
    records: z.string().min(1),
  })
  .strict();
export type TelemetryUpload = z.output<typeof telemetryUploadSchema>;

/** A record decoded for the monitors: typed arrays and class indices. */
export interface DecodedRecord {
  id: string;
  /** Milliseconds since the epoch. */
  at: number;
  digest: string;
  image?: ImageTensor;
  text?: string;
  features?: Float32Array;
  probs: Float32Array;
  /** argmax of probs. */
  predicted: number;
  /** The feedback label's class index, or -1 without feedback. */
  feedback: number;
  feedbackKind: "human" | "auto" | "vote" | null;
}

/** An accepted batch's records, decoded, with what the statement says about them. */
export interface DecodedBatch {
  /** "<agent>#<sequence>": the batch's id in findings, decisions and lineage. */
  batchId: string;
  agent: string;
  sequence: number;
  model: string;
  classes: string[];
  window: { start: number; end: number };
  records: DecodedRecord[];
}

export function batchIdOf(agent: string, sequence: number): string {
  return `${agent}#${sequence}`;
}

/**
 * Parse and check a batch's JSONL against its (already verified) statement: each line a
 * record of the schema, ids unique, `at` inside the window, probabilities of the statement's
 * width summing to 1, feedback labels among its classes, and inputs whose content matches
 * their digest. Errors are ROW_MALFORMED naming `label:line` and the field, never the content.
 */
export function parseTelemetryRecords(
  text: string,
  statement: TelemetryStatement,
  label: string,
): TelemetryRecord[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const bad = (line: number, what: string): AntidoteError =>
    new AntidoteError("ROW_MALFORMED", `${label}:${line}: ${what}.`);
  if (lines.length !== statement.records.count)
    throw new AntidoteError(
      "ROW_MALFORMED",
      `${label}: holds ${lines.length} records but the signed statement says ${statement.records.count}.`,
    );
  const start = Date.parse(statement.window.start);
  const end = Date.parse(statement.window.end);
  const width = statement.classes.length;
  const classes = new Set(statement.classes);
  const ids = new Set<string>();
  const out: TelemetryRecord[] = [];
  lines.forEach((line, i) => {
    const n = i + 1;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      throw bad(n, `not JSON (${jsonSyntaxReason(e)})`);
    }
    const r = telemetryRecordSchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw bad(n, `"${issue?.path.join(".") ?? ""}" ${issue?.message ?? "is invalid"}`);
    }
    const record = r.data;
    if (ids.has(record.id)) throw bad(n, `"id" repeats an earlier record's id`);
    ids.add(record.id);
    const at = Date.parse(record.at);
    if (at < start || at > end) throw bad(n, `"at" is outside the batch's window`);
    const probs = record.output.probs;
    if (probs.length !== width)
      throw bad(n, `"output.probs" has ${probs.length} values but the model has ${width} classes`);
    const sum = probs.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > TELEMETRY_LIMITS.probabilitySumTolerance)
      throw bad(n, `"output.probs" sums to ${sum.toFixed(4)}, not 1`);
    if (record.feedback !== undefined && !classes.has(record.feedback.label))
      throw bad(n, `"feedback.label" is not one of the model's classes`);
    const { image } = record.input;
    if (image !== undefined && image.height * image.width * image.channels > TELEMETRY_LIMITS.maxImageValues)
      throw bad(n, `"input.image" is larger than ${TELEMETRY_LIMITS.maxImageValues} values`);
    const digest = inputDigest(record, () => bad(n, `"input.image.pixels" is not H×W×C bytes of base64`));
    if (digest !== null && digest !== record.input.digest)
      throw bad(n, `"input.digest" does not match the input's content`);
    out.push(record);
  });
  return out;
}

/** Decode records for the monitors (they were checked by parseTelemetryRecords at intake). */
export function decodeBatch(
  statement: TelemetryStatement,
  records: readonly TelemetryRecord[],
): DecodedBatch {
  const index = new Map(statement.classes.map((c, i) => [c, i]));
  return {
    batchId: batchIdOf(statement.agent, statement.sequence),
    agent: statement.agent,
    sequence: statement.sequence,
    model: statement.model,
    classes: [...statement.classes],
    window: { start: Date.parse(statement.window.start), end: Date.parse(statement.window.end) },
    records: records.map((r) => {
      const probs = Float32Array.from(r.output.probs);
      let predicted = 0;
      for (let k = 1; k < probs.length; k++)
        if ((probs[k] as number) > (probs[predicted] as number)) predicted = k;
      const content = recordContent(r);
      const decoded: DecodedRecord = {
        id: r.id,
        at: Date.parse(r.at),
        digest: r.input.digest,
        probs,
        predicted,
        feedback: r.feedback === undefined ? -1 : (index.get(r.feedback.label) ?? -1),
        feedbackKind: r.feedback?.kind ?? null,
      };
      if (content?.image !== undefined) decoded.image = content.image;
      if (content?.text !== undefined) decoded.text = content.text;
      if (content?.features !== undefined) decoded.features = content.features;
      return decoded;
    }),
  };
}

/**
 * The digest of the input's content as sent (the 8-bit pixels as they are: the same digest
 * `sampleDigest` gives the decoded image, without decoding it), or null for a digest-only record.
 */
function inputDigest(record: TelemetryRecord, undecodable: () => AntidoteError): string | null {
  const { text, image, features } = record.input;
  if (text === undefined && image === undefined && features === undefined) return null;
  let imageBytes: { bytes: Uint8Array; height: number; width: number; channels: number } | undefined;
  if (image !== undefined) {
    const bytes = Buffer.from(image.pixels, "base64");
    if (bytes.length !== image.height * image.width * image.channels) throw undecodable();
    imageBytes = { bytes, height: image.height, width: image.width, channels: image.channels };
  }
  return digestParts(
    canonicalParts({
      text,
      imageBytes,
      features: features === undefined ? undefined : Float32Array.from(features),
    }),
  );
}

/** The input's content as a sample's content, or null for a digest-only record. */
export function recordContent(
  record: Pick<TelemetryRecord, "id" | "input">,
  undecodable: () => AntidoteError = () =>
    new AntidoteError(
      "ROW_MALFORMED",
      `record ${record.id}: "input.image.pixels" is not H×W×C bytes of base64.`,
    ),
): { text?: string; image?: ImageTensor; features?: Float32Array } | null {
  const { text, image, features } = record.input;
  if (text === undefined && image === undefined && features === undefined) return null;
  const out: { text?: string; image?: ImageTensor; features?: Float32Array } = {};
  if (text !== undefined) out.text = text;
  if (features !== undefined) out.features = Float32Array.from(features);
  if (image !== undefined) {
    const bytes = Buffer.from(image.pixels, "base64");
    if (bytes.length !== image.height * image.width * image.channels) throw undecodable();
    out.image = imageFromBytes(bytes, image.height, image.width, image.channels);
  }
  return out;
}

/** A sample's content as a record's `input` (what an agent sends): digest plus content. */
export function telemetryInput(content: {
  text?: string;
  image?: ImageTensor;
  features?: Float32Array;
}): TelemetryRecord["input"] {
  // Quantized once: the digest is taken over the same 8-bit pixels that are sent.
  const img = content.image;
  const imageBytes = img && {
    bytes: imageToBytes(img),
    height: img.height,
    width: img.width,
    channels: img.channels,
  };
  const input: TelemetryRecord["input"] = {
    digest: digestParts(canonicalParts({ text: content.text, imageBytes, features: content.features })),
  };
  if (content.text !== undefined) input.text = content.text;
  if (content.features !== undefined) input.features = Array.from(content.features);
  if (imageBytes !== undefined)
    input.image = {
      height: imageBytes.height,
      width: imageBytes.width,
      channels: imageBytes.channels as 1 | 3 | 4,
      pixels: Buffer.from(imageBytes.bytes).toString("base64"),
    };
  return input;
}
