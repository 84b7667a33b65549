// Attested client updates. A federated client signs, with its Ed25519 key, a DSSE envelope
// whose payload binds its update to one round of one federation: {clientId, round,
// federation, digest, parameters, layoutDigest}. Before aggregation the server checks the
// signature against the client's current keys (from the ledger or a keys directory), then
// the binding: the round (a replayed update from an earlier round is refused), the
// federation, and the digest of the bytes actually received (a tampered update is refused).
// A refused update is left out of the round with its reason; it does not fail the round.
import { readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import canonicalize from "canonicalize";
import { z } from "zod";
import { AntidoteError, isAntidoteError } from "../errors.js";
import type { Ledger } from "../ledger/types.js";
import { readSignature } from "../provenance/bundle.js";
import { decodeBase64, signEnvelope, verifyEnvelope, type DsseEnvelope } from "../provenance/dsse.js";
import { readPublicKey, type SigningKey } from "../provenance/keys.js";
import type { UpdateScan } from "./tensor-file.js";

export const FL_UPDATE_PAYLOAD_TYPE = "application/vnd.antidote.fl-update+json";

/** What a client signs about one update. */
export interface UpdateAttestation {
  clientId: string;
  round: number;
  federation: string;
  /** Hex SHA-256 of the update file (for a directory of .npy files, see tensor-file.ts). */
  digest: string;
  /** Coordinates d. */
  parameters: number;
  /** Hex SHA-256 of the canonical tensor layout (names, dtypes, shapes). */
  layoutDigest: string;
}

export const DEFAULT_FEDERATION = "default";

/** Client ids become file names (keys, FoolsGold history), so they stay to a safe alphabet. */
export const clientIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
  );
export const roundSchema = z.coerce
  .number({ error: "must be a round number" })
  .int("must be a whole number")
  .min(0, "must be 0 or more")
  .max(Number.MAX_SAFE_INTEGER);
export const federationSchema = z
  .string()
  .min(1, "must not be empty")
  .max(256, "is longer than 256 characters");

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "must be a hex SHA-256");
const attestationSchema = z.object({
  clientId: clientIdSchema,
  round: z.number().int().min(0),
  federation: federationSchema,
  digest: hex64,
  parameters: z.number().int().min(0),
  layoutDigest: hex64,
});

/** Why an update was left out of a round. */
export type RejectionReason =
  | "malformed" // the update or its attestation cannot be parsed
  | "unsigned" // no attestation where the client's policy requires one
  | "unknown-client" // no such client among the trusted ones
  | "untrusted-key" // signed by a key that is not one of the client's
  | "revoked-key" // signed by a key of the client that was revoked
  | "signature-invalid" // the signature does not verify
  | "replayed" // attested for another round, or a second update of the same client this round
  | "wrong-federation" // attested for another federation
  | "tampered" // the bytes received are not the bytes attested
  | "non-finite" // NaN or infinite values
  | "layout-mismatch"; // tensor names, shapes or dtypes differ from the round's

export interface Rejection {
  reason: RejectionReason;
  message: string;
}

/** One client's keys and policy. */
export interface TrustedClient {
  id: string;
  requireSignature: boolean;
  keys: { keyId: string; publicKeyPem: string; revokedAt: string | null }[];
}

/** Who may send updates: the trusted clients, and what to say about an unknown one. */
export interface ClientTrust {
  /** Where the keys came from, for messages ("the ledger sqlite:…", "--keys keys/"). */
  origin: string;
  clients: ReadonlyMap<string, TrustedClient>;
  /** Accept an unsigned update from a client not listed (only with --allow-unsigned and no ledger). */
  acceptUnknownUnsigned: boolean;
  /** Why a name is not a client although the origin knows it (e.g. a source of another kind). */
  notes: ReadonlyMap<string, string>;
}

/** `<update>.dsse.json` beside the update, or in `attestationsDir` under the same name. */
export function attestationPathFor(updatePath: string, attestationsDir?: string): string {
  const trimmed = updatePath.replace(/[/\\]+$/, "");
  const name = `${basename(trimmed)}.dsse.json`;
  return attestationsDir === undefined ? `${trimmed}.dsse.json` : join(attestationsDir, name);
}

/** The client id an unattested update goes by: its file name without the extension (c7.safetensors → c7). */
export function clientIdFromPath(updatePath: string): string {
  return basename(updatePath.replace(/[/\\]+$/, "")).replace(/\.(safetensors|npy)$/i, "");
}

/** Build and sign the attestation of a scanned update. */
export function attestUpdate(
  scan: UpdateScan,
  binding: { clientId: string; round: number; federation: string },
  key: SigningKey,
): { attestation: UpdateAttestation; envelope: DsseEnvelope } {
  const attestation: UpdateAttestation = {
    clientId: clientIdSchema.parse(binding.clientId),
    round: binding.round,
    federation: binding.federation,
    digest: scan.digest,
    parameters: scan.layout.dimension,
    layoutDigest: scan.layout.digest,
  };
  const payload = Buffer.from(canonicalize(attestation) ?? "", "utf8");
  return { attestation, envelope: signEnvelope(payload, FL_UPDATE_PAYLOAD_TYPE, key) };
}

/** The update's attestation envelope, or null when there is none. A malformed file throws INPUT_FORMAT. */
export async function readAttestation(path: string): Promise<DsseEnvelope | null> {
  const exists = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!exists) return null;
  return readSignature(path);
}

// ---------------------------------------------------------------------------------------
// Trust stores

/** Clients from a directory of CLIENT.pub files (as `antidote keygen --out CLIENT` writes them). */
export async function trustFromKeysDir(
  dir: string,
  options: { allowUnsigned: boolean },
): Promise<ClientTrust> {
  const entries = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    throw new AntidoteError(
      e.code === "ENOENT" ? "FILE_NOT_FOUND" : "USAGE",
      `--keys ${dir}: ${e.code === "ENOENT" ? "no such directory" : `cannot read the directory (${e.message})`}.`,
    );
  });
  const clients = new Map<string, TrustedClient>();
  for (const name of entries.filter((n) => n.endsWith(".pub")).sort()) {
    const id = name.slice(0, -".pub".length);
    const key = await readPublicKey(join(dir, name));
    clients.set(id, {
      id,
      requireSignature: !options.allowUnsigned,
      keys: [{ ...key, revokedAt: null }],
    });
  }
  if (clients.size === 0 && !options.allowUnsigned)
    throw new AntidoteError(
      "USAGE",
      `--keys ${dir}: holds no CLIENT.pub files (make them with \`antidote keygen --out ${join(dir, "CLIENT")}\` on each client).`,
    );
  return { origin: `--keys ${dir}`, clients, acceptUnknownUnsigned: options.allowUnsigned, notes: new Map() };
}

/** Clients from the ledger: sources of kind fl-client, named by client id, with their keys and signature policy. */
export async function trustFromLedger(ledger: Ledger): Promise<ClientTrust> {
  const clients = new Map<string, TrustedClient>();
  const notes = new Map<string, string>();
  for (const s of await ledger.listSources()) {
    if (s.kind === "fl-client")
      clients.set(s.name, {
        id: s.name,
        requireSignature: s.requireSignature,
        keys: s.keys.map((k) => ({ keyId: k.keyId, publicKeyPem: k.publicKeyPem, revokedAt: k.revokedAt })),
      });
    else notes.set(s.name, `source "${s.name}" is a ${s.kind}, not an fl-client`);
  }
  return { origin: `the ledger ${ledger.location}`, clients, acceptUnknownUnsigned: false, notes };
}

/** No keys at all: only unsigned updates can be accepted (--allow-unsigned without --keys or a ledger). */
export function unsignedOnlyTrust(): ClientTrust {
  return { origin: "no trusted keys", clients: new Map(), acceptUnknownUnsigned: true, notes: new Map() };
}

// ---------------------------------------------------------------------------------------
// Verification

export interface AttestationCheckInput {
  /** The update as given on the command line. */
  update: string;
  /** Where its attestation was looked for. */
  attestationPath: string;
  /** The envelope, null when there is none. */
  envelope: DsseEnvelope | null;
  /** What the update's bytes are, from the hashing pass; null when the update could not be parsed. */
  scan: Pick<UpdateScan, "digest" | "layout"> | null;
  round: number;
  federation: string;
  trust: ClientTrust;
}

export interface AttestationCheck {
  /** From the verified attestation; else the claimed one; else the file name. */
  clientId: string;
  /** The key that signed it, when the signature verified. */
  keyId: string | null;
  attestation: UpdateAttestation | null;
  rejections: Rejection[];
}

/**
 * Who sent the update, and every reason to refuse it. The signature is checked against the
 * keys of the client the payload names: a valid signature by one of that client's current
 * keys is what makes the name (and the rest of the payload) trustworthy.
 */
export function checkAttestation(input: AttestationCheckInput): AttestationCheck {
  const { trust } = input;
  const fileId = clientIdFromPath(input.update);
  const reject = (clientId: string, reason: RejectionReason, message: string): AttestationCheck => ({
    clientId,
    keyId: null,
    attestation: null,
    rejections: [{ reason, message }],
  });

  if (input.envelope === null) {
    const client = trust.clients.get(fileId);
    if (client === undefined) {
      if (trust.acceptUnknownUnsigned)
        return { clientId: fileId, keyId: null, attestation: null, rejections: [] };
      return reject(
        fileId,
        "unknown-client",
        `${input.update}: no attestation (${input.attestationPath}), and ${unknown(fileId, trust)}.`,
      );
    }
    if (client.requireSignature)
      return reject(
        fileId,
        "unsigned",
        `${input.update}: unsigned — client ${fileId} must sign its updates, and there is no ${input.attestationPath} (\`antidote sign-update\`).`,
      );
    return { clientId: fileId, keyId: null, attestation: null, rejections: [] };
  }

  const envelope = input.envelope;
  const where = input.attestationPath;
  if (envelope.payloadType !== FL_UPDATE_PAYLOAD_TYPE)
    return reject(
      fileId,
      "malformed",
      `${where}: payloadType is "${envelope.payloadType}", not ${FL_UPDATE_PAYLOAD_TYPE}.`,
    );
  const claimed = parseClaim(envelope);
  if (typeof claimed === "string") return reject(fileId, "malformed", `${where}: ${claimed}`);
  const clientId = claimed.clientId;
  const client = trust.clients.get(clientId);
  if (client === undefined)
    return reject(clientId, "unknown-client", `${where}: ${unknown(clientId, trust)}.`);

  const current = client.keys.filter((k) => k.revokedAt === null);
  const revoked = client.keys.filter((k) => k.revokedAt !== null);
  for (const sig of envelope.signatures) {
    const hit = revoked.find((k) => k.keyId === sig.keyid);
    if (hit !== undefined && !current.some((k) => k.keyId === sig.keyid))
      return reject(
        clientId,
        "revoked-key",
        `${where}: signed by key ${short(sig.keyid)} of client ${clientId}, which was revoked at ${hit.revokedAt ?? "?"}.`,
      );
  }
  let keyId: string;
  try {
    keyId = verifyEnvelope(envelope, current).keyId;
  } catch (e) {
    if (!isAntidoteError(e)) throw e;
    if (e.code === "KEY_UNTRUSTED")
      return reject(
        clientId,
        "untrusted-key",
        `${where}: not signed by a current key of client ${clientId} (signed by ${envelope.signatures.map((s) => short(s.keyid)).join(", ")}; ${trust.origin} lists ${current.map((k) => short(k.keyId)).join(", ") || "no current key"}).`,
      );
    return reject(
      clientId,
      "signature-invalid",
      `${where}: the signature does not verify: the attestation was altered after signing.`,
    );
  }

  const rejections: Rejection[] = [];
  if (claimed.federation !== input.federation)
    rejections.push({
      reason: "wrong-federation",
      message: `${where}: attested for federation "${claimed.federation}", this round is federation "${input.federation}".`,
    });
  if (claimed.round !== input.round)
    rejections.push({
      reason: "replayed",
      message: `${where}: attested for round ${claimed.round}, this is round ${input.round} (a replayed update?).`,
    });
  const scan = input.scan;
  if (scan !== null) {
    if (scan.digest !== claimed.digest)
      rejections.push({
        reason: "tampered",
        message: `${input.update}: sha256 ${short(scan.digest)} is not the attested ${short(claimed.digest)}: the update changed after it was signed.`,
      });
    else if (scan.layout.dimension !== claimed.parameters || scan.layout.digest !== claimed.layoutDigest)
      rejections.push({
        reason: "tampered",
        message: `${where}: attests ${claimed.parameters} parameters with layout ${short(claimed.layoutDigest)}, the update has ${scan.layout.dimension} with layout ${short(scan.layout.digest)}.`,
      });
  }
  return { clientId, keyId, attestation: claimed, rejections };
}

/** The payload as claimed, before its signature is checked: only used to find whose keys to check it with. */
function parseClaim(envelope: DsseEnvelope): UpdateAttestation | string {
  let value: unknown;
  try {
    value = JSON.parse(decodeBase64(envelope.payload).toString("utf8"));
  } catch {
    return "the payload is not JSON.";
  }
  const r = attestationSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  return `payload field ${issue?.path.join(".") || "(top level)"} ${issue?.message ?? "is invalid"}.`;
}

function unknown(clientId: string, trust: ClientTrust): string {
  const note = trust.notes.get(clientId);
  if (note !== undefined) return `${note} in ${trust.origin}`;
  return trust.origin.startsWith("--keys")
    ? `client ${clientId} is unknown: ${trust.origin} holds no ${clientId}.pub`
    : trust.origin === "no trusted keys"
      ? `client ${clientId} cannot be verified: no trusted keys were given (--keys DIR or --ledger)`
      : `client ${clientId} is unknown: ${trust.origin} has no fl-client source named "${clientId}" (\`antidote source add ${clientId} --kind fl-client --key ${clientId}.pub\`)`;
}

function short(hex: string): string {
  return hex === "" ? "(no keyid)" : `${hex.slice(0, 16)}…`;
}
