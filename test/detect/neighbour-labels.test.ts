import { describe, expect, it } from "vitest";
import { neighbourLabelProbs } from "../../src/detect/neighbour-labels.js";
import { fashionMnistFeatures } from "../helpers/fm-features.js";
import { hasFashionMnist } from "../helpers/real-data.js";

describe("neighbourLabelProbs", () => {
  it("never lets a sample vote for itself, and smooths every class", async () => {
    // 26 samples on a line; the first alone is labeled 0: its 25 neighbours are all the others.
    const n = 26;
    const features = Float32Array.from({ length: n * 2 }, (_, v) =>
      v % 2 === 0 ? 1 : Math.floor(v / 2) / n,
    );
    const labels = Int32Array.from({ length: n }, (_, i) => (i === 0 ? 0 : 1));
    const probs = (await neighbourLabelProbs(features, 2, labels, 2, { k: 25 }))!;
    expect(probs[0]).toBeCloseTo(0.1 / 25.2, 6);
    expect(probs[1]).toBeCloseTo(25.1 / 25.2, 6);
    for (let i = 0; i < n; i++) expect(probs[2 * i]! + probs[2 * i + 1]!).toBeCloseTo(1, 6);
    // Unlabeled samples get a vote but never cast one; too few labeled samples give nothing.
    const fewer = Int32Array.from(labels, (y, i) => (i < 2 ? -1 : y));
    expect(await neighbourLabelProbs(features, 2, fewer, 2, { k: 25 })).toBeNull();
  });

  it.runIf(hasFashionMnist())(
    "on 3,000 Fashion-MNIST images with 10 % random flips, the flips are the samples their neighbours disagree with",
    async () => {
      const { table, poisoned } = await fashionMnistFeatures(3000, {
        kind: "label-flip",
        rate: 0.1,
        seed: 1,
      });
      const n = table.labels.length;
      const C = table.classes.length;
      const probs = (await neighbourLabelProbs(table.features!, table.featureDims!, table.labels, C, {
        seed: 0,
      }))!;
      const given = Array.from({ length: n }, (_, i) => ({ i, p: probs[i * C + table.labels[i]!]! }));
      // The 300 samples whose neighbours least agree with their label, against the 300 flips.
      const lowest = given.sort((a, b) => a.p - b.p).slice(0, 300);
      const hits = lowest.filter(({ i }) => poisoned[i] === 1).length;
      console.log(`neighbour labels: ${hits} of the 300 least-agreed labels are flips`);
      expect(hits / 300).toBeGreaterThanOrEqual(0.7);
      // With a reference subset the vote still works, from fewer neighbours.
      const sub = (await neighbourLabelProbs(table.features!, table.featureDims!, table.labels, C, {
        maxReference: 1000,
        seed: 0,
      }))!;
      const subHits = Array.from({ length: n }, (_, i) => ({ i, p: sub[i * C + table.labels[i]!]! }))
        .sort((a, b) => a.p - b.p)
        .slice(0, 300)
        .filter(({ i }) => poisoned[i] === 1).length;
      console.log(`neighbour labels, 1,000 references: ${subHits} of 300`);
      expect(subHits / 300).toBeGreaterThanOrEqual(0.6);
    },
    120_000,
  );
});
