import { beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { collect, memoryDataset } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import {
  confidentLearning,
  estimateConfidentJoint,
  noiseStructure,
  poissonQuantile,
  type ConfidentLearningOptions,
} from "../../src/detect/confident-learning.js";
import { outOfSampleProbs } from "../../src/detect/proxy-linear.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import type { DetectorResult, ScanTable } from "../../src/detect/types.js";
import { featurizeText } from "../../src/features/featurize.js";
import type { SparseRows } from "../../src/features/matrix.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";
import { attack } from "../attack/oracle.js";
import { expectUsage } from "../helpers/errors.js";

const SOURCES = ["vendor-a", "vendor-b", "vendor-c", "vendor-d", "vendor-e"];

/** Precision and recall of the flagged samples against the simulator's victims. */
function score(table: ScanTable, result: DetectorResult, victims: Set<string>) {
  let tp = 0;
  let flagged = 0;
  result.flagged.forEach((f, i) => {
    if (f === 0) return;
    flagged++;
    if (victims.has(table.ids[i]!)) tp++;
  });
  return { flagged, precision: tp / Math.max(1, flagged), recall: tp / Math.max(1, victims.size) };
}

describe("confident learning on SpamAssassin with one compromised supplier", () => {
  let sourced: Sample[];
  let rows: SparseRows;
  let classes: string[];
  beforeAll(async () => {
    const dataset = await openDataset("spamassassin");
    const emails = await collect(dataset);
    classes = dataset.info.classes!;
    sourced = (
      await attack(emails, {
        kind: "assign-sources",
        seed: 1,
        sources: SOURCES.map((name) => ({ name, share: 0.2 })),
      })
    ).out;
    rows = await featurizeText(memoryDataset(emails), { charNgrams: false });
  });

  it("finds the flipped quarter of vendor-c's labels with precision ≥ 0.85 and recall ≥ 0.90", async () => {
    const count = Math.round(0.25 * sourced.filter((s) => s.source === "vendor-c").length);
    const { out, gt } = await attack(
      sourced,
      { kind: "label-flip", fromSource: "vendor-c", count, seed: 11 },
      { classes },
    );
    const table = scanTableFromSamples(out, { classes });
    const proxy = outOfSampleProbs(rows, table.labels, classes);
    table.probs = proxy.probs;
    expect(confidentLearning.appliesTo(table)).toBeNull();
    const result = confidentLearning.run(table);

    const m = score(table, result, new Set(gt.poisoned.map((r) => r.id)));
    // Measured over 5 attack/proxy seeds: precision 0.91–0.94, recall 0.90–0.95.
    expect(m.precision).toBeGreaterThanOrEqual(0.85);
    expect(m.recall).toBeGreaterThanOrEqual(0.9);
    // The count comes from the calibrated joint, not from knowing the rate: within 15% of the truth.
    expect(Math.abs((result.summary.estimatedIssues as number) - count) / count).toBeLessThan(0.15);

    expect(result.findings).toHaveLength(m.flagged);
    const first = result.findings[0]!;
    expect(first).toMatchObject({ subjectType: "sample", kind: "label-issue", check: "confident-learning" });
    const i = table.digests.indexOf(first.subjectId);
    expect(first.evidence).toMatchObject({ id: table.ids[i], givenLabel: classes[table.labels[i]!] });
    expect(first.evidence.suggestedLabel).not.toBe(first.evidence.givenLabel);
    expect(first.score).toBeCloseTo(1 - (first.evidence.selfConfidence as number), 5);
    for (let k = 1; k < result.findings.length; k++)
      expect(result.findings[k]!.score).toBeLessThanOrEqual(result.findings[k - 1]!.score);
  });

  it("flags almost nothing on the clean corpus", () => {
    const table = scanTableFromSamples(sourced, { classes });
    table.probs = outOfSampleProbs(rows, table.labels, classes).probs;
    const result = confidentLearning.run(table);
    // Measured 1–3 of 6,046 over 8 proxy seeds, every one a commercial newsletter filed under
    // hard_ham (FoxSports, trivia mailings) — real ambiguity, not model error: the proxy makes ~60
    // held-out errors, but only these are confident. The bound is 4× the worst measured.
    expect(result.findings.length).toBeLessThanOrEqual(12);
    expect((result.summary.estimatedNoiseRate as number) < 0.002).toBe(true);
  });
});

describe.runIf(hasFashionMnist())(
  "confident learning on Fashion-MNIST with the linear pixel proxy (6,000 images)",
  () => {
    let images: Sample[];
    let pixels: { rows: number; cols: number; data: Float32Array };
    const info = { classes: FASHION_MNIST_CLASSES };
    beforeAll(() => {
      images = fashionMnistSamples(6000);
      const data = new Float32Array(images.length * 784);
      images.forEach((s, i) => data.set(s.image!.data, i * 784));
      pixels = { rows: images.length, cols: 784, data };
    });

    function scan(samples: Sample[], options: ConfidentLearningOptions = {}) {
      const table = scanTableFromSamples(samples, info);
      const proxy = outOfSampleProbs(pixels, table.labels, FASHION_MNIST_CLASSES);
      table.probs = proxy.probs;
      return { table, proxy, result: confidentLearning.run(table, options) };
    }

    // The same proxy, with the selection that tells its confusions from flips by where they fall.
    it("noise-structure: flags (almost) nothing on clean images, and most of 10% random flips", async () => {
      const clean = scan(images, { filterBy: "noise-structure" });
      console.log(
        `noise-structure, clean: ${clean.result.findings.length} flagged; ${clean.result.threshold.method}`,
      );
      expect(clean.result.summary.noiseStructure).toMatchObject({ floor: 0 });
      expect(clean.result.findings.length / images.length).toBeLessThanOrEqual(0.005);

      const { out, gt } = await attack(images, { kind: "label-flip", rate: 0.1, seed: 3 }, info);
      const { table, result } = scan(out, { filterBy: "noise-structure" });
      const m = score(table, result, new Set(gt.poisoned.map((r) => r.id)));
      console.log(
        `noise-structure, 10% flips: precision ${m.precision.toFixed(3)}, recall ${m.recall.toFixed(3)}`,
      );
      expect((result.summary.noiseStructure as { floor: number }).floor).toBeGreaterThan(0);
      expect((result.summary.noiseStructure as { plateaus: unknown[] }).plateaus).toEqual([]);
      // Measured 0.772 / 0.873 (each cell giving up its own lowest up to the cap: 0.766 / 0.867; up
      // to the floor: 0.805 / 0.818; plain confident learning on the same probabilities: 0.50 / 0.90).
      // This linear proxy is 83 % accurate; the scan's MLP + CNN proxy does better
      // (test/scan/scan-flips.test.ts).
      expect(m.precision).toBeGreaterThan(0.74);
      expect(m.recall).toBeGreaterThan(0.84);
      const structure = result.summary.noiseStructure as {
        cellCap: number;
        floor: number;
        spread: number;
        candidateCells: number[][];
        excessCells: unknown[];
      };
      expect(structure.cellCap).toBe(poissonQuantile(structure.floor, 0.75));
      // Each cell counts up to the cap; that many are flagged, wherever they fall.
      const counted = structure.candidateCells
        .flatMap((row, y) => row.filter((_, j) => j !== y))
        .reduce((sum, c) => sum + Math.min(c, structure.cellCap), 0);
      expect(structure.spread).toBe(counted);
      expect(structure.excessCells).toEqual([]);
      expect(result.findings).toHaveLength(counted);
    });

    // A linear model on pixels is 83% accurate here, and its confident mistakes between the upper-body
    // classes (T-shirt/Shirt/Pullover/Coat) are indistinguishable from label flips: these figures are the
    // proxy's limit, not the target (precision ≥ 0.85 needs a proxy with ≲ 2% confident errors on clean data).
    it("recovers 10% random flips with high recall; precision is bounded by the proxy", async () => {
      const { out, gt } = await attack(images, { kind: "label-flip", rate: 0.1, seed: 3 }, info);
      const { table, result } = scan(out);
      const m = score(table, result, new Set(gt.poisoned.map((r) => r.id)));
      expect(m.recall).toBeGreaterThan(0.85); // measured 0.90
      expect(m.precision).toBeGreaterThan(0.42); // measured 0.50
    });

    it("isolates 3% targeted Sneaker→Sandal flips in their own cell of the confident joint", async () => {
      const { out, gt } = await attack(
        images,
        { kind: "targeted-flip", from: "Sneaker", to: "Sandal", rate: 0.03, seed: 4 },
        info,
      );
      const { result } = scan(out);
      const victims = new Set(gt.poisoned.map((r) => r.id));
      const cell = result.findings.filter(
        (f) => f.evidence.givenLabel === "Sandal" && f.evidence.suggestedLabel === "Sneaker",
      );
      const hits = cell.filter((f) => victims.has(f.evidence.id as string)).length;
      expect(hits / cell.length).toBeGreaterThan(0.85); // measured 0.95
      expect(hits / victims.size).toBeGreaterThan(0.7); // measured 0.76 (every flip: 0.76 overall)
      // The attacked cell is the largest off-diagonal of the confident joint.
      const joint = result.summary.confidentJoint as number[][];
      const sandal = FASHION_MNIST_CLASSES.indexOf("Sandal");
      const sneaker = FASHION_MNIST_CLASSES.indexOf("Sneaker");
      const largest = Math.max(...joint.flatMap((row, i) => row.filter((_, j) => j !== i)));
      expect(joint[sandal]![sneaker]).toBe(largest);
    });

    // 30 % of the sneakers relabelled: every model learns p(Sandal | sneaker) ≈ 0.3, so their labels
    // are never improbable enough to be candidates — the label plateau finds them instead, including
    // the sandal-labeled sneakers whose top class is Sandal only because the relabel was learned.
    it("noise-structure: finds a targeted relabel of 30% of a class by its label plateau", async () => {
      const { out, gt } = await attack(
        images,
        { kind: "targeted-flip", from: "Sneaker", to: "Sandal", rate: 0.03, seed: 4 },
        info,
      );
      const { table, result } = scan(out, { filterBy: "noise-structure" });
      const structure = result.summary.noiseStructure as {
        plateaus: { given: string; looksLike: string; leakage: number; flagged: number }[];
      };
      expect(structure.plateaus.map((p) => [p.given, p.looksLike])).toEqual([["Sandal", "Sneaker"]]);
      const m = score(table, result, new Set(gt.poisoned.map((r) => r.id)));
      console.log(
        `label plateau ${JSON.stringify(structure.plateaus)}: precision ${m.precision.toFixed(3)}, recall ${m.recall.toFixed(3)}`,
      );
      // Each plateau flag says why, in words.
      const explained = result.findings.filter((f) => typeof f.evidence.why === "string");
      expect(explained).toHaveLength(structure.plateaus[0]!.flagged);
      expect(explained[0]!.evidence.why).toMatch(
        /^label plateau: typical Sneaker images get p\(Sandal\) ≈ 0\.\d\d, a targeted relabel Sneaker → Sandal$/,
      );
      expect(m.precision).toBeGreaterThan(PLATEAU_PRECISION);
      expect(m.recall).toBeGreaterThan(PLATEAU_RECALL);
      // Clean images and random flips have none (asserted on the same proxy).
      expect(
        (scan(images, { filterBy: "noise-structure" }).result.summary.noiseStructure as typeof structure)
          .plateaus,
      ).toEqual([]);
    });

    it("on clean images flags no more than the proxy's confident errors", () => {
      const { proxy, result } = scan(images);
      const errors = (1 - proxy.accuracy) * images.length;
      // Measured: 538 flagged (9.0%) of 1,024 held-out errors. Every flag is a held-out error by
      // construction; the bound says CL keeps only the confident ones (~half) rather than all of them.
      expect(result.findings.length).toBeLessThan(0.7 * errors);
      expect(result.findings.length / images.length).toBeLessThan(0.12);
    });
  },
);

// noiseStructure's options at the detector's defaults.
const NOISE_STRUCTURE_DEFAULTS = {
  candidateBelow: 0.1,
  minFloor: 3,
  asymmetryZ: 5,
  cellQuantile: 0.75,
  plateauMin: 0.15,
  plateauRatio: 3,
  plateauConcentration: 0.8,
};

describe("the confident joint", () => {
  it("follows the paper's definitions on a hand-checked example", () => {
    // 3 classes; rows are p(class | x) for 8 samples.
    const labels = Int32Array.from([0, 0, 0, 1, 1, 1, 2, 2]);
    const probs = Float32Array.from([
      0.9,
      0.05,
      0.05, //
      0.7,
      0.2,
      0.1, //
      0.1,
      0.8,
      0.1, // labeled 0, confidently 1
      0.1,
      0.8,
      0.1, //
      0.2,
      0.7,
      0.1, //
      0.1,
      0.3,
      0.6, // labeled 1, clears no class's threshold
      0.05,
      0.05,
      0.9, //
      0.3,
      0.2,
      0.5, //
    ]);
    const e = estimateConfidentJoint(labels, probs, 3);
    // t_j = mean p_j over samples labeled j.
    expect(Array.from(e.thresholds)).toEqual([
      expect.closeTo((0.9 + 0.7 + 0.1) / 3, 6),
      expect.closeTo((0.8 + 0.7 + 0.3) / 3, 6),
      expect.closeTo((0.9 + 0.5) / 2, 6),
    ]);
    // t = [0.567, 0.6, 0.7]: sample 2 → 1; sample 5 → none (0.6 < 0.7 and 0.3 < 0.6); sample 7 → none.
    expect(Array.from(e.confidentClass)).toEqual([0, 0, 1, 1, 1, -1, 2, -1]);
    expect(e.confidentJoint).toEqual([
      [2, 1, 0],
      [0, 2, 0],
      [0, 0, 1],
    ]);
    // Calibration: row 0 rescaled to its 3 labels → [2, 1, 0]; row 1 (2 counted, 3 labels) → [0, 3, 0];
    // row 2 → [0, 0, 2]; normalised by 8.
    expect(e.calibratedJoint[0]![1]).toBeCloseTo(1 / 8, 9);
    expect(e.calibratedJoint[1]![1]).toBeCloseTo(3 / 8, 9);
    expect(e.estimatedIssues).toBe(1);

    const table: ScanTable = {
      ids: Array.from(labels, (_, i) => `s${i}`),
      digests: Array.from(labels, (_, i) => `d${i}`),
      labels,
      classes: ["a", "b", "c"],
      probs,
    };
    const result = confidentLearning.run(table);
    expect(Array.from(result.flagged)).toEqual([0, 0, 1, 0, 0, 0, 0, 0]);
    expect(result.findings[0]!.evidence).toMatchObject({ id: "s2", givenLabel: "a", suggestedLabel: "b" });
    expect(result.scores[2]).toBeCloseTo(0.9, 6);
  });

  it("caps a cell at a Poisson quantile of the floor (hand-checked values)", () => {
    // Poisson(3): P(X ≤ 4) = 0.815, P(X ≤ 5) = 0.916. Poisson(15): P(X ≤ 19) = 0.875, P(X ≤ 20) = 0.917.
    expect(poissonQuantile(3, 0.9)).toBe(5);
    expect(poissonQuantile(3, 0.8)).toBe(4);
    expect(poissonQuantile(15, 0.9)).toBe(20);
    expect(poissonQuantile(15, 0)).toBe(15);
    // Past the pmf's underflow, the normal approximation: 1000 + 1.2816 · √1000 ≈ 1040.5.
    expect(poissonQuantile(1000, 0.9)).toBe(1041);
  });

  it("undoes a plateau's relabel before deciding what a sample looks like (hand-checked)", () => {
    // Five classes, each with a core the model gets right; the core of class 1 gives label 2
    // p = 0.26 — a plateau (relabel 1 → 2, r = 0.26). Four more samples are labeled 2. With the
    // relabel undone, q(1) = p(1) / 0.74 and q(2) = p(2) − 0.26 · q(1):
    //   p(1) 0.45, p(2) 0.50 → q 0.608 vs 0.342: looks like 1, flagged (though its top class is 2)
    //   p(1) 0.40, p(2) 0.55 → q 0.541 vs 0.409: flagged
    //   p(1) 0.35, p(2) 0.60 → q 0.473 vs 0.477: not
    //   p(1) 0.25, p(2) 0.70 → q 0.338 vs 0.612: not
    const C = 5;
    const rows: number[][] = [];
    const labels: number[] = [];
    for (let c = 0; c < C; c++)
      for (let k = 0; k < 100; k++) {
        // Each row sums to 1: three (or four) classes at 0.01, the rest as set.
        const row = new Array<number>(C).fill(0.01);
        if (c === 1) {
          row[1] = 0.71;
          row[2] = 0.26;
        } else row[c] = 0.96;
        rows.push(row);
        labels.push(c);
      }
    const probe = [0.45, 0.4, 0.35, 0.25];
    for (const p1 of probe) {
      rows.push([0, p1, 0.95 - p1, 0.05, 0]);
      labels.push(2);
    }
    const s = noiseStructure(
      Int32Array.from(labels),
      Float32Array.from(rows.flat()),
      C,
      NOISE_STRUCTURE_DEFAULTS,
    );
    expect(s.plateaus.map((p) => [p.given, p.looksLike, p.leakage])).toEqual([
      [2, 1, expect.closeTo(0.26, 6)],
    ]);
    const first = 5 * 100;
    expect(s.plateaus[0]!.members).toEqual([first, first + 1]);
    expect(s.suggested).toEqual([
      [first, 1],
      [first + 1, 1],
    ]);
    // The same leakage, spread: the typical image of class 1 gives 0.26 to class 2 and 0.14 to
    // class 3 (0.26 / 0.42 = 0.62 of what it gives away, not ≥ 0.8) — a soft model's confusion.
    const confused = rows.map((r, i) => (i >= 100 && i < 200 ? [0.01, 0.58, 0.26, 0.14, 0.01] : r));
    const natural = noiseStructure(
      Int32Array.from(labels),
      Float32Array.from(confused.flat()),
      C,
      NOISE_STRUCTURE_DEFAULTS,
    );
    expect(natural.plateaus).toEqual([]);
    expect(natural.selected).toEqual([]);
  });

  it("takes a cell for targeted flips only when it stands out from its own near-candidates too", () => {
    // Four classes, 2,000 images each, the model right about all of them (p = 0.97). Natural,
    // asymmetric confusion (the shape of Shirt → Pullover on all 60k Fashion-MNIST images): 120
    // images labeled 0 look like 1 with p(0) < 0.1 and 200 more with p(0) in [0.1, 0.3); the mirror
    // cell holds 20. Targeted flips 2 → 3: 120 images labeled 2 that look like 3 with p(2) < 0.1,
    // and only 10 near them (flipped images are confidently their real class).
    const C = 4;
    const rows: number[][] = [];
    const labels: number[] = [];
    const push = (label: number, row: number[]) => {
      rows.push(row);
      labels.push(label);
    };
    for (let c = 0; c < C; c++)
      for (let k = 0; k < 2000; k++)
        push(
          c,
          [0.01, 0.01, 0.01, 0.01].map((v, j) => (j === c ? 0.97 : v)),
        );
    for (let k = 0; k < 120; k++) push(0, [0.05, 0.93, 0.01, 0.01]);
    for (let k = 0; k < 200; k++) push(0, [0.2, 0.78, 0.01, 0.01]);
    for (let k = 0; k < 20; k++) push(1, [0.9, 0.05, 0.03, 0.02]);
    for (let k = 0; k < 120; k++) push(2, [0.01, 0.01, 0.03, 0.95]);
    for (let k = 0; k < 10; k++) push(2, [0.01, 0.01, 0.2, 0.78]);
    const flips = new Set(labels.map((_, i) => i).slice(8000 + 340, 8000 + 460));
    const s = noiseStructure(
      Int32Array.from(labels),
      Float32Array.from(rows.flat()),
      C,
      NOISE_STRUCTURE_DEFAULTS,
    );
    // 0 → 1 holds 6× its mirror (a 7σ excess) but fewer than twice its 200 near-candidates.
    expect(s.excessCells.map(([y, j]) => [y, j])).toEqual([[2, 3]]);
    // The cell's excess is taken from it: 120 less twice its 10 near-candidates, all of them flips.
    expect(s.selected).toHaveLength(100);
    expect(s.selected.every((i) => flips.has(i))).toBe(true);
  });

  it("needs probabilities of the right shape, and says so", () => {
    const table: ScanTable = {
      ids: ["x", "y"],
      digests: ["d1", "d2"],
      labels: Int32Array.from([0, 1]),
      classes: ["a", "b"],
    };
    expect(confidentLearning.appliesTo(table)).toMatch(/out-of-sample predicted probabilities/);
    expectUsage(() => confidentLearning.run(table), /confident-learning cannot run/);
    table.probs = new Float32Array(3);
    expect(confidentLearning.appliesTo(table)).toMatch(/3 values, expected 2 samples × 2 classes/);
    table.probs = Float32Array.from([0.9, 0.1, 0.2, 0.8]);
    expect(confidentLearning.appliesTo(table)).toBeNull();
    table.probs = Float32Array.from([0.9, 0.1, 0.2, NaN]);
    expectUsage(() => confidentLearning.run(table), /sample "y" are not a distribution \(0.2, NaN\)/);
    table.probs = Float32Array.from([0.9, 0.1, 0.2, 0.8]);
    expectUsage(() => confidentLearning.run(table, { filterBy: "nope" as "both" }), /filterBy/);
  });
});

// Measured with the linear pixel proxy on 6,000 images (the plateau test): leakage 0.18, precision
// 0.856, recall 0.856 with the relabel undone; flagging only the samples whose top class is the
// look-alike gave 0.934 / 0.789. The scan's MLP + CNN proxy at 12k: 0.926 / 0.933 (was 0.97 / 0.88).
const PLATEAU_PRECISION = 0.8;
const PLATEAU_RECALL = 0.8;
