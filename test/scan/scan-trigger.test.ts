import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simulateAttack, type GroundTruth } from "../../src/attack/index.js";
import { collect, memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import { sampleDigest, type Sample } from "../../src/data/sample.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Finding, Ledger } from "../../src/ledger/types.js";
import { renderReportHtml } from "../../src/scan/report-html.js";
import { buildReportJson, type ScanReportJson } from "../../src/scan/report-json.js";
import { scanDataset, type ScanReport } from "../../src/scan/scan.js";

// The whole scan on SpamAssassin with a one-token text backdoor on 1% of the emails (spam with
// "qzv9k" inserted, relabeled ham), one victim also carrying a <script> beside the trigger and markup in
// its id; findings go to a fresh SQLite ledger.

const SCRIPT = `<script>alert("pwned")</script>`;
let dir: string;
let ledger: Ledger;
let report: ScanReport;
let json: ScanReportJson;
let victims: Set<string>;
let gt: GroundTruth;
let marked: Sample;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-scan-trigger-"));
  const dataset = await openDataset("spamassassin");
  const emails = await collect(dataset);
  const writer = new MemoryWriter();
  gt = await simulateAttack(memoryDataset(emails, dataset.info), writer, {
    kind: "text-trigger",
    trigger: "qzv9k",
    target: "ham",
    rate: 0.01,
    seed: 1,
  });
  const samples = writer.samples;
  const at = samples.findIndex((s) => s.id === gt.poisoned[0]!.id);
  const victim = samples[at]!;
  // Next to the trigger, so that it is inside the excerpt the report shows.
  const text = victim.text!.replace("qzv9k", `${SCRIPT} qzv9k`);
  marked = { ...victim, id: `<b>${victim.id}</b>`, text, digest: sampleDigest({ text }) };
  samples[at] = marked;
  victims = new Set(gt.poisoned.map((r) => (r.id === victim.id ? marked.id : r.id)));

  ledger = await openLedger({ location: join(dir, "ledger.db") });
  report = await scanDataset(memoryDataset(samples, dataset.info), { ledger, seed: 0 });
  json = buildReportJson(report, {
    dataset: "spam-trigger.jsonl",
    outDir: "out/scan",
    ledgerFlag: join(dir, "ledger.db"),
  });
  console.log(
    `scan of ${samples.length} emails: ${report.seconds.toFixed(1)} s — ` +
      report.timings.map((t) => `${t.stage} ${t.seconds.toFixed(2)} s`).join(", "),
  );
});
afterAll(async () => {
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("scan: one-token trigger at 1% of SpamAssassin", () => {
  it("flags the poisoned emails with precision ≥ 0.90 and recall ≥ 0.95", () => {
    let tp = 0;
    let fp = 0;
    report.ensemble.flagged.forEach((f, i) => {
      if (f !== 1) return;
      if (victims.has(report.table.ids[i]!)) tp++;
      else fp++;
    });
    const precision = tp / (tp + fp);
    const recall = tp / victims.size;
    console.log(
      `trigger at 1%: ${tp + fp} flagged, precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}`,
    );
    expect(victims.size).toBe(60);
    expect(precision).toBeGreaterThanOrEqual(0.9);
    expect(recall).toBeGreaterThanOrEqual(0.95);
  });

  it("names the trigger and the target in report.json, and each victim's evidence", () => {
    expect(json).toMatchObject({ schema: "antidote.scan-report", schemaVersion: 1 });
    expect(json.triggers).toEqual([expect.objectContaining({ ngram: "qzv9k", target: "ham" })]);
    const victim = json.flagged.find((s) => s.id === marked.id)!;
    expect(victim).toMatchObject({ label: "ham", digest: marked.digest });
    expect(victim.detectors).toContain("trigger-tokens");
    expect(victim.risk).toBeGreaterThan(0.5);
    expect(victim.evidence["trigger-tokens"]).toMatchObject({ ngram: "qzv9k", target: "ham" });
    const offset = (victim.evidence["trigger-tokens"] as { offset: number }).offset;
    expect(marked.text!.slice(offset, offset + 5)).toBe("qzv9k");
    // Highest risk first; every flagged sample above 0.5, every other below.
    for (let k = 1; k < json.flagged.length; k++)
      expect(json.flagged[k]!.risk).toBeLessThanOrEqual(json.flagged[k - 1]!.risk);
    const ran = json.detectors.filter((d) => d.status === "ran").map((d) => d.name);
    expect(ran).toEqual(["confident-learning", "trigger-tokens", "near-duplicates"]);
    expect(json.detectors.find((d) => d.name === "dawid-skene")).toMatchObject({ status: "skipped" });
    for (const d of json.detectors.filter((x) => x.status === "ran"))
      expect(d.seconds).toBeGreaterThanOrEqual(0);
    expect(json.timings.map((t) => t.stage)).toEqual(
      expect.arrayContaining(["read", "representation", "detector trigger-tokens", "ensemble", "ledger"]),
    );
    expect(json.nextSteps.map((s) => s.command)).toContain(
      `antidote quarantine --findings-over 0.5 --reason 'antidote scan ${json.createdAt.slice(0, 10)}: ${json.flagged.length} flagged samples' --ledger ${join(dir, "ledger.db")}`,
    );
  });

  it("writes a self-contained HTML report that escapes the data", () => {
    const html = renderReportHtml(json, { previews: report.previews });
    // Every "<" of user text is escaped, so every tag in the file is the report's own: none may load
    // anything (only data: URIs), and there is no script, stylesheet link or CSS import.
    const tags = html.match(/<[a-z][^>]*>/gi) ?? [];
    expect(tags.length).toBeGreaterThan(100);
    const refs = tags.flatMap((t) =>
      [...t.matchAll(/\b(?:src|href|xlink:href|action|poster)\s*=\s*"([^"]*)"/gi)].map((m) => m[1]!),
    );
    for (const ref of refs) expect(ref).toMatch(/^data:image\/png;base64,/);
    expect(tags.filter((t) => /^<(script|link|iframe|object|embed|base)\b/i.test(t))).toEqual([]);
    expect(html).not.toMatch(/@import|url\(/i);
    expect(html).toContain("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;");
    expect(html).toContain("&lt;b&gt;");
    expect(html).toMatch(/<mark title="qzv9k">qzv9k<\/mark>/);
    expect(html).toMatch(/<svg class="chart"/);
    expect(html).toContain("antidote quarantine --findings-over 0.5");
  });

  it("records one append of findings keyed by digest, and the ledger verifies", async () => {
    expect(report.ledger).toMatchObject({ findings: expect.any(Number) as number, datasetVersions: [] });
    const recorded: Finding[] = [];
    for await (const f of ledger.findings()) recorded.push(f);
    expect(recorded).toHaveLength(report.ledger!.findings);
    const seqs = recorded.map((f) => (f as Finding & { seq: number }).seq);
    expect(Math.max(...seqs) - Math.min(...seqs) + 1).toBe(recorded.length); // consecutive: one append
    const flaggedDigests = new Set(json.flagged.map((s) => s.digest));
    const sampleFindings = recorded.filter((f) => f.subjectType === "sample");
    expect(new Set(sampleFindings.map((f) => f.subjectId))).toEqual(flaggedDigests);
    for (const f of sampleFindings) {
      expect(f).toMatchObject({ kind: "poisoning-risk", check: "scan" });
      expect(f.score).toBeGreaterThan(0.5);
    }
    // What `quarantine --findings-over 0.5` would take is exactly the flagged set.
    const over: string[] = [];
    for await (const f of ledger.findings({ subjectType: "sample", minScore: 0.5 }))
      if (f.score > 0.5) over.push(f.subjectId);
    expect(new Set(over)).toEqual(flaggedDigests);
    expect(recorded.filter((f) => f.subjectType === "dataset")).toEqual([
      expect.objectContaining({ kind: "trigger-token", subjectId: report.dataset.merkleRoot }),
    ]);
    const verify = await ledger.verify();
    expect(verify).toMatchObject({ ok: true, tableMismatches: [] });
  });
});
