// verify: recompute the whole ledger from its events and compare with what is stored.
//   1. every event: seq has no gaps, prev_hash links, payload is canonical and valid, hash recomputes;
//   2. every checkpoint (and the witness file): signed by a ledger key recorded in the log at or
//      before its seq, and its (seq, hash) is the event at that seq — none points past the end;
//   3. every derived table equals a replay of all events into a scratch database.
// The report names the first bad seq and every table that differs.
import BetterSqlite3 from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { canonicalJson, eventHashOfCanonical, GENESIS_HASH, sha256Hex } from "./chain.js";
import { DERIVED_TABLES, type Database, type LedgerDb } from "./database.js";
import type { Backend } from "./backend.js";
import { checkpointSignatureValid } from "./keys.js";
import { createDerivedTables } from "./migrations.js";
import { applyEvent } from "./project.js";
import { ledgerEventInputSchema } from "./schemas.js";
import type { Checkpoint, LedgerEvent, VerifyReport } from "./types.js";
import { readWitness } from "./witness.js";

const PAGE = 2000;
const REPLAY_MAX_PARAMS = 32_766;

interface Problem {
  seq: number;
  reason: string;
}

export async function verifyLedger(backend: Backend): Promise<VerifyReport> {
  // Read before the snapshot starts: a witness is written after its append commits, so
  // whatever it names is inside the snapshot.
  const witness = readWitness(backend.witnessPath);
  const replica = openReplica();
  try {
    await createDerivedTables(replica);
    return await backend.snapshot(async (db) => {
      const problems: Problem[] = [];
      const chain = await checkEvents(db, replica, problems);
      const checkpoints = await checkCheckpoints(db, chain, problems);
      if (witness.state === "unreadable")
        problems.push({
          seq: chain.lastSeq + 1,
          reason: `witness ${backend.witnessPath} is unreadable (${witness.why})`,
        });
      if (witness.state === "ok") {
        const bad = checkpointProblem(witness.checkpoint, chain, `witness ${backend.witnessPath}`);
        if (bad !== undefined) problems.push(bad);
      }
      const tableMismatches = await compareTables(db, replica);
      const firstBad = problems.reduce<Problem | undefined>(
        (a, p) => (a === undefined || p.seq < a.seq ? p : a),
        undefined,
      );
      return {
        ok: firstBad === undefined && tableMismatches.length === 0,
        events: chain.count,
        checkpoints,
        ...(firstBad === undefined ? {} : { firstBad }),
        tableMismatches,
      };
    });
  } finally {
    await replica.destroy();
  }
}

interface ChainState {
  /** Events read; equals lastSeq unless some are missing. */
  count: number;
  lastSeq: number;
  /** seq → stored hash, for checking checkpoints. */
  hashes: Map<number, string>;
  /** Ledger keys recorded by `ledger.key-rotated`, with the seq that recorded them. */
  ledgerKeys: Map<string, { publicKeyPem: string; seq: number }>;
}

async function checkEvents(db: LedgerDb, replica: LedgerDb, problems: Problem[]): Promise<ChainState> {
  const state: ChainState = { count: 0, lastSeq: 0, hashes: new Map(), ledgerKeys: new Map() };
  let prevHash = GENESIS_HASH;
  let chainBroken = false;
  const flag = (seq: number, reason: string): void => {
    if (!chainBroken) problems.push({ seq, reason });
    chainBroken = true;
  };
  await sql`begin`.execute(replica);
  for (let after = 0; ;) {
    const rows = await db
      .selectFrom("events")
      .selectAll()
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      after = row.seq;
      state.count++;
      const expected = state.lastSeq + 1;
      if (row.seq !== expected) flag(expected, `event ${expected} is missing (the log jumps to ${row.seq})`);
      if (row.prev_hash !== prevHash) flag(row.seq, "prev_hash does not match the previous event's hash");
      state.lastSeq = row.seq;
      state.hashes.set(row.seq, row.hash);
      prevHash = row.hash;

      let payload: unknown;
      try {
        payload = JSON.parse(row.payload);
      } catch {
        flag(row.seq, "payload is not JSON");
        continue;
      }
      const payloadJson = canonicalJson(payload);
      if (payloadJson !== row.payload) flag(row.seq, "payload is not in canonical (RFC 8785) form");
      const recomputed = eventHashOfCanonical(row.prev_hash, {
        seq: row.seq,
        at: row.at,
        actor: row.actor,
        kind: row.kind,
        payloadJson,
      });
      if (recomputed !== row.hash)
        flag(row.seq, "hash does not recompute: the event was altered after it was written");
      const parsed = ledgerEventInputSchema.safeParse({ kind: row.kind, payload });
      if (!parsed.success) {
        flag(
          row.seq,
          `payload is not a valid ${row.kind} event (${parsed.error.issues[0]?.message ?? "invalid"})`,
        );
        continue;
      }
      const event = {
        ...parsed.data,
        seq: row.seq,
        at: row.at,
        actor: row.actor,
        prevHash: row.prev_hash,
        hash: row.hash,
      } as LedgerEvent;
      if (event.kind === "ledger.key-rotated" && !state.ledgerKeys.has(event.payload.keyId))
        state.ledgerKeys.set(event.payload.keyId, { publicKeyPem: event.payload.publicKeyPem, seq: row.seq });
      try {
        await applyEvent(replica, event, REPLAY_MAX_PARAMS);
      } catch (e) {
        flag(row.seq, `replaying the event fails: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  await sql`commit`.execute(replica);
  return state;
}

async function checkCheckpoints(db: LedgerDb, chain: ChainState, problems: Problem[]): Promise<number> {
  let count = 0;
  for (let after = 0; ;) {
    const rows = await db
      .selectFrom("checkpoints")
      .selectAll()
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      after = row.seq;
      count++;
      const checkpoint: Checkpoint = {
        seq: row.seq,
        hash: row.hash,
        at: row.at,
        keyId: row.key_id,
        signature: row.signature,
      };
      const bad = checkpointProblem(checkpoint, chain, `checkpoint at seq ${row.seq}`);
      if (bad !== undefined) problems.push(bad);
    }
  }
  return count;
}

function checkpointProblem(c: Checkpoint, chain: ChainState, what: string): Problem | undefined {
  if (c.seq > chain.lastSeq)
    return {
      seq: chain.lastSeq + 1,
      reason: `${what} records head ${c.seq} but the log ends at ${chain.lastSeq}: trailing events were deleted`,
    };
  const key = chain.ledgerKeys.get(c.keyId);
  if (key === undefined || key.seq > c.seq)
    return {
      seq: c.seq,
      reason: `${what} is signed by key ${c.keyId.slice(0, 16)}…, which the log had not recorded as a ledger key`,
    };
  if (!checkpointSignatureValid(c, key.publicKeyPem))
    return { seq: c.seq, reason: `${what} has an invalid signature` };
  if (chain.hashes.get(c.seq) !== c.hash)
    return { seq: c.seq, reason: `${what} signed a different hash for this event: the event was rewritten` };
  return undefined;
}

/** In-memory SQLite with the derived tables: where `verify` replays the log. */
function openReplica(): LedgerDb {
  const database = new BetterSqlite3(":memory:");
  database.pragma("journal_mode = OFF");
  return new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
}

// Each table is summarized order-independently — row count and the sum of 128-bit row
// hashes mod 2^128 — because SQLite and PostgreSQL may collate text keys differently.
async function compareTables(db: LedgerDb, replica: LedgerDb): Promise<string[]> {
  const mismatches: string[] = [];
  for (const [table, key] of Object.entries(DERIVED_TABLES) as [keyof Database, readonly string[]][]) {
    const [stored, replayed] = [await tableDigest(db, table, key), await tableDigest(replica, table, key)];
    if (stored.count !== replayed.count)
      mismatches.push(`${table}: ${stored.count} rows stored, ${replayed.count} after replaying the events`);
    else if (stored.sum !== replayed.sum)
      mismatches.push(`${table}: row contents differ from a replay of the events`);
  }
  return mismatches;
}

const MASK = (1n << 128n) - 1n;

async function tableDigest(
  db: LedgerDb,
  table: keyof Database,
  key: readonly string[],
): Promise<{ count: number; sum: bigint }> {
  let count = 0;
  let sum = 0n;
  let last: unknown[] | undefined;
  let columns: string[] | undefined;
  const keyRefs = sql.join(key.map((k) => sql.ref(k)));
  for (;;) {
    const after = last;
    const rows = (await db
      .selectFrom(table)
      .selectAll()
      .$if(after !== undefined, (q) => q.where(sql<boolean>`(${keyRefs}) > (${sql.join(after ?? [])})`))
      .$call((q) => key.reduce((ordered, k) => ordered.orderBy(sql.ref(k)), q))
      .limit(PAGE * 5)
      .execute()) as Record<string, unknown>[];
    if (rows.length === 0) break;
    const order = (columns ??= Object.keys(rows[0] as object).sort());
    for (const row of rows) {
      count++;
      const values = order.map((c) => row[c]);
      sum = (sum + BigInt(`0x${sha256Hex(JSON.stringify(values)).slice(0, 32)}`)) & MASK;
    }
    const tail = rows[rows.length - 1] as Record<string, unknown>;
    last = key.map((k) => tail[k]);
  }
  return { count, sum };
}
