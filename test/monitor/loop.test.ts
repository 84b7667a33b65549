// The deployed loop end to end, in-process, on real data: a backdoored Fashion-MNIST CNN (the
// fixture trained on 2 % patched images) served by 10 agents, 2 of them compromised — trigger-
// carrying inputs labelled as the target and flipped feedback labels on 5 % of their traffic,
// replayed and forged batches, a wrong model behind the attested digest. Signed batches go
// through the real intake into a SQLite ledger; `monitor init`'s setup (baseline, STRIP screen)
// and the runner raise findings and send a signed webhook; the closed-loop gate builds the next
// training version. Asserted against the simulator's ground truth: both compromised agents
// found and no honest one, forgeries and replays refused, wrong-model batches caught, no
// poisoned record admitted, the lineage traceable from an agent, and the ledger verifying.
import { mkdtempSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter } from "../../src/data/open.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Ledger } from "../../src/ledger/types.js";
import { createAlertSink, verifyWebhookSignature } from "../../src/monitor/alerts.js";
import { loadFleetData, simulateFleet, type FleetSimResult } from "../../src/monitor/fleet-sim.js";
import { onnxFleetModel } from "../../src/monitor/fleet/model.js";
import { fleetAgentNames } from "../../src/monitor/fleet/plan.js";
import { intakeTransport, signingKeyFromPem } from "../../src/monitor/fleet/transport.js";
import { quarantineTelemetry, suspendModel } from "../../src/monitor/containment.js";
import { buildTrainingCandidate, type GateResult } from "../../src/monitor/gate.js";
import { ingestTelemetry } from "../../src/monitor/intake.js";
import { knownTriggerFromPatchSpec } from "../../src/monitor/monitors/index.js";
import { createMonitorRunner, type MonitorRunResult } from "../../src/monitor/runner.js";
import { prepareMonitoring, readMonitorSetup } from "../../src/monitor/setup.js";
import { generateSigningKey, type SigningKey } from "../../src/provenance/keys.js";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { addSource, revokeSourceKey } from "../../src/provenance/sources.js";
import { fashionModel, type FashionModel } from "../helpers/fm-models.js";
import { freePort } from "../helpers/free-port.js";
import { hasFashionMnist } from "../helpers/real-data.js";

const AGENTS = 10;
const SECRET = "loop-test-webhook-secret-0123456789";

describe.skipIf(!hasFashionMnist())("the deployed loop: telemetry → monitors → gate", () => {
  let dir: string;
  let fm: FashionModel;
  let ledger: Ledger;
  let sim: FleetSimResult;
  let run: MonitorRunResult;
  let gate: GateResult;
  let hook: Server;
  const received: { body: string; signature: string }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-loop-"));
    fm = await fashionModel({ arch: "cnn", attack: "patch", dir });
    const data = await loadFleetData("fashion-mnist:test", { limit: 3000 });
    // The first 700 test images are validation (baseline and STRIP), never served.
    const validation = join(dir, "validation.parquet");
    const writer = await createWriter(validation, { format: "parquet", classes: [...data.classes] });
    for (const s of data.samples.slice(0, 700)) await writer.write(s);
    await writer.close();

    ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "loop-test" });
    const model = await onnxFleetModel(fm.onnxPath, data.classes);
    await registerModelDigest(ledger, { digest: model.digest, name: "fm-cnn", trainedOn: [] });
    const keys = new Map<string, SigningKey>();
    for (const name of fleetAgentNames(AGENTS, "agent-")) {
      const pair = generateSigningKey();
      await addSource(ledger, { name, kind: "agent", publicKeysPem: [pair.publicKeyPem] });
      keys.set(name, signingKeyFromPem(pair.privateKeyPem));
    }
    sim = await simulateFleet({
      data: { samples: data.samples.slice(700), classes: data.classes },
      model,
      agents: AGENTS,
      compromised: 2,
      rate: 0.05,
      behaviours: ["trigger", "flip", "replay", "forge", "wrong-model"],
      batches: 8,
      batchSize: 100,
      trigger: fm.attack as Record<string, unknown>,
      seed: 5,
      send: intakeTransport((upload) => ingestTelemetry(ledger, upload)),
      keys: (agent) => keys.get(agent) as SigningKey,
    });
    await model.close?.();

    const port = await freePort();
    hook = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString("utf8")));
      req.on("end", () => {
        received.push({ body, signature: String(req.headers["antidote-signature"] ?? "") });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(port, "127.0.0.1", resolve));

    const setupFile = join(dir, "monitor.json");
    await prepareMonitoring({
      model: fm.onnxPath,
      data: validation,
      out: setupFile,
      validation: 600,
      ledger,
    });
    // The fleet's trigger, as an earlier scan of the training data would have described it.
    const setup = await readMonitorSetup(setupFile);
    const monitors = setup.monitors as { triggers?: Record<string, unknown> };
    const known = knownTriggerFromPatchSpec(
      fm.attack as Parameters<typeof knownTriggerFromPatchSpec>[0],
      { height: 28, width: 28 },
      { id: "scan:patch" },
    );
    monitors.triggers = { ...monitors.triggers, known: [known] };
    await writeFile(setupFile, JSON.stringify(setup));
    const runner = await createMonitorRunner(ledger, await readMonitorSetup(setupFile), {
      setupFile,
      sink: createAlertSink({ url: `http://127.0.0.1:${port}/alerts`, secret: SECRET }),
    });
    run = await runner.run();
    await runner.close();
    gate = await buildTrainingCandidate(ledger, {
      since: new Date(0).toISOString(),
      name: "telemetry",
      scanOptions: { model: fm.onnxPath },
    });
  }, 240_000);

  afterAll(async () => {
    await ledger?.close();
    await new Promise((resolve) => hook?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const compromised = () => new Set(sim.truth.agents.filter((a) => a.compromised).map((a) => a.name));
  const agentOf = (batchId: string) => batchId.slice(0, batchId.lastIndexOf("#"));

  it("refuses every forged and replayed batch at intake, with its reason", () => {
    for (const kind of ["forge", "replay"] as const) {
      const uploads = sim.truth.uploads.filter((u) => u.kind === kind);
      expect(uploads.length).toBeGreaterThan(0);
      for (const u of uploads) {
        expect(u.outcome?.accepted, `${kind} ${u.batchId}`).toBe(false);
        expect(["KEY_UNTRUSTED", "SIGNATURE_INVALID", "DIGEST_MISMATCH", "REPLAYED"]).toContain(
          u.outcome?.reason,
        );
      }
    }
    const honest = sim.truth.uploads.filter((u) => u.kind === "batch");
    expect(honest.every((u) => u.outcome?.accepted === true)).toBe(true);
  });

  it("finds both compromised agents and no honest one", () => {
    // Alerts on an agent or on one of its batches; model-level alerts (drift) name no agent.
    const flagged = new Set(
      run.alerts
        .filter((a) => a.subjectType !== "model")
        .map((a) => (a.subjectType === "source" ? a.subjectId : agentOf(a.batchId))),
    );
    const bad = compromised();
    expect([...bad].filter((a) => !flagged.has(a))).toEqual([]);
    expect([...flagged].filter((a) => !bad.has(a))).toEqual([]);
  });

  it("names the trigger-carrying records: the known trigger's batch alerts hold the triggered inputs, and only those", () => {
    const triggered = new Set(
      sim.truth.records.filter((r) => r.how === "trigger").map((r) => `${r.batchId}/${r.id}`),
    );
    const named = new Set(
      run.alerts
        .filter(
          (a) =>
            a.monitor === "trigger-alarm" &&
            a.subjectType === "telemetry-batch" &&
            a.evidence.screen === "known",
        )
        .flatMap((a) => (a.evidence.records as string[]).map((id) => `${a.subjectId}/${id}`)),
    );
    const hits = [...named].filter((k) => triggered.has(k)).length;
    expect(triggered.size).toBeGreaterThan(10);
    expect(hits / named.size).toBeGreaterThanOrEqual(0.95);
    expect(hits / triggered.size).toBeGreaterThanOrEqual(0.8);
    const sources = run.alerts.filter((a) => a.monitor === "trigger-alarm" && a.subjectType === "source");
    expect(new Set(sources.map((a) => a.subjectId))).toEqual(compromised());
  });

  it("catches the wrong-model batches (accepted: the digest is registered) by re-running the attested model", () => {
    const wrong = sim.truth.uploads.filter((u) => u.kind === "wrong-model");
    expect(wrong.length).toBeGreaterThan(0);
    const attested = run.alerts.filter((a) => a.monitor === "attestation");
    for (const u of wrong)
      expect(
        attested.some((a) => a.batchId === u.batchId || a.subjectId === u.agent),
        u.batchId,
      ).toBe(true);
  });

  it("records each alert once as a finding and sends them to the webhook, signed", async () => {
    let findings = 0;
    for await (const f of ledger.findings()) if (f.check.startsWith("monitor/")) findings++;
    expect(findings).toBe(run.findings);
    expect(findings).toBeGreaterThan(0);
    expect(received.length).toBeGreaterThan(0);
    for (const r of received) {
      expect(verifyWebhookSignature(r.body, r.signature, SECRET)).toBe(true);
      expect(verifyWebhookSignature(`${r.body} `, r.signature, SECRET)).toBe(false);
    }
    // A second run reads nothing new and records nothing twice.
    const setupFile = join(dir, "monitor.json");
    const again = await createMonitorRunner(ledger, await readMonitorSetup(setupFile), {
      setupFile,
      sink: null,
    });
    const second = await again.run();
    await again.close();
    expect(second.batches).toBe(0);
    expect(second.findings).toBe(0);
  });

  it("admits no poisoned record into the next training version, and leaves the compromised agents out", async () => {
    expect(gate.version).not.toBeNull();
    const members = new Set<string>();
    for await (const m of ledger.datasetMembers(gate.version as string)) members.add(m.digest);
    const poisoned = sim.truth.records.filter(
      (r) => (r.how === "trigger" || r.how === "flip") && r.feedback !== null,
    );
    expect(poisoned.length).toBeGreaterThan(10);
    // A record is admitted when its agent's gate delivery holds it and its content is a member
    // (agents serve one population: a flipped image may also arrive, correctly labeled, from others).
    const delivered = new Set<string>();
    for (const a of gate.agents)
      if (a.deliveryId !== null)
        for (const s of (await ledger.deliveryEvidence(a.deliveryId)).samples) delivered.add(s.id);
    const admitted = poisoned.filter((r) => delivered.has(`${r.batchId}/${r.id}`) && members.has(r.digest));
    expect(admitted.length / poisoned.length).toBeLessThanOrEqual(0.01);
    for (const agent of compromised())
      expect(gate.agents.find((a) => a.agent === agent)?.admitted ?? 0).toBe(0);
    // Members are distinct contents: an input two agents both sent is one member.
    expect(members.size).toBeLessThanOrEqual(gate.records.admitted);
    expect(members.size).toBeGreaterThan(500);
  });

  it("records the lineage: trace --source shows what an agent's telemetry reached", async () => {
    const honest = sim.truth.agents.find((a) => !a.compromised)?.name as string;
    const trace = await ledger.traceSource(honest);
    expect(trace.deliveries.length).toBe(1);
    expect(trace.datasetVersions.map((v) => v.version)).toContain(gate.version);
    expect(trace.sampleCount).toBeGreaterThan(0);
    const report = await ledger.verify();
    expect(report.ok).toBe(true);
    expect(report.tableMismatches).toEqual([]);
  });

  // Last: it changes the ledger. Each containment step takes telemetry out of the next gate run.
  it("leaves out a quarantined batch, then a revoked key's batches, then everything once the model is suspended", async () => {
    const dry = () =>
      buildTrainingCandidate(ledger, { since: new Date(0).toISOString(), scan: false, dryRun: true });
    const honest = sim.truth.agents.filter((a) => !a.compromised).map((a) => a.name);
    const [quarantined, revoked] = honest;
    const batchOf =
      sim.truth.uploads.find((u) => u.agent === quarantined && u.kind === "batch")?.batchId ?? "";
    await quarantineTelemetry(ledger, [batchOf], "test: trigger alarm", "analyst");
    let r = await dry();
    expect(r.batches.excluded["batch-quarantined"]).toBe(1);
    expect(r.version).toBeNull();

    const source = await ledger.getSource(revoked ?? "");
    await revokeSourceKey(ledger, revoked ?? "", source?.keys[0]?.keyId ?? "", "test: device lost");
    r = await dry();
    const revokedBatches = sim.truth.uploads.filter((u) => u.agent === revoked && u.outcome?.accepted).length;
    expect(r.batches.excluded["key-revoked"]).toBe(revokedBatches);
    expect(r.excludedAgents.find((a) => a.agent === revoked)?.reason).toBe("key-revoked");

    const digest = (await ledger.listModels())[0]?.digest ?? "";
    await suspendModel(ledger, digest, "test: backdoor in production", "analyst");
    r = await dry();
    expect(r.batches.admitted).toBe(0);
    expect(r.records.admitted).toBe(0);
    expect((await ledger.getModelStatus(digest))?.status).toBe("suspended");
  });
});
