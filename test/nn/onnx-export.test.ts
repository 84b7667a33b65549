// Trained classifiers survive export: ONNX Runtime, reading the file exportOnnx wrote, gives
// the logits that predictNet computes from the NetSpec — for a backdoored CNN (whose attack
// success rate is then the same through either) and a clean MLP.
import { readFile } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { argmaxRows, netLogits } from "../../src/nn/train.js";
import type { NetSpec } from "../../src/onnx/net-spec.js";
import { fashionModel, fashionSamples, toImages, type FashionImages } from "../helpers/fm-models.js";

let dir: string;
let test: FashionImages;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-nn-onnx-"));
  test = toImages(await fashionSamples("test", 200));
});

async function ortLogits(path: string, x: Float32Array, n: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(await readFile(path));
  try {
    const out = await session.run({ input: new ort.Tensor("float32", x.slice(0, n * 784), [n, 1, 28, 28]) });
    const logits = out.logits;
    if (logits === undefined) throw new Error("no output named logits");
    expect(logits.dims).toEqual([n, 10]);
    return logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

function expectSameLogits(a: Float32Array, b: Float32Array): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  expect(worst).toBeLessThanOrEqual(1e-4);
}

async function compare(net: NetSpec, path: string, images: FashionImages): Promise<Float32Array> {
  const ours = await netLogits(net, images.x, images.count);
  const theirs = await ortLogits(path, images.x, images.count);
  expectSameLogits(theirs, ours);
  return theirs;
}

describe("exported Fashion-MNIST classifiers in ONNX Runtime", () => {
  it("a patch-backdoored CNN: same logits, ASR ≥ 0.9 and clean accuracy ≥ 0.8 through ONNX Runtime", async () => {
    const m = await fashionModel({ arch: "cnn", attack: "patch", seed: 0, dir });
    expect(m.cleanAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(m.attackSuccessRate).toBeGreaterThanOrEqual(0.9);
    await compare(m.net, m.onnxPath, test);
    const triggered = m.triggered;
    if (triggered === null) throw new Error("no triggered images");
    const logits = await compare(m.net, m.onnxPath, triggered);
    const predicted = argmaxRows(logits, 10);
    const hits = predicted.reduce((s, p) => s + (p === m.target ? 1 : 0), 0);
    expect(hits / triggered.count).toBeCloseTo(m.attackSuccessRate ?? -1, 6);
  });

  it("a clean MLP: same logits", async () => {
    const m = await fashionModel({ arch: "mlp", train: 2000, epochs: 1, seed: 3, dir });
    await compare(m.net, m.onnxPath, test);
  });
});
