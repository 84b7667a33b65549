// A Merkle root over SHA-256 digests in the shape of RFC 6962 (Certificate Transparency):
// leaves and inner nodes are hashed with different one-byte prefixes, so a leaf can never be
// passed off as an inner node (second-preimage resistance), and the root of an empty list is
// SHA-256 of the empty string. Building level by level and promoting an odd last node
// unchanged gives the same root as RFC 6962's split at the largest power of two.
import { createHash } from "node:crypto";
import { AntidoteError } from "../errors.js";

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
const HEX_DIGEST = /^[0-9a-f]{64}$/;

/** Root over hex SHA-256 digests, in the order given (callers sort when order is not meaningful). */
export function merkleRoot(hexDigests: readonly string[]): string {
  if (hexDigests.length === 0) return createHash("sha256").digest("hex");
  let level: Buffer[] = hexDigests.map((hex, i) => {
    if (!HEX_DIGEST.test(hex)) {
      throw new AntidoteError(
        "INPUT_FORMAT",
        `Merkle leaf ${i}: "${hex.slice(0, 80)}" is not a lowercase hex SHA-256 digest.`,
      );
    }
    return sha256(LEAF_PREFIX, Buffer.from(hex, "hex"));
  });
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(sha256(NODE_PREFIX, level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!.toString("hex");
}

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}
