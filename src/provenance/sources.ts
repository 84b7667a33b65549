// Registering who may deliver data: a source with its Ed25519 public keys and signature
// policy, key rotation (add the new key, then revoke the old one) and revocation. The CLI
// (`antidote source …`) and the server share these; each records its events under the
// caller's actor, so the ledger says who registered or revoked what.
import { AntidoteError } from "../errors.js";
import type { Ledger, Source, SourceKind } from "../ledger/types.js";
import { keyIdOf } from "./keys.js";
import { defaultRequireSignature } from "./policy.js";

export interface ActorOptions {
  /** Who acts (the ledger events' actor); default: the ledger's own default actor. */
  actor?: string;
}

export interface AddSourceInput {
  name: string;
  kind: SourceKind;
  /** 0..1, the operator's prior trust in this source (default 0.5). */
  trust?: number;
  /** Refuse unsigned deliveries (default: by kind, see policy.ts). */
  requireSignature?: boolean;
  /** Ed25519 public keys in PEM (SPKI). */
  publicKeysPem: string[];
}

export interface AddedSource {
  name: string;
  kind: SourceKind;
  trust: number;
  requireSignature: boolean;
  /** Key ids of the registered keys. */
  keys: string[];
}

/** Register a source; SOURCE_EXISTS when the name is taken. */
export async function addSource(
  ledger: Ledger,
  input: AddSourceInput,
  options: ActorOptions = {},
): Promise<AddedSource> {
  const keys = input.publicKeysPem.map((pem) => ({ publicKeyPem: pem, keyId: keyIdOf(pem) }));
  const trust = input.trust ?? 0.5;
  const requireSignature = input.requireSignature ?? defaultRequireSignature(input.kind);
  if (requireSignature && keys.length === 0)
    throw new AntidoteError(
      "USAGE",
      `source "${input.name}": a ${input.kind} source requires signed deliveries, so it needs at least one public key (or a policy that allows unsigned deliveries).`,
    );
  await ledger.append(
    [
      {
        kind: "source.added",
        payload: {
          name: input.name,
          kind: input.kind,
          trust,
          requireSignature,
          keys: keys.map((k) => ({ publicKeyPem: k.publicKeyPem })),
        },
      },
    ],
    appendOptions(options),
  );
  return { name: input.name, kind: input.kind, trust, requireSignature, keys: keys.map((k) => k.keyId) };
}

/** Add a signing key to a registered source; returns its key id. */
export async function addSourceKey(
  ledger: Ledger,
  name: string,
  publicKeyPem: string,
  options: ActorOptions = {},
): Promise<{ source: string; keyId: string }> {
  const keyId = keyIdOf(publicKeyPem);
  await requireSource(ledger, name);
  await ledger.append(
    [{ kind: "source.key-added", payload: { source: name, publicKeyPem } }],
    appendOptions(options),
  );
  return { source: name, keyId };
}

export interface RevokedKey {
  source: string;
  /** The full key id (the caller may have given a prefix). */
  keyId: string;
  revokedAt: string;
  /** True when the key was revoked before: nothing was written. */
  alreadyRevoked: boolean;
}

/** Revoke a source's key by id or unique prefix: deliveries signed with it are refused from now on. */
export async function revokeSourceKey(
  ledger: Ledger,
  name: string,
  keyIdOrPrefix: string,
  reason: string,
  options: ActorOptions = {},
): Promise<RevokedKey> {
  const source = await requireSource(ledger, name);
  const prefix = keyIdOrPrefix.toLowerCase();
  const matches = prefix === "" ? [] : source.keys.filter((k) => k.keyId.startsWith(prefix));
  const key = matches[0];
  if (matches.length !== 1 || key === undefined)
    throw new AntidoteError(
      "USAGE",
      `key id "${keyIdOrPrefix}" matches ${matches.length} of the keys of "${name}" (${source.keys.map((k) => k.keyId.slice(0, 16)).join(", ") || "none"}).`,
    );
  // Revoking twice would record a second revocation that changes nothing: say so instead.
  if (key.revokedAt !== null)
    return { source: name, keyId: key.keyId, revokedAt: key.revokedAt, alreadyRevoked: true };
  const [event] = await ledger.append(
    [{ kind: "source.key-revoked", payload: { source: name, keyId: key.keyId, reason } }],
    appendOptions(options),
  );
  return {
    source: name,
    keyId: key.keyId,
    revokedAt: event?.at ?? new Date().toISOString(),
    alreadyRevoked: false,
  };
}

async function requireSource(ledger: Ledger, name: string): Promise<Source> {
  const source = await ledger.getSource(name);
  if (source === undefined) throw new AntidoteError("SOURCE_UNKNOWN", `source "${name}" is not registered.`);
  return source;
}

export function appendOptions(options: ActorOptions): { actor?: string } {
  return options.actor === undefined ? {} : { actor: options.actor };
}
