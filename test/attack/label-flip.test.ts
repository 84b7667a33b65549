import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, spamAssassinSamples } from "../helpers/real-data.js";
import { attack, expectTruthful, rejection, victimPositions, withSources } from "./oracle.js";

let images: Sample[];
let emails: Sample[];
beforeAll(() => {
  images = fashionMnistSamples(2000);
  emails = spamAssassinSamples(300);
});

describe("label-flip", () => {
  it("gives each victim a different class, uniformly among the others", async () => {
    const { out, gt } = await attack(
      images,
      { kind: "label-flip", rate: 0.2, seed: 5 },
      { classes: FASHION_MNIST_CLASSES },
    );
    expectTruthful(images, out, gt, 400);
    const newLabels = new Map<string, number>();
    for (const i of victimPositions(images, gt)) {
      const label = out[i]?.label ?? "";
      expect(label).not.toBe(images[i]?.label);
      expect(FASHION_MNIST_CLASSES).toContain(label);
      expect(out[i]?.digest).toBe(images[i]?.digest);
      newLabels.set(label, (newLabels.get(label) ?? 0) + 1);
    }
    // 400 flips over 10 classes: each class gets ~40 (each victim avoids only its own class).
    expect(newLabels.size).toBe(10);
    for (const n of newLabels.values()) expect(n).toBeGreaterThan(15);
    expect(gt.classes).toEqual(FASHION_MNIST_CLASSES);
  });

  it("swaps spam and ham on a two-class corpus", async () => {
    const { out, gt } = await attack(emails, { kind: "label-flip", count: 30, seed: "run-7" });
    expectTruthful(emails, out, gt, 30);
    for (const r of gt.poisoned) expect(r.label).toBe(r.originalLabel === "spam" ? "ham" : "spam");
  });

  it("takes victims only from the compromised source, with the rate counted over the whole input", async () => {
    const sourced = withSources(images, (i) => (i % 4 === 0 ? "vendor-b" : "vendor-a"));
    const { out, gt } = await attack(sourced, {
      kind: "label-flip",
      rate: 0.1,
      fromSource: "vendor-b",
      seed: 1,
    });
    expectTruthful(sourced, out, gt, 200);
    for (const i of victimPositions(sourced, gt)) expect(sourced[i]?.source).toBe("vendor-b");
    for (const r of gt.poisoned) expect(r.source).toBe("vendor-b");

    const tooMany = await rejection(
      attack(sourced, { kind: "label-flip", count: 501, fromSource: "vendor-b" }),
    );
    expect(tooMany.code).toBe("ATTACK_INFEASIBLE");
    expect(tooMany.message).toMatch(/asked for 501 victims but only 500 samples are eligible.*vendor-b/);
  });

  it("cannot flip labels with a single class", async () => {
    const hamOnly = emails.filter((s) => s.label === "ham");
    const e = await rejection(attack(hamOnly, { kind: "label-flip", count: 3 }));
    expect(e.code).toBe("ATTACK_INFEASIBLE");
    expect(e.message).toMatch(/at least 2 classes.*"ham"/);
  });
});
