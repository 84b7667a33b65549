// verify: recompute the whole ledger from its events and compare with what is stored.
//   1. every event: seq has no gaps, prev_hash links, payload is canonical and valid, hash
//      recomputes; its leaf joins the RFC 9162 Merkle tree (tree.ts);
//   2. ledger keys: the first is taken on first use, each later one must be endorsed by the one
//      before (the replay enforces it);
//   3. every checkpoint (and the local witness file): signed by the ledger key in force at its
//      seq, its (seq, hash) is the event at that seq, its root is the tree over events 1..seq —
//      none points past the end, and the last event has one;
//   4. a witnessed head kept elsewhere, when given: signed by one of the ledger's keys, and the
//      ledger today extends it (an RFC 9162 consistency proof from it to today's root);
//   5. every derived table equals a replay of all events into a scratch database.
// The report names the first bad seq and every table that differs. Nothing here writes.
import BetterSqlite3 from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { canonicalJson, eventHashOfCanonical, GENESIS_HASH, sha256Hex } from "./chain.js";
import { DERIVED_TABLES, type Database, type LedgerDb } from "./database.js";
import type { Backend } from "./backend.js";
import { checkpointSignatureValid, keyIdOf } from "./keys.js";
import { createDerivedTables } from "./migrations.js";
import { applyEvent } from "./project.js";
import { checkpointFromRow } from "./queries.js";
import { ledgerEventInputSchema } from "./schemas.js";
import {
  consistencyProof,
  extendFrontier,
  frontierRoot,
  EMPTY_FRONTIER,
  leafHash,
  treeRoot,
  verifyConsistency,
} from "./tree.js";
import type { Checkpoint, LedgerEvent, SignedTreeHead, VerifyOptions, VerifyReport } from "./types.js";
import { readWitness } from "./witness.js";

const PAGE = 2000;
const REPLAY_MAX_PARAMS = 32_766;

interface Problem {
  seq: number;
  reason: string;
}

export async function verifyLedger(backend: Backend, options: VerifyOptions = {}): Promise<VerifyReport> {
  // Read before the snapshot starts: a witness is written after its append commits, so
  // whatever it names is inside the snapshot.
  const witness = readWitness(backend.witnessPath);
  const replica = openReplica();
  try {
    await createDerivedTables(replica);
    return await backend.snapshot(async (db) => {
      const problems: Problem[] = [];
      const checkpointSeqs = new Set(
        (await db.selectFrom("checkpoints").select("seq").execute()).map((r) => r.seq),
      );
      const chain = await checkEvents(db, replica, problems, checkpointSeqs);
      const checkpoints = await checkCheckpoints(db, chain, problems);
      if (chain.lastSeq > 0 && !checkpointSeqs.has(chain.lastSeq))
        problems.push({
          seq: chain.lastSeq,
          reason:
            "the last event has no signed checkpoint: the log was extended or rewritten without the ledger's key",
        });
      if (witness.state === "unreadable")
        problems.push({
          seq: chain.lastSeq + 1,
          reason: `witness ${backend.witnessPath} is unreadable (${witness.why})`,
        });
      // Every append of a SQLite ledger writes its witness beside it; a shared PostgreSQL
      // ledger's witness is per machine, and a machine that never appended has none.
      if (witness.state === "absent" && backend.engine === "sqlite" && chain.lastSeq > 0)
        problems.push({
          seq: chain.lastSeq + 1,
          reason: `witness ${backend.witnessPath} is missing: every append writes it, so it was deleted (trailing events and their checkpoints may have been cut)`,
        });
      if (witness.state === "ok") {
        const bad = checkpointProblem(witness.checkpoint, chain, `witness ${backend.witnessPath}`);
        if (bad !== undefined) problems.push(bad);
      }
      const external =
        options.witness === undefined ? undefined : checkWitnessedHead(options.witness, chain, problems);
      const tableMismatches = await compareTables(db, replica);
      const firstBad = problems.reduce<Problem | undefined>(
        (a, p) => (a === undefined || p.seq < a.seq ? p : a),
        undefined,
      );
      return {
        ok: firstBad === undefined && tableMismatches.length === 0,
        events: chain.count,
        checkpoints,
        root: treeRoot(chain.leaves).toString("hex"),
        ...(firstBad === undefined ? {} : { firstBad }),
        tableMismatches,
        localWitness: witness.state,
        ...(external === undefined ? {} : { witness: external }),
      };
    });
  } finally {
    await replica.destroy();
  }
}

// A head kept elsewhere proves the ledger extends it: the head's own key signed it, that key is
// one this ledger has had, and the tree over the ledger's first `seq` events has its root —
// shown the way a remote auditor would check it, by an RFC 9162 consistency proof to today.
function checkWitnessedHead(
  head: SignedTreeHead,
  chain: ChainState,
  problems: Problem[],
): NonNullable<VerifyReport["witness"]> {
  const fail = (reason: string): NonNullable<VerifyReport["witness"]> => {
    problems.push({
      seq: Math.min(head.seq, chain.lastSeq + 1),
      reason: `witnessed head #${head.seq}: ${reason}`,
    });
    return { seq: head.seq, ok: false, consistencyProof: [] };
  };
  if (keyIdOf(head.publicKeyPem) !== head.keyId || !checkpointSignatureValid(head, head.publicKeyPem))
    return fail("its signature does not verify with the key it names");
  if (!chain.ledgerKeys.has(head.keyId))
    return fail(`it is signed by key ${head.keyId.slice(0, 16)}…, which this ledger never had`);
  if (head.seq > chain.lastSeq) return fail(`the ledger ends at #${chain.lastSeq}: events after it were cut`);
  if (chain.hashes.get(head.seq) !== head.hash)
    return fail("the event at that seq has another hash: history was rewritten");
  const proof = consistencyProof(chain.leaves, head.seq);
  const current = treeRoot(chain.leaves);
  if (!verifyConsistency(head.seq, chain.leaves.length, Buffer.from(head.root, "hex"), current, proof))
    return fail("the ledger's tree is not consistent with it: history was rewritten");
  return { seq: head.seq, ok: true, consistencyProof: proof.map((p) => p.toString("hex")) };
}

/** The latest checkpoint, with the public key that signed it: what `ledger checkpoint --out` publishes. */
export async function signedHead(backend: Backend): Promise<SignedTreeHead | undefined> {
  const cp = await backend.db
    .selectFrom("checkpoints")
    .selectAll()
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  if (cp === undefined) return undefined;
  if (cp.root === null)
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `ledger ${backend.location}: its head #${cp.seq} predates signed tree heads; the next append signs one.`,
    );
  const key = await backend.db
    .selectFrom("ledger_keys")
    .select("public_key_pem")
    .where("key_id", "=", cp.key_id)
    .executeTakeFirst();
  if (key === undefined)
    throw new AntidoteError(
      "LEDGER_TAMPERED",
      `ledger ${backend.location}: the head is signed by a key the ledger does not record.`,
    );
  return {
    format: "antidote-ledger-head/v1",
    ledger: backend.location,
    seq: cp.seq,
    hash: cp.hash,
    root: cp.root,
    at: cp.at,
    keyId: cp.key_id,
    signature: cp.signature,
    publicKeyPem: key.public_key_pem,
  };
}

const signedTreeHeadSchema = z.object({
  format: z.literal("antidote-ledger-head/v1"),
  ledger: z.string(),
  seq: z.number().int().min(1),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  root: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.string(),
  keyId: z.string().regex(/^[0-9a-f]{64}$/),
  signature: z.string().min(1),
  publicKeyPem: z.string().min(1),
});

/** Validate a published head; `what` (its file) names it in the error. */
export function parseSignedTreeHead(value: unknown, what: string): SignedTreeHead {
  const r = signedTreeHeadSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${what}: not a ledger head written by \`antidote ledger checkpoint\` (${issue?.path.join(".") || "value"}: ${issue?.message ?? "invalid"}).`,
  );
}

interface ChainState {
  /** Events read; equals lastSeq unless some are missing. */
  count: number;
  lastSeq: number;
  /** seq → stored hash, for checking checkpoints. */
  hashes: Map<number, string>;
  /** RFC 9162 leaf hash of every event, in order. */
  leaves: Buffer[];
  /** seq → tree root over events 1..seq, at the seqs that have a checkpoint. */
  roots: Map<number, string>;
  /** Ledger keys recorded by `ledger.key-rotated`: in force from `seq` until the next rotation. */
  ledgerKeys: Map<string, { publicKeyPem: string; seq: number; until?: number }>;
}

async function checkEvents(
  db: LedgerDb,
  replica: LedgerDb,
  problems: Problem[],
  checkpointSeqs: ReadonlySet<number>,
): Promise<ChainState> {
  const state: ChainState = {
    count: 0,
    lastSeq: 0,
    hashes: new Map(),
    leaves: [],
    roots: new Map(),
    ledgerKeys: new Map(),
  };
  let frontier = EMPTY_FRONTIER;
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
      const leaf = leafHash(row.hash);
      state.leaves.push(leaf);
      frontier = extendFrontier(frontier, leaf);
      if (checkpointSeqs.has(row.seq)) state.roots.set(row.seq, frontierRoot(frontier).toString("hex"));
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
      if (event.kind === "ledger.key-rotated" && !state.ledgerKeys.has(event.payload.keyId)) {
        // The checkpoint that closes a rotating batch is signed by the incoming key, so the
        // outgoing one is in force up to the event before the rotation.
        for (const k of state.ledgerKeys.values()) if (k.until === undefined) k.until = row.seq;
        state.ledgerKeys.set(event.payload.keyId, { publicKeyPem: event.payload.publicKeyPem, seq: row.seq });
      }
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
      const bad = checkpointProblem(checkpointFromRow(row), chain, `checkpoint at seq ${row.seq}`);
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
  if (key === undefined || key.seq > c.seq || (key.until !== undefined && key.until <= c.seq))
    return {
      seq: c.seq,
      reason: `${what} is signed by key ${c.keyId.slice(0, 16)}…, which was not the ledger's key at that event`,
    };
  if (!checkpointSignatureValid(c, key.publicKeyPem))
    return { seq: c.seq, reason: `${what} has an invalid signature` };
  if (chain.hashes.get(c.seq) !== c.hash)
    return { seq: c.seq, reason: `${what} signed a different hash for this event: the event was rewritten` };
  if (c.root !== undefined && chain.roots.get(c.seq) !== undefined && chain.roots.get(c.seq) !== c.root)
    return {
      seq: c.seq,
      reason: `${what} signed a different Merkle root: the events before it were rewritten`,
    };
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
