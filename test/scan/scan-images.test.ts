import { PNG } from "pngjs";
import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { imageToBytes, type Sample } from "../../src/data/sample.js";
import { renderReportHtml } from "../../src/scan/report-html.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset } from "../../src/scan/scan.js";

function lowerBound(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
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

  it("flags under 1% of the images without a model, and writes thumbnails of what it flags", async () => {
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
    // Where the flipped images fall in the risk order: the share of samples with lower risk.
    const risk = report.ensemble.risk;
    const sorted = Float64Array.from(risk).sort();
    const percentiles = report.table.ids
      .map((id, i) => (victims.has(id) ? lowerBound(sorted, risk[i]!) / sorted.length : NaN))
      .filter((p) => !Number.isNaN(p))
      .sort((a, b) => a - b);
    const median = percentiles[Math.floor(percentiles.length / 2)]!;
    console.log(
      `Fashion-MNIST 4,000, Sneaker→Sandal on ${victims.size}: ${flagged} flagged (${tp} flipped), ` +
        `median risk percentile of the flipped ${median.toFixed(3)}, proxy accuracy ${report.representation.probabilities?.accuracy}, ` +
        `scan ${report.seconds.toFixed(1)} s`,
    );
    // The pixel proxy (≈ 79% accurate here) learns the systematic Sneaker→Sandal relabeling, so
    // the flipped images' own probabilities are not extreme enough to flag on (flags need the label
    // at < 0.5%, because the proxy is confidently wrong on ≈ 7% of clean images): without a model the
    // scan flags few images (measured: 14 of 4,000, none of them flipped; median risk percentile of the
    // flipped 0.63). Targeted flips need out-of-sample probabilities from a stronger model (--pred-probs).
    expect(flagged).toBeGreaterThan(0);
    expect(flagged / samples.length).toBeLessThan(0.01);

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
