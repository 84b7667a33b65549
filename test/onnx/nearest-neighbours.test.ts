import { describe, expect, it } from "vitest";
import { cosineNeighbours } from "../../src/onnx/nearest-neighbours.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

// ONNX Runtime's MatMul + TopK against a plain double-precision scan over the same rows.
describe.runIf(hasFashionMnist())("cosineNeighbours", () => {
  const n = 600;
  const dims = 784;
  const samples = fashionMnistSamples(n);
  const data = new Float32Array(n * dims);
  samples.forEach((s, i) => data.set(s.image!.data, i * dims));
  const cosine = (a: number, b: number): number => {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let d = 0; d < dims; d++) {
      const x = data[a * dims + d]!;
      const y = data[b * dims + d]!;
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    return dot / Math.sqrt(na * nb);
  };

  it("finds each image's most similar references, most similar first, never itself", async () => {
    // Every other image is a reference: half the rows are references themselves, half are not.
    const reference = Int32Array.from({ length: n / 2 }, (_, m) => 2 * m);
    const k = 7;
    const progress: number[] = [];
    const found = await cosineNeighbours({ data, rows: n, dims }, reference, k, (done) =>
      progress.push(done),
    );
    expect(found).toHaveLength(n * k);
    expect(progress.at(-1)).toBe(n);
    let exact = 0;
    for (let i = 0; i < n; i++) {
      const truth = Array.from(reference)
        .filter((r) => r !== i)
        .map((r) => ({ r, s: cosine(i, r) }))
        .sort((a, b) => b.s - a.s)
        .slice(0, k);
      const mine = Array.from(found.subarray(i * k, (i + 1) * k));
      expect(mine).not.toContain(i);
      expect(mine.every((r) => r % 2 === 0)).toBe(true);
      // Float32 products may swap near-ties; each neighbour must be as similar as the k-th true one.
      const kth = truth[k - 1]!.s;
      for (const r of mine) expect(cosine(i, r)).toBeGreaterThanOrEqual(kth - 1e-5);
      const sims = mine.map((r) => cosine(i, r));
      for (let t = 1; t < k; t++) expect(sims[t]!).toBeLessThanOrEqual(sims[t - 1]! + 1e-5);
      if (mine.join() === truth.map((t) => t.r).join()) exact++;
    }
    expect(exact / n).toBeGreaterThan(0.95);
  });

  it("refuses a k the references cannot give", async () => {
    await expect(cosineNeighbours({ data, rows: n, dims }, Int32Array.from([0, 1, 2]), 3)).rejects.toThrow(
      /k = 3 needs 1 ≤ k < 3/,
    );
  });
});
