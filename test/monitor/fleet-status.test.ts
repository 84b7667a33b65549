// fleetStatus on SQLite, over a fleet built the way a deployment builds it: agents registered
// with their keys, batches of real Fashion-MNIST test images signed by their agent and taken
// by the intake (a sequence gap, a replay, a batch signed with another agent's key, a revoked
// key, an unregistered agent, a supplier posing as an agent), a batch and an agent quarantined,
// the model suspended, and findings — monitors' on an agent, on a batch and on the model, and
// a scan's on a source, which the fleet view must leave out. Every figure is checked against
// what was sent; the ranking puts the flagged agent first even though another has more refusals.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Finding, Ledger } from "../../src/ledger/index.js";
import { quarantineTelemetry, suspendModel } from "../../src/monitor/containment.js";
import { fleetStatus } from "../../src/monitor/fleet-status.js";
import { ingestTelemetry } from "../../src/monitor/intake.js";
import { recordDecision } from "../../src/provenance/decisions.js";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { addSource, revokeSourceKey } from "../../src/provenance/sources.js";
import { antidoteFailure } from "../helpers/errors.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type Backend } from "../ledger/backends.js";
import {
  jsonl,
  makeAgent,
  recordsFor,
  signedBatch,
  testImages,
  windowEnding,
  type BatchSpec,
  type TestAgent,
} from "./telemetry-batches.js";

const MODEL = "5e".repeat(32);
const SPARE = "a1".repeat(32);
/** Records per batch. */
const N = 8;

const sqlite = BACKENDS.find((b) => b.name === "SQLite") as Backend;
let ledger: Ledger;
let nextImage = 0;
const now = new Date();
const [a1, a2, a3, a4, acme, ghost] = ["agent-1", "agent-2", "agent-3", "agent-4", "acme", "ghost"].map(
  makeAgent,
) as [TestAgent, TestAgent, TestAgent, TestAgent, TestAgent, TestAgent];

function batch(agent: TestAgent, sequence: number, spec: Partial<BatchSpec> = {}) {
  const text = jsonl(recordsFor(testImages(nextImage, N), new Date(now.getTime() - 60_000)));
  nextImage += N;
  return signedBatch(agent, { sequence, model: MODEL, text, window: windowEnding(now), ...spec });
}

async function refused(upload: unknown, code: string): Promise<void> {
  expect((await antidoteFailure(ingestTelemetry(ledger, upload))).code).toBe(code);
}

function monitorFinding(subjectType: Finding["subjectType"], subjectId: string, kind: string, score: number) {
  return {
    kind: "finding.recorded" as const,
    payload: {
      subjectType,
      subjectId,
      kind,
      score,
      evidence: { batchId: subjectType === "telemetry-batch" ? subjectId : "agent-1#4" },
      check: `monitor/${kind === "output-drift" ? "drift" : "agent-anomaly"}`,
      checkVersion: "1",
    },
  };
}

beforeAll(async () => {
  enterScratchDir();
  const fresh = await sqlite.fresh();
  ledger = await fresh.open("test");
  for (const agent of [a1, a2, a3, a4])
    await addSource(ledger, { name: agent.name, kind: "agent", publicKeysPem: [agent.publicKeyPem] });
  await addSource(ledger, { name: "acme", kind: "supplier", publicKeysPem: [acme.publicKeyPem] });
  await registerModelDigest(ledger, { digest: MODEL, name: "fm-classifier", trainedOn: [] });
  await registerModelDigest(ledger, { digest: SPARE, name: "fm-next", trainedOn: [] });

  // agent-1: 0, 1, then 4 — a gap of two.
  for (const seq of [0, 1, 4]) await ingestTelemetry(ledger, batch(a1, seq));
  // agent-2: one batch, then its replay.
  const first = batch(a2, 0);
  await ingestTelemetry(ledger, first);
  await refused(first, "REPLAYED");
  // agent-3: two batches (the second quarantined), a replay, then its key revoked.
  await ingestTelemetry(ledger, batch(a3, 0));
  await ingestTelemetry(ledger, batch(a3, 1));
  await quarantineTelemetry(ledger, ["agent-3#1"], "odd feedback", "ana");
  await refused(batch(a3, 1), "REPLAYED");
  await revokeSourceKey(ledger, "agent-3", a3.key.keyId, "laptop stolen");
  await refused(batch(a3, 2), "KEY_UNTRUSTED");
  // Names that are not agents: an unregistered one, a supplier.
  await refused(batch(ghost, 0), "SOURCE_UNKNOWN");
  await refused(batch(acme, 0), "NOT_AN_AGENT");
  // agent-4 sends nothing and is quarantined.
  await recordDecision(
    ledger,
    { action: "quarantine", sources: ["agent-4"], reason: "lost" },
    { actor: "ana" },
  );

  await ledger.append([
    monitorFinding("source", "agent-2", "agent-departure", 9.5),
    monitorFinding("telemetry-batch", "agent-2#0", "trigger-input", 3.25),
    // A scan's per-source finding: not a monitor's, not on the fleet view.
    {
      kind: "finding.recorded",
      payload: {
        subjectType: "source",
        subjectId: "agent-3",
        kind: "source-risk",
        score: 50,
        evidence: {},
        check: "source-risk",
        checkVersion: "1",
      },
    },
    monitorFinding("model", MODEL, "output-drift", 14),
  ]);
  await suspendModel(ledger, MODEL, "drift on the fleet", "ana");
}, 60_000);

afterAll(async () => {
  if (ledger !== undefined) {
    expect(await ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
    await ledger.close();
  }
  leaveScratchDir();
});

describe("fleetStatus", () => {
  it("counts every agent's batches, records, gaps, quarantine and keys from what was sent", async () => {
    const fleet = await fleetStatus(ledger);
    const byName = new Map(fleet.agents.map((a) => [a.name, a]));
    expect(byName.get("agent-1")).toMatchObject({
      keys: { current: 1, revoked: 0 },
      quarantined: false,
      batches: 3,
      quarantinedBatches: 0,
      records: 3 * N,
      feedback: 3 * (N / 4),
      lastBatch: { batchId: "agent-1#4", sequence: 4, model: MODEL },
      gaps: { batches: 1, missing: 2 },
      models: [MODEL],
      refusals: { total: 0, byCode: [] },
      findings: { count: 0, maxScore: null, latest: null },
    });
    expect(byName.get("agent-3")).toMatchObject({
      keys: { current: 0, revoked: 1 },
      batches: 2,
      quarantinedBatches: 1,
      gaps: { batches: 0, missing: 0 },
      refusals: { total: 2 },
      // The scan's finding on agent-3 is not a monitor's.
      findings: { count: 0 },
    });
    expect(
      byName
        .get("agent-3")
        ?.refusals.byCode.map((r) => [r.code, r.refusals])
        .sort(),
    ).toEqual([
      ["KEY_UNTRUSTED", 1],
      ["REPLAYED", 1],
    ]);
    expect(byName.get("agent-4")).toMatchObject({
      quarantined: true,
      batches: 0,
      lastBatch: null,
      models: [],
    });
    const at = Date.parse(byName.get("agent-1")?.lastBatch?.at ?? "");
    expect(Math.abs(at - Date.now())).toBeLessThan(120_000);

    expect(fleet.unattributedRefusals.map((r) => [r.agent, r.code, r.refusals]).sort()).toEqual([
      ["", "SOURCE_UNKNOWN", 1],
      ["acme", "NOT_AN_AGENT", 1],
    ]);
    expect(fleet.totals).toEqual({
      agents: 4,
      batches: 6,
      records: 6 * N,
      refusals: 5,
      monitorFindings: 3,
      suspendedModels: 1,
    });
  });

  it("ranks the agent the monitors flagged first, then by refusals", async () => {
    const fleet = await fleetStatus(ledger);
    expect(fleet.agents.map((a) => a.name)).toEqual(["agent-2", "agent-3", "agent-1", "agent-4"]);
    expect(fleet.agents[0]).toMatchObject({
      refusals: { total: 1, byCode: [{ code: "REPLAYED", refusals: 1 }] },
      findings: {
        count: 2,
        onAgent: 1,
        onBatches: 1,
        maxScore: 9.5,
        latest: {
          kind: "trigger-input",
          score: 3.25,
          subjectId: "agent-2#0",
          check: "monitor/agent-anomaly",
        },
      },
    });
  });

  it("gives each model its status, telemetry and findings", async () => {
    const { models } = await fleetStatus(ledger);
    expect(models).toMatchObject([
      {
        digest: MODEL,
        name: "fm-classifier",
        status: "suspended",
        reason: "drift on the fleet",
        actor: "ana",
        batches: 6,
        records: 6 * N,
        agents: 3,
        findings: 1,
      },
      {
        digest: SPARE,
        status: "active",
        reason: null,
        batches: 0,
        agents: 0,
        lastBatchAt: null,
        findings: 0,
      },
    ]);
  });

  it("lists the newest monitor alerts first, with subject, batch and agent", async () => {
    const { alerts } = await fleetStatus(ledger, { alerts: 2 });
    expect(alerts).toMatchObject([
      {
        check: "monitor/drift",
        kind: "output-drift",
        subjectType: "model",
        subjectId: MODEL,
        score: 14,
        batchId: "agent-1#4",
        agent: null,
      },
      { kind: "trigger-input", subjectType: "telemetry-batch", batchId: "agent-2#0", agent: "agent-2" },
    ]);
    expect(alerts[0]?.seq).toBeGreaterThan(alerts[1]?.seq ?? Infinity);
    expect(Number.isNaN(Date.parse(alerts[0]?.at ?? ""))).toBe(false);
    expect((await fleetStatus(ledger, { alerts: 0 })).alerts).toEqual([]);
    expect((await fleetStatus(ledger)).alerts.map((a) => a.subjectId)).toEqual([
      MODEL,
      "agent-2#0",
      "agent-2",
    ]);
  });

  it("reads the same across page boundaries, and refuses bad options", async () => {
    expect(await fleetStatus(ledger, { pageSize: 1 })).toEqual(await fleetStatus(ledger));
    expect(await fleetStatus(ledger, { pageSize: 2 })).toEqual(await fleetStatus(ledger));
    await expect(fleetStatus(ledger, { alerts: -1 })).rejects.toMatchObject({ code: "USAGE" });
    await expect(fleetStatus(ledger, { pageSize: 0 })).rejects.toThrow(/pageSize/);
  });
});
