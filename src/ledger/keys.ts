// Ed25519 keys: key ids, the ledger's own checkpoint key, and checkpoint signatures.
//
// The ledger key is what makes history hard to rewrite, so where it lives matters. Three
// places, in order of preference for a team: a signer the caller supplies (a KMS or a
// PKCS#11 token behind `LedgerSigner`, never leaving its hardware), a PEM in the environment
// (`ANTIDOTE_LEDGER_KEY`, e.g. from a CI secret), or a key file — by default beside the
// database, optionally encrypted (PKCS#8 with `ANTIDOTE_LEDGER_KEY_PASSPHRASE`). A key is
// created only for a ledger that has no events yet; an existing ledger whose key is missing
// or different is refused, never silently re-keyed (see index.ts).
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { AntidoteError } from "../errors.js";
import { checkpointMessage, sha256Hex } from "./chain.js";
import type { Checkpoint } from "./types.js";

/** The environment variable holding the ledger's private key as PEM (takes precedence over the file). */
export const LEDGER_KEY_ENV = "ANTIDOTE_LEDGER_KEY";
/** The passphrase of an encrypted ledger key (file or environment). */
export const LEDGER_KEY_PASSPHRASE_ENV = "ANTIDOTE_LEDGER_KEY_PASSPHRASE";

/** A key id: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER. */
export function keyIdOf(publicKey: string | KeyObject): string {
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  return sha256Hex(key.export({ type: "spki", format: "der" }));
}

/**
 * What signs the ledger's checkpoints and exports. Implement it to keep the key in a KMS or
 * a hardware token: Antidote only ever asks for Ed25519 signatures over short messages.
 */
export interface LedgerSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;
  /** Ed25519 signature (64 bytes) over `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** Where a ledger key was found, for messages: never the key itself. */
export type KeyOrigin = { kind: "file"; path: string } | { kind: "env" } | { kind: "signer" };

export function describeOrigin(origin: KeyOrigin): string {
  if (origin.kind === "file") return origin.path;
  if (origin.kind === "env") return `$${LEDGER_KEY_ENV}`;
  return "the configured signer";
}

/** A signer over an in-memory private key. */
export function signerFromPrivateKey(privateKey: KeyObject): LedgerSigner {
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    sign: (message) => Promise.resolve(sign(null, message, privateKey)),
  };
}

/** Parse a PEM private key (encrypted PKCS#8 needs `passphrase`); `what` names it in errors. */
export function parseLedgerPrivateKey(pem: string, what: string, passphrase?: string): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
  } catch (e) {
    const encrypted = pem.includes("ENCRYPTED PRIVATE KEY");
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      encrypted && passphrase === undefined
        ? `${what}: the ledger key is encrypted; set $${LEDGER_KEY_PASSPHRASE_ENV} to its passphrase.`
        : `${what}: not a readable PEM private key${encrypted ? " (wrong passphrase?)" : ""}.`,
      { cause: e },
    );
  }
  if (privateKey.asymmetricKeyType !== "ed25519")
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `${what}: the ledger key must be Ed25519, found ${privateKey.asymmetricKeyType ?? "unknown"}.`,
    );
  return privateKey;
}

/** Read the ledger key from the environment or `keyPath`; undefined when neither has one. */
export function readLedgerKey(keyPath: string): { signer: LedgerSigner; origin: KeyOrigin } | undefined {
  const passphrase = process.env[LEDGER_KEY_PASSPHRASE_ENV] || undefined;
  const fromEnv = process.env[LEDGER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "")
    return {
      signer: signerFromPrivateKey(parseLedgerPrivateKey(fromEnv, `$${LEDGER_KEY_ENV}`, passphrase)),
      origin: { kind: "env" },
    };
  let pem: string;
  try {
    pem = readFileSync(keyPath, "utf8");
  } catch (e) {
    if (isCode(e, "ENOENT")) return undefined;
    throw unreadable(keyPath, e);
  }
  return {
    signer: signerFromPrivateKey(parseLedgerPrivateKey(pem, keyPath, passphrase)),
    origin: { kind: "file", path: keyPath },
  };
}

/**
 * Create the key file of a new ledger (mode 0600, encrypted when a passphrase is set). An
 * exclusive link into place means two processes creating a fresh ledger at once end up with
 * one key; the loser reads the winner's.
 */
export function createLedgerKeyFile(keyPath: string): LedgerSigner {
  mkdirSync(dirname(keyPath), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("ed25519");
  const passphrase = process.env[LEDGER_KEY_PASSPHRASE_ENV] || undefined;
  writePrivateKeyFile(keyPath, privateKey, passphrase, { exclusive: true });
  const read = readLedgerKey(keyPath);
  if (read === undefined) throw unreadable(keyPath, new Error("vanished after creation"));
  return read.signer;
}

/** Write `privateKey` to `path` whole (0600) or not at all; `exclusive` refuses an existing file. */
export function writePrivateKeyFile(
  path: string,
  privateKey: KeyObject,
  passphrase: string | undefined,
  { exclusive }: { exclusive: boolean },
): void {
  const pem = privateKey
    .export(
      passphrase === undefined
        ? { type: "pkcs8", format: "pem" }
        : { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase },
    )
    .toString();
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    writeFileSync(temp, pem, { mode: 0o600, flag: "wx" });
    if (exclusive) linkSync(temp, path);
    else writeFileSync(path, readFileSync(temp), { mode: 0o600 });
  } catch (e) {
    if (!(exclusive && isCode(e, "EEXIST"))) throw unreadable(path, e);
  } finally {
    rmSync(temp, { force: true });
  }
}

export async function signCheckpoint(
  signer: LedgerSigner,
  head: { seq: number; hash: string; at: string; root: string },
): Promise<Checkpoint> {
  const signature = Buffer.from(await signer.sign(checkpointMessage(head))).toString("base64");
  return { seq: head.seq, hash: head.hash, at: head.at, root: head.root, keyId: signer.keyId, signature };
}

export function checkpointSignatureValid(checkpoint: Checkpoint, publicKeyPem: string): boolean {
  return signatureValid(checkpointMessage(checkpoint), checkpoint.signature, publicKeyPem);
}

export function signatureValid(message: Uint8Array, signatureBase64: string, publicKeyPem: string): boolean {
  try {
    return verify(null, message, createPublicKey(publicKeyPem), Buffer.from(signatureBase64, "base64"));
  } catch {
    return false;
  }
}

function isCode(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && "code" in e && e.code === code;
}

function unreadable(keyPath: string, e: unknown): AntidoteError {
  return new AntidoteError(
    "LEDGER_UNAVAILABLE",
    `${keyPath}: cannot read or create the ledger key (${e instanceof Error ? e.message : String(e)}).`,
    { cause: e },
  );
}
