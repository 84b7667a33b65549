// A dataset version's members as a file, read back from the sample store. The ledger decides
// which digests belong (a version's members, minus what is quarantined or came from excluded
// sources); the store supplies their content, and every store file is checked against its
// delivery's signed events as it is read (store.ts), so an edited store fails here rather than
// reaching the output. `exportVersion` (export.ts) adds signing and a new version on top;
// `materializeVersion` is the plain copy a scan or audit job reads, and records nothing.
import { existsSync } from "node:fs";
import { copyFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { createWriter, openDataset } from "../data/open.js";
import type { DatasetFormat } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { recordDigest } from "../ledger/chain.js";
import type { DatasetVersion, LedgerReader } from "../ledger/types.js";
import { sha256File } from "./model.js";
import { readStoredDelivery, storeDir as storeDirOf } from "./store.js";

/** Which members of a version go out, decided from the ledger alone. */
export interface MemberSelection {
  parent: DatasetVersion;
  /** Sample digests to write. */
  keep: Set<string>;
  excluded: { quarantined: number; bySource: number };
}

export interface SelectOptions {
  excludeQuarantined?: boolean;
  excludeSources?: readonly string[];
}

export interface WriteMembersOptions {
  format?: DatasetFormat;
  /** Replace an existing output; refused otherwise. */
  overwrite?: boolean;
  onProgress?: (written: number, total: number) => void;
  /** Stops the copy between samples; the partial output is removed. */
  signal?: AbortSignal;
}

export interface MaterializeOptions {
  onProgress?: (written: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * Write every member of `version` to `out` (Parquet unless the name says otherwise), from the sample store, each checked
 * against the ledger. Nothing is recorded and nothing is signed.
 */
export async function materializeVersion(
  ledger: LedgerReader,
  version: string,
  out: string,
  options: MaterializeOptions = {},
): Promise<{ written: number; out: string }> {
  const selection = await selectMembers(ledger, version);
  const whole = out.endsWith(".parquet") ? await wholeStoreFile(ledger, selection) : undefined;
  if (whole !== undefined) {
    await copyChecked(whole.file, whole.sha256, out);
    options.onProgress?.(selection.keep.size, selection.keep.size);
    return { written: selection.keep.size, out };
  }
  const written = await writeMembers(ledger, selection, out, {
    ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  return { written: written.size, out };
}

/** The digests of `version` to write, leaving out quarantined samples or whole sources when asked. */
export async function selectMembers(
  ledger: LedgerReader,
  version: string,
  options: SelectOptions = {},
): Promise<MemberSelection> {
  const parent = await ledger.getDatasetVersion(version);
  if (parent === undefined) throw unknownVersion(version, await ledger.listDatasetVersions());
  const excludeSources = new Set(options.excludeSources ?? []);
  for (const name of excludeSources)
    if ((await ledger.getSource(name)) === undefined)
      throw new AntidoteError("SOURCE_UNKNOWN", `--exclude-source: source "${name}" is not registered.`);
  const keep = new Set<string>();
  let quarantined = 0;
  let bySource = 0;
  for await (const member of ledger.datasetMembers(parent.version)) {
    if (options.excludeQuarantined === true && member.quarantined) quarantined++;
    else if (member.source !== null && excludeSources.has(member.source)) bySource++;
    else keep.add(member.digest);
  }
  return { parent, keep, excluded: { quarantined, bySource } };
}

/**
 * Write the selected samples to `out`, each once, from the store files of the deliveries (a
 * digest is content, so any verified copy will do). Returns digest → record digest of what was
 * written; throws NOT_FOUND when a member is in no store file, leaving no output behind.
 */
export async function writeMembers(
  ledger: LedgerReader,
  selection: MemberSelection,
  out: string,
  options: WriteMembersOptions = {},
): Promise<Map<string, string>> {
  const { keep, parent } = selection;
  const deliveries = (await ledger.listDeliveries()).filter((d) => d.store !== null);
  const storeDir = storeDirOf(ledger);
  const classes = await storeClasses(deliveries.map((d) => join(storeDir, d.store ?? "")));
  const written = new Map<string, string>();
  const writer = await createWriter(out, {
    format: options.format,
    classes: classes.length > 0 ? classes : undefined,
    overwrite: options.overwrite === true,
  });
  try {
    for (const delivery of deliveries) {
      for await (const sample of readStoredDelivery(ledger, delivery)) {
        options.signal?.throwIfAborted();
        if (!keep.has(sample.digest) || written.has(sample.digest)) continue;
        await writer.write(sample);
        written.set(sample.digest, recordDigest(sample));
        options.onProgress?.(written.size, keep.size);
      }
      if (written.size === keep.size) break;
    }
    const missing = [...keep].filter((d) => !written.has(d));
    if (missing.length > 0)
      throw new AntidoteError(
        "NOT_FOUND",
        `${missing.length} sample(s) of ${parent.version} are not in the sample store ${storeDir} (first: ${missing[0]}); they were ingested elsewhere or the store was pruned.`,
      );
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  return written;
}

/**
 * The store file that already is `selection`, sample for sample and in the order a copy would
 * write: a version made by ingesting one delivery that repeats no content (its sample count is
 * the version's), not a derived one. Its samples were checked against their records at ingest,
 * and the ledger holds the file's SHA-256, so the file checked against that is the version; a
 * job copies it instead of decoding and encoding every image again (60k images: ~20 s).
 */
async function wholeStoreFile(
  ledger: LedgerReader,
  { parent, keep }: MemberSelection,
): Promise<{ file: string; sha256: string } | undefined> {
  if (parent.parent !== null || parent.transform.kind !== "ingest") return undefined;
  const delivery = (await ledger.listDeliveries()).find((d) => d.datasetVersion === parent.version);
  if (delivery?.store === null || delivery === undefined || delivery.sampleCount !== keep.size)
    return undefined;
  const evidence = await ledger.deliveryEvidence(delivery.deliveryId);
  if (evidence.storeSha256 === null) return undefined;
  return { file: join(storeDirOf(ledger), delivery.store), sha256: evidence.storeSha256 };
}

/** Copy `file` to `out`, then check the copy (which is what will be read) against `sha256`. */
async function copyChecked(file: string, sha256: string, out: string): Promise<void> {
  if (!existsSync(file))
    throw new AntidoteError("NOT_FOUND", `sample store file ${file} is missing; it was moved or pruned.`);
  await copyFile(file, out);
  if ((await sha256File(out)) !== sha256) {
    await rm(out, { force: true });
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `sample store ${file}: its SHA-256 is not the ${sha256.slice(0, 16)}… recorded at ingest — the store was modified after ingest; nothing from it is used.`,
    );
  }
}

/** One class list for the output: deliveries may each have named only the classes they held. */
async function storeClasses(files: string[]): Promise<string[]> {
  const classes = new Set<string>();
  for (const file of files)
    if (existsSync(file))
      for (const c of (await openDataset(file, { format: "parquet" })).info.classes ?? []) classes.add(c);
  return [...classes];
}

export function unknownVersion(version: string, known: DatasetVersion[]): AntidoteError {
  const list = known
    .slice(-5)
    .map((v) => v.version)
    .join(", ");
  return new AntidoteError(
    "NOT_FOUND",
    `dataset version "${version}" is not in the ledger${list ? ` (recent: ${list})` : ""}; \`antidote ledger versions\` lists them.`,
  );
}
