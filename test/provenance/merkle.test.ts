// The delivery Merkle root against trees computed by hand from the RFC 6962 definitions
// (leaf = H(0x00 || d), node = H(0x01 || l || r), empty = H("")), and against a direct
// transcription of RFC 6962 §2.1's recursive MTH for every size up to 40.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { merkleRoot } from "../../src/provenance/merkle.js";

const H = (...parts: (Buffer | number[])[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(Buffer.from(p));
  return h.digest();
};
const digest = (i: number): string => H(Buffer.from(`item ${i}`)).toString("hex");
const leaf = (hex: string): Buffer => H([0x00], Buffer.from(hex, "hex"));
const node = (l: Buffer, r: Buffer): Buffer => H([0x01], l, r);

// RFC 6962 §2.1: MTH(D[n]) = H(0x01 || MTH(D[0:k]) || MTH(D[k:n])), k the largest power of two < n.
function rfc6962(d: string[]): Buffer {
  if (d.length === 0) return H([]);
  if (d.length === 1) return leaf(d[0]!);
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return node(rfc6962(d.slice(0, k)), rfc6962(d.slice(k)));
}

describe("merkleRoot", () => {
  const [a, b, c, d, e] = [0, 1, 2, 3, 4].map(digest) as [string, string, string, string, string];

  it("is SHA-256 of the empty string for no leaves", () => {
    expect(merkleRoot([])).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("hashes a single leaf with the 0x00 prefix (not the bare digest)", () => {
    expect(merkleRoot([a])).toBe(leaf(a).toString("hex"));
    expect(merkleRoot([a])).not.toBe(a);
  });

  it("matches hand-computed trees of 2, 3, 4 and 5 leaves", () => {
    expect(merkleRoot([a, b])).toBe(node(leaf(a), leaf(b)).toString("hex"));
    // Three leaves: the odd third leaf is promoted and joins the pair's node.
    expect(merkleRoot([a, b, c])).toBe(node(node(leaf(a), leaf(b)), leaf(c)).toString("hex"));
    expect(merkleRoot([a, b, c, d])).toBe(
      node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d))).toString("hex"),
    );
    expect(merkleRoot([a, b, c, d, e])).toBe(
      node(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d))), leaf(e)).toString("hex"),
    );
  });

  it("equals RFC 6962's recursive definition for every size up to 40", () => {
    const all = Array.from({ length: 40 }, (_, i) => digest(i));
    for (let n = 0; n <= all.length; n++) {
      expect(merkleRoot(all.slice(0, n)), `n=${n}`).toBe(rfc6962(all.slice(0, n)).toString("hex"));
    }
  });

  it("depends on order, so callers must sort", () => {
    expect(merkleRoot([a, b])).not.toBe(merkleRoot([b, a]));
  });

  it("rejects a leaf that is not a lowercase hex SHA-256, naming its index", () => {
    expect(() => merkleRoot([a, "xyz"])).toThrow(/Merkle leaf 1: "xyz"/);
    expect(() => merkleRoot([a.toUpperCase()])).toThrow(/Merkle leaf 0/);
  });
});
