// Signed delivery statements as Sigstore bundles (v0.3 JSON) with public-key verification
// material: the file any Sigstore verifier reads, holding a DSSE envelope over the in-toto
// statement and the signing key's id as the key hint. No transparency log entry is made —
// deliveries are verified against keys the receiver registered for the supplier — so a
// standard verifier accepts the bundle with its tlog and timestamp thresholds at 0.
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { signEnvelope, signEnvelopeWith, verifyEnvelope, type DsseEnvelope } from "./dsse.js";
import type { SigningKey, TrustedKey } from "./keys.js";
import { canonicalStatement, parseStatement, statementDigest, type DeliveryStatement } from "./manifest.js";

export const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

/** The JSON form of a Sigstore bundle v0.3 signed with a bare public key (no certificate, no tlog). */
export interface SigstoreBundleJson {
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  verificationMaterial: {
    publicKey: { hint: string };
    tlogEntries: unknown[];
  };
  dsseEnvelope: DsseEnvelope;
}

/** Sign the statement's canonical JSON, so the statement digest is the digest of the signed bytes. */
export function signStatement(statement: DeliveryStatement, key: SigningKey): SigstoreBundleJson {
  return bundle(signEnvelope(canonicalStatement(statement), IN_TOTO_PAYLOAD_TYPE, key));
}

/** The same with the ledger's signer, whose private key may live in a KMS or token. */
export async function signStatementWith(
  statement: DeliveryStatement,
  signer: { keyId: string; sign(message: Uint8Array): Promise<Uint8Array> },
): Promise<SigstoreBundleJson> {
  return bundle(await signEnvelopeWith(canonicalStatement(statement), IN_TOTO_PAYLOAD_TYPE, signer));
}

function bundle(dsseEnvelope: DsseEnvelope): SigstoreBundleJson {
  const hint = dsseEnvelope.signatures[0]?.keyid ?? "";
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
    dsseEnvelope,
  };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

const envelopeSchema = z.object({
  payload: z.string().min(1, "is empty").regex(BASE64, "is not base64"),
  payloadType: z.string().min(1, "is empty"),
  signatures: z
    .array(
      z.object({
        keyid: z.string().default(""),
        sig: z.string().min(1, "is empty").regex(BASE64, "is not base64"),
      }),
    )
    .min(1, "holds no signature"),
});

const bundleSchema = z.object({
  mediaType: z
    .string()
    .regex(
      /^application\/vnd\.dev\.sigstore\.bundle(\.v\d+\.\d+\+json|\+json;version=\d+\.\d+)$/,
      "is not a Sigstore bundle media type",
    ),
  dsseEnvelope: envelopeSchema,
});

/** The DSSE envelope of a signature file: a Sigstore bundle or a bare DSSE envelope. */
export async function readSignature(path: string): Promise<DsseEnvelope> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such signature file.`);
    throw new AntidoteError("INPUT_FORMAT", `${path}: cannot read the signature file.`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: not JSON (${e instanceof Error ? e.message : String(e)}); expected a Sigstore bundle or DSSE envelope.`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: expected a JSON object (a Sigstore bundle or DSSE envelope).`,
    );
  const isBundle = "mediaType" in value || "dsseEnvelope" in value || "verificationMaterial" in value;
  if (isBundle && !("dsseEnvelope" in value) && "messageSignature" in value)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: the bundle holds a message signature, not a DSSE envelope over a delivery statement.`,
    );
  const r = isBundle ? bundleSchema.safeParse(value) : envelopeSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = (issue?.path ?? [])
      .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`))
      .join("");
    const what = isBundle ? "Sigstore bundle" : "DSSE envelope";
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: ${field || "(top level)"}: ${issue?.message ?? "invalid"} (reading it as a ${what}).`,
    );
  }
  return "dsseEnvelope" in r.data ? r.data.dsseEnvelope : r.data;
}

/** Verify the envelope against the trusted keys, then read and validate the statement it signs. */
export function openStatement(
  envelope: DsseEnvelope,
  trusted: readonly TrustedKey[],
): { statement: DeliveryStatement; keyId: string; statementDigest: string } {
  const { keyId, payload } = verifyEnvelope(envelope, trusted);
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `the signed payload is "${envelope.payloadType}", not an in-toto statement (${IN_TOTO_PAYLOAD_TYPE}).`,
    );
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch (e) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `the signed payload is not JSON (${e instanceof Error ? e.message : String(e)}).`,
    );
  }
  const statement = parseStatement(value, "the signed payload");
  return { statement, keyId, statementDigest: statementDigest(statement) };
}
