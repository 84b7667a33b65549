// checkTranslation: a real classifier (trained here on Fashion-MNIST, exported to ONNX) passes on
// real test images; a translation that computes something else, even slightly, is stopped with
// a message naming the output and the difference; probabilities are compared as probabilities.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Tensor, Tensor2D } from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkTranslation } from "../../src/audit/equivalence.js";
import { translateOnnx, type TranslatedModel } from "../../src/audit/onnx-to-tf.js";
import { AntidoteError } from "../../src/errors.js";
import { Rng } from "../../src/math/rng.js";
import { loadTf, type Tf } from "../../src/nn/tf.js";
import { decodeOnnxModel, onnx, readOnnxModel, type OnnxModelFile } from "../../src/onnx/model-file.js";
import { fashionModel, fashionSamples, toImages } from "../helpers/fm-models.js";

let dir: string;
let cnn: OnnxModelFile;
let images: Float32Array;
let tf: Tf;
const N = 64;

beforeAll(async () => {
  tf = await loadTf();
  dir = await mkdtemp(join(tmpdir(), "antidote-equivalence-"));
  // Conv → ReLU → MaxPool (×2) → Flatten → Gemm → ReLU → Gemm, trained on 1,000 images.
  const trained = await fashionModel({ arch: "cnn", train: 1000, epochs: 1, dir });
  cnn = readOnnxModel(trained.onnxPath);
  images = toImages(await fashionSamples("test", N)).x;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The same translation with `change` applied to its class scores. */
function tampered(tr: TranslatedModel, change: (logits: Tensor2D) => Tensor2D): TranslatedModel {
  return { ...tr, logits: (x: Tensor) => change(tr.logits(x)) };
}

async function expectUnsupported(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AntidoteError);
  expect((e as AntidoteError).code).toBe("MODEL_UNSUPPORTED");
  for (const f of fragments) expect((e as AntidoteError).message).toContain(f);
}

describe("checkTranslation", () => {
  it("passes a trained Fashion-MNIST CNN on real test images", async () => {
    const tr = await translateOnnx(cnn);
    expect(tr.ops).toEqual(["Conv", "Flatten", "Gemm", "MaxPool", "Relu"]);
    expect(tr.numClasses).toBe(10);
    const { maxAbsDiff } = await checkTranslation(cnn, tr, images, N);
    expect(maxAbsDiff).toBeLessThan(1e-4);
    tr.dispose();
  });

  it("stops a translation whose scores are off by 1e-3, naming the output and the difference", async () => {
    const tr = await translateOnnx(cnn);
    const shifted = tampered(tr, (l) => tf.add(l, 1e-3));
    await expectUnsupported(
      checkTranslation(cnn, shifted, images, N),
      `${cnn.path}: the TF.js translation of output "logits" differs from onnxruntime by up to 1.00e-3`,
      "on 64 samples (tolerance 1e-4)",
    );
    // A looser tolerance accepts it and reports the difference it measured.
    const { maxAbsDiff } = await checkTranslation(cnn, shifted, images, N, 1e-2);
    expect(maxAbsDiff).toBeGreaterThan(9e-4);
    expect(maxAbsDiff).toBeLessThan(1.1e-3);
    tr.dispose();
  });

  it("compares probabilities when the model ends in Softmax", async () => {
    const model = softmaxModel();
    const tr = await translateOnnx(model);
    expect(tr.outputIsProbabilities).toBe(true);
    const x = randomInputs(8 * 12, 1);
    expect((await checkTranslation(model, tr, x, 8)).maxAbsDiff).toBeLessThan(1e-4);
    // Adding a constant to every score leaves the probabilities, so this still passes...
    const rowShift = tampered(tr, (l) => tf.add(l, 3));
    expect((await checkTranslation(model, rowShift, x, 8)).maxAbsDiff).toBeLessThan(1e-4);
    // ...while raising one class's score changes them.
    const oneClass = tampered(tr, (l) => tf.add(l, tf.tensor1d([0.5, 0, 0, 0])));
    await expectUnsupported(
      checkTranslation(model, oneClass, x, 8),
      'output "probs"',
      "in its probabilities",
    );
    tr.dispose();
  });

  it("runs a graph with a fixed batch size in chunks of that size", async () => {
    const model = softmaxModel(1);
    const tr = await translateOnnx(model);
    expect((await checkTranslation(model, tr, randomInputs(5 * 12, 2), 5)).maxAbsDiff).toBeLessThan(1e-4);
    tr.dispose();
  });

  it("rejects a batch whose length does not match n samples of the input shape", async () => {
    const tr = await translateOnnx(cnn);
    await expect(checkTranslation(cnn, tr, images.subarray(1), N)).rejects.toThrow(
      /63 samples|are not 64 samples of shape \[1, 28, 28\]/,
    );
    tr.dispose();
  });
});

function randomInputs(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** x [batch, 12] → Gemm → Softmax "probs" [batch, 4]; `batch` fixed when given. */
function softmaxModel(batch?: number): OnnxModelFile {
  const rng = new Rng(7);
  const w = Array.from({ length: 48 }, () => rng.normal() * 0.5);
  const info = (name: string, last: number): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: [batch === undefined ? { dimParam: "N" } : { dimValue: batch }, { dimValue: last }] },
      },
    },
  });
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 13 }],
    graph: {
      name: "softmax",
      node: [
        {
          opType: "Gemm",
          input: ["x", "w"],
          output: ["g"],
          name: "fc",
          attribute: [{ name: "transB", type: 2, i: 1 }],
        },
        { opType: "Softmax", input: ["g"], output: ["probs"], name: "softmax" },
      ],
      initializer: [{ name: "w", dims: [4, 12], dataType: onnx.TensorProto.DataType.FLOAT, floatData: w }],
      input: [info("x", 12)],
      output: [info("probs", 4)],
    },
  });
  return decodeOnnxModel(onnx.ModelProto.encode(proto).finish(), "softmax.onnx");
}
