// The ledger's events as a Merkle tree in the shape of RFC 9162 (Certificate Transparency
// v2, as Trillian and Rekor use it), beside the hash chain. The chain lets anyone holding
// the whole log re-check it; the tree lets someone holding only an old signed head check,
// with O(log n) hashes, that today's log still contains that head unchanged (a consistency
// proof), or that one event is in a signed head (an inclusion proof).
//
//   leaf(e)     = SHA-256(0x00 || the 32 bytes of e.hash)   (e.hash: chain.ts)
//   node(l, r)  = SHA-256(0x01 || l || r)
//   MTH(D[0:n]) = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n
//
// Proof generation and verification follow RFC 9162 §2.1.3 and §2.1.4 step by step, so a
// third party can check our proofs with any RFC 9162 library.
import { createHash } from "node:crypto";

const LEAF = Buffer.from([0x00]);
const NODE = Buffer.from([0x01]);

export function leafHash(eventHashHex: string): Buffer {
  return sha256(LEAF, Buffer.from(eventHashHex, "hex"));
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return sha256(NODE, left, right);
}

/** RFC 9162 MTH of leaves[start, end) (leaf hashes already computed). */
export function treeRoot(leaves: readonly Buffer[], start = 0, end = leaves.length): Buffer {
  const n = end - start;
  if (n === 0) return sha256();
  if (n === 1) return leaves[start] as Buffer;
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(treeRoot(leaves, start, start + k), treeRoot(leaves, start + k, end));
}

/**
 * The roots of the perfect subtrees a tree of `size` leaves decomposes into, largest first:
 * enough to add leaves and compute the root without the leaves themselves. Stored with each
 * checkpoint so an append extends the tree in O(log n).
 */
export interface Frontier {
  size: number;
  nodes: Buffer[];
}

export const EMPTY_FRONTIER: Frontier = { size: 0, nodes: [] };

export function extendFrontier(frontier: Frontier, leaf: Buffer): Frontier {
  const nodes = [...frontier.nodes, leaf];
  // Each trailing 1-bit of the old size is a perfect subtree the new leaf completes.
  for (let m = frontier.size; m & 1; m >>>= 1) {
    const right = nodes.pop() as Buffer;
    const left = nodes.pop() as Buffer;
    nodes.push(nodeHash(left, right));
  }
  return { size: frontier.size + 1, nodes };
}

export function frontierRoot(frontier: Frontier): Buffer {
  if (frontier.nodes.length === 0) return sha256();
  let root = frontier.nodes[frontier.nodes.length - 1] as Buffer;
  for (let i = frontier.nodes.length - 2; i >= 0; i--) root = nodeHash(frontier.nodes[i] as Buffer, root);
  return root;
}

/** A frontier is consistent with its size only if it has one node per 1-bit of the size. */
export function isWellFormedFrontier(frontier: Frontier): boolean {
  let bits = 0;
  for (let m = frontier.size; m > 0; m >>>= 1) bits += m & 1;
  return frontier.nodes.length === bits && frontier.nodes.every((n) => n.length === 32);
}

/** RFC 9162 §2.1.4.1: the proof that the first `m` leaves are a prefix of all of them. */
export function consistencyProof(leaves: readonly Buffer[], m: number): Buffer[] {
  if (m < 1 || m > leaves.length) throw new RangeError(`no consistency proof from ${m} to ${leaves.length}`);
  const proof: Buffer[] = [];
  const subproof = (m: number, start: number, end: number, complete: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(treeRoot(leaves, start, end));
      return;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      subproof(m, start, start + k, complete);
      proof.push(treeRoot(leaves, start + k, end));
    } else {
      subproof(m - k, start + k, end, false);
      proof.push(treeRoot(leaves, start, start + k));
    }
  };
  subproof(m, 0, leaves.length, true);
  return proof;
}

/** RFC 9162 §2.1.4.2: does `proof` show a tree of `first` leaves with `firstRoot` is a prefix of one of `second` with `secondRoot`? */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Buffer,
  secondRoot: Buffer,
  proof: readonly Buffer[],
): boolean {
  if (first < 1 || first > second) return false;
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  if (path.length === 0) return false;
  let fn = first - 1;
  let sn = second - 1;
  while (fn & 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const rest = path.slice(1);
  const sides = siblingSides(fn, sn, rest);
  if (sides === null) return false;
  let fr = path[0] as Buffer;
  let sr = path[0] as Buffer;
  rest.forEach((c, i) => {
    if (sides[i] === true) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
    } else sr = nodeHash(sr, c);
  });
  return fr.equals(firstRoot) && sr.equals(secondRoot);
}

/** RFC 9162 §2.1.3.1: the audit path of leaf `index` in a tree of all `leaves`. */
export function inclusionProof(leaves: readonly Buffer[], index: number): Buffer[] {
  if (index < 0 || index >= leaves.length)
    throw new RangeError(`leaf ${index} is not in a tree of ${leaves.length}`);
  const proof: Buffer[] = [];
  const path = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n <= 1) return;
    const k = largestPowerOfTwoBelow(n);
    if (m < k) {
      path(m, start, start + k);
      proof.push(treeRoot(leaves, start + k, end));
    } else {
      path(m - k, start + k, end);
      proof.push(treeRoot(leaves, start, start + k));
    }
  };
  path(index, 0, leaves.length);
  return proof;
}

/** RFC 9162 §2.1.3.2. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Buffer,
  root: Buffer,
  proof: readonly Buffer[],
): boolean {
  if (index < 0 || index >= size) return false;
  const sides = siblingSides(index, size - 1, proof);
  if (sides === null) return false;
  let r = leaf;
  proof.forEach((p, i) => {
    r = sides[i] === true ? nodeHash(p, r) : nodeHash(r, p);
  });
  return r.equals(root);
}

/**
 * The walk up the tree both RFC 9162 verifications make (§2.1.3.2 step 4, §2.1.4.2 step 6):
 * for each proof hash, whether it is a left sibling (hashed in front). Null when the proof does
 * not end exactly at the root (the path is too long, or too short).
 */
function siblingSides(fn: number, sn: number, proof: readonly Buffer[]): boolean[] | null {
  const sides: boolean[] = [];
  for (let i = 0; i < proof.length; i++) {
    if (sn === 0) return null;
    const left = (fn & 1) === 1 || fn === sn;
    sides.push(left);
    if (left && !(fn & 1))
      do {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      } while (!(fn & 1) && fn !== 0);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? sides : null;
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}
