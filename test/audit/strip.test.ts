import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  calibrateStrip,
  flaggedShare,
  stripEntropies,
  stripFlags,
  type BatchPredictor,
} from "../../src/audit/strip.js";
import { openOnnxClassifier, type OnnxClassifier } from "../../src/onnx/classifier.js";
import { fashionModel, fashionSamples, toImages, type FashionModel } from "../helpers/fm-models.js";

// STRIP on a predictor whose behaviour is known (the entropy arithmetic, the overlay rule), then
// on a real backdoored Fashion-MNIST model in ONNX Runtime: the threshold holds the chosen
// false-rejection rate on clean images it was not calibrated on, and catches inputs stamped with
// the simulator's patch.

describe("STRIP on a known predictor", () => {
  // Two pixels: the prediction is one-hot on class 0 when pixel 0 is saturated (a "trigger"),
  // else uniform over 4 classes — entropy 0 versus 2 bits.
  const predict: BatchPredictor = (x, n) => {
    const out = new Float32Array(n * 4);
    for (let i = 0; i < n; i++)
      if ((x[i * 2] as number) >= 1) out[i * 4] = 1;
      else out.fill(0.25, i * 4, i * 4 + 4);
    return Promise.resolve(out);
  };
  const background = { x: Float32Array.from([0.1, 0.2, 0.3, 0.0, 0.2, 0.5]), n: 3 };

  it("averages the overlay entropies in bits, adding with saturation by default", async () => {
    const inputs = { x: Float32Array.from([1, 0, 0.2, 0.9, 0.95, 0]), n: 3 };
    const added = await stripEntropies(predict, inputs, background, { perturbations: 8 });
    // Input 0 carries the trigger (1 + anything saturates to 1); input 1 never reaches 1 (0.2 + ≤ 0.3);
    // input 2 does only when overlaid on a background whose pixel 0 is ≥ 0.05 (0.1, 0.3, 0.2 — all of them).
    expect(Array.from(added)).toEqual([0, 2, 0]);
    const averaged = await stripEntropies(predict, inputs, background, {
      perturbations: 8,
      superimpose: "average",
    });
    expect(Array.from(averaged)).toEqual([2, 2, 2]); // 0.5·1 + 0.5·x_clean < 1: the trigger is washed out
  });

  it("sets the threshold at the FRR quantile of clean entropies and flags below it", async () => {
    const clean = { x: new Float32Array(200 * 2).fill(0.1), n: 200 };
    const cal = await calibrateStrip(predict, clean, background, { frr: 0.05 });
    expect(cal.threshold).toBe(2);
    expect(cal.observedFrr).toBe(0);
    expect(Array.from(stripFlags(Float64Array.from([0, 1.99, 2, 3]), 2))).toEqual([1, 1, 0, 0]);
    expect(flaggedShare(Float64Array.from([0, 1, 2, 3]), 1.5)).toBe(0.5);
    await expect(calibrateStrip(predict, clean, background, { frr: 1 })).rejects.toThrow(
      /--frr: must be in \(0, 1\)/,
    );
  });
});

describe("STRIP on a backdoored Fashion-MNIST model", () => {
  let dir: string;
  let fm: FashionModel;
  let model: OnnxClassifier;
  let predict: BatchPredictor;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-strip-"));
    fm = await fashionModel({ arch: "mlp", attack: "patch", target: 0, rate: 0.02, train: 8000, dir });
    model = await openOnnxClassifier(fm.onnxPath);
    predict = async (x, n) => (await model.run(x, n)).probs;
  });
  afterAll(async () => {
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps about the chosen FRR on unseen clean images and flags most patched ones", async () => {
    expect(fm.attackSuccessRate).toBeGreaterThan(0.8); // the backdoor works
    const test = toImages(await fashionSamples("test", 2000));
    const slice = (from: number, to: number) => ({ x: test.x.slice(from * 784, to * 784), n: to - from });
    const background = slice(0, 500);
    const cal = await calibrateStrip(predict, slice(500, 1250), background, { frr: 0.05, seed: 1 });
    expect(cal.observedFrr).toBeCloseTo(0.05, 2);
    // Fresh clean images: the rejection rate generalises.
    const unseen = await stripEntropies(predict, slice(1250, 2000), background, { seed: 2 });
    const frr = flaggedShare(unseen, cal.threshold);
    expect(frr).toBeGreaterThan(0.02);
    expect(frr).toBeLessThan(0.09);
    // The same test images stamped with the simulator's 3×3 patch (those not of the target class).
    const triggered = fm.triggered!;
    const stamped = await stripEntropies(predict, { x: triggered.x, n: triggered.count }, background, {
      seed: 3,
    });
    const detected = flaggedShare(stamped, cal.threshold);
    console.log(
      `STRIP (MLP, patch 2%, ASR ${fm.attackSuccessRate!.toFixed(3)}): threshold ${cal.threshold.toFixed(3)} bits, ` +
        `FRR ${frr.toFixed(3)} on unseen clean, detection ${detected.toFixed(3)} on ${triggered.count} patched`,
    );
    expect(detected).toBeGreaterThan(0.5);
  });
});
