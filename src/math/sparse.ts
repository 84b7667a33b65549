// Sparse vectors as two parallel typed arrays with strictly increasing indices, so that
// dot products are a merge-join and nothing is allocated per coordinate.

export interface SparseVector {
  /** Strictly increasing coordinate indices. */
  readonly indices: Uint32Array;
  readonly values: Float32Array;
}

/** Dot product of two sparse vectors (merge-join over their sorted indices). */
export function sparseDot(a: SparseVector, b: SparseVector): number {
  const ai = a.indices;
  const bi = b.indices;
  let i = 0;
  let j = 0;
  let sum = 0;
  while (i < ai.length && j < bi.length) {
    const x = ai[i] as number;
    const y = bi[j] as number;
    if (x === y) sum += (a.values[i++] as number) * (b.values[j++] as number);
    else if (x < y) i++;
    else j++;
  }
  return sum;
}

/** Dot product of a sparse vector with a dense one of at least its dimension. */
export function sparseDenseDot(a: SparseVector, dense: ArrayLike<number>): number {
  let sum = 0;
  for (let k = 0; k < a.indices.length; k++)
    sum += (a.values[k] as number) * (dense[a.indices[k] as number] ?? 0);
  return sum;
}

export function sparseNorm(a: SparseVector): number {
  let sum = 0;
  for (const v of a.values) sum += v * v;
  return Math.sqrt(sum);
}

/** Cosine similarity; 0 when either vector is all zeros (no direction to compare). */
export function sparseCosine(a: SparseVector, b: SparseVector): number {
  const na = sparseNorm(a);
  const nb = sparseNorm(b);
  return na === 0 || nb === 0 ? 0 : sparseDot(a, b) / (na * nb);
}

/** Scales `a` to unit L2 norm in place (a zero vector stays zero) and returns it. */
export function l2NormalizeSparse(a: SparseVector): SparseVector {
  const n = sparseNorm(a);
  if (n > 0) for (let k = 0; k < a.values.length; k++) a.values[k] = (a.values[k] as number) / n;
  return a;
}

/** `dense += scale · a`, for accumulating centroids and projections. */
export function addSparseTo(dense: Float32Array | Float64Array, a: SparseVector, scale = 1): void {
  for (let k = 0; k < a.indices.length; k++) {
    const i = a.indices[k] as number;
    dense[i] = (dense[i] as number) + scale * (a.values[k] as number);
  }
}

/** Builds a sparse vector from unsorted (index, value) pairs, dropping zeros; indices must be distinct. */
export function sparseFromEntries(indices: ArrayLike<number>, values: ArrayLike<number>): SparseVector {
  const order = Array.from({ length: indices.length }, (_, k) => k)
    .filter((k) => values[k] !== 0)
    .sort((x, y) => (indices[x] as number) - (indices[y] as number));
  const out = { indices: new Uint32Array(order.length), values: new Float32Array(order.length) };
  order.forEach((k, o) => {
    out.indices[o] = indices[k] as number;
    out.values[o] = values[k] as number;
  });
  return out;
}

/** Expands a sparse vector to a dense Float32Array of `dims` coordinates. */
export function sparseToDense(a: SparseVector, dims: number): Float32Array {
  const out = new Float32Array(dims);
  addSparseTo(out, a);
  return out;
}
