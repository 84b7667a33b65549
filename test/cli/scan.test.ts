import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simulateAttack } from "../../src/attack/index.js";
import { collect, memoryDataset } from "../../src/data/memory.js";
import { createWriter, openDataset } from "../../src/data/open.js";
import { encodeNpyHeader } from "../../src/robust/npy.js";
import type { ScanReportJson } from "../../src/scan/report-json.js";
import { antidote, expectUserError, type CliResult } from "../helpers/cli.js";

// `antidote scan` as a user runs it, on a JSONL file written from SpamAssassin with a one-token
// trigger on 1% of the emails: the summary, the reports, the ledger, the input left untouched,
// and clear errors for bad --features / --pred-probs / --model.

let dir: string;
let poisoned: string;
let small: string;
let quick: ReturnType<typeof quickRuns>;

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-cli-scan-"));
  const dataset = await openDataset("spamassassin");
  const emails = await collect(dataset);
  poisoned = join(dir, "spam-trigger.jsonl");
  await simulateAttack(
    memoryDataset(emails, dataset.info),
    await createWriter(poisoned, { classes: dataset.info.classes }),
    {
      kind: "text-trigger",
      trigger: "qzv9k",
      target: "ham",
      rate: 0.01,
      seed: 1,
    },
  );
  small = join(dir, "small.jsonl");
  const writer = await createWriter(small, { classes: dataset.info.classes });
  for (const s of emails.filter((_, i) => i % 30 === 0)) await writer.write(s); // SMALL = 202 emails, both classes
  await writer.close();
  quick = quickRuns();
  quick.catch(() => undefined); // awaited by the tests that read it
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote scan", () => {
  it("scans, summarises, writes both reports, records the findings, and leaves the input byte-identical", async () => {
    const before = sha256(poisoned);
    const ledger = join(dir, "ledger.db");
    const out = join(dir, "scan");
    const r = await antidote(["scan", poisoned, "--out", out, "--ledger", ledger]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    console.log(r.stdout);
    expect(r.stdout).toMatch(/^scanned 6,046 samples of .*spam-trigger\.jsonl in [\d.]+ s/);
    expect(r.stdout).toMatch(
      /flagged \d+ samples \(1\.\d+%\): confident-learning \d+, trigger-tokens 60, near-duplicates 0/,
    );
    expect(r.stdout).toContain('trigger: "qzv9k" → ham: 60 of the 60 samples with it and the label flagged');
    expect(r.stdout).toMatch(/skipped: dawid-skene \(needs several annotations per sample/);
    expect(r.stdout).toContain(`report: ${join(out, "report.html")}`);
    expect(r.stdout).toMatch(/ledger: \d+ findings recorded in sqlite:/);
    expect(r.stdout).toContain(`next:   antidote quarantine --findings-over 0.5 --reason`);
    expect(sha256(poisoned)).toBe(before);

    const json = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as ScanReportJson;
    expect(json).toMatchObject({
      schema: "antidote.scan-report",
      schemaVersion: 1,
      dataset: { samples: 6046, format: "jsonl" },
    });
    expect(json.triggers).toEqual([
      expect.objectContaining({ ngram: "qzv9k", target: "ham", targetCount: 60 }),
    ]);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<mark title="qzv9k">qzv9k</mark>');

    // The report's first next step, run as printed, quarantines exactly the flagged samples; the
    // ledger, scan findings and decision included, still verifies.
    const step = json.nextSteps.find((s) => s.command?.startsWith("antidote quarantine"))!.command!;
    expect(step).toContain(`--findings-over 0.5`);
    expect(step).toContain(`--ledger ${ledger}`);
    const q = await antidote([
      "quarantine",
      "--findings-over",
      "0.5",
      "--reason",
      "scan",
      "--ledger",
      ledger,
    ]);
    expect(q.code).toBe(0);
    expect(q.stdout).toContain(`quarantined ${json.ensemble.flagged} sample(s)`);
    const verify = await antidote(["ledger", "verify", "--ledger", ledger]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/OK/);
  });

  it("prints JSON with --json, and nothing but the report paths with --quiet", async () => {
    const { json: j, quiet: q } = await quick;
    expect(j.code).toBe(0);
    const summary = JSON.parse(j.stdout) as {
      samples: number;
      detectors: { name: string; status: string }[];
      report: { json: string };
    };
    expect(summary.samples).toBe(202);
    expect(summary.detectors.map((d) => [d.name, d.status])).toEqual([
      ["confident-learning", "ran"],
      ["dawid-skene", "skipped"],
      ["trigger-tokens", "skipped"],
      ["trigger-patches", "skipped"],
      ["near-duplicates", "skipped"],
      ["spectre", "skipped"],
      ["spectral-signature", "skipped"],
      ["activation-clustering", "skipped"],
      ["feature-outliers", "skipped"],
    ]);
    expect(summary.report.json).toBe(join(dir, "small-json", "report.json"));
    expect(q.code).toBe(0);
    expect(q.stdout).toBe(
      `${join(dir, "small-quiet", "report.html")}\n${join(dir, "small-quiet", "report.json")}\n`,
    );
  });

  it("fails with one clear line and the documented exit code on bad inputs", async () => {
    const { short, nan, wide, model, unknown } = await quick;
    expectUserError(
      short,
      3,
      new RegExp(`short\\.npy: ${SMALL - 1} rows, but the dataset has ${SMALL} samples`),
    );
    expectUserError(nan, 3, /nan\.npy: row 5 \(sample "[^"]+"\), column 1 is NaN/);
    expectUserError(
      wide,
      3,
      /wide\.npy: 3 columns of probabilities, but the dataset has 2 classes \(ham, spam\)/,
    );
    expectUserError(model, 3, /m\.onnx: no such model file\./);
    expectUserError(
      unknown,
      2,
      /--detectors: "spectral" is not a detector; known: confident-learning, dawid-skene/,
    );
  });

  it("teaches with examples in --help", async () => {
    const { help: r } = await quick;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:\n\s+antidote scan /);
    for (const flag of [
      "--features",
      "--pred-probs",
      "--model",
      "--ledger",
      "--out",
      "--detectors",
      "--seed",
      "--json",
      "--quiet",
      "--text-column",
    ])
      expect(r.stdout).toContain(flag);
  });
});

const SMALL = 202;

// The short runs (a 202-email file, errors, help), started together while the full scan runs:
// they are mostly process start-up.
function quickRuns() {
  const npy = (name: string, rows: number, cols: number, at?: [number, number]) => {
    const body = Buffer.alloc(rows * cols * 4);
    for (let k = 0; k < rows * cols; k++) body.writeFloatLE(0.5, k * 4);
    if (at !== undefined) body.writeFloatLE(NaN, (at[0] * cols + at[1]) * 4);
    const path = join(dir, name);
    writeFileSync(path, Buffer.concat([encodeNpyHeader("F32", [rows, cols]), body]));
    return path;
  };
  const out = join(dir, "bad");
  const runs = {
    json: ["scan", small, "--out", join(dir, "small-json"), "--detectors", "confident-learning", "--json"],
    quiet: ["scan", small, "--out", join(dir, "small-quiet"), "--detectors", "confident-learning", "--quiet"],
    short: ["scan", small, "--out", out, "--features", npy("short.npy", SMALL - 1, 8)],
    nan: ["scan", small, "--out", out, "--features", npy("nan.npy", SMALL, 8, [4, 1])],
    wide: ["scan", small, "--out", out, "--pred-probs", npy("wide.npy", SMALL, 3)],
    model: ["scan", small, "--out", out, "--model", "m.onnx"],
    unknown: ["scan", small, "--out", out, "--detectors", "confident-learning,spectral"],
    help: ["scan", "--help"],
  };
  // One at a time: the full scan holds one core, these take the other.
  return (async () => {
    const results: Partial<Record<keyof typeof runs, CliResult>> = {};
    for (const k of Object.keys(runs) as (keyof typeof runs)[]) results[k] = await antidote(runs[k]);
    return results as Record<keyof typeof runs, CliResult>;
  })();
}
