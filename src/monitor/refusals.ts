// Telemetry batches the intake refused — a signature that does not verify, a key not the
// agent's or revoked, an unknown agent or one that is not an agent, a token sending as another
// agent, a model the ledger does not know, a replayed sequence number, an implausible window,
// a malformed record, bytes that do not match the signed digest, a batch over the limits —
// each with its reason code, and counted per agent and code.
//
// Like refused deliveries (provenance/refusals.ts, whose reasons apply here unchanged) these
// are an operational record, never ledger events: a refusal writes nothing to the tamper-
// evident log, so a stolen agent token or a flood of forged batches cannot fill it. The list
// keeps the newest MAX_TELEMETRY_REFUSALS rows; the counts are kept since the ledger began,
// one row per (agent, code), with names that are not registered sources counted under ""
// (a forger choosing a new name per batch adds nothing). A row holds the claimed agent name,
// who sent it, and the code and message the sender was told (already free of file contents
// and secrets, capped here in length) — never the records or the token.
import { z } from "zod";
import { AntidoteError, type AntidoteErrorCode } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerReader } from "../ledger/types.js";

/** Every reason a batch is refused for: the closed set of codes a refusal carries. */
export const TELEMETRY_REFUSAL_CODES = [
  "INPUT_FORMAT", // the upload, the envelope or the statement is not a telemetry batch
  "PAYLOAD_TOO_LARGE", // over TELEMETRY_LIMITS (bytes or records)
  "SIGNATURE_INVALID", // unsigned, or a signature that does not verify
  "KEY_UNTRUSTED", // signed by a key that is not one of the agent's current keys (another agent's, a revoked one)
  "SOURCE_UNKNOWN", // the agent is not registered
  "NOT_AN_AGENT", // the source is registered, but not as an agent
  "FORBIDDEN", // an agent token sending as another agent, or a quarantined agent
  "MODEL_UNKNOWN", // the attested model is not registered
  "REPLAYED", // a sequence number at or below the last accepted
  "WINDOW_IMPLAUSIBLE", // inverted, too long, in the future or too old
  "ROW_MALFORMED", // a record breaks the schema (missing, NaN or non-summing probabilities, bad digest …)
  "DIGEST_MISMATCH", // the records' bytes are not the ones the statement signs
] as const satisfies readonly AntidoteErrorCode[];
export type TelemetryRefusalCode = (typeof TELEMETRY_REFUSAL_CODES)[number];

export function isTelemetryRefusalCode(code: string): code is TelemetryRefusalCode {
  return (TELEMETRY_REFUSAL_CODES as readonly string[]).includes(code);
}

/** Most refusals listed; older ones are pruned as new ones arrive (the counts are kept). */
export const MAX_TELEMETRY_REFUSALS = 10_000;
const MAX_MESSAGE = 500;
const MAX_NAME = 200;

export interface TelemetryRefusal {
  /** Increasing with time: the newest refusal has the highest id. */
  id: number;
  at: string;
  /** The agent the batch claimed to be from ("" when it named none); not necessarily registered. */
  agent: string;
  /** Who sent it: the API token's principal, or the user of `telemetry ingest`. */
  principal: string;
  code: TelemetryRefusalCode;
  message: string;
}

export interface TelemetryRefusalCount {
  /** A registered source's name, or "" for every name that is not one. */
  agent: string;
  code: TelemetryRefusalCode;
  refusals: number;
  lastAt: string;
}

const refusalInput = z.object({
  agent: z.string(),
  principal: z.string().min(1, "must not be empty"),
  code: z.enum(TELEMETRY_REFUSAL_CODES),
  message: z.string(),
  at: z.date().optional(),
});
export type TelemetryRefusalInput = z.input<typeof refusalInput>;

const listOptions = z.object({
  limit: z.number().int().min(1).max(10_000).default(100),
  agent: z.string().min(1).optional(),
  /** Keyset paging: only refusals older than this id. */
  before: z.number().int().min(1).optional(),
});
export type TelemetryRefusalListOptions = z.input<typeof listOptions>;

/** Record one refusal, count it, and prune the list beyond MAX_TELEMETRY_REFUSALS. */
export async function recordTelemetryRefusal(
  ledger: LedgerReader,
  refusal: TelemetryRefusalInput,
): Promise<void> {
  const r = parseOptions(refusalInput, refusal, "telemetry refusal");
  const db = ledgerConnection(ledger);
  const at = (r.at ?? new Date()).toISOString();
  const inserted = await db
    .insertInto("telemetry_refusals")
    .values({
      at,
      agent: cut(r.agent, MAX_NAME),
      principal: cut(r.principal, MAX_NAME),
      code: r.code,
      message: cut(r.message, MAX_MESSAGE),
    })
    .returning("id")
    .executeTakeFirst();
  if (inserted === undefined)
    throw new AntidoteError("INTERNAL", "recordTelemetryRefusal: the insert returned no id.");
  await db
    .deleteFrom("telemetry_refusals")
    .where("id", "<=", Number(inserted.id) - MAX_TELEMETRY_REFUSALS)
    .execute();
  const agent = r.agent !== "" && (await ledger.getSource(r.agent)) !== undefined ? r.agent : "";
  await db
    .insertInto("telemetry_refusal_counts")
    .values({ agent, code: r.code, refusals: 1, last_at: at })
    .onConflict((oc) =>
      oc.columns(["agent", "code"]).doUpdateSet((eb) => ({
        refusals: eb(eb.ref("telemetry_refusal_counts.refusals"), "+", 1),
        last_at: at,
      })),
    )
    .execute();
}

/** The newest refusals first, at most `limit`, optionally of one agent and before an id. */
export async function telemetryRefusals(
  ledger: LedgerReader,
  options: TelemetryRefusalListOptions = {},
): Promise<TelemetryRefusal[]> {
  const o = parseOptions(listOptions, options, "telemetry refusal list");
  let query = ledgerConnection(ledger)
    .selectFrom("telemetry_refusals")
    .select(["id", "at", "agent", "principal", "code", "message"]);
  if (o.agent !== undefined) query = query.where("agent", "=", o.agent);
  if (o.before !== undefined) query = query.where("id", "<", o.before);
  const rows = await query.orderBy("id", "desc").limit(o.limit).execute();
  return rows.map((row) => ({ ...row, id: Number(row.id), code: row.code as TelemetryRefusalCode }));
}

/** Refusals per agent and code since the ledger began, most first. */
export async function telemetryRefusalCounts(
  ledger: LedgerReader,
  options: { agent?: string } = {},
): Promise<TelemetryRefusalCount[]> {
  let query = ledgerConnection(ledger).selectFrom("telemetry_refusal_counts").selectAll();
  if (options.agent !== undefined) query = query.where("agent", "=", options.agent);
  const rows = await query.orderBy("refusals", "desc").orderBy("agent").orderBy("code").execute();
  return rows.map((r) => ({
    agent: r.agent,
    code: r.code as TelemetryRefusalCode,
    refusals: Number(r.refusals),
    lastAt: r.last_at,
  }));
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
