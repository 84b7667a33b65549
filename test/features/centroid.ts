// A nearest-centroid classifier for tests: if features carry the class signal, the mean of
// each class's training rows predicts held-out rows well; a broken featurizer does not.
import { addSparseTo, sparseDenseDot, type SparseVector } from "../../src/math/sparse.js";

export type Metric = "cosine" | "euclidean";

/** Accuracy on the odd-indexed rows of centroids fitted on the even-indexed rows (half/half split). */
export function nearestCentroidAccuracy(
  rows: (SparseVector | Float32Array)[],
  labels: (string | null)[],
  dims: number,
  metric: Metric = "cosine",
): number {
  const sums = new Map<string, Float64Array>();
  const counts = new Map<string, number>();
  rows.forEach((row, i) => {
    const label = labels[i];
    if (i % 2 === 1 || label == null) return;
    if (!sums.has(label)) sums.set(label, new Float64Array(dims));
    add(sums.get(label)!, row);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  });
  const centroids = [...sums].map(([label, sum]) => {
    const c = sum.map((v) => v / counts.get(label)!);
    return { label, c, norm: Math.sqrt(dot(c, c)) };
  });
  let correct = 0;
  let total = 0;
  rows.forEach((row, i) => {
    if (i % 2 === 0) return;
    total++;
    let best = "";
    let bestScore = -Infinity;
    for (const { label, c, norm } of centroids) {
      // cosine: x·c/|c| (|x| is common to all classes); euclidean: −|x−c|² = 2x·c − |c|² + const.
      const score = metric === "cosine" ? rowDot(row, c) / norm : 2 * rowDot(row, c) - norm * norm;
      if (score > bestScore) [best, bestScore] = [label, score];
    }
    if (best === labels[i]) correct++;
  });
  return correct / total;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function rowDot(row: SparseVector | Float32Array, c: Float64Array): number {
  return row instanceof Float32Array ? dot(row, c) : sparseDenseDot(row, c);
}

function add(sum: Float64Array, row: SparseVector | Float32Array): void {
  if (row instanceof Float32Array) row.forEach((v, i) => (sum[i]! += v));
  else addSparseTo(sum, row);
}
