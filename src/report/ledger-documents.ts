// The two interoperable documents Antidote writes about what its ledger holds — the
// Croissant metadata of a dataset version and the CycloneDX AI-BOM of a model — built
// straight from a ledger, for the CLI, the server and the evidence pack alike. The data
// files a Croissant document names are hashed here and checked to hold exactly the
// version's samples (their Merkle root is the one the ledger recorded): metadata that
// vouches for the wrong bytes is worse than none.
import { createHash } from "node:crypto";
import { readdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { checkOutput, stageOutput, type OutputOptions } from "../data/atomic-output.js";
import { openDataset } from "../data/open.js";
import { AntidoteError } from "../errors.js";
import type { LedgerReader } from "../ledger/types.js";
import { merkleRoot } from "../provenance/merkle.js";
import { sha256File } from "../provenance/model.js";
import type { ModelBomOptions } from "./bom.js";
import {
  buildCroissant,
  sampleProvenanceCsvLine,
  SAMPLE_PROVENANCE_HEADER,
  type CroissantFile,
  type SampleProvenanceRow,
} from "./croissant.js";
import { datasetProvenance, modelBomInput, sampleProvenanceRows } from "./from-ledger.js";

/** Without a file to write the per-sample CSV beside, at most this many rows are inlined. */
export const MAX_INLINE_SAMPLES = 10_000;

export interface CroissantFromLedgerOptions {
  /** Dataset name (default: the version's name). */
  name?: string;
  description?: string;
  license?: string;
  creator?: string;
  citeAs?: string;
  url?: string;
  /**
   * Files or directories holding an exported copy of the version, to list in the metadata
   * with their SHA-256; they must hold exactly the version's samples.
   */
  data?: readonly string[];
  /**
   * Where the metadata file will be: file paths in it are relative to its folder, and the
   * per-sample provenance CSV is written beside it. Without it, paths are relative to the
   * working directory and the per-sample rows are carried inline.
   */
  out?: string;
  timestamp?: Date;
}

export interface CroissantDocument {
  document: object;
  /** The per-sample provenance CSV the document names, when it is not inline. */
  samplesCsv?: { path: string; text: string };
}

/** Build the Croissant metadata of a dataset version from the ledger. */
export async function croissantFromLedger(
  ledger: LedgerReader,
  versionId: string,
  options: CroissantFromLedgerOptions = {},
): Promise<CroissantDocument> {
  const provenance = await datasetProvenance(ledger, versionId);
  const { version } = provenance;
  const base = options.out === undefined ? process.cwd() : dirname(resolve(options.out));
  const files = await describeData(options.data ?? [], base);
  if (files.length > 0) await checkDataHoldsVersion(options.data ?? [], version.version, version.merkleRoot);

  const rows: SampleProvenanceRow[] = [];
  for await (const row of sampleProvenanceRows(ledger, provenance)) {
    rows.push(row);
    if (options.out === undefined && rows.length > MAX_INLINE_SAMPLES)
      throw new AntidoteError(
        "USAGE",
        `croissant: dataset version ${version.version} has ${version.sampleCount} samples, more than ${MAX_INLINE_SAMPLES} to carry inline; name an output file so the per-sample provenance is written beside it as CSV.`,
      );
  }
  let samplesCsv: CroissantDocument["samplesCsv"];
  let samples: { file: CroissantFile } | { rows: SampleProvenanceRow[] } = { rows };
  if (options.out !== undefined) {
    const text = SAMPLE_PROVENANCE_HEADER + rows.map(sampleProvenanceCsvLine).join("");
    const path = samplesCsvPath(options.out);
    const name = basename(path);
    samplesCsv = { path, text };
    samples = {
      file: { path: name, sha256: sha256(text), size: Buffer.byteLength(text) },
    };
  }
  const document = buildCroissant(
    {
      ...provenance,
      name: options.name ?? version.name,
      files,
      samples,
      ...pick(options, ["description", "license", "creator", "citeAs", "url"]),
    },
    options.timestamp !== undefined ? { timestamp: options.timestamp } : {},
  );
  return samplesCsv === undefined ? { document } : { document, samplesCsv };
}

/**
 * Write the Croissant metadata to `out` and its per-sample provenance CSV beside it, both
 * or neither (one staged output, the CSV its companion).
 */
export async function writeCroissant(
  ledger: LedgerReader,
  versionId: string,
  out: string,
  options: Omit<CroissantFromLedgerOptions, "out"> & OutputOptions = {},
): Promise<{ out: string; samplesCsv: string }> {
  const stage = {
    overwrite: options.overwrite === true,
    inputs: [...(options.inputs ?? []), ...(options.data ?? [])],
    companions: [samplesCsvPath(out)],
  };
  // Refused before the ledger is read, not after.
  checkOutput(out, stage);
  const { document, samplesCsv } = await croissantFromLedger(ledger, versionId, { ...options, out });
  if (samplesCsv === undefined)
    throw new AntidoteError("INTERNAL", `croissant: no per-sample CSV was built for ${out}.`);
  const staged = await stageOutput(out, stage);
  try {
    await writeFile(join(dirname(staged.path), basename(samplesCsv.path)), samplesCsv.text);
    await writeFile(staged.path, JSON.stringify(document, null, 2) + "\n");
    await staged.commit();
  } catch (e) {
    await staged.abort();
    throw e;
  }
  return { out, samplesCsv: samplesCsv.path };
}

/** Build the AI-BOM (CycloneDX 1.6, schema-validated) of a registered model from the ledger. */
export async function bomFromLedger(
  ledger: LedgerReader,
  digestOrPrefix: string,
  options: ModelBomOptions = {},
): Promise<object> {
  // The CycloneDX library is loaded only by those who build a BOM.
  const { buildModelBom } = await import("./bom.js");
  return buildModelBom(await modelBomInput(ledger, digestOrPrefix), options);
}

/** Where the per-sample provenance CSV of metadata written to `out` goes: beside it. */
export function samplesCsvPath(out: string): string {
  return join(dirname(out), `${basename(out).replace(/\.json(ld)?$/i, "")}.samples.csv`);
}

async function describeData(paths: readonly string[], base: string): Promise<CroissantFile[]> {
  const files: CroissantFile[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (info === undefined)
      throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such exported data file or directory.`);
    const found = info.isDirectory() ? await listFiles(path) : [path];
    for (const file of found) {
      const name = relative(base, resolve(file)).split(sep).join("/");
      files.push({ path: name, sha256: await sha256File(file), size: (await stat(file)).size });
    }
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else if (entry.isFile() && !entry.name.startsWith(".")) out.push(path);
  }
  return out;
}

// The data must hold exactly the version's samples: the Merkle root over their sorted
// distinct digests must be the version's.
async function checkDataHoldsVersion(paths: readonly string[], version: string, root: string): Promise<void> {
  const digests = new Set<string>();
  for (const path of paths) {
    const dataset = await openDataset(path);
    for await (const sample of dataset.samples()) digests.add(sample.digest);
  }
  const found = merkleRoot([...digests].sort());
  if (found !== root)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${paths.join(", ")}: the ${digests.size} samples read have Merkle root ${found}, not ${root} of dataset version ${version}; this is not an export of that version.`,
    );
}

function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function pick<T extends object, K extends keyof T>(object: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key];
  return out;
}
