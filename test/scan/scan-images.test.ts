import { PNG } from "pngjs";
import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { imageToBytes, type Sample } from "../../src/data/sample.js";
import { renderReportHtml } from "../../src/scan/report-html.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset } from "../../src/scan/scan.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

// An image dataset without a model: 4,000 Fashion-MNIST images with 80 of its ~410 Sneakers
// relabeled Sandal (2% of the images). The scan builds the image proxy (an MLP on pixels, for
// probabilities and features), skips the text detectors with the reason, and shows flagged
// images as inline PNG thumbnails of their own pixels.

describe.runIf(hasFashionMnist())("scan: Fashion-MNIST with a targeted flip, no model given", () => {
  const info = { classes: FASHION_MNIST_CLASSES };
  let samples: Sample[];
  let victims: Set<string>;
  beforeAll(async () => {
    const writer = new MemoryWriter();
    const gt = await simulateAttack(memoryDataset(fashionMnistSamples(4000), info), writer, {
      kind: "targeted-flip",
      from: "Sneaker",
      to: "Sandal",
      rate: 0.02,
      seed: 2,
    });
    samples = writer.samples;
    victims = new Set(gt.poisoned.map((r) => r.id));
  });

  it("flags flipped images and writes their thumbnails", async () => {
    const report = await scanDataset(memoryDataset(samples, info), { seed: 0 });
    expect(report.representation.probabilities?.from).toMatch(/MLP/);
    expect(report.representation.features).toMatchObject({ dims: 64 });
    expect(report.skipped).toEqual(
      expect.arrayContaining([
        { detector: "trigger-tokens", reason: "the dataset has no text" },
        { detector: "near-duplicates", reason: "the dataset has no text" },
      ]),
    );
    let tp = 0;
    let flagged = 0;
    report.ensemble.flagged.forEach((f, i) => {
      if (f !== 1) return;
      flagged++;
      if (victims.has(report.table.ids[i]!)) tp++;
    });
    console.log(
      `Fashion-MNIST 4,000, Sneaker→Sandal on ${victims.size}: ${flagged} flagged, recall ${(tp / victims.size).toFixed(3)}, ` +
        `proxy accuracy ${report.representation.probabilities?.accuracy}, scan ${report.seconds.toFixed(1)} s`,
    );
    // Recall measured 0.79. Precision is the pixel proxy's limit (≈ 77% accurate on 4,000 images; its
    // confident mistakes between shirts, pullovers and coats look like flips), not the ensemble's.
    expect(tp / victims.size).toBeGreaterThan(0.6);
    expect(flagged / samples.length).toBeLessThan(0.2);

    const json = buildReportJson(report, { dataset: "fm-tflip.parquet", outDir: "out/scan" });
    const html = renderReportHtml(json, { previews: report.previews });
    const top = json.flagged[0]!;
    const uri = new RegExp(
      `<code>${top.id}</code>[\\s\\S]*?src="data:image/png;base64,([A-Za-z0-9+/=]+)"`,
    ).exec(html);
    expect(uri).not.toBeNull();
    const png = PNG.sync.read(Buffer.from(uri![1]!, "base64"));
    expect([png.width, png.height]).toEqual([28, 28]);
    const pixels = imageToBytes(samples[top.index]!.image!);
    for (let p = 0; p < 28 * 28; p += 37) expect(png.data[p * 4]).toBe(pixels[p]);
  });
});
