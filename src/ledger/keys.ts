// Ed25519 keys: key ids, the ledger's own checkpoint key, and checkpoint signatures.
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

/** A key's id: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER. */
export function keyIdOf(publicKey: string | KeyObject): string {
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  return sha256Hex(key.export({ type: "spki", format: "der" }));
}

export interface LedgerKey {
  keyId: string;
  publicKeyPem: string;
  privateKey: KeyObject;
}

/**
 * Load the ledger's signing key, creating it (mode 0600) when absent. Creation uses an
 * exclusive open, so two processes opening a fresh ledger at once end up with one key.
 */
export function loadOrCreateLedgerKey(keyPath: string): LedgerKey {
  let pem: string;
  try {
    pem = readFileSync(keyPath, "utf8");
  } catch (e) {
    if (!isCode(e, "ENOENT")) throw unreadable(keyPath, e);
    mkdirSync(dirname(keyPath), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync("ed25519");
    const created = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    // Written whole under a temporary name, then hard-linked into place: link() fails when
    // the name exists, so a concurrent opener never reads a half-written key.
    const temp = `${keyPath}.${process.pid}.${Date.now()}.tmp`;
    try {
      writeFileSync(temp, created, { mode: 0o600, flag: "wx" });
      linkSync(temp, keyPath);
      pem = created;
    } catch (e2) {
      if (!isCode(e2, "EEXIST")) throw unreadable(keyPath, e2);
      pem = readFileSync(keyPath, "utf8");
    } finally {
      rmSync(temp, { force: true });
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw new AntidoteError("LEDGER_UNAVAILABLE", `${keyPath}: not a PEM private key (${message(e)}).`, {
      cause: e,
    });
  }
  if (privateKey.asymmetricKeyType !== "ed25519")
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `${keyPath}: the ledger key must be Ed25519, found ${privateKey.asymmetricKeyType ?? "unknown"}.`,
    );
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privateKey,
  };
}

export function signCheckpoint(key: LedgerKey, head: { seq: number; hash: string; at: string }): Checkpoint {
  const signature = sign(null, checkpointMessage(head), key.privateKey).toString("base64");
  return { seq: head.seq, hash: head.hash, at: head.at, keyId: key.keyId, signature };
}

export function checkpointSignatureValid(checkpoint: Checkpoint, publicKeyPem: string): boolean {
  try {
    return verify(
      null,
      checkpointMessage(checkpoint),
      createPublicKey(publicKeyPem),
      Buffer.from(checkpoint.signature, "base64"),
    );
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
    `${keyPath}: cannot read or create the ledger key (${message(e)}).`,
    {
      cause: e,
    },
  );
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
