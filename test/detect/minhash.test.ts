import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { editText } from "../../src/attack/near-duplicate.js";
import { Rng } from "../../src/math/rng.js";
import {
  MinHasher,
  estimateJaccard,
  exactJaccard,
  lshBanding,
  lshCandidatePairs,
} from "../../src/detect/minhash.js";
import { wordShingles } from "../../src/detect/near-duplicates.js";
import { spamAssassinSamples } from "../helpers/real-data.js";

let emails: Sample[];
let shingles: Uint32Array[];
beforeAll(() => {
  emails = spamAssassinSamples(400);
  shingles = emails.map((e) => wordShingles(e.text ?? ""));
});

/** Real email pairs spanning the whole similarity range: each email with edited copies of itself, and with other emails. */
function pairs(count: number): { a: Uint32Array; b: Uint32Array }[] {
  const rng = new Rng(5);
  const out: { a: Uint32Array; b: Uint32Array }[] = [];
  for (let i = 0; i < count; i++) {
    const k = rng.int(emails.length);
    const text = emails[k]?.text ?? "";
    const kind = i % 3;
    const other =
      kind === 0
        ? editText(text, { editRate: 0.02, suffix: true }, rng)
        : kind === 1
          ? editText(text, { editRate: 0.1 + 0.3 * rng.next(), suffix: false }, rng)
          : (emails[(k + 1 + rng.int(emails.length - 1)) % emails.length]?.text ?? "");
    out.push({ a: shingles[k] as Uint32Array, b: wordShingles(other) });
  }
  return out;
}

describe("MinHash signatures", () => {
  it("estimate the exact Jaccard similarity of real email shingle sets within the sampling error", () => {
    const hasher = new MinHasher({ size: 128 });
    const errors: number[] = [];
    const exacts: number[] = [];
    for (const { a, b } of pairs(300)) {
      const exact = exactJaccard(a, b);
      const estimate = estimateJaccard(hasher.signature(a), hasher.signature(b));
      exacts.push(exact);
      errors.push(estimate - exact);
    }
    // The pairs cover the range, from unrelated emails to light edits.
    expect(Math.min(...exacts)).toBeLessThan(0.2);
    expect(Math.max(...exacts)).toBeGreaterThan(0.85);
    expect(exacts.filter((j) => j > 0.3 && j < 0.8).length).toBeGreaterThan(30);
    // Standard error of one estimate is √(J(1−J)/128) ≤ 0.044: no error beyond 4 of them, and no bias.
    const worst = Math.max(...errors.map(Math.abs));
    const meanAbs = errors.reduce((s, e) => s + Math.abs(e), 0) / errors.length;
    const bias = errors.reduce((s, e) => s + e, 0) / errors.length;
    console.log(
      `MinHash-128 on ${errors.length} real email pairs: mean |error| ${meanAbs.toFixed(3)}, worst ${worst.toFixed(3)}, bias ${bias.toFixed(4)}`,
    );
    expect(worst).toBeLessThan(0.18);
    expect(meanAbs).toBeLessThan(0.035);
    expect(Math.abs(bias)).toBeLessThan(0.01);
  });

  it("depend on the set only (order and repeats do not matter), and on the seed", () => {
    const set = shingles[3] as Uint32Array;
    const shuffled = new Rng(1).shuffle(Array.from(set));
    const hasher = new MinHasher({ size: 64, seed: 9 });
    const sig = hasher.signature(set);
    expect(sig).toHaveLength(64);
    expect(hasher.signature([...shuffled, ...shuffled.slice(0, 10)])).toEqual(sig);
    expect(estimateJaccard(new MinHasher({ size: 64, seed: 10 }).signature(set), sig)).toBeLessThan(0.2);
    expect(estimateJaccard(sig, sig)).toBe(1);
  });

  it("fill empty bins so that tiny sets still compare correctly", () => {
    const hasher = new MinHasher({ size: 128 });
    const tiny = Uint32Array.from([1, 2, 3]);
    const same = hasher.signature(tiny);
    expect(estimateJaccard(same, hasher.signature(Uint32Array.from([3, 2, 1])))).toBe(1);
    expect(same.every((v) => v !== 0xffffffff)).toBe(true); // every bin holds a real value
    expect(estimateJaccard(same, hasher.signature(Uint32Array.from([4, 5, 6])))).toBeLessThan(0.3);
    expect(hasher.signatureInto(new Uint32Array(0), new Uint32Array(128))).toBe(false);
  });

  it("refuse a size that is not a power of two", () => {
    expect(() => new MinHasher({ size: 100 })).toThrow(/power of two/);
  });
});

describe("LSH banding", () => {
  it("puts the S-curve's steep part at the threshold", () => {
    for (const threshold of [0.5, 0.7, 0.8]) {
      const { bands, rows } = lshBanding(threshold, 128);
      expect(bands * rows).toBe(128);
      const at = (s: number) => 1 - (1 - s ** rows) ** bands;
      expect(at(threshold + 0.15)).toBeGreaterThan(0.9);
      expect(at(threshold - 0.3)).toBeLessThan(0.15);
    }
    expect(() => lshBanding(1.2, 128)).toThrow(/between 0 and 1/);
  });

  it("finds near-duplicate pairs among real emails without comparing every pair", () => {
    const rng = new Rng(3);
    const texts = emails.slice(0, 200).map((e) => e.text ?? "");
    // 40 lightly edited copies of 20 emails, appended.
    for (let i = 0; i < 40; i++)
      texts.push(editText(texts[i % 20] ?? "", { editRate: 0.02, suffix: true }, rng));
    const sets = texts.map((t) => wordShingles(t));
    const size = 128;
    const hasher = new MinHasher({ size });
    const sigs = new Uint32Array(texts.length * size);
    const present = new Uint8Array(texts.length);
    sets.forEach((s, i) => (present[i] = hasher.signatureInto(s, sigs, i * size) ? 1 : 0));
    const found = lshCandidatePairs(sigs, texts.length, size, lshBanding(0.7, size), present);
    const candidate = new Set<string>();
    for (let x = 0; x < found.length; x += 2) {
      expect(found[x]).toBeLessThan(found[x + 1] as number);
      candidate.add(`${found[x]},${found[x + 1]}`);
    }
    expect(candidate.size).toBe(found.length / 2); // no repeats
    const asSets = sets.map((s) => new Set(s));
    const jaccard = (a: Set<number>, b: Set<number>) => {
      let both = 0;
      for (const x of a) if (b.has(x)) both++;
      return both / (a.size + b.size - both);
    };
    let similar = 0;
    let missed = 0;
    let dissimilarCandidates = 0;
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const exact = jaccard(asSets[i] as Set<number>, asSets[j] as Set<number>);
        const isCandidate = candidate.has(`${i},${j}`);
        if (exact >= 0.8) {
          similar++;
          if (!isCandidate) missed++;
        } else if (exact < 0.3 && isCandidate) dissimilarCandidates++;
      }
    }
    expect(similar).toBeGreaterThanOrEqual(40); // most copies with their original, copies of one email together
    expect(missed / similar).toBeLessThan(0.02);
    expect(dissimilarCandidates).toBeLessThan(5);
    expect(found.length / 2).toBeLessThan((texts.length * (texts.length - 1)) / 2 / 50);
  });

  it("chains the members of a huge bucket instead of listing all pairs", () => {
    const size = 32;
    const count = 500;
    const sigs = new Uint32Array(count * size).fill(7); // 500 identical signatures
    const found = lshCandidatePairs(sigs, count, size, { bands: 8, rows: 4 }, undefined, { maxBucket: 100 });
    expect(found.length / 2).toBe(count - 1);
    // A chain: every member is linked, so union–find makes one cluster.
    const linked = new Set(Array.from(found));
    expect(linked.size).toBe(count);
    expect(() => lshCandidatePairs(sigs, count, size, { bands: 5, rows: 4 })).toThrow(/does not cover/);
  });
});
