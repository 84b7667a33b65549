import { describe, expect, it } from "vitest";
import type * as tfTypes from "@tensorflow/tfjs";
import { madAnomalyIndex, MAD_CONSISTENCY, neuralCleanse } from "../../src/audit/neural-cleanse.js";
import type { DifferentiableClassifier } from "../../src/audit/types.js";
import { isAntidoteError } from "../../src/errors.js";
import { Rng } from "../../src/math/rng.js";
import { loadTf } from "../../src/nn/tf.js";

// Neural Cleanse on a classifier whose answer is known: a linear model on 1×8×8 images where
// labels 0–3 each read one band of rows, and label 4 fires on two pixels in the right-most
// column that no clean image lights. Reaching label 4 takes a one-pixel trigger; reaching any
// band label means repainting a band. The MAD index is checked on hand-made vectors.

const H = 8;
const W = 8;

/** logit_k = 2·Σ band k (rows 2k, 2k+1; columns 0–6) for k < 4; logit_4 = 40·(x[6,7] + x[7,7]) − 10. */
async function bandModel(): Promise<DifferentiableClassifier & { weights: Float32Array }> {
  const tf = await loadTf();
  const weights = new Float32Array(5 * H * W);
  for (let k = 0; k < 4; k++)
    for (let r = 2 * k; r < 2 * k + 2; r++)
      for (let c = 0; c < W - 1; c++) weights[k * H * W + r * W + c] = 2;
  weights[4 * H * W + 6 * W + 7] = 40;
  weights[4 * H * W + 7 * W + 7] = 40;
  const w = tf.tensor2d(weights, [5, H * W]);
  const b = tf.tensor1d([0, 0, 0, 0, -10]);
  return {
    weights,
    inputShape: [1, H, W],
    numClasses: 5,
    logits: (x: tfTypes.Tensor) => tf.matMul(x.reshape([-1, H * W]), w, false, true).add<tfTypes.Tensor2D>(b),
    dispose: () => {
      w.dispose();
      b.dispose();
    },
  };
}

/** `n` clean images: band (i mod 4) lit, faint noise elsewhere, the right-most column dark. */
function bandImages(n: number): { x: Float32Array; n: number; labels: Int32Array } {
  const rng = new Rng(7);
  const x = new Float32Array(n * H * W);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % 4;
    labels[i] = k;
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W - 1; c++)
        x[i * H * W + r * W + c] = r >= 2 * k && r < 2 * k + 2 ? 0.8 + 0.2 * rng.next() : 0.1 * rng.next();
  }
  return { x, n, labels };
}

describe("neuralCleanse", () => {
  it("finds the one-pixel shortcut to the planted label, where it is, and flags only that label", async () => {
    const tf = await loadTf();
    const model = await bandModel();
    const before = tf.memory().numTensors;
    try {
      const steps: number[] = [];
      const r = await neuralCleanse(model, bandImages(200), {
        maxSteps: 300,
        seed: 1,
        onProgress: (p) => steps.push(p.step),
      });
      expect(tf.memory().numTensors).toBe(before); // nothing leaked across 300 batched steps
      expect(r.labelSource).toBe("dataset");
      expect(r.samples).toEqual({ optimisation: 150, heldOut: 50 });
      expect(steps.length).toBeGreaterThan(10);
      const byLabel = new Map(r.triggers.map((t) => [t.label, t]));
      const planted = byLabel.get(4)!;
      expect(planted.reached).toBe(true);
      expect(planted.asr).toBeGreaterThanOrEqual(0.95);
      // ≈ one pixel's worth of mask (40·s − 10 must beat a lit band's 2·7·2·0.9 ≈ 25).
      expect(planted.l1).toBeGreaterThan(0.5);
      expect(planted.l1).toBeLessThan(2.5);
      // …and it sits on the two planted pixels: they hold the two largest mask values and most of the norm.
      const ranked = Array.from(planted.mask.keys()).sort((a, b) => planted.mask[b]! - planted.mask[a]!);
      expect(ranked.slice(0, 2).sort((a, b) => a - b)).toEqual([6 * W + 7, 7 * W + 7]);
      const onPlanted = planted.mask[6 * W + 7]! + planted.mask[7 * W + 7]!;
      expect(onPlanted / planted.l1).toBeGreaterThan(0.6);
      for (const k of [0, 1, 2, 3]) {
        const t = byLabel.get(k)!;
        expect(t.reached).toBe(true);
        expect(t.l1).toBeGreaterThan(4 * planted.l1);
      }
      const index = r.anomaly.index;
      expect(index[4]).toBeGreaterThan(2);
      for (const k of [0, 1, 2, 3]) expect(index[k]).toBeLessThan(2);
    } finally {
      model.dispose();
    }
  });

  it("gives each label the same trigger whichever other labels run beside it", async () => {
    const model = await bandModel();
    try {
      const images = bandImages(120);
      const alone = await neuralCleanse(model, images, { labels: [4], maxSteps: 60, seed: 3 });
      const together = await neuralCleanse(model, images, { labels: [1, 4], maxSteps: 60, seed: 3 });
      const a = alone.triggers[0]!;
      const b = together.triggers.find((t) => t.label === 4)!;
      expect(b.l1).toBeCloseTo(a.l1, 4);
      expect(Array.from(b.mask)).toEqual(Array.from(a.mask));
    } finally {
      model.dispose();
    }
  });

  it("optimises in image space for a model that takes flat vectors", async () => {
    const model = await bandModel();
    try {
      const images = bandImages(120);
      const asImage = await neuralCleanse(model, images, { labels: [4], maxSteps: 40, seed: 5 });
      const flat = { ...model, inputShape: [H * W] };
      const asVector = await neuralCleanse(flat, images, {
        labels: [4],
        maxSteps: 40,
        seed: 5,
        imageShape: [1, H, W],
      });
      expect(Array.from(asVector.triggers[0]!.mask)).toEqual(Array.from(asImage.triggers[0]!.mask));
      await expect(neuralCleanse(flat, images, { labels: [4] })).rejects.toThrow(
        /the model's input \[64\] is not an image \[C, H, W\]/,
      );
      await expect(
        neuralCleanse(flat, images, { labels: [4], imageShape: [1, 4, 16] }),
      ).resolves.toBeDefined();
      await expect(neuralCleanse(flat, images, { labels: [4], imageShape: [3, 8, 8] })).rejects.toThrow(
        /the model takes \[64\] \(batch excluded\), which does not hold a 3×8×8 image/,
      );
    } finally {
      model.dispose();
    }
  });

  it("falls back to the model's own predictions when the images are unlabeled", async () => {
    const model = await bandModel();
    try {
      const { x, n } = bandImages(80);
      const r = await neuralCleanse(model, { x, n }, { labels: [4], maxSteps: 40 });
      expect(r.labelSource).toBe("model");
      expect(r.triggers[0]!.asrSamples).toBe(20); // no clean image is predicted as label 4
    } finally {
      model.dispose();
    }
  });

  it("rejects labels the model does not have, bad settings and images of the wrong size", async () => {
    const model = await bandModel();
    try {
      const images = bandImages(10);
      await expect(neuralCleanse(model, images, { labels: [5] })).rejects.toThrow(
        /label 5 is not one of the model's 5 classes/,
      );
      await expect(neuralCleanse(model, images, { epochSteps: 0 })).rejects.toThrow(
        /neural cleanse: epochSteps must be a whole number ≥ 1, got 0/,
      );
      await expect(neuralCleanse(model, images, { asrThreshold: 1.5 })).rejects.toThrow(
        /asrThreshold must be in \(0, 1\], got 1.5/,
      );
      const short = { x: images.x.subarray(1), n: 10 };
      const err = await neuralCleanse(model, short).catch((e: unknown) => e);
      expect(isAntidoteError(err) && err.code).toBe("USAGE");
      expect((err as Error).message).toMatch(/expected at least 2 images of 1×8×8 \(640 values\), got 639/);
    } finally {
      model.dispose();
    }
  });
});

describe("madAnomalyIndex", () => {
  it("computes (median − x) / (1.4826 · MAD) on a hand-made vector", () => {
    // median 10; |x − 10| = 0 1 1 0 2 8 → MAD 1.
    const r = madAnomalyIndex([10, 11, 9, 10, 12, 2]);
    expect(r.median).toBe(10);
    expect(r.mad).toBeCloseTo(MAD_CONSISTENCY, 12);
    expect(r.index[5]).toBeCloseTo(8 / 1.4826, 10); // 5.396: flagged
    expect(r.index[1]).toBeCloseTo(-1 / 1.4826, 10); // above the median: negative, never flagged
    expect(r.index[0]).toBe(0);
  });

  it("uses the even-length median and copes with a zero MAD", () => {
    const r = madAnomalyIndex([4, 8, 6, 20]); // median 7; deviations 3 1 1 13 → MAD 2
    expect(r.median).toBe(7);
    expect(r.mad).toBeCloseTo(2 * 1.4826, 12);
    expect(r.index[0]).toBeCloseTo(3 / (2 * 1.4826), 10);
    const flat = madAnomalyIndex([5, 5, 5, 1]);
    expect(flat.mad).toBe(0);
    expect(Array.from(flat.index)).toEqual([0, 0, 0, Infinity]);
  });
});
