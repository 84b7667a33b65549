// Deliveries the service refused — a signature that does not verify, a key not registered or
// revoked, a file or sample that does not match its manifest, data that does not parse, an
// unsigned delivery to a source that requires signatures, a supplier token naming another
// source — kept so the people who answer for the ledger see them beside the verified ones.
//
// They are an operational record (the `delivery_refusals` table), not ledger events: a
// refusal writes nothing to the tamper-evident log, so a stolen supplier token cannot fill
// the log by sending garbage; the table keeps the newest MAX_REFUSALS rows and prunes the
// rest on each insert. A row holds who sent what under which source name, and the refusal's
// code and message as the client was told it — already free of paths, file contents and
// secrets, and capped here in length — never the data or the token.
//
// Both functions work on the ledger's own connection (`ledgerConnection`, for the reason
// jobs/store.ts gives: a second SQLite connection could block the event loop on the lock an
// append holds across an await).
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerReader } from "../ledger/types.js";

/** Most refusals kept; older ones are pruned as new ones arrive. */
export const MAX_REFUSALS = 10_000;

/** Longest message kept (the rest is cut, with an ellipsis). */
export const MAX_REFUSAL_MESSAGE = 500;

/** Longest source name kept: the claimed name comes from the client. */
const MAX_SOURCE = 200;

export interface DeliveryRefusal {
  /** Increasing with time: the newest refusal has the highest id. */
  id: number;
  at: string;
  /** The source the upload claimed to be from (it may not be registered). */
  source: string;
  /** Who sent it (the API token's principal). */
  principal: string;
  /** The error code the client got (DIGEST_MISMATCH, SIGNATURE_INVALID, FORBIDDEN …). */
  code: string;
  /** Why, as the client was told it. */
  message: string;
}

const refusalInput = z.object({
  source: z.string(),
  principal: z.string().min(1, "must not be empty"),
  code: z.string().min(1, "must not be empty").max(64),
  message: z.string(),
  at: z.date().optional(),
});
export type RefusalInput = z.input<typeof refusalInput>;

const listOptions = z.object({
  /** A route's largest page is 1,000 and it asks for one more to know whether a next page exists. */
  limit: z.number().int().min(1).max(10_000).default(10),
  /** Only this source's refusals. */
  source: z.string().min(1).optional(),
  /** Only refusals older than this id (keyset paging: the last id of the previous page). */
  before: z.number().int().min(1).optional(),
});
export type RefusalListOptions = z.input<typeof listOptions>;

/** Record one refusal and prune the oldest beyond MAX_REFUSALS. */
export async function recordRefusal(ledger: LedgerReader, refusal: RefusalInput): Promise<void> {
  const r = parseOptions(refusalInput, refusal, "refusal");
  const db = ledgerConnection(ledger);
  const inserted = await db
    .insertInto("delivery_refusals")
    .values({
      at: (r.at ?? new Date()).toISOString(),
      source: cut(r.source, MAX_SOURCE),
      principal: cut(r.principal, MAX_SOURCE),
      code: r.code,
      message: cut(r.message, MAX_REFUSAL_MESSAGE),
    })
    .returning("id")
    .executeTakeFirst();
  if (inserted === undefined)
    throw new AntidoteError("INTERNAL", "recordRefusal: the insert returned no id.");
  // Ids only grow, so everything MAX_REFUSALS or more below the new one is older than the rows
  // kept (gaps from rolled-back inserts on PostgreSQL only make fewer rows kept).
  await db
    .deleteFrom("delivery_refusals")
    .where("id", "<=", Number(inserted.id) - MAX_REFUSALS)
    .execute();
}

/** The newest refusals first, at most `limit`, optionally of one source and before an id. */
export async function latestRefusals(
  ledger: LedgerReader,
  options: RefusalListOptions = {},
): Promise<DeliveryRefusal[]> {
  const o = parseOptions(listOptions, options, "refusal list");
  let query = ledgerConnection(ledger)
    .selectFrom("delivery_refusals")
    .select(["id", "at", "source", "principal", "code", "message"]);
  if (o.source !== undefined) query = query.where("source", "=", o.source);
  if (o.before !== undefined) query = query.where("id", "<", o.before);
  const rows = await query.orderBy("id", "desc").limit(o.limit).execute();
  return rows.map((row) => ({ ...row, id: Number(row.id) }));
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
