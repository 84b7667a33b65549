import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PatchSpec } from "../../src/attack/index.js";
import { Rng } from "../../src/math/rng.js";
import { monitorBaseline, parseMonitorBaseline, type MonitorBaseline } from "../../src/monitor/baseline.js";
import {
  calibrateKnownTriggers,
  calibrateStripScreen,
  createDriftMonitor,
  createMonitors,
  createTargetedWatch,
  createTriggerAlarm,
  knownTriggerFromFinding,
  knownTriggerFromPatchSpec,
  knownTriggerFromReversed,
  matchesTrigger,
  type KnownTrigger,
  type MonitorAlert,
  type MonitorsConfig,
} from "../../src/monitor/monitors/index.js";
import type { DecodedBatch, DecodedRecord } from "../../src/monitor/schema.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import {
  CLASSES,
  K,
  PIXELS,
  batchOf,
  imageOf,
  monitorData,
  recordOf,
  type MonitorData,
  type Pool,
} from "./monitor-data.js";

// The monitors on real telemetry: a backdoored Fashion-MNIST CNN serving a fleet of 50 agents whose
// batches are built from the model's real outputs on the 8,000 production test images, with
// compromised agents that perform the attacks — trigger-carrying inputs, relabeled feedback, another
// model than the one they attest — and ground truth, so the monitors are scored like detectors:
// precision and recall over agents and records, detection delay in batches, false alarms counted
// on clean fleets of 20,000 batches.

const TROUSER = CLASSES.indexOf("Trouser");
const DRESS = CLASSES.indexOf("Dress");

type Role = "honest" | "trigger" | "flip" | "other-model";
type Truth = "triggered" | "flipped" | "other-model";

interface FleetBatch {
  batch: DecodedBatch;
  role: Role;
  /** Per record id: what the attacker did to it. */
  truth: Map<string, Truth>;
}

/** Batches of a fleet, round by round, agents in a new random order each round. */
function* fleet(
  data: MonitorData,
  roles: readonly Role[],
  opts: {
    rounds: number;
    batchSize: number;
    seed: number;
    share?: number;
    feedbackRate?: number;
    images?: boolean;
  },
): Generator<FleetBatch> {
  const rng = new Rng(opts.seed);
  const share = opts.share ?? 0.05;
  const feedbackRate = opts.feedbackRate ?? 0.6;
  const seq = roles.map(() => 0);
  const order = roles.map((_, i) => i);
  for (let round = 0; round < opts.rounds; round++) {
    rng.shuffle(order);
    for (const a of order) {
      const role = roles[a] as Role;
      const agent = `agent-${String(a).padStart(2, "0")}`;
      const truth = new Map<string, Truth>();
      const records: DecodedRecord[] = [];
      for (let i = 0; i < opts.batchSize; i++) {
        const id = `${agent}:${seq[a]}:${i}`;
        const withImage = opts.images !== false;
        if (role === "trigger" && rng.next() < share) {
          const j = rng.int(data.triggered.n);
          const feedback = rng.next() < feedbackRate ? (data.triggered.y[j] as number) : -1;
          records.push(recordOf(id, data.triggered, j, { feedback, withImage }));
          truth.set(id, "triggered");
          continue;
        }
        const j = rng.int(data.production.n);
        const y = data.production.y[j] as number;
        let feedback = rng.next() < feedbackRate ? y : -1;
        // Targeted relabeling: half the Trousers (≈ 5% of the traffic) reported as Dresses.
        if (role === "flip" && y === TROUSER && rng.next() < share / 0.1) {
          feedback = DRESS;
          truth.set(id, "flipped");
        }
        const probs = role === "other-model" ? data.otherModel.subarray(j * K, (j + 1) * K) : undefined;
        if (role === "other-model") truth.set(id, "other-model");
        records.push(recordOf(id, data.production, j, { feedback, withImage, ...(probs ? { probs } : {}) }));
      }
      const sequence = seq[a] as number;
      seq[a] = sequence + 1;
      yield { batch: batchOf(agent, sequence, data.model, records), role, truth };
    }
  }
}

function slice(pool: Pool, from: number, to: number): { x: Float32Array; n: number } {
  return { x: pool.x.slice(from * PIXELS, to * PIXELS), n: to - from };
}

function* imagesOf(pool: Pool): Generator<{ image: ReturnType<typeof imageOf> }> {
  for (let i = 0; i < pool.n; i++) yield { image: imageOf(pool, i) };
}

describe.runIf(hasFashionMnist())("monitors on a backdoored Fashion-MNIST CNN's real outputs", () => {
  let dir: string;
  let data: MonitorData;
  let baseline: MonitorBaseline;
  let patchTrigger: KnownTrigger;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-monitors-"));
    data = await monitorData(dir);
    baseline = monitorBaseline(
      data.validation.probs,
      data.validation.n,
      CLASSES,
      Int32Array.from(data.validation.y),
    );
    patchTrigger = knownTriggerFromPatchSpec(
      data.fm.attack as PatchSpec,
      { height: 28, width: 28 },
      {
        target: CLASSES[data.fm.target ?? 0] ?? null,
      },
    );
  });
  afterAll(async () => {
    await data?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes a JSON baseline from the validation outputs and reads it back", () => {
    expect(data.fm.attackSuccessRate).toBeGreaterThan(0.85); // the backdoor works
    expect(baseline.n).toBe(2000);
    expect(baseline.labeled).toBe(2000);
    const accuracy = baseline.confusion?.reduce((a, row, i) => a + (row[i] as number), 0) ?? 0;
    expect(accuracy / 2000).toBeGreaterThan(0.8);
    expect(baseline.entropy.mean).toBeGreaterThan(0);
    const back = parseMonitorBaseline(JSON.parse(JSON.stringify(baseline)), "baseline.json");
    expect(back).toEqual(baseline);
    expect(() => parseMonitorBaseline({ ...baseline, predicted: [1, 2] }, "baseline.json")).toThrow(
      /baseline\.json: not a monitor baseline: "predicted"/,
    );
  });

  it("matches known triggers from an attack spec, the scan's finding and a reversed mask; measures natural matches", () => {
    const fromScan = knownTriggerFromFinding(data.patchFinding);
    expect(fromScan).toMatchObject({ kind: "binary-patch", target: "T-shirt/top" });
    // What Neural Cleanse reverses for this backdoor, at best: the 3×3 patch as mask, white as pattern.
    const mask = new Array<number>(PIXELS).fill(0);
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) mask[(24 + dy) * 28 + 24 + dx] = 1;
    const reversed = knownTriggerFromReversed(
      { label: 0, mask, pattern: new Array<number>(PIXELS).fill(0.95) },
      [1, 28, 28],
      {
        classes: CLASSES,
      },
    );
    const rates: Record<string, { recall: number; natural: number }> = {};
    for (const t of [patchTrigger, fromScan, reversed]) {
      let hits = 0;
      for (const c of imagesOf(data.triggered)) if (matchesTrigger(t, c)) hits++;
      const natural = calibrateKnownTriggers([t], imagesOf(data.production));
      rates[t.kind] = { recall: hits / data.triggered.n, natural: natural.matches / natural.n };
    }
    console.log(
      "known triggers (recall on triggered images, natural match rate on 8,000 clean):",
      JSON.stringify(rates),
    );
    expect(rates["image-patch"]?.recall).toBe(1);
    expect(rates["image-patch"]?.natural).toBeLessThan(0.001);
    expect(rates["reversed-mask"]?.recall).toBe(1);
    expect(rates["reversed-mask"]?.natural).toBeLessThan(0.01);
    expect(rates["binary-patch"]?.recall).toBe(1);
    expect(rates["binary-patch"]?.natural).toBeLessThan(0.05);
    expect(() => knownTriggerFromFinding({ kind: "label-issue", evidence: {} })).toThrow(
      /only "trigger-patch" and "trigger-token"/,
    );
  });

  it("50 agents, 7 compromised: all flagged, no honest agent flagged, within a few batches; survives a restart", async () => {
    const roles: Role[] = Array.from({ length: 50 }, (_, i) =>
      i < 3 ? "trigger" : i < 6 ? "flip" : i < 7 ? "other-model" : "honest",
    );
    // Agents are numbered by role, but nothing in the monitors reads the numbers.
    const calibration = calibrateKnownTriggers([patchTrigger], imagesOf(data.validation));
    const config: MonitorsConfig = {
      baselines: { [data.model]: baseline },
      triggers: {
        known: [patchTrigger],
        knownCalibration: { n: calibration.n, matches: calibration.matches },
      },
      attestation: { sample: 4 },
    };
    const runtime = { predictors: { [data.model]: data.predict } };
    let monitors = createMonitors(config, runtime);
    const alerts: { alert: MonitorAlert; round: number }[] = [];
    const firstAlert = new Map<string, number>(); // agent → its batch number (1-based) at first alert
    const truthOf = new Map<string, Map<string, Truth>>();
    const started = performance.now();
    let batches = 0;
    const ROUNDS = 20;
    for (const fb of fleet(data, roles, { rounds: ROUNDS, batchSize: 50, seed: 7 })) {
      const round = Math.floor(batches / roles.length);
      if (batches === 10 * roles.length) {
        // A restart: the state goes through JSON and a new instance continues from it.
        monitors = createMonitors(config, {
          ...runtime,
          state: JSON.parse(JSON.stringify(monitors.state())),
        });
      }
      batches++;
      truthOf.set(fb.batch.batchId, fb.truth);
      for (const alert of await monitors.observe(fb.batch)) {
        alerts.push({ alert, round });
        if (alert.subjectType === "source" && !firstAlert.has(alert.subjectId))
          firstAlert.set(alert.subjectId, fb.batch.sequence + 1);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const compromised = roles.flatMap((r, i) =>
      r === "honest" ? [] : [`agent-${String(i).padStart(2, "0")}`],
    );
    const flagged = [...firstAlert.keys()];
    const tp = flagged.filter((a) => compromised.includes(a)).length;
    const delays = compromised.map((a) => firstAlert.get(a) ?? Infinity);
    const byMonitor: Record<string, number> = {};
    for (const { alert } of alerts)
      byMonitor[`${alert.monitor}/${alert.kind}/${alert.subjectType}`] =
        (byMonitor[`${alert.monitor}/${alert.kind}/${alert.subjectType}`] ?? 0) + 1;
    console.log(
      `fleet: ${batches} batches in ${seconds.toFixed(1)} s; agents flagged ${flagged.length}, true ${tp}/${compromised.length}; ` +
        `first-alert batch per compromised agent ${JSON.stringify(delays)}; alerts ${JSON.stringify(byMonitor)}`,
    );
    expect(tp).toBe(compromised.length); // recall 1
    expect(flagged.length).toBe(tp); // no honest agent flagged
    expect(Math.max(...delays)).toBeLessThanOrEqual(16);

    // Which monitor found whom: each attack by the check made for it.
    const sourceAlerts = (agent: string) =>
      alerts
        .filter((a) => a.alert.subjectType === "source" && a.alert.subjectId === agent)
        .map((a) => a.alert);
    for (const a of compromised.slice(0, 3))
      expect(sourceAlerts(a).some((x) => x.kind === "trigger-alarm")).toBe(true);
    const foundAt = (kind: string) =>
      compromised.slice(3, 6).map((a) => {
        const at = alerts.find((x) => x.alert.subjectId === a && x.alert.kind === kind);
        return at === undefined ? null : at.round + 1;
      });
    console.log(
      `relabeling agents: suspicious-feedback at their batch ${JSON.stringify(foundAt("suspicious-feedback"))}, ` +
        `targeted-confusion at ${JSON.stringify(foundAt("targeted-confusion"))}`,
    );
    for (const a of compromised.slice(3, 6)) {
      const found = sourceAlerts(a);
      expect(found.some((x) => x.kind === "suspicious-feedback")).toBe(true);
      expect(
        found.some(
          (x) =>
            x.kind === "targeted-confusion" &&
            x.evidence.source === "Dress" &&
            x.evidence.target === "Trouser",
        ),
      ).toBe(true);
    }
    expect(sourceAlerts(compromised[6] as string).some((x) => x.kind === "attestation-mismatch")).toBe(true);
    expect(
      alerts
        .filter((a) => a.alert.kind === "attestation-mismatch")
        .every((a) => a.alert.evidence.agent === compromised[6]),
    ).toBe(true);

    // The batches the trigger alarm named: every listed record carried the trigger (precision 1),
    // and they cover most of what the trigger agents sent after their first alert.
    let listed = 0;
    let listedTrue = 0;
    const listedIds = new Set<string>();
    for (const { alert } of alerts)
      if (alert.kind === "trigger-alarm" && alert.subjectType === "telemetry-batch") {
        const truth = truthOf.get(alert.subjectId) as Map<string, Truth>;
        for (const id of alert.evidence.records as string[]) {
          listed++;
          listedIds.add(id);
          if (truth.get(id) === "triggered") listedTrue++;
        }
      }
    let sent = 0;
    for (const truth of truthOf.values()) for (const t of truth.values()) if (t === "triggered") sent++;
    const recall = [...listedIds].length / sent;
    console.log(
      `trigger records: ${sent} sent, ${listed} listed in batch alerts, precision ${(listedTrue / listed).toFixed(3)}, recall ${recall.toFixed(3)}`,
    );
    expect(listedTrue).toBe(listed);
    expect(listed).toBe(listedIds.size); // each record in one batch alert only
    expect(recall).toBeGreaterThan(0.95);
  });

  it("a restarted monitor set continues exactly where it stopped (state through JSON)", async () => {
    const roles: Role[] = [
      "trigger",
      "flip",
      "other-model",
      ...Array.from({ length: 9 }, (): Role => "honest"),
    ];
    const config: MonitorsConfig = {
      baselines: { [data.model]: baseline },
      // Fixed sampling keys, so that the uninterrupted run samples the same records.
      triggers: { known: [patchTrigger], samplingKey: 1 },
      attestation: { sample: 2, samplingKey: 1 },
      anomaly: { minReference: 300 },
    };
    const runtime = { predictors: { [data.model]: data.predict } };
    const batches = [...fleet(data, roles, { rounds: 8, batchSize: 40, seed: 9 })].map((b) => b.batch);
    const straight = createMonitors(config, runtime);
    const expected: MonitorAlert[] = [];
    for (const b of batches) expected.push(...(await straight.observe(b)));
    let restarted = createMonitors(config, runtime);
    const got: MonitorAlert[] = [];
    for (const [i, b] of batches.entries()) {
      if (i === 50)
        restarted = createMonitors(config, {
          ...runtime,
          state: JSON.parse(JSON.stringify(restarted.state())),
        });
      got.push(...(await restarted.observe(b)));
    }
    expect(expected.length).toBeGreaterThan(3);
    expect(got).toEqual(expected);
    expect(JSON.parse(JSON.stringify(restarted.state()))).toEqual(
      JSON.parse(JSON.stringify(straight.state())),
    );
  });

  it("drift and targeted watch: ≤ 1 false alarm per 10,000 clean batches; a real shift found within the stated delay", () => {
    // Clean fleet: 20,000 batches of 50 records resampled from the production outputs, with feedback.
    const rng = new Rng(11);
    const records: DecodedRecord[] = Array.from({ length: data.production.n }, (_, j) =>
      recordOf(`p${j}`, data.production, j, { feedback: data.production.y[j] as number, withImage: false }),
    );
    const triggered: DecodedRecord[] = Array.from({ length: data.triggered.n }, (_, j) =>
      recordOf(`t${j}`, data.triggered, j, { feedback: data.triggered.y[j] as number, withImage: false }),
    );
    const baselines = { [data.model]: baseline };
    const drift = createDriftMonitor(baselines);
    const targeted = createTargetedWatch(baselines, { perAgent: false });
    const BATCHES = 20_000;
    let driftAlarms = 0;
    let targetedAlarms = 0;
    for (let b = 0; b < BATCHES; b++) {
      const batch = batchOf(
        `agent-${b % 50}`,
        b,
        data.model,
        Array.from({ length: 50 }, () => records[rng.int(records.length)] as DecodedRecord),
      );
      driftAlarms += drift.observe(batch).length > 0 ? 1 : 0;
      targetedAlarms += targeted.observe(batch).length > 0 ? 1 : 0;
    }
    console.log(
      `clean fleet, ${BATCHES} batches of 50: drift false alarms ${driftAlarms}, targeted-watch false alarms ${targetedAlarms}`,
    );
    expect(driftAlarms).toBeLessThanOrEqual(BATCHES / 10_000);
    expect(targetedAlarms).toBeLessThanOrEqual(BATCHES / 10_000);

    // Shift: 20% of the fleet's inputs now carry the trigger. Found within 6 batches.
    const shifted = createDriftMonitor(baselines);
    let found: { at: number; alert: MonitorAlert } | null = null;
    for (let b = 1; b <= 100 && found === null; b++) {
      const batch = batchOf(
        `agent-${b % 50}`,
        b,
        data.model,
        Array.from({ length: 50 }, () =>
          rng.next() < 0.2
            ? (triggered[rng.int(triggered.length)] as DecodedRecord)
            : (records[rng.int(records.length)] as DecodedRecord),
        ),
      );
      const a = shifted.observe(batch)[0];
      if (a !== undefined) found = { at: b, alert: a };
    }
    console.log(
      `drift: 20% triggered traffic found at batch ${found?.at} (${JSON.stringify(found?.alert.evidence)})`,
    );
    expect(found?.at).toBeLessThanOrEqual(6);
    expect(found?.alert).toMatchObject({ kind: "output-drift", subjectType: "model", subjectId: data.model });

    // Fleet-level targeted watch: half the fleet relabels 5% of its traffic (Trousers as Dresses).
    const watch = createTargetedWatch(baselines, { perAgent: false });
    let pair: { at: number; alert: MonitorAlert } | null = null;
    for (let b = 1; b <= 200 && pair === null; b++) {
      const flips = b % 2 === 0;
      const batch = batchOf(
        `agent-${b % 50}`,
        b,
        data.model,
        Array.from({ length: 50 }, () => {
          const r = records[rng.int(records.length)] as DecodedRecord;
          return flips && r.feedback === TROUSER && rng.next() < 0.5 ? { ...r, feedback: DRESS } : r;
        }),
      );
      const a = watch.observe(batch)[0];
      if (a !== undefined) pair = { at: b, alert: a };
    }
    console.log(`targeted watch (fleet): relabeling campaign found at batch ${pair?.at}`);
    expect(pair?.alert.evidence).toMatchObject({ source: "Dress", target: "Trouser", scope: "fleet" });
    expect(pair?.at).toBeLessThanOrEqual(60);
  });

  it("STRIP screening at FRR 1%: flags most triggered records, and the agents that send them", async () => {
    const background = slice(data.validation, 1000, 1300);
    const screen = await calibrateStripScreen(
      data.predict,
      slice(data.validation, 0, 1000),
      background,
      { height: 28, width: 28, channels: 1 },
      {
        frr: 0.01,
        perturbations: 16,
        perBatch: 32,
        seed: 3,
      },
    );
    const alarm = createTriggerAlarm(
      { strip: { [data.model]: screen } },
      { strip: { [data.model]: { predict: data.predict, background } } },
    );
    // Two of six agents send 20% triggered inputs: STRIP's per-agent chart needs the larger share
    // (docs/monitors.md: at 5% it needs ≈ 800 screened records per agent); known triggers do not.
    const roles: Role[] = ["trigger", "honest", "honest", "trigger", "honest", "honest"];
    let tp = 0;
    let fn = 0;
    let fp = 0;
    let tn = 0;
    const agents = new Map<string, number>();
    for (const fb of fleet(data, roles, { rounds: 10, batchSize: 32, seed: 5, share: 0.2 })) {
      const notes = { screened: new Set<string>(), flagged: new Map<string, string[]>() };
      for (const a of await alarm.observe(fb.batch, notes))
        if (a.subjectType === "source" && !agents.has(a.subjectId))
          agents.set(a.subjectId, fb.batch.sequence + 1);
      for (const r of fb.batch.records) {
        const bad = fb.truth.get(r.id) === "triggered";
        const flagged = notes.flagged.has(r.id);
        if (bad && flagged) tp++;
        else if (bad) fn++;
        else if (flagged) fp++;
        else tn++;
      }
    }
    const recall = tp / (tp + fn);
    const frr = fp / (fp + tn);
    console.log(
      `STRIP (16 overlays, FRR 1% on 1,000 clean): recall ${recall.toFixed(3)} of ${tp + fn} triggered, ` +
        `FRR ${frr.toFixed(4)} on ${fp + tn} clean, precision ${(tp / (tp + fp)).toFixed(3)}; ` +
        `agents flagged at batch ${JSON.stringify(Object.fromEntries(agents))}`,
    );
    expect(recall).toBeGreaterThanOrEqual(0.6);
    expect(frr).toBeLessThanOrEqual(0.03);
    expect([...agents.keys()].sort()).toEqual(["agent-00", "agent-03"]);
  });
});
