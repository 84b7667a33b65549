// A telemetry batch as an agent builds it: each prediction checked and turned into a record
// of the wire schema (schema.ts) — its input's content digest computed here, so it matches
// what the intake recomputes — the records written as JSONL, and the statement over those
// exact bytes signed with the agent's key (DSSE). Also the offline file pair that
// `antidote telemetry ingest FILE` reads. Nothing here sends anything (agent-delivery.ts does).
import { createHash } from "node:crypto";
import { writeOutputFile, type OutputOptions } from "../data/atomic-output.js";
import type { ImageTensor } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { decodeBase64, signEnvelope } from "../provenance/dsse.js";
import type { SigningKey } from "../provenance/keys.js";
import {
  TELEMETRY_LIMITS,
  TELEMETRY_PAYLOAD_TYPE,
  TELEMETRY_STATEMENT_TYPE,
  telemetryInput,
  telemetryRecordSchema,
  telemetryStatementSchema,
  type TelemetryRecord,
  type TelemetryStatement,
  type TelemetryUpload,
} from "./schema.js";

/** A prediction's input: its content (digest computed here), or only its digest. */
export type TelemetryContent =
  | { text?: string; image?: ImageTensor; features?: Float32Array | readonly number[]; digest?: string }
  | { digest: string };

export interface TelemetryRecordInput {
  /** Unique within the batch; default a counter of this client. */
  id?: string;
  /** When the prediction was made; default now. */
  at?: Date | string | number;
  input: TelemetryContent;
  /** Class probabilities in the model's class order. */
  probs: ArrayLike<number>;
  feedback?: { label: string; kind?: "human" | "auto" | "vote"; by?: string };
}

export interface TelemetryBatchOptions {
  agent: string;
  key: SigningKey;
  model: string;
  classes: readonly string[];
  sequence: number;
}

/** Sign `records` as one batch: JSONL (one record per line, newline-terminated) and its DSSE envelope. */
export function signTelemetryBatch(
  records: readonly TelemetryRecord[],
  options: TelemetryBatchOptions,
): TelemetryUpload {
  if (records.length === 0) throw new AntidoteError("USAGE", "a telemetry batch needs at least one record.");
  const lines = records.map((r, i) => {
    const parsed = telemetryRecordSchema.safeParse(r);
    if (!parsed.success) throw badRecord(`record ${i + 1}`, parsed.error.issues[0]);
    return JSON.stringify(parsed.data);
  });
  return signJsonl(`${lines.join("\n")}\n`, records.map(atOf), options);
}

/**
 * Sign JSONL text as a batch: the statement's window is the records' earliest and latest
 * times (`times`, epoch ms, one per line), its digest the SHA-256 of the UTF-8 bytes.
 * The lines are not checked: callers built them from checked records.
 */
export function signJsonl(
  jsonl: string,
  times: readonly number[],
  options: TelemetryBatchOptions,
): TelemetryUpload {
  const bytes = Buffer.from(jsonl, "utf8");
  let start = Infinity;
  let end = -Infinity;
  for (const t of times) {
    if (t < start) start = t;
    if (t > end) end = t;
  }
  const statement: TelemetryStatement = {
    _type: TELEMETRY_STATEMENT_TYPE,
    agent: options.agent,
    sequence: options.sequence,
    window: { start: new Date(start).toISOString(), end: new Date(end).toISOString() },
    model: options.model,
    classes: [...options.classes],
    records: {
      sha256: createHash("sha256").update(bytes).digest("hex"),
      count: times.length,
      bytes: bytes.length,
    },
  };
  const checked = telemetryStatementSchema.safeParse(statement);
  if (!checked.success) throw badRecord("statement", checked.error.issues[0]);
  const payload = Buffer.from(JSON.stringify(statement), "utf8");
  return { envelope: signEnvelope(payload, TELEMETRY_PAYLOAD_TYPE, options.key), records: jsonl };
}

/**
 * Check what every batch of an agent will say about itself (name, model digest, classes,
 * sequence) before any record is taken, so a misconfigured agent fails at start-up, not at
 * its first batch. USAGE names the field.
 */
export function checkBatchOptions(options: Omit<TelemetryBatchOptions, "key">): void {
  const checked = telemetryStatementSchema.safeParse({
    _type: TELEMETRY_STATEMENT_TYPE,
    agent: options.agent,
    sequence: options.sequence,
    window: { start: new Date(0).toISOString(), end: new Date(0).toISOString() },
    model: options.model,
    classes: [...options.classes],
    records: { sha256: "0".repeat(64), count: 1, bytes: 1 },
  });
  if (!checked.success) throw badRecord("telemetry options", checked.error.issues[0]);
  if (new Set(options.classes).size !== options.classes.length)
    throw new AntidoteError("USAGE", `telemetry options: "classes" names a class twice.`);
}

/** The statement an upload carries, decoded and schema-checked but NOT verified: for tools and tests. */
export function readTelemetryStatement(upload: TelemetryUpload): TelemetryStatement {
  let raw: unknown;
  try {
    raw = JSON.parse(decodeBase64(upload.envelope.payload).toString("utf8"));
  } catch {
    throw new AntidoteError("INPUT_FORMAT", "the envelope's payload is not JSON.");
  }
  const parsed = telemetryStatementSchema.safeParse(raw);
  if (!parsed.success) throw badRecord("statement", parsed.error.issues[0], "INPUT_FORMAT");
  return parsed.data;
}

/**
 * The offline form `antidote telemetry ingest FILE` reads: FILE holds the JSONL bytes exactly
 * as signed, FILE.dsse.json the envelope beside it. Each file appears whole (temp + rename).
 */
export async function writeTelemetryBatch(
  upload: TelemetryUpload,
  path: string,
  options: OutputOptions = {},
): Promise<{ records: string; envelope: string }> {
  const envelope = `${path}.dsse.json`;
  await writeOutputFile(path, upload.records, options);
  await writeOutputFile(envelope, `${JSON.stringify(upload.envelope, null, 2)}\n`, options);
  return { records: path, envelope };
}

/**
 * A checked record from what the caller has: the input's digest computed from its content
 * (or taken as given), probabilities as plain numbers (float32 values printed with 9 digits,
 * which read back to the same float32), everything the intake checks checked here.
 */
export function telemetryRecord(
  input: TelemetryRecordInput & { id: string },
  classes: readonly string[],
  options: { now?: () => Date; sendContent?: boolean } = {},
): TelemetryRecord {
  const where = `record "${input.id}"`;
  const at = input.at === undefined ? (options.now ?? (() => new Date()))() : new Date(input.at);
  if (Number.isNaN(at.getTime())) throw new AntidoteError("USAGE", `${where}: "at" is not a valid time.`);
  const probs = Array.from(input.probs, input.probs instanceof Float32Array ? float32Number : Number);
  const record: TelemetryRecord = {
    id: input.id,
    at: at.toISOString(),
    input: recordInput(input.input, where, options.sendContent ?? true),
    output: { probs },
  };
  if (input.feedback !== undefined) {
    const { label, kind = "human", by } = input.feedback;
    record.feedback = by === undefined ? { label, kind } : { label, kind, by };
  }
  const parsed = telemetryRecordSchema.safeParse(record);
  if (!parsed.success) throw badRecord(where, parsed.error.issues[0]);
  if (probs.length !== classes.length)
    throw new AntidoteError(
      "USAGE",
      `${where}: "output.probs" has ${probs.length} values but the model has ${classes.length} classes.`,
    );
  const sum = probs.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > TELEMETRY_LIMITS.probabilitySumTolerance)
    throw new AntidoteError("USAGE", `${where}: "output.probs" sums to ${sum.toFixed(4)}, not 1.`);
  if (record.feedback !== undefined && !classes.includes(record.feedback.label))
    throw new AntidoteError("USAGE", `${where}: "feedback.label" is not one of the model's classes.`);
  return record;
}

// ---------------------------------------------------------------------------------------

function recordInput(
  content: TelemetryContent,
  where: string,
  sendContent: boolean,
): TelemetryRecord["input"] {
  const c = content as {
    text?: string;
    image?: ImageTensor;
    features?: Float32Array | readonly number[];
    digest?: string;
  };
  const features = c.features === undefined ? undefined : Float32Array.from(c.features);
  const hasContent = c.text !== undefined || c.image !== undefined || features !== undefined;
  if (!hasContent) {
    if (c.digest === undefined)
      throw new AntidoteError("USAGE", `${where}: "input" needs content or a digest.`);
    return { digest: c.digest };
  }
  const input = telemetryInput({
    ...(c.text !== undefined ? { text: c.text } : {}),
    ...(c.image !== undefined ? { image: c.image } : {}),
    ...(features !== undefined ? { features } : {}),
  });
  if (c.digest !== undefined && c.digest !== input.digest)
    throw new AntidoteError("USAGE", `${where}: "input.digest" does not match the input's content.`);
  return sendContent ? input : { digest: input.digest };
}

/** A float32 value as the shortest-enough double: 9 significant digits read back to the same float32. */
function float32Number(v: number): number {
  return Number(v.toPrecision(9));
}

function atOf(record: TelemetryRecord): number {
  return Date.parse(record.at);
}

function badRecord(
  where: string,
  issue: { path: PropertyKey[]; message: string } | undefined,
  code: "USAGE" | "INPUT_FORMAT" = "USAGE",
): AntidoteError {
  const field = issue?.path.map(String).join(".") ?? "";
  return new AntidoteError(code, `${where}: "${field}" ${issue?.message ?? "is invalid"}.`);
}
