import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditModel, type AuditOptions, type AuditReport } from "../../src/audit/audit.js";
import type { NeuralCleanseResult } from "../../src/audit/neural-cleanse.js";
import { renderAuditHtml } from "../../src/audit/report-html.js";
import { buildAuditReportJson } from "../../src/audit/report-json.js";
import { decideVerdict } from "../../src/audit/verdict.js";
import { FASHION_MNIST_CLASSES } from "../../src/data/builtin.js";
import { isAntidoteError, type AntidoteErrorCode } from "../../src/errors.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Finding, Ledger } from "../../src/ledger/types.js";
import { exportOnnx } from "../../src/onnx/export.js";
import { fashionModel, type FashionModel } from "../helpers/fm-models.js";

// The audit end to end on real ONNX files: Fashion-MNIST MLPs trained here, two with a BadNets
// patch towards T-shirt/top (the project's simulator, 2% of the training images; seeds 0 and 1),
// two clean ones (seeds 0 and 1). Against a clean reference the backdoored model's target is
// flagged and no other label is; against a reference whose T-shirt/top trigger is as small (the
// other backdoored model) it is not; a clean model against another clean one is not flagged.
// To keep the file short the inversion covers four labels (the target, Shirt, Bag, Ankle boot)
// and each model is inverted once (the inversions are cached by model digest).

const LABELS = [0, 6, 8, 9];

let dir: string;
let backdoored: FashionModel;
let cleanA: FashionModel;
let cleanB: FashionModel;
let backdooredTwin: FashionModel;
let ledger: Ledger;
const cache = new Map<string, NeuralCleanseResult>();

const base = (): AuditOptions => ({
  data: "fashion-mnist:test",
  samples: 400,
  seed: 0,
  neuralCleanse: { labels: LABELS },
  inversionCache: cache,
  strip: false,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-audit-"));
  backdoored = await fashionModel({
    arch: "mlp",
    attack: "patch",
    target: 0,
    rate: 0.02,
    train: 8000,
    dir,
    name: "bd",
  });
  cleanA = await fashionModel({ arch: "mlp", train: 8000, seed: 0, dir, name: "clean-a" });
  cleanB = await fashionModel({ arch: "mlp", train: 8000, seed: 1, dir, name: "clean-b" });
  backdooredTwin = await fashionModel({
    arch: "mlp",
    attack: "patch",
    target: 0,
    rate: 0.02,
    train: 8000,
    seed: 1,
    dir,
    name: "bd-twin",
  });
  ledger = await openLedger({ location: join(dir, "ledger.db") });
});
afterAll(async () => {
  await ledger?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("auditModel", () => {
  let flagged: AuditReport;

  it("flags the backdoor's target against a clean reference, and no other label", async () => {
    expect(backdoored.attackSuccessRate).toBeGreaterThan(0.8);
    flagged = await auditModel(backdoored.onnxPath, { ...base(), references: [cleanA.onnxPath], ledger });
    const v = flagged.verdict;
    expect(v.method).toBe("reference");
    expect(v.backdoor).toBe(true);
    expect(v.suspected.map((l) => l.className)).toEqual(["T-shirt/top"]);
    const target = v.labels.find((l) => l.label === 0)!;
    expect(target.ratio).toBeGreaterThanOrEqual(3);
    expect(target.asr).toBeGreaterThanOrEqual(0.8);
    for (const l of v.labels.filter((x) => x.label !== 0)) expect(l.ratio!).toBeLessThan(2);
    console.log(
      v.labels.map((l) => `${l.className}: ${l.l1.toFixed(1)} vs ${l.referenceL1!.toFixed(1)}`).join(", "),
    );

    // The translation was checked against ONNX Runtime, the images were labeled, the model is named by digest.
    expect(flagged.model.translationMaxAbsDiff).toBeLessThan(1e-4);
    expect(flagged.model.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(flagged.data).toMatchObject({
      used: 400,
      labeled: 400,
      imageShape: [1, 28, 28],
      imagesRead: 10000,
    });
    expect(flagged.classes).toEqual([...FASHION_MNIST_CLASSES]);

    // One finding on the model in the ledger.
    const findings: Finding[] = [];
    for await (const f of ledger.findings({ subjectType: "model" })) findings.push(f);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({
      subjectType: "model",
      subjectId: flagged.model.digest,
      kind: "backdoor-suspected",
      check: "audit",
      evidence: {
        method: "reference",
        suspected: [expect.objectContaining({ label: 0, className: "T-shirt/top" })],
      },
    });
    expect(findings[0]!.score).toBeCloseTo(target.ratio!, 4);
    expect((await ledger.verify()).ok).toBe(true);
  });

  it("does not flag a label whose trigger is as small in a reference", async () => {
    const r = await auditModel(backdoored.onnxPath, {
      ...base(),
      references: [cleanA.onnxPath, backdooredTwin.onnxPath],
    });
    const target = r.verdict.labels.find((l) => l.label === 0)!;
    const [inClean, inTwin] = r.referenceInversions.map(
      (x) => x.result.triggers.find((t) => t.label === 0)!.l1,
    );
    expect(inClean! / target.l1).toBeGreaterThanOrEqual(3); // several times smaller than in the clean one…
    expect(inTwin! / target.l1).toBeLessThan(3); // …but not than in the other, so not in every reference
    expect(target.referenceL1).toBe(Math.min(inClean!, inTwin!));
    expect(target.suspected).toBe(false);
    expect(r.verdict.backdoor).toBe(false);
  });

  it("finds nothing in a clean model against another clean one", async () => {
    const r = await auditModel(cleanB.onnxPath, { ...base(), references: [cleanA.onnxPath] });
    expect(r.verdict.backdoor).toBe(false);
    for (const l of r.verdict.labels) expect(l.ratio!).toBeLessThan(3);
    // cleanA's inversion (same seed, images and settings) was reused, not redone.
    expect(r.referenceInversions[0]!.result).toBe(flagged.referenceInversions[0]!.result);
  });

  it("says what MAD alone can and cannot tell when there is no reference", async () => {
    const r = await auditModel(backdoored.onnxPath, base());
    expect(r.verdict.method).toBe("mad");
    expect(r.verdict.note).toBe(
      "no reference: MAD index only, which flags labels with naturally small triggers",
    );
    for (const l of r.verdict.labels) {
      expect(l.ratio).toBeNull();
      expect(l.suspected).toBe(l.anomalyIndex > 2 && l.asr >= 0.8);
    }
  });

  it("writes a schema-versioned report.json and a self-contained report.html", () => {
    const json = buildAuditReportJson(flagged, {
      model: backdoored.onnxPath,
      data: "fashion-mnist:test",
      outDir: dir,
    });
    expect(json).toMatchObject({ schema: "antidote.audit-report", schemaVersion: 1 });
    expect(json.labels).toHaveLength(LABELS.length);
    expect(json.labels[0]!.mask).toHaveLength(28 * 28);
    expect(json.labels[0]!.references).toHaveLength(1);
    expect(json.verdict.suspected[0]).toMatchObject({ label: 0, className: "T-shirt/top" });
    expect(JSON.parse(JSON.stringify(json))).toEqual(json); // plain JSON, nothing lost
    const html = renderAuditHtml(json);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("Backdoor suspected: T-shirt/top");
    expect(html.match(/src="data:image\/png;base64,/g)).toHaveLength(3 * LABELS.length);
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3)/);
  });
});

describe("decideVerdict", () => {
  it("needs the ratio against every reference, and the reversed trigger to work", () => {
    const inv = (l1: number[], asr = 0.95): NeuralCleanseResult =>
      ({
        triggers: l1.map((v, label) => ({ label, l1: v, asr })),
        anomaly: { median: 0, mad: 1, index: new Float64Array(l1.length) },
      }) as unknown as NeuralCleanseResult;
    const model = inv([5, 40, 30]);
    const refs = [
      { name: "a", result: inv([50, 40, 30]) },
      { name: "b", result: inv([12, 38, 35]) },
    ];
    expect(decideVerdict(model, refs.slice(0, 1)).suspected.map((l) => l.label)).toEqual([0]);
    const both = decideVerdict(model, refs); // 12 / 5 = 2.4 < 3 against reference b
    expect(both.backdoor).toBe(false);
    expect(both.labels[0]!.ratio).toBeCloseTo(2.4, 10);
    expect(decideVerdict(model, refs, { ratio: 2 }).suspected.map((l) => l.label)).toEqual([0]);
    expect(decideVerdict(inv([5, 40, 30], 0.5), refs.slice(0, 1)).backdoor).toBe(false);
  });
});

describe("auditModel on bad inputs", () => {
  const fails = async (promise: Promise<unknown>, code: AntidoteErrorCode, message: RegExp) => {
    const e = await promise.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isAntidoteError(e) ? e.code : e).toBe(code);
    expect((e as Error).message).toMatch(message);
  };

  it("refuses to take gradients through a copy that differs from ONNX Runtime by more than the tolerance", async () => {
    // The copy agrees to within float32 rounding (a few 1e-7 on these MLPs), so a tolerance of 0
    // is the way to make the check fail on a real model: the audit must stop before inverting,
    // name the model and the difference, and record nothing.
    const accepted = await auditModel(cleanA.onnxPath, base());
    const diff = accepted.model.translationMaxAbsDiff;
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThanOrEqual(1e-4);
    const modelFindings = async (): Promise<number> => {
      let count = 0;
      for await (const _ of ledger.findings({ subjectType: "model" })) count++;
      return count;
    };
    const before = await modelFindings();
    const inverted: number[] = [];
    await fails(
      auditModel(cleanA.onnxPath, {
        ...base(),
        inversionCache: new Map(),
        translationTolerance: 0,
        ledger,
        onInversion: (p) => inverted.push(p.step),
      }),
      "MODEL_UNSUPPORTED",
      /clean-a\.onnx: the TF\.js translation of output ".+" differs from onnxruntime by up to \d\.\d\de-\d+ .*cannot trust gradients/,
    );
    expect(inverted).toEqual([]);
    expect(await modelFindings()).toBe(before);
    // Loosened to what was measured, it runs.
    const loose = await auditModel(cleanA.onnxPath, { ...base(), translationTolerance: diff });
    expect(loose.model.translationMaxAbsDiff).toBe(diff);
  });

  it("refuses a reference of another task, data without images, and a file that is not ONNX", async () => {
    // A 5-class linear model on the same images: a valid ONNX classifier, of another task.
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
    await fails(
      auditModel(cleanA.onnxPath, { ...base(), references: [five] }),
      "MODEL_FORMAT",
      /--reference .*five\.onnx: has 5 classes, but the audited model .*clean-a\.onnx has 10/,
    );
    await fails(
      auditModel(cleanA.onnxPath, { ...base(), data: "spamassassin" }),
      "INPUT_FORMAT",
      /--data spamassassin: has no images/,
    );
    await fails(
      auditModel(cleanA.onnxPath, { ...base(), translationTolerance: -1 }),
      "USAGE",
      /--tolerance: must be a finite number ≥ 0, got -1/,
    );
    const text = join(dir, "notes.onnx");
    writeFileSync(text, "this is not a model\n");
    await fails(auditModel(text, base()), "MODEL_FORMAT", /notes\.onnx: not an ONNX model/);
  });
});
