// The Byzantine updates fl-sim's attackers send, checked against the definitions in their
// papers on small hand-made and random update sets (fast; the federation runs are in fl-sim.test.ts).
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/math/rng.js";
import {
  alieUpdate,
  alieZ,
  backdoorTrainingSet,
  craftByzantineUpdates,
  defaultBoost,
  minMaxUpdate,
  moments,
  withTrigger,
} from "../../src/robust/fl/attacks.js";
import { normalQuantile } from "../../src/math/linalg.js";
import type { Examples } from "../../src/robust/fl/model.js";

function randomUpdates(n: number, d: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const drift = Float32Array.from({ length: d }, () => rng.normal());
  return Array.from({ length: n }, () => Float32Array.from(drift, (m) => m + 0.5 * rng.normal()));
}

const distance = (a: Float32Array, b: Float32Array): number =>
  Math.sqrt(a.reduce((s, v, j) => s + (v - b[j]!) ** 2, 0));

describe("fl attacks", () => {
  it("normalQuantile inverts the standard-normal CDF", () => {
    expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.326348, 5);
    expect(normalQuantile(0.65)).toBeCloseTo(0.38532, 5);
  });

  it("ALIE's z follows Baruch et al.: s = ⌊n/2 + 1⌋ − F, z = Φ⁻¹((n − s)/n)", () => {
    // n = 20, F = 4: s = 7, z = Φ⁻¹(13/20).
    expect(alieZ(20, 4)).toBeCloseTo(normalQuantile(13 / 20), 12);
    // n = 50, F = 12 (the paper's setting): s = 14, z = Φ⁻¹(36/50) ≈ 0.58.
    expect(alieZ(50, 12)).toBeCloseTo(0.5828, 3);
    // More attackers need fewer honest supporters, so they can afford a larger deviation.
    expect(alieZ(20, 6)).toBeGreaterThan(alieZ(20, 4));
    const honest = randomUpdates(16, 50, 1);
    const { mean, std } = moments(honest);
    const v = alieUpdate(honest, 1.5);
    for (let j = 0; j < 50; j++) expect(v[j]).toBeCloseTo(mean[j]! - 1.5 * std[j]!, 5);
  });

  it("min-max: the largest γ whose update stays within the honest updates' largest pairwise distance", () => {
    for (const direction of ["unit-mean", "std"] as const) {
      const honest = randomUpdates(12, 40, 2);
      const { update, gamma } = minMaxUpdate(honest, direction);
      let spread = 0;
      for (const a of honest) for (const b of honest) spread = Math.max(spread, distance(a, b));
      const reach = Math.max(...honest.map((g) => distance(update, g)));
      expect(gamma).toBeGreaterThan(0);
      // The constraint holds and is tight: γ is the largest admissible.
      expect(reach).toBeLessThanOrEqual(spread * (1 + 1e-5));
      expect(reach).toBeGreaterThan(spread * (1 - 1e-4));
      // It points against the honest mean (unit-mean) or down every coordinate by its std.
      const { mean } = moments(honest);
      const along = update.reduce((s, v, j) => s + (v - mean[j]!) * mean[j]!, 0);
      if (direction === "unit-mean") expect(along).toBeLessThan(0);
      else expect(update.every((v, j) => v <= mean[j]! + 1e-6)).toBe(true);
    }
  });

  it("sign-flip, IPM and the model-replacement boost scale as defined", () => {
    const honest = randomUpdates(8, 10, 3);
    const own = randomUpdates(2, 10, 4);
    const params = { flipScale: 4, ipmEpsilon: 0.5, minMaxDirection: "unit-mean" as const };
    const flipped = craftByzantineUpdates("sign-flip", { honest, own, clients: 10 }, params);
    flipped.forEach((u, i) => u.forEach((v, j) => expect(v).toBeCloseTo(-4 * own[i]![j]!, 5)));
    const { mean } = moments(honest);
    for (const u of craftByzantineUpdates("ipm", { honest, own, clients: 10 }, params))
      u.forEach((v, j) => expect(v).toBeCloseTo(-0.5 * mean[j]!, 5));
    // F = 2 of n = 10 colluders each boost by n/F = 5, so together they replace the global model.
    expect(defaultBoost(10, 2)).toBe(5);
    const boosted = craftByzantineUpdates("scaling-backdoor", { honest, own, clients: 10 }, params);
    boosted.forEach((u, i) => u.forEach((v, j) => expect(v).toBeCloseTo(5 * own[i]![j]!, 5)));
  });

  it("the backdoor set adds triggered, relabelled copies of non-target samples", () => {
    const count = 40;
    const rng = new Rng(5);
    const data: Examples = {
      count,
      inputs: 784,
      x: Float32Array.from({ length: count * 784 }, () => (rng.next() < 0.5 ? 0 : rng.next() * 0.5)),
      y: Uint8Array.from({ length: count }, (_, i) => i % 10),
    };
    const rows = Array.from({ length: count }, (_, i) => i);
    const set = backdoorTrainingSet(data, rows, { target: 3, fraction: 0.5, rng: new Rng(6) });
    expect(set.count).toBe(60);
    expect(Array.from(set.y.subarray(0, 40))).toEqual(Array.from(data.y));
    expect(Array.from(set.y.subarray(40)).every((y) => y === 3)).toBe(true);
    for (let i = 40; i < 60; i++) {
      // The 3×3 white patch sits 1 px from the bottom-right corner (x, y ∈ 24..26).
      for (const [x, y] of [
        [24, 24],
        [26, 26],
        [25, 24],
      ] as const)
        expect(set.x[i * 784 + y * 28 + x]).toBe(1);
      expect(set.x[i * 784 + 27 * 28 + 27]).not.toBe(1);
    }
    const triggered = withTrigger(data, [0, 1]);
    expect(Array.from(triggered.y)).toEqual([0, 1]);
    expect(triggered.x[24 * 28 + 24]).toBe(1);
    expect(data.x[24 * 28 + 24]).not.toBe(1); // the source rows are not edited
  });
});
