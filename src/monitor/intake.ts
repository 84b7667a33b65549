// The telemetry intake: a batch from a deployed agent becomes a ledger entry only when every
// check below passes, and a refused batch leaves nothing but a refusal row (refusals.ts).
//
//   1. the upload's shape and size (TELEMETRY_LIMITS) and the envelope's payload type;
//   2. who it claims to be: the payload is decoded for the agent's name alone — nothing else
//      in it is read before the signature verifies. A token bound to an agent sends only as
//      that agent; the name must be a registered source of kind "agent", not quarantined;
//   3. the DSSE signature, against that agent's current (non-revoked) keys only: naming
//      another agent cannot borrow its keys, and a revoked key no longer verifies anything;
//   4. the statement (parsed only now), the attested model registered in the ledger, the
//      window plausible against our clock, the sequence number above the last accepted from
//      this agent (else a replay, naming the last);
//   5. the records' bytes against the signed size and SHA-256, then every record
//      (intake-thread.ts: on a server's worker threads, else in this one);
//   6. the bytes and the envelope stored (store.ts), then `telemetry.accepted` appended. The
//      projection repeats the agent, key, model and sequence checks under the ledger's write
//      lock, so two copies of a batch sent at once land once: the second append fails as a
//      replay and removes only its own files.
import { z } from "zod";
import { AntidoteError, isAntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Ledger, LedgerEvent, Source, TelemetryBatch, TelemetryBatchRecord } from "../ledger/types.js";
import { decodeBase64, verifyEnvelope } from "../provenance/dsse.js";
import { checkRecordsInThread, type RecordsCheck } from "./intake-thread.js";
import { isTelemetryRefusalCode, recordTelemetryRefusal } from "./refusals.js";
import {
  TELEMETRY_LIMITS,
  TELEMETRY_PAYLOAD_TYPE,
  batchIdOf,
  telemetryStatementSchema,
  telemetryUploadSchema,
  type TelemetryStatement,
  type TelemetryUpload,
} from "./schema.js";
import { writeBatchFiles } from "./store.js";

const optionsSchema = z.object({
  /** Who sent the batch: the event's actor and the refusal's principal (default: the ledger's actor; "local" on refusals). */
  principal: z.string().min(1).max(200).optional(),
  /** The agent an agent token is bound to: the batch must be that agent's. null/absent: any agent. */
  boundAgent: z.string().min(1).nullable().optional(),
  /** The server's present, for the window check (default: the clock). */
  now: z.date().optional(),
  /** How messages name the batch (a file name); default "batch <agent>#<sequence>". */
  label: z.string().min(1).max(500).optional(),
  /** Where the records are hashed and parsed: this thread by default; a server passes its
   * intake threads (intake-threads.ts). */
  checkRecords: z.custom<RecordsCheck>((v) => typeof v === "function", "must be a function").optional(),
});
export type IngestTelemetryOptions = z.input<typeof optionsSchema>;

/** A statement's payload is small (≤ 1000 class names); anything far larger is refused unread. */
const MAX_PAYLOAD_BASE64 = 1024 * 1024;
/** Appends retried when another batch of the same agent lands between the check and the append. */
const APPEND_ATTEMPTS = 4;

/**
 * Verify a telemetry batch and record it. Returns the accepted batch (with `gap` when the
 * sequence skipped numbers); throws the refusal (an AntidoteError whose code is one of
 * TELEMETRY_REFUSAL_CODES) after recording it and writing nothing else.
 */
export async function ingestTelemetry(
  ledger: Ledger,
  /** A TelemetryUpload — or whatever a client sent: it is validated here. */
  upload: unknown,
  options: IngestTelemetryOptions = {},
): Promise<TelemetryBatchRecord> {
  const o = parseOptions(optionsSchema, options, "telemetry intake options");
  const claimed = claimedAgent(upload);
  try {
    return await accept(ledger, upload, claimed, o);
  } catch (e) {
    if (isAntidoteError(e) && isTelemetryRefusalCode(e.code))
      // Best effort: the sender is told why either way, and a failure to record must not change
      // that (it is reported as a process warning).
      await recordTelemetryRefusal(ledger, {
        agent: claimed,
        principal: o.principal ?? "local",
        code: e.code,
        message: e.message,
        ...(o.now !== undefined ? { at: o.now } : {}),
      }).catch((failure: unknown) =>
        process.emitWarning(
          `telemetry: a refused batch could not be recorded: ${failure instanceof Error ? failure.message : String(failure)}`,
        ),
      );
    throw e;
  }
}

type Options = z.output<typeof optionsSchema>;

async function accept(
  ledger: Ledger,
  input: unknown,
  claimed: string,
  o: Options,
): Promise<TelemetryBatchRecord> {
  const upload = parseUpload(input);
  const who = claimed === "" ? "a telemetry batch" : `a telemetry batch from "${claimed}"`;
  if (upload.envelope.payloadType !== TELEMETRY_PAYLOAD_TYPE)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${who}: the envelope's payloadType is not ${TELEMETRY_PAYLOAD_TYPE}.`,
    );
  if (claimed === "")
    throw new AntidoteError("INPUT_FORMAT", `${who}: the envelope's payload names no agent.`);
  if (o.boundAgent != null && o.boundAgent !== claimed)
    throw new AntidoteError(
      "FORBIDDEN",
      `a token of agent "${o.boundAgent}" may send telemetry only as that agent, not as "${claimed}"; nothing was written.`,
    );
  const agent = await requireAgent(ledger, claimed);
  const statement = verifiedStatement(upload, agent);
  const label = o.label ?? `batch ${batchIdOf(statement.agent, statement.sequence)}`;
  if ((await ledger.getModel(statement.model)) === undefined)
    throw new AntidoteError(
      "MODEL_UNKNOWN",
      `${label}: agent "${claimed}" attests model ${statement.model.slice(0, 16)}…, which is not registered in the ledger.`,
    );
  checkWindow(statement, o.now ?? new Date(), label);
  const last = await ledger.lastTelemetrySequence(claimed);
  if (last !== null && statement.sequence <= last) throw replayed(label, claimed, last);
  const records = await (o.checkRecords ?? checkRecordsInThread)(upload.records, statement, label);
  const batch: Omit<TelemetryBatch, "store" | "gap"> = {
    batchId: batchIdOf(claimed, statement.sequence),
    agent: claimed,
    sequence: statement.sequence,
    keyId: statement.keyId,
    model: statement.model,
    window: statement.window,
    classes: statement.classes,
    recordsSha256: statement.records.sha256,
    count: records.count,
    feedbackCount: records.feedbackCount,
    bytes: statement.records.bytes,
  };
  const files = await writeBatchFiles(ledger, claimed, statement.sequence, upload.records, upload.envelope);
  try {
    const event = await appendAccepted(ledger, { ...batch, store: files.store }, label, o.principal);
    return { ...event.payload, quarantined: false, seq: event.seq, at: event.at };
  } catch (e) {
    await files.remove();
    throw e;
  }
}

function parseUpload(input: unknown): TelemetryUpload {
  const records = (input as { records?: unknown } | null)?.records;
  if (typeof records === "string" && Buffer.byteLength(records, "utf8") > TELEMETRY_LIMITS.maxBytes)
    throw new AntidoteError(
      "PAYLOAD_TOO_LARGE",
      `the batch's records are over the limit of ${TELEMETRY_LIMITS.maxBytes} bytes; nothing was written.`,
    );
  const r = telemetryUploadSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue?.path.join(".") ?? "";
  if (path.startsWith("envelope.signatures"))
    throw new AntidoteError(
      "SIGNATURE_INVALID",
      `the batch is unsigned or its signature is empty ("${path}": ${issue?.message ?? "invalid"}); nothing was written.`,
    );
  throw new AntidoteError(
    "INPUT_FORMAT",
    `not a telemetry upload ("${path}": ${issue?.message ?? "invalid"}); expected { envelope, records }.`,
  );
}

/** The agent's name from the unverified payload: only to pick its keys and to attribute a refusal. */
function claimedAgent(upload: unknown): string {
  try {
    const payload = (upload as { envelope?: { payload?: unknown } } | null)?.envelope?.payload;
    if (typeof payload !== "string" || payload.length > MAX_PAYLOAD_BASE64) return "";
    const agent = (JSON.parse(decodeBase64(payload).toString("utf8")) as { agent?: unknown } | null)?.agent;
    return typeof agent === "string" ? agent.slice(0, 200) : "";
  } catch {
    return "";
  }
}

async function requireAgent(ledger: Ledger, name: string): Promise<Source> {
  const source = await ledger.getSource(name);
  if (source === undefined)
    throw new AntidoteError(
      "SOURCE_UNKNOWN",
      `a telemetry batch names agent "${name}", which is not registered (\`antidote source add ${name.slice(0, 50)} --kind agent --key …\`); nothing was written.`,
    );
  if (source.kind !== "agent")
    throw new AntidoteError(
      "NOT_AN_AGENT",
      `a telemetry batch names source "${name}", which is a ${source.kind}, not an agent; nothing was written.`,
    );
  if (await ledger.isSourceQuarantined(name))
    throw new AntidoteError("FORBIDDEN", `agent "${name}" is quarantined: its telemetry is refused.`);
  return source;
}

/** The statement, once the signature verifies with one of the agent's current keys. */
function verifiedStatement(upload: TelemetryUpload, agent: Source): TelemetryStatement & { keyId: string } {
  const current = agent.keys.filter((k) => k.revokedAt === null);
  if (current.length === 0)
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `agent "${agent.name}" has no current key (every key it had is revoked); nothing was written.`,
    );
  let verified: { keyId: string; payload: Buffer };
  try {
    verified = verifyEnvelope(upload.envelope, current);
  } catch (e) {
    if (isAntidoteError(e))
      throw new AntidoteError(e.code, `telemetry batch from agent "${agent.name}": ${e.message}`, {
        cause: e,
      });
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(verified.payload.toString("utf8"));
  } catch {
    throw new AntidoteError("INPUT_FORMAT", `agent "${agent.name}" signed a statement that is not JSON.`);
  }
  const r = telemetryStatementSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue?.path.join(".") ?? "";
    const code =
      issue?.code === "too_big" && path.startsWith("records.") ? "PAYLOAD_TOO_LARGE" : "INPUT_FORMAT";
    throw new AntidoteError(
      code,
      `agent "${agent.name}" signed a statement that is not a telemetry batch ("${path}": ${issue?.message ?? "invalid"}).`,
    );
  }
  if (r.data.agent !== agent.name)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `the signed statement names agent "${r.data.agent}", not "${agent.name}".`,
    );
  return { ...r.data, keyId: verified.keyId };
}

function checkWindow(statement: TelemetryStatement, now: Date, label: string): void {
  const start = Date.parse(statement.window.start);
  const end = Date.parse(statement.window.end);
  const L = TELEMETRY_LIMITS;
  const why =
    start > end
      ? "it ends before it starts"
      : end - start > L.maxWindowMs
        ? `it spans more than ${L.maxWindowMs / 3_600_000} h`
        : end > now.getTime() + L.maxSkewMs
          ? `it ends in the future (more than ${L.maxSkewMs / 60_000} min after this server's clock)`
          : end < now.getTime() - L.maxAgeMs
            ? `it ended more than ${L.maxAgeMs / 86_400_000} days ago`
            : undefined;
  if (why !== undefined)
    throw new AntidoteError(
      "WINDOW_IMPLAUSIBLE",
      `${label}: the time window is implausible: ${why}; nothing was written.`,
    );
}

// The gap is what the ledger saw when the event was written: computed from the last accepted
// sequence just before the append, and checked again by the projection under the lock. When
// another batch of the agent lands in between, the projection refuses ours and it is
// recomputed; a sequence no longer above the last is a replay.
async function appendAccepted(
  ledger: Ledger,
  batch: Omit<TelemetryBatch, "gap">,
  label: string,
  actor: string | undefined,
): Promise<LedgerEvent & { kind: "telemetry.accepted" }> {
  for (let attempt = 1; ; attempt++) {
    const last = await ledger.lastTelemetrySequence(batch.agent);
    if (last !== null && batch.sequence <= last) throw replayed(label, batch.agent, last);
    const expected = last === null ? 0 : last + 1;
    const gap = batch.sequence === expected ? null : { expected, got: batch.sequence };
    try {
      const [event] = await ledger.append(
        [{ kind: "telemetry.accepted", payload: { ...batch, gap } }],
        actor === undefined ? {} : { actor },
      );
      if (event?.kind !== "telemetry.accepted")
        throw new AntidoteError("INTERNAL", `${label}: the append returned no telemetry.accepted event.`);
      return event;
    } catch (e) {
      const now = await ledger.lastTelemetrySequence(batch.agent).catch(() => last);
      if (now !== null && batch.sequence <= now) throw replayed(label, batch.agent, now);
      if (attempt < APPEND_ATTEMPTS && now !== last) continue;
      throw e;
    }
  }
}

function replayed(label: string, agent: string, last: number): AntidoteError {
  return new AntidoteError(
    "REPLAYED",
    `${label}: a replay — agent "${agent}" has sent up to sequence ${last}; the next batch is ${last + 1}. Nothing was written.`,
  );
}
