// The sample store: a Parquet copy of every delivery's samples under `<ledger home>/store/`,
// so versions can be rebuilt from the ledger. The store is a cache, never evidence: whoever
// can write the ledger directory can edit it, so every read checks it against the ledger —
// the file's SHA-256 recorded at ingest, and each sample's content digest, label and
// annotations against the delivery's own records, read from its signed events.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { openDataset } from "../data/open.js";
import type { Sample } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { recordDigest } from "../ledger/chain.js";
import type { DeliveryRecord, LedgerReader, SampleRecord } from "../ledger/types.js";
import { sha256File } from "./model.js";

export function storeDir(ledger: Pick<LedgerReader, "homeDir">): string {
  return join(ledger.homeDir, "store");
}

export interface StoreProblem {
  deliveryId: string;
  file: string;
  reason: string;
}

/**
 * The samples of a delivery's store file, each checked against the ledger: a store file that
 * is missing yields nothing (the caller decides whether that matters); one whose bytes or
 * any sample's label, annotations or content differ from what was ingested throws
 * DIGEST_MISMATCH naming the file, the sample and the field. `checkRecords: false` stops at
 * the file digest when one was recorded (a cheap check for `ledger verify`); `deep` compares
 * every record even when the file digest already failed, so the error names a sample.
 */
export async function* readStoredDelivery(
  ledger: LedgerReader,
  delivery: Pick<DeliveryRecord, "deliveryId" | "store">,
  options: { checkRecords?: boolean; deep?: boolean } = {},
): AsyncGenerator<Sample> {
  if (delivery.store === null) return;
  const file = join(storeDir(ledger), delivery.store);
  if (!(await exists(file))) return;
  const evidence = await ledger.deliveryEvidence(delivery.deliveryId);
  const mismatch = (what: string): AntidoteError =>
    new AntidoteError(
      "DIGEST_MISMATCH",
      `sample store ${file} (delivery ${delivery.deliveryId}): ${what} — the store was modified after ingest; nothing from it is used.`,
    );
  const fileMatches = evidence.storeSha256 === null || (await sha256File(file)) === evidence.storeSha256;
  const fileMismatch = (): AntidoteError =>
    mismatch(`its SHA-256 is not the ${evidence.storeSha256?.slice(0, 16) ?? ""}… recorded at ingest`);
  // Only `deep` reads on past a bad file digest, to name the samples that changed.
  if (!fileMatches && options.deep !== true) throw fileMismatch();
  if (options.checkRecords === false && evidence.storeSha256 !== null) return;

  // A delivery may hold the same id twice (different content): match on id and content.
  const expected = new Map<string, SampleRecord[]>();
  for (const r of evidence.samples) {
    const key = `${r.id}\u0000${r.digest}`;
    const list = expected.get(key);
    if (list === undefined) expected.set(key, [r]);
    else list.push(r);
  }
  let row = 0;
  const dataset = await openDataset(file, { format: "parquet" });
  for await (const sample of dataset.samples()) {
    const candidates = expected.get(`${sample.id}\u0000${sample.digest}`);
    if (candidates === undefined || candidates.length === 0)
      throw mismatch(`row ${row} (sample "${sample.id}") has content the ledger never recorded for it`);
    const got = recordDigest(sample);
    const index = candidates.findIndex((r) => recordDigest(r) === got);
    if (index < 0) {
      const what = candidates.some((r) => r.label === sample.label) ? "annotations differ" : "label differs";
      throw mismatch(`row ${row} (sample "${sample.id}"): its ${what} from the record ingested`);
    }
    candidates.splice(index, 1);
    row++;
    yield sample;
  }
  if (row !== evidence.samples.length)
    throw mismatch(`it holds ${row} samples, the delivery recorded ${evidence.samples.length}`);
  if (!fileMatches) throw fileMismatch();
}

/**
 * Check every delivery's store file against the ledger. By default a file with a recorded
 * digest is hashed (fast, and catches any edit) and one without (ingested before digests were
 * recorded) has its records compared; `deep` compares every record of every file as well.
 */
export async function verifyStore(
  ledger: LedgerReader,
  options: { deep?: boolean } = {},
): Promise<{ checked: number; missing: string[]; problems: StoreProblem[] }> {
  const problems: StoreProblem[] = [];
  const missing: string[] = [];
  let checked = 0;
  for (const delivery of await ledger.listDeliveries()) {
    if (delivery.store === null) continue;
    const file = join(storeDir(ledger), delivery.store);
    if (!(await exists(file))) {
      missing.push(delivery.deliveryId);
      continue;
    }
    checked++;
    try {
      for await (const _ of readStoredDelivery(ledger, delivery, {
        checkRecords: options.deep === true,
        deep: options.deep === true,
      }))
        void _;
    } catch (e) {
      // An unreadable store file is as much a finding as an edited one.
      if (!(e instanceof AntidoteError)) throw e;
      problems.push({ deliveryId: delivery.deliveryId, file, reason: e.message });
    }
  }
  return { checked, missing, problems };
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
