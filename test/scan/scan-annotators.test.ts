import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import type { DatasetInfo, Sample } from "../../src/data/sample.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset } from "../../src/scan/scan.js";

// A labeling contractor with one bad worker: six annotators label every SpamAssassin email and
// annotator-6 lies on 40% of its annotations. The scan must rank annotator-6 first and call no
// honest annotator anomalous.

let info: DatasetInfo;
let annotated: Sample[];

beforeAll(async () => {
  const dataset = await openDataset("spamassassin");
  info = dataset.info;
  const writer = new MemoryWriter();
  await simulateAttack(memoryDataset(await collect(dataset), info), writer, {
    kind: "malicious-annotator",
    annotators: 6,
    flipRate: 0.4,
    seed: 4,
  });
  annotated = writer.samples;
});

describe("scan: a malicious annotator among six", () => {
  it("ranks the malicious annotator first, with its accuracy, and no honest one is anomalous", async () => {
    const report = await scanDataset(memoryDataset(annotated, info), { seed: 0 });
    const annotators = report.ensemble.annotators;
    console.log(
      `annotators: ${annotators.map((a) => `${a.name} acc=${a.accuracy?.toFixed(3)}${a.anomalous ? ` ANOMALOUS (${a.checks.join(", ")})` : ""}`).join("; ")}` +
        ` — scan ${report.seconds.toFixed(1)} s`,
    );
    expect(report.results.map((r) => r.detector)).toContain("dawid-skene");
    expect(annotators).toHaveLength(6);
    expect(annotators[0]).toMatchObject({ name: "annotator-6", anomalous: true });
    expect(annotators.filter((a) => a.anomalous).map((a) => a.name)).toEqual(["annotator-6"]);
    expect(annotators[0]!.accuracy).toBeLessThan(0.7); // lies on 40%: ≈ 0.6
    for (const a of annotators.slice(1)) expect(a.accuracy).toBeGreaterThan(0.9); // honest: ≈ 0.95

    const json = buildReportJson(report, { dataset: "spam-annot.jsonl", outDir: "out/scan" });
    expect((json.annotators as { name: string }[])[0]!.name).toBe("annotator-6");
    expect(json.nextSteps.some((s) => s.why.includes(`"annotator-6"`))).toBe(true);
  });
});
