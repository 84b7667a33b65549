import { describe, expect, it } from "vitest";
import { Rng } from "../../src/math/rng.js";
import { foolsGold, FOOLSGOLD_WEIGHT_FLOOR } from "../../src/robust/foolsgold.js";
import { inMemoryUpdates } from "../../src/robust/matrix.js";
import type { UpdateMatrix } from "../../src/robust/types.js";

const rows32 = (rows: readonly (readonly number[])[]): Float32Array[] =>
  rows.map((r) => Float32Array.from(r));

/** 10 honest clients with their own (non-IID) directions and 3 sybils pushing one poisoned direction. */
function sybilRound(d: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const honest = Array.from({ length: 10 }, () => Float32Array.from({ length: d }, () => rng.normal()));
  const poison = Float32Array.from({ length: d }, () => rng.normal());
  const sybils = Array.from({ length: 3 }, () => poison.map((v) => v + 0.01 * rng.normal()));
  // Interleave so the sybils are not simply the last rows.
  return [honest[0]!, sybils[0]!, ...honest.slice(1, 5), sybils[1]!, ...honest.slice(5), sybils[2]!];
}
const SYBILS = [1, 6, 12];

describe("FoolsGold", () => {
  it("gives near-identical sybils weight 0 and flags them, while diverse honest clients keep weight 1", () => {
    const r = foolsGold(inMemoryUpdates(sybilRound(500, 4)));
    r.weights.forEach((w, i) => {
      if (SYBILS.includes(i)) {
        expect(w, `sybil ${i}`).toBe(0);
        expect(r.maxSimilarity[i]!).toBeGreaterThan(0.99);
        expect(r.flagged[i]).toBe(true);
        expect(r.reasons[i]!.join(" ")).toMatch(/near-identical with client (1|6|12) .*likely sybils/);
      } else {
        expect(w, `honest ${i}`).toBeGreaterThan(0.9);
        expect(r.maxSimilarity[i]!).toBeLessThan(0.3);
        expect(r.flagged[i]).toBe(false);
      }
    });
  });

  it("follows the reference algorithm step by step (hand-computed)", () => {
    // s1 = s2 = (1, 0, 0): cosine 1. h = (1, 1, 0): cosine 1/√2 with each s. e = (0, 0, 1): cosine 0.
    // Max similarity: s1 1, s2 1, h 0.7071, e 0.
    // Pardoning h (0.7071 < 1): cs(h, s) = 0.7071 · 0.7071 / 1 = 0.5, so 1 − max = 0.5 for h.
    // wv = (0, 0, 0.5, 1); rescaled by the max 1 (and 1 → 0.99):
    // logit: s → ln 0 → 0; h → ln(0.5/0.5) + 0.5 = 0.5; e → ln(99) + 0.5 = 5.1 → clipped to 1.
    const history = inMemoryUpdates(
      rows32([
        [1, 0, 0],
        [1, 0, 0],
        [1, 1, 0],
        [0, 0, 1],
      ]),
    );
    const r = foolsGold(history);
    expect(r.weights[0]).toBe(0);
    expect(r.weights[1]).toBe(0);
    expect(r.weights[2]).toBeCloseTo(0.5, 9);
    expect(r.weights[3]).toBe(1);
    expect(r.maxSimilarity[2]).toBeCloseTo(Math.SQRT1_2, 9);
    expect(r.flagged).toEqual([true, true, false, false]);
    // Confidence κ scales the logit: h → 0.25 at κ = 0.5, e → 0.5 · 5.1 > 1 → 1.
    const half = foolsGold(history, { confidence: 0.5 });
    expect(half.weights[2]).toBeCloseTo(0.25, 9);
    expect(half.weights[3]).toBe(1);
  });

  it("reads the history in blocks of at most blockSize and gives the same weights as one block", () => {
    const rows = sybilRound(300, 8);
    const inner = inMemoryUpdates(rows);
    let maxLength = 0;
    const matrix: UpdateMatrix = {
      clients: inner.clients,
      dimension: inner.dimension,
      columns(client, start, end) {
        maxLength = Math.max(maxLength, end - start);
        return inner.columns(client, start, end);
      },
    };
    const blocked = foolsGold(matrix, { blockSize: 7 });
    expect(maxLength).toBe(7);
    const whole = foolsGold(inMemoryUpdates(rows), { blockSize: 300 });
    blocked.weights.forEach((w, i) => expect(Math.abs(w - whole.weights[i]!)).toBeLessThan(1e-6));
    blocked.maxSimilarity.forEach((s, i) => expect(Math.abs(s - whole.maxSimilarity[i]!)).toBeLessThan(1e-9));
  });

  it("uses worker threads with the same answer", () => {
    const rows = sybilRound(20_000, 2);
    const one = foolsGold(inMemoryUpdates(rows), { threads: 1 });
    const two = foolsGold(inMemoryUpdates(rows), { threads: 2, blockSize: 1024 });
    two.weights.forEach((w, i) => expect(Math.abs(w - one.weights[i]!)).toBeLessThan(1e-9));
    expect(two.flagged).toEqual(one.flagged);
  });

  it("flags nobody among diverse honest clients", () => {
    const rng = new Rng(12);
    const rows = Array.from({ length: 12 }, () => Float32Array.from({ length: 400 }, () => rng.normal()));
    const r = foolsGold(inMemoryUpdates(rows));
    expect(r.flagged.filter(Boolean)).toEqual([]);
    expect(Math.min(...r.weights)).toBeGreaterThan(FOOLSGOLD_WEIGHT_FLOOR);
  });
});
