// "The user's model" for the scan --model tests: the first n Fashion-MNIST training images,
// poisoned by one of the project's simulators (or clean), and a small CNN trained on them by
// bench:detect's own recipe (bench/detect-models.ts: 4 epochs, seed 1), exported to ONNX. The
// CNN is trained once per recipe and run, whichever test file asks first (fixture-cache.ts).
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trainedModelFor } from "../../bench/detect-models.js";
import { simulateAttack, type AttackSpec } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { cachedFixture } from "./fixture-cache.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "./real-data.js";

const info = { classes: [...FASHION_MNIST_CLASSES] };
const cleanSamples = new Map<number, Sample[]>();

export interface PoisonedImages {
  samples: Sample[];
  /** Ids of the samples the simulator poisoned. */
  truth: Set<string>;
}

/** The first `n` training images, poisoned by `spec` (unchanged for null). */
export async function poisonedFashion(n: number, spec: AttackSpec | null): Promise<PoisonedImages> {
  // Read once per process; the simulator copies what it changes, so the clean samples are shared.
  let clean = cleanSamples.get(n);
  if (clean === undefined) cleanSamples.set(n, (clean = fashionMnistSamples(n)));
  if (spec === null) return { samples: clean, truth: new Set() };
  const writer = new MemoryWriter();
  const gt = await simulateAttack(memoryDataset(clean, info), writer, spec);
  return { samples: writer.samples, truth: new Set(gt.poisoned.map((r) => r.id)) };
}

/**
 * Writes `<dir>/<name>.onnx`: the CNN bench:detect would train on `poisonedFashion(n, spec)`, and
 * returns its path.
 */
export async function userCnn(
  n: number,
  spec: AttackSpec | null,
  dir: string,
  name: string,
): Promise<string> {
  const { onnx } = await cachedFixture(
    "fm-user-cnn",
    { n, spec },
    async () => {
      const { samples } = await poisonedFashion(n, spec);
      const scratch = await mkdtemp(join(tmpdir(), "antidote-user-cnn-"));
      try {
        const model = await trainedModelFor("user", samples, info, scratch);
        return { onnx: new Uint8Array(await readFile(model.path)) };
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    },
    { sources: [import.meta.url] },
  );
  const path = join(dir, `${name}.onnx`);
  await writeFile(path, onnx);
  return path;
}
