// The false-alarm control every monitor uses: Page's one-sided CUSUM of log-likelihood ratios
// (Page, 1954), with its threshold derived from the in-control average run length the operator
// asks for, so "at most one false alarm per 10,000 batches" is a parameter, not a tuned constant.
//
// A chart keeps S_t = max(0, S_{t−1} + ℓ_t), where ℓ_t = log p1(x_t) / p0(x_t) is the evidence of
// observation t (one batch's count or sum) for the changed state against the in-control one, and
// alarms when S_t ≥ h; after an alarm it starts again from 0. The bound (Lorden, 1971; Siegmund,
// "Sequential Analysis", 1985, ch. 2): while E_0[e^{ℓ_t}] ≤ 1 for every increment, e^{Σℓ} started at
// any time k is a non-negative supermartingale, so by Ville's inequality the one-sided SPRT started
// at k ever crosses h with probability ≤ e^{−h}; the CUSUM alarm time N is the first of those SPRTs
// to cross, and Lorden's theorem gives E_0[N] ≥ e^{h}. For m charts updated by the same batch, the
// union of their SPRTs started at k crosses with probability ≤ m·e^{−h}, so the first alarm of any
// of them comes after ≥ e^{h}/m batches on average. Hence
//
//     h = ln(ARL0 · m)   ⇒   in-control average run length ≥ ARL0 batches,
//
// i.e. at most one false alarm per ARL0 batches in the long run (charts restart after an alarm:
// by renewal, false alarms per batch ≤ 1/ARL0). Charts of different agents are updated by different
// batches, so m counts the charts ONE batch updates, not the charts that exist.
//
// E_0[e^{ℓ}] ≤ 1 is what the monitors must guarantee, and it is why they build ℓ the way they do:
// - binomial counts (x events of n): ℓ = x·ln(p1/p0) + (n−x)·ln((1−p1)/(1−p0)), exact for any n and
//   still a supermartingale when the true rate is BELOW p0 (p1 > p0). So a reference estimated from
//   finite data is replaced by its upper confidence limit (`rateUpperBound`): in control with
//   probability ≥ 1 − β whatever the estimate's error.
// - sums of a record statistic (mean shifts): ℓ = λ·Σx − n·ψ(λ), with ψ the cumulant generating
//   function of the in-control distribution (ψ(λ) = log E_0[e^{λx}]): the exponential tilt of the
//   in-control law, E_0[e^{ℓ}] = 1 exactly. For a Gaussian ψ(λ) = λμ + λ²σ²/2 and, with λ = δ/σ, ℓ
//   is the textbook Gaussian CUSUM for μ → μ + δσ. For a skewed statistic (a classifier's entropy)
//   the Gaussian ψ understates the right tail and the bound fails, so the monitors use the
//   empirical ψ of a histogram (evaluated at the bin edges, an upper bound) plus a margin for the
//   uncertainty of the in-control mean.
//
// Detection: when the rate is p, S drifts up by n·E_p[ℓ per record], so the delay is about
// h / (n·E_p[ℓ]) batches (Wald's approximation, overshoot ignored): `binomialDrift`.
import { logSumExp } from "../math/tails.js";

/** One CUSUM chart's state: plain numbers, serialisable as JSON. */
export interface CusumChart {
  /** The statistic S (nats). */
  s: number;
  /** Updates so far, and alarms raised. */
  updates: number;
  alarms: number;
  /** Since S was last 0 (the change-point estimate): batches, events and trials, first batch id. */
  run: { batches: number; x: number; n: number; since: string | null };
}

/** What one update did. */
export interface CusumStep {
  alarm: boolean;
  /** S after the update, before the restart an alarm causes. */
  s: number;
  /** The run that crossed (copied before the restart). */
  run: CusumChart["run"];
}

export function newChart(): CusumChart {
  return { s: 0, updates: 0, alarms: 0, run: { batches: 0, x: 0, n: 0, since: null } };
}

/** h = ln(ARL0 · m): in-control average run length ≥ arl0 updates for m charts updated together. */
export function cusumThreshold(arl0: number, charts = 1): number {
  if (!(arl0 > 1) || !(charts >= 1)) throw new RangeError(`cusumThreshold: need arl0 > 1 and m ≥ 1`);
  return Math.log(arl0 * charts);
}

/**
 * Add one observation's log-likelihood ratio; alarm (and restart from 0) when S reaches h.
 * `obs` is what the run records: events x of n trials (or a sum and its count) and the batch id.
 */
export function cusumUpdate(
  chart: CusumChart,
  llr: number,
  h: number,
  obs: { x: number; n: number; batchId: string },
): CusumStep {
  chart.updates++;
  const s = Math.max(0, chart.s + llr);
  if (s === 0) {
    chart.s = 0;
    chart.run = { batches: 0, x: 0, n: 0, since: null };
    return { alarm: false, s, run: { ...chart.run } };
  }
  chart.s = s;
  const run = chart.run;
  run.since ??= obs.batchId;
  run.batches++;
  run.x += obs.x;
  run.n += obs.n;
  if (s < h) return { alarm: false, s, run: { ...run } };
  chart.alarms++;
  chart.s = 0;
  chart.run = { batches: 0, x: 0, n: 0, since: null };
  return { alarm: true, s, run: { ...run } };
}

const EPS = 1e-12;

/** Evidence of x events in n trials for rate p1 against p0 (p1 > p0 for an upward chart). */
export function binomialLlr(x: number, n: number, p0: number, p1: number): number {
  const a = clampRate(p0);
  const b = clampRate(p1);
  return x * Math.log(b / a) + (n - x) * Math.log((1 - b) / (1 - a));
}

/** The rate a chart is tuned to detect: `share` of the traffic turned into the event, p0 + share·(1 − p0). */
export function alternativeRate(p0: number, share: number): number {
  return clampRate(p0 + share * (1 - p0));
}

/** Expected evidence per trial when the true rate is p: n·this is a binomial chart's drift. */
export function binomialDrift(p: number, p0: number, p1: number): number {
  return binomialLlr(p, 1, p0, p1);
}

/** Kullback–Leibler divergence of Bernoulli(a) from Bernoulli(b), nats. */
export function bernoulliKl(a: number, b: number): number {
  const q = clampRate(b);
  const term = (u: number, v: number): number => (u <= 0 ? 0 : u * Math.log(u / v));
  return term(a, q) + term(1 - a, 1 - q);
}

/**
 * Upper confidence limit of a rate from x events in n trials (counts may be fractional, e.g.
 * exponentially decayed): the largest p with n·KL(x/n ‖ p) ≤ ln(1/β). By the Chernoff bound the
 * true rate is above it with probability ≤ β; at x = 0 it is Clopper–Pearson's 1 − β^{1/n}.
 */
export function rateUpperBound(x: number, n: number, beta: number): number {
  if (!(n > 0)) return 1;
  const phat = Math.min(1, Math.max(0, x / n));
  const budget = Math.log(1 / beta) / n;
  if (phat >= 1 || bernoulliKl(phat, 1 - EPS) <= budget) return 1;
  let lo = phat;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (bernoulliKl(phat, mid) > budget) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** Lower confidence limit, the mirror of `rateUpperBound`. */
export function rateLowerBound(x: number, n: number, beta: number): number {
  return 1 - rateUpperBound(n - x, n, beta);
}

/** A cumulant generating function ψ(λ) = log E_0[e^{λx}] of the in-control record statistic. */
export type Cumulant = (lambda: number) => number;

/** Evidence of a batch whose record statistics sum to `sum` over n records, for the λ-tilted law. */
export function tiltedLlr(sum: number, n: number, lambda: number, psi: Cumulant): number {
  return n === 0 ? 0 : lambda * sum - n * psi(lambda);
}

/** ψ of a Gaussian: λμ + λ²σ²/2. */
export function gaussianCumulant(mean: number, sd: number): Cumulant {
  return (lambda) => lambda * mean + (lambda * lambda * sd * sd) / 2;
}

/** The Gaussian CUSUM increment for μ0 → μ0 + δσ over a batch of n records summing to `sum`. */
export function gaussianLlr(sum: number, n: number, mean: number, sd: number, delta: number): number {
  return tiltedLlr(sum, n, delta / sd, gaussianCumulant(mean, sd));
}

/** Counts over equal-width bins of [lo, hi]. */
export interface Histogram {
  lo: number;
  hi: number;
  counts: number[];
}

/**
 * ψ of a histogram's empirical law, each bin's mass put at the edge in λ's direction (so it
 * bounds the ψ of any law with those bin masses from above), plus |λ|·margin: the in-control mean
 * may lie up to `margin` beyond the histogram's in the chart's direction.
 */
export function histogramCumulant(hist: Histogram, margin = 0): Cumulant {
  const total = hist.counts.reduce((a, b) => a + b, 0);
  const width = (hist.hi - hist.lo) / hist.counts.length;
  const cache = new Map<number, number>();
  return (lambda) => {
    let v = cache.get(lambda);
    if (v !== undefined) return v;
    if (total <= 0) throw new RangeError("histogramCumulant: empty histogram");
    const terms: number[] = [];
    hist.counts.forEach((c, b) => {
      if (c <= 0) return;
      const edge = hist.lo + (lambda >= 0 ? b + 1 : b) * width;
      terms.push(Math.log(c / total) + lambda * edge);
    });
    v = logSumExp(terms) + Math.abs(lambda) * margin;
    cache.set(lambda, v);
    return v;
  };
}

/** Add x to a histogram (clamped into [lo, hi]) with weight w. */
export function histogramAdd(hist: Histogram, x: number, w = 1): void {
  const k = hist.counts.length;
  const b = Math.min(k - 1, Math.max(0, Math.floor(((x - hist.lo) / (hist.hi - hist.lo)) * k)));
  hist.counts[b] = (hist.counts[b] as number) + w;
}

function clampRate(p: number): number {
  return Math.min(1 - EPS, Math.max(EPS, p));
}
