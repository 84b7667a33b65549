import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { attack, rejection } from "./oracle.js";

let input: Sample[];
beforeAll(() => {
  input = fashionMnistSamples(3000);
});

function disagreement(out: readonly Sample[], annotator: string): { n: number; wrong: number } {
  let n = 0;
  let wrong = 0;
  for (const s of out) {
    for (const a of s.annotations) {
      if (a.annotator !== annotator) continue;
      n++;
      if (a.label !== s.label) wrong++;
    }
  }
  return { n, wrong };
}

/** |observed − expected| within 4 binomial standard deviations. */
function expectBinomial(wrong: number, n: number, p: number): void {
  const sd = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(wrong - n * p)).toBeLessThanOrEqual(4 * sd + 1);
}

describe("malicious-annotator", () => {
  it("has five honest annotators near 1 − accuracy and one liar near flipRate + noise; labels stay the truth", async () => {
    const { out, gt } = await attack(
      input,
      { kind: "malicious-annotator", seed: 8 },
      { classes: FASHION_MNIST_CLASSES },
    );
    expect(gt.outputCount).toBe(3000);
    out.forEach((s, i) => {
      expect(s.id).toBe(input[i]?.id);
      expect(s.label).toBe(input[i]?.label);
      expect(s.digest).toBe(input[i]?.digest);
      expect(s.annotations.map((a) => a.annotator)).toEqual([
        "annotator-1",
        "annotator-2",
        "annotator-3",
        "annotator-4",
        "annotator-5",
        "annotator-6",
      ]);
      for (const a of s.annotations) expect(FASHION_MNIST_CLASSES).toContain(a.label);
    });
    for (let k = 1; k <= 5; k++) {
      const { n, wrong } = disagreement(out, `annotator-${k}`);
      expect(n).toBe(3000);
      expectBinomial(wrong, n, 0.05);
    }
    // Exactly 1200 deliberate lies; the other 1800 annotations are honest-noisy.
    expect(gt.poisonedCount).toBe(1200);
    const bad = disagreement(out, "annotator-6");
    expectBinomial(bad.wrong - 1200, 1800, 0.05);
    expect(gt.summary?.malicious).toBe("annotator-6");

    const byId = new Map(out.map((s) => [s.id, s]));
    for (const r of gt.poisoned) {
      const s = byId.get(r.id);
      const given = s?.annotations.find((a) => a.annotator === "annotator-6")?.label;
      expect(r.action).toBe("annotator-flipped");
      expect(r.details).toEqual({ annotator: "annotator-6", given });
      expect(given).not.toBe(s?.label);
      expect(r.label).toBe(s?.label);
      expect(r.originalLabel).toBe(s?.label);
      expect(r.digest).toBe(s?.digest);
    }
  });

  it("with k annotators per sample, lies on exactly flipRate of its own annotations, towards a target", async () => {
    const { out, gt } = await attack(input, {
      kind: "malicious-annotator",
      annotators: 5,
      annotatorsPerSample: 2,
      malicious: "annotator-2",
      flipRate: 0.25,
      honestAccuracy: 0.9,
      target: "Bag",
      seed: "contractor",
    });
    for (const s of out) {
      expect(s.annotations).toHaveLength(2);
      expect(new Set(s.annotations.map((a) => a.annotator)).size).toBe(2);
    }
    const its = disagreement(out, "annotator-2");
    expectBinomial(its.n, 3000, 2 / 5); // chosen 2 of 5 per sample
    expect(gt.poisonedCount).toBe(Math.round(0.25 * its.n));
    for (const r of gt.poisoned) {
      expect(r.details?.given).toBe("Bag");
      expect(r.originalLabel).not.toBe("Bag");
    }
    for (const honest of ["annotator-1", "annotator-3", "annotator-4", "annotator-5"]) {
      const { n, wrong } = disagreement(out, honest);
      expectBinomial(wrong, n, 0.1);
    }
  });

  it("rejects an unknown malicious annotator and more annotators per sample than there are", async () => {
    const who = await rejection(
      attack(input.slice(0, 50), { kind: "malicious-annotator", malicious: "annotator-9" }),
    );
    expect(who.code).toBe("USAGE");
    expect(who.message).toMatch(/malicious: "annotator-9" is not one of annotator-1 … annotator-6/);
    const k = await rejection(
      attack(input.slice(0, 50), { kind: "malicious-annotator", annotatorsPerSample: 7 }),
    );
    expect(k.message).toMatch(/annotatorsPerSample: 7 is more than the 6 annotators/);
  });
});
