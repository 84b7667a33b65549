// Activation clustering on real Fashion-MNIST (12,000 training images) with penultimate features
// from the built-in image proxy: calibrated against the dataset's own classes, it must leave clean
// classes alone and still catch a coherent foreign group inside a class.
import { beforeAll, describe, expect, it } from "vitest";
import { activationClustering } from "../../src/detect/activation-clustering.js";
import type { ScanTable } from "../../src/detect/types.js";
import { outOfSampleProbs } from "../../src/detect/proxy-linear.js";
import { Rng } from "../../src/math/rng.js";
import { fashionMnistFeatures, type FeatureVariant } from "../helpers/fm-features.js";
import { FASHION_MNIST_CLASSES, hasFashionMnist } from "../helpers/real-data.js";

const N = 12_000;

describe.runIf(hasFashionMnist())("activation clustering on Fashion-MNIST proxy features", () => {
  let clean: ScanTable;
  let blend: FeatureVariant;
  beforeAll(async () => {
    clean = (await fashionMnistFeatures(N, null)).table;
    blend = await fashionMnistFeatures(N, { kind: "blend", target: "Bag", rate: 0.02, seed: 1 });
  });

  it("flags no clean class: every class splits in two, none far more cleanly than the others", () => {
    const r = activationClustering.run(clean);
    expect(r.flagged.reduce((a, b) => a + b, 0)).toBe(0);
    expect(r.summary.suspectClasses).toEqual([]);
    const rows = r.summary.classes as {
      class: string;
      smallerClusterShare: number;
      silhouette: number;
      robustZ: number;
    }[];
    expect(rows.map((c) => c.class)).toEqual(FASHION_MNIST_CLASSES);
    for (const row of rows) expect(row.robustZ).toBeLessThan(3.5);
    const nullSilhouette = r.summary.nullSilhouette as { median: number; spread: number };
    expect(nullSilhouette.spread).toBeGreaterThanOrEqual(0.02);
    expect(nullSilhouette.median).toBeGreaterThan(0);
  });

  it("catches a coherent foreign group: 300 trousers relabeled as sandals, seen by a model trained on true labels", () => {
    const trouser = FASHION_MNIST_CLASSES.indexOf("Trouser");
    const sandal = FASHION_MNIST_CLASSES.indexOf("Sandal");
    const candidates = [...clean.labels.keys()].filter((i) => clean.labels[i] === trouser);
    const moved = new Set(new Rng(1).sample(candidates, 300));
    const labels = clean.labels.slice();
    for (const i of moved) labels[i] = sandal;
    const r = activationClustering.run({ ...clean, labels });
    expect(r.summary.suspectClasses).toEqual(["Sandal"]);
    let tp = 0;
    let fp = 0;
    r.flagged.forEach((f, i) => {
      if (f === 1) {
        if (moved.has(i)) tp++;
        else fp++;
      }
    });
    // Measured: 297 of 300 with 1 false positive.
    expect(tp / 300).toBeGreaterThanOrEqual(0.95);
    expect(tp / (tp + fp)).toBeGreaterThanOrEqual(0.95);
    const f = r.findings[0]!;
    expect(f).toMatchObject({ kind: "activation-cluster", check: "activation-clustering" });
    expect(f.evidence).toMatchObject({ class: "Sandal", threshold: 3.5 });
    expect(Object.keys(f.evidence)).toEqual(
      expect.arrayContaining(["id", "score", "clusterShare", "silhouette", "distanceRatio"]),
    );
  });

  it("with probabilities, flags of a label-noise cluster only its members they put in another class", () => {
    const trouser = FASHION_MNIST_CLASSES.indexOf("Trouser");
    const sandal = FASHION_MNIST_CLASSES.indexOf("Sandal");
    const C = FASHION_MNIST_CLASSES.length;
    const candidates = [...clean.labels.keys()].filter((i) => clean.labels[i] === trouser);
    const moved = new Set(new Rng(1).sample(candidates, 300));
    const labels = clean.labels.slice();
    for (const i of moved) labels[i] = sandal;
    const table = { ...clean, labels };
    const without = activationClustering.run(table);
    // Out-of-sample probabilities from the same features: the moved trousers look like trousers.
    const probe = outOfSampleProbs({ rows: N, cols: clean.featureDims!, data: clean.features! }, labels, C, {
      seed: 0,
    });
    const top = (i: number) => {
      let best = 0;
      for (let j = 1; j < C; j++) if (probe.probs[i * C + j]! > probe.probs[i * C + best]!) best = j;
      return best;
    };
    const r = activationClustering.run({ ...table, probs: probe.probs });
    expect(r.summary.suspectClasses).toEqual(["Sandal"]);
    const row = (
      r.summary.classes as { class: string; minorityPredictedElsewhere?: number; verdict: string }[]
    ).find((c) => c.class === "Sandal")!;
    expect(row.minorityPredictedElsewhere).toBeGreaterThan(0.5);
    expect(row.verdict).toMatch(/label noise/);
    let kept = 0;
    let dropped = 0;
    without.flagged.forEach((f, i) => {
      if (f === 0) return expect(r.flagged[i]).toBe(0);
      // The minority members the probabilities call sandals are the ones no longer flagged.
      expect(r.flagged[i]).toBe(top(i) === sandal ? 0 : 1);
      if (r.flagged[i] === 1) kept++;
      else dropped++;
    });
    let tp = 0;
    r.flagged.forEach((f, i) => {
      if (f === 1 && moved.has(i)) tp++;
    });
    console.log(`label-noise cluster: ${kept} flags kept (${tp} moved trousers), ${dropped} dropped`);
    expect(tp / 300).toBeGreaterThanOrEqual(0.9);

    // A model that learned the group as sandals (a backdoor it learned) keeps every flag.
    const learned = new Float32Array(N * C).fill(0.02 / (C - 1));
    labels.forEach((y, i) => (learned[i * C + y] = 0.98));
    expect(activationClustering.run({ ...table, probs: learned }).flagged).toEqual(without.flagged);
  });

  it("flags no clean class on the 2% blended-trigger data either", () => {
    const r = activationClustering.run(blend.table);
    for (const c of r.summary.suspectClasses as string[]) expect(c).toBe("Bag");
    let falsePositives = 0;
    r.flagged.forEach((f, i) => {
      if (f === 1 && blend.poisoned[i] === 0) falsePositives++;
    });
    expect(falsePositives / (N - blend.poisoned.reduce((a, b) => a + b, 0))).toBeLessThanOrEqual(0.005); // measured 0 (and 0 found)
  });

  it("says it cannot calibrate with too few classes, and flags nothing", () => {
    const labels = clean.labels.map((y) => (y <= 2 ? y : -1));
    const r = activationClustering.run({ ...clean, labels });
    expect(r.flagged.reduce((a, b) => a + b, 0)).toBe(0);
    expect(r.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/only 3 classes could be tested; at least 5 are needed/),
      ]),
    );
    expect(() => activationClustering.run(clean, { maxShare: 0.9 })).toThrow(/"maxShare"/);
  });
});
