import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AttackSpec } from "../../src/attack/index.js";
import { memoryDataset } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset, type ScanReport } from "../../src/scan/scan.js";
import { poisonedFashion, userCnn } from "../helpers/fm-user-model.js";
import { FASHION_MNIST_CLASSES, hasFashionMnist } from "../helpers/real-data.js";

// The scan with the user's own model, as a team that trained before scanning would have it: a
// small CNN trained (4 epochs) on the poisoned 12,000 Fashion-MNIST images themselves, exported to
// ONNX by the project's exporter and given with --model. Its penultimate layer (exposed by the graph
// edit) has learned the trigger, so SPECTRE separates the poison at 1% (at 0.5% it has learned it so
// well that the patched images sit inside the Bag cluster, and only the pixels show them: the
// trigger-patches detector); its probabilities, in-sample,
// are averaged over one-pixel shifts of each image and with two out-of-sample opinions from those
// features (a linear probe, retrained without the labels the opinions doubt, and the labels of
// each sample's nearest neighbours), so confident learning finds label flips; on the clean set the
// same recipe must stay quiet. Targets (issue 4): backdoors
// precision ≥ 0.90, recall ≥ 0.95; flips 0.85 / 0.90; clean FPR ≤ 0.5%.

const N = 12_000;
const info = { classes: [...FASHION_MNIST_CLASSES] };
let dir: string;
let clean: Sample[];

// The variants, and the CNN bench:detect trains on each (bench/detect-models.ts) — trained once per
// run and recipe (test/helpers/fm-user-model.ts) before the tests, so that each test's time limit
// is its scan's.
const VARIANTS = {
  patch: { kind: "patch", target: "Bag", rate: 0.01, seed: 1 },
  "patch-half": { kind: "patch", target: "Bag", rate: 0.005, seed: 1 },
  targeted: { kind: "targeted-flip", from: "Sneaker", to: "Sandal", rate: 0.03, seed: 1 },
  flips: { kind: "label-flip", rate: 0.1, seed: 1 },
  clean: null,
} satisfies Record<string, AttackSpec | null>;
type Variant = keyof typeof VARIANTS;
const models = new Map<Variant, string>();
const trainedModel = (name: Variant): string => models.get(name)!;
const poisoned = (name: Exclude<Variant, "clean">) => poisonedFashion(N, VARIANTS[name]);

function scored(report: ScanReport, truth: Set<string>) {
  let tp = 0;
  let flagged = 0;
  report.ensemble.flagged.forEach((f, i) => {
    if (f !== 1) return;
    flagged++;
    if (truth.has(report.table.ids[i]!)) tp++;
  });
  return {
    flagged,
    precision: flagged === 0 ? 0 : tp / flagged,
    recall: truth.size === 0 ? NaN : tp / truth.size,
    fpr: (flagged - tp) / (report.table.ids.length - truth.size),
  };
}

describe.runIf(hasFashionMnist())("scan --model: a CNN trained on the data, 12k Fashion-MNIST", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-scan-model-"));
    clean = (await poisonedFashion(N, null)).samples;
    for (const name of Object.keys(VARIANTS) as Variant[])
      models.set(name, await userCnn(N, VARIANTS[name], dir, name));
  }, 1_500_000); // five CNNs on a cold fixture cache: ≈ 1 min each on a quiet 2-core machine
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("finds a 1% 3×3 patch backdoor in the model's penultimate features", async () => {
    const { samples, truth } = await poisoned("patch");
    const model = trainedModel("patch");
    const report = await scanDataset(memoryDataset(samples, info), { model, seed: 0 });
    expect(report.representation.features?.from).toMatch(/patch\.onnx/);
    const s = scored(report, truth);
    console.log(
      `patch 1%: ${s.flagged} flagged, precision ${s.precision.toFixed(3)}, recall ${s.recall.toFixed(3)}, ` +
        `scan ${report.seconds.toFixed(1)} s`,
    );
    // Measured: precision 0.968, recall 1.000 — 124 flagged, 4 of them natural bags with a bright
    // corner (0.991 / 0.950 before the pixel trigger detector joined: it adds the patched images the
    // features left in the Bag cluster).
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.95);
  }, 240_000);

  it("finds a 0.5% patch the model learned too well for its features to show, in the pixels", async () => {
    const { samples, truth } = await poisoned("patch-half");
    const model = trainedModel("patch-half");
    const report = await scanDataset(memoryDataset(samples, info), { model, seed: 0 });
    const s = scored(report, truth);
    const flaggedBy = (name: string): number =>
      report.results.find((r) => r.detector === name)?.flagged.reduce((a, b) => a + b, 0) ?? 0;
    console.log(
      `patch 0.5%: ${s.flagged} flagged, precision ${s.precision.toFixed(3)}, recall ${s.recall.toFixed(3)}; ` +
        `spectre ${flaggedBy("spectre")}, activation clustering ${flaggedBy("activation-clustering")}, ` +
        `trigger patches ${flaggedBy("trigger-patches")}`,
    );
    // The CNN has learned the patch (the scan's probabilities, model and probe, give nine in ten of
    // the patched images p(Bag) ≥ 0.95), and its penultimate
    // features put them inside the Bag cluster: SPECTRE and activation clustering flagged none when
    // this was measured. The pixels still show it. Measured (bench:detect): 1.000 / 0.967.
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(s.recall).toBeGreaterThanOrEqual(0.95);
    const json = buildReportJson(report, { dataset: "fm-patch-half", outDir: "out/scan" });
    expect(json.imageTriggers).toEqual([expect.objectContaining({ target: "Bag" })]);
  }, 240_000);

  it("finds 3% targeted flips through the model's probabilities averaged with a probe on its features", async () => {
    const { samples, truth } = await poisoned("targeted");
    const model = trainedModel("targeted");
    const report = await scanDataset(memoryDataset(samples, info), { model, seed: 0 });
    expect(report.representation.probabilities?.kind).toBe("model-and-probe");
    const s = scored(report, truth);
    console.log(
      `targeted flips 3%: ${s.flagged} flagged, precision ${s.precision.toFixed(3)}, recall ${s.recall.toFixed(3)}`,
    );
    // Measured (bench:detect, same recipe): precision 0.960, recall 0.936 (0.886 / 0.911 before
    // shifted views and neighbours' labels); the model's own probabilities alone (in-sample)
    // found none. Targets: 0.85 / 0.90.
    expect(s.precision).toBeGreaterThanOrEqual(0.85);
    expect(s.recall).toBeGreaterThanOrEqual(0.9);
  }, 240_000);

  it("finds 10% random flips through the model's shifted views, a cleaned probe and neighbours' labels", async () => {
    const { samples, truth } = await poisoned("flips");
    const model = trainedModel("flips");
    const report = await scanDataset(memoryDataset(samples, info), { model, seed: 0 });
    expect(report.representation.model?.views).toBe(5);
    expect(report.representation.probabilities?.from).toMatch(/nearest neighbours/);
    const s = scored(report, truth);
    console.log(
      `random flips 10%: ${s.flagged} flagged, precision ${s.precision.toFixed(3)}, recall ${s.recall.toFixed(3)}`,
    );
    // Measured (bench:detect, same recipe): 0.869 / 0.903; with the model's probabilities and a
    // plain probe only, 0.836 / 0.860. Targets: 0.85 / 0.90.
    expect(s.precision).toBeGreaterThanOrEqual(0.85);
    expect(s.recall).toBeGreaterThanOrEqual(0.9);
  }, 240_000);

  it("flags at most 0.5% of the clean images", async () => {
    const model = trainedModel("clean");
    const report = await scanDataset(memoryDataset(clean, info), { model, seed: 0 });
    const s = scored(report, new Set());
    console.log(`clean: ${s.flagged} flagged (${(100 * s.fpr).toFixed(2)}%)`);
    expect(s.fpr).toBeLessThanOrEqual(0.005);
  }, 240_000);
});
