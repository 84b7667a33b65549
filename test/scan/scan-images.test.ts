import { PNG } from "pngjs";
import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { imageToBytes, type Sample } from "../../src/data/sample.js";
import { renderReportHtml } from "../../src/scan/report-html.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset } from "../../src/scan/scan.js";

import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

// An image dataset without a model: 4,000 Fashion-MNIST images, 2% of them stamped with a 3×3
// BadNets patch and relabeled Bag by the project's simulator. The scan builds the image proxy (an
// MLP on pixels for features, its probabilities averaged with a k-fold CNN's), skips the text
// detectors with the reason, finds the patched images, and shows them as inline PNG thumbnails of
// their own pixels.

// Issue 4's backdoor targets (measured here: precision 0.941, recall 1.000).
const PRECISION_FLOOR = 0.9;
const RECALL_FLOOR = 0.95;

describe.runIf(hasFashionMnist())("scan: Fashion-MNIST with a 3×3 patch, no model given", () => {
  const info = { classes: FASHION_MNIST_CLASSES };
  let samples: Sample[];
  let victims: Set<string>;
  beforeAll(async () => {
    const writer = new MemoryWriter();
    const gt = await simulateAttack(memoryDataset(fashionMnistSamples(4000), info), writer, {
      kind: "patch",
      target: "Bag",
      rate: 0.02,
      seed: 2,
    });
    samples = writer.samples;
    victims = new Set(gt.poisoned.map((r) => r.id));
  });

  it("finds the patched images without a model, and writes thumbnails of what it flags", async () => {
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
    const precision = tp / Math.max(1, flagged);
    const recall = tp / victims.size;
    console.log(
      `Fashion-MNIST 4,000, patch on ${victims.size}: ${flagged} flagged (${tp} patched), precision ` +
        `${precision.toFixed(3)}, recall ${recall.toFixed(3)}, proxy accuracy ` +
        `${report.representation.probabilities?.accuracy}, scan ${report.seconds.toFixed(1)} s`,
    );
    expect(precision).toBeGreaterThanOrEqual(PRECISION_FLOOR);
    expect(recall).toBeGreaterThanOrEqual(RECALL_FLOOR);

    const json = buildReportJson(report, { dataset: "fm-tflip.parquet", outDir: "out/scan" });
    const html = renderReportHtml(json, { previews: report.previews });
    // The spectral flags passed the exclusion check: a model trained without them takes the
    // patched "Bags" for what they were before the patch.
    const bags = report.exclusionCheck?.groups.filter((g) => g.class === "Bag") ?? [];
    expect(bags.length).toBeGreaterThan(0);
    for (const g of bags) {
      expect(g.verdict).toBe("poison (flags stand)");
      expect(g.meanOwnProbability).toBeLessThan(g.chance);
    }
    expect(json.exclusionCheck).toEqual(report.exclusionCheck);
    expect(html).toContain("<h2>Exclusion check</h2>");
    // The pixels say it too: one trigger, labeled Bag, in the bottom-right corner where the
    // simulator stamps its patch (x = y = 24 … 26).
    expect(json.imageTriggers).toEqual([
      expect.objectContaining({ target: "Bag", pattern: ["###", "###", "###"] }),
    ]);
    const region = (json.imageTriggers as { region: { x: number; y: number } }[])[0]!.region;
    expect(region.x).toBeGreaterThanOrEqual(20);
    expect(region.y).toBeGreaterThanOrEqual(20);
    expect(html).toContain("<h2>Image triggers</h2>");
    const top = json.flagged[0]!;
    const uri = new RegExp(
      `<code>${top.id}</code>[\\s\\S]*?src="data:image/png;base64,([A-Za-z0-9+/=]+)"`,
    ).exec(html);
    expect(uri).not.toBeNull();
    const png = PNG.sync.read(Buffer.from(uri![1]!, "base64"));
    expect([png.width, png.height]).toEqual([28, 28]);
    const pixels = imageToBytes(samples[top.index]!.image!);
    for (let p = 0; p < 28 * 28; p += 37) expect(png.data[p * 4]).toBe(pixels[p]);
  }, 600_000); // the proxy trains 7 models: ≈ 90 s on a busy 2-core machine
});
