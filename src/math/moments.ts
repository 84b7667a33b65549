// Streaming per-dimension mean and variance that shards can compute apart and merge
// exactly: Welford's update for one observation, and the pairwise combination of Chan,
// Golub & LeVeque (1979) for two summaries. Float64 throughout, so that a million
// float32 observations still give a variance accurate to ~1e-12 relative.

/** A mergeable summary of `count` observations of a `mean.length`-dimensional vector. */
export interface Moments {
  count: number;
  mean: Float64Array;
  /** Sum of squared deviations from the mean, per dimension. */
  m2: Float64Array;
}

export function emptyMoments(dims: number): Moments {
  return { count: 0, mean: new Float64Array(dims), m2: new Float64Array(dims) };
}

export function copyMoments(m: Moments): Moments {
  return { count: m.count, mean: m.mean.slice(), m2: m.m2.slice() };
}

/** Welford's update with one observation, in place. */
export function addObservation(m: Moments, x: ArrayLike<number>): void {
  checkDims(m.mean.length, x.length);
  const n = ++m.count;
  for (let d = 0; d < x.length; d++) {
    const v = x[d] as number;
    const delta = v - (m.mean[d] as number);
    const mean = (m.mean[d] as number) + delta / n;
    m.mean[d] = mean;
    m.m2[d] = (m.m2[d] as number) + delta * (v - mean);
  }
}

/**
 * Chan et al.'s combination: mean = ma + δ·nb/n, M2 = M2a + M2b + δ²·na·nb/n with δ = mb − ma.
 * Returns a new summary; the inputs are left as they are.
 */
export function mergeMoments(a: Moments, b: Moments): Moments {
  checkDims(a.mean.length, b.mean.length);
  const out = emptyMoments(a.mean.length);
  const n = a.count + b.count;
  out.count = n;
  if (n === 0) return out;
  const wb = b.count / n;
  const cross = (a.count * b.count) / n;
  for (let d = 0; d < out.mean.length; d++) {
    const ma = a.mean[d] as number;
    const delta = (b.mean[d] as number) - ma;
    out.mean[d] = ma + delta * wb;
    out.m2[d] = (a.m2[d] as number) + (b.m2[d] as number) + delta * delta * cross;
  }
  return out;
}

/** Exact two-pass moments of `values` read as row-major rows of `dims` (e.g. one HWC image per channel). */
export function momentsOfRows(values: ArrayLike<number>, dims: number): Moments {
  const m = emptyMoments(dims);
  const count = Math.floor(values.length / dims);
  m.count = count;
  if (count === 0) return m;
  for (let i = 0; i < count * dims; i++)
    m.mean[i % dims] = (m.mean[i % dims] as number) + (values[i] as number);
  for (let d = 0; d < dims; d++) m.mean[d] = (m.mean[d] as number) / count;
  for (let i = 0; i < count * dims; i++) {
    const dev = (values[i] as number) - (m.mean[i % dims] as number);
    m.m2[i % dims] = (m.m2[i % dims] as number) + dev * dev;
  }
  return m;
}

/** Per-dimension variance; `ddof` 0 is the population variance, 1 the unbiased sample variance. */
export function variance(m: Moments, ddof = 0): Float64Array {
  const out = new Float64Array(m.mean.length);
  const denom = m.count - ddof;
  if (denom <= 0) return out;
  for (let d = 0; d < out.length; d++) out[d] = Math.max(0, (m.m2[d] as number) / denom);
  return out;
}

export function standardDeviation(m: Moments, ddof = 0): Float64Array {
  return variance(m, ddof).map(Math.sqrt);
}

function checkDims(expected: number, actual: number): void {
  if (expected !== actual) throw new RangeError(`moments of ${expected} dimensions given ${actual} values`);
}
