import { describe, expect, it } from "vitest";
import { murmur3_32, murmur3_32_int } from "../../src/math/hash.js";

// Published MurmurHash3_x86_32 vectors (SMHasher's reference implementation, as collected in
// the widely cited list of test vectors for ports, and Python's mmh3 for "hello").
const VECTORS: [string | number[], number, number][] = [
  ["", 0, 0x00000000],
  ["", 1, 0x514e28b7],
  ["", 0xffffffff, 0x81f16f39],
  [[0xff, 0xff, 0xff, 0xff], 0, 0x76293b50],
  [[0x21, 0x43, 0x65, 0x87], 0, 0xf55b516b],
  [[0x21, 0x43, 0x65, 0x87], 0x5082edee, 0x2362f9de],
  [[0x21, 0x43, 0x65], 0, 0x7e4a8634],
  [[0x21, 0x43], 0, 0xa0f7b07a],
  [[0x21], 0, 0x72661cf4],
  [[0, 0, 0, 0], 0, 0x2362f9de],
  ["hello", 0, 0x248bfa47],
  ["aaaa", 0x9747b28c, 0x5a97808a],
  ["abc", 0x9747b28c, 0xc84a62dd],
  ["Hello, world!", 0x9747b28c, 0x24884cba],
  ["Hello, world!", 1234, 0xfaf6cdb3],
  ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd],
  ["ππππππππ", 0x9747b28c, 0xd58063c1], // multi-byte UTF-8
];

describe("murmur3_32", () => {
  it.each(VECTORS)("hashes %j with seed %d to the published value", (input, seed, expected) => {
    const value = typeof input === "string" ? input : Uint8Array.from(input);
    expect(murmur3_32(value, seed)).toBe(expected);
  });

  it("hashes a string as its UTF-8 bytes", () => {
    for (const s of ["", "naïve", "数据投毒", "emoji 🧪 test", "a".repeat(1000)]) {
      expect(murmur3_32(s, 7)).toBe(murmur3_32(new TextEncoder().encode(s), 7));
    }
  });

  it("hashes a byte range like a copy of those bytes", () => {
    const bytes = new TextEncoder().encode("<poisoning>");
    for (let from = 0; from < bytes.length; from++) {
      for (let to = from; to <= bytes.length; to++) {
        expect(murmur3_32(bytes, 3, from, to)).toBe(murmur3_32(bytes.slice(from, to), 3));
      }
    }
  });

  it("hashes an integer like its four little-endian bytes", () => {
    for (const v of [0, 1, 255, 0x12345678, 0xffffffff, 0x80000000]) {
      const bytes = new Uint8Array(new Uint32Array([v]).buffer);
      expect(murmur3_32_int(v, 99)).toBe(murmur3_32(bytes, 99));
    }
  });

  it("spreads consecutive keys evenly over buckets (chi-square)", () => {
    const buckets = 256;
    const n = 256_000;
    const counts = new Float64Array(buckets);
    for (let i = 0; i < n; i++) counts[murmur3_32(`token${i}`, 0) & (buckets - 1)]! += 1;
    const expected = n / buckets;
    const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    // 255 degrees of freedom: the 99.9% quantile is about 330.
    expect(chi2).toBeLessThan(330);
    expect(chi2).toBeGreaterThan(180); // far too even would be just as suspicious
  });
});
