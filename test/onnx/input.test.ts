import { describe, expect, it } from "vitest";
import { isAntidoteError } from "../../src/errors.js";
import type { Sample } from "../../src/data/sample.js";
import { imageBatch } from "../../src/onnx/input.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

// Images (H×W×C, channels last) laid out as the model's input: NCHW, flat C·H·W, or channels
// last when the model says so; and one message naming the sample when a shape does not fit.

function modelFormat(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isAntidoteError(e) && e.code === "MODEL_FORMAT") return e.message;
    throw e;
  }
  throw new Error("expected a MODEL_FORMAT error");
}

/** An RGB version of a Fashion-MNIST image: R = pixel, G = 1 − pixel, B = pixel / 2. */
function rgb(s: Sample): Sample {
  const gray = s.image!.data;
  const data = new Float32Array(gray.length * 3);
  gray.forEach((v, p) => data.set([v, 1 - v, v / 2], p * 3));
  return { ...s, image: { height: 28, width: 28, channels: 3, data } };
}

describe.runIf(hasFashionMnist())("imageBatch", () => {
  const samples = fashionMnistSamples(5);

  it("single-channel images: [1, 28, 28], [28, 28], [784] and [28, 28, 1] are the pixels in order", () => {
    for (const shape of [[1, 28, 28], [28, 28], [784], [28, 28, 1]]) {
      const batch = imageBatch(samples, shape);
      expect(batch.length).toBe(5 * 784);
      samples.forEach((s, i) => expect(batch.subarray(i * 784, (i + 1) * 784)).toEqual(s.image!.data));
    }
  });

  it("colour images become NCHW planes; channels-last models get them as stored", () => {
    const colour = samples.map(rgb);
    const chw = imageBatch(colour, [3, 28, 28]);
    const flat = imageBatch(colour, [3 * 784]);
    const hwc = imageBatch(colour, [28, 28, 3]);
    expect(flat).toEqual(chw);
    colour.forEach((s, i) => {
      const gray = samples[i]!.image!.data;
      const base = i * 3 * 784;
      for (let p = 0; p < 784; p += 13) {
        expect(chw[base + p]).toBe(gray[p]);
        expect(chw[base + 784 + p]).toBeCloseTo(1 - gray[p]!, 6);
        expect(chw[base + 2 * 784 + p]).toBeCloseTo(gray[p]! / 2, 6);
      }
      expect(hwc.subarray(base, base + 3 * 784)).toEqual(s.image!.data);
    });
  });

  it("reuses the caller's buffer", () => {
    const out = new Float32Array(10 * 784).fill(9);
    const batch = imageBatch(samples, [784], out);
    expect(batch.buffer).toBe(out.buffer);
    expect(batch.length).toBe(5 * 784);
    expect(out[5 * 784]).toBe(9);
  });

  it("names the sample and both shapes when an image does not fit", () => {
    expect(modelFormat(() => imageBatch(samples, [3, 32, 32]))).toBe(
      'sample "train:0" is a 28×28 image with 1 channel, but the model takes [3, 32, 32] (batch excluded); ' +
        "resize the images to 32×32 with 3 channels.",
    );
    expect(modelFormat(() => imageBatch([samples[0]!, rgb(samples[1]!)], [1, 28, 28]))).toBe(
      'sample "train:1" is a 28×28 image with 3 channels, but the model takes [1, 28, 28] (batch excluded); ' +
        "convert the images to 1 channel.",
    );
    expect(modelFormat(() => imageBatch(samples, [1000]))).toMatch(
      /a flat input needs H·W·C = 1000 values, the image has 784/,
    );
    const text: Sample = { ...samples[0]!, id: "doc-7", image: undefined, text: "hello" };
    expect(modelFormat(() => imageBatch([text], [784]))).toBe(
      'sample "doc-7" has no image; the model takes images.',
    );
  });
});
