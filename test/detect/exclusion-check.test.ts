// The exclusion check: a spectral detector's minor mode is dismissed when a model trained without
// it still gives its samples their label (a natural sub-population), and stands when it does not
// (poison). First the rule on planted results with a planted model, then on real Fashion-MNIST
// with the real reclassifier: BadNets-patched images relabeled "Bag" against trousers short
// enough to be shorts — a sub-population of "Trouser" a spectral test on clean data can flag.
import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { exclusionCheck, type Reclassifier } from "../../src/detect/exclusion-check.js";
import { imageProbabilitiesWithout } from "../../src/detect/proxy-image.js";
import { sampleFinding } from "../../src/detect/spectral-signature.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import type { DetectorResult, ScanTable } from "../../src/detect/types.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

function plantedTable(n: number): ScanTable {
  return {
    ids: Array.from({ length: n }, (_, i) => `s${i}`),
    digests: Array.from({ length: n }, (_, i) => i.toString(16).padStart(64, "0")),
    labels: Int32Array.from({ length: n }, (_, i) => i % 4),
    classes: ["a", "b", "c", "d"],
  };
}

function flaggedResult(
  detector: string,
  table: ScanTable,
  rows: number[],
): DetectorResult & { seconds: number } {
  const flagged = new Uint8Array(table.labels.length);
  for (const i of rows) flagged[i] = 1;
  return {
    detector,
    version: "0",
    scores: new Float64Array(table.labels.length),
    flagged,
    threshold: { value: 0, method: "test" },
    findings: rows.map((i) => sampleFinding(table, i, detector, detector, "0", 1, {})),
    summary: {
      flagged: rows.length,
      suspectClasses: [...new Set(rows.map((i) => table.classes[table.labels[i]!]))],
    },
    warnings: [],
    seconds: 0,
  };
}

describe("exclusion check: the rule", () => {
  const n = 400;
  const table = plantedTable(n);
  // Class a (rows ≡ 0 mod 4): 10 flagged samples the excluded model still calls "a" with 0.4.
  // Class b (rows ≡ 1 mod 4): 10 flagged samples it calls "c" (own label 0.05).
  const naturalRows = Array.from({ length: 10 }, (_, k) => 4 * k);
  const poisonRows = Array.from({ length: 10 }, (_, k) => 4 * k + 1);
  let seen: Uint8Array | null = null;
  const reclassify: Reclassifier = (excluded) => {
    seen = Uint8Array.from(excluded);
    const probs = new Float32Array(n * 4).fill(0.25);
    for (const i of naturalRows) probs.set([0.4, 0.2, 0.2, 0.2], i * 4);
    for (const i of poisonRows) probs.set([0.05, 0.05, 0.85, 0.05], i * 4);
    return probs;
  };

  it("dismisses the group that keeps its label, keeps the one that does not, and leaves other detectors alone", () => {
    const spectre = flaggedResult("spectre", table, [...naturalRows, ...poisonRows]);
    const ac = flaggedResult("activation-clustering", table, poisonRows.slice(0, 5));
    const cl = flaggedResult("confident-learning", table, [2, 6, 10]);
    const out = exclusionCheck(table, [spectre, ac, cl], reclassify);

    // One model, trained without every detector's flags (a sample flagged twice left out once).
    expect(out.excluded).toBe(23);
    expect([...seen!].reduce((a, b) => a + b, 0)).toBe(23);
    for (const i of [...naturalRows, ...poisonRows, 2, 6, 10]) expect(seen![i]).toBe(1);

    const [s, a, c] = out.results as unknown as [DetectorResult, DetectorResult, DetectorResult];
    expect(poisonRows.every((i) => s.flagged[i] === 1)).toBe(true);
    expect(naturalRows.every((i) => s.flagged[i] === 0)).toBe(true);
    expect(s.findings.map((f) => f.evidence.id)).toEqual(poisonRows.map((i) => `s${i}`));
    expect(s.summary).toMatchObject({ flagged: 10, suspectClasses: ["b"] });
    expect(s.warnings).toEqual([
      expect.stringMatching(/^class a: its 10 flagged samples keep 0\.4 .*natural sub-population/),
    ]);
    expect(a.flagged).toEqual(ac.flagged);
    expect(c).toBe(cl);
    // The input results are not modified.
    expect(naturalRows.every((i) => spectre.flagged[i] === 1)).toBe(true);

    expect(out.groups).toEqual([
      {
        detector: "spectre",
        class: "a",
        samples: 10,
        meanOwnProbability: 0.4,
        keptLabelShare: 1,
        mostPredicted: { class: "a", share: 1 },
        chance: 0.25,
        verdict: "natural sub-population (flags dismissed)",
        released: 0,
      },
      expect.objectContaining({ detector: "spectre", class: "b", verdict: "poison (flags stand)" }),
      expect.objectContaining({ detector: "activation-clustering", class: "b", samples: 5 }),
    ]);
    expect(out.groups[1]).toMatchObject({
      meanOwnProbability: 0.05,
      keptLabelShare: 0,
      mostPredicted: { class: "c", share: 1 },
    });
  });

  it("releases the members of a poison group that keep their label, and only those", () => {
    // Class b's 10 flagged samples are poison (own label 0.05); 3 more of class b in the same group
    // are its own images the minor mode took in: the excluded model gives them "b" 0.7 (and one
    // 0.49, just under one half: it stays flagged).
    const ownImages = [41, 45, 49];
    const probs = reclassify(new Uint8Array(n));
    probs.set([0.1, 0.7, 0.1, 0.1], 41 * 4);
    probs.set([0.1, 0.7, 0.1, 0.1], 45 * 4);
    probs.set([0.17, 0.49, 0.17, 0.17], 49 * 4);
    const spectre = flaggedResult("spectre", table, [...poisonRows, ...ownImages]);
    const out = exclusionCheck(table, [spectre], () => probs);
    const [s] = out.results as unknown as [DetectorResult];
    expect(out.groups).toEqual([
      expect.objectContaining({ class: "b", samples: 13, verdict: "poison (flags stand)", released: 2 }),
    ]);
    expect([...poisonRows, 49].every((i) => s.flagged[i] === 1)).toBe(true);
    expect(s.flagged[41]).toBe(0);
    expect(s.flagged[45]).toBe(0);
    expect(s.findings.map((f) => f.evidence.id)).toEqual([...poisonRows, 49].map((i) => `s${i}`));
  });

  it("trains nothing when nothing is flagged, and refuses a model of the wrong width", () => {
    let calls = 0;
    const none = exclusionCheck(
      table,
      [flaggedResult("spectre", table, []), flaggedResult("confident-learning", table, [3])],
      () => {
        calls++;
        return new Float32Array(n * 4);
      },
    );
    expect(calls).toBe(0);
    expect(none.groups).toEqual([]);
    expect(() =>
      exclusionCheck(table, [flaggedResult("spectre", table, [0])], () => new Float32Array(n * 3)),
    ).toThrow(/returned 1200 values for 400 × 4/);
  });
});

describe.runIf(hasFashionMnist())("exclusion check on Fashion-MNIST with the image proxy", () => {
  const N = 6000;
  let samples: Sample[];
  let table: ScanTable;
  let patched: number[];
  let shorts: number[];
  beforeAll(async () => {
    const writer = new MemoryWriter();
    const gt = await simulateAttack(
      memoryDataset(fashionMnistSamples(N), { classes: FASHION_MNIST_CLASSES }),
      writer,
      { kind: "patch", target: "Bag", rate: 0.01, seed: 1 },
    );
    samples = writer.samples;
    table = scanTableFromSamples(samples, { classes: FASHION_MNIST_CLASSES });
    const victims = new Set(gt.poisoned.map((p) => p.id));
    patched = samples.flatMap((s, i) => (victims.has(s.id) ? [i] : []));
    // The shortest trousers: least ink in the bottom third of the image (legs that stop early).
    const trouser = FASHION_MNIST_CLASSES.indexOf("Trouser");
    const legInk = (s: Sample) => {
      let ink = 0;
      for (let p = 19 * 28; p < 28 * 28; p++) ink += s.image!.data[p]!;
      return ink;
    };
    shorts = samples
      .flatMap((s, i) => (table.labels[i] === trouser && !victims.has(s.id) ? [i] : []))
      .sort((a, b) => legInk(samples[a]!) - legInk(samples[b]!))
      .slice(0, 25);
  });

  it("keeps the patched images' flags and dismisses the shorts", () => {
    const x = new Float32Array(N * 784);
    samples.forEach((s, i) => x.set(s.image!.data, i * 784));
    const reclassify: Reclassifier = (excluded) =>
      imageProbabilitiesWithout(x, table.labels, table.classes.length, excluded, { seed: 0 });
    const out = exclusionCheck(table, [flaggedResult("spectre", table, [...patched, ...shorts])], reclassify);
    const byClass = Object.fromEntries(out.groups.map((g) => [g.class, g]));
    console.log(
      `exclusion check, 6k Fashion-MNIST: ${patched.length} patched → Bag keep ${byClass.Bag?.meanOwnProbability} of "Bag" ` +
        `(mostly ${byClass.Bag?.mostPredicted.class}); ${shorts.length} shortest trousers keep ${byClass.Trouser?.meanOwnProbability}`,
    );
    expect(byClass.Bag).toMatchObject({ samples: patched.length, verdict: "poison (flags stand)" });
    expect(byClass.Bag!.meanOwnProbability).toBeLessThan(0.05);
    expect(byClass.Trouser).toMatchObject({
      samples: 25,
      verdict: "natural sub-population (flags dismissed)",
    });
    const flags = out.results[0]!.flagged;
    expect(patched.every((i) => flags[i] === 1)).toBe(true);
    expect(shorts.every((i) => flags[i] === 0)).toBe(true);
  }, 120_000);
});
