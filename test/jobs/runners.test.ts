// The real runners, each once, on the in-process engine and real data: a crawl delivers 1,000
// Fashion-MNIST images, 2% of them stamped with a 3×3 BadNets patch and relabelled Bag by the
// project's simulator. A scan job finds the patched images (precision and recall against the
// simulator's ground truth) and its findings are in the ledger exactly once; an export job
// after quarantining them produces a signed file with as many samples as it says; an audit job
// runs on an uploaded ONNX model with images from the ledger version and records one finding
// for the model.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import type { JobQueue } from "../../src/jobs/types.js";
import { antidoteFailure } from "../helpers/errors.js";
import { fashionModel } from "../helpers/fm-models.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import { freshLedger, patchedVersion, waitForState, type TestLedger } from "./engines.js";

const SAMPLES = 1000;
// The scan's bar for this attack (test/scan/scan-images.test.ts), held loosely.
const PRECISION_FLOOR = 0.9;
const RECALL_FLOOR = 0.9;

describe.runIf(hasFashionMnist())("job runners on a ledger version", () => {
  let t: TestLedger;
  let queue: JobQueue;
  let version: string;
  let victims: Set<string>;

  beforeAll(async () => {
    t = await freshLedger();
    ({ version, victims } = await patchedVersion(t, SAMPLES));
    queue = await createInProcessQueue({ ledger: t.ledger, pollMs: 200 });
  });
  afterAll(async () => {
    await queue?.close();
    await t?.close();
  });

  it("scan: finds the patched images and records its findings once", async () => {
    const job = await queue.submit(
      "scan",
      { version, detectors: ["trigger-patches"], imageProxy: "mlp", seed: 0 },
      "analyst",
    );
    const done = await waitForState(queue, job.jobId, "done", 180_000);
    const result = done.result as {
      samples: number;
      flagged: number;
      findings: number;
      detectors: Record<string, number>;
    };
    expect(result).toMatchObject({ version, samples: SAMPLES });
    expect(Object.keys(result.detectors)).toEqual(["trigger-patches"]);
    expect(done.artifacts).toEqual(["previews.json", "report.html", "report.json"]);
    // Materializing the version for the scan recorded nothing: still the one version ingested.
    expect((await t.ledger.listDatasetVersions()).map((v) => v.version)).toEqual([version]);

    // The ledger held no finding before: every one is the job's, recorded once, by its principal.
    const recorded = [];
    for await (const e of t.ledger.events()) if (e.kind === "finding.recorded") recorded.push(e);
    expect(recorded).toHaveLength(result.findings);
    expect(recorded.every((e) => e.actor === "analyst")).toBe(true);
    const flaggedIds = recorded
      .filter((e) => e.payload.subjectType === "sample")
      .map((e) => String(e.payload.evidence.id));
    expect(flaggedIds).toHaveLength(result.flagged);
    const caught = flaggedIds.filter((id) => victims.has(id)).length;
    expect(caught / Math.max(1, flaggedIds.length)).toBeGreaterThanOrEqual(PRECISION_FLOOR);
    expect(caught / victims.size).toBeGreaterThanOrEqual(RECALL_FLOOR);

    const report = JSON.parse(
      new TextDecoder().decode((await queue.artifact(job.jobId, "report.json"))?.bytes),
    ) as {
      schema: string;
      dataset: { name: string; path: string };
      ensemble: { flagged: number };
      nextSteps: { command: string | null }[];
    };
    expect(report.schema).toBe("antidote.scan-report");
    expect(report.dataset).toMatchObject({ name: version, path: version });
    expect(report.ensemble.flagged).toBe(result.flagged);
    // The next steps act on the version, and no temporary path of the job shows.
    expect(report.nextSteps.some((s) => s.command?.startsWith(`antidote export --dataset ${version}`))).toBe(
      true,
    );
    const html = new TextDecoder().decode((await queue.artifact(job.jobId, "report.html"))?.bytes);
    expect(html).toContain("<h2>Image triggers</h2>");
    expect(JSON.stringify(report) + html).not.toContain("antidote-job-");
    // previews.json: the flagged images' thumbnails as PNG data URLs, by id and digest as in report.json.
    const previews = JSON.parse(
      new TextDecoder().decode((await queue.artifact(job.jobId, "previews.json"))?.bytes),
    ) as {
      schema: string;
      previews: { id: string; digest: string; preview: { kind: string; src?: string } }[];
    };
    expect(previews.schema).toBe("antidote.scan-previews");
    expect(previews.previews.length).toBe(Math.min(result.flagged, 500));
    expect(previews.previews.every((p) => p.preview.kind === "image")).toBe(true);
    expect(previews.previews.every((p) => p.preview.src?.startsWith("data:image/png;base64,"))).toBe(true);
    expect(previews.previews.every((p) => flaggedIds.includes(p.id))).toBe(true);
  });

  it("export: writes a signed clean version without the quarantined samples", async () => {
    const flagged = new Set<string>();
    for await (const f of t.ledger.findings({ subjectType: "sample", minScore: 0.5 }))
      flagged.add(f.subjectId);
    expect(flagged.size).toBeGreaterThan(0);
    await t.ledger.append([
      {
        kind: "decision.recorded",
        payload: {
          action: "quarantine",
          subjectType: "sample",
          subjectIds: [...flagged],
          actor: "analyst",
          reason: "scan job",
        },
      },
    ]);
    const job = await queue.submit(
      "export",
      { version, excludeQuarantined: true, name: "fm-clean", reason: "drop the flagged samples" },
      "analyst",
    );
    // The reason is kept with the request, as asked, by whom.
    const submitted = [];
    for await (const e of t.ledger.events())
      if (e.kind === "job.submitted" && e.payload.jobId === job.jobId) submitted.push(e);
    expect(submitted).toHaveLength(1);
    expect(submitted[0]?.actor).toBe("analyst");
    expect(submitted[0]?.kind === "job.submitted" && submitted[0].payload.parameters).toMatchObject({
      reason: "drop the flagged samples",
    });
    const tooLong = await antidoteFailure(
      queue.submit("export", { version, reason: "x".repeat(501) }, "analyst"),
    );
    expect([tooLong.code, tooLong.message]).toEqual(["USAGE", expect.stringMatching(/reason.*500/)]);
    const done = await waitForState(queue, job.jobId, "done", 60_000);
    const result = done.result as {
      version: string;
      written: number;
      excluded: { quarantined: number };
      file: string;
    };
    expect(result).toMatchObject({
      parent: version,
      file: "clean.parquet",
      excluded: { quarantined: flagged.size, bySource: 0 },
    });
    expect(result.written).toBe(SAMPLES - flagged.size);
    expect(done.artifacts).toEqual(["clean.parquet", "clean.parquet.sigstore.json"]);

    const file = join(t.dir, "downloaded.parquet");
    writeFileSync(file, (await queue.artifact(job.jobId, "clean.parquet"))!.bytes);
    const samples = await collect(await openDataset(file));
    expect(samples).toHaveLength(result.written);
    expect(samples.filter((s) => flagged.has(s.digest))).toEqual([]);
    const bundle = JSON.parse(
      new TextDecoder().decode((await queue.artifact(job.jobId, "clean.parquet.sigstore.json"))?.bytes),
    ) as { dsseEnvelope?: unknown };
    expect(bundle.dsseEnvelope).toBeDefined();
    expect(await t.ledger.getDatasetVersion(result.version)).toMatchObject({
      name: "fm-clean",
      parent: version,
      sampleCount: result.written,
    });
  });

  it("audit: audits an uploaded model with the version's images and records one finding", async () => {
    const missing = await antidoteFailure(queue.submit("audit", { version }, "auditor"));
    expect(missing.code).toBe("USAGE");
    expect(missing.message).toMatch(/input "model.onnx" is missing/);
    // The audit tests' backdoored MLP (shared through the fixture cache).
    const model = await fashionModel({
      arch: "mlp",
      attack: "patch",
      target: 0,
      rate: 0.02,
      train: 8000,
      dir: t.dir,
      name: "bd",
    });
    const bytes = await readFile(model.onnxPath);
    const job = await queue.submit(
      "audit",
      { version, samples: 100, steps: 100, labels: [0, 8], strip: false },
      "auditor",
      [{ name: "model.onnx", bytes }],
    );
    const done = await waitForState(queue, job.jobId, "done", 120_000);
    const digest = createHash("sha256").update(bytes).digest("hex");
    expect(done.result).toMatchObject({ version, model: digest, images: 100, method: "mad" });
    const modelFindings = [];
    for await (const f of t.ledger.findings({ subjectType: "model" })) modelFindings.push(f);
    expect(modelFindings).toHaveLength(1);
    expect(modelFindings[0]).toMatchObject({
      subjectId: digest,
      check: "audit",
      evidence: { path: "model.onnx" },
    });
    const report = JSON.parse(
      new TextDecoder().decode((await queue.artifact(job.jobId, "report.json"))?.bytes),
    ) as {
      model: { digest: string; path: string };
      verdict: { method: string };
    };
    expect(report.model).toMatchObject({ digest, path: "model.onnx" });
    expect(new TextDecoder().decode((await queue.artifact(job.jobId, "report.html"))?.bytes)).toContain(
      "<html",
    );
    expect((await t.ledger.verify()).ok).toBe(true);
  });
  // Last: it leaves the version's store file edited. A job copies an ingested version's store
  // file rather than re-encoding it; the copy is checked against the SHA-256 the ledger holds.
  it("fails a job on a version whose store file was edited after ingest, using nothing from it", async () => {
    const [delivery] = await t.ledger.listDeliveries();
    const file = join(t.ledger.homeDir, "store", delivery?.store ?? "");
    const bytes = await readFile(file);
    const middle = bytes.length >> 1;
    bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
    writeFileSync(file, bytes);
    const findings = async () => {
      let n = 0;
      for await (const _ of t.ledger.findings()) n++;
      return n;
    };
    const findingsBefore = await findings();
    const job = await queue.submit(
      "scan",
      { version, detectors: ["trigger-patches"], imageProxy: "mlp", seed: 0 },
      "analyst",
    );
    const failed = await waitForState(queue, job.jobId, "failed", 60_000);
    expect(failed.error).toMatch(/sample store .*: its SHA-256 is not the .* recorded at ingest/);
    expect(failed.artifacts).toEqual([]);
    expect(await findings()).toBe(findingsBefore);
  });
});
