// The telemetry store: each accepted batch's JSONL bytes and DSSE envelope, exactly as the
// agent sent them, under `<ledger home>/telemetry/<agent>/`. Like the sample store it is a
// copy, never evidence: whoever can write the ledger directory can edit it, so every read
// checks the file against its `telemetry.accepted` event — the event re-hashed from its
// stored row, then the file's SHA-256 against the digest the agent signed — and an edited
// file is refused (DIGEST_MISMATCH), never read as telemetry. The statement handed to the
// monitors is rebuilt from the event, not re-read from the stored envelope.
//
// Files are written under a temporary name, synced and renamed, each attempt under a name of
// its own (`<sequence>-<8 hex>.jsonl`): two copies of one batch racing each write their own
// file, and the one whose append loses removes only its own.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { temporaryName } from "../data/atomic-output.js";
import { AntidoteError } from "../errors.js";
import { eventHash } from "../ledger/chain.js";
import type { LedgerReader, TelemetryBatch, TelemetryBatchRecord } from "../ledger/types.js";
import {
  TELEMETRY_STATEMENT_TYPE,
  decodeBatch,
  parseTelemetryRecords,
  type DecodedBatch,
  type TelemetryRecord,
  type TelemetryStatement,
} from "./schema.js";

export function telemetryDir(ledger: Pick<LedgerReader, "homeDir">): string {
  return join(ledger.homeDir, "telemetry");
}

/** Where a batch's envelope lies: beside its JSONL, `.dsse.json` for `.jsonl`. */
export function envelopePath(store: string): string {
  return store.replace(/\.jsonl$/, ".dsse.json");
}

export interface StagedBatchFiles {
  /** Relative to `telemetryDir`: what the event records. */
  store: string;
  /** Remove both files (the append that would have recorded them failed). */
  remove(): Promise<void>;
}

/** Write a batch's JSONL bytes and its envelope into the agent's directory, durably. */
export async function writeBatchFiles(
  ledger: Pick<LedgerReader, "homeDir">,
  agent: string,
  sequence: number,
  /** The JSONL text, written as UTF-8: the bytes the agent signed. */
  records: string,
  envelope: unknown,
): Promise<StagedBatchFiles> {
  const dir = join(telemetryDir(ledger), agent);
  await mkdir(dir, { recursive: true });
  const store = `${agent}/${sequence}-${randomBytes(4).toString("hex")}.jsonl`;
  const files = [join(telemetryDir(ledger), store), join(telemetryDir(ledger), envelopePath(store))];
  const remove = async (): Promise<void> => {
    await Promise.all(files.map((f) => rm(f, { force: true }).catch(() => undefined)));
  };
  try {
    await Promise.all([
      writeDurably(files[0] as string, records),
      writeDurably(files[1] as string, JSON.stringify(envelope)),
    ]);
  } catch (e) {
    await remove();
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `telemetry store ${dir}: the batch could not be written (${e instanceof Error ? e.message : String(e)}).`,
      { cause: e },
    );
  }
  return { store, remove };
}

async function writeDurably(path: string, text: string): Promise<void> {
  const temp = join(resolve(path, ".."), temporaryName(path));
  const handle = await open(temp, "wx", 0o640);
  try {
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw e;
  }
}

/** An accepted batch as the monitors read it: the ledger's record, the statement, the records. */
export interface StoredTelemetryBatch {
  batch: TelemetryBatchRecord;
  statement: TelemetryStatement;
  records: TelemetryRecord[];
}

/**
 * Read an accepted batch back, checked: NOT_FOUND for a batch the ledger never accepted,
 * LEDGER_TAMPERED when its event no longer hashes or disagrees with the table, DIGEST_MISMATCH
 * when the stored file is not the bytes the agent signed (edited, truncated or swapped), and
 * FILE_NOT_FOUND when the file is gone.
 */
export async function readTelemetryBatch(
  ledger: LedgerReader,
  batchId: string,
): Promise<StoredTelemetryBatch> {
  const batch = await ledger.getTelemetryBatch(batchId);
  if (batch === undefined)
    throw new AntidoteError("NOT_FOUND", `telemetry batch "${batchId}" is not in the ledger.`);
  const accepted = await acceptedEvent(ledger, batch);
  const root = telemetryDir(ledger);
  const file = resolve(root, accepted.store);
  if (!file.startsWith(`${resolve(root)}${sep}`))
    throw new AntidoteError("LEDGER_TAMPERED", `telemetry batch ${batchId}: its store path leaves ${root}.`);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new AntidoteError(
      "FILE_NOT_FOUND",
      `telemetry store ${file} (batch ${batchId}) cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}.`,
      { cause: e },
    );
  }
  const digest = createHash("sha256").update(bytes).digest("hex");
  if (digest !== accepted.recordsSha256 || bytes.length !== accepted.bytes)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `telemetry store ${file} (batch ${batchId}): its SHA-256 is not the ${accepted.recordsSha256.slice(0, 16)}… the agent signed — the file was modified after intake; nothing from it is used.`,
    );
  const statement = statementOf(accepted);
  const records = parseTelemetryRecords(bytes.toString("utf8"), statement, `telemetry batch ${batchId}`);
  return { batch, statement, records };
}

/** The same batch decoded for the monitors (typed arrays, class indices). */
export async function readDecodedTelemetryBatch(
  ledger: LedgerReader,
  batchId: string,
): Promise<DecodedBatch> {
  const { statement, records } = await readTelemetryBatch(ledger, batchId);
  return decodeBatch(statement, records);
}

/** The statement the agent signed, rebuilt from what the ledger accepted. */
export function statementOf(b: TelemetryBatch): TelemetryStatement {
  return {
    _type: TELEMETRY_STATEMENT_TYPE,
    agent: b.agent,
    sequence: b.sequence,
    window: { ...b.window },
    model: b.model,
    classes: [...b.classes],
    records: { sha256: b.recordsSha256, count: b.count, bytes: b.bytes },
  };
}

// The event is read, re-hashed from its stored fields and compared with the table row: an
// edit of either (a swapped digest, a redirected store path) is caught here. A history
// re-hashed end to end without the ledger's key is `ledger verify`'s to catch.
async function acceptedEvent(ledger: LedgerReader, row: TelemetryBatchRecord): Promise<TelemetryBatch> {
  const event = await ledger.getEvent(row.seq);
  const tampered = (why: string) =>
    new AntidoteError(
      "LEDGER_TAMPERED",
      `telemetry batch ${row.batchId}: ${why}; run \`antidote ledger verify\`.`,
    );
  if (event === undefined || event.kind !== "telemetry.accepted" || event.payload.batchId !== row.batchId)
    throw tampered(`event #${row.seq} is not its acceptance`);
  if (eventHash(event.prevHash, event) !== event.hash)
    throw tampered(`event #${row.seq} does not hash to its stored hash`);
  const p = event.payload;
  const same =
    p.recordsSha256 === row.recordsSha256 &&
    p.store === row.store &&
    p.bytes === row.bytes &&
    p.count === row.count &&
    p.model === row.model &&
    p.agent === row.agent &&
    p.sequence === row.sequence;
  if (!same) throw tampered(`the telemetry_batches row differs from event #${row.seq}`);
  return p;
}
