import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  addSparseTo,
  l2NormalizeSparse,
  sparseCosine,
  sparseDenseDot,
  sparseDot,
  sparseFromEntries,
  sparseNorm,
  sparseToDense,
  type SparseVector,
} from "../../src/math/sparse.js";

const DIMS = 64;

// Random sparse vectors as (distinct index → value) maps, so the dense oracle is independent.
const sparseArb = fc
  .dictionary(
    fc.integer({ min: 0, max: DIMS - 1 }).map(String),
    fc.double({ min: -10, max: 10, noNaN: true, noDefaultInfinity: true }),
    { maxKeys: 20 },
  )
  .map((entries) => {
    const keys = Object.keys(entries).map(Number);
    return sparseFromEntries(
      keys,
      keys.map((k) => Math.fround(entries[String(k)]!)),
    );
  });

describe("sparse vectors", () => {
  it("builds sorted indices and drops zeros", () => {
    const v = sparseFromEntries([9, 2, 5, 7], [1.5, -2, 0, 4]);
    expect(Array.from(v.indices)).toEqual([2, 7, 9]);
    expect(Array.from(v.values)).toEqual([-2, 4, 1.5]);
  });

  it("dot, dense dot, norm and cosine agree with the dense computation (property)", () => {
    fc.assert(
      fc.property(sparseArb, sparseArb, (a, b) => {
        const da = sparseToDense(a, DIMS);
        const db = sparseToDense(b, DIMS);
        const dot = da.reduce((s, x, i) => s + x * db[i]!, 0);
        const na = Math.sqrt(da.reduce((s, x) => s + x * x, 0));
        const nb = Math.sqrt(db.reduce((s, x) => s + x * x, 0));
        expect(sparseDot(a, b)).toBeCloseTo(dot, 6);
        expect(sparseDot(b, a)).toBeCloseTo(dot, 6);
        expect(sparseDenseDot(a, db)).toBeCloseTo(dot, 6);
        expect(sparseNorm(a)).toBeCloseTo(na, 6);
        expect(sparseCosine(a, b)).toBeCloseTo(na === 0 || nb === 0 ? 0 : dot / (na * nb), 6);
      }),
      { numRuns: 300 },
    );
  });

  it("normalises to unit length in place, leaving a zero vector alone", () => {
    const v = sparseFromEntries([1, 4], [3, 4]);
    expect(l2NormalizeSparse(v)).toBe(v);
    expect(Array.from(v.values)).toEqual([0.6000000238418579, 0.800000011920929]);
    const zero: SparseVector = { indices: new Uint32Array(0), values: new Float32Array(0) };
    expect(sparseNorm(l2NormalizeSparse(zero))).toBe(0);
    expect(sparseCosine(zero, v)).toBe(0);
  });

  it("accumulates scaled vectors into a dense buffer", () => {
    const acc = new Float64Array(6);
    addSparseTo(acc, sparseFromEntries([0, 5], [1, 2]), 2);
    addSparseTo(acc, sparseFromEntries([5, 3], [1, 1]));
    expect(Array.from(acc)).toEqual([2, 0, 0, 1, 0, 5]);
  });
});
