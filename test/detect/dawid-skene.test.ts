import { beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { collect } from "../../src/data/memory.js";
import type { Sample } from "../../src/data/sample.js";
import { dawidSkene, fitDawidSkene, type AnnotatorReliability } from "../../src/detect/dawid-skene.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import type { ScanAnnotation, ScanTable } from "../../src/detect/types.js";
import { Rng } from "../../src/math/rng.js";
import { attack } from "../attack/oracle.js";
import { expectUsage } from "../helpers/errors.js";

let emails: Sample[];
let classes: string[];
beforeAll(async () => {
  const dataset = await openDataset("spamassassin");
  emails = await collect(dataset);
  classes = dataset.info.classes!;
});

function agreement(a: Int32Array, b: Int32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

describe("Dawid–Skene on SpamAssassin with one malicious annotator among six", () => {
  it("ranks the liar first, flags it alone, and estimates every annotator's accuracy", async () => {
    const { out, gt } = await attack(
      emails,
      { kind: "malicious-annotator", annotators: 6, seed: 1 },
      { classes },
    );
    const table = scanTableFromSamples(out, { classes });
    expect(dawidSkene.appliesTo(table)).toBeNull();
    const result = dawidSkene.run(table);
    const annotators = result.summary.annotators as AnnotatorReliability[];

    expect(annotators[0]!.annotator).toBe("annotator-6");
    const flagged = result.findings.filter((f) => f.subjectType === "annotator");
    expect(flagged.map((f) => f.subjectId)).toEqual(["annotator-6"]);
    expect(flagged[0]).toMatchObject({ kind: "unreliable-annotator", check: "dawid-skene" });
    expect(flagged[0]!.evidence).toMatchObject({ annotator: "annotator-6", classes });
    expect((flagged[0]!.evidence.gap as number) > 0.3).toBe(true);

    // The simulator knows each annotator's disagreements with the truth: EM recovers them unsupervised.
    const truth = gt.summary!.annotators as Record<string, { annotations: number; disagreements: number }>;
    for (const a of annotators) {
      const t = truth[a.annotator]!;
      expect(Math.abs(a.accuracy - (1 - t.disagreements / t.annotations))).toBeLessThan(0.01);
    }

    // Consensus vs the clean labels (the samples' own labels stay the truth in this simulator).
    const fit = fitDawidSkene(table.annotations!, classes.length);
    const consensus = agreement(fit.consensus, table.labels);
    const majority = agreement(fit.majority, table.labels);
    expect(consensus).toBeGreaterThan(0.998); // measured 0.9992
    expect(consensus).toBeGreaterThanOrEqual(majority); // majority vote: 0.9977
    // The given labels are true, so a confident consensus rarely contradicts them.
    expect(result.findings.filter((f) => f.subjectType === "sample").length).toBeLessThan(10);
  });

  it("catches a targeted liar when each email is labeled by only three of the six", async () => {
    const { out } = await attack(
      emails,
      {
        kind: "malicious-annotator",
        annotators: 6,
        annotatorsPerSample: 3,
        target: "ham",
        flipRate: 0.25,
        seed: 7,
      },
      { classes },
    );
    const result = dawidSkene.run(scanTableFromSamples(out, { classes }));
    const annotators = result.summary.annotators as AnnotatorReliability[];
    expect(annotators[0]!.annotator).toBe("annotator-6");
    expect(annotators.filter((a) => a.unreliable).map((a) => a.annotator)).toEqual(["annotator-6"]);
    // Lies only towards ham: its confusion shows spam read as ham, not the reverse.
    const spam = classes.indexOf("spam");
    const ham = classes.indexOf("ham");
    expect(annotators[0]!.confusion[spam]![ham]).toBeGreaterThan(0.3);
    expect(annotators[0]!.confusion[ham]![spam]).toBeLessThan(0.1);
  });

  it("flags given labels that the annotators' consensus confidently rejects", async () => {
    const annotated = (
      await attack(emails, { kind: "malicious-annotator", annotators: 6, seed: 2 }, { classes })
    ).out;
    const { out, gt } = await attack(annotated, { kind: "label-flip", count: 150, seed: 3 }, { classes });
    const table = scanTableFromSamples(out, { classes });
    const result = dawidSkene.run(table);
    const victims = new Set(gt.poisoned.map((r) => r.id));
    const flagged = result.findings.filter((f) => f.kind === "label-disagreement");
    const hits = flagged.filter((f) => victims.has(f.evidence.id as string)).length;
    expect(hits / victims.size).toBeGreaterThan(0.98);
    expect(hits / flagged.length).toBeGreaterThan(0.95);
    const f = flagged[0]!;
    expect(f.evidence.consensusLabel).not.toBe(f.evidence.givenLabel);
    expect(f.evidence.annotations).toHaveLength(6);
    expect(f.score).toBeGreaterThanOrEqual(0.95);
  });
});

describe("Dawid–Skene, the model itself", () => {
  it("trusts one reliable annotator over two unreliable ones who outvote it", () => {
    // Three annotators on 3,000 binary items: A right 95% of the time, B and C 65%.
    const rng = new Rng(5);
    const truth = Int32Array.from({ length: 3000 }, () => (rng.next() < 0.5 ? 1 : 0));
    const say = (y: number, accuracy: number) => (rng.next() < accuracy ? y : 1 - y);
    const annotations: ScanAnnotation[][] = Array.from(truth, (y) => [
      { annotator: "A", label: say(y, 0.95) },
      { annotator: "B", label: say(y, 0.65) },
      { annotator: "C", label: say(y, 0.65) },
    ]);
    const fit = fitDawidSkene(annotations, 2);
    expect(fit.converged).toBe(true);
    const byName = new Map(fit.annotators.map((a) => [a.annotator, a.accuracy]));
    // Three binary annotators make the model exactly identified, so the estimates carry sampling
    // noise (A: 0.91 estimated, 0.96 empirical; B, C: 0.67, 0.65); the ordering is what matters.
    expect(byName.get("A")!).toBeGreaterThan(0.85);
    expect(byName.get("A")! - Math.max(byName.get("B")!, byName.get("C")!)).toBeGreaterThan(0.15);
    // Majority vote is right ~0.95·(1 − 0.35²) + 0.05·0.65² ≈ 0.85; following A is right 0.95.
    expect(agreement(fit.majority, truth)).toBeLessThan(0.88);
    expect(agreement(fit.consensus, truth)).toBeGreaterThan(0.93);
  });

  it("leaves unannotated samples without an opinion and judges no annotator among two", () => {
    const table: ScanTable = {
      ids: ["a", "b", "c", "d"],
      digests: ["da", "db", "dc", "dd"],
      labels: Int32Array.from([0, 1, 1, -1]),
      classes: ["x", "y"],
      annotations: [
        [
          { annotator: "p", label: 0 },
          { annotator: "q", label: 0 },
        ],
        [
          { annotator: "p", label: 1 },
          { annotator: "q", label: 0 },
        ],
        [],
        [{ annotator: "p", label: 1 }],
      ],
    };
    const result = dawidSkene.run(table);
    expect(Number.isNaN(result.scores[2])).toBe(true); // nobody annotated it
    expect(Number.isNaN(result.scores[3])).toBe(true); // no given label to disagree with
    expect(result.findings.filter((f) => f.subjectType === "annotator")).toEqual([]);
    expect(result.warnings.join(" ")).toMatch(/2 annotators: too few/);
  });

  it("says why it cannot run", () => {
    const table: ScanTable = {
      ids: ["a"],
      digests: ["d"],
      labels: Int32Array.from([0]),
      classes: ["x", "y"],
    };
    expect(dawidSkene.appliesTo(table)).toMatch(/annotations/);
    table.annotations = [[{ annotator: "p", label: 0 }]];
    expect(dawidSkene.appliesTo(table)).toMatch(/two or more annotations/);
    expectUsage(() => dawidSkene.run(table));
    expectUsage(() => fitDawidSkene([[{ annotator: "p", label: 3 }]], 2), /class 3/);
  });
});
