// The policy in force, at each enforcement point, on a ledger of real deliveries where one
// supplier (initech) is compromised: `policy check` says what would change and writes nothing;
// `policy apply` records the adoption and then its decisions, each with the policy's digest and
// rule; a later policy never rewrites what an earlier one decided; ingest, export, model
// register and the telemetry gate each refuse the violation before writing anything.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter, openDataset } from "../../src/data/open.js";
import { scanDataset } from "../../src/scan/scan.js";
import type { Ledger, LedgerEvent } from "../../src/ledger/types.js";
import { buildTrainingCandidate } from "../../src/monitor/gate.js";
import { ingestTelemetry } from "../../src/monitor/intake.js";
import {
  activePolicy,
  applyPolicy,
  checkPolicy,
  enforcePolicy,
  loadPolicyFile,
  recordScanCoverage,
  reputationOf,
} from "../../src/policy/index.js";
import { signStatement } from "../../src/provenance/bundle.js";
import { exportVersion } from "../../src/provenance/export.js";
import { ingestDelivery, type IngestResult } from "../../src/provenance/ingest.js";
import { buildStatement } from "../../src/provenance/manifest.js";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { registerModelFile } from "../../src/provenance/model.js";
import { addSource } from "../../src/provenance/sources.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import {
  makeAgent,
  recordsFor,
  jsonl,
  signedBatch,
  testImages,
  windowEnding,
} from "../monitor/telemetry-batches.js";
import { POISONED, buildWorld, ingestAll, recordScanFindings, type World } from "./fixture.js";
import { antidoteFailure } from "../helpers/errors.js";

let world: World;
let dir: string;
beforeAll(async () => {
  dir = enterScratchDir();
  world = await buildWorld(mkdtempSync(join(dir, "world-")));
}, 60_000);
afterAll(() => leaveScratchDir());

const HEAD = "apiVersion: antidote.dev/policy/v1\n";

function policyFile(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `${HEAD}${body}`);
  return path;
}

const STRICT = `name: strict
version: 1
kinds:
  supplier:
    minReputation: 0.5
    maxFlagRate: 0.1
    requiredScans: [spectral-signature]
    autoQuarantine:
      - findings: [poisoning-risk]
        minScore: 0.9
`;

async function events(ledger: Ledger, from = 1): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  for await (const e of ledger.events(from)) out.push(e);
  return out;
}

describe.each(BACKENDS)("policy check and apply on $name", (backend) => {
  beforeAll(() => backend.setup(), 60_000);
  afterAll(() => backend.teardown());

  it("check is a dry run: it says what would change and writes nothing", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open("analyst");
    try {
      const versions = await ingestAll(ledger, world);
      await recordScanFindings(ledger, world);
      const path = policyFile("strict.yaml", STRICT);
      const loaded = await loadPolicyFile(path);
      const before = { status: await ledger.status(), head: await ledger.signedHead() };
      const bytes = backend.name === "SQLite" ? readFileSync(fresh.location) : undefined;

      const check = await checkPolicy(ledger, { ...loaded, origin: path });
      expect(check.policy.digest).toBe(createHash("sha256").update(readFileSync(path)).digest("hex"));
      expect(check.belowMinReputation.map((b) => [b.source, b.rule])).toEqual([
        [POISONED, "kinds.supplier.minReputation"],
      ]);
      expect(check.missingScans.map((m) => m.version).sort()).toEqual(
        [...versions.values()].map((v) => v.datasetVersion).sort(),
      );
      expect(check.missingScans[0]?.missing[0]).toMatchObject({ detector: "spectral-signature" });
      // 24 patched images over 0.9; initech's delivery is 12% flagged, over 10%.
      const rules = check.decisions.map((d) => [d.policy.rule, d.subjectIds.length]);
      expect(rules).toEqual(
        expect.arrayContaining([
          ["kinds.supplier.autoQuarantine[0]", 24],
          ["kinds.supplier.maxFlagRate", 200],
        ]),
      );
      expect(check.wouldQuarantine).toEqual({ samples: 200, sources: 0 });

      expect(await ledger.status()).toEqual(before.status);
      expect(await ledger.signedHead()).toEqual(before.head);
      if (bytes !== undefined) expect(readFileSync(fresh.location).equals(bytes)).toBe(true);
      expect(await activePolicy(ledger)).toBeUndefined();
    } finally {
      await ledger.close();
    }
  }, 60_000);

  it("apply records the adoption, then its decisions; a later policy never rewrites them", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open("analyst");
    try {
      await ingestAll(ledger, world);
      await recordScanFindings(ledger, world);
      const start = (await ledger.status()).events + 1;
      const base = STRICT.replace("maxFlagRate: 0.1", "maxFlagRate: 0.5");
      const a = policyFile("a.yaml", base);
      const digestA = createHash("sha256").update(readFileSync(a)).digest("hex");
      const applied = await applyPolicy(ledger, a, { actor: "ciso" });
      expect(applied.adopted).toEqual({ seq: start, digest: digestA });
      expect(applied.decisions).toEqual([
        { seq: start + 1, subjectType: "sample", subjects: 24, rule: "kinds.supplier.autoQuarantine[0]" },
      ]);
      const [adoption, decision] = await events(ledger, start);
      expect(adoption).toMatchObject({
        kind: "policy.adopted",
        actor: "ciso",
        payload: { name: "strict", version: "1", digest: digestA },
      });
      expect(decision).toMatchObject({
        kind: "decision.recorded",
        payload: {
          action: "quarantine",
          actor: `policy:strict@${digestA.slice(0, 12)}`,
          reason: expect.stringMatching(/^rule kinds\.supplier\.autoQuarantine\[0\]: /) as unknown,
          policy: { digest: digestA, rule: "kinds.supplier.autoQuarantine[0]" },
        },
      });
      // Applying it again adopts nothing and decides nothing new.
      expect(await applyPolicy(ledger, a)).toEqual({ adopted: null, decisions: [] });

      // Policy B: a higher threshold. A's decisions stay, B decides from its own event on.
      const b = policyFile(
        "b.yaml",
        base.replace("name: strict", "name: lenient").replace("minScore: 0.9", "minScore: 0.99"),
      );
      const underA = await events(ledger, start);
      const appliedB = await applyPolicy(ledger, b);
      expect(appliedB.decisions).toEqual([]);
      expect((await events(ledger, start)).slice(0, underA.length)).toEqual(underA);
      for (const d of world.poisoned.slice(0, 3)) expect(await ledger.isQuarantined(d)).toBe(true);
      expect((await activePolicy(ledger))?.policy.name).toBe("lenient");

      // A new finding at 0.95 would have been quarantined under A; under B it is not.
      const acmeSample = (await ledger.traceSource("acme", { limit: 10 })).samples[5]?.digest ?? "";
      await ledger.append([
        {
          kind: "finding.recorded",
          payload: {
            subjectType: "sample",
            subjectId: acmeSample,
            kind: "poisoning-risk",
            score: 0.95,
            evidence: {},
            check: "antidote-scan",
            checkVersion: "test",
          },
        },
      ]);
      expect((await enforcePolicy(ledger)).decisions).toEqual([]);
      expect(await ledger.isQuarantined(acmeSample)).toBe(false);
      expect(await ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
    } finally {
      await ledger.close();
    }
  }, 60_000);
});

describe("enforcement points (SQLite)", () => {
  const backend = BACKENDS[0];
  let ledger: Ledger;
  let versions: Map<string, IngestResult>;
  beforeAll(async () => {
    const fresh = await backend!.fresh();
    ledger = await fresh.open("analyst");
    versions = await ingestAll(ledger, world);
    await recordScanFindings(ledger, world);
    await addSource(ledger, { name: "crawl-eu", kind: "web", trust: 0.5, publicKeysPem: [] });
    await applyPolicy(ledger, policyFile("enforce.yaml", `${STRICT}  web:\n    requireSignature: true\n`));
  }, 60_000);
  afterAll(() => ledger.close());

  async function nothingWritten(attempt: () => Promise<unknown>): ReturnType<typeof antidoteFailure> {
    const before = (await ledger.status()).events;
    const store = readdirSync(join(ledger.homeDir, "store")).sort();
    const e = await antidoteFailure(attempt());
    expect((await ledger.status()).events).toBe(before);
    expect(readdirSync(join(ledger.homeDir, "store")).sort()).toEqual(store);
    return e;
  }

  it("ingest: refuses a new delivery from a supplier under minReputation", async () => {
    expect((await reputationOf(ledger, POISONED)).score).toBeLessThan(0.5);
    const file = join(dir, "initech-2.parquet");
    const w = await createWriter(file, { classes: FASHION_MNIST_CLASSES });
    for (const s of fashionMnistSamples(650).slice(600)) await w.write(s);
    await w.close();
    const bundle = join(dir, "initech-2.sigstore.json");
    const key = world.keys.get(POISONED)?.key;
    if (key === undefined) throw new Error("no key");
    writeFileSync(bundle, JSON.stringify(signStatement(await buildStatement(file), key)));
    const e = await nothingWritten(() =>
      ingestDelivery(ledger, { target: file, source: POISONED, signaturePath: bundle }),
    );
    expect(e.code).toBe("FORBIDDEN");
    expect(e.message).toMatch(
      /^policy "strict" 1 \(rule kinds\.supplier\.minReputation\): source "initech" has reputation 0\.\d+, under 0\.5/,
    );
  });

  it("ingest: refuses an unsigned delivery where the policy requires signatures (the source does not)", async () => {
    const file = join(dir, "crawl.parquet");
    const w = await createWriter(file, { classes: FASHION_MNIST_CLASSES });
    for (const s of fashionMnistSamples(20)) await w.write(s);
    await w.close();
    const e = await nothingWritten(() => ingestDelivery(ledger, { target: file, source: "crawl-eu" }));
    expect([e.code, e.message]).toEqual([
      "SIGNATURE_INVALID",
      expect.stringMatching(
        /rule kinds\.web\.requireSignature\): source "crawl-eu" must send signed deliveries/,
      ),
    ]);
  });

  it("export: refuses a version a required detector has not run on, naming it; then allows it", async () => {
    const version = versions.get("acme")?.datasetVersion ?? "";
    const out = join(dir, "acme-clean.parquet");
    const e = await nothingWritten(() => exportVersion(ledger, { version, out, excludeQuarantined: true }));
    expect(e.code).toBe("FORBIDDEN");
    expect(e.message).toMatch(
      /rule kinds\.supplier\.requiredScans\): version acme@\w+ may not be exported: detector "spectral-signature" \(required for samples from "acme"\) has not run on it/,
    );
    expect(existsSync(out)).toBe(false);
    await recordScanCoverage(ledger, version, ["spectral-signature", "confident-learning"]);
    expect((await exportVersion(ledger, { version, out, excludeQuarantined: true })).written).toBe(200);
  });

  it("model register: refuses a model trained on a version without the required scans", async () => {
    const version = versions.get("globex")?.datasetVersion ?? "";
    const model = join(dir, "model.onnx");
    writeFileSync(model, Buffer.from([0x08, 0x07, 0x12, 0x00]));
    const e = await nothingWritten(() =>
      registerModelFile(ledger, { file: model, trainedOn: [version], name: "fm" }),
    );
    expect(e.message).toMatch(
      /version globex@\w+ may not be used to train a registered model: detector "spectral-signature"/,
    );
    expect(await ledger.listModels()).toEqual([]);
  });

  it("a scan run with the ledger records which detectors ran: the version may then train a model", async () => {
    const version = versions.get("globex")?.datasetVersion ?? "";
    const report = await scanDataset(await openDataset(world.deliveries.get("globex")?.file ?? ""), {
      ledger,
      detectors: ["spectral-signature"],
    });
    expect(report.results.map((r) => r.detector)).toEqual(["spectral-signature"]);
    const coverage = (await ledger.eventsOfKind("transform.recorded")).filter(
      (e) => e.payload.subject === version && e.payload.transform.kind === "scan",
    );
    expect(coverage.map((e) => e.payload.transform.parameters)).toEqual([
      { detectors: ["spectral-signature"] },
    ]);
    const model = join(dir, "model-after-scan.onnx");
    writeFileSync(model, Buffer.from([0x08, 0x07, 0x12, 0x01]));
    const registered = await registerModelFile(ledger, {
      file: model,
      trainedOn: [version],
      name: "fm-scanned",
    });
    expect(registered.trainedOn).toEqual([version]);
  });

  it("export: refuses a version whose sources do not allow the export transform", async () => {
    const version = versions.get("acme")?.datasetVersion ?? "";
    const path = policyFile(
      "transforms.yaml",
      "name: transforms\nversion: 1\nsources:\n  acme:\n    allowedTransforms: [dedup, filter]\n",
    );
    await applyPolicy(ledger, path);
    const out = join(dir, "acme-again.parquet");
    const e = await nothingWritten(() => exportVersion(ledger, { version, out }));
    expect([e.code, e.message]).toEqual([
      "FORBIDDEN",
      expect.stringMatching(
        /^policy "transforms" 1 \(rule sources\.acme\.allowedTransforms\): version acme@\w+ holds samples from "acme", whose allowed transforms \(dedup, filter\) do not include export/,
      ),
    ]);
    expect(existsSync(out)).toBe(false);
  });

  it("the telemetry gate leaves out an agent under minReputation", async () => {
    const path = policyFile(
      "agents.yaml",
      `name: agents\nversion: 1\nkinds:\n  agent:\n    minReputation: 0.4\n`,
    );
    const model = createHash("sha256").update("policy-test-model").digest("hex");
    await registerModelDigest(ledger, { digest: model, name: "fm-cnn", trainedOn: [] });
    const now = new Date();
    const batchIds: string[] = [];
    for (const name of ["agent-good", "agent-bad"]) {
      const agent = makeAgent(name);
      await addSource(ledger, { name, kind: "agent", publicKeysPem: [agent.publicKeyPem] });
      for (let seq = 0; seq < 3; seq++) {
        const text = jsonl(recordsFor(testImages(seq * 8, 8), new Date(now.getTime() - 60_000)));
        const batch = await ingestTelemetry(
          ledger,
          signedBatch(agent, { sequence: seq, model, text, window: windowEnding(now) }),
        );
        if (name === "agent-bad" && seq < 2) batchIds.push(batch.batchId);
      }
    }
    // Two of agent-bad's batches were quarantined: its record, not this test, lowers its score.
    await ledger.append([
      {
        kind: "decision.recorded",
        payload: {
          action: "quarantine",
          subjectType: "telemetry-batch",
          subjectIds: batchIds,
          actor: "analyst",
          reason: "trigger alarms",
        },
      },
    ]);
    const since = new Date(now.getTime() - 3_600_000).toISOString();
    const without = await buildTrainingCandidate(ledger, { since, scan: false, dryRun: true });
    await applyPolicy(ledger, path);
    const withPolicy = await buildTrainingCandidate(ledger, { since, scan: false, dryRun: true });
    expect(without.batches.admitted - withPolicy.batches.admitted).toBe(1);
    expect(withPolicy.excludedAgents).toEqual(
      expect.arrayContaining([{ agent: "agent-bad", reason: "agent-not-attested", batches: 3 }]),
    );
    expect(withPolicy.agents.map((a) => a.agent)).toEqual(["agent-good"]);
  }, 60_000);
});
