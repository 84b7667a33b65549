import { describe, expect, it } from "vitest";
import type { DetectorResult, ScanTable } from "../../src/detect/types.js";
import type { Finding } from "../../src/ledger/types.js";
import { Rng } from "../../src/math/rng.js";
import { combineResults, upperTails } from "../../src/scan/ensemble.js";

// The ensemble's rule on results whose truth is known by construction: detectors with planted
// flags and scores, so each clause of the rule (decisions stand, combined evidence, its chance
// control, the budget, evidence-only detectors, aggregates) is checked on its own.

function table(n: number, extra: Partial<ScanTable> = {}): ScanTable {
  return {
    ids: Array.from({ length: n }, (_, i) => `s${i}`),
    digests: Array.from({ length: n }, (_, i) => i.toString(16).padStart(64, "0")),
    labels: Int32Array.from({ length: n }, (_, i) => i % 2),
    classes: ["a", "b"],
    ...extra,
  };
}

function result(
  detector: string,
  scores: Float64Array,
  flagged: (i: number) => boolean = () => false,
  findings: Finding[] = [],
): DetectorResult {
  return {
    detector,
    version: "0",
    scores,
    flagged: Uint8Array.from(scores, (_, i) => (flagged(i) ? 1 : 0)),
    threshold: { value: 0, method: "test" },
    findings,
    summary: {},
    warnings: [],
  };
}

function randomScores(n: number, rng: Rng): Float64Array {
  return Float64Array.from({ length: n }, () => rng.next());
}

const ones = (a: Uint8Array) => a.reduce((s, v) => s + v, 0);

describe("ensemble: detectors' own decisions", () => {
  it("keeps every sample a detector flagged; risk > 0.5 exactly on the flagged set", () => {
    const n = 2000;
    const rng = new Rng(1);
    const a = result("a", randomScores(n, rng), (i) => i < 10);
    const b = result("b", randomScores(n, rng), (i) => i >= 5 && i < 20);
    const e = combineResults(table(n), [a, b], { reliability: { a: 0.9, b: 0.6 } });
    for (let i = 0; i < n; i++) {
      expect(e.flagged[i]).toBe(i < 20 ? 1 : 0);
      expect((e.risk[i] as number) > 0.5).toBe(i < 20);
      expect(e.risk[i]).toBeGreaterThanOrEqual(0);
      expect(e.risk[i]).toBeLessThanOrEqual(1);
    }
    expect(e.flaggedBy[7]).toEqual(["a", "b"]);
    expect(e.flaggedBy[2]).toEqual(["a"]);
    // Noisy-OR: two detectors beat either alone; the more reliable one alone beats the other alone.
    expect(e.risk[7]).toBeGreaterThan(e.risk[2] as number);
    expect(e.risk[2]).toBeGreaterThan(e.risk[15] as number);
    expect(e.combinedOnly).toEqual([]);
  });

  it("demotes a detector that flags more than maxFlagShare to evidence only, with a warning", () => {
    const n = 1000;
    const rng = new Rng(2);
    const noisy = result("noisy", randomScores(n, rng), (i) => i % 3 === 0); // a third of everything
    const sane = result("sane", randomScores(n, rng), (i) => i === 1);
    const e = combineResults(table(n), [noisy, sane]);
    expect(e.detectors.map((d) => [d.detector, d.decisive])).toEqual([
      ["noisy", false],
      ["sane", true],
    ]);
    expect(ones(e.flagged)).toBe(1);
    expect(e.warnings.join(" ")).toMatch(/noisy: it flagged 334 of 1000 samples .* evidence only/);
  });
});

describe("ensemble: combined evidence", () => {
  it("flags a sample that ranks at the top of three independent detectors, and only it", () => {
    const n = 5000;
    const rng = new Rng(3);
    const planted = 1234;
    const results = ["x", "y", "z"].map((name) => {
      const s = randomScores(n, rng);
      s[planted] = 2; // above every other score
      return result(name, s);
    });
    const e = combineResults(table(n), results);
    expect(e.combinedOnly).toEqual([planted]);
    expect(e.flagged[planted]).toBe(1);
    expect(e.flaggedBy[planted]).toEqual([]);
    expect(e.risk[planted]).toBeGreaterThan(0.95);
    expect(e.chance[planted]).toBeLessThanOrEqual(0.05);
    expect(ones(e.flagged)).toBe(1);
    // Top of one detector alone is what one sample in every scan is: no evidence of anything.
    const single = combineResults(table(n), [results[0]!]);
    expect(ones(single.flagged)).toBe(0);
    expect(single.chance[planted]).toBeGreaterThan(0.5);
  });

  it("flags nothing on independent null detectors (30 scans of 3,000 samples)", () => {
    const rng = new Rng(4);
    let scansWithFlags = 0;
    for (let rep = 0; rep < 30; rep++) {
      const n = 3000;
      const results = ["x", "y", "z"].map((name) => result(name, randomScores(n, rng)));
      const e = combineResults(table(n), results);
      if (ones(e.flagged) > 0) scansWithFlags++;
    }
    // alpha = 0.05 expected chance samples per scan: P(≥ 5 of 30 scans) < 0.002.
    expect(scansWithFlags).toBeLessThanOrEqual(4);
  });

  it("keeps strongly dependent detectors from flagging clean samples (the tail fit), within the budget", () => {
    // Three detectors that largely agree on clean data (hard samples are hard for all): the
    // independence null alone would flag the top of the shared score.
    const n = 6000;
    const rng = new Rng(5);
    const shared = randomScores(n, rng);
    const results = ["x", "y", "z"].map((name) =>
      result(
        name,
        Float64Array.from(shared, (v) => v + 0.05 * rng.normal()),
      ),
    );
    const e = combineResults(table(n), results);
    expect(ones(e.flagged)).toBeLessThanOrEqual(Math.floor(0.001 * n));
    expect(e.combinedOnly.length).toBeLessThanOrEqual(1);
    // Without the budget and with a lax alpha, the budget is what binds.
    const lax = combineResults(table(n), results, { alpha: 0.9, budget: 0.0005 });
    expect(lax.combinedOnly.length).toBeLessThanOrEqual(3);
  });
});

describe("ensemble: aggregates", () => {
  it("ranks the source whose samples are flagged, and counts per class", () => {
    const n = 3000;
    const sources = Array.from({ length: n }, (_, i) => `vendor-${i % 5}`);
    const rng = new Rng(6);
    // vendor-3 has 15% flagged, the others 1%.
    const flags = Array.from({ length: n }, (_, i) => rng.next() < (i % 5 === 3 ? 0.15 : 0.01));
    const r = result("cl", randomScores(n, rng), (i) => flags[i] === true);
    const e = combineResults(table(n, { sources }), [r]);
    expect(e.sources[0]).toMatchObject({ name: "vendor-3", anomalous: true, checks: ["source-risk"] });
    expect(e.sources.filter((s) => s.anomalous)).toHaveLength(1);
    const flagged = flags.filter(Boolean).length;
    expect(e.classes.map((c) => c.name)).toEqual(["a", "b"]);
    expect(e.classes.reduce((a, c) => a + c.flagged, 0)).toBe(flagged);
    expect(e.classes[0]!.samples + e.classes[1]!.samples).toBe(n);
    expect(e.classes[0]!.flaggedBy.cl).toBe(e.classes[0]!.flagged);
    expect(e.groupFindings.map((f) => [f.subjectType, f.subjectId])).toEqual([["source", "vendor-3"]]);
  });

  it("puts an annotator a detector names first, with its accuracy", () => {
    const n = 600;
    const annotations = Array.from({ length: n }, (_, i) =>
      ["w1", "w2", "w3", "w4"].map((annotator) => ({ annotator, label: i % 2 })),
    );
    const finding: Finding = {
      subjectType: "annotator",
      subjectId: "w3",
      kind: "unreliable-annotator",
      score: 9,
      evidence: {},
      check: "dawid-skene",
      checkVersion: "1",
    };
    const ds = result("dawid-skene", new Float64Array(n), () => false, [finding]);
    ds.summary = {
      annotators: [
        { annotator: "w3", accuracy: 0.6 },
        { annotator: "w1", accuracy: 0.95 },
      ],
    };
    const e = combineResults(table(n, { annotations }), [ds]);
    expect(e.annotators[0]).toMatchObject({
      name: "w3",
      anomalous: true,
      checks: ["dawid-skene"],
      accuracy: 0.6,
    });
    expect(e.annotators.find((a) => a.name === "w1")?.accuracy).toBe(0.95);
    expect(e.annotators.filter((a) => a.anomalous)).toHaveLength(1);
  });

  it("rejects results of another length", () => {
    expect(() => combineResults(table(10), [result("short", new Float64Array(9))])).toThrow(
      /"short" returned 9 scores for 10 samples/,
    );
  });
});

describe("rank tails", () => {
  it("gives ties the tail of the lowest of them and NaN no evidence", () => {
    const u = upperTails(Float64Array.from([0, 0, 0, 5, 3, NaN, 3]));
    // 6 scored: 5 → 1/6; the two 3s → 3/6; the three 0s → 6/6; NaN → 1.
    expect(Array.from(u)).toEqual([1, 1, 1, 1 / 6, 3 / 6, 1, 3 / 6]);
  });
});
