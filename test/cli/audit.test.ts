import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditReportJson } from "../../src/audit/report-json.js";
import { createWriter } from "../../src/data/open.js";
import { FASHION_MNIST_CLASSES } from "../../src/data/builtin.js";
import { exportOnnx } from "../../src/onnx/export.js";
import { antidote, expectUserError, type CliResult } from "../helpers/cli.js";
import {
  fashionModel,
  fashionSamples,
  triggeredTestImages,
  type FashionModel,
} from "../helpers/fm-models.js";

// `antidote audit` as a user runs it: a Fashion-MNIST MLP with a BadNets patch towards Ankle boot,
// audited against a clean MLP on the test split, with a folder of patched and clean images to
// screen; then the mistakes a user makes, each one line with its exit code.

let dir: string;
let backdoored: FashionModel;
let clean: FashionModel;
let inputs: string;
type QuickRun = "json" | "otherTask" | "text" | "notOnnx" | "missing" | "ratio" | "shape" | "help";
let quick: Promise<Record<QuickRun, CliResult>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-cli-audit-"));
  backdoored = await fashionModel({
    arch: "mlp",
    attack: "patch",
    target: 9,
    rate: 0.02,
    train: 8000,
    dir,
    name: "bd",
  });
  clean = await fashionModel({ arch: "mlp", train: 8000, dir, name: "clean" });
  // 60 images to screen: 30 stamped with the simulator's patch, then 30 clean ones.
  const stamped = await triggeredTestImages(backdoored.attack!, 9, 200);
  const cleanImages = (await fashionSamples("test", 400)).slice(300, 330);
  inputs = join(dir, "inputs.parquet");
  const writer = await createWriter(inputs, { classes: [...FASHION_MNIST_CLASSES] });
  for (let i = 0; i < 30; i++)
    await writer.write({
      id: `patched-${i}`,
      digest: "",
      label: null,
      image: { height: 28, width: 28, channels: 1, data: stamped.x.slice(i * 784, (i + 1) * 784) },
      source: null,
      annotations: [],
      metadata: {},
    });
  for (const s of cleanImages) await writer.write({ ...s, id: `clean-${s.id}` });
  await writer.close();
  quick = quickRuns();
  quick.catch(() => undefined);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote audit", () => {
  it("audits against a reference, names the target, screens inputs, writes both reports and the ledger", async () => {
    const out = join(dir, "audit");
    const ledger = join(dir, "ledger.db");
    const r = await antidote([
      "audit",
      backdoored.onnxPath,
      "--data",
      "fashion-mnist:test",
      "--reference",
      clean.onnxPath,
      "--samples",
      "300",
      "--steps",
      "300",
      "--inputs",
      inputs,
      "--frr",
      "0.05",
      "--ledger",
      ledger,
      "--out",
      out,
    ]);
    console.log(r.stdout);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0); // a backdoor found is a result, not a failure
    expect(r.stdout).toMatch(
      /^audited .*bd\.onnx \(sha256 [0-9a-f]{12}…\) in [\d.]+ s: 300 clean images of fashion-mnist:test, 1 reference/,
    );
    expect(r.stdout).toMatch(
      /verdict: BACKDOOR SUSPECTED\n {2}label Ankle boot: trigger norm [\d.]+ vs [\d.]+ in the references \([\d.]+× smaller\)/,
    );
    expect(r.stdout).toMatch(/STRIP: threshold [\d.]+ bits at FRR 5\.0%/);
    expect(r.stdout).toMatch(/ledger: finding backdoor-suspected recorded in sqlite:/);
    expect(r.stdout).toContain(`report: ${join(out, "report.html")}`);

    const json = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as AuditReportJson;
    expect(json).toMatchObject({ schema: "antidote.audit-report", schemaVersion: 1, seed: 0 });
    expect(json.verdict.suspected.map((s) => s.className)).toEqual(["Ankle boot"]);
    const strip = json.strip!;
    expect(strip.inputs!.count).toBe(60);
    const flaggedIds = strip.inputs!.flaggedInputs.map((e) => e.id);
    const patched = flaggedIds.filter((id) => id.startsWith("patched-")).length;
    expect(patched).toBeGreaterThanOrEqual(15); // most stamped inputs are caught…
    expect(flaggedIds.length - patched).toBeLessThanOrEqual(5); // …few clean ones
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("Backdoor suspected: Ankle boot");
    expect(html).toContain("STRIP — input screening");
  });

  it("prints JSON with --json, and says a MAD-only verdict is weaker", async () => {
    const { json: r } = await quick;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as {
      verdict: { method: string; note: string; backdoor: boolean };
      labels: { label: number; l1: number }[];
      report: { json: string };
    };
    expect(summary.verdict.method).toBe("mad");
    expect(summary.verdict.note).toBe(
      "no reference: MAD index only, which flags labels with naturally small triggers",
    );
    expect(summary.labels).toHaveLength(10);
    expect(summary.report.json).toBe(join(dir, "mad", "report.json"));
  });

  it("fails with one clear line and the documented exit code on bad inputs", async () => {
    const q = await quick;
    expectUserError(
      q.otherTask,
      3,
      /--reference .*five\.onnx: has 5 classes, but the audited model .*clean\.onnx has 10/,
    );
    expectUserError(q.text, 3, /--data spamassassin: has no images/);
    expectUserError(q.notOnnx, 3, /notes\.onnx: not an ONNX model/);
    expectUserError(q.missing, 3, /nowhere\.onnx: no such model file\./);
    expectUserError(q.ratio, 2, /--ratio: must be greater than 1/);
    expectUserError(q.shape, 2, /--input-shape: give the dimensions without the batch/);
  });

  it("teaches with examples in --help", async () => {
    const { help: r } = await quick;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:\n\s+antidote audit /);
    expect(r.stdout).toMatch(/Exit status is 0 whenever the audit ran/);
    for (const flag of [
      "--data",
      "--reference",
      "--input-shape",
      "--output",
      "--inputs",
      "--ledger",
      "--steps",
      "--seed",
      "--samples",
      "--ratio",
      "--json",
      "--out",
    ])
      expect(r.stdout).toContain(flag);
  });
});

// The short runs (errors, help, a quick MAD-only audit), one at a time beside the full audit.
function quickRuns(): Promise<Record<QuickRun, CliResult>> {
  const five = join(dir, "five.onnx");
  writeFileSync(
    five,
    exportOnnx({
      inputShape: [1, 28, 28],
      classes: ["a", "b", "c", "d", "e"],
      layers: [
        { kind: "flatten" },
        {
          kind: "dense",
          inputs: 784,
          outputs: 5,
          weight: new Float32Array(5 * 784).fill(0.01),
          bias: new Float32Array(5),
        },
      ],
    }),
  );
  const notes = join(dir, "notes.onnx");
  writeFileSync(notes, "this is not a model\n");
  const out = join(dir, "bad");
  const data = ["--data", "fashion-mnist:test"];
  const runs: Record<QuickRun, string[]> = {
    json: [
      "audit",
      clean.onnxPath,
      ...data,
      "--samples",
      "200",
      "--steps",
      "200",
      "--out",
      join(dir, "mad"),
      "--json",
    ],
    otherTask: ["audit", clean.onnxPath, ...data, "--reference", five, "--out", out],
    text: ["audit", clean.onnxPath, "--data", "spamassassin", "--out", out],
    notOnnx: ["audit", notes, ...data, "--out", out],
    missing: ["audit", join(dir, "nowhere.onnx"), ...data, "--out", out],
    ratio: ["audit", clean.onnxPath, ...data, "--ratio", "0.5", "--out", out],
    shape: ["audit", clean.onnxPath, ...data, "--input-shape", "1x28x28", "--out", out],
    help: ["audit", "--help"],
  };
  return (async () => {
    const results: Partial<Record<QuickRun, CliResult>> = {};
    for (const k of Object.keys(runs) as QuickRun[]) results[k] = await antidote(runs[k]);
    return results as Record<QuickRun, CliResult>;
  })();
}
