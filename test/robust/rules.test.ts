import { describe, expect, it } from "vitest";
import { isAntidoteError } from "../../src/errors.js";
import { Rng } from "../../src/math/rng.js";
import { aggregate } from "../../src/robust/aggregate.js";
import { inMemoryUpdates } from "../../src/robust/matrix.js";
import { aggregatePass, gramPass, openEngine } from "../../src/robust/rules/passes.js";
import {
  AGGREGATION_RULES,
  type AggregateOptions,
  type AggregateResult,
  type AggregationRule,
  type UpdateMatrix,
} from "../../src/robust/types.js";

const rows32 = (rows: readonly (readonly number[])[]): Float32Array[] =>
  rows.map((r) => Float32Array.from(r));

function run(
  rows: readonly (readonly number[])[],
  options: Partial<AggregateOptions> & { rule: AggregationRule },
) {
  return aggregate(inMemoryUpdates(rows32(rows)), { byzantine: 0, threads: 1, ...options });
}

function expectClose(actual: ArrayLike<number>, expected: readonly number[], digits = 5): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, digits));
}

/** Honest clients: a shared direction plus independent Gaussian noise (IID-like). */
function honestRound(n: number, d: number, seed: number, signal = 1, noise = 1): Float32Array[] {
  const rng = new Rng(seed);
  const mu = Array.from({ length: d }, () => signal * rng.normal());
  return Array.from({ length: n }, () => Float32Array.from(mu, (m) => m + noise * rng.normal()));
}

/** An UpdateMatrix that behaves like the file-backed one (one reused buffer per client) and records what was asked. */
function counting(updates: readonly Float32Array[]) {
  const inner = inMemoryUpdates(updates);
  const buffers = updates.map(() => new Float32Array(0));
  const stats = { calls: 0, maxLength: 0 };
  const matrix: UpdateMatrix = {
    clients: inner.clients,
    dimension: inner.dimension,
    columns(client, start, end) {
      stats.calls++;
      stats.maxLength = Math.max(stats.maxLength, end - start);
      if (buffers[client]!.length < end - start) buffers[client] = new Float32Array(end - start);
      const out = buffers[client]!.subarray(0, end - start);
      out.set(inner.columns(client, start, end));
      return out;
    },
  };
  return { matrix, stats };
}

function usageMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isAntidoteError(e) && e.code === "USAGE") return e.message;
    throw e;
  }
  throw new Error("expected a USAGE error");
}

function flaggedClients(r: AggregateResult): number[] {
  return r.clients.filter((c) => c.flagged).map((c) => c.client);
}

describe("coordinate-wise rules (hand-computed)", () => {
  // Six clients, three coordinates. Sorted per coordinate:
  //   c0: 1, 2, 3, 4, 9, 100     c1: -100, 3, 4, 4, 5, 6     c2: -2, 0, 1, 3, 4, 10
  const six = [
    [1, 5, -2],
    [2, 3, 0],
    [9, 4, 1],
    [3, -100, 4],
    [100, 6, 3],
    [4, 4, 10],
  ];

  it("mean is the plain average", () => {
    // c0: 119/6, c1: -78/6 = -13, c2: 16/6
    expectClose(run(six, { rule: "mean" }).aggregate, [119 / 6, -13, 16 / 6], 4);
  });

  it("median averages the two middle values when n is even, takes the middle one when n is odd", () => {
    // Even (6): c0 (3 + 4)/2 = 3.5, c1 (4 + 4)/2 = 4, c2 (1 + 3)/2 = 2.
    expectClose(run(six, { rule: "median", byzantine: 2 }).aggregate, [3.5, 4, 2]);
    // Odd (first 5): c0 1,2,3,9,100 → 3; c1 -100,3,4,5,6 → 4; c2 -2,0,1,3,4 → 1.
    expectClose(run(six.slice(0, 5), { rule: "median", byzantine: 2 }).aggregate, [3, 4, 1]);
  });

  it("trimmed-mean drops trim values at each end of every coordinate (trim defaults to F)", () => {
    // trim 1: c0 (2+3+4+9)/4 = 4.5, c1 (3+4+4+5)/4 = 4, c2 (0+1+3+4)/4 = 2.
    const r = run(six, { rule: "trimmed-mean", byzantine: 1 });
    expectClose(r.aggregate, [4.5, 4, 2]);
    expect(r.details.trim).toBe(1);
    // trim 2: c0 (3+4)/2 = 3.5, c1 (4+4)/2 = 4, c2 (1+3)/2 = 2 — the median, as it should be.
    expectClose(run(six, { rule: "trimmed-mean", byzantine: 0, trim: 2 }).aggregate, [3.5, 4, 2]);
  });

  it("client scores are the norm, distance and cosine to the aggregate", () => {
    const r = run(six, { rule: "median", byzantine: 2 });
    // Client 1 = (2, 3, 0) against the median (3.5, 4, 2): norm √13, distance √(2.25 + 1 + 4) = √7.25,
    // cosine (7 + 12 + 0) / (√13 · √(12.25 + 16 + 4)) = 19 / (√13 · √32.25).
    const c = r.clients[1]!;
    expect(c.norm).toBeCloseTo(Math.sqrt(13), 6);
    expect(c.distance).toBeCloseTo(Math.sqrt(7.25), 6);
    expect(c.cosine).toBeCloseTo(19 / (Math.sqrt(13) * Math.sqrt(32.25)), 6);
    expect(c.ruleScore).toBeNull();
    expect(c.selected).toBeNull();
    // Client 3 (-100 in c1) and client 4 (100 in c0) sit ~100 from the median, the others < 10.
    expect(flaggedClients(r)).toEqual([3, 4]);
    expect(r.clients[3]!.reasons.join(" ")).toMatch(/distance to the aggregate .* modified z-score/);
  });
});

describe("krum and multi-krum (hand-computed)", () => {
  // Five clients, F = 1, so n − F − 2 = 2 neighbours. Squared distances:
  //   d01 = 1, d02 = 4, d03 = 5, d04 = 300, d12 = 5, d13 = 2, d14 = 281, d23 = 5, d24 = 264, d34 = 245
  // Krum scores (two nearest): x0 1+4 = 5, x1 1+2 = 3, x2 4+5 = 9, x3 2+5 = 7, x4 245+264 = 509.
  const five = [
    [0, 0, 0],
    [1, 0, 0],
    [0, 2, 0],
    [2, 1, 0],
    [10, 10, 10],
  ];

  it("krum returns the update with the lowest score and flags the F highest", () => {
    const r = run(five, { rule: "krum", byzantine: 1 });
    expectClose(r.aggregate, [1, 0, 0]);
    expectClose(
      r.clients.map((c) => c.ruleScore!),
      [5, 3, 9, 7, 509],
      6,
    );
    expect(r.clients.map((c) => c.selected)).toEqual([false, true, false, false, false]);
    expect(r.details.selectedClient).toBe(1);
    expect(r.clients[1]!.distance).toBe(0);
    expect(r.clients[1]!.cosine).toBeCloseTo(1, 9);
    expect(flaggedClients(r)).toEqual([4]);
  });

  it("multi-krum averages the m lowest-scored updates (m = n − F by default)", () => {
    // m = 4: x1, x0, x3, x2 → ((0+1+0+2)/4, (0+0+2+1)/4, 0) = (0.75, 0.75, 0).
    const r = run(five, { rule: "multi-krum", byzantine: 1 });
    expectClose(r.aggregate, [0.75, 0.75, 0]);
    expect(r.clients.map((c) => c.selected)).toEqual([true, true, true, true, false]);
    expect(flaggedClients(r)).toEqual([4]);
    expect(r.clients[4]!.reasons[0]).toBe(
      "krum score 509 ranks 5 of 5: among the F = 1 highest, which multi-krum treats as possibly Byzantine (left out of the aggregate)",
    );
    // m = 2: x1, x0 → (0.5, 0, 0).
    expectClose(run(five, { rule: "multi-krum", byzantine: 1, multiKrumSelect: 2 }).aggregate, [0.5, 0, 0]);
  });
});

describe("bulyan (hand-computed)", () => {
  // Seven clients, F = 1 (n ≥ 4F + 3): θ = n − 2F = 5 selected, β = θ − 2F = 3 averaged per coordinate.
  const seven = [
    [2, 3, -4],
    [3, 0, 0],
    [1, -2, 4],
    [-4, -2, -1],
    [1, -1, -3],
    [-4, -4, -4],
    [20, -20, 20],
  ];
  // Squared distances (x6 is 941..1429 from everyone):
  //        x1  x2  x3  x4  x5
  //   x0   26  90  70  18  85
  //   x1       24  54  14  81
  //   x2           50  50  93
  //   x3               30  13
  //   x4                   35
  // Iterated Krum (neighbours r − F − 2, at least 1; ties broken by the total distance):
  //   r=7, k=4: x4 = 14+18+30+35 = 97 is lowest          → select x4
  //   r=6, k=3: x1 = 24+26+54 = 104                       → select x1
  //   r=5, k=2: x3 = 13+50 = 63                           → select x3
  //   r=4, k=1: x0 = 85 (to x5) ties x5 = 85 (to x0); totals 1604 vs 1586 → select x5
  //   r=3, k=1: x0 = 90 ties x2 = 90; totals 1519 vs 1031 → select x2
  // Selected {x1, x2, x3, x4, x5}; per coordinate, the 3 values nearest the median:
  //   c0: 3, 1, -4, 1, -4 → median 1 → 1, 1, 3 → 5/3
  //   c1: 0, -2, -2, -1, -4 → median -2 → -2, -2, -1 → -5/3
  //   c2: 0, 4, -1, -3, -4 → median -1 → -1, 0, -3 → -4/3
  it("selects θ updates by iterated krum and averages the β nearest the coordinate median", () => {
    const r = run(seven, { rule: "bulyan", byzantine: 1 });
    expect(r.details.selectionOrder).toBe("4,1,3,5,2");
    expectClose(r.aggregate, [5 / 3, -5 / 3, -4 / 3]);
    expect(r.clients.map((c) => c.selected)).toEqual([false, true, true, true, true, true, false]);
    expect(flaggedClients(r)).toContain(6);
    expect(r.details.theta).toBe(5);
    expect(r.details.beta).toBe(3);
  });
});

describe("geometric median", () => {
  it("of collinear points is their one-dimensional median", () => {
    // On a line Σ|x_i − z| is minimised by the median of 0, 1, 2, 10, 100: z = 2.
    const r = run(
      [
        [0, 0, 0],
        [1, 0, 0],
        [2, 0, 0],
        [10, 0, 0],
        [100, 0, 0],
      ],
      { rule: "geometric-median", byzantine: 2, tolerance: 1e-12, maxIterations: 500 },
    );
    expectClose(r.aggregate, [2, 0, 0], 4);
    expect(r.details.converged).toBe("yes");
  });

  it("satisfies the optimality condition ‖Σ (z − x_i)/‖z − x_i‖‖ ≈ 0 on random data", () => {
    const rng = new Rng(7);
    const d = 20;
    const n = 15;
    // Skewed, heavy-tailed points so the geometric median is far from the mean.
    const xs = Array.from({ length: n }, (_, i) =>
      Float32Array.from({ length: d }, () => rng.normal() * (1 + (i % 4)) + (i < 4 ? 8 : 0)),
    );
    const r = aggregate(inMemoryUpdates(xs), {
      rule: "geometric-median",
      byzantine: 4,
      tolerance: 1e-14,
      maxIterations: 5000,
      threads: 1,
    });
    const z = r.aggregate;
    const grad = new Float64Array(d);
    for (const x of xs) {
      let dist = 0;
      for (let k = 0; k < d; k++) dist += (z[k]! - x[k]!) ** 2;
      dist = Math.sqrt(dist);
      for (let k = 0; k < d; k++) grad[k] = grad[k]! + (z[k]! - x[k]!) / dist;
    }
    const gradNorm = Math.sqrt(grad.reduce((a, g) => a + g * g, 0));
    // Each term is a unit vector, so n = 15 is the scale of a wrong answer; the mean misses by ~10.
    expect(gradNorm).toBeLessThan(1e-3);
    let meanGrad = 0;
    const mean = new Float64Array(d);
    for (const x of xs) for (let k = 0; k < d; k++) mean[k] = mean[k]! + x[k]! / n;
    const mg = new Float64Array(d);
    for (const x of xs) {
      let dist = 0;
      for (let k = 0; k < d; k++) dist += (mean[k]! - x[k]!) ** 2;
      for (let k = 0; k < d; k++) mg[k] = mg[k]! + (mean[k]! - x[k]!) / Math.sqrt(dist);
    }
    meanGrad = Math.sqrt(mg.reduce((a, g) => a + g * g, 0));
    expect(meanGrad).toBeGreaterThan(1);
    expect(Number(r.details.iterations)).toBeGreaterThan(1);
    const weights = r.clients.map((c) => c.ruleScore!);
    expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
  });
});

describe("fltrust", () => {
  it("trusts ReLU(cos) with the root update, rescales to ‖g0‖, and gives an opposed update 0 (hand-computed)", () => {
    // g0 = (1, 0, 0). Trust: x0 cos 1 → 1; x1 cos 1/√2; x2 cos −1 → 0; x3 cos 0 → 0.
    // Rescaled: ĝ0 = (1, 0, 0), ĝ1 = (1, 1, 0)/√2. Aggregate = (1·ĝ0 + (1/√2)·ĝ1) / (1 + 1/√2)
    //   = (1.5, 0.5, 0) / 1.70711 = (0.878680, 0.292893, 0).
    const r = run(
      [
        [2, 0, 0],
        [1, 1, 0],
        [-3, 0, 0],
        [0, 0, 5],
      ],
      { rule: "fltrust", rootUpdate: Float32Array.from([1, 0, 0]) },
    );
    expectClose(r.aggregate, [1.5 / (1 + Math.SQRT1_2), 0.5 / (1 + Math.SQRT1_2), 0]);
    expectClose(
      r.clients.map((c) => c.ruleScore!),
      [1, Math.SQRT1_2, 0, 0],
      6,
    );
    expect(flaggedClients(r)).toEqual([2, 3]);
    expect(r.clients[2]!.reasons[0]).toMatch(
      /FLTrust trust 0: cosine -1 with the root update is not positive/,
    );
  });

  it("returns the zero update and says so when every trust is 0", () => {
    const r = run(
      [
        [-1, 0, 0],
        [0, 1, 0],
      ],
      { rule: "fltrust", rootUpdate: Float32Array.from([1, 0, 0]) },
    );
    expectClose(r.aggregate, [0, 0, 0]);
    expect(String(r.details.note)).toMatch(/aggregate is the zero update/);
    expect(r.clients.every((c) => c.flagged && c.cosine === 0)).toBe(true);
  });
});

describe("norm-clip-mean (hand-computed)", () => {
  // Norms 5, 1, 10, 2, 3.
  const five = [
    [3, 4, 0],
    [0, 0, 1],
    [0, 6, 8],
    [2, 0, 0],
    [0, 0, -3],
  ];
  it("clips to the median norm by default", () => {
    // τ = 3: factors 0.6, 1, 0.3, 1, 1 → (1.8, 2.4, 0) + (0, 0, 1) + (0, 1.8, 2.4) + (2, 0, 0) + (0, 0, −3)
    //   = (3.8, 4.2, 0.4) / 5 = (0.76, 0.84, 0.08).
    const r = run(five, { rule: "norm-clip-mean" });
    expectClose(r.aggregate, [0.76, 0.84, 0.08]);
    expectClose(
      r.clients.map((c) => c.ruleScore!),
      [0.6, 1, 0.3, 1, 1],
      6,
    );
    expect(r.details.clipNorm).toBe(3);
    expect(r.details.clipped).toBe(2);
  });
  it("clips to a given bound", () => {
    // τ = 2: factors 0.4, 1, 0.2, 1, 2/3 → (1.2, 1.6, 0) + (0, 0, 1) + (0, 1.2, 1.6) + (2, 0, 0) + (0, 0, −2)
    //   = (3.2, 2.8, 0.6) / 5 = (0.64, 0.56, 0.12).
    expectClose(run(five, { rule: "norm-clip-mean", clipNorm: 2 }).aggregate, [0.64, 0.56, 0.12]);
  });
});

const OPTIONS: Record<AggregationRule, Partial<AggregateOptions>> = {
  mean: {},
  krum: { byzantine: 2 },
  "multi-krum": { byzantine: 2 },
  median: { byzantine: 2 },
  "trimmed-mean": { byzantine: 2 },
  bulyan: { byzantine: 2 },
  "geometric-median": { byzantine: 2, tolerance: 1e-10, maxIterations: 300 },
  fltrust: {},
  "norm-clip-mean": {},
};

describe("every rule", () => {
  const d = 50;
  const updates = honestRound(12, d, 11, 0.5);
  updates.push(Float32Array.from({ length: d }, (_, k) => (k % 2 === 0 ? 40 : -40)));
  const rootUpdate = honestRound(1, d, 11, 0.5, 0.2)[0]!;

  it.each(AGGREGATION_RULES)("%s is invariant to the order clients are listed in", (rule) => {
    const rng = new Rng(`perm-${rule}`);
    const order = rng.shuffle(updates.map((_, i) => i));
    const a = aggregate(inMemoryUpdates(updates), {
      rule,
      byzantine: 0,
      rootUpdate,
      threads: 1,
      ...OPTIONS[rule],
    });
    const b = aggregate(inMemoryUpdates(order.map((i) => updates[i]!)), {
      rule,
      byzantine: 0,
      rootUpdate,
      threads: 1,
      ...OPTIONS[rule],
    });
    for (let k = 0; k < d; k++) expect(b.aggregate[k]).toBeCloseTo(a.aggregate[k]!, 5);
    order.forEach((orig, pos) => {
      const ca = a.clients[orig]!;
      const cb = b.clients[pos]!;
      expect(cb.distance).toBeCloseTo(ca.distance, 4);
      expect(cb.selected).toBe(ca.selected);
      expect(cb.flagged).toBe(ca.flagged);
      if (ca.ruleScore !== null) expect(cb.ruleScore!).toBeCloseTo(ca.ruleScore, 4);
    });
  });

  it.each(AGGREGATION_RULES)(
    "%s reads at most blockSize coordinates per call and gives the same result with blockSize 7 as in one block",
    (rule) => {
      const blocked = counting(updates);
      const whole = counting(updates);
      const options = { rule, byzantine: 0, rootUpdate, threads: 1, ...OPTIONS[rule] };
      const a = aggregate(blocked.matrix, { ...options, blockSize: 7 });
      const b = aggregate(whole.matrix, { ...options, blockSize: d });
      expect(blocked.stats.maxLength).toBe(7);
      expect(whole.stats.maxLength).toBe(d);
      expect(a.details.blockSize).toBe(7);
      for (let k = 0; k < d; k++)
        expect(Math.abs(a.aggregate[k]! - b.aggregate[k]!)).toBeLessThanOrEqual(1e-6);
      a.clients.forEach((c, i) => {
        const w = b.clients[i]!;
        expect(Math.abs(c.norm - w.norm)).toBeLessThanOrEqual(1e-6 * w.norm);
        expect(Math.abs(c.distance - w.distance)).toBeLessThanOrEqual(1e-6 * Math.max(1, w.distance));
        expect(Math.abs(c.cosine - w.cosine)).toBeLessThanOrEqual(1e-6);
        expect(c.flagged).toBe(w.flagged);
      });
    },
  );

  it("flags (almost) nobody on an honest round with IID-like noise", () => {
    // 40 honest clients, F = 0 so selection rules exclude nobody: only the outlier checks speak.
    const honest = honestRound(40, 400, 3, 0.3);
    const root = honestRound(1, 400, 3, 0.3, 0.3)[0]!;
    for (const rule of AGGREGATION_RULES) {
      const r = aggregate(inMemoryUpdates(honest), { rule, byzantine: 0, rootUpdate: root, threads: 1 });
      expect(flaggedClients(r).length, rule).toBeLessThanOrEqual(1);
    }
  });

  it("flags Byzantine sign-flipping clients as outliers under the median", () => {
    const round = honestRound(20, 300, 5, 1);
    for (let i = 0; i < 3; i++) round[i] = round[i]!.map((v) => -4 * v);
    const r = aggregate(inMemoryUpdates(round), { rule: "median", byzantine: 3, threads: 1 });
    expect(flaggedClients(r)).toEqual([0, 1, 2]);
    expect(r.clients[0]!.cosine).toBeLessThan(0);
  });

  it("does not flag honest clients bulyan merely left out, in high dimension", () => {
    // 24 honest clients around μ, 6 sending −4μ. Bulyan (F = 6) keeps θ = 18 and averages β = 6
    // per coordinate, so the honest clients it left out sit ~8% farther from its aggregate. In
    // 50,000 dimensions that gap is >15 MADs; only the spread floor keeps them from being flagged.
    const rng = new Rng(77);
    const d = 50_000;
    const mu = Float32Array.from({ length: d }, () => rng.next() - 0.5);
    const round = Array.from({ length: 30 }, (_, c) =>
      mu.map((m) => (c < 6 ? -4 : 1) * m + (rng.next() - 0.5) * 1.5),
    );
    const r = aggregate(inMemoryUpdates(round), { rule: "bulyan", byzantine: 6, threads: 1 });
    const leftOutHonest = r.clients.filter((c) => c.client >= 6 && c.selected === false);
    expect(leftOutHonest.length).toBeGreaterThan(3);
    expect(flaggedClients(r)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("krum, multi-krum and bulyan leave out a far outlier, and flag it", () => {
    const round = honestRound(12, 64, 9, 0.5);
    round.push(Float32Array.from({ length: 64 }, () => 25));
    const far = round.length - 1;
    for (const rule of ["krum", "multi-krum", "bulyan"] as const) {
      const r = aggregate(inMemoryUpdates(round), { rule, byzantine: 2, threads: 1 });
      expect(r.clients[far]!.selected, rule).toBe(false);
      expect(r.clients[far]!.flagged, rule).toBe(true);
      expect(
        r.clients[far]!.reasons.some((t) => /distance to the aggregate/.test(t)),
        rule,
      ).toBe(true);
      // Every coordinate of the outlier is 25; none of the aggregate's comes near.
      expect(Math.max(...r.aggregate), rule).toBeLessThan(5);
    }
  });
});

describe("bounds and options", () => {
  const ten = honestRound(10, 4, 1).map((u) => Array.from(u));

  it("names the bound, the numbers and the largest F that works", () => {
    expect(usageMessage(() => run(ten, { rule: "krum", byzantine: 4 }))).toBe(
      "krum tolerates F Byzantine clients only when n > 2F + 2: got n = 10, F = 4 (with 10 clients, F ≤ 3).",
    );
    expect(usageMessage(() => run(ten, { rule: "multi-krum", byzantine: 4 }))).toMatch(
      /n > 2F \+ 2: got n = 10, F = 4/,
    );
    expect(usageMessage(() => run(ten, { rule: "median", byzantine: 5 }))).toBe(
      "median tolerates F Byzantine clients only when n > 2F: got n = 10, F = 5 (with 10 clients, F ≤ 4).",
    );
    expect(usageMessage(() => run(ten, { rule: "bulyan", byzantine: 2 }))).toBe(
      "bulyan tolerates F Byzantine clients only when n ≥ 4F + 3: got n = 10, F = 2 (with 10 clients, F ≤ 1).",
    );
    expect(usageMessage(() => run(ten, { rule: "geometric-median", byzantine: 5 }))).toMatch(
      /n > 2F: got n = 10, F = 5/,
    );
    expect(usageMessage(() => run(ten, { rule: "trimmed-mean", byzantine: 1, trim: 5 }))).toBe(
      "trimmed-mean drops trim values from each end of every coordinate, so it needs n > 2·trim: got n = 10, trim = 5 (with 10 clients, trim ≤ 4).",
    );
    expect(usageMessage(() => run(ten.slice(0, 2), { rule: "krum", byzantine: 0 }))).toMatch(
      /got n = 2, F = 0 \(krum needs at least 3 clients\)/,
    );
  });

  it("rejects an empty round, a bad F and bad options", () => {
    expect(usageMessage(() => aggregate(inMemoryUpdates([]), { rule: "mean", byzantine: 0 }))).toMatch(
      /no client updates to aggregate/,
    );
    expect(usageMessage(() => run(ten, { rule: "median", byzantine: -1 }))).toMatch(
      /non-negative integer: got -1/,
    );
    expect(usageMessage(() => run(ten, { rule: "multi-krum", byzantine: 1, multiKrumSelect: 11 }))).toMatch(
      /1 ≤ m ≤ n: got m = 11 with n = 10/,
    );
    expect(usageMessage(() => run(ten, { rule: "fltrust" }))).toMatch(
      /fltrust needs the server's root update/,
    );
    expect(usageMessage(() => run(ten, { rule: "fltrust", rootUpdate: new Float32Array(3) }))).toMatch(
      /root update has 3 coordinates but the client updates have 4/,
    );
    expect(usageMessage(() => run(ten, { rule: "norm-clip-mean", clipNorm: 0 }))).toMatch(
      /clipNorm must be a positive/,
    );
  });

  it("refuses a non-finite update instead of returning a NaN aggregate", () => {
    const bad = ten.map((r) => [...r]);
    bad[3]![2] = NaN;
    for (const rule of ["mean", "median", "krum"] as const) {
      try {
        run(bad, { rule, byzantine: 1 });
        expect.unreachable();
      } catch (e) {
        expect(isAntidoteError(e) && e.code === "INPUT_FORMAT" && /client 3/.test(e.message), rule).toBe(
          true,
        );
      }
    }
  });
});

describe("engine kernels", () => {
  // 7 clients (not a multiple of the 3 × 3 or 4 × 4 tiles) and 1,001 coordinates in blocks of 600:
  // one block has a 512 + 88 split, the other 401 coordinates, odd, so every tail path runs.
  const rng = new Rng(33);
  const rows = Array.from({ length: 7 }, () => Float32Array.from({ length: 1001 }, () => rng.normal()));
  const exact = rows.map((a) => rows.map((b) => a.reduce((s, v, k) => s + v * b[k]!, 0)));

  it.each([true, false])("the Gram pass matches exact dot products (WebAssembly %s)", (wasm) => {
    const engine = openEngine(inMemoryUpdates(rows), { blockSize: 600, threads: 1, gram: true, wasm });
    expect(engine.usesWasm).toBe(wasm);
    const g = gramPass(engine, "test");
    engine.close();
    for (let i = 0; i < 7; i++)
      for (let j = 0; j < 7; j++)
        expect(Math.abs(g[i * 7 + j]! - exact[i]![j]!)).toBeLessThan(1e-9 * Math.abs(exact[i]![i]!));
  });

  it("worker threads compute the same Gram matrix and aggregates as the main thread alone", () => {
    const big = Array.from({ length: 11 }, () => Float32Array.from({ length: 5000 }, () => rng.normal()));
    const run = (threads: number, mainThreadWorks: boolean) => {
      const engine = openEngine(inMemoryUpdates(big), {
        blockSize: 1024,
        threads,
        gram: true,
        mainThreadWorks,
      });
      try {
        const gram = gramPass(engine, "test");
        const median = aggregatePass(engine, "test", { kind: "median" });
        const bulyan = aggregatePass(engine, "test", {
          kind: "bulyan",
          selected: [0, 2, 3, 5, 6, 8, 9],
          beta: 3,
        });
        const weighted = aggregatePass(engine, "test", {
          kind: "weighted",
          weights: big.map((_, i) => i / 10),
        });
        return { gram, median, bulyan, weighted, onWorkers: engine.tasksOnWorkers, tasks: engine.tasksRun };
      } finally {
        engine.close();
      }
    };
    const one = run(1, true);
    // The main thread only waits, so every task ran on the worker.
    const worker = run(2, false);
    expect(worker.onWorkers).toBe(worker.tasks);
    one.gram.forEach((v, i) =>
      expect(Math.abs(worker.gram[i]! - v)).toBeLessThan(1e-9 * Math.abs(one.gram[0]!)),
    );
    for (const key of ["median", "bulyan", "weighted"] as const) {
      expect(Array.from(worker[key].aggregate), key).toEqual(Array.from(one[key].aggregate));
      one[key].sums.distanceSq.forEach((v, i) => expect(worker[key].sums.distanceSq[i]).toBeCloseTo(v, 6));
    }
  });

  it("aggregate() with two threads gives the same result as with one", () => {
    const round = Array.from({ length: 24 }, () =>
      Float32Array.from({ length: 60_000 }, () => rng.next() - 0.5),
    );
    for (const rule of ["multi-krum", "median", "bulyan"] as const) {
      const one = aggregate(inMemoryUpdates(round), { rule, byzantine: 3, threads: 1, blockSize: 8192 });
      const two = aggregate(inMemoryUpdates(round), { rule, byzantine: 3, threads: 2, blockSize: 8192 });
      expect(two.details.threads).toBe(2);
      expect(Array.from(two.aggregate)).toEqual(Array.from(one.aggregate));
      two.clients.forEach((c, i) => {
        expect(c.distance).toBeCloseTo(one.clients[i]!.distance, 6);
        expect(c.selected).toBe(one.clients[i]!.selected);
      });
    }
  });
});
