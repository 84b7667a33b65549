import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  addObservation,
  emptyMoments,
  mergeMoments,
  momentsOfRows,
  standardDeviation,
  variance,
  type Moments,
} from "../../src/math/moments.js";
import { Rng } from "../../src/math/rng.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

describe("moments", () => {
  it.runIf(hasFashionMnist())(
    "merging shards equals one pass and a naive two-pass computation (Fashion-MNIST pixels)",
    () => {
      const rows = fashionMnistSamples(600).map((s) => s.image!.data);
      const dims = 784;
      const onePass = welford(rows, dims);
      const shards = [rows.slice(0, 100), rows.slice(100, 101), rows.slice(101, 450), rows.slice(450)];
      const merged = shards.map((s) => welford(s, dims)).reduce(mergeMoments);
      const naive = twoPass(rows, dims);
      const mergedVar = variance(merged);
      const onePassVar = variance(onePass);
      expect(merged.count).toBe(600);
      for (let d = 0; d < dims; d++) {
        expect(Math.abs(merged.mean[d]! - onePass.mean[d]!)).toBeLessThan(1e-9);
        expect(Math.abs(merged.mean[d]! - naive.mean[d]!)).toBeLessThan(1e-9);
        expect(Math.abs(mergedVar[d]! - onePassVar[d]!)).toBeLessThan(1e-9);
        expect(Math.abs(mergedVar[d]! - naive.variance[d]!)).toBeLessThan(1e-9);
      }
      // Real data, so the check is not vacuous: most pixels vary.
      expect(mergedVar.filter((v) => v > 0.01).length).toBeGreaterThan(500);
    },
  );

  it("stays accurate with a large offset, where the textbook sum-of-squares formula cancels", () => {
    const rng = new Rng(1);
    const values = Array.from({ length: 10_000 }, () => 1e9 + rng.normal());
    const halves = [values.slice(0, 3_333), values.slice(3_333)].map((h) =>
      welford(
        h.map((v) => [v]),
        1,
      ),
    );
    const merged = mergeMoments(halves[0]!, halves[1]!);
    const exact = twoPass(
      values.map((v) => [v]),
      1,
    );
    expect(Math.abs(variance(merged)[0]! - exact.variance[0]!)).toBeLessThan(1e-6);
    expect(variance(merged)[0]).toBeGreaterThan(0.9);
    expect(variance(merged)[0]).toBeLessThan(1.1);
  });

  it("merge is associative and commutative, and empty is its identity (property)", () => {
    const vectors = fc.array(
      fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 3, maxLength: 3 }),
      {
        maxLength: 30,
      },
    );
    fc.assert(
      fc.property(vectors, vectors, vectors, (xa, xb, xc) => {
        const [a, b, c] = [xa, xb, xc].map((rows) => welford(rows, 3)) as [Moments, Moments, Moments];
        const left = mergeMoments(mergeMoments(a, b), c);
        const right = mergeMoments(a, mergeMoments(b, c));
        const swapped = mergeMoments(c, mergeMoments(b, a));
        const all = welford([...xa, ...xb, ...xc], 3);
        for (const m of [
          right,
          swapped,
          all,
          mergeMoments(left, emptyMoments(3)),
          mergeMoments(emptyMoments(3), left),
        ]) {
          expect(m.count).toBe(left.count);
          for (let d = 0; d < 3; d++) {
            expect(m.mean[d]).toBeCloseTo(left.mean[d]!, 6);
            expect(m.m2[d]! / Math.max(1, m.count)).toBeCloseTo(left.m2[d]! / Math.max(1, left.count), 4);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it("momentsOfRows gives the per-column moments of a row-major block", () => {
    const rng = new Rng(2);
    const rows = Array.from({ length: 50 }, () => [rng.normal(), 5 + 2 * rng.normal(), 7]);
    const block = momentsOfRows(rows.flat(), 3);
    const ref = welford(rows, 3);
    expect(block.count).toBe(50);
    for (let d = 0; d < 3; d++) {
      expect(block.mean[d]).toBeCloseTo(ref.mean[d]!, 12);
      expect(block.m2[d]).toBeCloseTo(ref.m2[d]!, 9);
    }
    expect(standardDeviation(block)[2]).toBe(0);
  });

  it("reports population and sample variance, and zero for too few observations", () => {
    const m = welford([[1], [2], [3], [4]], 1);
    expect(variance(m)[0]).toBeCloseTo(1.25, 12);
    expect(variance(m, 1)[0]).toBeCloseTo(5 / 3, 12);
    expect(variance(welford([[3]], 1), 1)[0]).toBe(0);
    expect(variance(emptyMoments(2))).toEqual(new Float64Array(2));
  });

  it("refuses vectors of another dimension", () => {
    expect(() => addObservation(emptyMoments(2), [1, 2, 3])).toThrow(RangeError);
    expect(() => mergeMoments(emptyMoments(2), emptyMoments(3))).toThrow(RangeError);
  });
});

function welford(rows: ArrayLike<number>[], dims: number): Moments {
  const m = emptyMoments(dims);
  for (const r of rows) addObservation(m, r);
  return m;
}

// The definition, with no streaming: mean first, then the mean squared deviation.
function twoPass(rows: ArrayLike<number>[], dims: number) {
  const mean = new Float64Array(dims);
  for (const r of rows) for (let d = 0; d < dims; d++) mean[d]! += r[d]! / rows.length;
  const v = new Float64Array(dims);
  for (const r of rows) for (let d = 0; d < dims; d++) v[d]! += (r[d]! - mean[d]!) ** 2 / rows.length;
  return { mean, variance: v };
}
