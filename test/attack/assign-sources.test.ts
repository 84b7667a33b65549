import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { exactCounts } from "../../src/attack/index.js";
import { fashionMnistSamples } from "../helpers/real-data.js";
import { attack, expectTruthful, rejection, victimPositions } from "./oracle.js";

let input: Sample[];
beforeAll(() => {
  input = fashionMnistSamples(2000);
});

function countBy(samples: readonly Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) out[s.source ?? "(none)"] = (out[s.source ?? "(none)"] ?? 0) + 1;
  return out;
}

describe("assign-sources", () => {
  it("gives every sample a source in exact proportions, leaving content and labels alone", async () => {
    const sources = [
      { name: "vendor-a", share: 0.5 },
      { name: "vendor-b", share: 0.25 },
      { name: "crawl", share: 0.25 },
    ];
    const { out, gt } = await attack(input, { kind: "assign-sources", sources, seed: 2 });
    expect(countBy(out)).toEqual({ "vendor-a": 1000, "vendor-b": 500, crawl: 500 });
    expect(gt.summary).toEqual({ sourceCounts: { "vendor-a": 1000, "vendor-b": 500, crawl: 500 } });
    expect(gt.poisoned).toEqual([]);
    expect(gt.outputCount).toBe(2000);
    out.forEach((s, i) => {
      expect(s.id).toBe(input[i]?.id);
      expect(s.digest).toBe(input[i]?.digest);
      expect(s.label).toBe(input[i]?.label);
    });
    // Shuffled, not blocks: the first 200 samples hold all three sources.
    expect(Object.keys(countBy(out.slice(0, 200)))).toHaveLength(3);
    const again = await attack(input, { kind: "assign-sources", sources, seed: 3 });
    expect(again.out.map((s) => s.source)).not.toEqual(out.map((s) => s.source));
  });

  it("rounds thirds to whole counts that add up", () => {
    expect(exactCounts([1 / 3, 1 / 3, 1 / 3], 1000)).toEqual([334, 333, 333]);
    expect(exactCounts([0.1, 0.9], 7)).toEqual([1, 6]);
    expect(exactCounts([0.5, 0.5 + 5e-7], 1_000_001).reduce((a, b) => a + b, 0)).toBe(1_000_001);
  });

  it("with fromSource on a later attack, simulates 25% flips from one supplier", async () => {
    const sources = [
      { name: "vendor-a", share: 0.75 },
      { name: "vendor-b", share: 0.25 },
    ];
    const { out: sourced } = await attack(input, { kind: "assign-sources", sources, seed: 1 });
    const { out, gt } = await attack(sourced, {
      kind: "label-flip",
      count: 125,
      fromSource: "vendor-b",
      seed: 1,
    });
    expectTruthful(sourced, out, gt, 125);
    for (const i of victimPositions(sourced, gt)) expect(sourced[i]?.source).toBe("vendor-b");
  });

  it("rejects shares that do not sum to 1 and duplicate names", async () => {
    const e = await rejection(
      attack(input, {
        kind: "assign-sources",
        sources: [
          { name: "a", share: 0.5 },
          { name: "b", share: 0.4 },
        ],
      }),
    );
    expect(e.code).toBe("USAGE");
    expect(e.message).toMatch(/sources: shares sum to 0.9, not 1/);
    const dup = await rejection(
      attack(input, {
        kind: "assign-sources",
        sources: [
          { name: "a", share: 0.5 },
          { name: "a", share: 0.5 },
        ],
      }),
    );
    expect(dup.message).toMatch(/sources: "a" is listed twice/);
  });
});
