// The hash chain: a public format, so anyone can re-check a ledger export with a few lines
// of any language.
//
//   canonical(x) = RFC 8785 (JSON Canonicalization Scheme) serialization of x
//   hash(e)      = lowercase hex SHA-256 of the UTF-8 bytes of
//                    e.prevHash + "\n" + canonical({ seq, at, actor, kind, payload })
//   e.prevHash   = hash of the event at seq − 1, or "0" × 64 for seq 1
//
// seq starts at 1 and has no gaps; `at` is ISO-8601 UTC. A checkpoint signs
// canonical({ seq, hash, at, root }) with the ledger's Ed25519 key (see keys.ts), where root
// is the RFC 9162 Merkle tree head over the first seq events (tree.ts); checkpoints written
// before the tree existed sign canonical({ seq, hash, at }) and carry no root.
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

export const GENESIS_HASH = "0".repeat(64);

export interface ChainedFields {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  payload: unknown;
}

/** RFC 8785 canonical JSON; throws on values JSON cannot carry (which validation rules out). */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error("value has no JSON form");
  return text;
}

export function eventHash(prevHash: string, event: ChainedFields): string {
  const { seq, at, actor, kind, payload } = event;
  return sha256Hex(`${prevHash}\n${canonicalJson({ seq, at, actor, kind, payload })}`);
}

/**
 * The same hash, given the payload already in canonical form (it is stored that way, and
 * large payloads are worth serializing once). RFC 8785 orders keys by UTF-16 code units:
 * actor, at, kind, payload, seq.
 */
export function eventHashOfCanonical(
  prevHash: string,
  event: Omit<ChainedFields, "payload"> & { payloadJson: string },
): string {
  const head = canonicalJson({ actor: event.actor, at: event.at, kind: event.kind });
  const body = `${head.slice(0, -1)},"payload":${event.payloadJson},"seq":${canonicalJson(event.seq)}}`;
  return sha256Hex(`${prevHash}\n${body}`);
}

/** The bytes a checkpoint signature covers. */
export function checkpointMessage(checkpoint: {
  seq: number;
  hash: string;
  at: string;
  root?: string;
}): Buffer {
  const { seq, hash, at, root } = checkpoint;
  return Buffer.from(canonicalJson(root === undefined ? { seq, hash, at } : { seq, hash, at, root }), "utf8");
}

/**
 * The bytes a key rotation's endorsement covers: the outgoing key signs the incoming one, so
 * whoever can replace the key file but does not hold the current key cannot rotate.
 */
export function rotationMessage(incoming: { keyId: string; publicKeyPem: string }): Buffer {
  const { keyId, publicKeyPem } = incoming;
  return Buffer.from(
    canonicalJson({ purpose: "antidote ledger key rotation v1", keyId, publicKeyPem }),
    "utf8",
  );
}

/**
 * A sample record's digest: what the ledger says arrived — the content digest together with
 * the label and annotations it came with, which are what a poisoner changes. Versions carry a
 * Merkle root over these (`recordsRoot`), and the store is checked against them on read.
 *   recordDigest = hex SHA-256 of "antidote-record/v1\n" + canonical({ digest, label, annotations })
 */
export function recordDigest(record: {
  digest: string;
  label: string | null;
  annotations: readonly { annotator: string; label: string }[];
}): string {
  const annotations = record.annotations.map(({ annotator, label }) => ({ annotator, label }));
  return sha256Hex(
    `antidote-record/v1\n${canonicalJson({ digest: record.digest, label: record.label, annotations })}`,
  );
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
