// Spectral signatures and SPECTRE on real Fashion-MNIST (12,000 training images), with
// penultimate features from the built-in image proxy trained on the (poisoned) data: a BadNets
// 3×3 patch relabeled "Bag" on 1% and 0.5% of the images, and the clean images. Scored against
// the simulator's ground truth.
import { beforeAll, describe, expect, it } from "vitest";
import type { AttackSpec } from "../../src/attack/index.js";
import { spectralSignature } from "../../src/detect/spectral-signature.js";
import { spectre } from "../../src/detect/spectre.js";
import type { DetectorResult, ScanTable } from "../../src/detect/types.js";
import { isAntidoteError } from "../../src/errors.js";
import { fashionMnistFeatures } from "../helpers/fm-features.js";
import { FASHION_MNIST_CLASSES, hasFashionMnist } from "../helpers/real-data.js";

const N = 12_000;

interface Variant {
  table: ScanTable;
  poisoned: Uint8Array;
}

const variant = (spec: AttackSpec | null): Promise<Variant> => fashionMnistFeatures(N, spec);

function score(result: DetectorResult, poisoned: Uint8Array) {
  let tp = 0;
  let fp = 0;
  let positives = 0;
  poisoned.forEach((p, i) => {
    positives += p;
    if (result.flagged[i] === 1) {
      if (p === 1) tp++;
      else fp++;
    }
  });
  return {
    precision: tp + fp === 0 ? NaN : tp / (tp + fp),
    recall: positives === 0 ? NaN : tp / positives,
    falsePositiveRate: fp / (poisoned.length - positives),
  };
}

describe.runIf(hasFashionMnist())("spectral detectors on Fashion-MNIST proxy features", () => {
  let clean: Variant;
  let patch1: Variant;
  let patchHalf: Variant;
  beforeAll(async () => {
    clean = await variant(null);
    patch1 = await variant({ kind: "patch", target: "Bag", rate: 0.01, seed: 1 });
    patchHalf = await variant({ kind: "patch", target: "Bag", rate: 0.005, seed: 1 });
  });

  it("SPECTRE finds a 1% BadNets patch with no poison rate given: precision ≥ 0.90, recall ≥ 0.95", () => {
    const r = spectre.run(patch1.table);
    const s = score(r, patch1.poisoned);
    // Measured: precision 1.000, recall 0.958 (115 of 120); attack seeds 2 and 3: 0.992/1.000, 1.000/0.975.
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.95);
    expect(r.summary.suspectClasses).toEqual(["Bag"]);
    expect(r.findings).toHaveLength(r.flagged.reduce((a, b) => a + b, 0));
    const f = r.findings[0]!;
    expect(f).toMatchObject({
      subjectType: "sample",
      kind: "spectre",
      check: "spectre",
      checkVersion: "1.0.0",
    });
    expect(f.evidence).toMatchObject({ class: "Bag" });
    expect(Object.keys(f.evidence)).toEqual(
      expect.arrayContaining(["id", "class", "score", "threshold", "classDipRatio", "que"]),
    );
    const i = patch1.table.ids.indexOf(f.evidence.id as string);
    expect(f.subjectId).toBe(patch1.table.digests[i]);
    expect(f.score).toBeGreaterThan(f.evidence.threshold as number);
    // Every flagged sample is in the suspect class and beyond its cut; scores exist for every labeled sample.
    expect(r.scores.every((v) => Number.isFinite(v))).toBe(true);
    expect(Number.isFinite(r.threshold.value)).toBe(true);
  });

  it("SPECTRE at 0.5%: precision ≥ 0.90, recall ≥ 0.90 on this seed", () => {
    const r = spectre.run(patchHalf.table);
    const s = score(r, patchHalf.poisoned);
    // Measured: precision 1.000, recall 0.933 (56 of 60). Across attack seeds 1–3 recall is 0.82–0.95 with
    // no false positive: 60 poisoned images (5% of "Bag") is near the smallest minor mode the test accepts (3%).
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.9);
    expect(r.summary.suspectClasses).toEqual(["Bag"]);
  });

  it("SPECTRE over four feature models from other random starts at 0.5%: any model's flags count; recall ≥ 0.95", async () => {
    // The scan's image proxy trains four feature models (IMAGE_FEATURE_MODELS): whether one model's
    // top whitened direction is the poison's depends on its random start (measured: two of these
    // four flag 56 and 57 of the 60, two see one mode).
    const four = await fashionMnistFeatures(N, { kind: "patch", target: "Bag", rate: 0.005, seed: 1 }, 4);
    expect(four.table.featureReplicates).toHaveLength(3);
    const r = spectre.run(four.table);
    const s = score(r, four.poisoned);
    console.log(
      `SPECTRE over 4 feature models, patch 0.5 %: ${r.findings.length} flagged, precision ${s.precision.toFixed(3)}, recall ${s.recall.toFixed(3)}`,
    );
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.95);
    expect(r.summary).toMatchObject({
      suspectClasses: ["Bag"],
      featureModels: 4,
      flagged: r.findings.length,
    });
    const bag = (r.summary.classes as { class: string; featureModels: string[] }[]).find(
      (c) => c.class === "Bag",
    )!;
    expect(bag.featureModels).toHaveLength(4);
    expect(bag.featureModels).toContain("separate minor mode");
    // Each finding says how many models flagged it; the union is at least the first model's flags.
    for (const f of r.findings) expect(f.evidence.featureModelsFlagging).toMatch(/^[1-4] of 4$/);
    const firstOnly = spectre.run({ ...four.table, featureReplicates: undefined });
    const lost = [...firstOnly.flagged.keys()].filter(
      (i) => firstOnly.flagged[i] === 1 && r.flagged[i] !== 1,
    );
    expect(lost).toEqual([]);
    // A replicate of another shape is ignored, with a warning, rather than read out of bounds;
    // a NaN in one names the model and the sample.
    const odd = spectre.run({ ...four.table, featureReplicates: [new Float32Array(10)] });
    expect(odd.warnings).toContain("feature replicates of another shape than the features were ignored");
    const bad = four.table.featureReplicates![1]!.slice();
    bad[7 * 64] = NaN;
    expect(() => spectre.run({ ...four.table, featureReplicates: [bad] })).toThrow(
      `spectre (feature model 2): the features of sample "${four.table.ids[7]}" have a NaN value (dimension 0)`,
    );
  }, 300_000);

  it("flags nothing on the clean images (false-positive rate ≤ 0.5%): no class has a separate minor mode", () => {
    for (const detector of [spectre, spectralSignature]) {
      const r = detector.run(clean.table);
      expect(score(r, clean.poisoned).falsePositiveRate).toBeLessThanOrEqual(0.005);
      expect(r.summary.suspectClasses).toEqual([]); // measured: 0 flagged by either
      expect(r.threshold.value).toBe(Infinity);
      const rows = r.summary.classes as { class: string; verdict: string; dipRatio: number }[];
      expect(rows.map((c) => c.class)).toEqual(FASHION_MNIST_CLASSES);
      for (const row of rows) expect(row.verdict).not.toBe("separate minor mode");
    }
  });

  it("plain spectral signatures keep clean classes clean on poisoned data too, but miss the patch in shallow proxy features", () => {
    // Tran et al.'s top singular vector is a class's own largest variation here (the proxy is one
    // hidden layer, not a deep net whose classes collapse); measured 0 flagged on both variants.
    for (const v of [patch1, patchHalf]) {
      const r = spectralSignature.run(v.table);
      expect(score(r, v.poisoned).falsePositiveRate).toBeLessThanOrEqual(0.005);
      for (const c of r.summary.suspectClasses as string[]) expect(c).toBe("Bag");
    }
  });

  it("skips classes too small to test, with a warning, and leaves unlabeled samples unscored", () => {
    const labels = clean.table.labels.slice();
    const trouser = FASHION_MNIST_CLASSES.indexOf("Trouser");
    let kept = 0;
    labels.forEach((y, i) => {
      if (y === trouser && kept++ >= 20) labels[i] = -1;
    });
    const r = spectre.run({ ...clean.table, labels });
    expect(r.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/class "Trouser" has 20 samples, fewer than 32 .*not tested/),
        expect.stringMatching(/unlabeled samples were not tested/),
      ]),
    );
    labels.forEach((y, i) => {
      if (y === -1 || y === trouser) expect(r.scores[i]).toBeNaN();
    });
    const s = spectralSignature.run({ ...clean.table, labels });
    expect(s.warnings[0]).toMatch(
      /class "Trouser" has 20 samples, fewer than 128 \(max of 30 and 2 × 64 dimensions\)/,
    );
  });

  it("refuses NaN or infinite features naming the sample, and says why it cannot run without features", () => {
    const features = clean.table.features!.slice();
    features[5 * 64 + 3] = NaN;
    let message = "";
    try {
      spectre.run({ ...clean.table, features });
    } catch (e) {
      expect(isAntidoteError(e) && e.code).toBe("USAGE");
      message = (e as Error).message;
    }
    expect(message).toBe(
      `spectre: the features of sample "${clean.table.ids[5]}" have a NaN value (dimension 3)`,
    );
    features[5 * 64 + 3] = Infinity;
    expect(() => spectralSignature.run({ ...clean.table, features })).toThrow(/have an? infinite value/);
    const { features: _f, featureDims: _d, ...bare } = clean.table;
    expect(spectre.appliesTo(bare)).toMatch(/needs penultimate-layer features/);
    expect(spectre.appliesTo({ ...clean.table, featureDims: 63 })).toMatch(/expected 12000 samples × 63/);
    expect(() => spectre.run(clean.table, { maxDipRatio: 2 })).toThrow(/"maxDipRatio"/);
  });
});
