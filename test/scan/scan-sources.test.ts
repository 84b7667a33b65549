import { beforeAll, describe, expect, it } from "vitest";
import { simulateAttack, type AttackSpec } from "../../src/attack/index.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import type { DatasetInfo, Sample } from "../../src/data/sample.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset } from "../../src/scan/scan.js";

// A compromised supplier: SpamAssassin dealt to five suppliers, and a quarter of vendor-c's labels
// flipped. The scan must rank vendor-c first, call no other supplier anomalous, and tell the user
// how to trace and exclude it.

const SOURCES = ["vendor-a", "vendor-b", "vendor-c", "vendor-d", "vendor-e"];
let info: DatasetInfo;
let flipped: Sample[];
let victims: Set<string>;

async function attack(input: readonly Sample[], spec: AttackSpec) {
  const writer = new MemoryWriter();
  const gt = await simulateAttack(memoryDataset(input, info), writer, spec);
  return { out: writer.samples, gt };
}

beforeAll(async () => {
  const dataset = await openDataset("spamassassin");
  info = dataset.info;
  const emails = await collect(dataset);
  const sourced = (
    await attack(emails, {
      kind: "assign-sources",
      seed: 1,
      sources: SOURCES.map((name) => ({ name, share: 0.2 })),
    })
  ).out;
  const count = Math.round(0.25 * sourced.filter((s) => s.source === "vendor-c").length);
  const { out, gt } = await attack(sourced, { kind: "label-flip", fromSource: "vendor-c", count, seed: 11 });
  flipped = out;
  victims = new Set(gt.poisoned.map((r) => r.id));
});

describe("scan: 25% label flips from one of five suppliers", () => {
  it("ranks the supplier first, and no other is anomalous", async () => {
    const report = await scanDataset(memoryDataset(flipped, info), { seed: 0 });
    const sources = report.ensemble.sources;
    console.log(
      `sources: ${sources.map((s) => `${s.name} ${s.flagged}/${s.samples} p=${s.pValue.toExponential(1)}${s.anomalous ? " ANOMALOUS" : ""}`).join("; ")}` +
        ` — scan ${report.seconds.toFixed(1)} s`,
    );
    expect(sources.map((s) => s.name).sort()).toEqual(SOURCES);
    expect(sources[0]).toMatchObject({ name: "vendor-c", anomalous: true });
    expect(sources[0]!.checks).toContain("source-risk");
    expect(sources.filter((s) => s.anomalous).map((s) => s.name)).toEqual(["vendor-c"]);

    let tp = 0;
    report.ensemble.flagged.forEach((f, i) => f === 1 && victims.has(report.table.ids[i]!) && tp++);
    const flagged = report.ensemble.flagged.reduce((a, f) => a + f, 0);
    console.log(
      `flips: ${victims.size} victims, ${flagged} flagged, precision ${(tp / flagged).toFixed(3)}, recall ${(tp / victims.size).toFixed(3)}`,
    );
    expect(tp / victims.size).toBeGreaterThan(0.85); // confident learning alone: 0.90–0.95 measured

    const json = buildReportJson(report, { dataset: "spam-vendor-c.jsonl", outDir: "out/scan" });
    expect((json.sources as { name: string }[])[0]!.name).toBe("vendor-c");
    const commands = json.nextSteps.map((s) => s.command ?? "");
    expect(commands).toContain("antidote trace --source vendor-c");
    expect(
      commands.some((c) => c.startsWith("antidote export ") && c.includes("--exclude-source vendor-c")),
    ).toBe(true);
    // No ledger was given: the first step says how to record the findings.
    expect(commands[0]).toBe("antidote scan spam-vendor-c.jsonl --ledger .antidote/ledger.db --out out/scan");
  });
});
