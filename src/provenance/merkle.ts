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

/**
 * The same root, built one leaf at a time in O(log n) memory: a stack of the roots of perfect
 * subtrees (RFC 6962's compact range), merged as soon as two have the same size and folded
 * right to left at the end, which is RFC 6962's split at the largest power of two. Leaves are
 * given as their data (`add`, hashed here with the leaf prefix) or as leaf hashes already
 * computed elsewhere (`addLeafHash`, e.g. on the thread pool).
 */
export class MerkleBuilder {
  #stack: { hash: Buffer; size: number }[] = [];
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Add a leaf whose data is `data` (for a digest leaf: its 32 bytes). */
  add(data: Uint8Array): void {
    this.addLeafHash(merkleLeafHash(data));
  }

  /** Add a leaf by its hash, SHA-256(0x00 ‖ data). */
  addLeafHash(hash: Buffer): void {
    let node = { hash, size: 1 };
    this.#count++;
    for (
      let top = this.#stack.at(-1);
      top !== undefined && top.size === node.size;
      top = this.#stack.at(-1)
    ) {
      this.#stack.pop();
      node = { hash: sha256(NODE_PREFIX, top.hash, node.hash), size: node.size * 2 };
    }
    this.#stack.push(node);
  }

  /** Hex root over the leaves added so far (SHA-256 of nothing when there are none). */
  root(): string {
    if (this.#stack.length === 0) return createHash("sha256").digest("hex");
    let hash = this.#stack[this.#stack.length - 1]!.hash;
    for (let i = this.#stack.length - 2; i >= 0; i--) hash = sha256(NODE_PREFIX, this.#stack[i]!.hash, hash);
    return hash.toString("hex");
  }
}

/** SHA-256(0x00 ‖ data): the hash of a leaf. */
export function merkleLeafHash(data: Uint8Array): Buffer {
  return createHash("sha256").update(LEAF_PREFIX).update(data).digest();
}
