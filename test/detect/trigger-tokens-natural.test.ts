// Issue 22: a text trigger that is also a natural token. The attacker picks a short token that
// clean documents of the target class already hold (an abbreviation, a mailing list's name in its
// header); the detector must still find it, and flag only the attacker's carriers — not the ham
// emails that hold the token naturally and read like ham. The tokens are picked from the clean
// corpus here, with the detector's own tokenizer, so the test cannot pass on a token that happens
// to be absent.
import { beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { simulateAttack } from "../../src/attack/index.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import { triggerTokens } from "../../src/detect/trigger-tokens.js";
import { tokenize } from "../../src/features/text.js";

let emails: Sample[];
/** In how many clean ham and spam emails each token occurs. */
let ham: Map<string, number>;
let spam: Map<string, number>;
beforeAll(async () => {
  emails = await collect(await openDataset("spamassassin"));
  expect(emails).toHaveLength(6046);
  ham = new Map();
  spam = new Map();
  for (const e of emails) {
    const counts = e.label === "ham" ? ham : spam;
    for (const t of new Set(tokenize(e.text ?? ""))) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
});

/**
 * A short word (3–4 letters) in `from`–`to` clean ham emails and at most one spam email: the one in
 * the most ham emails, alphabetically first on ties.
 */
function naturalHamToken(from: number, to: number): string {
  const picks = [...ham]
    .filter(([t, c]) => /^[a-z]{3,4}$/.test(t) && c >= from && c <= to && (spam.get(t) ?? 0) <= 1)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  expect(picks.length).toBeGreaterThan(0);
  return picks[0]?.[0] ?? "";
}

interface Row {
  ngram: string;
  target: string;
  targetCount: number;
  flaggedCarriers: number;
  naturalCarriers: number;
}

async function attack(token: string, rate: number) {
  const writer = new MemoryWriter();
  const gt = await simulateAttack(memoryDataset(emails), writer, {
    kind: "text-trigger",
    trigger: token,
    target: "ham",
    rate,
    seed: 1,
  });
  const table = scanTableFromSamples(writer.samples, { classes: ["ham", "spam"] });
  const start = performance.now();
  const result = triggerTokens.run(table);
  const seconds = (performance.now() - start) / 1000;
  const victims = new Set(gt.poisoned.map((r) => r.id));
  // The ham emails that hold the token of their own.
  const natural = new Set<number>();
  table.ids.forEach((id, i) => {
    if (!victims.has(id) && table.labels[i] === 0 && tokenize(table.texts?.[i] ?? "").includes(token))
      natural.add(i);
  });
  let tp = 0;
  let fp = 0;
  let naturalFlagged = 0;
  result.flagged.forEach((f, i) => {
    if (f !== 1) return;
    if (victims.has(table.ids[i] as string)) tp++;
    else fp++;
    if (natural.has(i)) naturalFlagged++;
  });
  const precision = tp / Math.max(1, tp + fp);
  const recall = tp / victims.size;
  console.log(
    `"${token}" (${ham.get(token)} clean ham, ${spam.get(token) ?? 0} spam) → ham at ${100 * rate}%: ` +
      `precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)} (${tp} of ${victims.size}), ` +
      `${naturalFlagged} of ${natural.size} natural carriers flagged, ${seconds.toFixed(1)} s`,
  );
  return { result, victims, natural, precision, recall, naturalFlagged };
}

describe("trigger-tokens with a trigger that is also a natural token", () => {
  it("picks tokens that clean ham emails already hold", () => {
    const tens = naturalHamToken(30, 100);
    const hundreds = naturalHamToken(100, 300);
    console.log(
      `natural tokens: "${tens}" in ${ham.get(tens)} ham emails, "${hundreds}" in ${ham.get(hundreds)}`,
    );
    expect(ham.get(tens)).toBeGreaterThanOrEqual(30);
    expect(ham.get(hundreds)).toBeGreaterThanOrEqual(100);
  });

  it("finds one in tens of ham emails at 1% and flags the attacker's carriers only", async () => {
    const token = naturalHamToken(30, 100);
    const { result, victims, natural, precision, recall, naturalFlagged } = await attack(token, 0.01);
    // Not vacuous: natural carriers outnumber the attacker's carriers or come close.
    expect(natural.size).toBeGreaterThanOrEqual(30);
    expect(victims.size).toBe(60);
    expect(precision).toBeGreaterThanOrEqual(0.95);
    expect(recall).toBeGreaterThanOrEqual(0.9);
    expect(naturalFlagged).toBeLessThanOrEqual(1);

    // The token-level finding stays, with the split of its carriers.
    const triggers = result.findings.filter((f) => f.subjectType === "dataset");
    expect(triggers.map((t) => t.evidence.ngram)).toEqual([token]);
    const row = triggers[0]?.evidence as unknown as Row;
    expect(row.target).toBe("ham");
    expect(row.targetCount).toBe(natural.size + victims.size);
    expect(row.flaggedCarriers + row.naturalCarriers).toBe(row.targetCount);
    expect(row.naturalCarriers).toBeGreaterThanOrEqual(natural.size - 1);

    // Flagged exactly where the score reaches the threshold; the natural carriers stay below it.
    const threshold = result.threshold.value;
    result.scores.forEach((s, i) => expect(result.flagged[i]).toBe(s >= threshold ? 1 : 0));
    const below = [...natural].filter((i) => (result.scores[i] ?? 0) < threshold).length;
    expect(below).toBeGreaterThanOrEqual(natural.size - 1);
    const flagged = result.flagged.reduce((a, b) => a + b, 0);
    expect(result.findings.filter((f) => f.subjectType === "sample")).toHaveLength(flagged);
  });

  it("finds it at 0.5%", async () => {
    const token = naturalHamToken(30, 100);
    const { victims, precision, recall, naturalFlagged } = await attack(token, 0.005);
    expect(victims.size).toBe(30);
    expect(precision).toBeGreaterThanOrEqual(0.95);
    expect(recall).toBeGreaterThanOrEqual(0.85);
    expect(naturalFlagged).toBeLessThanOrEqual(1);
  });

  it("finds one in hundreds of ham emails at 1%, its natural carriers outnumbering the attacker's", async () => {
    const token = naturalHamToken(100, 300);
    const { result, victims, natural, precision, recall, naturalFlagged } = await attack(token, 0.01);
    expect(natural.size).toBeGreaterThanOrEqual(2 * victims.size);
    expect(precision).toBeGreaterThanOrEqual(0.95);
    // The attacker's carriers whose own text reads like ham cannot be told from natural ones.
    expect(recall).toBeGreaterThanOrEqual(0.85);
    expect(naturalFlagged).toBeLessThanOrEqual(1);
    const row = result.findings.find((f) => f.subjectType === "dataset")?.evidence as unknown as Row;
    expect(row).toMatchObject({ ngram: token, target: "ham" });
  });
});
