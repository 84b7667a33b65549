// The typed client against a real `antidote serve` (in-process job queue, SQLite ledger, a
// loopback port): a supplier delivers a signed ImageFolder directory of 1,000 images — nested file names, as
// its manifest names them — an analyst scans the version as a job and follows it over
// Server-Sent Events, downloads report.json, quarantines what it found and exports a clean
// version; wrong roles and replays come back as errors carrying the server's code.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { AntidoteClient, ServiceError } from "../../src/client/index.js";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { createWriter } from "../../src/data/open.js";
import { createInProcessQueue } from "../../src/jobs/index.js";
import type { JobRecord } from "../../src/jobs/types.js";
import { openLedger } from "../../src/ledger/index.js";
import { addSource, buildStatement, signStatement } from "../../src/provenance/index.js";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { supplierKey } from "../server/helpers.js";
import { fashionModel } from "../helpers/fm-models.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

let dir: string;
let server: RunningServer;
const tokens: Record<"admin" | "analyst" | "reader" | "supplier", string> = {
  admin: "",
  analyst: "",
  reader: "",
  supplier: "",
};
let poisoned: Set<string>;
let delivery: { data: string; signature: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-client-"));
  const location = join(dir, "ledger.db");
  const supplier = supplierKey();
  const setup = await openLedger({ location, actor: "setup" });
  try {
    await addSource(setup, { name: "acme", kind: "supplier", publicKeysPem: [supplier.publicKeyPem] });
    tokens.admin = (await createToken(setup, { principal: "root", role: "admin" })).token;
    tokens.analyst = (await createToken(setup, { principal: "ana", role: "analyst" })).token;
    tokens.reader = (await createToken(setup, { principal: "rita", role: "reader" })).token;
    tokens.supplier = (await createToken(setup, { principal: "acme-ci", role: "supplier:acme" })).token;
  } finally {
    await setup.close();
  }
  // 1,000 real images, 2 % of them carrying a BadNets patch and relabelled "Bag".
  const clean = fashionMnistSamples(1000);
  const writer = new MemoryWriter();
  const truth = await simulateAttack(memoryDataset(clean, { classes: [...FASHION_MNIST_CLASSES] }), writer, {
    kind: "patch",
    target: "Bag",
    rate: 0.02,
    seed: 2,
  });
  poisoned = new Set(truth.poisoned.map((r) => r.id));
  const data = join(dir, "fm-delivery");
  const out = await createWriter(data, { format: "imagefolder", classes: [...FASHION_MNIST_CLASSES] });
  for (const s of writer.samples) await out.write(s);
  await out.close();
  const signature = join(dir, "fm-delivery.sigstore.json");
  writeFileSync(signature, JSON.stringify(signStatement(await buildStatement(data), supplier.key)));
  delivery = { data, signature };
  server = await startServer({
    location,
    port: 0,
    log: () => undefined,
    queue: (ledger) => createInProcessQueue({ ledger, pollMs: 200 }),
  });
}, 120_000);

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const as = (role: keyof typeof tokens) => new AntidoteClient({ url: server.url, token: tokens[role] });

describe("AntidoteClient against antidote serve", () => {
  let version: string;

  it("delivers a signed ImageFolder directory with its nested file names, recorded as the supplier", async () => {
    const result = await as("supplier").deliver({ source: "acme", ...delivery, name: "fm" });
    expect(result.alreadyIngested).toBe(false);
    expect(result.sampleCount).toBe(1000);
    expect(result.files).toBeGreaterThan(1000); // one file per image, plus the class list
    version = result.datasetVersion;
    const again = await as("supplier").deliver({ source: "acme", ...delivery, name: "fm" });
    expect(again).toMatchObject({ alreadyIngested: true, datasetVersion: version });
    const members = await as("reader").members(version, { limit: 1000 });
    expect(members.items).toHaveLength(1000);
    expect(members.items.every((m) => m.source === "acme")).toBe(true);
  });

  it("runs a scan as a job, followed over Server-Sent Events, with report.json to download", async () => {
    const analyst = as("analyst");
    const job = await analyst.submitJob("scan", {
      version,
      detectors: ["trigger-patches"],
      imageProxy: "mlp",
      seed: 0,
    });
    expect(job.state).toBe("queued");
    const seen: JobRecord[] = [];
    const done = await analyst.waitForJob(job.jobId, (j) => seen.push(j));
    expect(done.state).toBe("done");
    expect(seen.some((j) => j.state === "running")).toBe(true);
    expect(done.artifacts).toEqual(expect.arrayContaining(["report.json", "report.html", "previews.json"]));
    const report = JSON.parse(new TextDecoder().decode(await analyst.artifact(job.jobId, "report.json"))) as {
      flagged: { id: string }[];
    };
    const flagged = report.flagged.map((f) => f.id);
    const hits = flagged.filter((id) => poisoned.has(id)).length;
    expect(hits / Math.max(1, flagged.length)).toBeGreaterThanOrEqual(0.9);
    expect(hits / poisoned.size).toBeGreaterThanOrEqual(0.9);
    const findings = await as("reader").findings({ subjectType: "sample", limit: 1000 });
    expect(findings.items.length).toBe(flagged.length);
  }, 120_000);

  it("runs the user's uploaded ONNX model in a scan job, named in the report by its input name", async () => {
    // The audit tests' backdoored MLP (trained once per run, shared through the fixture cache).
    const model = await fashionModel({
      arch: "mlp",
      attack: "patch",
      target: 0,
      rate: 0.02,
      train: 8000,
      dir,
      name: "user-model",
    });
    const analyst = as("analyst");
    const job = await analyst.submitJob(
      "scan",
      { version, detectors: ["confident-learning"] },
      model.onnxPath,
    );
    const done = await analyst.waitForJob(job.jobId);
    expect(done.state).toBe("done");
    expect(done.artifacts).not.toContain("input/model.onnx");
    const report = JSON.parse(new TextDecoder().decode(await analyst.artifact(job.jobId, "report.json"))) as {
      representation: { model?: { path: string; digest: string } };
    };
    const digest = createHash("sha256").update(readFileSync(model.onnxPath)).digest("hex");
    expect(report.representation.model).toMatchObject({ path: "model.onnx", digest });
  }, 180_000);

  it("quarantines what the scan found and exports a clean version as a job", async () => {
    const analyst = as("analyst");
    const decided = await analyst.decide({ action: "quarantine", findingsOver: 0.5, reason: "scan" });
    expect(decided.actor).toBe("ana");
    const job = await analyst.submitJob("export", { version, excludeQuarantined: true, format: "jsonl" });
    const done = await analyst.waitForJob(job.jobId);
    expect(done.state).toBe("done");
    const name = done.artifacts.find((a) => a.endsWith(".jsonl")) as string;
    const lines = new TextDecoder()
      .decode(await analyst.artifact(job.jobId, name))
      .trim()
      .split("\n");
    expect(lines.length).toBe(1000 - decided.samples);
  }, 120_000);

  it("reports refusals as ServiceErrors with the server's code, and the ledger still verifies", async () => {
    const refusal = await as("reader")
      .decide({ action: "quarantine", sources: ["acme"], reason: "x" })
      .catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(ServiceError);
    expect(refusal).toMatchObject({ status: 403, serverCode: "FORBIDDEN" });
    const wrongSource = await as("supplier")
      .deliver({ source: "crawl", ...delivery })
      .catch((e: unknown) => e);
    expect(wrongSource).toMatchObject({ status: 403, serverCode: "FORBIDDEN" });
    const unknown = await as("reader")
      .version("nope@000000000000")
      .catch((e: unknown) => e);
    expect(unknown).toMatchObject({ status: 404, code: "NOT_FOUND" });
    const badToken = await new AntidoteClient({ url: server.url, token: "adt_0000000000000000_x" })
      .sources()
      .catch((e: unknown) => e);
    expect(badToken).toMatchObject({ status: 401, serverCode: "UNAUTHENTICATED" });
    const report = await as("reader").verifyLedger();
    expect(report.ok).toBe(true);
  });
});
