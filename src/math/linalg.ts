// Dense linear algebra and robust statistics for the feature-space detectors, on Float64
// row-major matrices: means and covariances, symmetric eigendecomposition (cyclic Jacobi —
// exact, and fast enough for the ≤ 256-wide covariances detectors form), top eigenvectors
// by subspace iteration with a Rayleigh–Ritz step (for wider features, without forming the
// covariance), principal components, a minimum-covariance-determinant estimate of location
// and scatter (Rousseeuw & Van Driessen's C-steps from a deterministic robust start), whitening,
// Mahalanobis distances; and the one-dimensional statistics their cut-offs rest on: median/MAD,
// quantiles of the normal, χ² and beta-binomial, tail p-values fitted to the data's own tail,
// and the search for a separate minor mode in a set of scores.
//
// Features arrive as Float32Array (ScanTable.features); every sum here runs in Float64 so a
// covariance of tens of thousands of rows keeps its small eigenvalues.
import { Rng } from "./rng.js";

/** A dense row-major matrix: entry (r, c) is data[r·cols + c]. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function zeros(rows: number, cols: number): Matrix {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

export function identity(n: number): Matrix {
  const m = zeros(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/** The rows `indices` of a row-major `source` with `cols` columns, as a Float64 matrix. */
export function gatherRows(
  source: Float32Array | Float64Array,
  cols: number,
  indices: ArrayLike<number>,
): Matrix {
  const out = zeros(indices.length, cols);
  for (let r = 0; r < indices.length; r++) {
    const from = (indices[r] as number) * cols;
    for (let c = 0; c < cols; c++) out.data[r * cols + c] = source[from + c] as number;
  }
  return out;
}

/** Column means; with `weights`, the weighted mean (weights need not sum to 1). */
export function columnMeans(x: Matrix, weights?: ArrayLike<number>): Float64Array {
  const { rows, cols, data } = x;
  const mean = new Float64Array(cols);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const w = weights === undefined ? 1 : (weights[r] as number);
    if (w === 0) continue;
    total += w;
    const o = r * cols;
    for (let c = 0; c < cols; c++) mean[c] = (mean[c] as number) + w * (data[o + c] as number);
  }
  if (total > 0) for (let c = 0; c < cols; c++) mean[c] = (mean[c] as number) / total;
  return mean;
}

/** x − 1·meanᵀ, as a new matrix. */
export function centered(x: Matrix, mean: Float64Array): Matrix {
  const out = zeros(x.rows, x.cols);
  for (let r = 0; r < x.rows; r++) {
    const o = r * x.cols;
    for (let c = 0; c < x.cols; c++) out.data[o + c] = (x.data[o + c] as number) - (mean[c] as number);
  }
  return out;
}

/**
 * The (maximum-likelihood, divide-by-weight) covariance of the rows about `mean`; with `weights`,
 * each row counts that much (0 leaves it out). Symmetric cols × cols.
 */
export function covariance(x: Matrix, mean: Float64Array, weights?: ArrayLike<number>): Matrix {
  const { rows, cols, data } = x;
  const cov = zeros(cols, cols);
  const s = cov.data;
  const dev = new Float64Array(cols);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const w = weights === undefined ? 1 : (weights[r] as number);
    if (w === 0) continue;
    total += w;
    const o = r * cols;
    for (let c = 0; c < cols; c++) dev[c] = (data[o + c] as number) - (mean[c] as number);
    for (let i = 0; i < cols; i++) {
      const di = w * (dev[i] as number);
      if (di === 0) continue;
      const row = i * cols;
      for (let j = i; j < cols; j++) s[row + j] = (s[row + j] as number) + di * (dev[j] as number);
    }
  }
  const scale = total > 0 ? 1 / total : 0;
  for (let i = 0; i < cols; i++)
    for (let j = i; j < cols; j++) {
      const v = (s[i * cols + j] as number) * scale;
      s[i * cols + j] = v;
      s[j * cols + i] = v;
    }
  return cov;
}

/** a · b (a is n × k, b is k × m). */
export function multiply(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new RangeError(`cannot multiply ${a.rows}×${a.cols} by ${b.rows}×${b.cols}`);
  const out = zeros(a.rows, b.cols);
  const m = b.cols;
  for (let i = 0; i < a.rows; i++) {
    const o = i * m;
    for (let k = 0; k < a.cols; k++) {
      const v = a.data[i * a.cols + k] as number;
      if (v === 0) continue;
      const bo = k * m;
      for (let j = 0; j < m; j++)
        out.data[o + j] = (out.data[o + j] as number) + v * (b.data[bo + j] as number);
    }
  }
  return out;
}

export function transpose(a: Matrix): Matrix {
  const out = zeros(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j] as number;
  return out;
}

/** Each row of x times each row of `directions` (k × cols): the n × k matrix x · directionsᵀ, about `mean`. */
export function project(x: Matrix, directions: Matrix, mean?: Float64Array): Matrix {
  if (directions.cols !== x.cols)
    throw new RangeError(`cannot project ${x.cols}-wide rows on ${directions.cols}-wide directions`);
  const { rows, cols } = x;
  const k = directions.rows;
  const out = zeros(rows, k);
  const dev = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++)
      dev[c] = (x.data[r * cols + c] as number) - (mean === undefined ? 0 : (mean[c] as number));
    for (let j = 0; j < k; j++) {
      let acc = 0;
      const o = j * cols;
      for (let c = 0; c < cols; c++) acc += (dev[c] as number) * (directions.data[o + c] as number);
      out.data[r * k + j] = acc;
    }
  }
  return out;
}

/** Eigenvalues in descending order and the matching unit eigenvectors as the rows of `vectors`. */
export interface Eigen {
  values: Float64Array;
  vectors: Matrix;
}

/**
 * All eigenpairs of a symmetric matrix by the cyclic Jacobi method (Golub & Van Loan §8.5):
 * rotations until the off-diagonal mass is ~1e-22 of the total. Exact to rounding; O(n³) per
 * sweep and a handful of sweeps, so meant for n up to a few hundred.
 */
export function symmetricEigen(a: Matrix): Eigen {
  const n = a.rows;
  if (a.cols !== n) throw new RangeError(`symmetricEigen needs a square matrix, got ${a.rows}×${a.cols}`);
  const A = new Float64Array(a.data);
  const V = identity(n).data;
  let total = 0;
  for (let k = 0; k < A.length; k++) total += (A[k] as number) ** 2;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += (A[p * n + q] as number) ** 2;
    if (off <= 1e-22 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q] as number;
        if (apq === 0) continue;
        const app = A[p * n + p] as number;
        const aqq = A[q * n + q] as number;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A ← Jᵀ A J on rows/columns p and q.
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p] as number;
          const akq = A[k * n + q] as number;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k] as number;
          const aqk = A[q * n + k] as number;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p] as number;
          const vkq = V[k * n + q] as number;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (i, j) => (A[j * n + j] as number) - (A[i * n + i] as number),
  );
  const values = new Float64Array(n);
  const vectors = zeros(n, n);
  order.forEach((col, r) => {
    values[r] = A[col * n + col] as number;
    for (let k = 0; k < n; k++) vectors.data[r * n + k] = V[k * n + col] as number;
  });
  return { values, vectors };
}

export interface SubspaceOptions {
  /** Extra vectors carried along to speed convergence (Halko, Martinsson & Tropp, 2011). */
  oversample?: number;
  maxIterations?: number;
  /** Stop when the top-k Ritz values change by less than this, relatively. */
  tolerance?: number;
  seed?: number | string;
}

/**
 * The top-k eigenpairs of a symmetric positive semi-definite operator of dimension `dims`,
 * given only its action on a block of vectors (`apply(V)` for V of k′ × dims, rows as vectors,
 * returns the rows A·v): block power iteration with Gram–Schmidt and a Rayleigh–Ritz step.
 */
export function topEigenvectors(
  apply: (block: Matrix) => Matrix,
  dims: number,
  k: number,
  options: SubspaceOptions = {},
): Eigen {
  const width = Math.min(dims, k + (options.oversample ?? 8));
  const maxIterations = options.maxIterations ?? 100;
  const tolerance = options.tolerance ?? 1e-9;
  const rng = new Rng(options.seed ?? "subspace");
  let Q = zeros(width, dims);
  for (let i = 0; i < Q.data.length; i++) Q.data[i] = rng.normal();
  orthonormalizeRows(Q);
  let previous = new Float64Array(k).fill(NaN);
  let ritz: Eigen = { values: new Float64Array(0), vectors: zeros(0, dims) };
  for (let it = 0; it < maxIterations; it++) {
    const AQ = apply(Q);
    // Rayleigh–Ritz: T = Q A Qᵀ (width × width), rotate Q by T's eigenvectors.
    const T = multiply(Q, transpose(AQ));
    symmetrize(T);
    const small = symmetricEigen(T);
    ritz = { values: small.values, vectors: multiply(small.vectors, Q) };
    let converged = true;
    for (let j = 0; j < k; j++) {
      const v = small.values[j] as number;
      const p = previous[j] as number;
      if (!(Math.abs(v - p) <= tolerance * Math.max(Math.abs(v), 1e-300))) converged = false;
    }
    if (converged) break;
    previous = small.values.slice(0, k);
    Q = AQ;
    orthonormalizeRows(Q);
  }
  return {
    values: ritz.values.slice(0, k),
    vectors: { rows: k, cols: dims, data: ritz.vectors.data.slice(0, k * dims) },
  };
}

/** Principal directions of a set of rows: mean, directions (k × cols, unit rows), variances. */
export interface PrincipalComponents {
  mean: Float64Array;
  components: Matrix;
  variances: Float64Array;
}

/** Up to this width the covariance is formed and diagonalised exactly; wider rows use subspace iteration. */
const EXACT_PCA_MAX_COLS = 256;

/** The top-k principal components of the rows of x (about their mean, or `mean` when given). */
export function principalComponents(
  x: Matrix,
  k: number,
  options: { mean?: Float64Array; seed?: number | string } = {},
): PrincipalComponents {
  const mean = options.mean ?? columnMeans(x);
  const kk = Math.min(k, x.cols);
  if (x.cols <= EXACT_PCA_MAX_COLS) {
    const { values, vectors } = symmetricEigen(covariance(x, mean));
    return {
      mean,
      components: { rows: kk, cols: x.cols, data: vectors.data.slice(0, kk * x.cols) },
      variances: values.slice(0, kk).map((v) => Math.max(0, v)),
    };
  }
  // Wide rows: (1/n)·Xcᵀ·(Xc·v) without forming the cols × cols covariance.
  const xc = centered(x, mean);
  const apply = (block: Matrix): Matrix => {
    const scores = multiply(xc, transpose(block)); // n × width
    const out = multiply(transpose(scores), xc); // width × cols
    for (let i = 0; i < out.data.length; i++) out.data[i] = (out.data[i] as number) / Math.max(1, x.rows);
    return out;
  };
  const { values, vectors } = topEigenvectors(apply, x.cols, kk, {
    seed: options.seed ?? "pca",
    maxIterations: 30,
    tolerance: 1e-6,
  });
  return { mean, components: vectors, variances: values.map((v) => Math.max(0, v)) };
}

/**
 * The symmetric inverse square root of a covariance (the whitening map x ↦ S^(−1/2)(x − μ)).
 * Eigenvalues below `floor` × the largest are raised to it, so a rank-deficient covariance
 * (dead ReLU units, duplicated features) whitens without blowing its null space up.
 */
export function inverseSqrt(cov: Matrix, floor = 1e-9): Matrix {
  const { values, vectors } = symmetricEigen(cov);
  const n = cov.rows;
  const top = Math.max(values[0] ?? 0, 1e-300);
  const out = zeros(n, n);
  for (let k = 0; k < n; k++) {
    const w = 1 / Math.sqrt(Math.max(values[k] as number, floor * top));
    const o = k * n;
    for (let i = 0; i < n; i++) {
      const vi = (vectors.data[o + i] as number) * w;
      if (vi === 0) continue;
      for (let j = 0; j < n; j++)
        out.data[i * n + j] = (out.data[i * n + j] as number) + vi * (vectors.data[o + j] as number);
    }
  }
  return out;
}

/** Squared Mahalanobis distance of each row of x from `mean` under the whitening map `whitener` (S^(−1/2)). */
export function mahalanobisSquared(x: Matrix, mean: Float64Array, whitener: Matrix): Float64Array {
  const z = project(x, whitener, mean);
  const out = new Float64Array(x.rows);
  for (let r = 0; r < x.rows; r++) {
    let acc = 0;
    for (let c = 0; c < z.cols; c++) acc += (z.data[r * z.cols + c] as number) ** 2;
    out[r] = acc;
  }
  return out;
}

/** A robust estimate of location and scatter, and which rows it rests on. */
export interface RobustCovariance {
  mean: Float64Array;
  covariance: Matrix;
  /** S^(−1/2) of `covariance`: multiply centred rows by it to whiten them. */
  whitener: Matrix;
  /** 1 for the rows the final (reweighted) estimate is computed from. */
  support: Uint8Array;
  /** Squared Mahalanobis distance of every row under the final estimate. */
  distances: Float64Array;
}

export interface RobustCovarianceOptions {
  /** h / n: the share of rows the raw MCD estimate rests on (0.5 … 1; 0.75 tolerates 25% outliers). */
  supportFraction?: number;
  /** C-steps at most (each never increases the determinant; usually converges in < 10). */
  maxSteps?: number;
  /** After the raw estimate, keep rows with d² ≤ χ²_p(this) and recompute (Rousseeuw & Van Driessen's reweighting). */
  reweightQuantile?: number;
}

/**
 * Minimum covariance determinant (Rousseeuw, 1984) by C-steps (Rousseeuw & Van Driessen, 1999)
 * from a deterministic start (as in DetMCD, Hubert, Rousseeuw & Verdonck, 2012): the h rows
 * closest to the coordinate-wise median in MAD-scaled units. Each C-step keeps the h rows with
 * the smallest Mahalanobis distance under the current estimate, so a minority far from the bulk
 * never enters the estimate. The raw scatter is scaled for consistency at the normal model,
 * then reweighted.
 */
export function robustCovariance(x: Matrix, options: RobustCovarianceOptions = {}): RobustCovariance {
  const { rows: n, cols: p } = x;
  const fraction = Math.min(1, Math.max(0.5, options.supportFraction ?? 0.75));
  const h = Math.min(n, Math.max(p + 1, Math.ceil(fraction * n)));
  const maxSteps = options.maxSteps ?? 30;

  // Deterministic start: distance to the coordinate-wise median in robustly scaled units.
  const center = new Float64Array(p);
  const scale = new Float64Array(p);
  const column = new Float64Array(n);
  for (let c = 0; c < p; c++) {
    for (let r = 0; r < n; r++) column[r] = x.data[r * p + c] as number;
    const m = median(column);
    center[c] = m;
    const s = 1.4826 * medianAbsoluteDeviation(column, m);
    scale[c] = s > 0 ? s : 1;
  }
  const startDistance = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let acc = 0;
    for (let c = 0; c < p; c++)
      acc += (((x.data[r * p + c] as number) - (center[c] as number)) / (scale[c] as number)) ** 2;
    startDistance[r] = acc;
  }
  let subset = smallest(startDistance, h);
  let weights = indicator(n, subset);
  let mean = columnMeans(x, weights);
  let cov = covariance(x, mean, weights);
  let whitener = inverseSqrt(cov);
  let distances = mahalanobisSquared(x, mean, whitener);
  for (let step = 0; step < maxSteps; step++) {
    const next = smallest(distances, h);
    if (sameSet(next, subset)) break;
    subset = next;
    weights = indicator(n, subset);
    mean = columnMeans(x, weights);
    cov = covariance(x, mean, weights);
    whitener = inverseSqrt(cov);
    distances = mahalanobisSquared(x, mean, whitener);
  }

  // Consistency: under normality the median d² is χ²_p's median.
  const consistency = median(distances) / chiSquaredQuantile(0.5, p);
  if (consistency > 0 && Number.isFinite(consistency)) {
    scaleInPlace(cov, consistency);
    for (let r = 0; r < n; r++) distances[r] = (distances[r] as number) / consistency;
  }

  // Reweighting: everything within the χ² cut-off, which gives back efficiency.
  const cutoff = chiSquaredQuantile(options.reweightQuantile ?? 0.975, p);
  const support = new Uint8Array(n);
  let kept = 0;
  for (let r = 0; r < n; r++)
    if ((distances[r] as number) <= cutoff) {
      support[r] = 1;
      kept++;
    }
  if (kept > p) {
    mean = columnMeans(x, support);
    cov = covariance(x, mean, support);
    whitener = inverseSqrt(cov);
    distances = mahalanobisSquared(x, mean, whitener);
  }
  return { mean, covariance: cov, whitener, support, distances };
}

// ---------------------------------------------------------------------------------------------
// Robust one-dimensional statistics and quantiles.

/** Index of the largest value (the first of ties). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < values.length; c++) if ((values[c] as number) > (values[best] as number)) best = c;
  return best;
}

/** The median of the finite values (NaN when there are none). */
export function median(values: ArrayLike<number>): number {
  return quantile(values, 0.5);
}

/** Median of |v − center|. */
export function medianAbsoluteDeviation(values: ArrayLike<number>, center: number): number {
  const dev = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) dev[i] = Math.abs((values[i] as number) - center);
  return median(dev);
}

/** The q-quantile of the finite values by linear interpolation between order statistics. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).filter(Number.isFinite).sort();
  if (sorted.length === 0) return NaN;
  const at = Math.min(1, Math.max(0, q)) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return (sorted[lo] as number) + (at - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
}

/** Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) return p === 0 ? -Infinity : p === 1 ? Infinity : NaN;
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lower = 0.02425;
  const poly = (coef: number[], x: number): number => coef.reduce((acc, k) => acc * x + k, 0);
  if (p < lower) {
    const q = Math.sqrt(-2 * Math.log(p));
    return poly(c, q) / (poly(d, q) * q + 1);
  }
  if (p > 1 - lower) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -poly(c, q) / (poly(d, q) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return (poly(a, r) * q) / (poly(b, r) * r + 1);
}

/** χ²_k quantile by the Wilson–Hilferty cube approximation (relative error < 1% for k ≥ 2). */
export function chiSquaredQuantile(p: number, k: number): number {
  const z = normalQuantile(p);
  const v = 2 / (9 * k);
  return k * Math.max(0, 1 - v + z * Math.sqrt(v)) ** 3;
}

/**
 * ln P(X ≥ x) for each value, from the values' own upper tail (peaks over threshold with an
 * exponential tail, the ξ = 0 generalized Pareto of Pickands, 1975): above the (1 − tailShare)
 * quantile u, P(X ≥ x) = tailShare · exp(−(x − u)/β) with β the mean excess over u; below u, the
 * empirical share of values at least as large. So the p-value of a value follows the data's own
 * tail, heavy or light, and only values far beyond the trend of that tail get a small one.
 */
export function logUpperTailPValues(values: Float64Array, tailShare = 0.1): Float64Array {
  const n = values.length;
  const sorted = Float64Array.from(values).sort();
  const u = quantile(sorted, 1 - tailShare);
  let excess = 0;
  let count = 0;
  for (const v of sorted)
    if (v > u) {
      excess += v - u;
      count++;
    }
  const beta = count > 0 ? Math.max(excess / count, 1e-12) : 1;
  const share = count / n;
  return values.map((v) => {
    if (v > u && count > 0) return Math.log(share) - (v - u) / beta;
    // Empirical: the share of values ≥ v.
    return Math.log((n - lowerBound(sorted, v)) / n);
  });
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const y = x - 1;
  let a = c[0] as number;
  const t = y + g + 0.5;
  for (let i = 1; i < g + 2; i++) a += (c[i] as number) / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * ln P(Z ≥ z) for a standard normal Z, accurate far into the tail (where 1 − Φ(z) underflows):
 * the complementary error function by Numerical Recipes' Chebyshev fit (relative error < 1.2e-7),
 * kept in log space.
 */
export function logNormalUpperTail(z: number): number {
  const x = z / Math.SQRT2;
  if (x < 0) return Math.log(1 - Math.exp(logNormalUpperTail(-z)));
  const t = 1 / (1 + 0.5 * x);
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t *
                      (0.27886807 +
                        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return Math.log(t) - x * x + poly - Math.LN2;
}

/** P(M ≥ m) for M ~ BetaBinomial(trials, a, b). */
export function betaBinomialUpperTail(m: number, trials: number, a: number, b: number): number {
  if (m <= 0) return 1;
  if (m > trials) return 0;
  const logBeta = (p: number, q: number): number => logGamma(p) + logGamma(q) - logGamma(p + q);
  const logChoose = (n: number, k: number): number => logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
  let total = 0;
  const base = logBeta(a, b);
  for (let j = m; j <= trials; j++)
    total += Math.exp(logChoose(trials, j) + logBeta(j + a, trials - j + b) - base);
  return Math.min(1, total);
}

/** A separate mode at one end of a set of one-dimensional scores (see `minorMode`). */
export interface MinorMode {
  /** +1 when the mode lies above the bulk, −1 below; `cut` and `peak` are in side-multiplied units. */
  side: 1 | -1;
  /** Density at the valley over density at the minor mode's peak: 1 = no valley, → 0 = well separated. */
  dipRatio: number;
  /** The valley: values beyond it (side-multiplied) belong to the minor mode. */
  cut: number;
  peak: number;
  /** Values beyond the cut. */
  count: number;
  /** Whether the mode met `maxDipRatio` and `minCount`; otherwise the fields describe the deepest valley seen. */
  separated: boolean;
}

/**
 * Looks for a second mode in scores on a robust-z scale (bulk ≈ 0, spread ≈ 1): a Gaussian kernel
 * density estimate (bandwidth in score units) is walked outward from its highest peak, on both
 * sides; the first local peak that is preceded by a valley at most `maxDipRatio` of its height and
 * has at least `minCount` values beyond that valley is the minor mode. A heavy or skewed tail
 * falls steadily and has no such valley; a group far out with too few members is not a mode.
 * Of the two sides, the one with the deeper valley wins. Null when there are no finite values.
 */
const MAX_GRID = 1 << 16;

export function minorMode(
  values: ArrayLike<number>,
  options: { bandwidth?: number; maxDipRatio?: number; minCount?: number } = {},
): MinorMode | null {
  const bandwidth = options.bandwidth ?? 1;
  const maxDip = options.maxDipRatio ?? 0.6;
  const minCount = options.minCount ?? 1;
  const base = Float64Array.from(values).filter(Number.isFinite);
  if (base.length === 0 || !(bandwidth > 0) || !Number.isFinite(bandwidth)) return null;
  let best: MinorMode | null = null;
  const better = (a: MinorMode, b: MinorMode | null): boolean =>
    b === null || (a.separated && !b.separated) || (a.separated === b.separated && a.dipRatio < b.dipRatio);
  for (const side of [1, -1] as const) {
    const x = base.map((v) => side * v).sort();
    const from = (x[0] as number) - 3 * bandwidth;
    const span = (x[x.length - 1] as number) + 3 * bandwidth - from;
    // Eight grid points per bandwidth, but never more than MAX_GRID: a bandwidth tiny against the
    // values' range (heavy tails, a near-constant score) would otherwise ask for billions.
    const step = Math.max(bandwidth / 8, span / MAX_GRID);
    const points = Math.ceil(span / step) + 1;
    const density = new Float64Array(points);
    for (let g = 0; g < points; g++) {
      const t = from + g * step;
      let acc = 0;
      for (
        let i = lowerBound(x, t - 6 * bandwidth);
        i < x.length && (x[i] as number) <= t + 6 * bandwidth;
        i++
      )
        acc += Math.exp(-0.5 * (((x[i] as number) - t) / bandwidth) ** 2);
      density[g] = acc;
    }
    let top = 0;
    for (let g = 1; g < points; g++) if ((density[g] as number) > (density[top] as number)) top = g;
    let valley = top;
    let sideBest: MinorMode | null = null;
    for (let g = top + 1; g < points - 1; g++) {
      if ((density[g] as number) < (density[valley] as number)) valley = g;
      const isPeak =
        (density[g] as number) >= (density[g - 1] as number) &&
        (density[g] as number) > (density[g + 1] as number);
      if (!isPeak) continue;
      const cut = from + valley * step;
      const count = x.length - upperBound(x, cut);
      if (count < minCount) continue;
      const dipRatio = (density[valley] as number) / (density[g] as number);
      const candidate: MinorMode = {
        side,
        dipRatio,
        cut,
        peak: from + g * step,
        count,
        separated: dipRatio <= maxDip,
      };
      if (better(candidate, sideBest)) sideBest = candidate;
      if (candidate.separated) break; // the first separated mode from the bulk outward
    }
    if (sideBest !== null && better(sideBest, best)) best = sideBest;
  }
  return (
    best ?? {
      side: 1,
      dipRatio: 1,
      cut: Infinity,
      peak: NaN,
      count: 0,
      separated: false,
    }
  );
}

/** First index of a sorted array whose value is > t. */
function upperBound(sorted: Float64Array, t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index of a sorted array whose value is ≥ t. */
function lowerBound(sorted: Float64Array, t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------

function orthonormalizeRows(m: Matrix): void {
  const { rows, cols, data } = m;
  let fallback = 0;
  for (let i = 0; i < rows; i++) {
    const oi = i * cols;
    // Twice is enough (Giraud et al., 2005): one modified Gram–Schmidt pass loses orthogonality
    // when the block is nearly rank-deficient, as a converging power iteration is.
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const oj = j * cols;
        let dot = 0;
        for (let c = 0; c < cols; c++) dot += (data[oi + c] as number) * (data[oj + c] as number);
        for (let c = 0; c < cols; c++)
          data[oi + c] = (data[oi + c] as number) - dot * (data[oj + c] as number);
      }
    }
    let norm = 0;
    for (let c = 0; c < cols; c++) norm += (data[oi + c] as number) ** 2;
    norm = Math.sqrt(norm);
    if (norm < 1e-300 && fallback < cols) {
      // A vector lost to the span of the others: replace it by the next basis direction and
      // orthogonalise that instead (some basis direction is outside a span of < cols vectors).
      for (let c = 0; c < cols; c++) data[oi + c] = c === fallback ? 1 : 0;
      fallback++;
      i--;
      continue;
    }
    for (let c = 0; c < cols; c++) data[oi + c] = (data[oi + c] as number) / norm;
  }
}

function symmetrize(m: Matrix): void {
  const n = m.rows;
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const v = ((m.data[i * n + j] as number) + (m.data[j * n + i] as number)) / 2;
      m.data[i * n + j] = v;
      m.data[j * n + i] = v;
    }
}

function scaleInPlace(m: Matrix, s: number): void {
  for (let i = 0; i < m.data.length; i++) m.data[i] = (m.data[i] as number) * s;
}

/** Indices of the h smallest values (ties by index), ascending by index. */
function smallest(values: Float64Array, h: number): Int32Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort(
    (a, b) => (values[a] as number) - (values[b] as number) || a - b,
  );
  return Int32Array.from(order.slice(0, h)).sort();
}

function indicator(n: number, subset: Int32Array): Uint8Array {
  const w = new Uint8Array(n);
  for (const i of subset) w[i] = 1;
  return w;
}

function sameSet(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
