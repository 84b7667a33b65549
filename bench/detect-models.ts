// The "user's model" for bench:detect: a small CNN trained on the poisoned variant itself — what
// a team that did not scan first would have trained — exported to ONNX with the project's own
// exporter and cached by variant and size, so a second run only scans.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DatasetInfo } from "../src/data/sample.js";
import type { Sample } from "../src/data/sample.js";
import { defaultArchitecture } from "../src/nn/architectures.js";
import { trainClassifier } from "../src/nn/train.js";
import { exportOnnx } from "../src/onnx/export.js";

export interface BenchModel {
  path: string;
  describe: string;
}

export async function trainedModelFor(
  variant: string,
  samples: readonly Sample[],
  info: Partial<DatasetInfo>,
  dir: string,
): Promise<BenchModel> {
  const path = join(dir, `${variant}-${samples.length}-cnn.onnx`);
  const describe = "CNN trained on the poisoned data";
  if (existsSync(path)) return { path, describe };
  const classes = info.classes ?? [];
  const n = samples.length;
  const x = new Float32Array(n * 784);
  const y = new Uint8Array(n);
  samples.forEach((s, i) => {
    // 28×28×1 images: H×W×C and C×H×W are the same order.
    x.set(s.image!.data, i * 784);
    y[i] = Math.max(0, classes.indexOf(String(s.label)));
  });
  const started = performance.now();
  const trained = await trainClassifier({ x, y, count: n }, defaultArchitecture("cnn"), {
    inputShape: [1, 28, 28],
    classes,
    epochs: 4,
    seed: 1,
  });
  writeFileSync(path, exportOnnx(trained.net));
  console.error(
    `trained ${path}: train accuracy ${trained.trainAccuracy.toFixed(3)} in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return { path, describe };
}
