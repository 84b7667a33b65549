// Projections of the telemetry events (see project.ts for the rules every projection keeps):
// an accepted batch becomes a `telemetry_batches` row, a model's status change a
// `model_status` row. The checks here are the intake's last line, run under the ledger's
// write lock and again by `verify` on replay: the agent is a registered, unquarantined agent
// whose signing key is current, the model is registered, the sequence number is above every
// one accepted from the agent (so two copies of a batch racing each other cannot both land),
// and the recorded gap is the one the ledger saw.
import { AntidoteError } from "../errors.js";
import { canonicalJson } from "./chain.js";
import type { LedgerDb } from "./database.js";
import type { LedgerEvent, LedgerEventInput } from "./types.js";

type EventOf<K extends LedgerEventInput["kind"]> = Extract<LedgerEventInput, { kind: K }> &
  Pick<LedgerEvent, "seq" | "at" | "actor">;

export async function telemetryAccepted(db: LedgerDb, e: EventOf<"telemetry.accepted">): Promise<void> {
  const b = e.payload;
  const agent = await db.selectFrom("sources").select("kind").where("name", "=", b.agent).executeTakeFirst();
  if (agent === undefined)
    throw new AntidoteError("SOURCE_UNKNOWN", `agent "${b.agent}" is not a registered source.`);
  if (agent.kind !== "agent")
    throw new AntidoteError("NOT_AN_AGENT", `source "${b.agent}" is a ${agent.kind}, not an agent.`);
  if (await sourceQuarantined(db, b.agent))
    throw new AntidoteError("FORBIDDEN", `agent "${b.agent}" is quarantined: its telemetry is refused.`);
  const key = await db
    .selectFrom("source_keys")
    .select("revoked_at")
    .where("source", "=", b.agent)
    .where("key_id", "=", b.keyId)
    .executeTakeFirst();
  if (key === undefined || key.revoked_at !== null)
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `batch ${b.batchId} is signed by key ${b.keyId.slice(0, 16)}…, which is ${
        key === undefined ? "not registered for" : "revoked for"
      } agent "${b.agent}".`,
    );
  const model = await db
    .selectFrom("models")
    .select("digest")
    .where("digest", "=", b.model)
    .executeTakeFirst();
  if (model === undefined)
    throw new AntidoteError(
      "MODEL_UNKNOWN",
      `batch ${b.batchId} attests model ${b.model}, which is not registered.`,
    );
  const last = await lastSequence(db, b.agent);
  if (last !== null && b.sequence <= last)
    throw new AntidoteError(
      "REPLAYED",
      `batch ${b.batchId} is a replay: agent "${b.agent}" has sent up to sequence ${last} (the next is ${last + 1}).`,
    );
  const expected = last === null ? 0 : last + 1;
  const gap = b.sequence === expected ? null : { expected, got: b.sequence };
  if (canonicalJson(gap) !== canonicalJson(b.gap))
    throw new AntidoteError(
      "USAGE",
      `batch ${b.batchId} records gap ${canonicalJson(b.gap)}, but the ledger expected sequence ${expected} from agent "${b.agent}".`,
    );
  await db
    .insertInto("telemetry_batches")
    .values({
      batch_id: b.batchId,
      agent: b.agent,
      sequence: b.sequence,
      key_id: b.keyId,
      model: b.model,
      window_start: b.window.start,
      window_end: b.window.end,
      classes: canonicalJson(b.classes),
      records_sha256: b.recordsSha256,
      count: b.count,
      feedback_count: b.feedbackCount,
      bytes: b.bytes,
      store: b.store,
      gap_expected: b.gap?.expected ?? null,
      gap_got: b.gap?.got ?? null,
      at: e.at,
      seq: e.seq,
    })
    .execute();
}

export async function modelStatusChanged(db: LedgerDb, e: EventOf<"model.status-changed">): Promise<void> {
  const { digest, status, reason } = e.payload;
  const model = await db
    .selectFrom("models")
    .select("digest")
    .where("digest", "=", digest)
    .executeTakeFirst();
  if (model === undefined) throw new AntidoteError("NOT_FOUND", `model ${digest} is not registered.`);
  const current = await db
    .selectFrom("model_status")
    .select("status")
    .where("digest", "=", digest)
    .executeTakeFirst();
  if ((current?.status ?? "active") === status)
    throw new AntidoteError("USAGE", `model ${digest} is already ${status}.`);
  const row = { status, reason, actor: e.actor, at: e.at, seq: e.seq };
  await db
    .insertInto("model_status")
    .values({ digest, ...row })
    .onConflict((oc) => oc.column("digest").doUpdateSet(row))
    .execute();
}

/** A decision on telemetry batches names batches the ledger accepted. */
export async function requireBatches(db: LedgerDb, batchIds: readonly string[]): Promise<void> {
  for (const id of batchIds) {
    const found = await db
      .selectFrom("telemetry_batches")
      .select("batch_id")
      .where("batch_id", "=", id)
      .executeTakeFirst();
    if (found === undefined)
      throw new AntidoteError("NOT_FOUND", `telemetry batch "${id}" is not in the ledger.`);
  }
}

export async function lastSequence(db: LedgerDb, agent: string): Promise<number | null> {
  const row = await db
    .selectFrom("telemetry_batches")
    .select("sequence")
    .where("agent", "=", agent)
    .orderBy("sequence", "desc")
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? null : Number(row.sequence);
}

export async function sourceQuarantined(db: LedgerDb, name: string): Promise<boolean> {
  const row = await db
    .selectFrom("quarantine")
    .select("quarantined")
    .where("subject_type", "=", "source")
    .where("subject_id", "=", name)
    .executeTakeFirst();
  return row?.quarantined === 1;
}
