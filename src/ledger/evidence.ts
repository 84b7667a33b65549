// Reading events as evidence, not as table rows: what `export` and the store check rely on
// (a delivery's own sample records, its store digest) is read from the events themselves,
// each re-hashed from its stored row, and the Merkle root over every event's hash must be
// the root the head checkpoint signs with the ledger's trusted key. Editing a projection, an
// event, or a whole re-hashed history without the key therefore fails here, in O(events)
// hashes of 32 bytes, without the full replay `verify` does.
import { AntidoteError } from "../errors.js";
import { GENESIS_HASH, eventHashOfCanonical, rotationMessage } from "./chain.js";
import type { EventsTable, LedgerDb } from "./database.js";
import { checkpointFromRow } from "./queries.js";
import { checkpointSignatureValid, signatureValid } from "./keys.js";
import { ledgerEventInputSchema } from "./schemas.js";
import { leafHash, treeRoot } from "./tree.js";
import type { DeliveryEvidence, SampleRecord } from "./types.js";

const PAGE = 2000;

export async function deliveryEvidence(
  db: LedgerDb,
  deliveryId: string,
  trustedKeyPem?: string,
): Promise<DeliveryEvidence> {
  const delivery = await db
    .selectFrom("deliveries")
    .select(["seq", "store"])
    .where("delivery_id", "=", deliveryId)
    .executeTakeFirst();
  if (delivery === undefined)
    throw new AntidoteError("NOT_FOUND", `delivery "${deliveryId}" is not in the ledger.`);
  await requireSignedHead(db, trustedKeyPem ?? (await trustedKey(db)));

  let storeSha256: string | null = null;
  const samples: SampleRecord[] = [];
  // The delivery's events are one append batch: delivery.ingested, then its samples.added.
  for (let after = delivery.seq - 1; ;) {
    const rows = await db
      .selectFrom("events")
      .selectAll()
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    let done = rows.length === 0;
    for (const row of rows) {
      after = row.seq;
      const payload = payloadOf(row);
      if (row.seq === delivery.seq) {
        const parsed = ledgerEventInputSchema.safeParse({ kind: row.kind, payload });
        if (
          !parsed.success ||
          parsed.data.kind !== "delivery.ingested" ||
          parsed.data.payload.deliveryId !== deliveryId
        )
          throw tampered(
            `event #${row.seq} is not the ingest of delivery ${deliveryId} its table row says it is`,
          );
        storeSha256 = parsed.data.payload.storeSha256 ?? null;
        continue;
      }
      const parsed = ledgerEventInputSchema.safeParse({ kind: row.kind, payload });
      if (
        !parsed.success ||
        parsed.data.kind !== "samples.added" ||
        parsed.data.payload.deliveryId !== deliveryId
      ) {
        done = true;
        break;
      }
      samples.push(...parsed.data.payload.samples);
    }
    if (done) break;
  }
  return { deliveryId, store: delivery.store, storeSha256, samples };
}

/** The payload of a row whose hash recomputes; anything else is tampering. */
function payloadOf(row: EventsTable): unknown {
  const rehashed = eventHashOfCanonical(row.prev_hash, { ...row, payloadJson: row.payload });
  if (rehashed !== row.hash) throw tampered(`event #${row.seq} does not hash to its stored hash`);
  return JSON.parse(row.payload) as unknown;
}

/**
 * The ledger's current key, by walking its key rotations from the first: each later key must
 * be endorsed by the one before (the same rule the projection enforces on append).
 */
export async function trustedKey(db: LedgerDb): Promise<string> {
  const rows = await db
    .selectFrom("events")
    .selectAll()
    .where("kind", "=", "ledger.key-rotated")
    .orderBy("seq")
    .execute();
  let current: { keyId: string; pem: string } | undefined;
  for (const row of rows) {
    const parsed = ledgerEventInputSchema.safeParse({ kind: row.kind, payload: payloadOf(row) });
    if (!parsed.success || parsed.data.kind !== "ledger.key-rotated")
      throw tampered(`key event #${row.seq} is malformed`);
    const p = parsed.data.payload;
    if (current !== undefined) {
      const e = p.endorsement;
      if (
        e === undefined ||
        e.keyId !== current.keyId ||
        !signatureValid(rotationMessage(p), e.signature, current.pem)
      )
        throw tampered(`the key rotation at #${row.seq} is not endorsed by the key before it`);
    }
    current = { keyId: p.keyId, pem: p.publicKeyPem };
  }
  if (current === undefined) throw tampered("it records no ledger key");
  return current.pem;
}

// Every event links to the one before it up to the head, and the head checkpoint signs the
// last hash (and, since the tree, the root over all of them): so each event re-hashed here is
// one the signed head commits to.
async function requireSignedHead(db: LedgerDb, keyPem: string): Promise<void> {
  const leaves: Buffer[] = [];
  let prev = GENESIS_HASH;
  for (let after = 0; ;) {
    const rows = await db
      .selectFrom("events")
      .select(["seq", "hash", "prev_hash"])
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(PAGE * 5)
      .execute();
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r.seq !== leaves.length + 1) throw tampered(`event #${leaves.length + 1} is missing`);
      if (r.prev_hash !== prev) throw tampered(`event #${r.seq} does not link to the event before it`);
      leaves.push(leafHash(r.hash));
      prev = r.hash;
      after = r.seq;
    }
  }
  const cp = await db
    .selectFrom("checkpoints")
    .selectAll()
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  if (cp === undefined || cp.seq !== leaves.length || cp.hash !== prev)
    throw tampered(`its last event #${leaves.length} has no signed checkpoint`);
  const checkpoint = checkpointFromRow(cp);
  if (
    !checkpointSignatureValid(checkpoint, keyPem) ||
    (cp.root !== null && treeRoot(leaves).toString("hex") !== cp.root)
  )
    throw tampered(`the head checkpoint #${cp.seq} does not sign the events the ledger holds`);
}

function tampered(what: string): AntidoteError {
  return new AntidoteError(
    "LEDGER_TAMPERED",
    `the ledger does not verify: ${what}. Run \`antidote ledger verify\`.`,
  );
}
