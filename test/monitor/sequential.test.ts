import { describe, expect, it } from "vitest";
import { Rng } from "../../src/math/rng.js";
import {
  alternativeRate,
  binomialDrift,
  binomialLlr,
  cusumThreshold,
  cusumUpdate,
  gaussianLlr,
  histogramAdd,
  histogramCumulant,
  newChart,
  rateUpperBound,
  tiltedLlr,
  type CusumChart,
  type Histogram,
} from "../../src/monitor/sequential.js";

// The CUSUM's false-alarm bound is a theorem (ARL0 ≥ e^h for m charts at h = ln(ARL0·m)); these
// tests MEASURE it by simulation on in-control data — 200,000 batches per chart family, seeded — and
// check that it is not vacuous (a lower threshold does break the target), that it survives a
// reference estimated from finite data (the upper confidence limit) and a skewed record statistic
// (the histogram's cumulant), and that a real shift is found within a stated number of batches.

const ARL0 = 10_000;
const BATCHES = 200_000;
const TARGET = BATCHES / ARL0; // at most 20 false alarms in 200,000 batches

/** Class shares of a 10-class model's predictions (uneven on purpose). */
const SHARES = [0.3, 0.2, 0.1, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03];
const K = SHARES.length;

function sampler(shares: readonly number[]): (rng: Rng) => number {
  const cum: number[] = [];
  shares.reduce((a, p, i) => ((cum[i] = a + p), a + p), 0);
  return (rng) => {
    const u = rng.next() * (cum[cum.length - 1] as number);
    let k = 0;
    while (k < cum.length - 1 && u >= (cum[k] as number)) k++;
    return k;
  };
}

/** Batches until the first alarm of any class chart, or the number of alarms over `batches`. */
function runClassCharts(opts: {
  rng: Rng;
  shares: readonly number[];
  p0: readonly number[];
  share: number;
  h: number;
  n: number;
  batches: number;
  stopAtFirst?: boolean;
}): { alarms: number; first: number | null } {
  const draw = sampler(opts.shares);
  const p1 = opts.p0.map((p) => alternativeRate(p, opts.share));
  const a = opts.p0.map(
    (p, k) => binomialLlr(1, 1, p, p1[k] as number) - binomialLlr(0, 1, p, p1[k] as number),
  );
  const b = opts.p0.map((p, k) => binomialLlr(0, 1, p, p1[k] as number));
  const charts: CusumChart[] = opts.p0.map(() => newChart());
  const counts = new Array<number>(opts.p0.length);
  let alarms = 0;
  let first: number | null = null;
  for (let t = 1; t <= opts.batches; t++) {
    counts.fill(0);
    for (let i = 0; i < opts.n; i++) {
      const k = draw(opts.rng);
      counts[k] = (counts[k] as number) + 1;
    }
    let any = false;
    for (let k = 0; k < charts.length; k++) {
      const x = counts[k] as number;
      const llr = x * (a[k] as number) + opts.n * (b[k] as number);
      if (cusumUpdate(charts[k] as CusumChart, llr, opts.h, { x, n: opts.n, batchId: `b${t}` }).alarm)
        any = true;
    }
    if (any) {
      alarms++;
      first ??= t;
      if (opts.stopAtFirst === true) break;
    }
  }
  return { alarms, first };
}

describe("CUSUM threshold and update", () => {
  it("sets h = ln(ARL0 · m) and restarts after an alarm, keeping the run that crossed", () => {
    expect(cusumThreshold(10_000, 10)).toBeCloseTo(Math.log(100_000), 12);
    expect(() => cusumThreshold(1, 1)).toThrow(RangeError);
    const c = newChart();
    expect(cusumUpdate(c, -3, 5, { x: 0, n: 10, batchId: "a#1" }).alarm).toBe(false);
    expect(c.s).toBe(0);
    cusumUpdate(c, 2, 5, { x: 3, n: 10, batchId: "a#2" });
    const step = cusumUpdate(c, 4, 5, { x: 5, n: 10, batchId: "a#3" });
    expect(step).toMatchObject({ alarm: true, s: 6, run: { batches: 2, x: 8, n: 20, since: "a#2" } });
    expect(c).toMatchObject({ s: 0, alarms: 1, updates: 3, run: { batches: 0, since: null } });
  });

  it("gives the binomial and Gaussian log-likelihood ratios", () => {
    // x·ln(p1/p0) + (n−x)·ln((1−p1)/(1−p0))
    expect(binomialLlr(3, 10, 0.1, 0.2)).toBeCloseTo(3 * Math.log(2) + 7 * Math.log(0.8 / 0.9), 12);
    // δ/σ·(Σx − nμ) − nδ²/2
    expect(gaussianLlr(12, 10, 1, 2, 0.5)).toBeCloseTo(0.25 * (12 - 10) - (10 * 0.25) / 2, 12);
    expect(alternativeRate(0.1, 0.05)).toBeCloseTo(0.145, 12);
  });
});

describe("false alarms measured on in-control data", () => {
  const m = K;
  const h = cusumThreshold(ARL0, m);

  it(`K = ${K} class-share charts: ≤ 1 false alarm per ${ARL0} batches over ${BATCHES} batches`, () => {
    const { alarms } = runClassCharts({
      rng: new Rng(1),
      shares: SHARES,
      p0: SHARES,
      share: 0.05,
      h,
      n: 50,
      batches: BATCHES,
    });
    console.log(`class-share charts (m = ${m}): ${alarms} false alarms in ${BATCHES} in-control batches`);
    expect(alarms).toBeLessThanOrEqual(TARGET);
    // The measurement has teeth: at a quarter of the threshold the same data break the target.
    const loose = runClassCharts({
      rng: new Rng(1),
      shares: SHARES,
      p0: SHARES,
      share: 0.05,
      h: h / 4,
      n: 50,
      batches: 20_000,
    });
    expect(loose.alarms).toBeGreaterThan(10 * (20_000 / ARL0));
  });

  it("holds with a reference estimated from 2,000 validation records (its upper confidence limit)", () => {
    const rng = new Rng(2);
    const draw = sampler(SHARES);
    const counts = new Array<number>(K).fill(0);
    for (let i = 0; i < 2000; i++) {
      const k = draw(rng);
      counts[k] = (counts[k] as number) + 1;
    }
    const p0 = counts.map((c) => rateUpperBound(c, 2000, 0.001));
    const { alarms } = runClassCharts({ rng, shares: SHARES, p0, share: 0.05, h, n: 50, batches: BATCHES });
    console.log(`class-share charts, estimated reference: ${alarms} false alarms in ${BATCHES} batches`);
    expect(alarms).toBeLessThanOrEqual(TARGET);
  });

  it("a skewed record statistic, charted up and down with the histogram's cumulant: ≤ target", () => {
    // An entropy-like statistic: min(−ln u, 8), right-skewed (mean 1, skewness ≈ 2).
    const rng = new Rng(3);
    const draw = (): number => Math.min(8, -Math.log(1 - rng.next()));
    const hist: Histogram = { lo: 0, hi: 8, counts: new Array<number>(256).fill(0) };
    let sum = 0;
    let ss = 0;
    const N = 5000;
    const values = Array.from({ length: N }, draw);
    for (const v of values) {
      histogramAdd(hist, v);
      sum += v;
    }
    const mean = sum / N;
    for (const v of values) ss += (v - mean) ** 2;
    const sd = Math.sqrt(ss / (N - 1));
    const psi = histogramCumulant(hist, (3.09 * sd) / Math.sqrt(N));
    const lambda = 0.5 / sd;
    const hm = cusumThreshold(ARL0, 2);
    const up = newChart();
    const down = newChart();
    let alarms = 0;
    const n = 20;
    for (let t = 0; t < BATCHES; t++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += draw();
      const a = cusumUpdate(up, tiltedLlr(s, n, lambda, psi), hm, { x: s, n, batchId: "" }).alarm;
      const b = cusumUpdate(down, tiltedLlr(s, n, -lambda, psi), hm, { x: s, n, batchId: "" }).alarm;
      if (a || b) alarms++;
    }
    console.log(`skewed statistic, tilted charts up/down: ${alarms} false alarms in ${BATCHES} batches`);
    expect(alarms).toBeLessThanOrEqual(TARGET);
  });

  it("the KL upper confidence limit covers the true rate with probability ≥ 1 − β", () => {
    const rng = new Rng(4);
    const p = 0.02;
    let below = 0;
    const reps = 4000;
    for (let r = 0; r < reps; r++) {
      let x = 0;
      for (let i = 0; i < 500; i++) if (rng.next() < p) x++;
      if (rateUpperBound(x, 500, 0.01) < p) below++;
    }
    expect(below / reps).toBeLessThanOrEqual(0.01);
    expect(rateUpperBound(0, 200, 0.001)).toBeCloseTo(1 - 0.001 ** (1 / 200), 6); // Clopper–Pearson at 0
  });
});

describe("detection of a real shift", () => {
  it("finds 5% of the traffic moved into a 10% class within the stated delay", () => {
    const h = cusumThreshold(ARL0, K);
    const shifted = SHARES.map((p) => p * 0.95);
    shifted[2] = (shifted[2] as number) + 0.05; // class 2: 0.10 → 0.145
    const p1 = alternativeRate(SHARES[2] as number, 0.05);
    // Wald's approximation: h / (n · E[ℓ per record]) batches.
    const n = 50;
    const wald = h / (n * binomialDrift(shifted[2], SHARES[2] as number, p1));
    const rng = new Rng(5);
    const delays: number[] = [];
    for (let run = 0; run < 300; run++) {
      const r = runClassCharts({
        rng,
        shares: shifted,
        p0: SHARES,
        share: 0.05,
        h,
        n,
        batches: 1000,
        stopAtFirst: true,
      });
      delays.push(r.first ?? 1000);
    }
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    const sorted = [...delays].sort((a, b) => a - b);
    const p95 = sorted[Math.floor(0.95 * sorted.length)] as number;
    // Stated in docs/monitors.md: mean ≈ 24 batches of 50 records (Wald: 23), 95% within 45.
    expect(wald).toBeGreaterThan(20);
    expect(mean).toBeLessThanOrEqual(wald * 1.25);
    expect(p95).toBeLessThanOrEqual(45);
    console.log(
      `class-share shift 0.10 → 0.145, n = 50: mean delay ${mean.toFixed(1)} batches, 95% ≤ ${p95}, Wald ${wald.toFixed(1)}`,
    );
  });
});
