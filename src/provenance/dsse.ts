// DSSE v1 (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse): the signature
// covers the payload type and the payload through the pre-authentication encoding, so a
// signed payload cannot be re-read as a different type, and the payload is never parsed
// before its signature has been checked.
import { createPublicKey, sign, verify } from "node:crypto";
import { AntidoteError } from "../errors.js";
import type { SigningKey, TrustedKey } from "./keys.js";

export interface DsseEnvelope {
  /** Base64 of the payload bytes. */
  payload: string;
  payloadType: string;
  signatures: { keyid: string; sig: string }[];
}

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body; LEN is the byte count in ASCII decimal. */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, "ascii"),
    type,
    Buffer.from(` ${payload.length} `, "ascii"),
    payload,
  ]);
}

export function signEnvelope(payload: Uint8Array, payloadType: string, key: SigningKey): DsseEnvelope {
  return envelope(
    payload,
    payloadType,
    key.keyId,
    sign(null, preAuthEncoding(payloadType, payload), key.privateKey),
  );
}

/** The same, with a signer that keeps its key elsewhere (the ledger's `LedgerSigner`, a KMS). */
export async function signEnvelopeWith(
  payload: Uint8Array,
  payloadType: string,
  signer: { keyId: string; sign(message: Uint8Array): Promise<Uint8Array> },
): Promise<DsseEnvelope> {
  return envelope(
    payload,
    payloadType,
    signer.keyId,
    await signer.sign(preAuthEncoding(payloadType, payload)),
  );
}

function envelope(payload: Uint8Array, payloadType: string, keyid: string, sig: Uint8Array): DsseEnvelope {
  return {
    payload: Buffer.from(payload).toString("base64"),
    payloadType,
    signatures: [{ keyid, sig: Buffer.from(sig).toString("base64") }],
  };
}

/**
 * The payload of an envelope signed by one of `trusted`. KEY_UNTRUSTED when no signature
 * names a trusted key; SIGNATURE_INVALID when one does but its signature does not verify.
 * A signature without a keyid (DSSE allows it) is tried against every trusted key.
 */
export function verifyEnvelope(
  envelope: DsseEnvelope,
  trusted: readonly TrustedKey[],
): { keyId: string; payload: Buffer } {
  if (envelope.signatures.length === 0)
    throw new AntidoteError("SIGNATURE_INVALID", "the envelope carries no signature.");
  const payload = decodeBase64(envelope.payload);
  const pae = preAuthEncoding(envelope.payloadType, payload);
  const candidates = envelope.signatures.flatMap((s) =>
    trusted.filter((k) => s.keyid === "" || s.keyid === k.keyId).map((k) => ({ key: k, sig: s.sig })),
  );
  if (candidates.length === 0) {
    const named = envelope.signatures.map((s) => s.keyid || "(no keyid)").join(", ");
    const known = trusted.map((k) => k.keyId).join(", ") || "none";
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `signed by key ${named}, which is not a trusted key (trusted: ${known}).`,
    );
  }
  for (const { key, sig } of candidates) {
    let ok = false;
    try {
      ok = verify(null, pae, createPublicKey(key.publicKeyPem), decodeBase64(sig));
    } catch {
      ok = false; // a malformed signature or key is a failed verification, not a crash
    }
    if (ok) return { keyId: key.keyId, payload };
  }
  throw new AntidoteError(
    "SIGNATURE_INVALID",
    `the signature by key ${candidates[0]?.key.keyId ?? ""} does not verify: the payload or the signature was altered after signing.`,
  );
}

/** Base64 as DSSE allows it: standard or URL-safe alphabet, padding optional. */
export function decodeBase64(text: string): Buffer {
  return Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}
