// Rebuilding a clean dataset from the ledger: the members of a version, minus what is
// quarantined or came from excluded sources, read back from the sample store, written in
// the format asked for, signed with the ledger's key, and recorded as a new version whose
// parent is the version it came from. The ledger, not the store, is the source of truth:
// every store file is checked against the delivery's signed events before anything from it
// is written (its digest, and each sample's content, label and annotations — see store.ts),
// so a store edited behind the ledger's back makes the export fail, never sign. Choosing the
// samples and reading them back is shared with `materializeVersion` (materialize.ts).
import { basename } from "node:path";
import { checkOutput, writeOutputFile } from "../data/atomic-output.js";
import type { DatasetFormat } from "../data/sample.js";
import type { Ledger, LedgerEventInput } from "../ledger/types.js";
import { VERSION } from "../version.js";
import { signStatementWith } from "./bundle.js";
import { buildStatement, statementDigest } from "./manifest.js";
import { selectMembers, unknownVersion, writeMembers } from "./materialize.js";
import { merkleRoot } from "./merkle.js";
import { memberEvents, versionId } from "./versions.js";
import { enforceExport } from "../policy/enforce.js";

// Other modules have long imported it from here.
export { unknownVersion } from "./materialize.js";

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
  /** Stops the export between samples (a cancelled job): nothing is written or recorded. */
  signal?: AbortSignal;
  /** Who the new version is recorded for (default: the ledger's actor). */
  actor?: string;
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
  const known = await ledger.getDatasetVersion(options.version);
  if (known === undefined) throw unknownVersion(options.version, await ledger.listDatasetVersions());
  // The curation policy in force (src/policy/), if any: required scans, allowed transforms.
  await enforceExport(ledger, known.version);
  // Both outputs are refused before any work when they exist and may not be replaced.
  const signature = `${options.out.replace(/\/+$/, "")}.sigstore.json`;
  checkOutput(signature, { overwrite: options.overwrite === true });
  const selection = await selectMembers(ledger, known.version, options);
  const { parent } = selection;
  const { quarantined, bySource } = selection.excluded;
  const excludeSources = new Set(options.excludeSources ?? []);
  const written = await writeMembers(ledger, selection, options.out, {
    format: options.format,
    overwrite: options.overwrite === true,
    ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });

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
    await ledger.append(events, options.actor !== undefined ? { actor: options.actor } : {});
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
