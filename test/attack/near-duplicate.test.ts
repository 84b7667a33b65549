import { beforeAll, describe, expect, it } from "vitest";
import { sampleDigest, type Sample } from "../../src/data/sample.js";
import type { GroundTruth } from "../../src/attack/index.js";
import { fashionMnistSamples, spamAssassinSamples } from "../helpers/real-data.js";
import { attack, rejection } from "./oracle.js";

let emails: Sample[];
beforeAll(() => {
  emails = spamAssassinSamples(300);
});

function shingles(text: string, k = 5): Set<string> {
  const words = text.split(/\s+/).filter((w) => w !== "");
  const out = new Set<string>();
  for (let i = 0; i + k <= words.length; i++) out.add(words.slice(i, i + k).join(" "));
  return out;
}

/**
 * The output minus the ground truth's copies is the input, untouched and in order; the
 * copies sit where the ground truth says; returns the copies.
 */
function expectCopiesTruthful(
  input: readonly Sample[],
  out: readonly Sample[],
  gt: GroundTruth,
  copies: number,
): Sample[] {
  expect(gt.inputCount).toBe(input.length);
  expect(gt.outputCount).toBe(input.length + copies);
  expect(out).toHaveLength(input.length + copies);
  expect(gt.poisonedCount).toBe(copies);
  const added = new Set(gt.poisoned.map((r) => r.id));
  expect(added.size).toBe(copies);
  const kept = out.filter((s) => !added.has(s.id));
  expect(kept.map((s) => s.id)).toEqual(input.map((s) => s.id));
  kept.forEach((s, i) => {
    expect(s.digest).toBe(input[i]?.digest);
    expect(sampleDigest(s)).toBe(input[i]?.digest);
    expect(s.label).toBe(input[i]?.label);
    expect(s.source).toBe(input[i]?.source);
  });
  for (const r of gt.poisoned) {
    const position = Number(r.details?.position);
    const copy = out[position];
    expect(copy?.id).toBe(r.id);
    expect(r.action).toBe("duplicate-added");
    expect(r.label).toBe(copy?.label);
    expect(r.digest).toBe(copy?.digest);
    if (copy === undefined) throw new Error(`no sample at ${position}`);
    expect(sampleDigest(copy)).toBe(r.digest);
    expect(r.source).toBe(copy?.source);
  }
  return gt.poisoned.map((r) => out[Number(r.details?.position)] as Sample);
}

describe("near-duplicate campaign", () => {
  it("adds N lightly edited copies of a ham template, labeled spam, that exact dedup misses and shingles catch", async () => {
    const { out, gt } = await attack(emails, {
      kind: "near-duplicate",
      count: 120,
      target: "spam",
      seed: 11,
    });
    const copies = expectCopiesTruthful(emails, out, gt, 120);
    const templateId = gt.summary?.template;
    const template = emails.find((s) => s.id === templateId);
    if (template === undefined || typeof templateId !== "string")
      throw new Error("the template is not an input sample");
    expect(template.label).toBe("ham");

    const digests = new Set(out.map((s) => s.digest));
    expect(digests.size).toBe(new Set(emails.map((s) => s.digest)).size + 120); // exact-hash dedup keeps every copy
    const base = shingles(template.text ?? "");
    copies.forEach((copy, k) => {
      expect(copy.id).toBe(`${templateId}~dup${k + 1}`);
      expect(copy.label).toBe("spam");
      expect(copy.source).toBe("campaign");
      expect(copy.text).not.toBe(template.text);
      const mine = shingles(copy.text ?? "");
      const shared = [...base].filter((s) => mine.has(s)).length;
      expect(shared / base.size).toBeGreaterThanOrEqual(0.8);
    });
    // Scattered through the stream, not bunched at the end.
    const positions = gt.poisoned.map((r) => Number(r.details?.position));
    expect(Math.min(...positions)).toBeLessThan(100);
    expect(Math.max(...positions)).toBeGreaterThan(320);
  });

  it("copies a named template with its label, and takes a rate of the input count", async () => {
    const template = emails[40] as Sample;
    const { out, gt } = await attack(emails, {
      kind: "near-duplicate",
      rate: 0.1,
      template: template.id,
      source: "crawl-7",
    });
    const copies = expectCopiesTruthful(emails, out, gt, 30);
    for (const c of copies) {
      expect(c.label).toBe(template.label);
      expect(c.source).toBe("crawl-7");
      expect(c.text).not.toBe(template.text);
    }
    const unknown = await rejection(
      attack(emails, { kind: "near-duplicate", count: 3, template: "no-such-id" }),
    );
    expect(unknown.code).toBe("USAGE");
    expect(unknown.message).toMatch(/template: no sample has id "no-such-id"/);
  });

  it("jitters the pixels of an image template, each copy distinct and close to it", async () => {
    const images = fashionMnistSamples(500);
    const template = images[7] as Sample;
    const { out, gt } = await attack(images, {
      kind: "near-duplicate",
      count: 25,
      template: template.id,
      pixelNoise: 0.03,
    });
    const copies = expectCopiesTruthful(images, out, gt, 25);
    expect(new Set(copies.map((c) => c.digest)).size).toBe(25);
    for (const c of copies) {
      expect(c.digest).not.toBe(template.digest);
      const a = template.image?.data ?? new Float32Array();
      const b = c.image?.data ?? new Float32Array();
      let maxDiff = 0;
      a.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - (b[i] ?? NaN)))));
      expect(maxDiff).toBeLessThanOrEqual(0.03 + 1e-6);
      expect(maxDiff).toBeGreaterThan(0.01);
    }
  });

  it("draws the random template from the compromised source, and is reproducible", async () => {
    const sourced = emails.map((s, i) => ({ ...s, source: i < 30 ? "forum" : "mail" }));
    const a = await attack(sourced, { kind: "near-duplicate", count: 10, fromSource: "forum", seed: 3 });
    const b = await attack(sourced, { kind: "near-duplicate", count: 10, fromSource: "forum", seed: 3 });
    const template = sourced.find((s) => s.id === a.gt.summary?.template);
    expect(template?.source).toBe("forum");
    expect(b.out.map((s) => s.digest)).toEqual(a.out.map((s) => s.digest));
    const none = await rejection(
      attack(sourced, { kind: "near-duplicate", count: 10, fromSource: "nowhere" }),
    );
    expect(none.code).toBe("ATTACK_INFEASIBLE");
    expect(none.message).toMatch(/no sample has source "nowhere"/);
  });
});
