import { describe, expect, it } from "vitest";
import {
  betaBinomialUpperTail,
  centered,
  chiSquaredQuantile,
  columnMeans,
  covariance,
  gatherRows,
  inverseSqrt,
  logGamma,
  logNormalUpperTail,
  logUpperTailPValues,
  mahalanobisSquared,
  minorMode,
  multiply,
  normalQuantile,
  principalComponents,
  project,
  quantile,
  robustCovariance,
  symmetricEigen,
  topEigenvectors,
  transpose,
  zeros,
  type Matrix,
} from "../../src/math/linalg.js";
import { Rng } from "../../src/math/rng.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

function randomMatrix(rows: number, cols: number, rng: Rng): Matrix {
  const m = zeros(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.normal();
  return m;
}

/** A random symmetric positive semi-definite matrix XᵀX / rows. */
function randomCovariance(dims: number, rng: Rng): Matrix {
  const x = randomMatrix(dims * 2, dims, rng);
  // Stretch a few directions so the spectrum has a clear top.
  for (let r = 0; r < x.rows; r++)
    for (let c = 0; c < 3; c++) x.data[r * dims + c] = x.data[r * dims + c]! * (5 - c);
  return covariance(x, columnMeans(x));
}

describe("symmetric eigendecomposition", () => {
  it("satisfies A·v = λ·v with orthonormal vectors and descending values", () => {
    const rng = new Rng(1);
    const a = randomCovariance(40, rng);
    const { values, vectors } = symmetricEigen(a);
    for (let k = 1; k < 40; k++) expect(values[k]!).toBeLessThanOrEqual(values[k - 1]!);
    const av = multiply(vectors, a); // rows: (A v_k)ᵀ since A is symmetric
    for (let k = 0; k < 40; k++)
      for (let i = 0; i < 40; i++)
        expect(Math.abs(av.data[k * 40 + i]! - values[k]! * vectors.data[k * 40 + i]!)).toBeLessThan(1e-9);
    const gram = multiply(vectors, transpose(vectors));
    for (let i = 0; i < 40; i++)
      for (let j = 0; j < 40; j++)
        expect(Math.abs(gram.data[i * 40 + j]! - (i === j ? 1 : 0))).toBeLessThan(1e-10);
  });

  it("knows a 2 × 2 answer", () => {
    const { values, vectors } = symmetricEigen({ rows: 2, cols: 2, data: Float64Array.from([2, 1, 1, 2]) });
    expect(Array.from(values)).toEqual([expect.closeTo(3, 12), expect.closeTo(1, 12)]);
    expect(Math.abs(vectors.data[0]!)).toBeCloseTo(Math.SQRT1_2, 12);
  });

  it("subspace iteration finds the same top eigenpairs from the operator alone", () => {
    const rng = new Rng(2);
    const a = randomCovariance(60, rng);
    const exact = symmetricEigen(a);
    const top = topEigenvectors((block) => multiply(block, a), 60, 3, { seed: 5 });
    for (let k = 0; k < 3; k++) {
      expect(top.values[k]!).toBeCloseTo(exact.values[k]!, 6);
      let dot = 0;
      for (let i = 0; i < 60; i++) dot += top.vectors.data[k * 60 + i]! * exact.vectors.data[k * 60 + i]!;
      expect(Math.abs(dot)).toBeCloseTo(1, 6);
    }
  });
});

describe("principal components and whitening", () => {
  it.runIf(hasFashionMnist())(
    "the wide-row path (the central 17 × 17 Fashion-MNIST pixels) agrees with the exact eigendecomposition",
    () => {
      // 289 columns: above the exact path's 256, small enough for the Jacobi reference to be quick.
      const side = 17;
      const cols = side * side;
      const images = fashionMnistSamples(1500);
      const x = zeros(images.length, cols);
      images.forEach((s, r) => {
        for (let i = 0; i < side; i++)
          for (let j = 0; j < side; j++)
            x.data[r * cols + i * side + j] = s.image!.data[(i + 5) * 28 + j + 5]!;
      });
      const wide = principalComponents(x, 5, { seed: 1 });
      const exact = symmetricEigen(covariance(x, columnMeans(x)));
      for (let k = 0; k < 5; k++) {
        expect(wide.variances[k]! / exact.values[k]!).toBeCloseTo(1, 4);
        let dot = 0;
        for (let i = 0; i < cols; i++)
          dot += wide.components.data[k * cols + i]! * exact.vectors.data[k * cols + i]!;
        expect(Math.abs(dot)).toBeGreaterThan(0.999);
      }
      // Projections on the components have the components' variances.
      const scores = project(x, wide.components, wide.mean);
      const v = covariance(scores, columnMeans(scores));
      for (let k = 0; k < 5; k++) expect(v.data[k * 5 + k]! / wide.variances[k]!).toBeCloseTo(1, 4);
    },
  );

  it("S^(−1/2) whitens: W·S·W = I, and Mahalanobis distances are squared norms after whitening", () => {
    const rng = new Rng(3);
    const s = randomCovariance(12, rng);
    const w = inverseSqrt(s);
    const wsw = multiply(multiply(w, s), w);
    for (let i = 0; i < 12; i++)
      for (let j = 0; j < 12; j++)
        expect(Math.abs(wsw.data[i * 12 + j]! - (i === j ? 1 : 0))).toBeLessThan(1e-8);
    const x = randomMatrix(5, 12, rng);
    const mean = new Float64Array(12);
    const d2 = mahalanobisSquared(x, mean, w);
    const sInv = multiply(w, w);
    for (let r = 0; r < 5; r++) {
      const row = x.data.subarray(r * 12, (r + 1) * 12);
      let q = 0;
      for (let i = 0; i < 12; i++)
        for (let j = 0; j < 12; j++) q += row[i]! * sInv.data[i * 12 + j]! * row[j]!;
      expect(d2[r]!).toBeCloseTo(q, 8);
    }
  });

  it("weighted means and covariances count each row its weight", () => {
    const x: Matrix = { rows: 3, cols: 2, data: Float64Array.from([0, 0, 2, 2, 10, -10]) };
    const mean = columnMeans(x, [1, 1, 0]);
    expect(Array.from(mean)).toEqual([1, 1]);
    expect(Array.from(covariance(x, mean, [1, 1, 0]).data)).toEqual([1, 1, 1, 1]);
    expect(Array.from(centered(gatherRows(Float32Array.from([1, 2, 3, 4]), 2, [1]), mean).data)).toEqual([
      2, 3,
    ]);
  });
});

describe("robust covariance (MCD)", () => {
  it("keeps 15% planted outliers out of the estimate that the plain covariance follows", () => {
    const rng = new Rng(4);
    const n = 1000;
    const p = 6;
    const x = randomMatrix(n, p, rng);
    const outliers = 150;
    for (let r = 0; r < outliers; r++) for (let c = 0; c < p; c++) x.data[r * p + c] = 8 + rng.normal() * 0.5;
    const plain = columnMeans(x);
    const robust = robustCovariance(x);
    expect(plain[0]!).toBeGreaterThan(1);
    for (let c = 0; c < p; c++) expect(Math.abs(robust.mean[c]!)).toBeLessThan(0.15);
    for (let c = 0; c < p; c++) expect(robust.covariance.data[c * p + c]!).toBeCloseTo(1, 0);
    let outlierSupport = 0;
    for (let r = 0; r < outliers; r++) outlierSupport += robust.support[r]!;
    expect(outlierSupport).toBe(0);
    // Inliers: about 97.5% inside the χ² cut-off they were reweighted with.
    let inlierSupport = 0;
    for (let r = outliers; r < n; r++) inlierSupport += robust.support[r]!;
    expect(inlierSupport / (n - outliers)).toBeGreaterThan(0.95);
    for (let r = 0; r < outliers; r++) expect(robust.distances[r]!).toBeGreaterThan(100);
  });
});

describe("distributions", () => {
  it("normal and χ² quantiles, normal tails and ln Γ match tabulated values", () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361341, 4);
    expect(chiSquaredQuantile(0.5, 10)).toBeCloseTo(9.3418, 1);
    expect(chiSquaredQuantile(0.975, 16)).toBeCloseTo(28.845, 0);
    expect(Math.exp(logNormalUpperTail(1.96))).toBeCloseTo(0.025, 4);
    expect(logNormalUpperTail(10) / Math.LN10).toBeCloseTo(Math.log10(7.6198530241604696e-24), 3);
    expect(Math.exp(logNormalUpperTail(-1))).toBeCloseTo(0.841345, 5);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
  });

  it("the beta-binomial tail is a tail of a distribution and tends to the binomial", () => {
    expect(betaBinomialUpperTail(0, 10, 2, 3)).toBe(1);
    expect(betaBinomialUpperTail(11, 10, 2, 3)).toBe(0);
    const pmf = Array.from(
      { length: 11 },
      (_, m) => betaBinomialUpperTail(m, 10, 2, 3) - betaBinomialUpperTail(m + 1, 10, 2, 3),
    );
    expect(pmf.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    for (const q of pmf) expect(q).toBeGreaterThanOrEqual(-1e-15);
    // a, b → ∞ with a/(a+b) = 0.2: Binomial(10, 0.2), P(M ≥ 5) = 0.0327935.
    expect(betaBinomialUpperTail(5, 10, 2e6, 8e6)).toBeCloseTo(0.0327935, 5);
  });

  it("tail p-values follow the data's own tail", () => {
    const rng = new Rng(6);
    const x = Float64Array.from({ length: 20000 }, () => -Math.log(1 - rng.next())); // Exp(1)
    const lnP = logUpperTailPValues(x);
    // For Exp(1), P(X ≥ x) = e^(−x): the fitted tail recovers it beyond the 90% quantile.
    for (let i = 0; i < 200; i++) {
      if (x[i]! < 3) continue;
      expect(Math.abs(lnP[i]! + x[i]!)).toBeLessThan(0.2);
    }
    expect(Math.exp(lnP[x.indexOf(Math.min(...x))]!)).toBeCloseTo(1, 3);
    expect(quantile([3, 1, 2, NaN], 0.5)).toBe(2);
  });
});

describe("minorMode", () => {
  const normal = (rng: Rng, n: number, mean: number, sd: number) =>
    Array.from({ length: n }, () => mean + sd * rng.normal());

  it("finds a separate group and cuts in the valley before it", () => {
    const rng = new Rng(7);
    const bulk = normal(rng, 1200, 0, 1);
    const group = normal(rng, 60, 9, 1.5);
    const m = minorMode(
      [...bulk, ...group].map((v) => -v),
      { minCount: 10 },
    )!;
    expect(m.separated).toBe(true);
    expect(m.side).toBe(-1);
    expect(m.cut).toBeGreaterThan(3);
    expect(m.cut).toBeLessThan(6.5);
    expect(Math.abs(m.count - 60)).toBeLessThanOrEqual(3);
    expect(m.dipRatio).toBeLessThan(0.2);
  });

  it("sees no separate mode in one normal population or in a heavy tail", () => {
    const rng = new Rng(8);
    expect(minorMode(normal(rng, 3000, 0, 1), { minCount: 10 })!.separated).toBe(false);
    // Log-normal: skewed with a long right tail, but one mode.
    const skewed = Array.from({ length: 3000 }, () => Math.exp(rng.normal()));
    expect(minorMode(skewed, { minCount: 10 })!.separated).toBe(false);
    // Student t with 2 degrees of freedom: heavy tails on both sides.
    const heavy = Array.from(
      { length: 3000 },
      () => rng.normal() / Math.sqrt((rng.normal() ** 2 + rng.normal() ** 2) / 2),
    );
    expect(minorMode(heavy, { minCount: 10 })!.separated).toBe(false);
  });

  it("does not call a far group a mode when it has fewer than minCount members", () => {
    const rng = new Rng(9);
    const values = [...normal(rng, 1000, 0, 1), 30, 31, 32];
    const m = minorMode(values, { minCount: 10 })!;
    expect(m.separated).toBe(false);
    expect(minorMode([])).toBeNull();
  });
});
