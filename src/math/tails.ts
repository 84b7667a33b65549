// Tail probabilities of the discrete distributions the detectors test counts against, in log
// space so that p-values of 1e-300 and below keep their order: the hypergeometric (purity of a
// token or a source against the base rate), the binomial, and the Poisson–binomial (a count of
// independent Bernoullis with their own probabilities: a trigger's carriers under the content
// model). One implementation each, shared by trigger-tokens.ts and source-risk.ts.

/** ln(e^a + e^b) without overflow. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/** ln Σ e^t over the terms. */
export function logSumExp(terms: readonly number[]): number {
  let max = -Infinity;
  for (const t of terms) if (t > max) max = t;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const t of terms) sum += Math.exp(t - max);
  return max + Math.log(sum);
}

// Exact sums up to 255 (cached), Stirling's series with three correction terms beyond
// (relative error < 1e-15 there).
const SMALL_LOG_FACTORIALS: Float64Array = (() => {
  const t = new Float64Array(256);
  for (let i = 1; i < t.length; i++) t[i] = (t[i - 1] as number) + Math.log(i);
  return t;
})();

/** ln n! */
export function logFactorial(n: number): number {
  if (n < SMALL_LOG_FACTORIALS.length) return SMALL_LOG_FACTORIALS[n] as number;
  const x = n + 1;
  return (
    (x - 0.5) * Math.log(x) -
    x +
    0.5 * Math.log(2 * Math.PI) +
    1 / (12 * x) -
    1 / (360 * x ** 3) +
    1 / (1260 * x ** 5)
  );
}

/** ln C(n, k) */
export function logChoose(n: number, k: number): number {
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
}

/** ln P(X ≥ k) for X ~ Hypergeometric(population N, K successes, n draws). */
export function logHypergeometricTail(k: number, N: number, K: number, n: number): number {
  const lo = Math.max(k, 0, n - (N - K));
  const hi = Math.min(n, K);
  if (lo > hi) return -Infinity;
  if (k <= Math.max(0, n - (N - K))) return 0;
  const logDenominator = logChoose(N, n);
  let total = -Infinity;
  for (let x = lo; x <= hi; x++) {
    const term = logChoose(K, x) + logChoose(N - K, n - x) - logDenominator;
    total = logAddExp(total, term);
    // Past the mode the terms only shrink: once one is e^40 below the sum, the rest cannot count.
    if (term < total - 40) break;
  }
  return Math.min(0, total);
}

/** ln P(X ≥ k) for X ~ Binomial(n, p). */
export function logBinomialTail(k: number, n: number, p: number): number {
  if (k <= 0) return 0;
  if (k > n) return -Infinity;
  if (p <= 0) return -Infinity;
  if (p >= 1) return 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  const terms: number[] = [];
  for (let x = k; x <= n; x++) terms.push(logChoose(n, x) + x * lp + (n - x) * lq);
  return Math.min(0, logSumExp(terms));
}

/** ln P(Y ≤ m) for Y a sum of independent Bernoulli(p_i): dynamic programming over 0..m in log space. */
export function logPoissonBinomialCdf(p: ArrayLike<number>, m: number): number {
  let lp = new Float64Array(m + 1).fill(-Infinity);
  let next = new Float64Array(m + 1);
  lp[0] = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    const l1 = Math.log(pi);
    const l0 = Math.log1p(-pi);
    for (let s = 0; s <= m; s++) {
      const stay = (lp[s] as number) + l0;
      const move = s > 0 ? (lp[s - 1] as number) + l1 : -Infinity;
      next[s] = logAddExp(stay, move);
    }
    [lp, next] = [next, lp];
  }
  let total = -Infinity;
  for (const v of lp) total = logAddExp(total, v);
  return Math.min(0, total);
}
