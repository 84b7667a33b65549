import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simulateAttack, type GroundTruth } from "../../src/attack/index.js";
import { collect } from "../../src/data/memory.js";
import { createWriter, openDataset } from "../../src/data/open.js";
import { memoryDataset } from "../../src/data/memory.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Ledger } from "../../src/ledger/types.js";
import { exportVersion } from "../../src/provenance/export.js";
import { ingestDelivery } from "../../src/provenance/ingest.js";
import { buildReportJson } from "../../src/scan/report-json.js";
import { scanDataset } from "../../src/scan/scan.js";

// The loop the report's next steps promise: a crawl delivery (a third of SpamAssassin with a
// one-token trigger on 2% of it) is ingested, scanned with the ledger, the flagged samples are
// quarantined as `quarantine --findings-over 0.5` does, and the clean export leaves them out.

let dir: string;
let ledger: Ledger;
let data: string;
let gt: GroundTruth;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-scan-loop-"));
  const dataset = await openDataset("spamassassin");
  const emails = (await collect(dataset)).filter((_, i) => i % 3 === 0);
  data = join(dir, "crawl.jsonl");
  gt = await simulateAttack(
    memoryDataset(emails, dataset.info),
    await createWriter(data, { classes: dataset.info.classes }),
    { kind: "text-trigger", trigger: "qzv9k", target: "ham", rate: 0.02, seed: 3 },
  );
  ledger = await openLedger({ location: join(dir, "ledger.db") });
  await ledger.append([
    {
      kind: "source.added",
      payload: { name: "crawl", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
    },
  ]);
});
afterAll(async () => {
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("scan in the provenance loop", () => {
  it("finds the ingested version, and its quarantine + clean export leave the flagged samples out", async () => {
    const ingested = await ingestDelivery(ledger, { target: data, source: "crawl" });
    const report = await scanDataset(await openDataset(data), { ledger });
    expect(report.ledger?.datasetVersions).toEqual([ingested.datasetVersion]);

    const json = buildReportJson(report, { dataset: data, outDir: dir, ledgerFlag: join(dir, "ledger.db") });
    const victims = new Set(gt.poisoned.map((r) => r.id));
    const caught = json.flagged.filter((s) => victims.has(s.id)).length;
    expect(caught / victims.size).toBeGreaterThanOrEqual(0.95);
    expect(caught / json.flagged.length).toBeGreaterThanOrEqual(0.9);
    const exportStep = json.nextSteps.find((s) => s.command?.startsWith("antidote export"))!;
    expect(exportStep.command).toBe(
      `antidote export --dataset ${ingested.datasetVersion} --exclude-quarantined --out ${join(dir, "clean.jsonl")} --ledger ${join(dir, "ledger.db")}`,
    );

    // `antidote quarantine --findings-over 0.5`, as the quarantine command selects its subjects.
    const subjects = new Set<string>();
    for await (const f of ledger.findings({ subjectType: "sample", minScore: 0.5 }))
      if (f.score > 0.5) subjects.add(f.subjectId);
    await ledger.append([
      {
        kind: "decision.recorded",
        payload: {
          action: "quarantine",
          subjectType: "sample",
          subjectIds: [...subjects],
          actor: "test",
          reason: "scan",
        },
      },
    ]);
    const clean = await exportVersion(ledger, {
      version: ingested.datasetVersion,
      out: join(dir, "clean.jsonl"),
      excludeQuarantined: true,
    });
    expect(clean.excluded.quarantined).toBe(subjects.size);
    const kept = await collect(await openDataset(join(dir, "clean.jsonl")));
    expect(kept).toHaveLength(clean.written);
    const flaggedDigests = new Set(json.flagged.map((s) => s.digest));
    expect(kept.filter((s) => flaggedDigests.has(s.digest))).toEqual([]);
    expect(kept.filter((s) => victims.has(s.id)).length).toBeLessThanOrEqual(victims.size - caught);
    expect((await ledger.verify()).ok).toBe(true);
  });
});
