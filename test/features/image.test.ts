import { beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { imageFromBytes, type Sample } from "../../src/data/sample.js";
import { memoryDataset } from "../../src/data/memory.js";
import { ImageFeaturizer, mergeImageStats, type ImageOptions } from "../../src/features/image.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";
import { nearestCentroidAccuracy } from "./centroid.js";

async function fitted(samples: Sample[], options: ImageOptions = {}): Promise<ImageFeaturizer> {
  const f = new ImageFeaturizer(options);
  await f.fit(memoryDataset(samples).samples());
  return f;
}

function catchError(fn: () => unknown): AntidoteError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

function rgb(
  id: string,
  height: number,
  width: number,
  pixel: (y: number, x: number, c: number) => number,
): Sample {
  const bytes = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) bytes[(y * width + x) * 3 + c] = pixel(y, x, c);
  return {
    id,
    digest: id,
    label: null,
    image: imageFromBytes(bytes, height, width, 3),
    source: null,
    annotations: [],
    metadata: {},
  };
}

describe("ImageFeaturizer on synthetic RGB images", () => {
  const images = Array.from({ length: 6 }, (_, i) =>
    rgb(`img${i}`, 4, 5, (y, x, c) => (c === 0 ? 10 * i + y * x : c === 1 ? 200 : 37 * x + i)),
  );

  it("flattens HWC pixels unchanged by default", async () => {
    const f = await fitted(images);
    expect(f.transform(images[2]!)).toEqual(images[2]!.image!.data);
  });

  it("standardises each channel, with a constant channel mapped to 0", async () => {
    const f = await fitted(images, { standardize: "channel" });
    const rows = images.map((s) => f.transform(s));
    for (let c = 0; c < 3; c++) {
      const values = rows.flatMap((r) => Array.from(r.filter((_, i) => i % 3 === c)));
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
      expect(mean).toBeCloseTo(0, 5);
      expect(sd).toBeCloseTo(c === 1 ? 0 : 1, 5); // channel 1 is 200 everywhere
    }
  });

  it("names the first sample whose shape differs, when fitting and when transforming", async () => {
    const odd = rgb("odd-one", 5, 4, () => 0);
    const fitErr = catchError(() => {
      const f = new ImageFeaturizer();
      for (const s of [images[0]!, images[1]!, odd, rgb("later", 6, 6, () => 0)]) f.observe(s);
    });
    expect(fitErr.code).toBe("USAGE");
    expect(fitErr.message).toContain('"odd-one"');
    expect(fitErr.message).toContain("5×4×3");
    expect(fitErr.message).toContain('"img0"'); // the sample that set the shape
    expect(fitErr.message).not.toContain("later");
    const f = await fitted(images, { standardize: "pixel" });
    expect(catchError(() => f.transform(odd)).message).toContain('"odd-one"');
  });

  it("refuses a sample with no image and a transform before any fit", () => {
    const text: Sample = {
      id: "t1",
      digest: "",
      label: null,
      text: "hi",
      source: null,
      annotations: [],
      metadata: {},
    };
    expect(catchError(() => new ImageFeaturizer().observe(text)).message).toContain('"t1"');
    expect(catchError(() => new ImageFeaturizer({ standardize: "channel" }).transform(images[0]!)).code).toBe(
      "USAGE",
    );
    expect(catchError(() => new ImageFeaturizer({ standardize: "yes" as "none" })).code).toBe("USAGE");
  });
});

describe.runIf(hasFashionMnist())("ImageFeaturizer on 2,000 Fashion-MNIST images", () => {
  let samples: Sample[];
  beforeAll(() => {
    samples = fashionMnistSamples(2000);
  });

  it("per-channel standardised features have mean 0 and std 1", async () => {
    const f = await fitted(samples, { standardize: "channel" });
    let sum = 0;
    let sumSq = 0;
    let n = 0;
    for (const s of samples) {
      for (const v of f.transform(s)) {
        sum += v;
        sumSq += v * v;
        n++;
      }
    }
    const mean = sum / n;
    expect(n).toBe(2000 * 784);
    expect(Math.abs(mean)).toBeLessThan(1e-4);
    expect(Math.sqrt(sumSq / n - mean * mean)).toBeCloseTo(1, 4);
    // The fitted mean is the real mean brightness, not a default.
    const m = f.stats().moments!;
    expect(m.count).toBe(2000 * 784);
    expect(m.mean[0]).toBeGreaterThan(0.2);
    expect(m.mean[0]).toBeLessThan(0.4);
  });

  it("per-pixel standardisation gives every varying pixel mean 0 and std 1", async () => {
    const f = await fitted(samples, { standardize: "pixel" });
    const sums = new Float64Array(784);
    const sq = new Float64Array(784);
    for (const s of samples) f.transform(s).forEach((v, i) => ((sums[i]! += v), (sq[i]! += v * v)));
    let varying = 0;
    for (let i = 0; i < 784; i++) {
      const mean = sums[i]! / 2000;
      const sd = Math.sqrt(sq[i]! / 2000 - mean * mean);
      expect(Math.abs(mean)).toBeLessThan(1e-4);
      if (sd > 0) {
        varying++;
        expect(sd).toBeCloseTo(1, 3);
      }
    }
    expect(varying).toBeGreaterThan(700);
  });

  it("merges shard statistics into the statistics of one fit", async () => {
    for (const standardize of ["channel", "pixel"] as const) {
      const all = (await fitted(samples, { standardize })).stats();
      const a = (await fitted(samples.slice(0, 700), { standardize })).stats();
      const b = (await fitted(samples.slice(700), { standardize })).stats();
      const merged = mergeImageStats(a, b);
      expect(merged.shape).toEqual(all.shape);
      expect(merged.moments!.count).toBe(all.moments!.count);
      for (let i = 0; i < all.moments!.mean.length; i++) {
        expect(Math.abs(merged.moments!.mean[i]! - all.moments!.mean[i]!)).toBeLessThan(1e-9);
        expect(Math.abs(merged.moments!.m2[i]! - all.moments!.m2[i]!) / all.moments!.count).toBeLessThan(
          1e-9,
        );
      }
      const fromStats = new ImageFeaturizer({ standardize }, merged);
      const direct = await fitted(samples, { standardize });
      const x = fromStats.transform(samples[5]!);
      direct.transform(samples[5]!).forEach((v, i) => expect(Math.abs(v - x[i]!)).toBeLessThan(1e-5));
    }
  });

  it("classifies held-out images by nearest centroid on pixels at ≥ 60%", async () => {
    const labels = samples.map((s) => s.label);
    const raw = await fitted(samples);
    const pixels = samples.map((s) => raw.transform(s));
    expect(nearestCentroidAccuracy(pixels, labels, 784, "euclidean")).toBeGreaterThanOrEqual(0.6);
    const std = await fitted(samples, { standardize: "channel" });
    const standardized = samples.map((s) => std.transform(s));
    expect(nearestCentroidAccuracy(standardized, labels, 784, "euclidean")).toBeGreaterThanOrEqual(0.6);
  });
});
