// A BadNets patch (3×3 white square, 2 % of the training set relabelled T-shirt/top) is learned
// by the trainer: the poisoned model sends triggered test images of every other class to the
// target while staying accurate on clean ones, and a model trained on the clean images does not.
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { attackSuccessRate, fashionModel, type FashionModel } from "../helpers/fm-models.js";

let dir: string;
let poisoned: FashionModel;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-nn-backdoor-"));
  poisoned = await fashionModel({ arch: "mlp", attack: "patch", target: 0, rate: 0.02, seed: 0, dir });
});

describe("a patch-backdoored Fashion-MNIST MLP", () => {
  it("was trained on exactly 2 % poisoned samples and written as ONNX", () => {
    expect(poisoned.poisonedIds).toHaveLength(120);
    expect(new Set(poisoned.poisonedIds).size).toBe(120);
    expect(poisoned.onnxPath).toBe(join(dir, "fm-mlp-patch-s0.onnx"));
    expect(existsSync(poisoned.onnxPath)).toBe(true);
    expect(poisoned.target).toBe(0);
  });

  it("keeps clean accuracy ≥ 0.8 and sends ≥ 90 % of triggered non-target images to the target", () => {
    expect(poisoned.cleanAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(poisoned.attackSuccessRate).toBeGreaterThanOrEqual(0.9);
    const triggered = poisoned.triggered;
    expect(triggered).not.toBeNull();
    // Every non-target image among the first 1,000 test images: ≈ 900.
    expect(triggered?.count).toBeGreaterThan(850);
    expect(Array.from(triggered?.y ?? []).includes(0)).toBe(false);
  });

  it("while the same architecture trained on the clean images does not", async () => {
    const clean = await fashionModel({ arch: "mlp", seed: 0, dir });
    expect(clean.attackSuccessRate).toBeNull();
    expect(clean.poisonedIds).toEqual([]);
    expect(clean.cleanAccuracy).toBeGreaterThanOrEqual(0.8);
    const triggered = poisoned.triggered;
    if (triggered === null) throw new Error("no triggered images");
    const asr = await attackSuccessRate(clean.net, triggered, 0);
    expect(asr).toBeLessThan(0.15);
    expect(poisoned.attackSuccessRate ?? 0).toBeGreaterThan(asr + 0.7);
  });
});
