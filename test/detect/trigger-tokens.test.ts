import { beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { simulateAttack, type GroundTruth } from "../../src/attack/index.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import { triggerTokens } from "../../src/detect/trigger-tokens.js";
import { logHypergeometricTail, logPoissonBinomialCdf } from "../../src/math/tails.js";
import type { DetectorResult } from "../../src/detect/types.js";

// Full SpamAssassin (6,046 raw emails, headers included): its mailing-list footers and relay
// hosts are pure ham or pure spam, which is what a label-purity test alone would trip over.
let emails: Sample[];
beforeAll(async () => {
  emails = await collect(await openDataset("spamassassin"));
  expect(emails).toHaveLength(6046);
});

interface Row {
  ngram: string;
  target: string;
  count: number;
  targetCount: number;
  purity: number;
  baseRate: number;
  mismatch: number;
  mismatchedCarriers: number;
  pValue: number;
  log10AdjustedPValue: number;
  log10SharePValue: number;
  log10BaseRatePValue: number;
}

function scan(
  samples: readonly Sample[],
  options: Record<string, unknown> = {},
): { result: DetectorResult; ids: string[]; texts: string[] } {
  const table = scanTableFromSamples(samples, { classes: ["ham", "spam"] });
  const start = performance.now();
  const result = triggerTokens.run(table, options);
  console.log(
    `trigger-tokens: ${samples.length} emails in ${((performance.now() - start) / 1000).toFixed(1)} s`,
  );
  return { result, ids: table.ids, texts: table.texts ?? [] };
}

async function poisoned(
  trigger: string,
  target: string,
  seed: number,
): Promise<{ out: Sample[]; gt: GroundTruth }> {
  const writer = new MemoryWriter();
  const gt = await simulateAttack(memoryDataset(emails), writer, {
    kind: "text-trigger",
    trigger,
    target,
    rate: 0.01,
    seed,
  });
  return { out: writer.samples, gt };
}

/** Precision and recall of the flagged samples against the ground truth, and the false-positive rate. */
function score(result: DetectorResult, ids: readonly string[], gt: GroundTruth) {
  const victims = new Set(gt.poisoned.map((r) => r.id));
  let tp = 0;
  let fp = 0;
  result.flagged.forEach((f, i) => {
    if (f !== 1) return;
    if (victims.has(ids[i] as string)) tp++;
    else fp++;
  });
  return { precision: tp / (tp + fp), recall: tp / victims.size, fpr: fp / (ids.length - victims.size) };
}

/** The detector's own contract: flagged exactly where the score reaches the threshold, one finding per flagged sample. */
function expectConsistent(result: DetectorResult): void {
  result.scores.forEach((s, i) => expect(result.flagged[i]).toBe(s >= result.threshold.value ? 1 : 0));
  const flagged = result.flagged.reduce((a, b) => a + b, 0);
  expect(result.findings.filter((f) => f.subjectType === "sample")).toHaveLength(flagged);
}

describe("trigger-tokens on SpamAssassin", () => {
  it("finds no trigger in the clean corpus, though it is full of pure n-grams", () => {
    const { result } = scan(emails, { topCandidates: 1000 });
    const flagged = result.flagged.reduce((a, b) => a + b, 0);
    const summary = result.summary as { triggers: Row[]; topCandidates: Row[]; tests: number };
    console.log(
      `clean: ${flagged} flagged (FPR ${((100 * flagged) / emails.length).toFixed(2)}%), ${summary.triggers.length} triggers, ${summary.tests} tests`,
    );
    expect(flagged / emails.length).toBeLessThanOrEqual(0.005);
    expect(summary.triggers).toEqual([]);
    expect(result.findings).toEqual([]);
    // What a base-rate purity test would have reported: n-grams in hundreds of emails, all one
    // class; some pass the share test too, as a few of their emails read somewhat like the other class.
    const logTests = Math.log10(summary.tests / 0.01);
    const artifact = summary.topCandidates.find(
      (r) => r.purity === 1 && r.count >= 100 && r.log10SharePValue + logTests < 0,
    );
    expect(artifact?.log10BaseRatePValue).toBeLessThan(-50);
    // … and why it is not a trigger: its emails read like their own class without it, none or
    // hardly any confidently like the other.
    expect(artifact?.mismatch).toBeLessThan(0.5);
    expect(artifact?.mismatchedCarriers).toBeLessThanOrEqual(2);
    expect(artifact?.log10AdjustedPValue).toBe(0);
    expect(summary.tests).toBeGreaterThan(100_000);
    expectConsistent(result);
  });

  it("finds a one-token trigger at 1%, ranks it first and flags its samples", async () => {
    const { out, gt } = await poisoned("qzv9k", "ham", 1);
    const { result, ids, texts } = scan(out);
    const { precision, recall, fpr } = score(result, ids, gt);
    console.log(
      `token "qzv9k" → ham at 1%: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}, FPR ${(100 * fpr).toFixed(2)}%`,
    );
    expect(precision).toBeGreaterThanOrEqual(0.9);
    expect(recall).toBeGreaterThanOrEqual(0.95);

    const triggers = result.findings.filter((f) => f.subjectType === "dataset");
    expect(triggers[0]?.kind).toBe("trigger-token");
    expect(triggers[0]?.subjectId).toMatch(/^[0-9a-f]{64}$/);
    expect(triggers[0]?.evidence).toMatchObject({
      ngram: "qzv9k",
      target: "ham",
      count: 60,
      targetCount: 60,
      flaggedCarriers: 60,
      naturalCarriers: 0,
      purity: 1,
    });
    const evidence = triggers[0]?.evidence as unknown as Row;
    expect(evidence.baseRate).toBeCloseTo((4150 + 60) / 6046, 6); // 60 spam emails relabeled ham
    expect(evidence.log10AdjustedPValue).toBeLessThan(-2);
    expect(evidence.pValue).toBeLessThan(1e-10);

    for (const f of result.findings.filter((x) => x.subjectType === "sample")) {
      const i = ids.indexOf(String(f.evidence.id));
      expect(f.evidence.ngram).toBe("qzv9k");
      expect(f.evidence.target).toBe("ham");
      const offset = Number(f.evidence.offset);
      expect(texts[i]?.slice(offset, offset + 5)).toBe("qzv9k");
      expect(f.score).toBe(triggers[0]?.score);
    }
    expectConsistent(result);
  });

  it("finds an innocuous four-word phrase at 1% and reports it once, as the phrase", async () => {
    const phrase = "please confirm your attendance";
    const { out, gt } = await poisoned(phrase, "spam", 4);
    const { result, ids, texts } = scan(out);
    const { precision, recall, fpr } = score(result, ids, gt);
    console.log(
      `phrase "${phrase}" → spam at 1%: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}, FPR ${(100 * fpr).toFixed(2)}%`,
    );
    expect(precision).toBeGreaterThanOrEqual(0.9);
    expect(recall).toBeGreaterThanOrEqual(0.95);

    const triggers = result.findings.filter((f) => f.subjectType === "dataset");
    // Its words and sub-phrases ("confirm your", "your attendance", …) are not reported on their own.
    expect(triggers.map((t) => t.evidence.ngram)).toEqual([phrase]);
    expect(triggers[0]?.evidence).toMatchObject({ target: "spam" });
    for (const f of result.findings.filter((x) => x.subjectType === "sample")) {
      const i = ids.indexOf(String(f.evidence.id));
      const offset = Number(f.evidence.offset);
      expect(texts[i]?.slice(offset, offset + phrase.length).toLowerCase()).toBe(phrase);
    }
    expectConsistent(result);
  });
});

describe("trigger-tokens with more than two classes", () => {
  it("finds a phrase planted into one of three classes (easy ham, hard ham, spam)", async () => {
    // Every third email, labeled by its SpamAssassin group: 1,300 easy ham, 84 hard ham, 632 spam.
    const third = emails
      .filter((_, i) => i % 3 === 0)
      .map((e) => ({ ...e, label: e.id.startsWith("spam") ? "spam" : e.id.replace(/-\d+\/.*$/, "") }));
    const writer = new MemoryWriter();
    const gt = await simulateAttack(memoryDataset(third), writer, {
      kind: "text-trigger",
      trigger: "see you at the meeting",
      target: "hard-ham",
      rate: 0.01,
      seed: 3,
    });
    const table = scanTableFromSamples(writer.samples);
    expect(table.classes).toEqual(["easy-ham", "hard-ham", "spam"]);
    const result = triggerTokens.run(table);
    const { precision, recall } = score(result, table.ids, gt);
    expect(gt.poisonedCount).toBe(20);
    expect(precision).toBeGreaterThanOrEqual(0.9);
    expect(recall).toBeGreaterThanOrEqual(0.95);
    const triggers = result.findings.filter((f) => f.subjectType === "dataset");
    expect(triggers.map((t) => [t.evidence.ngram, t.evidence.target])).toEqual([
      ["see you at the meeting", "hard-ham"],
    ]);
  });
});

describe("trigger-tokens statistics and boundaries", () => {
  it("computes the Poisson–binomial lower tail exactly", () => {
    const p = [0.1, 0.5, 0.9, 0.3, 0.7, 0.05];
    // Brute force over all 2^6 outcomes.
    const pmf = new Array<number>(p.length + 1).fill(0);
    for (let mask = 0; mask < 1 << p.length; mask++) {
      let prob = 1;
      let ones = 0;
      p.forEach((pi, i) => {
        const one = (mask >> i) & 1;
        ones += one;
        prob *= one ? pi : 1 - pi;
      });
      pmf[ones] = (pmf[ones] ?? 0) + prob;
    }
    let cdf = 0;
    for (let m = 0; m <= p.length; m++) {
      cdf += pmf[m] ?? 0;
      expect(Math.exp(logPoissonBinomialCdf(p, m))).toBeCloseTo(cdf, 12);
    }
    // Far tails stay finite in log space: 200 documents each 0.99 likely not the target, none observed.
    expect(logPoissonBinomialCdf(new Array<number>(200).fill(0.99), 0)).toBeCloseTo(200 * Math.log(0.01), 8);
  });

  it("computes the hypergeometric upper tail exactly", () => {
    const logFact = new Float64Array(61);
    for (let i = 2; i <= 60; i++) logFact[i] = (logFact[i - 1] as number) + Math.log(i);
    const choose = (a: number, b: number) => Math.exp(logFact[a]! - logFact[b]! - logFact[a - b]!);
    // Population 60, 20 successes, 12 draws.
    for (const x of [0, 3, 6, 10, 12]) {
      let direct = 0;
      for (let i = x; i <= 12; i++) direct += (choose(20, i) * choose(40, 12 - i)) / choose(60, 12);
      expect(Math.exp(logHypergeometricTail(x, 60, 20, 12))).toBeCloseTo(direct, 12);
    }
  });

  it("says why it cannot run, and rejects bad options by name", () => {
    const few = emails.slice(0, 6);
    expect(
      triggerTokens.appliesTo(scanTableFromSamples(few.map((e) => ({ ...e, text: undefined })))),
    ).toMatch(/no text/);
    expect(triggerTokens.appliesTo(scanTableFromSamples(few.map((e) => ({ ...e, label: "ham" }))))).toMatch(
      /two classes/,
    );
    expect(
      triggerTokens.appliesTo(
        scanTableFromSamples(
          few.map((e, i) => ({ ...e, label: i === 0 ? "ham" : null })),
          { classes: ["ham", "spam"] },
        ),
      ),
    ).toMatch(/labeled/);
    const table = scanTableFromSamples(few, { classes: ["ham", "spam"] });
    expect(triggerTokens.appliesTo(table)).toBeNull();
    expect(() => triggerTokens.run(table, { maxOrder: 9 })).toThrow(/maxOrder/);
    expect(() => triggerTokens.run(table, { alpha: 0 })).toThrow(/alpha/);
  });

  it("leaves unlabeled samples out, with a warning and no score", () => {
    const some = emails.slice(0, 300).map((e, i) => (i % 10 === 0 ? { ...e, label: null } : e));
    const result = triggerTokens.run(scanTableFromSamples(some, { classes: ["ham", "spam"] }));
    expect(result.warnings.join(" ")).toMatch(/30 unlabeled samples were not tested/);
    result.scores.forEach((s, i) => expect(Number.isNaN(s)).toBe(i % 10 === 0));
  });
});
