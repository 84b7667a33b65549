// `antidote verify`: the receiver's check of a signed delivery without touching the ledger —
// the signature against the given public key(s), then every file and sample digest. Exit 0
// when intact; otherwise the error's exit code (6 for any verification failure) and the
// first mismatching file or sample named.
import type { Command } from "commander";
import { z } from "zod";
import type { OpenOptions } from "../../data/open.js";
import { isAntidoteError } from "../../errors.js";
import { verifySignedDelivery } from "../../provenance/delivery.js";
import { readPublicKey } from "../../provenance/keys.js";
import { exitCodeFor } from "../exit-codes.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { phaseBars, threadsFlag } from "./sign.js";

export interface VerifyOptions {
  target: string;
  /** The Sigstore bundle or DSSE envelope made by `antidote sign`. */
  signature: string;
  /** Trusted public keys (NAME.pub): the signature must be by one of them. */
  keys: string[];
  /** The sample manifest of a v2 bundle (default: beside the signature, `x.json` → `x.samples`). */
  samples?: string;
  threads?: number;
  json?: boolean;
  readOptions?: OpenOptions;
  progress?: boolean;
}

export interface VerifyResult {
  ok: true;
  target: string;
  keyId: string;
  statementDigest: string;
  files: number;
  bytes: number;
  samples: number;
  merkleRoot: string;
  sampleMerkleRoot: string | null;
  createdAt: string;
  signedWith: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const verifyFlags = z.object({
  signature: z.string().min(1),
  key: z.array(z.string().min(1)).min(1, "give at least one trusted public key"),
  threads: threadsFlag,
  samples: z.string().min(1).optional(),
  json: z.boolean().optional(),
});

export function registerVerify(program: Command): void {
  addReadOptions(
    program
      .command("verify")
      .argument("<target>", "the delivery as received: a file, a directory, or a bundled dataset name")
      .description(
        "Check a signed delivery: the signature against trusted public keys, then every file and sample digest",
      )
      .requiredOption(
        "--signature <bundle.json>",
        "the Sigstore bundle (or DSSE envelope) from `antidote sign`",
      )
      .requiredOption(
        "--key <NAME.pub>",
        "a trusted public key (repeatable: any one of them may have signed)",
        collect,
      )
      .option("--threads <n>", "hashing threads (default: every core)")
      .option(
        "--samples <file>",
        "the sample manifest the bundle names (default: beside it, x.sigstore.json → x.sigstore.samples)",
      )
      .option("--json", "print the result (or the failure) as JSON"),
  )
    .addHelpText(
      "after",
      `
Examples:
  antidote verify fm.parquet --signature fm.sigstore.json --key acme.pub
  antidote verify deliveries/2026-05/ --signature 2026-05.sigstore.json --key acme.pub --key acme-old.pub
  antidote verify fm.parquet --signature fm.sigstore.json --key acme.pub --json

Exit 0 when the delivery is intact and signed by a trusted key. Exit 6 when it is not:
KEY_UNTRUSTED (signed by another key), SIGNATURE_INVALID (the statement was altered) or
DIGEST_MISMATCH (the first file or sample that differs, is missing, or is not in the manifest).
Exit 3 for an unreadable key, signature or data file. To record the delivery, use \`antidote ingest\`.`,
    )
    .action(async (target: string, flags: Record<string, unknown>) => {
      const f = parseFlags(verifyFlags, flags);
      await runVerify({
        target,
        signature: f.signature,
        keys: f.key,
        threads: f.threads,
        ...(f.samples !== undefined && { samples: f.samples }),
        json: f.json,
        readOptions: readOptionsFrom(flags),
      });
    });
}

/** Verify; resolves with the result when intact, throws the AntidoteError that says why not. */
export async function runVerify(
  options: VerifyOptions,
  write: (text: string) => void = (t) => void process.stdout.write(t),
): Promise<VerifyResult> {
  try {
    const trusted = await Promise.all(options.keys.map((k) => readPublicKey(k)));
    const bars = phaseBars(options.progress ?? !options.json);
    let bytes = 0;
    const verified = await verifySignedDelivery(options.target, options.signature, trusted, {
      ...(options.readOptions !== undefined && { readOptions: options.readOptions }),
      ...(options.threads !== undefined && { threads: options.threads }),
      ...(options.samples !== undefined && { sampleManifest: options.samples }),
      keepSamples: false,
      onProgress: (phase, done, total) => {
        if (phase === "files") bytes = total;
        bars.update(phase, done, total);
      },
    }).finally(() => bars.stop());
    const p = verified.statement.predicate;
    const result: VerifyResult = {
      ok: true,
      target: options.target,
      keyId: verified.keyId ?? "",
      statementDigest: verified.statementDigest,
      files: verified.files.length,
      bytes,
      samples: verified.sampleCount,
      merkleRoot: p.merkleRoot,
      sampleMerkleRoot: p.sampleMerkleRoot,
      createdAt: p.createdAt,
      signedWith: `${p.tool.name} ${p.tool.version}`,
    };
    if (options.json) write(JSON.stringify(result, null, 2) + "\n");
    else
      write(
        `OK: ${options.target} is intact — ${result.files.toLocaleString("en-US")} file(s), ` +
          `${(bytes / 1e6).toFixed(1)} MB, ${result.samples.toLocaleString("en-US")} samples match the signed statement\n` +
          `  signed by key ${result.keyId} at ${result.createdAt}\n` +
          `  Merkle root ${result.merkleRoot}\n` +
          `  statement digest ${result.statementDigest}\n`,
      );
    return result;
  } catch (e) {
    // Scripts reading --json get the failure on stdout too; the error still sets the exit code.
    if (options.json && isAntidoteError(e))
      write(
        JSON.stringify(
          {
            ok: false,
            target: options.target,
            code: e.code,
            exitCode: exitCodeFor(e.code),
            message: e.message,
          },
          null,
          2,
        ) + "\n",
      );
    throw e;
  }
}
