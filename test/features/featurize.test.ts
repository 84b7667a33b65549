import { describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import type { Sample } from "../../src/data/sample.js";
import { memoryDataset } from "../../src/data/memory.js";
import {
  createFeaturizer,
  detectKind,
  featurize,
  featurizeText,
  fitFeaturizer,
  transformDataset,
} from "../../src/features/featurize.js";
import { matrixRow, type FeatureMatrix } from "../../src/features/matrix.js";
import { mergeTextStats } from "../../src/features/text.js";
import { sparseNorm } from "../../src/math/sparse.js";
import { fashionMnistSamples, hasFashionMnist, spamAssassinSamples } from "../helpers/real-data.js";
import { nearestCentroidAccuracy } from "./centroid.js";

const rows = (m: FeatureMatrix) => Array.from({ length: m.rows }, (_, i) => matrixRow(m, i));

async function rejects(p: Promise<unknown>): Promise<AntidoteError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function tabular(id: string, values: number[], label: string | null = null): Sample {
  return {
    id,
    digest: id,
    label,
    features: Float32Array.from(values),
    source: null,
    annotations: [],
    metadata: {},
  };
}

describe("featurize", () => {
  it("turns text into 256 projected TF-IDF dims by default, rows in dataset order", async () => {
    const samples = spamAssassinSamples(300);
    const m = await featurize(memoryDataset(samples));
    expect([m.rows, m.cols, m.data.length]).toEqual([300, 256, 300 * 256]);
    expect(m.ids).toEqual(samples.map((s) => s.id));
    // Projected unit vectors keep about unit norm, and the features still separate the classes.
    const norms = rows(m).map((r) => Math.sqrt(r.reduce((a, v) => a + v * v, 0)));
    expect(norms.reduce((a, b) => a + b, 0) / norms.length).toBeCloseTo(1, 1);
    expect(
      nearestCentroidAccuracy(
        rows(m),
        samples.map((s) => s.label),
        256,
      ),
    ).toBeGreaterThan(0.8);
    const wide = await featurize(memoryDataset(samples), { dims: 64, seed: 9 });
    expect(wide.cols).toBe(64);
  });

  it.runIf(hasFashionMnist())(
    "keeps image pixels as they are unless dims asks for a projection",
    async () => {
      const samples = fashionMnistSamples(400);
      const m = await featurize(memoryDataset(samples));
      expect([m.rows, m.cols]).toEqual([400, 784]);
      expect(matrixRow(m, 7)).toEqual(samples[7]!.image!.data);
      const std = await featurize(memoryDataset(samples), { image: { standardize: "channel" } });
      const mean = std.data.reduce((a, b) => a + b, 0) / std.data.length;
      expect(Math.abs(mean)).toBeLessThan(1e-4);
      const small = await featurize(memoryDataset(samples), { dims: 64 });
      expect(small.cols).toBe(64);
      expect(
        nearestCentroidAccuracy(
          rows(small),
          samples.map((s) => s.label),
          64,
          "euclidean",
        ),
      ).toBeGreaterThan(0.5);
    },
  );

  it("standardises tabular rows, naming columns from the dataset info in errors", async () => {
    const data = [tabular("a", [1, 10]), tabular("b", [3, 10]), tabular("c", [5, 10])];
    const m = await featurize(memoryDataset(data, { featureNames: ["dose", "batch"] }));
    expect(Array.from(m.data).map((v) => Number(v.toFixed(4)))).toEqual([-1.2247, 0, 0, 0, 1.2247, 0]);
    const bad = memoryDataset([...data, tabular("d", [NaN, 10])], { featureNames: ["dose", "batch"] });
    const err = await rejects(featurize(bad));
    expect(err.code).toBe("ROW_MALFORMED");
    expect(err.message).toContain('"d"');
    expect(err.message).toContain('"dose"');
  });

  it("detects the kind from the first sample and refuses what it cannot featurize", async () => {
    expect(await detectKind(memoryDataset(spamAssassinSamples(2)))).toBe("text");
    expect(await detectKind(memoryDataset([tabular("t", [1])]))).toBe("tabular");
    const empty = await rejects(featurize(memoryDataset([])));
    expect(empty.code).toBe("USAGE");
    const bare: Sample = {
      id: "nothing-here",
      digest: "",
      label: null,
      source: null,
      annotations: [],
      metadata: {},
    };
    expect((await rejects(featurize(memoryDataset([bare])))).message).toContain("nothing-here");
    // An explicit kind that the samples do not have names the sample.
    const wrong = await rejects(featurize(memoryDataset([tabular("row-1", [1])]), { kind: "text" }));
    expect(wrong.message).toContain("row-1");
    expect((await rejects(featurize(memoryDataset([tabular("x", [1])]), { dims: 0 }))).code).toBe("USAGE");
  });

  it("fits shards apart and merges their statistics into the same features as one fit", async () => {
    const samples = spamAssassinSamples(200);
    const whole = await fitFeaturizer(memoryDataset(samples), { kind: "text" });
    const shardA = createFeaturizer("text");
    const shardB = createFeaturizer("text");
    await shardA.fit(memoryDataset(samples.slice(0, 120)).samples());
    await shardB.fit(memoryDataset(samples.slice(120)).samples());
    const merged = mergeTextStats(shardA.stats(), shardB.stats());
    const fromStats = createFeaturizer("text", {}, {}, merged);
    // Observing is additive, so a featurizer fitted on both shards in turn has the merged stats.
    const combined = createFeaturizer("text");
    await combined.fit(memoryDataset(samples.slice(0, 120)).samples());
    await combined.fit(memoryDataset(samples.slice(120)).samples());
    expect(sameValues(combined.stats().df, merged.df)).toBe(true);
    const a = await transformDataset(memoryDataset(samples), whole);
    const b = await transformDataset(memoryDataset(samples), fromStats);
    expect(sameValues(b.data, a.data)).toBe(true);
    expect(sameValues(b.data, new Float32Array(b.data.length))).toBe(false);
    expect(whole.kind).toBe("text");
  });

  it("gives sparse unit-norm TF-IDF rows for token-level detectors", async () => {
    const samples = spamAssassinSamples(50);
    const sparse = await featurizeText(memoryDataset(samples), { dimsLog2: 16 });
    expect(sparse.cols).toBe(2 ** 16);
    expect(sparse.ids).toEqual(samples.map((s) => s.id));
    for (const r of sparse.rows) expect(sparseNorm(r)).toBeCloseTo(1, 5);
  });
});
