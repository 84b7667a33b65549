// The RFC 9162 tree against an oracle written from the RFC's definitions (recursive MTH,
// PATH and PROOF), and its proofs against tampering: every proof for every size verifies,
// and changing any one hash, or either size, makes it fail.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EMPTY_FRONTIER,
  consistencyProof,
  extendFrontier,
  frontierRoot,
  inclusionProof,
  leafHash,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
} from "../../src/ledger/tree.js";

const sha = (...parts: Buffer[]): Buffer => createHash("sha256").update(Buffer.concat(parts)).digest();
const leaves = (n: number): Buffer[] =>
  Array.from({ length: n }, (_, i) => leafHash(sha(Buffer.from(`event ${i}`)).toString("hex")));

// RFC 9162 §2.1.1, literally.
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return d[0] as Buffer;
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return sha(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)));
}

function flip(b: Buffer): Buffer {
  const c = Buffer.from(b);
  c[0] = (c[0] ?? 0) ^ 1;
  return c;
}

describe("RFC 9162 Merkle tree", () => {
  it("the leaf hash is SHA-256(0x00 || event hash) and roots match the recursive definition, incrementally too", () => {
    const h = sha(Buffer.from("e")).toString("hex");
    expect(leafHash(h)).toEqual(sha(Buffer.from([0]), Buffer.from(h, "hex")));
    let frontier = EMPTY_FRONTIER;
    const all = leaves(70);
    expect(frontierRoot(frontier)).toEqual(sha());
    for (let n = 1; n <= all.length; n++) {
      frontier = extendFrontier(frontier, all[n - 1] as Buffer);
      const expected = mth(all.slice(0, n));
      expect(treeRoot(all, 0, n)).toEqual(expected);
      expect(frontierRoot(frontier)).toEqual(expected);
    }
  });

  it("every consistency proof verifies, and no tampered one does", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 90 }),
        fc.nat(),
        (a, b, pick) => {
          const [m, n] = a <= b ? [a, b] : [b, a];
          const all = leaves(n);
          const first = mth(all.slice(0, m));
          const second = mth(all);
          const proof = consistencyProof(all, m);
          expect(verifyConsistency(m, n, first, second, proof)).toBe(true);
          expect(verifyConsistency(m, n, flip(first), second, proof)).toBe(false);
          expect(verifyConsistency(m, n, first, flip(second), proof)).toBe(false);
          if (proof.length > 0) {
            const i = pick % proof.length;
            const bad = proof.map((p, j) => (j === i ? flip(p) : p));
            expect(verifyConsistency(m, n, first, second, bad)).toBe(false);
          }
          if (m < n) expect(verifyConsistency(m + 1, n, first, second, proof)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("every inclusion proof verifies, and none for another leaf, index or root", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 90 }), fc.nat(), (n, pick) => {
        const all = leaves(n);
        const root = mth(all);
        const index = pick % n;
        const proof = inclusionProof(all, index);
        expect(verifyInclusion(index, n, all[index] as Buffer, root, proof)).toBe(true);
        expect(verifyInclusion(index, n, flip(all[index] as Buffer), root, proof)).toBe(false);
        expect(verifyInclusion(index, n, all[index] as Buffer, flip(root), proof)).toBe(false);
        if (n > 1) expect(verifyInclusion((index + 1) % n, n, all[index] as Buffer, root, proof)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
