// The hash chain: a public format, so anyone can re-check a ledger export with a few lines
// of any language.
//
//   canonical(x) = RFC 8785 (JSON Canonicalization Scheme) serialization of x
//   hash(e)      = lowercase hex SHA-256 of the UTF-8 bytes of
//                    e.prevHash + "\n" + canonical({ seq, at, actor, kind, payload })
//   e.prevHash   = hash of the event at seq − 1, or "0" × 64 for seq 1
//
// seq starts at 1 and has no gaps; `at` is ISO-8601 UTC. A checkpoint signs
// canonical({ seq, hash, at }) with the ledger's Ed25519 key (see keys.ts).
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
export function checkpointMessage(checkpoint: { seq: number; hash: string; at: string }): Buffer {
  const { seq, hash, at } = checkpoint;
  return Buffer.from(canonicalJson({ seq, hash, at }), "utf8");
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
