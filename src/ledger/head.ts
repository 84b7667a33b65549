// The head an append may extend: the last event, re-hashed from its stored row, covered by a
// checkpoint that the ledger's current key signed over exactly that hash, with the Merkle
// frontier that checkpoint's root commits to. Anything else means the database was edited
// outside Antidote (or opened with a key that is not the ledger's), and appending would sign
// whatever is there as genuine — so the append is refused and nothing is written.
//
// This is the O(log n) check every append makes; `verify` (verify.ts) is the full one.
import { AntidoteError } from "../errors.js";
import { eventHashOfCanonical } from "./chain.js";
import type { LedgerDb } from "./database.js";
import { checkpointFromRow } from "./queries.js";
import { checkpointSignatureValid, type LedgerSigner } from "./keys.js";
import {
  EMPTY_FRONTIER,
  extendFrontier,
  frontierRoot,
  isWellFormedFrontier,
  leafHash,
  type Frontier,
} from "./tree.js";

export interface Head {
  seq: number;
  /** The last event's hash; undefined for an empty ledger. */
  hash: string | undefined;
  frontier: Frontier;
}

export async function checkedHead(db: LedgerDb, signer: LedgerSigner): Promise<Head> {
  const row = await db.selectFrom("events").selectAll().orderBy("seq", "desc").limit(1).executeTakeFirst();
  if (row === undefined) {
    const anyCheckpoint = await db.selectFrom("checkpoints").select("seq").limit(1).executeTakeFirst();
    if (anyCheckpoint !== undefined)
      throw tampered(`it has signed checkpoints (the first at #${anyCheckpoint.seq}) but no events`);
    return { seq: 0, hash: undefined, frontier: EMPTY_FRONTIER };
  }
  const rehashed = eventHashOfCanonical(row.prev_hash, {
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    kind: row.kind,
    payloadJson: row.payload,
  });
  if (rehashed !== row.hash) throw tampered(`its last event #${row.seq} does not hash to its stored hash`);
  const cp = await db.selectFrom("checkpoints").selectAll().where("seq", "=", row.seq).executeTakeFirst();
  if (cp === undefined) throw tampered(`its last event #${row.seq} has no signed checkpoint`);
  if (cp.key_id !== signer.keyId)
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `the ledger's head #${row.seq} is signed by key ${cp.key_id.slice(0, 16)}…, not by this key ` +
        `(${signer.keyId.slice(0, 16)}…): use the ledger's key, or rotate with \`antidote ledger rotate-key\`. Nothing was written.`,
    );
  const checkpoint = checkpointFromRow(cp);
  if (cp.hash !== row.hash || !checkpointSignatureValid(checkpoint, signer.publicKeyPem))
    throw tampered(`the checkpoint of its last event #${row.seq} does not verify`);
  const frontier =
    cp.frontier === null ? await rebuildFrontier(db, row.seq) : parseFrontier(cp.frontier, row.seq);
  if (frontier === undefined || (cp.root !== null && frontierRoot(frontier).toString("hex") !== cp.root))
    throw tampered(`the Merkle frontier of checkpoint #${row.seq} does not match its signed root`);
  return { seq: row.seq, hash: row.hash, frontier };
}

function parseFrontier(text: string, size: number): Frontier | undefined {
  try {
    const nodes = (JSON.parse(text) as unknown[]).map((h) => Buffer.from(String(h), "hex"));
    const frontier = { size, nodes };
    return isWellFormedFrontier(frontier) ? frontier : undefined;
  } catch {
    return undefined;
  }
}

// A ledger from before the Merkle tree: its head checkpoint has no frontier, so the first
// append after the upgrade reads every event hash once.
async function rebuildFrontier(db: LedgerDb, headSeq: number): Promise<Frontier | undefined> {
  let frontier = EMPTY_FRONTIER;
  for (let after = 0; ;) {
    const rows = await db
      .selectFrom("events")
      .select(["seq", "hash"])
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(10_000)
      .execute();
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r.seq !== frontier.size + 1) return undefined;
      frontier = extendFrontier(frontier, leafHash(r.hash));
      after = r.seq;
    }
  }
  return frontier.size === headSeq ? frontier : undefined;
}

function tampered(what: string): AntidoteError {
  return new AntidoteError(
    "LEDGER_TAMPERED",
    `the ledger was changed outside Antidote: ${what}. Nothing was written; run \`antidote ledger verify\`.`,
  );
}
