// Ed25519 signing keys for deliveries. Keys are plain PEM files (PKCS#8 private, SPKI public)
// so any OpenSSL-based tool can read them, and a key is named by its id: the SHA-256 of the
// public key's DER, which is what envelopes carry as `keyid` and the ledger records.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { AntidoteError } from "../errors.js";

export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
  publicKeyPem: string;
}

export interface TrustedKey {
  keyId: string;
  publicKeyPem: string;
}

/** Ed25519 for deliveries and telemetry; ECDSA for OpenSSF model signing, which takes EC keys only. */
export type KeyAlgorithm = "ed25519" | "ecdsa-p256" | "ecdsa-p384";

export function generateSigningKey(algorithm: KeyAlgorithm = "ed25519"): {
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
} {
  const { privateKey, publicKey } =
    algorithm === "ed25519"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("ec", { namedCurve: algorithm === "ecdsa-p256" ? "prime256v1" : "secp384r1" });
  const publicKeyPem = publicKey.export({ format: "pem", type: "spki" }).toString();
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKeyPem,
    keyId: idOfKeyObject(publicKey),
  };
}

/** Lowercase hex SHA-256 of the SPKI DER of an Ed25519 public key given as PEM. */
export function keyIdOf(publicKeyPem: string): string {
  return idOfKeyObject(parsePublicKey(publicKeyPem, "the public key"));
}

export async function readPrivateKey(path: string): Promise<SigningKey> {
  const pem = await readKeyFile(path);
  if (!pem.includes("PRIVATE KEY-----")) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: not a private key (expected a PEM "BEGIN PRIVATE KEY" block, as written by \`antidote keygen\`).`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${path}: not a readable PEM private key (${errorText(e)}).`, {
      cause: e,
    });
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: a ${privateKey.asymmetricKeyType ?? "unknown"} key; deliveries are signed with Ed25519 keys (\`antidote keygen\`).`,
    );
  }
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: idOfKeyObject(publicKey),
    privateKey,
    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
  };
}

export async function readPublicKey(path: string): Promise<TrustedKey> {
  const pem = await readKeyFile(path);
  const key = parsePublicKey(pem, path);
  return { keyId: idOfKeyObject(key), publicKeyPem: key.export({ format: "pem", type: "spki" }).toString() };
}

// ---------------------------------------------------------------------------------------

function parsePublicKey(pem: string, what: string): KeyObject {
  // createPublicKey would happily derive a public key from a private one; refusing here keeps
  // private keys out of trust stores and command lines meant for public keys.
  if (pem.includes("PRIVATE KEY-----")) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${what}: is a private key; pass the public key (the .pub file written by \`antidote keygen\`).`,
    );
  }
  if (!pem.includes("-----BEGIN PUBLIC KEY-----")) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${what}: not a PEM public key (expected a "BEGIN PUBLIC KEY" block, as written by \`antidote keygen\`).`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${what}: not a readable PEM public key (${errorText(e)}).`, {
      cause: e,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${what}: a ${key.asymmetricKeyType ?? "unknown"} public key; Antidote verifies Ed25519 keys only.`,
    );
  }
  return key;
}

function idOfKeyObject(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ format: "der", type: "spki" }))
    .digest("hex");
}

/** A key file's text; a missing or unreadable file is a clear error (never its contents). */
export async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such key file.`, { cause: e });
    throw new AntidoteError("INPUT_FORMAT", `${path}: cannot read the key file (${errorText(e)}).`, {
      cause: e,
    });
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
