import { describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import type { Sample } from "../../src/data/sample.js";
import { memoryDataset } from "../../src/data/memory.js";
import { mergeTabularStats, TabularFeaturizer, type TabularOptions } from "../../src/features/tabular.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

function row(id: string, values: number[]): Sample {
  return {
    id,
    digest: id,
    label: null,
    features: Float32Array.from(values),
    source: null,
    annotations: [],
    metadata: {},
  };
}

async function fitted(rows: Sample[], options: TabularOptions = {}): Promise<TabularFeaturizer> {
  const f = new TabularFeaturizer(options);
  await f.fit(memoryDataset(rows).samples());
  return f;
}

function catchError(fn: () => unknown): AntidoteError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

describe("TabularFeaturizer", () => {
  // age, income, a constant flag
  const rows = [
    row("r0", [20, 1000, 1]),
    row("r1", [30, 3000, 1]),
    row("r2", [40, 2000, 1]),
    row("r3", [50, 6000, 1]),
  ];

  it("z-scores each column with the population standard deviation", async () => {
    const f = await fitted(rows);
    const ageSd = Math.sqrt(((20 - 35) ** 2 + (30 - 35) ** 2 + (40 - 35) ** 2 + (50 - 35) ** 2) / 4);
    const incomeSd = Math.sqrt(((1000 - 3000) ** 2 + 0 + (2000 - 3000) ** 2 + (6000 - 3000) ** 2) / 4);
    const z = f.transform(rows[0]!);
    expect(z[0]).toBeCloseTo((20 - 35) / ageSd, 6);
    expect(z[1]).toBeCloseTo((1000 - 3000) / incomeSd, 6);
    // A new row is scaled with the fitted statistics.
    expect(f.transform(row("new", [35, 3000, 1]))[0]).toBeCloseTo(0, 6);
  });

  it("maps a constant column to 0, not NaN", async () => {
    const f = await fitted(rows);
    for (const r of rows) expect(f.transform(r)[2]).toBe(0);
    expect(f.transform(row("other", [1, 1, 7]))[2]).toBe(0);
  });

  it("reports a NaN or infinite feature as a malformed row naming the sample and the feature", async () => {
    const named = new TabularFeaturizer({ featureNames: ["age", "income", "flag"] });
    const err = catchError(() => named.observe(row("customer-17", [20, NaN, 1])));
    expect(err.code).toBe("ROW_MALFORMED");
    expect(err.message).toContain('"customer-17"');
    expect(err.message).toContain('"income"');
    expect(err.message).toContain("index 1");
    const f = await fitted(rows);
    const inf = catchError(() => f.transform(row("r9", [20, 1000, Infinity])));
    expect(inf.code).toBe("ROW_MALFORMED");
    expect(inf.message).toMatch(/"r9".*feature 2.*Infinity/);
  });

  it("reports a row of another width and a sample with no features", async () => {
    const f = await fitted(rows);
    const err = catchError(() => f.transform(row("short", [1, 2])));
    expect(err.code).toBe("ROW_MALFORMED");
    expect(err.message).toContain('"short"');
    const text: Sample = {
      id: "t",
      digest: "",
      label: null,
      text: "x",
      source: null,
      annotations: [],
      metadata: {},
    };
    expect(catchError(() => f.observe(text)).code).toBe("USAGE");
  });

  it("passes values through when standardisation is off", async () => {
    const f = await fitted(rows, { standardize: false });
    expect(Array.from(f.transform(rows[3]!))).toEqual([50, 6000, 1]);
  });

  it.runIf(hasFashionMnist())(
    "standardises real columns (Fashion-MNIST pixels as 784 features), merging shards exactly",
    async () => {
      const samples = fashionMnistSamples(800).map((s) => row(s.id, Array.from(s.image!.data)));
      const f = await fitted(samples);
      const a = await fitted(samples.slice(0, 300));
      const b = await fitted(samples.slice(300));
      const merged = mergeTabularStats(a.stats(), b.stats()).moments!;
      const all = f.stats().moments!;
      for (let d = 0; d < 784; d++) {
        expect(Math.abs(merged.mean[d]! - all.mean[d]!)).toBeLessThan(1e-9);
        expect(Math.abs(merged.m2[d]! - all.m2[d]!) / 800).toBeLessThan(1e-9);
      }
      const sums = new Float64Array(784);
      const sq = new Float64Array(784);
      for (const s of samples) f.transform(s).forEach((v, d) => ((sums[d]! += v), (sq[d]! += v * v)));
      let constant = 0;
      for (let d = 0; d < 784; d++) {
        const mean = sums[d]! / 800;
        const sd = Math.sqrt(sq[d]! / 800 - mean * mean);
        expect(Math.abs(mean)).toBeLessThan(1e-4);
        if (all.m2[d] === 0) {
          constant++;
          expect(sd).toBe(0);
        } else expect(sd).toBeCloseTo(1, 3);
      }
      expect(constant).toBeLessThan(784);
    },
  );
});
