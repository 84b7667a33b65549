// Fashion-MNIST as the feature-space detectors see it: the first n training images, poisoned by
// one of the project's simulators (or clean), with penultimate features from the built-in MLP
// proxy trained on them (poison included, as a scan would). The proxy's features are computed
// once per run for each (n, attack, featureModels), whichever test file asks first.
import { simulateAttack, type AttackSpec } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { imageProxyFeatures } from "../../src/detect/proxy-image.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import type { ScanTable } from "../../src/detect/types.js";
import type { Sample } from "../../src/data/sample.js";
import { cachedFixture } from "./fixture-cache.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "./real-data.js";

export interface FeatureVariant {
  table: ScanTable;
  /** 1 where the simulator poisoned the sample. */
  poisoned: Uint8Array;
}

/** The first n Fashion-MNIST training images, poisoned by `spec` (or clean), as a ScanTable with no representation. */
export async function fashionMnistVariant(
  n: number,
  spec: AttackSpec | null,
): Promise<FeatureVariant & { samples: Sample[] }> {
  let samples = fashionMnistSamples(n);
  const poisonedIds = new Set<string>();
  if (spec !== null) {
    const writer = new MemoryWriter();
    const gt = await simulateAttack(memoryDataset(samples, { classes: FASHION_MNIST_CLASSES }), writer, spec);
    samples = writer.samples;
    for (const p of gt.poisoned) poisonedIds.add(p.id);
  }
  const table = scanTableFromSamples(samples, { classes: FASHION_MNIST_CLASSES });
  return { table, samples, poisoned: Uint8Array.from(samples, (s) => (poisonedIds.has(s.id) ? 1 : 0)) };
}

/** `featureModels` > 1 also fills `table.featureReplicates`, as the scan's image proxy does. */
export async function fashionMnistFeatures(
  n: number,
  spec: AttackSpec | null,
  featureModels = 1,
): Promise<FeatureVariant> {
  const { table, samples, poisoned } = await fashionMnistVariant(n, spec);
  // The proxy's training is the expensive part: done once per run for each recipe (fixture-cache.ts).
  const proxy = await cachedFixture(
    "fm-proxy-features",
    { n, spec, featureModels },
    () => {
      const x = new Float32Array(n * 784);
      samples.forEach((s, i) => x.set(s.image!.data, i * 784));
      const r = imageProxyFeatures(x, table.labels, FASHION_MNIST_CLASSES, {
        outOfSample: false,
        featureModels,
      });
      return { features: r.features, featureDims: r.featureDims, featureReplicates: r.featureReplicates };
    },
    { sources: [import.meta.url] },
  );
  table.features = proxy.features;
  table.featureDims = proxy.featureDims;
  if (featureModels > 1) table.featureReplicates = proxy.featureReplicates;
  return { table, poisoned };
}
