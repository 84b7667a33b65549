import { beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { simulateAttack, type AttackSpec, type GroundTruth } from "../../src/attack/index.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import {
  fitPowerLaw,
  hurwitzZeta,
  logBinomialTail,
  nearDuplicates,
  wordShingles,
} from "../../src/detect/near-duplicates.js";
import type { DetectorResult } from "../../src/detect/types.js";

// Full SpamAssassin (6,046 emails): the natural near-duplicate clusters are part of the test.
let emails: Sample[];
beforeAll(async () => {
  emails = await collect(await openDataset("spamassassin"));
  expect(emails).toHaveLength(6046);
});

async function attack(
  input: readonly Sample[],
  spec: AttackSpec,
): Promise<{ out: Sample[]; gt: GroundTruth }> {
  const writer = new MemoryWriter();
  const gt = await simulateAttack(memoryDataset(input), writer, spec);
  return { out: writer.samples, gt };
}

function timed(samples: readonly Sample[]): { result: DetectorResult; ids: string[]; seconds: number } {
  const table = scanTableFromSamples(samples, { classes: ["ham", "spam"] });
  const start = performance.now();
  const result = nearDuplicates.run(table);
  return { result, ids: table.ids, seconds: (performance.now() - start) / 1000 };
}

interface Cluster {
  size: number;
  burst: boolean;
  expectedNaturalClusters: number;
  representative: string;
}

describe("near-duplicates on SpamAssassin", () => {
  it("reports the clean corpus's duplicates, natural and exact, without calling any a burst", () => {
    // Ten emails delivered twice more, byte for byte (ids differ, content digests agree).
    const doubled = emails.slice(100, 110).flatMap((e) => [
      { ...e, id: `${e.id}#2` },
      { ...e, id: `${e.id}#3` },
    ]);
    const { result, seconds } = timed([...emails, ...doubled]);
    console.log(`near-duplicates: ${emails.length + doubled.length} emails in ${seconds.toFixed(1)} s`);
    const flagged = result.flagged.reduce((a, b) => a + b, 0);
    expect(flagged / (emails.length + doubled.length)).toBeLessThanOrEqual(0.005);
    expect(result.findings).toHaveLength(flagged);
    const summary = result.summary as {
      exactDuplicates: { groups: number; extraCopies: number };
      clusters: number;
      bursts: Cluster[];
      topClusters: Cluster[];
    };
    expect(summary.exactDuplicates).toEqual({ groups: 10, extraCopies: 20 });
    // SpamAssassin's own near duplicates (the same spam or newsletter more than once) are reported as clusters.
    expect(summary.clusters).toBeGreaterThan(50);
    expect(summary.topClusters[0]?.size).toBeGreaterThanOrEqual(5);
    expect(summary.bursts).toEqual([]);
    expect(summary.topClusters.every((c) => !c.burst && c.expectedNaturalClusters > 0.01)).toBe(true);
    expect(result.threshold.value).toBeCloseTo(2);
    expect(result.threshold.method).toMatch(/power law/);
  });

  it("flags a 120-copy campaign and ranks the source it came through first", async () => {
    const { out: sourced } = await attack(emails, {
      kind: "assign-sources",
      sources: [
        { name: "vendor-a", share: 0.5 },
        { name: "vendor-b", share: 0.3 },
        { name: "crawl", share: 0.2 },
      ],
      seed: 2,
    });
    const { out, gt } = await attack(sourced, {
      kind: "near-duplicate",
      count: 120,
      target: "spam",
      source: "crawl",
      seed: 1,
    });
    const { result, ids, seconds } = timed(out);
    console.log(`near-duplicates: ${out.length} emails with a campaign in ${seconds.toFixed(1)} s`);
    const copies = new Set(gt.poisoned.map((r) => r.id));
    let tp = 0;
    let fp = 0;
    result.flagged.forEach((f, i) => {
      if (f === 1) {
        if (copies.has(ids[i] as string)) tp++;
        else fp++;
      }
    });
    const precision = tp / (tp + fp);
    const recall = tp / copies.size;
    console.log(
      `campaign: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}, ${fp} other samples flagged`,
    );
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expect(precision).toBeGreaterThanOrEqual(0.9);

    const sources = result.findings.filter((f) => f.subjectType === "source");
    expect(sources[0]?.subjectId).toBe("crawl");
    expect(sources[0]?.kind).toBe("near-duplicate-burst");
    expect(sources.every((s, i) => i === 0 || s.score <= (sources[0]?.score ?? 0))).toBe(true);
    expect(sources[0]?.evidence).toMatchObject({ source: "crawl", clusters: [1] });
    expect(Number(sources[0]?.evidence.share)).toBeGreaterThan(0.9);

    const template = gt.summary?.template;
    if (typeof template !== "string") throw new Error("the ground truth names no template");
    const perSample = result.findings.filter((f) => f.subjectType === "sample");
    expect(perSample).toHaveLength(tp + fp);
    const one = perSample.find((f) => f.evidence.id === gt.poisoned[0]?.id);
    expect(one?.subjectId).toBe(gt.poisoned[0]?.digest);
    expect(one?.evidence).toMatchObject({ cluster: 1, exactDuplicate: false });
    expect(Number(one?.evidence.clusterSize)).toBeGreaterThanOrEqual(120);
    expect(Number(one?.evidence.jaccard)).toBeGreaterThanOrEqual(0.7);
    // The representative is the template or one of its copies.
    expect(String(one?.evidence.representative)).toMatch(new RegExp(`^${template}(~dup\\d+)?$`));
    expect(one?.score).toBeGreaterThan(result.threshold.value);
  });

  it("says why it cannot run without text, and rejects bad options by name", () => {
    const table = scanTableFromSamples(emails.slice(0, 5).map((e) => ({ ...e, text: undefined })));
    expect(nearDuplicates.appliesTo(table)).toMatch(/no text/);
    const withText = scanTableFromSamples(emails.slice(0, 5));
    expect(nearDuplicates.appliesTo(withText)).toBeNull();
    expect(() => nearDuplicates.run(withText, { signatureSize: 100 })).toThrow(/signatureSize.*power of two/);
    expect(() => nearDuplicates.run(withText, { threshold: 1.5 })).toThrow(/threshold/);
  });

  it("assumes a heavy tail, and says so, when there are too few clusters to learn from", () => {
    const few = emails.slice(0, 60);
    const copies = Array.from({ length: 40 }, (_, i) => ({
      ...(few[0] as Sample),
      id: `copy-${i}`,
      text: `${few[0]?.text} ${i}`,
    }));
    const table = scanTableFromSamples([...few, ...copies]);
    const strict = nearDuplicates.run(table);
    expect(strict.warnings.join(" ")).toMatch(/too few to learn their natural sizes.*Zipf/);
    const summary = strict.summary as { clusters: number; topClusters: Cluster[] };
    const top = summary.topClusters[0];
    expect(top?.size).toBe(41);
    // Under Zipf's law (exponent 2) with C clusters: E = C · ζ(2, 41) / ζ(2, 2) ≈ 0.04 C.
    const expected = (summary.clusters * hurwitzZeta(2, 41)) / hurwitzZeta(2, 2);
    expect(top?.expectedNaturalClusters).toBeCloseTo(expected, 6);
    // So a tiny corpus needs a laxer alpha before 41 copies count as a burst.
    expect(strict.flagged.reduce((a, b) => a + b, 0)).toBe(expected < 0.01 ? 41 : 0);
    const lax = nearDuplicates.run(table, { alpha: 0.2 });
    expect(lax.flagged.reduce((a, b) => a + b, 0)).toBe(41);
  });
});

describe("near-duplicate statistics", () => {
  it("shingles words, not characters, and ignores case and punctuation", () => {
    expect(Array.from(wordShingles("The cat sat on the mat today", 5))).toHaveLength(3);
    expect(wordShingles("THE CAT, sat on... the mat today!", 5)).toEqual(
      wordShingles("the cat sat on the mat today", 5),
    );
    expect(wordShingles("two words", 5)).toHaveLength(1);
    expect(wordShingles("  ", 5)).toHaveLength(0);
  });

  it("computes the Hurwitz zeta, the power-law fit and the binomial tail correctly", () => {
    expect(hurwitzZeta(2, 1)).toBeCloseTo(Math.PI ** 2 / 6, 10);
    expect(hurwitzZeta(4, 1)).toBeCloseTo(Math.PI ** 4 / 90, 10);
    expect(hurwitzZeta(2, 2)).toBeCloseTo(Math.PI ** 2 / 6 - 1, 10);
    // MLE recovers the exponent of sizes drawn from P(s) ∝ s^−3 on {2, 3, …} (exact expected Σ ln s).
    const gamma = 3;
    const z = hurwitzZeta(gamma, 2);
    let meanLog = 0;
    for (let s = 2; s < 100_000; s++) meanLog += (Math.log(s) * s ** -gamma) / z;
    expect(fitPowerLaw(meanLog * 1000, 1000)).toBeCloseTo(gamma, 2);
    // Binomial tail against a direct sum.
    const direct = (x: number, n: number, p: number) => {
      let total = 0;
      for (let k = x; k <= n; k++) {
        let c = 1;
        for (let i = 1; i <= k; i++) c *= (n - k + i) / i;
        total += c * p ** k * (1 - p) ** (n - k);
      }
      return total;
    };
    for (const [x, n, p] of [
      [3, 10, 0.2],
      [0, 10, 0.2],
      [10, 10, 0.5],
      [7, 30, 0.1],
    ] as const) {
      expect(Math.exp(logBinomialTail(x, n, p))).toBeCloseTo(direct(x, n, p), 10);
    }
  });
});
