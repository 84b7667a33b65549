import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { blendPattern } from "../../src/attack/index.js";
import { fashionMnistSamples } from "../helpers/real-data.js";
import { attack, expectTruthful, victimPositions } from "./oracle.js";

let input: Sample[];
beforeAll(() => {
  input = fashionMnistSamples(2000);
});

/** alpha·pattern = x' − (1 − alpha)·x, so the pattern can be read back from each victim. */
function recoveredPattern(before: Float32Array, after: Float32Array, alpha: number): Float64Array {
  return Float64Array.from(after, (v, i) => (v - (1 - alpha) * (before[i] ?? NaN)) / alpha);
}

describe("blend (Chen et al. 2017)", () => {
  it("mixes one fixed noise image into every victim: x' = (1 − α)·x + α·pattern", async () => {
    const alpha = 0.1;
    const { out, gt } = await attack(input, { kind: "blend", target: "Sneaker", rate: 0.015, seed: 3 });
    expectTruthful(input, out, gt, 30);
    const expected = blendPattern("noise", 28, 28, 1, { seed: 3, cell: 2 });
    let first: Float64Array | undefined;
    for (const i of victimPositions(input, gt)) {
      const before = input[i]?.image?.data;
      const after = out[i]?.image?.data;
      if (before === undefined || after === undefined) throw new Error("missing image");
      expect(input[i]?.label).not.toBe("Sneaker");
      expect(out[i]?.label).toBe("Sneaker");
      const pattern = recoveredPattern(before, after, alpha);
      pattern.forEach((p, k) => expect(p).toBeCloseTo(expected[k] ?? NaN, 5));
      // The same trigger in every victim, and it is noise: spread over [0, 1], not flat.
      first ??= pattern;
      pattern.forEach((p, k) => expect(p).toBeCloseTo(first?.[k] ?? NaN, 5));
    }
    const values = Array.from(first ?? []);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    expect(mean).toBeGreaterThan(0.4);
    expect(mean).toBeLessThan(0.6);
    expect(sd).toBeGreaterThan(0.25); // uniform noise: 1/√12 ≈ 0.289
  });

  it("blends a checkerboard at the given alpha, with a pattern seed independent of the victim seed", async () => {
    const alpha = 0.2;
    const spec = {
      kind: "blend",
      target: "Bag",
      count: 12,
      alpha,
      pattern: "checkerboard",
      cell: 1,
    } as const;
    const { out, gt } = await attack(input, spec);
    expectTruthful(input, out, gt, 12);
    for (const i of victimPositions(input, gt)) {
      const pattern = recoveredPattern(
        input[i]?.image?.data ?? new Float32Array(),
        out[i]?.image?.data ?? new Float32Array(),
        alpha,
      );
      pattern.forEach((p, k) => expect(p).toBeCloseTo(((k % 28) + Math.floor(k / 28)) % 2 === 0 ? 1 : 0, 5));
    }

    const a = await attack(input, { kind: "blend", target: "Bag", count: 5, seed: 1, patternSeed: 99 });
    const b = await attack(input, { kind: "blend", target: "Bag", count: 5, seed: 2, patternSeed: 99 });
    const [ia] = victimPositions(input, a.gt);
    const [ib] = victimPositions(input, b.gt);
    const pa = recoveredPattern(
      input[ia ?? 0]?.image?.data ?? new Float32Array(),
      a.out[ia ?? 0]?.image?.data ?? new Float32Array(),
      0.1,
    );
    const pb = recoveredPattern(
      input[ib ?? 0]?.image?.data ?? new Float32Array(),
      b.out[ib ?? 0]?.image?.data ?? new Float32Array(),
      0.1,
    );
    pa.forEach((p, k) => expect(p).toBeCloseTo(pb[k] ?? NaN, 5));
    expect(victimPositions(input, a.gt)).not.toEqual(victimPositions(input, b.gt));
  });

  it("draws vertical stripes of `cell` pixels", () => {
    const stripes = blendPattern("stripes", 4, 8, 3, { seed: 0, cell: 2 });
    const row = Array.from({ length: 8 }, (_, x) => stripes[x * 3]);
    expect(row).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
    expect(stripes[(3 * 8 + 3) * 3 + 2]).toBe(0); // every row and channel alike
  });
});
