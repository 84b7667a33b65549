// `antidote keygen`: make a key pair — Ed25519 for signing deliveries and telemetry, ECDSA
// (P-256, P-384) for OpenSSF model signing, whose verifiers take EC keys only. The private key is
// written owner-only and never overwritten by accident: losing it means re-registering a key
// with every receiver, and overwriting it silently would do exactly that.
import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { z } from "zod";
import { checkOutput, writeOutputFile } from "../../data/atomic-output.js";
import { AntidoteError } from "../../errors.js";
import { generateSigningKey, type KeyAlgorithm } from "../../provenance/keys.js";
import { parseFlags } from "../options.js";

export interface KeygenOptions {
  /** Base name: NAME.key and NAME.pub are written (a trailing .key or .pub is ignored). */
  out: string;
  /** Default ed25519. */
  algorithm?: KeyAlgorithm;
  force?: boolean;
  json?: boolean;
}

export interface KeygenResult {
  keyId: string;
  privateKeyPath: string;
  publicKeyPath: string;
}

const keygenFlags = z.object({
  out: z.string().min(1, "give a base name, e.g. --out acme"),
  algorithm: z.enum(["ed25519", "ecdsa-p256", "ecdsa-p384"]).optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description("Create a key pair for signing deliveries or models (NAME.key private, NAME.pub public)")
    .requiredOption("--out <name>", "base name of the key files: writes NAME.key (mode 0600) and NAME.pub")
    .option(
      "--algorithm <name>",
      "ed25519 (deliveries, telemetry, federated updates) or ecdsa-p256 / ecdsa-p384 (`antidote model sign`)",
      "ed25519",
    )
    .option("--force", "replace existing key files (the old private key is lost)")
    .option("--json", "print the key id and paths as JSON")
    .addHelpText(
      "after",
      `
Examples:
  antidote keygen --out keys/acme         writes keys/acme.key and keys/acme.pub, prints the key id
  antidote sign data.parquet --key keys/acme.key --out data.sigstore.json
  antidote keygen --out keys/publisher --algorithm ecdsa-p256
  antidote model sign model/ --key keys/publisher.key     OpenSSF model signing (model/model.sig)

Give NAME.pub to whoever receives your data (\`antidote source add acme --kind supplier --key acme.pub\`);
keep NAME.key secret. The key id is the SHA-256 of the public key (SPKI DER).`,
    )
    .action(async (flags: Record<string, unknown>) => {
      await runKeygen(parseFlags(keygenFlags, flags));
    });
}

export async function runKeygen(
  options: KeygenOptions,
  write: (text: string) => void = (t) => void process.stdout.write(t),
): Promise<KeygenResult> {
  const base = options.out.replace(/\.(key|pub)$/, "");
  const privateKeyPath = `${base}.key`;
  const publicKeyPath = `${base}.pub`;
  if (!options.force) {
    for (const path of [privateKeyPath, publicKeyPath]) {
      if (await exists(path))
        throw new AntidoteError("USAGE", `${path} already exists; pass --force to replace the key pair.`);
    }
  }
  const keys = generateSigningKey(options.algorithm ?? "ed25519");
  // Each file appears whole (a key cut short by a crash would be a key that never loads), the
  // private one owner-only from its first byte; the check above is repeated at the rename's doorstep.
  const guard = { overwrite: options.force === true };
  checkOutput(privateKeyPath, guard);
  checkOutput(publicKeyPath, guard);
  await writeOutputFile(privateKeyPath, keys.privateKeyPem, { ...guard, mode: 0o600 });
  await writeOutputFile(publicKeyPath, keys.publicKeyPem, guard);
  const result = { keyId: keys.keyId, privateKeyPath, publicKeyPath };
  if (options.json) write(JSON.stringify(result, null, 2) + "\n");
  else
    write(
      `key id ${keys.keyId}\n` +
        `  private key ${privateKeyPath} (keep it secret)\n` +
        `  public key  ${publicKeyPath} (give it to your receivers)\n`,
    );
  return result;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
