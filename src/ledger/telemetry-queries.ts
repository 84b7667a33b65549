// Reading telemetry back: accepted batches (with whether each is quarantined, directly or
// through its agent) in the order the ledger accepted them, paged by key; and a model's
// status. Both engines run the same queries.
import type { Selectable } from "kysely";
import { AntidoteError } from "../errors.js";
import type { LedgerDb, TelemetryBatchesTable } from "./database.js";
import type { ModelStatus, TelemetryBatchFilter, TelemetryBatchRecord } from "./types.js";

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 10_000;

export async function listTelemetryBatches(
  db: LedgerDb,
  filter: TelemetryBatchFilter = {},
): Promise<TelemetryBatchRecord[]> {
  const limit = filter.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new AntidoteError("USAGE", `limit: expected a whole number from 1 to ${MAX_LIMIT}, got ${limit}.`);
  let afterSeq = 0;
  if (filter.after !== undefined) {
    const row = await db
      .selectFrom("telemetry_batches")
      .select("seq")
      .where("batch_id", "=", filter.after)
      .executeTakeFirst();
    if (row === undefined)
      throw new AntidoteError("USAGE", `after: "${filter.after}" is not an accepted telemetry batch.`);
    afterSeq = row.seq;
  }
  const since = filter.since === undefined ? undefined : isoTime(filter.since);
  const rows = await selectBatches(db)
    .where("b.seq", ">", afterSeq)
    .$if(filter.agent !== undefined, (q) => q.where("b.agent", "=", filter.agent ?? ""))
    .$if(filter.model !== undefined, (q) => q.where("b.model", "=", filter.model ?? ""))
    .$if(since !== undefined, (q) => q.where("b.at", ">=", since ?? ""))
    .orderBy("b.seq")
    .limit(limit)
    .execute();
  return rows.map(batchFromRow);
}

export async function getTelemetryBatch(
  db: LedgerDb,
  batchId: string,
): Promise<TelemetryBatchRecord | undefined> {
  const row = await selectBatches(db).where("b.batch_id", "=", batchId).executeTakeFirst();
  return row === undefined ? undefined : batchFromRow(row);
}

export async function getModelStatus(db: LedgerDb, digest: string): Promise<ModelStatus | undefined> {
  const model = await db
    .selectFrom("models as m")
    .leftJoin("model_status as s", "s.digest", "m.digest")
    .select(["m.registered_at", "s.status", "s.reason", "s.actor", "s.at"])
    .where("m.digest", "=", digest)
    .executeTakeFirst();
  if (model === undefined) return undefined;
  if (model.status === null || model.at === null)
    return { digest, status: "active", since: model.registered_at, reason: null, actor: null };
  return {
    digest,
    status: model.status === "suspended" ? "suspended" : "active",
    since: model.at,
    reason: model.reason,
    actor: model.actor,
  };
}

function selectBatches(db: LedgerDb) {
  return db
    .selectFrom("telemetry_batches as b")
    .leftJoin("quarantine as qb", (j) =>
      j.onRef("qb.subject_id", "=", "b.batch_id").on("qb.subject_type", "=", "telemetry-batch"),
    )
    .leftJoin("quarantine as qs", (j) =>
      j.onRef("qs.subject_id", "=", "b.agent").on("qs.subject_type", "=", "source"),
    )
    .selectAll("b")
    .select(["qb.quarantined as batch_quarantined", "qs.quarantined as agent_quarantined"]);
}

type BatchRow = Selectable<TelemetryBatchesTable> & {
  batch_quarantined: number | null;
  agent_quarantined: number | null;
};

function batchFromRow(r: BatchRow): TelemetryBatchRecord {
  return {
    batchId: r.batch_id,
    agent: r.agent,
    sequence: Number(r.sequence),
    keyId: r.key_id,
    model: r.model,
    window: { start: r.window_start, end: r.window_end },
    classes: JSON.parse(r.classes) as string[],
    recordsSha256: r.records_sha256,
    count: r.count,
    feedbackCount: r.feedback_count,
    bytes: r.bytes,
    store: r.store,
    gap:
      r.gap_expected === null || r.gap_got === null
        ? null
        : { expected: Number(r.gap_expected), got: Number(r.gap_got) },
    quarantined: r.batch_quarantined === 1 || r.agent_quarantined === 1,
    seq: r.seq,
    at: r.at,
  };
}

/** An ISO-8601 time as the ledger writes times (toISOString), so text comparison orders them. */
function isoTime(text: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new AntidoteError("USAGE", `since: "${text}" is not an ISO-8601 time.`);
  return new Date(ms).toISOString();
}
