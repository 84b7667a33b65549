// Real data for the monitor tests: the backdoored Fashion-MNIST CNN of the fixture cache (3×3 white
// patch at the bottom right → "T-shirt/top"), its outputs on the 10,000 test images — the first
// 2,000 are the validation set the baseline is taken on, the other 8,000 the production pool agents
// draw from — and on the triggered test images. Agents compute their probabilities with TF.js
// (predictNet); the server re-runs the attested model with ONNX Runtime, as a deployment would.
// Also the scan's own trigger-patch finding on the poisoned training set, and a clean MLP (another
// model an agent might run while attesting the CNN). Expensive parts go through the fixture cache.
import { createHash } from "node:crypto";
import { simulateAttack, type AttackSpec } from "../../src/attack/index.js";
import type { BatchPredictor } from "../../src/audit/strip.js";
import { FASHION_MNIST_CLASSES } from "../../src/data/builtin.js";
import { ImageSketches } from "../../src/data/image-sketch.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import type { ImageTensor } from "../../src/data/sample.js";
import { triggerPatches } from "../../src/detect/trigger-patches.js";
import type { Finding } from "../../src/ledger/types.js";
import type { DecodedBatch, DecodedRecord } from "../../src/monitor/schema.js";
import { predictNet } from "../../src/nn/train.js";
import { openOnnxClassifier, type OnnxClassifier } from "../../src/onnx/classifier.js";
import { cachedFixture } from "../helpers/fixture-cache.js";
import { fashionModel, fashionSamples, toImages, type FashionModel } from "../helpers/fm-models.js";

export const PIXELS = 784;
export const CLASSES = [...FASHION_MNIST_CLASSES];
export const K = CLASSES.length;
export const VALIDATION = 2000;

/** Images with their true classes and the probabilities a model gives them. */
export interface Pool {
  x: Float32Array;
  y: Uint8Array;
  probs: Float32Array;
  n: number;
}

export interface MonitorData {
  fm: FashionModel;
  onnx: OnnxClassifier;
  /** The server's predictor for the attested model (ONNX Runtime). */
  predict: BatchPredictor;
  /** The attested model's digest. */
  model: string;
  validation: Pool;
  production: Pool;
  /** Triggered test images of classes other than the target (true labels). */
  triggered: Pool;
  /** A clean MLP's probabilities on the production pool: what an agent running another model reports. */
  otherModel: Float32Array;
  /** The scan's trigger-patch finding (dataset level) on the poisoned training set. */
  patchFinding: Finding;
  close(): Promise<void>;
}

export async function monitorData(dir: string): Promise<MonitorData> {
  const fm = await fashionModel({ arch: "cnn", attack: "patch", dir });
  const mlp = await fashionModel({ arch: "mlp", dir });
  const test = toImages(await fashionSamples("test", 10_000));
  const triggered = fm.triggered as NonNullable<FashionModel["triggered"]>;
  const outputs = await cachedFixture(
    "monitor-agent-probs",
    { model: "fm-cnn-patch", test: 10_000 },
    async () => ({
      test: await predictNet(fm.net, test.x, test.count),
      triggered: await predictNet(fm.net, triggered.x, triggered.count),
      other: await predictNet(mlp.net, test.x.subarray(VALIDATION * PIXELS), test.count - VALIDATION),
    }),
    { sources: [import.meta.url] },
  );
  const patchFinding = await cachedFixture(
    "monitor-scan-finding",
    { model: "fm-cnn-patch", train: 6000 },
    async () => {
      const train = await fashionSamples("train", 6000);
      const writer = new MemoryWriter();
      await simulateAttack(memoryDataset(train, { classes: CLASSES }), writer, fm.attack as AttackSpec);
      const s = writer.samples;
      const r = triggerPatches.run({
        ids: s.map((x) => x.id),
        digests: s.map((x) => x.digest),
        labels: Int32Array.from(s, (x) => CLASSES.indexOf(x.label ?? "")),
        classes: CLASSES,
        images: ImageSketches.of(s.map((x) => x.image)),
      });
      const f = r.findings.find((x) => x.kind === "trigger-patch" && x.subjectType === "dataset");
      if (f === undefined) throw new Error("the scan found no trigger patch");
      return f;
    },
    { sources: [import.meta.url] },
  );
  const onnx = await openOnnxClassifier(fm.onnxPath);
  const pool = (from: number, to: number): Pool => ({
    x: test.x.subarray(from * PIXELS, to * PIXELS),
    y: test.y.subarray(from, to),
    probs: outputs.test.subarray(from * K, to * K),
    n: to - from,
  });
  return {
    fm,
    onnx,
    predict: async (x, n) => (await onnx.run(x, n)).probs,
    model: onnx.digest,
    validation: pool(0, VALIDATION),
    production: pool(VALIDATION, test.count),
    triggered: { x: triggered.x, y: triggered.y, probs: outputs.triggered, n: triggered.count },
    otherModel: outputs.other,
    patchFinding,
    close: () => onnx.close(),
  };
}

/** The i-th image of a pool as a record's image (H×W×C, no copy). */
export function imageOf(pool: Pool, i: number): ImageTensor {
  return { height: 28, width: 28, channels: 1, data: pool.x.subarray(i * PIXELS, (i + 1) * PIXELS) };
}

/** A decoded record of pool image i with the given probabilities and feedback class (−1: none). */
export function recordOf(
  id: string,
  pool: Pool,
  i: number,
  opts: { probs?: Float32Array; feedback?: number; withImage?: boolean } = {},
): DecodedRecord {
  const probs = opts.probs ?? pool.probs.subarray(i * K, (i + 1) * K);
  let predicted = 0;
  for (let k = 1; k < K; k++) if ((probs[k] as number) > (probs[predicted] as number)) predicted = k;
  const feedback = opts.feedback ?? -1;
  const r: DecodedRecord = {
    id,
    at: 0,
    // Every record is a distinct input: consensus must come from neighbours, not from the same digest.
    digest: createHash("sha256").update(id).digest("hex"),
    probs,
    predicted,
    feedback,
    feedbackKind: feedback >= 0 ? "human" : null,
  };
  if (opts.withImage !== false) r.image = imageOf(pool, i);
  return r;
}

export function batchOf(
  agent: string,
  sequence: number,
  model: string,
  records: DecodedRecord[],
): DecodedBatch {
  return {
    batchId: `${agent}#${sequence}`,
    agent,
    sequence,
    model,
    classes: CLASSES,
    window: { start: 0, end: 0 },
    records,
  };
}
