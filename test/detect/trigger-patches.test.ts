// Image trigger patches on real Fashion-MNIST (the first 12,000 training images), poisoned by the
// project's own simulators: a BadNets 3×3 white patch relabeled "Bag" on 0.5% of the images, a
// checkerboard patch in the other corner relabeled "Trouser", and, as the negative cases, the clean
// images, 10% random flips and a 2% blended (full-image) trigger. Scored against the simulators'
// ground truth. The detector reads pixels and labels only, so no representation is built here.
import { beforeAll, describe, expect, it } from "vitest";
import type { AttackSpec } from "../../src/attack/index.js";
import { ImageSketches } from "../../src/data/image-sketch.js";
import type { ImageTensor } from "../../src/data/sample.js";
import { triggerPatches } from "../../src/detect/trigger-patches.js";
import type { DetectorResult, ScanTable } from "../../src/detect/types.js";
import { fashionMnistVariant, type FeatureVariant } from "../helpers/fm-features.js";
import { hasFashionMnist } from "../helpers/real-data.js";

const N = 12_000;

// A checkerboard in the top-left corner relabeled "Trouser" (3×3 unless a test says otherwise).
const CHECKERBOARD: AttackSpec = {
  kind: "patch",
  target: "Trouser",
  rate: 0.005,
  seed: 2,
  position: "top-left",
  pattern: "checkerboard",
};

const variant = (spec: AttackSpec | null): Promise<FeatureVariant> => fashionMnistVariant(N, spec);

function score(r: DetectorResult, poisoned: Uint8Array) {
  let tp = 0;
  let flagged = 0;
  let positives = 0;
  poisoned.forEach((p, i) => {
    positives += p;
    if (r.flagged[i] === 1) {
      flagged++;
      tp += p;
    }
  });
  return {
    flagged,
    precision: flagged === 0 ? NaN : tp / flagged,
    recall: positives === 0 ? NaN : tp / positives,
  };
}

interface TriggerRow {
  target: string;
  region: { x: number; y: number; width: number; height: number };
  pattern: string[];
  mismatchedCarriers: number;
  explainedShare: number;
  log10AdjustedPValue: number;
}

const triggersOf = (r: DetectorResult): TriggerRow[] => r.summary.triggers as TriggerRow[];
const covers = (t: TriggerRow, x: number, y: number): boolean =>
  x >= t.region.x && x < t.region.x + t.region.width && y >= t.region.y && y < t.region.y + t.region.height;

describe.runIf(hasFashionMnist())("trigger patches on Fashion-MNIST pixels", () => {
  let clean: FeatureVariant;
  let patch: FeatureVariant;
  beforeAll(async () => {
    clean = await variant(null);
    patch = await variant({ kind: "patch", target: "Bag", rate: 0.005, seed: 1 });
  });

  it("flags nothing on the clean images", () => {
    const r = triggerPatches.run(clean.table);
    expect(r.flagged.reduce((a, b) => a + b, 0)).toBe(0);
    expect(triggersOf(r)).toEqual([]);
    // The strongest natural window stays short of significance (measured 10^-1.2 adjusted).
    const top = (r.summary.topCandidates as { log10AdjustedPValue: number }[])[0];
    expect(top?.log10AdjustedPValue ?? 0).toBeGreaterThan(-2);
  });

  it("finds a 0.5% BadNets patch with no rate given: precision ≥ 0.90, recall ≥ 0.95, and says where it is", () => {
    const r = triggerPatches.run(patch.table);
    const s = score(r, patch.poisoned);
    // Measured: 58 flagged, all poisoned (1.000 / 0.967).
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.95);
    const triggers = triggersOf(r);
    expect(triggers).toHaveLength(1);
    const t = triggers[0]!;
    expect(t.target).toBe("Bag");
    // The simulator's default patch: 3×3 at x = y = 24 (bottom-right, 1 pixel from the edge).
    expect(covers(t, 24, 24) && covers(t, 26, 26)).toBe(true);
    expect(t.region.width * t.region.height).toBeLessThanOrEqual(49);
    expect(t.explainedShare).toBeGreaterThanOrEqual(0.5);
    expect(t.log10AdjustedPValue).toBeLessThan(-20);
    const samples = r.findings.filter((f) => f.subjectType === "sample");
    expect(samples).toHaveLength(s.flagged);
    expect(samples[0]).toMatchObject({ kind: "trigger-patch", check: "trigger-patches" });
    expect(samples[0]!.evidence).toMatchObject({ target: "Bag", region: t.region });
    expect(samples[0]!.evidence.looksLike).not.toBe("Bag");
    const dataset = r.findings.filter((f) => f.subjectType === "dataset");
    expect(dataset).toHaveLength(1);
    expect(dataset[0]!.kind).toBe("trigger-patch");
  });

  it("finds a checkerboard patch in another corner for another target", async () => {
    const v = await variant(CHECKERBOARD);
    const r = triggerPatches.run(v.table);
    const s = score(r, v.poisoned);
    console.log(`3×3 checkerboard: ${s.flagged} flagged, ${s.precision.toFixed(3)} / ${s.recall.toFixed(3)}`);
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.9);
    const t = triggersOf(r)[0]!;
    expect(t.target).toBe("Trouser");
    expect(covers(t, 1, 1) && covers(t, 3, 3)).toBe(true);
  });

  it("judges each carrier without the whole pattern when it is larger than the window", async () => {
    // A 4×4 checkerboard: no 3×3 window covers it, and the content model without one window still
    // sees the rest of the pattern and the label it learned for it. Judged with one window left out,
    // 42 of the 60 poisoned images were flagged (recall 0.70); without the pattern's pixels, all 60.
    const v = await variant({ ...CHECKERBOARD, size: 4 });
    const r = triggerPatches.run(v.table);
    const s = score(r, v.poisoned);
    expect(s.precision).toBeGreaterThanOrEqual(0.95);
    expect(s.recall).toBeGreaterThanOrEqual(0.95);
    const carriers = (r.summary.triggers as { carriers: { patternPixels: number } }[])[0]!.carriers;
    expect(carriers.patternPixels).toBeGreaterThanOrEqual(16);
  });

  it("takes neither random label flips nor a blended full-image trigger for a patch", async () => {
    for (const spec of [
      { kind: "label-flip", rate: 0.1, seed: 1 },
      { kind: "blend", target: "Bag", rate: 0.02, seed: 1 },
    ] as AttackSpec[]) {
      const r = triggerPatches.run((await variant(spec)).table);
      expect(
        r.flagged.reduce((a, b) => a + b, 0),
        spec.kind,
      ).toBe(0);
    }
  });
});

describe("trigger patches: what it needs and what it says when it cannot", () => {
  const image = (size: number, fill: number): ImageTensor => ({
    height: size,
    width: size,
    channels: 1,
    data: new Float32Array(size * size).fill(fill),
  });
  const table = (images: (ImageTensor | undefined)[], labels: number[], classes = ["a", "b"]): ScanTable => ({
    ids: images.map((_, i) => `s${i}`),
    digests: images.map((_, i) => `d${i}`),
    labels: Int32Array.from(labels),
    classes,
    images: ImageSketches.of(images),
  });

  it("skips tables without images, with one class, with images of several sizes or an imageless sample", () => {
    expect(triggerPatches.appliesTo({ ...table([], []), images: undefined })).toBe(
      "the dataset has no images",
    );
    expect(triggerPatches.appliesTo(table([image(8, 0), image(8, 1)], [0, 0], ["a"]))).toBe(
      "it needs at least two classes",
    );
    expect(triggerPatches.appliesTo(table([image(8, 0), image(6, 1)], [0, 1]))).toMatch(
      /images differ in size \(8×8×1, and 6×6×1 for "s1"\)/,
    );
    expect(triggerPatches.appliesTo(table([image(8, 0), undefined], [0, 1]))).toBe(
      'sample "s1" has no image',
    );
    expect(triggerPatches.appliesTo(table([image(8, 0), image(8, 1)], [-1, -1]))).toBe(
      "fewer than two samples are labeled",
    );
  });

  it("reports images smaller than the window, and unlabeled samples, instead of failing", () => {
    expect(triggerPatches.appliesTo(table([image(1, 0), image(1, 1)], [0, 1]))).toBeNull();
    const r = triggerPatches.run(table([image(2, 0), image(2, 1), image(2, 1)], [0, 1, -1]));
    expect(r.flagged.every((f) => f === 0)).toBe(true);
    expect(Number.isNaN(r.scores[2])).toBe(true);
    expect(r.warnings).toEqual([
      "1 unlabeled samples were not tested.",
      "images of 2×2 are smaller than the 3×3 window.",
    ]);
  });

  it("rejects options it cannot use with a message naming them", () => {
    expect(() => triggerPatches.run(table([image(8, 0), image(8, 1)], [0, 1]), { window: 5 })).toThrow(
      /trigger-patches options "window"/,
    );
  });
});
