// Rebuilding a clean dataset from the ledger: the members of a version, minus what is
// quarantined or came from excluded sources, read back from the sample store, written in
// the format asked for, signed with the ledger's key, and recorded as a new version whose
// parent is the version it came from. The ledger, not the store, is the source of truth:
// every store file is checked against the delivery's signed events before anything from it
// is written (its digest, and each sample's content, label and annotations — see store.ts),
// so a store edited behind the ledger's back makes the export fail, never sign.
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { checkOutput, writeOutputFile } from "../data/atomic-output.js";
import { createWriter, openDataset } from "../data/open.js";
import type { DatasetFormat } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { recordDigest } from "../ledger/chain.js";
import type { DatasetVersion, Ledger, LedgerEventInput } from "../ledger/types.js";
import { VERSION } from "../version.js";
import { signStatementWith } from "./bundle.js";
import { buildStatement, statementDigest } from "./manifest.js";
import { merkleRoot } from "./merkle.js";
import { readStoredDelivery, storeDir as storeDirOf } from "./store.js";
import { memberEvents, versionId } from "./versions.js";

export interface ExportOptions {
  /** The dataset version to export from. */
  version: string;
  out: string;
  format?: DatasetFormat;
  excludeQuarantined?: boolean;
  excludeSources?: string[];
  /** Name of the new version (default: the parent's name). */
  name?: string;
  /** Replace an existing output (and its .sigstore.json); refused otherwise. */
  overwrite?: boolean;
  onProgress?: (written: number, total: number) => void;
}

export interface ExportResult {
  version: string;
  parent: string;
  out: string;
  signature: string;
  written: number;
  excluded: { quarantined: number; bySource: number };
  merkleRoot: string;
  /** True when an identical export was already recorded: the file was rewritten, the ledger not. */
  alreadyRecorded: boolean;
}

export async function exportVersion(ledger: Ledger, options: ExportOptions): Promise<ExportResult> {
  const parent = await ledger.getDatasetVersion(options.version);
  if (parent === undefined) throw unknownVersion(options.version, await ledger.listDatasetVersions());
  // Both outputs are refused before any work when they exist and may not be replaced.
  const signature = `${options.out.replace(/\/+$/, "")}.sigstore.json`;
  checkOutput(signature, { overwrite: options.overwrite === true });
  const excludeSources = new Set(options.excludeSources ?? []);
  for (const name of excludeSources)
    if ((await ledger.getSource(name)) === undefined)
      throw new AntidoteError("SOURCE_UNKNOWN", `--exclude-source: source "${name}" is not registered.`);

  // Which digests go out: decided from the ledger alone.
  const keep = new Set<string>();
  let quarantined = 0;
  let bySource = 0;
  for await (const member of ledger.datasetMembers(parent.version)) {
    if (options.excludeQuarantined === true && member.quarantined) quarantined++;
    else if (member.source !== null && excludeSources.has(member.source)) bySource++;
    else keep.add(member.digest);
  }

  // Where their content is: the store files of the deliveries — a digest is content, so any
  // verified copy will do. Each file is checked against its delivery's events as it is read.
  const deliveries = (await ledger.listDeliveries()).filter((d) => d.store !== null);
  const storeDir = storeDirOf(ledger);
  const classes = await storeClasses(deliveries.map((d) => join(storeDir, d.store ?? "")));
  const written = new Map<string, string>();
  const writer = await createWriter(options.out, {
    format: options.format,
    classes: classes.length > 0 ? classes : undefined,
    overwrite: options.overwrite === true,
  });
  try {
    for (const delivery of deliveries) {
      for await (const sample of readStoredDelivery(ledger, delivery)) {
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

  const root = merkleRoot([...written.keys()].sort());
  // The version's identity covers the labels written, not only the contents.
  const recordsRoot = merkleRoot([...written.values()].sort());
  const parameters = {
    excludeQuarantined: options.excludeQuarantined === true,
    excludeSources: [...excludeSources].sort(),
    format: options.format ?? null,
  };
  const version = versionId(options.name ?? parent.name, {
    parent: parent.version,
    root,
    recordsRoot,
    parameters,
  });

  const statement = await buildStatement(options.out);
  // Checked against --force up front; the dataset it signs was just written, so replace.
  await writeOutputFile(
    signature,
    JSON.stringify(await signStatementWith(statement, ledger.signer), null, 2) + "\n",
    {
      overwrite: true,
    },
  );

  const alreadyRecorded = (await ledger.getDatasetVersion(version)) !== undefined;
  if (!alreadyRecorded) {
    const digests = [...written.keys()].sort();
    const events: LedgerEventInput[] = [
      {
        kind: "dataset.version-created",
        payload: {
          version,
          name: options.name ?? parent.name,
          merkleRoot: root,
          recordsRoot,
          parent: parent.version,
          sampleCount: digests.length,
          transform: {
            kind: "export",
            tool: "antidote",
            toolVersion: VERSION,
            parameters: { ...parameters, out: basename(options.out) },
            inputDigests: [parent.merkleRoot],
            outputDigests: [root, statementDigest(statement)],
          },
        },
      },
    ];
    events.push(...memberEvents(version, digests));
    await ledger.append(events);
  }
  return {
    version,
    parent: parent.version,
    out: options.out,
    signature,
    written: written.size,
    excluded: { quarantined, bySource },
    merkleRoot: root,
    alreadyRecorded,
  };
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
