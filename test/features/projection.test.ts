import { beforeAll, describe, expect, it } from "vitest";
import { isAntidoteError } from "../../src/errors.js";
import type { Sample } from "../../src/data/sample.js";
import { memoryDataset } from "../../src/data/memory.js";
import { RandomProjection } from "../../src/features/projection.js";
import { TextFeaturizer } from "../../src/features/text.js";
import { sparseCosine, sparseFromEntries, sparseToDense, type SparseVector } from "../../src/math/sparse.js";
import { Rng } from "../../src/math/rng.js";
import { spamAssassinSamples } from "../helpers/real-data.js";
import { dot, nearestCentroidAccuracy } from "./centroid.js";

const D = 2 ** 18;
const d = 256;

describe("RandomProjection", () => {
  it("is a function of the seed: same seed same output, another seed another", () => {
    const x = sparseFromEntries([3, 1000, 200_000], [0.5, -1, 2]);
    const a = new RandomProjection(D, { seed: 1 }).project(x);
    expect(new RandomProjection(D, { seed: 1 }).project(x)).toEqual(a);
    expect(new RandomProjection(D, { seed: 2 }).project(x)).not.toEqual(a);
    expect(a.length).toBe(d);
  });

  it("gives the same output for a vector in sparse and in dense form", () => {
    const rng = new Rng(5);
    const idx = rng.sample(
      Array.from({ length: 2000 }, (_, i) => i),
      60,
    );
    const x = sparseFromEntries(
      idx,
      idx.map(() => rng.normal()),
    );
    const p = new RandomProjection(2000, { outputDims: 64 });
    expect(p.project(sparseToDense(x, 2000))).toEqual(p.project(x));
  });

  it("is linear", () => {
    const p = new RandomProjection(D);
    const a = sparseFromEntries([1, 5, 9], [1, 2, 3]);
    const b = sparseFromEntries([5, 7], [-1, 4]);
    const sum = sparseFromEntries([1, 5, 7, 9], [1, 1, 4, 3]);
    const pa = p.project(a);
    const pb = p.project(b);
    p.project(sum).forEach((v, j) => expect(v).toBeCloseTo(pa[j]! + pb[j]!, 5));
  });

  // Li, Hastie & Church: entries are ±sqrt(s/d) with probability 1/(2s) each, so each row of R
  // has d/s non-zeros on average and E‖R e_i‖² = 1.
  it("draws ±sqrt(s/d) entries with the requested density, signs balanced, unit expected norm", () => {
    const p = new RandomProjection(D, { seed: 3 });
    expect(p.density).toBeCloseTo(Math.max(1 / Math.sqrt(D), 4 / d), 12);
    const rows = 20_000;
    let nonZero = 0;
    let positive = 0;
    let normSq = 0;
    const magnitude = Math.sqrt(1 / (p.density * d));
    const offMagnitude: number[] = [];
    for (let i = 0; i < rows; i++) {
      const r = p.project(sparseFromEntries([i * 13], [1]));
      for (const v of r) {
        if (v === 0) continue;
        nonZero++;
        if (v > 0) positive++;
        if (Math.abs(Math.abs(v) - magnitude) > 1e-5) offMagnitude.push(v);
      }
      normSq += dot(r, r);
    }
    const expected = rows * d * p.density;
    expect(Math.abs(nonZero - expected)).toBeLessThan(4 * Math.sqrt(expected)); // binomial, 4σ
    expect(Math.abs(positive / nonZero - 0.5)).toBeLessThan(4 * Math.sqrt(0.25 / nonZero));
    expect(offMagnitude).toEqual([]);
    expect(normSq / rows).toBeCloseTo(1, 1);
  });

  it("refuses bad options with a usage error", () => {
    for (const bad of [{ outputDims: 0 }, { density: 0 }, { density: 1.5 }]) {
      let err: unknown;
      try {
        new RandomProjection(10, bad);
      } catch (e) {
        err = e;
      }
      expect(isAntidoteError(err) && err.code === "USAGE").toBe(true);
    }
  });
});

describe("RandomProjection of SpamAssassin TF-IDF vectors to 256 dims", () => {
  let samples: Sample[];
  let tfidf: SparseVector[];
  let projected: Float32Array[];

  beforeAll(async () => {
    samples = spamAssassinSamples(1500);
    const text = new TextFeaturizer();
    await text.fit(memoryDataset(samples).samples());
    tfidf = samples.map((s) => text.transform(s));
    const p = new RandomProjection(text.dims, { outputDims: d, seed: 11 });
    projected = tfidf.map((v) => p.project(v));
  });

  it("keeps spam and ham apart: nearest centroid ≥ 85%", () => {
    const accuracy = nearestCentroidAccuracy(
      projected,
      samples.map((s) => s.label),
      d,
    );
    expect(accuracy).toBeGreaterThanOrEqual(0.85);
  });

  // For unit vectors with cosine ρ, the projected cosine is unbiased with variance about
  // (1 − ρ²)²/d (plus a term in (s − 3)·Σxᵢ²yᵢ²/d that is negligible for e-mails with
  // thousands of non-zero buckets), so its mean absolute error is about sqrt(2/π)/sqrt(d)
  // ≈ 0.050 for d = 256. We allow 0.06.
  it("preserves pairwise cosines within the Johnson–Lindenstrauss error", () => {
    const docs = Array.from({ length: 100 }, (_, i) => i * 15);
    const truth: number[] = [];
    const approx: number[] = [];
    for (let a = 0; a < docs.length; a++) {
      for (let b = a + 1; b < docs.length; b++) {
        const [i, j] = [docs[a]!, docs[b]!];
        truth.push(sparseCosine(tfidf[i]!, tfidf[j]!));
        const x = projected[i]!;
        const y = projected[j]!;
        approx.push(dot(x, y) / Math.sqrt(dot(x, x) * dot(y, y)));
      }
    }
    const mae = mean(truth.map((t, k) => Math.abs(t - approx[k]!)));
    expect(mae).toBeLessThan(0.06);
    const err = truth.map((t, k) => approx[k]! - t);
    expect(Math.abs(mean(err))).toBeLessThan(0.02); // unbiased
    expect(Math.sqrt(mean(err.map((e) => e * e)))).toBeLessThan(1.25 / Math.sqrt(d));
    // These e-mails' true cosines spread by σ ≈ 0.05 around their mean, so with noise of
    // 1/√d the expected correlation is σ/sqrt(σ² + 1/d) ≈ 0.6; an unrelated projection gives 0.
    expect(correlation(truth, approx)).toBeGreaterThan(0.5);
    // Squared norms (all 1 before projection) are preserved to about sqrt(2/d) ≈ 0.09.
    const normErr = mean(docs.map((i) => Math.abs(dot(projected[i]!, projected[i]!) - 1)));
    expect(normErr).toBeLessThan(0.1);
  });
});

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function correlation(xs: number[], ys: number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  xs.forEach((x, k) => {
    sxy += (x - mx) * (ys[k]! - my);
    sxx += (x - mx) ** 2;
    syy += (ys[k]! - my) ** 2;
  });
  return sxy / Math.sqrt(sxx * syy);
}
