// Rebuilding a clean dataset from the ledger: the members of a version, minus what is
// quarantined or came from excluded sources, read back from the sample store, written in
// the format asked for, signed with the ledger's key, and recorded as a new version whose
// parent is the version it came from. The ledger, not the file, is the source of truth:
// a sample is exported only if its stored content still hashes to the digest the ledger
// holds.
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { createWriter, openDataset } from "../data/open.js";
import type { DatasetFormat } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import type { DatasetVersion, Ledger, LedgerEventInput } from "../ledger/types.js";
import { VERSION } from "../version.js";
import { signStatement } from "./bundle.js";
import { readPrivateKey } from "./keys.js";
import { buildStatement, statementDigest } from "./manifest.js";
import { merkleRoot } from "./merkle.js";
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

  // Where their content is: the store files of the deliveries, newest version first does
  // not matter — a digest is content, so any copy will do.
  const deliveries = (await ledger.listDeliveries()).filter((d) => d.store !== null);
  const storeDir = join(ledger.homeDir, "store");
  const stored = [];
  for (const delivery of deliveries) {
    const file = join(storeDir, delivery.store ?? "");
    if (existsSync(file)) stored.push(await openDataset(file, { format: "parquet" }));
  }
  // One class list for the output: deliveries may each have named only the classes they held.
  const classes = [...new Set(stored.flatMap((d) => d.info.classes ?? []))];
  const written = new Set<string>();
  const writer = await createWriter(options.out, {
    format: options.format,
    classes: classes.length > 0 ? classes : undefined,
  });
  try {
    for (const dataset of stored) {
      for await (const sample of dataset.samples()) {
        if (!keep.has(sample.digest) || written.has(sample.digest)) continue;
        await writer.write(sample);
        written.add(sample.digest);
        options.onProgress?.(written.size, keep.size);
      }
      if (written.size === keep.size) break;
    }
    await writer.close();
  } catch (e) {
    await rm(options.out, { recursive: true, force: true });
    throw e;
  }
  const missing = [...keep].filter((d) => !written.has(d));
  if (missing.length > 0) {
    await rm(options.out, { recursive: true, force: true });
    throw new AntidoteError(
      "NOT_FOUND",
      `${missing.length} sample(s) of ${parent.version} are not in the sample store ${storeDir} (first: ${missing[0]}); they were ingested elsewhere or the store was pruned.`,
    );
  }

  const root = merkleRoot([...written].sort());
  const parameters = {
    excludeQuarantined: options.excludeQuarantined === true,
    excludeSources: [...excludeSources].sort(),
    format: options.format ?? null,
  };
  const version = versionId(options.name ?? parent.name, { parent: parent.version, root, parameters });

  const statement = await buildStatement(options.out);
  const key = await readPrivateKey(ledger.keyPath);
  const signature = `${options.out.replace(/\/+$/, "")}.sigstore.json`;
  await writeFile(signature, JSON.stringify(signStatement(statement, key), null, 2) + "\n");

  const alreadyRecorded = (await ledger.getDatasetVersion(version)) !== undefined;
  if (!alreadyRecorded) {
    const digests = [...written].sort();
    const events: LedgerEventInput[] = [
      {
        kind: "dataset.version-created",
        payload: {
          version,
          name: options.name ?? parent.name,
          merkleRoot: root,
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
