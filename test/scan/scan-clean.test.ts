import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, memoryDataset } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import type { DatasetInfo, Sample } from "../../src/data/sample.js";
import { encodeNpyHeader } from "../../src/robust/npy.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset, type ScanReport } from "../../src/scan/scan.js";

// The clean SpamAssassin corpus: every flag is a false positive as far as poisoning goes, so the
// ensemble's flag rate here is its false-positive rate on clean data.

let dir: string;
let info: DatasetInfo;
let emails: Sample[];
let report: ScanReport;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-scan-clean-"));
  const dataset = await openDataset("spamassassin");
  info = dataset.info;
  emails = await collect(dataset);
  report = await scanDataset(memoryDataset(emails, info), { seed: 0 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("scan: clean SpamAssassin", () => {
  it("flags at most 0.5% of the emails, none by combined evidence alone, and names no trigger", () => {
    const flagged = report.ensemble.flagged.reduce((a, f) => a + f, 0);
    console.log(
      `clean: ${flagged} of ${emails.length} flagged (${((100 * flagged) / emails.length).toFixed(2)}%): ` +
        report.ensemble.detectors.map((d) => `${d.detector} ${d.flagged}`).join(", ") +
        `; combined-only ${report.ensemble.combinedOnly.length}; scan ${report.seconds.toFixed(1)} s`,
    );
    expect(flagged / emails.length).toBeLessThanOrEqual(0.005); // measured 1 of 6,046
    expect(report.ensemble.combinedOnly).toEqual([]);
    for (let i = 0; i < emails.length; i++)
      expect((report.ensemble.risk[i] as number) > 0.5).toBe(report.ensemble.flagged[i] === 1);
    const json = buildReportJson(report, { dataset: "spamassassin", outDir: "out/scan" });
    expect(json.triggers).toEqual([]);
    expect(json.classes).toEqual([
      expect.objectContaining({ name: "ham", samples: 4150 }),
      expect.objectContaining({ name: "spam", samples: 1896 }),
    ]);
  });

  it("gives the same confident-learning flags from --pred-probs as from the proxy that made them", async () => {
    const probs = report.table.probs!;
    const path = join(dir, "probs.npy");
    const body = Buffer.from(probs.buffer, probs.byteOffset, probs.byteLength);
    writeFileSync(path, Buffer.concat([encodeNpyHeader("F32", [emails.length, 2]), body]));
    const again = await scanDataset(memoryDataset(emails, info), {
      predProbs: path,
      detectors: ["confident-learning"],
    });
    expect(again.representation.probabilities).toMatchObject({
      from: `--pred-probs ${path}`,
      matchedBy: "row order",
    });
    expect(again.skipped.map((s) => [s.detector, s.reason])).toEqual([
      ["dawid-skene", "not selected (--detectors)"],
      ["trigger-tokens", "not selected (--detectors)"],
      ["trigger-patches", "not selected (--detectors)"],
      ["near-duplicates", "not selected (--detectors)"],
      ["spectre", "not selected (--detectors)"],
      ["spectral-signature", "not selected (--detectors)"],
      ["activation-clustering", "not selected (--detectors)"],
      ["feature-outliers", "not selected (--detectors)"],
    ]);
    const cl = (r: ScanReport) =>
      Array.from(r.results.find((x) => x.detector === "confident-learning")!.flagged);
    expect(cl(again)).toEqual(cl(report));
  });
});
