import { beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { collect, memoryDataset } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { confidentLearning } from "../../src/detect/confident-learning.js";
import { outOfSampleProbs } from "../../src/detect/proxy-linear.js";
import { sourceRisk } from "../../src/detect/source-risk.js";
import { logBinomialTail, logHypergeometricTail } from "../../src/math/tails.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import type { DetectorResult, ScanTable } from "../../src/detect/types.js";
import { featurizeText } from "../../src/features/featurize.js";
import type { SparseRows } from "../../src/features/matrix.js";
import { Rng } from "../../src/math/rng.js";
import { attack } from "../attack/oracle.js";
import { expectUsage } from "../helpers/errors.js";

const SOURCES = ["vendor-a", "vendor-b", "vendor-c", "vendor-d", "vendor-e"];

/** A detector result that flags exactly the given positions. */
function flags(n: number, flagged: (i: number) => boolean, detector = "test-detector"): DetectorResult {
  const f = Uint8Array.from({ length: n }, (_, i) => (flagged(i) ? 1 : 0));
  return {
    detector,
    version: "0",
    scores: Float64Array.from(f),
    flagged: f,
    threshold: { value: 0.5, method: "fixed" },
    findings: [],
    summary: {},
    warnings: [],
  };
}

function tableOf(sources: (string | null)[]): ScanTable {
  return {
    ids: sources.map((_, i) => `s${i}`),
    digests: sources.map((_, i) => `d${i}`),
    labels: new Int32Array(sources.length),
    classes: ["a", "b"],
    sources,
  };
}

describe("source risk on SpamAssassin from confident learning's flags", () => {
  let emails: Sample[];
  let sourced: Sample[];
  let rows: SparseRows;
  let classes: string[];
  beforeAll(async () => {
    const dataset = await openDataset("spamassassin");
    emails = await collect(dataset);
    classes = dataset.info.classes!;
    sourced = (
      await attack(emails, {
        kind: "assign-sources",
        seed: 2,
        sources: SOURCES.map((name) => ({ name, share: 0.2 })),
      })
    ).out;
    rows = await featurizeText(memoryDataset(emails), { charNgrams: false });
  });

  function scan(samples: Sample[]): { table: ScanTable; result: DetectorResult } {
    const table = scanTableFromSamples(samples, { classes });
    table.probs = outOfSampleProbs(rows, table.labels, classes).probs;
    return { table, result: confidentLearning.run(table) };
  }

  it("names the supplier whose labels were flipped, and no other", async () => {
    const count = Math.round(0.25 * sourced.filter((s) => s.source === "vendor-c").length);
    const { out } = await attack(
      sourced,
      { kind: "label-flip", fromSource: "vendor-c", count, seed: 12 },
      { classes },
    );
    const { table, result } = scan(out);
    const report = sourceRisk(table, [result]);

    expect(report.sources.map((s) => s.name)[0]).toBe("vendor-c");
    expect(report.sources.filter((s) => s.anomalous).map((s) => s.name)).toEqual(["vendor-c"]);
    const c = report.sources[0]!;
    expect(c.rate).toBeGreaterThan(0.2);
    expect(c.flaggedBy).toEqual({ "confident-learning": c.flagged });
    expect(c.score).toBeGreaterThan(50); // measured ≈ 185: p ≈ 1e-185
    expect(c.expected).toBeCloseTo((c.samples * report.sources.reduce((a, s) => a + s.flagged, 0)) / 6046, 3);
    expect(report.findings).toEqual([
      expect.objectContaining({
        subjectType: "source",
        subjectId: "vendor-c",
        kind: "anomalous-source",
        check: "source-risk",
      }),
    ]);
    expect(report.unattributed).toBe(0);
  });

  it("names no supplier on the clean corpus", () => {
    const { table, result } = scan(sourced);
    const report = sourceRisk(table, [result]);
    expect(report.sources).toHaveLength(5);
    expect(report.sources.filter((s) => s.anomalous)).toEqual([]);
    expect(report.findings).toEqual([]);
  });

  it("names the contractor worker whose labels the data took, when each email has one annotator", async () => {
    const { out } = await attack(
      emails,
      { kind: "malicious-annotator", annotators: 6, annotatorsPerSample: 1, flipRate: 0.3, seed: 4 },
      { classes },
    );
    // A pipeline that takes each item's single annotation as its label.
    const labeled = out.map((s) => ({ ...s, label: s.annotations[0]!.label }));
    const { table, result } = scan(labeled);
    const report = sourceRisk(table, [result]);
    expect(report.annotators[0]!.name).toBe("annotator-6");
    expect(report.annotators.filter((a) => a.anomalous).map((a) => a.name)).toEqual(["annotator-6"]);
    expect(report.findings.map((f) => [f.subjectType, f.subjectId, f.kind])).toEqual([
      ["annotator", "annotator-6", "anomalous-annotator"],
    ]);
  });
});

describe("source risk, the statistics", () => {
  it("judges a small source by an exact test: 5 of 6 flagged is anomalous, 1 of 2 is not", () => {
    const n = 10_000;
    const sources = Array.from({ length: n }, (_, i) =>
      i < 6 ? "tiny-bad" : i < 8 ? "tiny-ok" : i % 2 === 0 ? "big-1" : "big-2",
    );
    // 1% background rate in the big sources; 5 of tiny-bad's 6 flagged; 1 of tiny-ok's 2.
    const rng = new Rng(3);
    const result = flags(n, (i) => (i < 6 ? i < 5 : i < 8 ? i === 6 : rng.next() < 0.01));
    const report = sourceRisk(tableOf(sources), [result]);
    const by = new Map(report.sources.map((s) => [s.name, s]));
    expect(by.get("tiny-bad")!.anomalous).toBe(true);
    expect(report.sources[0]!.name).toBe("tiny-bad");
    expect(by.get("tiny-ok")!.anomalous).toBe(false);
    expect(by.get("big-1")!.anomalous).toBe(false);
    expect(by.get("big-2")!.anomalous).toBe(false);
  });

  it("keeps the family-wise error rate under alpha over many honest sources and detectors", () => {
    // 200 scans of 20 honest sources of uneven size with two detectors flagging at random (3% and 8%):
    // with alpha = 0.01 at most ~2 scans may name any source; allow 5 (P(≥ 6 | 200, 0.01) < 0.02).
    const rng = new Rng(8);
    let scansWithFalseAlarm = 0;
    for (let rep = 0; rep < 200; rep++) {
      const sizes = Array.from({ length: 20 }, () => 5 + rng.int(300));
      const sources = sizes.flatMap((size, k) => new Array<string>(size).fill(`s${k}`));
      const n = sources.length;
      const report = sourceRisk(tableOf(sources), [
        flags(n, () => rng.next() < 0.03, "d1"),
        flags(n, () => rng.next() < 0.08, "d2"),
      ]);
      if (report.findings.length > 0) scansWithFalseAlarm++;
    }
    expect(scansWithFalseAlarm).toBeLessThanOrEqual(5);
  });

  it("tests each detector apart, so one noisy detector does not drown a specific one", () => {
    const n = 6000;
    const sources = Array.from({ length: n }, (_, i) => `src-${i % 6}`);
    const rng = new Rng(4);
    // A noisy detector flags 30% of everything; a specific one flags 4% of src-3 and 0.5% elsewhere.
    const noisy = flags(n, () => rng.next() < 0.3, "noisy");
    const specific = flags(n, (i) => rng.next() < (i % 6 === 3 ? 0.04 : 0.005), "specific");
    const report = sourceRisk(tableOf(sources), [noisy, specific]);
    expect(report.sources[0]).toMatchObject({ name: "src-3", anomalous: true, test: "specific" });
    expect(report.sources.filter((s) => s.anomalous)).toHaveLength(1);
    expect(Object.keys(report.sources[0]!.flaggedBy).sort()).toEqual(["noisy", "specific"]);
  });

  it("leaves samples without a source out, and rejects results of another length", () => {
    const report = sourceRisk(tableOf(["a", null, "b", null]), [flags(4, (i) => i === 0)]);
    expect(report.unattributed).toBe(2);
    expect(report.sources.map((s) => s.samples)).toEqual([1, 1]);
    expectUsage(
      () => sourceRisk(tableOf(["a", "b"]), [flags(3, () => true)]),
      /"test-detector" flagged 3 samples but the table has 2/,
    );
  });

  it("computes hypergeometric and binomial tails exactly (checked against direct sums)", () => {
    const choose = (n: number, k: number): number => {
      let r = 1;
      for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
      return r;
    };
    for (const [N, K, n] of [
      [20, 7, 5],
      [50, 3, 10],
      [300, 40, 60],
    ] as const) {
      for (let k = 0; k <= Math.min(n, K); k++) {
        let direct = 0;
        for (let x = k; x <= Math.min(n, K); x++)
          direct += (choose(K, x) * choose(N - K, n - x)) / choose(N, n);
        expect(Math.exp(logHypergeometricTail(k, N, K, n))).toBeCloseTo(direct, 10);
      }
    }
    for (const [n, p] of [
      [10, 0.3],
      [400, 0.01],
    ] as const) {
      for (let k = 0; k <= Math.min(n, 20); k++) {
        let direct = 0;
        for (let x = k; x <= n; x++) direct += choose(n, x) * p ** x * (1 - p) ** (n - x);
        expect(Math.exp(logBinomialTail(k, n, p))).toBeCloseTo(direct, 10);
      }
    }
    // Far tails stay finite in log space where the probability itself underflows: a source of 1,200
    // holding all 1,200 flags of 6,000 samples has p = 1 / C(6000, 1200).
    let logChoose = 0;
    for (let i = 1; i <= 1200; i++) logChoose += Math.log((6000 - 1200 + i) / i);
    expect(logHypergeometricTail(1200, 6000, 1200, 1200)).toBeCloseTo(-logChoose, 6);
    expect(-logChoose).toBeLessThan(Math.log(Number.MIN_VALUE));
  });
});
