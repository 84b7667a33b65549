// Appending a batch: validate everything, then under the ledger's write lock read the chain
// head, chain the events onto it, write them and their projections, and sign a checkpoint —
// all in one transaction, so a crash or an error at any point leaves the ledger at its last
// complete append.
import { AntidoteError } from "../errors.js";
import type { Backend } from "./backend.js";
import { GENESIS_HASH, canonicalJson, eventHashOfCanonical } from "./chain.js";
import type { LedgerDb } from "./database.js";
import { signCheckpoint, type LedgerKey } from "./keys.js";
import { applyEvent, chunks } from "./project.js";
import { parseEvents } from "./schemas.js";
import type { Checkpoint, LedgerEvent, LedgerEventInput } from "./types.js";
import { writeWitness } from "./witness.js";

export interface AppendContext {
  backend: Backend;
  key: LedgerKey;
}

/**
 * Append `input` as one atomic batch. Returns the stored events, or [] when the batch is a
 * no-op: it carries a delivery whose manifest is already recorded (idempotent ingest), or
 * `skipIf` says so once the lock is held.
 */
export async function appendEvents(
  { backend, key }: AppendContext,
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
    // Taken under the lock, so times follow seq even when writers queue.
    const at = new Date().toISOString();
    const head = await trx
      .selectFrom("events")
      .select(["seq", "hash"])
      .orderBy("seq", "desc")
      .limit(1)
      .executeTakeFirst();
    const stored = chain(events, head?.seq ?? 0, head?.hash ?? GENESIS_HASH, at, actor);
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
    const checkpoint = signCheckpoint(key, { seq: last.seq, hash: last.hash, at });
    await trx
      .insertInto("checkpoints")
      .values({
        seq: checkpoint.seq,
        hash: checkpoint.hash,
        at: checkpoint.at,
        key_id: checkpoint.keyId,
        signature: checkpoint.signature,
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
