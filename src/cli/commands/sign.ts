// `antidote sign`: the supplier's side of a delivery. Hashes every file (all cores) and, when
// the delivery is a dataset, every sample, and writes a Sigstore bundle whose DSSE envelope
// signs the in-toto statement listing them. The samples go to a manifest file beside the
// bundle (`x.sigstore.json` → `x.sigstore.samples`, a subject of the statement), so the
// bundle stays a few KB at any size; --inline-samples writes the older v1 form that lists
// them in the statement. The receiver runs `antidote verify` or `ingest`.
import { stat } from "node:fs/promises";
import { relative, resolve, isAbsolute } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { checkOutput, writeOutputFile } from "../../data/atomic-output.js";
import type { OpenOptions } from "../../data/open.js";
import { AntidoteError } from "../../errors.js";
import { signStatement } from "../../provenance/bundle.js";
import { readPrivateKey } from "../../provenance/keys.js";
import {
  buildStatement,
  deliveredFiles,
  statementDigest,
  type ProgressPhase,
} from "../../provenance/manifest.js";
import { sampleManifestPathFor } from "../../provenance/sample-manifest.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar, type ProgressBar } from "../progress.js";

export interface SignOptions {
  target: string;
  /** The private key (NAME.key from `antidote keygen`). */
  key: string;
  /** Where to write the Sigstore bundle. */
  out: string;
  threads?: number;
  /** Replace an existing bundle (and sample manifest) at `out`. */
  force?: boolean;
  /** List the samples in the statement (v1) instead of a manifest file beside the bundle. */
  inlineSamples?: boolean;
  json?: boolean;
  readOptions?: OpenOptions;
  /** Draw progress bars on a terminal (default: unless --json). */
  progress?: boolean;
}

export interface SignResult {
  out: string;
  keyId: string;
  files: number;
  bytes: number;
  /** Samples listed in the statement or its manifest; null when the delivery is not read as a dataset. */
  samples: number | null;
  /** The sample manifest written beside the bundle; null when none was (inline or not a dataset). */
  sampleManifest: string | null;
  /** Why the delivery was not read as a dataset, when it was not. */
  notDataset: string | null;
  merkleRoot: string;
  sampleMerkleRoot: string | null;
  statementDigest: string;
}

export const threadsFlag = z.coerce.number().int().min(1).max(1024).optional();

const signFlags = z.object({
  key: z.string().min(1),
  out: z.string().min(1),
  threads: threadsFlag,
  force: z.boolean().optional(),
  inlineSamples: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerSign(program: Command): void {
  addReadOptions(
    program
      .command("sign")
      .argument(
        "<target>",
        "what you deliver: a file, a directory (every file in it), or a bundled dataset name",
      )
      .description(
        "Sign a delivery: hash every file and sample and write a Sigstore bundle (DSSE, in-toto statement)",
      )
      .requiredOption("--key <NAME.key>", "your private key, made by `antidote keygen`")
      .requiredOption("--out <bundle.json>", "where to write the signature (e.g. delivery.sigstore.json)")
      .option("--threads <n>", "hashing threads (default: every core)")
      .option("--force", "replace an existing bundle (and sample manifest) at --out")
      .option(
        "--inline-samples",
        "list every sample in the signed statement (v1 form, ~92 bytes a sample) instead of a manifest file beside the bundle",
      )
      .option("--json", "print the result as JSON"),
  )
    .addHelpText(
      "after",
      `
Examples:
  antidote keygen --out acme
  antidote sign out/fm.parquet --key acme.key --out fm.sigstore.json
  antidote sign deliveries/2026-05/ --key acme.key --out 2026-05.sigstore.json     every file under the directory

The statement lists each file's SHA-256 and their Merkle root. When the delivery reads as a
dataset, every sample's id and content digest go to a manifest file beside the bundle
(fm.sigstore.json → fm.sigstore.samples), itself a signed subject; the statement keeps only
its count and Merkle root. Send the data, the bundle, its .samples file and (once) acme.pub;
the receiver checks them with \`antidote verify\` or \`antidote ingest\`.
Write the bundle outside a delivered directory: a file added afterwards fails verification.`,
    )
    .action(async (target: string, flags: Record<string, unknown>) => {
      const f = parseFlags(signFlags, flags);
      await runSign({ target, ...f, readOptions: readOptionsFrom(flags) });
    });
}

export async function runSign(
  options: SignOptions,
  write: (text: string) => void = (t) => void process.stdout.write(t),
): Promise<SignResult> {
  await refuseOutputInside(options.target, options.out);
  const guard = { overwrite: options.force === true, inputs: [options.target, options.key] };
  checkOutput(options.out, guard); // before hashing: minutes of work must not end in a refusal
  const manifestPath = options.inlineSamples === true ? undefined : sampleManifestPathFor(options.out);
  if (manifestPath !== undefined) checkOutput(manifestPath, guard);
  const key = await readPrivateKey(options.key);
  const bars = phaseBars(options.progress ?? !options.json);
  let bytes = 0;
  let notDataset: string | null = null;
  const statement = await buildStatement(options.target, {
    ...(options.readOptions !== undefined && { readOptions: options.readOptions }),
    ...(options.threads !== undefined && { threads: options.threads }),
    onProgress: (phase, done, total) => {
      if (phase === "files") bytes = total;
      bars.update(phase, done, total);
    },
    onNotDataset: (e) => (notDataset = e.message),
    ...(manifestPath !== undefined && {
      sampleManifest: { path: manifestPath, force: options.force === true, inputs: [options.key] },
    }),
  }).finally(() => bars.stop());

  const bundle = signStatement(statement, key);
  await writeOutputFile(options.out, JSON.stringify(bundle, null, 2) + "\n", guard);

  const p = statement.predicate;
  const result: SignResult = {
    out: options.out,
    keyId: key.keyId,
    files: deliveredFiles(statement).length,
    bytes,
    samples: p.sampleCount,
    sampleManifest: p.sampleManifest != null && manifestPath !== undefined ? manifestPath : null,
    notDataset,
    merkleRoot: p.merkleRoot,
    sampleMerkleRoot: p.sampleMerkleRoot,
    statementDigest: statementDigest(statement),
  };
  if (options.json) write(JSON.stringify(result, null, 2) + "\n");
  else {
    const samples =
      result.samples === null
        ? `no sample list (${notDataset ?? "not a dataset"})`
        : `${result.samples.toLocaleString("en-US")} samples`;
    write(
      `signed ${result.files.toLocaleString("en-US")} file(s), ${(bytes / 1e6).toFixed(1)} MB, ${samples}\n` +
        `  Merkle root ${result.merkleRoot}\n` +
        (result.sampleMerkleRoot === null ? "" : `  sample Merkle root ${result.sampleMerkleRoot}\n`) +
        `  key id ${result.keyId}\n` +
        `  wrote ${result.out}\n` +
        (result.sampleManifest === null
          ? ""
          : `  wrote ${result.sampleManifest} (the sample manifest: send it with the bundle)\n`),
    );
  }
  return result;
}

/** A bar per phase (bytes while hashing files, then samples), drawn only on a terminal. */
export function phaseBars(enabled: boolean): {
  update: (phase: ProgressPhase, done: number, total: number) => void;
  stop: () => void;
} {
  let files: ProgressBar | undefined;
  let samples: ProgressBar | undefined;
  const stopFiles = () => {
    files?.stop();
    files = undefined;
  };
  return {
    update(phase, done, total) {
      if (phase === "files") {
        files ??= progressBar({ label: "hashing files", unit: "bytes", total, enabled });
        files.update(done);
      } else {
        stopFiles();
        samples ??= progressBar({
          label: "reading samples",
          unit: "samples",
          total: total || undefined,
          enabled,
        });
        samples.update(done);
      }
    },
    stop() {
      stopFiles();
      samples?.stop();
      samples = undefined;
    },
  };
}

// A signature written into the directory it signs would be a file the manifest does not list.
async function refuseOutputInside(target: string, out: string): Promise<void> {
  const info = await stat(target).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) return;
  const rel = relative(resolve(target), resolve(out));
  if (rel !== "" && !rel.startsWith("..") && !isAbsolute(rel))
    throw new AntidoteError(
      "USAGE",
      `--out ${out} is inside the delivered directory ${target}; write the signature next to it instead.`,
    );
}
