// The CNN half of the built-in image proxy: held-out probabilities on real Fashion-MNIST that are
// better than the MLP's, and better still averaged with them (the reason the scan averages the
// two); images laid out as the trainer wants them; and a boundary that says what it cannot take.
import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { channelsFirst, cnnOutOfSampleProbs, cnnProxyUnsupported } from "../../src/detect/proxy-image-cnn.js";
import { imageProxyFeatures } from "../../src/detect/proxy-image.js";
import { argmaxRows } from "../../src/nn/train.js";
import { antidoteFailure } from "../helpers/errors.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

const FM_SHAPE = { height: 28, width: 28, channels: 1 };
const C = 10;

/** Share of the labeled samples (label ≥ 0) whose top class is their label. */
function accuracy(probs: Float32Array, labels: Int32Array): number {
  const top = argmaxRows(probs, C);
  const labeled = labels.filter((y) => y >= 0);
  return labels.filter((y, i) => y >= 0 && top[i] === y).length / labeled.length;
}

describe.runIf(hasFashionMnist())("cnnOutOfSampleProbs on 3,000 Fashion-MNIST images", () => {
  let samples: Sample[];
  let x: Float32Array;
  let labels: Int32Array;
  beforeAll(() => {
    samples = fashionMnistSamples(3000);
    x = new Float32Array(samples.length * 784);
    samples.forEach((s, i) => x.set(s.image!.data, i * 784));
    labels = Int32Array.from(samples.map((s) => FASHION_MNIST_CLASSES.indexOf(s.label!)));
  });

  it("predicts every sample from a fold that did not train on it; averaged with the MLP it beats both", async () => {
    // Every 10th sample unlabeled: never trained on, still predicted.
    const partly = labels.map((y, i) => (i % 10 === 0 ? -1 : y));
    const folds: number[] = [];
    const cnn = await cnnOutOfSampleProbs(x, FM_SHAPE, partly, C, { seed: 0, repeats: 1 }, (done) =>
      folds.push(done),
    );
    expect(folds).toEqual([1, 2, 3]);
    expect(cnn.probs).toHaveLength(samples.length * C);
    for (let i = 0; i < samples.length; i++) {
      let sum = 0;
      for (let c = 0; c < C; c++) sum += cnn.probs[i * C + c]!;
      expect(Math.abs(sum - 1)).toBeLessThan(1e-4);
    }
    expect(cnn.foldAccuracy).toHaveLength(3);
    expect(cnn.provenance).toMatch(/CNN .* 3 stratified folds .* 1 repeat with/);

    const mlp = imageProxyFeatures(x, partly, C, { seed: 0 });
    const averaged = cnn.probs.map((p, k) => (p + mlp.probs![k]!) / 2);
    const scores = {
      mlp: accuracy(mlp.probs!, partly),
      cnn: accuracy(cnn.probs, partly),
      averaged: accuracy(averaged, partly),
      // The unlabeled tenth, scored against its real labels: predicted, not memorised.
      unlabeled: accuracy(
        cnn.probs,
        labels.map((y, i) => (i % 10 === 0 ? y : -1)),
      ),
    };
    console.log(`held-out accuracy on 3,000 images: ${JSON.stringify(scores)}`);
    expect(cnn.accuracy).toBeCloseTo(scores.cnn, 6);
    expect(scores.cnn).toBeGreaterThan(0.78);
    expect(scores.cnn).toBeGreaterThan(scores.mlp);
    expect(scores.averaged).toBeGreaterThanOrEqual(scores.cnn);
    expect(scores.unlabeled).toBeGreaterThan(0.75);
  }, 600_000);

  it("names the sizes it cannot take", async () => {
    expect(cnnProxyUnsupported(FM_SHAPE)).toBeNull();
    expect(cnnProxyUnsupported({ height: 3, width: 28, channels: 1 })).toMatch(/3×28 are too small/);
    expect(cnnProxyUnsupported({ height: 224, width: 224, channels: 3 })).toMatch(/150528 values/);
    const wrongLength = await antidoteFailure(cnnOutOfSampleProbs(x.subarray(0, 100), FM_SHAPE, labels, C));
    expect(wrongLength).toMatchObject({ code: "USAGE" });
    expect(wrongLength.message).toMatch(/100 pixel values are not 3000 images of 28×28×1/);
    const badLabel = await antidoteFailure(
      cnnOutOfSampleProbs(x.subarray(0, 784 * 4), FM_SHAPE, Int32Array.from([0, 1, 12, 2]), C),
    );
    expect(badLabel.message).toMatch(/label 12, but only 10 classes/);
    const fewLabeled = await antidoteFailure(
      cnnOutOfSampleProbs(x.subarray(0, 784 * 4), FM_SHAPE, Int32Array.from([0, -1, -1, 1]), C),
    );
    expect(fewLabeled.message).toMatch(/2 labeled samples cannot be split into 3 folds/);
    const tooSmall = await antidoteFailure(
      cnnOutOfSampleProbs(
        new Float32Array(9 * 4),
        { height: 3, width: 3, channels: 1 },
        labels.subarray(0, 4),
        C,
      ),
    );
    expect(tooSmall.message).toMatch(/CNN proxy: images of 3×3 are too small/);
  });
});

describe("channelsFirst", () => {
  it("moves channels-last pixels to channels-first and rescales 0–255 images to [0, 1]", () => {
    // Two 2×2 images with 3 channels; pixel (y, x) of channel c holds 100·i + 10·c + 2y + x.
    const shape = { height: 2, width: 2, channels: 3 };
    const hwc = new Float32Array(2 * 12);
    for (let i = 0; i < 2; i++)
      for (let y = 0; y < 2; y++)
        for (let xx = 0; xx < 2; xx++)
          for (let c = 0; c < 3; c++) hwc[i * 12 + (y * 2 + xx) * 3 + c] = 100 * i + 10 * c + 2 * y + xx;
    const nchw = channelsFirst(hwc, 2, shape);
    const max = 100 + 20 + 3;
    for (let i = 0; i < 2; i++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < 4; p++)
          expect(nchw[i * 12 + c * 4 + p]).toBeCloseTo((100 * i + 10 * c + p) / max, 6);
    const unit = new Float32Array([0.5, 0.25, 1, 0]);
    expect(Array.from(channelsFirst(unit, 1, { height: 2, width: 2, channels: 1 }))).toEqual([
      0.5, 0.25, 1, 0,
    ]);
  });
});
