import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import type { Dataset } from "../../src/data/dataset.js";
import { ImageSketches, PROXY_IMAGES, SMALL_IMAGES_ONLY } from "../../src/data/image-sketch.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { imageFromBytes, imageToBytes, type ImageTensor, type Sample } from "../../src/data/sample.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import { exportOnnx } from "../../src/onnx/export.js";
import type { EnsembleResult } from "../../src/scan/ensemble.js";
import { buildPreviews } from "../../src/scan/previews.js";
import { scanDataset, type ScanReport } from "../../src/scan/scan.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";
import { randomCnn, tempDir, writeModel } from "../onnx/fixtures.js";

// The scan streams its input (issue 22). With a model, samples go through ONNX Runtime one batch at
// a time as they are read, and the table keeps no Float32 image: so a reader is never more than one
// batch ahead of inference, whatever the dataset's size. Thumbnails of flagged images come from a
// second pass, which stops at the last one shown. The model is a random-weight CNN (no training):
// what is tested is the data flow, not what the model knows.

const N = 4000;
const BATCH = 128;

/** A dataset that records every pass: samples handed out, and how far reading ran ahead of inference. */
class WatchedDataset implements Dataset {
  readonly info = { format: "jsonl" as const, path: "(watched)", count: N, classes: FASHION_MNIST_CLASSES };
  /** Samples handed out, per pass. */
  readonly yielded: number[] = [];
  /** Samples the model has run (from onProgress), and the most read but not yet run at any time. */
  inferred = 0;
  maxAhead = 0;

  constructor(private readonly items: readonly Sample[]) {}

  samples(): AsyncIterable<Sample> {
    const pass = this.yielded.push(0) - 1;
    const items = this.items;
    return {
      [Symbol.asyncIterator]: () => {
        let i = 0;
        return {
          next: () => {
            if (i >= items.length) return Promise.resolve({ value: undefined, done: true as const });
            this.yielded[pass] = (this.yielded[pass] as number) + 1;
            if (pass === 0)
              this.maxAhead = Math.max(this.maxAhead, (this.yielded[0] as number) - this.inferred);
            return Promise.resolve({ value: items[i++] as Sample, done: false as const });
          },
        };
      },
    };
  }
}

describe.runIf(hasFashionMnist())("scan with a model: streamed, bounded, previews from a second pass", () => {
  let dir: string;
  let samples: Sample[];
  let data: WatchedDataset;
  let report: ScanReport;
  beforeAll(async () => {
    dir = tempDir();
    const model = writeModel(dir, "random-cnn.onnx", exportOnnx(randomCnn()));
    const writer = new MemoryWriter();
    await simulateAttack(memoryDataset(fashionMnistSamples(N), { classes: FASHION_MNIST_CLASSES }), writer, {
      kind: "patch",
      target: "Bag",
      rate: 0.02,
      seed: 2,
    });
    samples = writer.samples;
    data = new WatchedDataset(samples);
    report = await scanDataset(data, {
      model,
      batchSize: BATCH,
      seed: 0,
      previews: 20,
      onProgress: (done) => (data.inferred = done),
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("never reads more than one batch ahead of inference", () => {
    expect(report.representation.model?.samples).toBe(N);
    // Reading the whole dataset first (the scan before issue 22) would make this N.
    expect(data.maxAhead).toBe(BATCH);
    expect(data.yielded[0]).toBe(N);
  });

  it("keeps no Float32 image: 8-bit pixels of these small images only, besides features and probabilities", () => {
    const table = report.table;
    const images = table.images as ImageSketches;
    expect(images).toBeInstanceOf(ImageSketches);
    // 28×28 is small enough for trigger-patches and the exclusion check: kept, one byte a value,
    // exactly as read (the digest's bytes).
    expect(images.pixelBytes).toBe(N * 784);
    expect(images.pixels(7)).toEqual(imageToBytes(samples[7]!.image!));
    for (const value of Object.values(table))
      if (value instanceof Float32Array) expect(value.length).toBeLessThan(N * 784);
    expect(table.features?.length).toBe(N * 16);
    expect(table.probs?.length).toBe(N * 10);
  });

  it("reads the flagged images shown again in a second pass, which stops at the last one", () => {
    const shown = [...report.previews.keys()];
    expect(shown.length).toBeGreaterThan(0); // the patched images: trigger-patches reads the pixels
    expect(data.yielded).toHaveLength(2);
    expect(data.yielded[1]).toBe(Math.max(...shown) + 1);
    for (const i of shown)
      expect(report.previews.get(i)).toMatchObject({ kind: "image", width: 28, height: 28 });
  });
});

describe("previews: the second pass", () => {
  const image = (v: number): ImageTensor => ({
    height: 2,
    width: 2,
    channels: 1,
    data: new Float32Array(4).fill(v),
  });
  const sample = (id: string, v: number): Sample => ({
    id,
    digest: id,
    label: "a",
    image: image(v),
    source: null,
    annotations: [],
    metadata: {},
  });
  const items = [sample("s0", 0), sample("s1", 0.5), sample("s2", 1), sample("s3", 0.2)];
  const table = scanTableFromSamples(items, { classes: ["a", "b"] });
  const ensemble = {
    flagged: Uint8Array.from([0, 1, 1, 0]),
    risk: Float64Array.from([0, 0.9, 0.8, 0]),
  } as unknown as EnsembleResult;

  it("thumbnails the flagged samples and stops after the last one", async () => {
    const data = new WatchedDataset(items);
    const warnings: string[] = [];
    const previews = await buildPreviews(data, table, ensemble, new Map(), 10, warnings);
    expect([...previews.keys()]).toEqual([1, 2]);
    expect(data.yielded).toEqual([3]);
    expect(warnings).toEqual([]);
  });

  it("shows no thumbnail of a dataset that changed since the scan read it, and says so", async () => {
    const changed = memoryDataset([items[0]!, sample("other", 0.5), items[2]!, items[3]!]);
    const warnings: string[] = [];
    const previews = await buildPreviews(changed, table, ensemble, new Map(), 10, warnings);
    expect(previews.size).toBe(0);
    expect(warnings).toEqual([
      expect.stringMatching(/sample 1 is "other" on a second read, "s1" on the first/),
    ]);
  });
});

describe("image sketches: what a scan keeps of an image", () => {
  const square = (side: number, channels: number): ImageTensor => {
    const bytes = Uint8Array.from({ length: side * side * channels }, (_, k) => (k * 37) % 256);
    return imageFromBytes(bytes, side, side, channels);
  };

  it("keeps small images' 8-bit pixels exactly, and only the shape of large ones with a model", () => {
    const small = square(28, 1);
    const large = square(64, 3);
    const sketches = ImageSketches.of([small, undefined, large], SMALL_IMAGES_ONLY);
    expect(sketches.length).toBe(3);
    expect(sketches.pixels(0)).toEqual(imageToBytes(small));
    expect(sketches.values(0)).toEqual(small.data); // b / 255, as the reader gave it
    expect(sketches.whole(0)).toBe(true);
    expect(sketches.shape(1)).toBeUndefined();
    expect(sketches.shape(2)).toEqual({ height: 64, width: 64, channels: 3 });
    expect(sketches.pixels(2)).toBeUndefined();
    expect(sketches.pixelBytes).toBe(784);
  });

  it("box-filters large images down to what the proxy models take when the scan trains them", () => {
    const photo = square(224, 3);
    const sketches = ImageSketches.of([photo], PROXY_IMAGES);
    expect(sketches.keptShape(0)).toEqual({ height: 56, width: 56, channels: 3 });
    expect(sketches.whole(0)).toBe(false);
    // The first kept value: the mean of the top-left 4×4 block of channel 0.
    let sum = 0;
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) sum += photo.data[(y * 224 + x) * 3]!;
    expect(sketches.pixels(0)![0]).toBe(Math.round((sum / 16) * 255));
  });
});
