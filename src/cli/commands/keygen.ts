// `antidote keygen`: make an Ed25519 key pair for signing deliveries. The private key is
// written owner-only and never overwritten by accident: losing it means re-registering a key
// with every receiver, and overwriting it silently would do exactly that.
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { generateSigningKey } from "../../provenance/keys.js";
import { parseFlags } from "../options.js";

export interface KeygenOptions {
  /** Base name: NAME.key and NAME.pub are written (a trailing .key or .pub is ignored). */
  out: string;
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
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description("Create an Ed25519 key pair for signing deliveries (NAME.key private, NAME.pub public)")
    .requiredOption("--out <name>", "base name of the key files: writes NAME.key (mode 0600) and NAME.pub")
    .option("--force", "overwrite existing key files")
    .option("--json", "print the key id and paths as JSON")
    .addHelpText(
      "after",
      `
Examples:
  antidote keygen --out keys/acme         writes keys/acme.key and keys/acme.pub, prints the key id
  antidote sign data.parquet --key keys/acme.key --out data.sigstore.json

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
  const keys = generateSigningKey();
  await mkdir(dirname(privateKeyPath), { recursive: true });
  await writeFile(privateKeyPath, keys.privateKeyPem, { mode: 0o600, flag: options.force ? "w" : "wx" });
  // `mode` applies only when the file is created; an overwritten key keeps its old mode otherwise.
  await chmod(privateKeyPath, 0o600);
  await writeFile(publicKeyPath, keys.publicKeyPem, { flag: options.force ? "w" : "wx" });
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
