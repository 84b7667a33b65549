// Appending a batch: validate everything, then under the ledger's write lock check that the
// head is the one our key last signed, chain the events onto it, write them and their
// projections, extend the Merkle tree and sign a checkpoint — all in one transaction, so a
// crash or an error at any point leaves the ledger at its last complete append.
import { AntidoteError } from "../errors.js";
import type { Backend } from "./backend.js";
import { GENESIS_HASH, canonicalJson, eventHashOfCanonical } from "./chain.js";
import type { LedgerDb } from "./database.js";
import { signCheckpoint, type LedgerSigner } from "./keys.js";
import { checkedHead } from "./head.js";
import { applyEvent, chunks } from "./project.js";
import { parseEvents } from "./schemas.js";
import { extendFrontier, frontierRoot, leafHash } from "./tree.js";
import type { Checkpoint, LedgerEvent, LedgerEventInput } from "./types.js";
import { writeWitness } from "./witness.js";

export interface AppendContext {
  backend: Backend;
  /** The ledger's current key: the head must carry its checkpoint. */
  signer: LedgerSigner;
  /** Signs this batch's checkpoint when it differs (the batch that rotates the key). */
  nextSigner?: LedgerSigner;
}

/**
 * Append `input` as one atomic batch. Returns the stored events, or [] when the batch is a
 * no-op: it carries a delivery whose manifest is already recorded (idempotent ingest), or
 * `skipIf` says so once the lock is held.
 */
export async function appendEvents(
  { backend, signer, nextSigner }: AppendContext,
  input: readonly LedgerEventInput[],
  actor: string,
  skipIf?: (trx: LedgerDb) => Promise<boolean>,
): Promise<LedgerEvent[]> {
  const events = parseEvents(input);
  if (events.length === 0) return [];
  const manifests = events.flatMap((e) => (e.kind === "delivery.ingested" ? [e.payload.manifestDigest] : []));
  if (new Set(manifests).size !== manifests.length)
    throw new AntidoteError(
      "USAGE",
      "one append records the same delivery manifest twice — nothing was written.",
    );

  const written = await backend.writeTransaction(async (trx) => {
    if (manifests.length > 0 && (await anyDeliveryRecorded(trx, manifests))) return undefined;
    if (skipIf !== undefined && (await skipIf(trx))) return undefined;
    // Never extend a head our key did not sign: that is how a history rewritten without the
    // key (events re-hashed, checkpoints deleted) would otherwise get signed as genuine.
    const head = await checkedHead(trx, signer);
    // Taken under the lock, so times follow seq even when writers queue.
    const at = new Date().toISOString();
    const stored = chain(events, head.seq, head.hash ?? GENESIS_HASH, at, actor);
    for (const [index, { event }] of stored.entries()) {
      try {
        await applyEvent(trx, event, backend.maxParams);
      } catch (e) {
        if (e instanceof AntidoteError)
          throw new AntidoteError(
            e.code,
            `ledger event #${index} (${event.kind}): ${e.message} Nothing was written.`,
            {
              cause: e,
            },
          );
        throw e;
      }
    }
    await insertEvents(trx, stored, backend.maxParams);
    const last = (stored[stored.length - 1] as Chained).event;
    const frontier = stored.reduce((f, { event }) => extendFrontier(f, leafHash(event.hash)), head.frontier);
    const root = frontierRoot(frontier).toString("hex");
    const checkpoint = await signCheckpoint(nextSigner ?? signer, {
      seq: last.seq,
      hash: last.hash,
      at,
      root,
    });
    await trx
      .insertInto("checkpoints")
      .values({
        seq: checkpoint.seq,
        hash: checkpoint.hash,
        at: checkpoint.at,
        key_id: checkpoint.keyId,
        signature: checkpoint.signature,
        root,
        frontier: JSON.stringify(frontier.nodes.map((n) => n.toString("hex"))),
      })
      .execute();
    return { stored: stored.map((c) => c.event), checkpoint };
  });
  if (written === undefined) return [];
  recordWitness(backend.witnessPath, written.checkpoint);
  if (backend.refreshStatistics !== undefined && rowsCarried(events) >= LARGE_APPEND_ROWS)
    await backend.refreshStatistics();
  return written.stored;
}

/** An append that adds this many sample or member rows changes table sizes noticeably. */
const LARGE_APPEND_ROWS = 50_000;

function rowsCarried(events: readonly LedgerEventInput[]): number {
  let rows = 0;
  for (const e of events)
    if (e.kind === "samples.added") rows += e.payload.samples.length;
    else if (e.kind === "dataset.members-added") rows += e.payload.digests.length;
  return rows;
}

/** Give each event its place in the chain: seq, time, actor and the hashes that bind it. */
function chain(
  events: readonly LedgerEventInput[],
  headSeq: number,
  headHash: string,
  at: string,
  actor: string,
): Chained[] {
  let prevHash = headHash;
  return events.map((event, i) => {
    const seq = headSeq + i + 1;
    const payloadJson = canonicalJson(event.payload);
    const hash = eventHashOfCanonical(prevHash, { seq, at, actor, kind: event.kind, payloadJson });
    const stored: LedgerEvent = { ...event, seq, at, actor, prevHash, hash };
    prevHash = hash;
    return { event: stored, payloadJson };
  });
}

interface Chained {
  event: LedgerEvent;
  payloadJson: string;
}

async function insertEvents(trx: LedgerDb, events: readonly Chained[], maxParams: number): Promise<void> {
  // Payloads can be large (a thousand samples each), so few events per statement.
  for (const chunk of chunks(events, Math.min(maxParams, 7 * 64), 7))
    await trx
      .insertInto("events")
      .values(
        chunk.map(({ event: e, payloadJson }) => ({
          seq: e.seq,
          at: e.at,
          actor: e.actor,
          kind: e.kind,
          payload: payloadJson,
          prev_hash: e.prevHash,
          hash: e.hash,
        })),
      )
      .execute();
}

async function anyDeliveryRecorded(trx: LedgerDb, manifests: string[]): Promise<boolean> {
  const hit = await trx
    .selectFrom("deliveries")
    .select("delivery_id")
    .where("manifest_digest", "in", manifests)
    .limit(1)
    .executeTakeFirst();
  return hit !== undefined;
}

// The append is committed; a witness that cannot be written (read-only home, full disk)
// must not turn a durable append into a reported failure. `verify` checks the checkpoints
// table regardless; the witness only adds detection of truncation.
function recordWitness(path: string, checkpoint: Checkpoint): void {
  try {
    writeWitness(path, checkpoint);
  } catch (e) {
    process.emitWarning(`ledger witness ${path} not updated: ${e instanceof Error ? e.message : String(e)}`);
  }
}
