// Annotations without a label column (issue "Harden the scan"): a contractor's five workers
// label 2,000 SpamAssassin emails, three per email, and annotator-5 lies on 40 % of its
// annotations; the label column is removed. The scan must label the data from the annotators'
// consensus, run the label-based detectors on it, list the liar's annotations to drop, and flag
// the samples whose label only the liar carries. With the label column kept, it must count where
// the given labels and the consensus disagree.
import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import type { DatasetInfo, Sample } from "../../src/data/sample.js";
import { scanDataset, type ScanReport } from "../../src/scan/scan.js";

let info: DatasetInfo;
let annotated: Sample[];
/** The emails whose every annotation is annotator-5's: their label rests on the liar alone. */
let liarOnly: Set<string>;
let lies: Set<string>;
let stripped: ScanReport;

interface Drop {
  annotator: string;
  drop: { id: string; label: string; consensusLabel: string }[];
}

beforeAll(async () => {
  const dataset = await openDataset("spamassassin");
  info = dataset.info;
  const writer = new MemoryWriter();
  await simulateAttack(memoryDataset((await collect(dataset)).slice(0, 2000), info), writer, {
    kind: "malicious-annotator",
    annotators: 5,
    annotatorsPerSample: 3,
    flipRate: 0.4,
    seed: 4,
  });
  // The first 40 emails annotator-5 labeled lose their other two annotations.
  liarOnly = new Set(
    writer.samples
      .filter((s) => s.annotations.some((a) => a.annotator === "annotator-5"))
      .slice(0, 40)
      .map((s) => s.id),
  );
  annotated = writer.samples.map((s) =>
    liarOnly.has(s.id)
      ? { ...s, annotations: s.annotations.filter((a) => a.annotator === "annotator-5") }
      : s,
  );
  lies = new Set(
    annotated
      .filter((s) => s.annotations.some((a) => a.annotator === "annotator-5" && a.label !== s.label))
      .map((s) => s.id),
  );
  stripped = await scanDataset(
    memoryDataset(
      annotated.map((s) => ({ ...s, label: null })),
      info,
    ),
    { seed: 0 },
  );
}, 300_000);

describe("scan: labels only as annotations", () => {
  it("labels every annotated sample from the consensus and runs the label-based detectors on it", () => {
    expect(stripped.dataset.labelOrigin).toBe("consensus");
    expect(stripped.dataset.labeled).toBe(annotated.length);
    expect(stripped.results.map((r) => r.detector)).toEqual(
      expect.arrayContaining(["confident-learning", "dawid-skene", "trigger-tokens"]),
    );
    // Outside the emails the liar labels alone, the consensus is the truth almost everywhere.
    const wrong = annotated.filter(
      (s, i) => !liarOnly.has(s.id) && stripped.table.classes[stripped.table.labels[i] as number] !== s.label,
    ).length;
    expect(wrong / (annotated.length - liarOnly.size)).toBeLessThan(0.01);
  });

  it("lists annotator-5's overruled annotations to drop (precision and recall ≥ 0.95), no honest annotator's", () => {
    const ds = stripped.results.find((r) => r.detector === "dawid-skene");
    const drops = (ds?.summary as { annotationsToDrop: Drop[] }).annotationsToDrop;
    expect(drops.map((d) => d.annotator)).toEqual(["annotator-5"]);
    // Where the liar labels alone there is nothing to overrule it: those lies are the flagged samples' business.
    const overrulable = [...lies].filter((id) => !liarOnly.has(id));
    const dropped = new Set(drops[0]?.drop.map((d) => d.id));
    const hits = overrulable.filter((id) => dropped.has(id)).length;
    expect(hits / dropped.size).toBeGreaterThanOrEqual(0.95);
    expect(hits / overrulable.length).toBeGreaterThanOrEqual(0.95);
  });

  it("flags exactly the samples whose label only annotator-5 carries", () => {
    const ds = stripped.results.find((r) => r.detector === "dawid-skene");
    const decided = (ds?.findings ?? []).filter((f) => f.kind === "label-decided-by-unreliable-annotator");
    expect(new Set(decided.map((f) => (f.evidence as { id: string }).id))).toEqual(liarOnly);
    const flagged = new Set(stripped.table.ids.filter((_, i) => ds?.flagged[i] === 1));
    for (const id of liarOnly) expect(flagged.has(id)).toBe(true);
  });

  it("with the label column kept, counts the samples whose given label the consensus contradicts", async () => {
    const report = await scanDataset(memoryDataset(annotated, info), { seed: 0, detectors: ["dawid-skene"] });
    expect(report.dataset.labelOrigin).toBe("given");
    const ds = report.results.find((r) => r.detector === "dawid-skene");
    // Same annotations, same fit: the consensus of the run without labels is the oracle.
    const expected = annotated.filter(
      (s, i) => stripped.table.classes[stripped.table.labels[i] as number] !== s.label,
    ).length;
    expect(expected).toBeGreaterThan(0);
    expect((ds?.summary as { givenDiffersFromConsensus: number }).givenDiffersFromConsensus).toBe(expected);
  });
});
