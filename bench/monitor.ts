// bench:monitor — the deployed loop, measured like the scan's detectors: a fleet of agents
// serving a Fashion-MNIST CNN that carries a backdoor (trained on 2 % patched images, the
// project's own BadNets simulator), a few agents compromised and, on 5 % of their traffic,
// sending trigger-carrying inputs labelled as the target, flipping feedback labels, replaying
// and forging batches and running another model than they attest. Everything goes through the
// real intake (signed batches, SQLite ledger), the monitors (`monitor init` → `monitor run`) and
// the closed-loop gate (`telemetry export --for-training`), and is scored against the
// simulator's ground truth:
//   - agents flagged (recall over the compromised, false positives among the honest) and the
//     batches it took;
//   - poisoned records the gate admitted, as a share of what the compromised agents sent;
//   - forged and replayed batches refused, wrong-model batches refused or caught;
//   - alarms on a clean fleet, per 10,000 batches;
//   - intake records/s (in-process; bench:telemetry-intake has HTTP and PostgreSQL).
//
//   npm run bench:monitor [-- --agents 50 --compromised 3 --rate 0.05 --batches 30 --batch-size 200
//                           --slices shared|disjoint]
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { simulateAttack } from "../src/attack/index.js";
import { FASHION_MNIST_CLASSES } from "../src/data/builtin.js";
import { memoryDataset, MemoryWriter } from "../src/data/memory.js";
import { openDataset } from "../src/data/open.js";
import type { Sample } from "../src/data/sample.js";
import { openLedger } from "../src/ledger/index.js";
import type { Ledger } from "../src/ledger/types.js";
import { generateSigningKey } from "../src/provenance/keys.js";
import { registerModelDigest } from "../src/provenance/model-digest.js";
import { addSource } from "../src/provenance/sources.js";
import { signingKeyFromPem, intakeTransport } from "../src/monitor/fleet/transport.js";
import { onnxFleetModel } from "../src/monitor/fleet/model.js";
import { fleetAgentNames } from "../src/monitor/fleet/plan.js";
import { simulateFleet, type FleetSimResult } from "../src/monitor/fleet-sim.js";
import { buildTrainingCandidate } from "../src/monitor/gate.js";
import { ingestTelemetry } from "../src/monitor/intake.js";
import { knownTriggerFromPatchSpec } from "../src/monitor/monitors/index.js";
import { createMonitorRunner } from "../src/monitor/runner.js";
import { prepareMonitoring, type MonitorSetup } from "../src/monitor/setup.js";
import type { SigningKey } from "../src/provenance/keys.js";
import { trainedModelFor } from "./detect-models.js";

const { values: args } = parseArgs({
  options: {
    agents: { type: "string", default: "50" },
    compromised: { type: "string", default: "3" },
    rate: { type: "string", default: "0.05" },
    batches: { type: "string", default: "30" },
    "batch-size": { type: "string", default: "200" },
    "clean-batches": { type: "string", default: "40" },
    seed: { type: "string", default: "7" },
    /** shared: every agent serves the whole test set; disjoint: each its own slice (honest agents differ). */
    slices: { type: "string", default: "shared" },
  },
});
const AGENTS = Number(args.agents);
const COMPROMISED = Number(args.compromised);
const RATE = Number(args.rate);
const BATCHES = Number(args.batches);
const BATCH_SIZE = Number(args["batch-size"]);
const CLEAN_BATCHES = Number(args["clean-batches"]);
const SEED = Number(args.seed);
const SLICES = args.slices === "disjoint" ? "disjoint" : "shared";
const PATCH = { kind: "patch" as const, size: 3, position: "bottom-right" as const, value: 1 };
const TARGET = FASHION_MNIST_CLASSES[0] as string;

const cacheDir = join(process.cwd(), ".cache", "monitor-bench");
mkdirSync(cacheDir, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "antidote-bench-monitor-"));

try {
  const modelPath = await deployedModel();
  const test = await samplesOf("fashion-mnist:test", 10_000);
  const validation = test.slice(0, 2500); // baseline 2,000 + STRIP background 200 (+ spare)
  const served = test.slice(2500);
  const validationFile = join(work, "validation.parquet");
  await writeSamples(validationFile, validation);

  const attacked = await runLoop("attacked", modelPath, validationFile, served, {
    compromised: COMPROMISED,
    batches: BATCHES,
    gate: true,
  });
  const clean = await runLoop("clean", modelPath, validationFile, served, {
    compromised: 0,
    batches: CLEAN_BATCHES,
    gate: false, // the clean fleet measures false alarms; its gate would only cost minutes
  });
  report(attacked, clean);
} finally {
  rmSync(work, { recursive: true, force: true });
}

interface LoopResult {
  sim: FleetSimResult;
  intakeSeconds: number;
  acceptedRecords: number;
  monitorSeconds: number;
  batchesRead: number;
  alerts: { monitor: string; kind: string; subjectType: string; subjectId: string; batchId: string }[];
  gate: Awaited<ReturnType<typeof buildTrainingCandidate>>;
  gateSeconds: number;
  admittedIds: Set<string>;
}

async function runLoop(
  name: string,
  modelPath: string,
  validationFile: string,
  served: readonly Sample[],
  o: { compromised: number; batches: number; gate: boolean },
): Promise<LoopResult> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "bench" });
  try {
    const model = await onnxFleetModel(modelPath, FASHION_MNIST_CLASSES);
    await registerModelDigest(ledger, { digest: model.digest, name: "fm-cnn", trainedOn: [] });
    const keys = await agentKeys(ledger, AGENTS);
    const setupFile = join(dir, "monitor.json");
    await prepareMonitoring({ model: modelPath, data: validationFile, out: setupFile, validation: 2000 });
    const setup = await withKnownTrigger(setupFile, model.digest);

    let intakeMs = 0;
    let acceptedRecords = 0;
    const ingest = intakeTransport(async (upload) => {
      const t = performance.now();
      try {
        const batch = await ingestTelemetry(ledger, upload);
        acceptedRecords += batch.count;
        return batch;
      } finally {
        intakeMs += performance.now() - t;
      }
    });
    process.stderr.write(
      `[${name}] fleet: ${AGENTS} agents, ${o.compromised} compromised, ${o.batches} batches of ${BATCH_SIZE}\n`,
    );
    const sim = await simulateFleet({
      data: { samples: served, classes: FASHION_MNIST_CLASSES },
      model,
      agents: AGENTS,
      compromised: o.compromised,
      rate: RATE,
      behaviours: ["trigger", "flip", "replay", "forge", "wrong-model"],
      batches: o.batches,
      batchSize: BATCH_SIZE,
      trigger: { ...PATCH, target: TARGET },
      seed: SEED,
      slices: SLICES,
      send: ingest,
      keys: (agent) => keys.get(agent) as SigningKey,
    });
    await model.close?.();

    process.stderr.write(`[${name}] monitors…\n`);
    let t = performance.now();
    const runner = await createMonitorRunner(ledger, setup, { setupFile, sink: null });
    const run = await runner.run();
    await runner.close();
    const monitorSeconds = (performance.now() - t) / 1000;

    process.stderr.write(`[${name}] gate…\n`);
    t = performance.now();
    const since = new Date(0).toISOString();
    const gate = await buildTrainingCandidate(ledger, {
      since,
      name: "telemetry",
      scanOptions: { model: modelPath },
      dryRun: !o.gate,
      scan: o.gate,
    });
    const gateSeconds = (performance.now() - t) / 1000;
    // Admitted: in its agent's gate delivery, and its content a member of the version.
    const members = new Set<string>();
    if (gate.version !== null)
      for await (const m of ledger.datasetMembers(gate.version)) members.add(m.digest);
    const admittedIds = new Set<string>();
    for (const a of gate.agents)
      if (a.deliveryId !== null)
        for (const s of (await ledger.deliveryEvidence(a.deliveryId)).samples)
          if (members.has(s.digest)) admittedIds.add(s.id);
    return {
      sim,
      intakeSeconds: intakeMs / 1000,
      acceptedRecords,
      monitorSeconds,
      batchesRead: run.batches,
      alerts: run.alerts,
      gate,
      gateSeconds,
      admittedIds,
    };
  } finally {
    await ledger.close();
  }
}

/** The setup `monitor init` wrote, plus the fleet's patch as a trigger an earlier scan found. */
async function withKnownTrigger(setupFile: string, digest: string): Promise<MonitorSetup> {
  const { readMonitorSetup } = await import("../src/monitor/setup.js");
  const setup = await readMonitorSetup(setupFile);
  const monitors = setup.monitors as { triggers?: { known?: unknown[] } };
  const known = knownTriggerFromPatchSpec(
    PATCH,
    { height: 28, width: 28 },
    { id: "scan:patch", target: TARGET },
  );
  monitors.triggers = { ...(monitors.triggers ?? {}), known: [{ ...known, models: [digest] }] };
  return setup;
}

function report(attacked: LoopResult, clean: LoopResult): void {
  const truth = attacked.sim.truth;
  const compromised = new Set(truth.agents.filter((a) => a.compromised).map((a) => a.name));
  const flaggedAgents = new Map<string, string>(); // agent → first batch flagged
  for (const a of attacked.alerts) {
    const agent = a.subjectType === "source" ? a.subjectId : (a.batchId.split("#")[0] ?? "");
    if (!flaggedAgents.has(agent)) flaggedAgents.set(agent, a.batchId);
  }
  const tp = [...compromised].filter((a) => flaggedAgents.has(a));
  const fp = [...flaggedAgents.keys()].filter((a) => !compromised.has(a));
  const delays = tp.map((a) => Number((flaggedAgents.get(a) ?? "#0").split("#")[1]) + 1);

  const poisoned = truth.records.filter((r) => r.poisoned && r.how !== "forge" && r.feedback !== null);
  const poisonedAdmitted = poisoned.filter((r) => attacked.admittedIds.has(`${r.batchId}/${r.id}`));
  const uploads = truth.uploads;
  const refusedShare = (kind: string): string => {
    const all = uploads.filter((u) => u.kind === kind);
    const refused = all.filter((u) => u.outcome !== null && !u.outcome.accepted);
    return `${refused.length}/${all.length}`;
  };
  const wrong = uploads.filter((u) => u.kind === "wrong-model");
  const caughtBatches = new Set(attacked.alerts.map((a) => a.batchId));
  const wrongCaught = wrong.filter(
    (u) =>
      (u.outcome !== null && !u.outcome.accepted) ||
      caughtBatches.has(u.batchId) ||
      flaggedAgents.has(u.agent),
  );
  const cleanBatches = clean.batchesRead;
  const cleanAlarms = clean.alerts.length;

  const rows: [string, string][] = [
    [
      "fleet",
      `${AGENTS} agents, ${COMPROMISED} compromised at ${RATE * 100} % of their traffic, ${BATCHES} batches × ${BATCH_SIZE} records each`,
    ],
    ["compromised agents flagged", `${tp.length}/${compromised.size}`],
    [
      "honest agents flagged",
      `${fp.length}/${AGENTS - compromised.size}${fp.length ? ` (${fp.join(", ")})` : ""}`,
    ],
    ["batches to detection (per agent)", delays.length ? delays.join(", ") : "—"],
    [
      "poisoned records admitted by the gate",
      `${poisonedAdmitted.length} of ${poisoned.length} sent (${((poisonedAdmitted.length / Math.max(1, poisoned.length)) * 100).toFixed(2)} %)`,
    ],
    [
      "gate",
      `${attacked.gate.batches.admitted}/${attacked.gate.batches.considered} batches, ${attacked.gate.records.admitted} records admitted; scan flagged ${attacked.gate.records.scanFlagged}; ${attacked.gateSeconds.toFixed(1)} s`,
    ],
    ["forged batches refused", refusedShare("forge")],
    ["replayed batches refused", refusedShare("replay")],
    [
      "wrong-model batches refused or caught",
      `${wrongCaught.length}/${wrong.length} (refused at intake ${refusedShare("wrong-model")})`,
    ],
    [
      "clean fleet: alarms",
      `${cleanAlarms} in ${cleanBatches} batches (${((cleanAlarms / Math.max(1, cleanBatches)) * 10_000).toFixed(1)} per 10,000)`,
    ],
    [
      "intake, in-process, SQLite",
      `${Math.round(attacked.acceptedRecords / attacked.intakeSeconds).toLocaleString("en-US")} records/s (${attacked.acceptedRecords.toLocaleString("en-US")} records in ${attacked.intakeSeconds.toFixed(1)} s)`,
    ],
    [
      "monitors",
      `${attacked.batchesRead} batches in ${attacked.monitorSeconds.toFixed(1)} s (${(attacked.batchesRead / attacked.monitorSeconds).toFixed(1)} batches/s)`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nbench:monitor (seed ${SEED}, ${SLICES} slices)\n`);
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v}\n`);
  const byMonitor = new Map<string, number>();
  for (const a of attacked.alerts)
    byMonitor.set(`${a.monitor}/${a.kind}`, (byMonitor.get(`${a.monitor}/${a.kind}`) ?? 0) + 1);
  process.stdout.write(`  alerts by monitor: ${[...byMonitor].map(([k, n]) => `${k} ${n}`).join(", ")}\n`);
}

async function agentKeys(ledger: Ledger, n: number): Promise<Map<string, SigningKey>> {
  const keys = new Map<string, SigningKey>();
  for (const name of fleetAgentNames(n, "agent-")) {
    const pair = generateSigningKey();
    await addSource(ledger, { name, kind: "agent", publicKeysPem: [pair.publicKeyPem] });
    keys.set(name, signingKeyFromPem(pair.privateKeyPem));
  }
  return keys;
}

/** A CNN trained on 10,000 training images of which 2 % carry the patch and the target label. */
async function deployedModel(): Promise<string> {
  const train = await samplesOf("fashion-mnist:train", 10_000);
  const writer = new MemoryWriter();
  await simulateAttack(memoryDataset(train, { classes: [...FASHION_MNIST_CLASSES] }), writer, {
    ...PATCH,
    rate: 0.02,
    target: TARGET,
    seed: SEED,
  });
  const model = await trainedModelFor(
    "monitor-patch",
    writer.samples,
    { classes: [...FASHION_MNIST_CLASSES] },
    cacheDir,
  );
  return model.path;
}

async function samplesOf(spec: string, n: number): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of (await openDataset(spec)).samples()) {
    if (out.length >= n) break;
    out.push(s);
  }
  return out;
}

async function writeSamples(path: string, samples: readonly Sample[]): Promise<void> {
  const { createWriter } = await import("../src/data/open.js");
  const writer = await createWriter(path, { format: "parquet", classes: [...FASHION_MNIST_CLASSES] });
  for (const s of samples) await writer.write(s);
  await writer.close();
}
