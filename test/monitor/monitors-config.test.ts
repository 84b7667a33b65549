import { describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { Rng } from "../../src/math/rng.js";
import { monitorBaseline } from "../../src/monitor/baseline.js";
import { ConsensusWindow, type ConsensusState } from "../../src/monitor/monitors/feedback-consensus.js";
import { FleetReference, type FleetReferenceState } from "../../src/monitor/monitors/fleet-reference.js";
import {
  calibrateKnownTriggers,
  createMonitors,
  createTriggerAlarm,
  knownTriggerFromFinding,
  matchesTrigger,
  monitorsConfigSchema,
  toFinding,
  type MonitorAlert,
} from "../../src/monitor/monitors/index.js";
import type { DecodedBatch, DecodedRecord } from "../../src/monitor/schema.js";
import { spamAssassinSamples } from "../helpers/real-data.js";

// The parts of the monitors that need no model: the config schema and its defaults, saved-state
// checks, the finding an alert records, text triggers on real e-mail (SpamAssassin), the feedback
// consensus's rules (same input first, never an agent's own records), the fleet reference's decay.

const MODEL = "a".repeat(64);

function record(
  id: string,
  probs: number[],
  feedback = -1,
  extra: Partial<DecodedRecord> = {},
): DecodedRecord {
  const p = Float32Array.from(probs);
  let predicted = 0;
  for (let k = 1; k < p.length; k++) if ((p[k] as number) > (p[predicted] as number)) predicted = k;
  return {
    id,
    at: 0,
    digest: id.padEnd(64, "0"),
    probs: p,
    predicted,
    feedback,
    feedbackKind: feedback >= 0 ? "human" : null,
    ...extra,
  };
}

function batch(
  agent: string,
  sequence: number,
  records: DecodedRecord[],
  classes = ["ham", "spam"],
): DecodedBatch {
  return {
    batchId: `${agent}#${sequence}`,
    agent,
    sequence,
    model: MODEL,
    classes,
    window: { start: 0, end: 0 },
    records,
  };
}

describe("monitors config", () => {
  it("fills defaults, and passes the top-level ARL and confidence to every charting monitor", () => {
    const d = monitorsConfigSchema.parse({});
    expect(d).toMatchObject({
      arl0: 10_000,
      confidence: 0.999,
      drift: { enabled: true, arl0: 10_000, share: 0.05 },
    });
    const c = monitorsConfigSchema.parse({ arl0: 50_000, drift: { arl0: 2000 }, anomaly: { share: 0.05 } });
    expect(c.drift.arl0).toBe(2000);
    expect(c.anomaly).toMatchObject({
      arl0: 50_000,
      share: 0.05,
      consensus: { k: 10, maxModelProbability: 0.01 },
    });
    expect(c.triggers.arl0).toBe(50_000);
    expect(createMonitors({}).names).toEqual(["trigger-alarm", "drift", "targeted-watch", "agent-anomaly"]);
    expect(
      createMonitors(
        { drift: { enabled: false } },
        { predictors: { [MODEL]: () => Promise.resolve(new Float32Array()) } },
      ).names,
    ).toEqual(["attestation", "trigger-alarm", "targeted-watch", "agent-anomaly"]);
  });

  it("refuses a bad config, a STRIP screen without its model, and a foreign saved state, naming what is wrong", () => {
    expect(() => createMonitors({ arl0: 1 })).toThrow(/monitors config "arl0"/);
    expect(() => createMonitors({ drift: { share: 2 } })).toThrow(/monitors config "drift.share"/);
    expect(() => createMonitors({ baselines: { nope: {} } } as never)).toThrow(/monitors config "baselines/);
    const strip = {
      threshold: 1,
      frr: 0.01,
      n: 100,
      flagged: 1,
      shape: { height: 2, width: 2, channels: 1 },
    };
    expect(() => createMonitors({ triggers: { strip: { [MODEL]: strip } } })).toThrow(
      /STRIP for model a+ needs its predictor/,
    );
    try {
      createMonitors({}, { state: { schema: "something-else" } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AntidoteError);
      expect((e as AntidoteError).code).toBe("INPUT_FORMAT");
    }
    expect(() =>
      createTriggerAlarm({}, {}, { monitor: "trigger-alarm", samplingKey: 1, charts: { x: { s: -1 } } }),
    ).toThrow(/monitor "trigger-alarm": saved state "charts.x.s"/);
  });

  it("turns an alert into the ledger's finding", () => {
    const alert: MonitorAlert = {
      monitor: "trigger-alarm",
      kind: "trigger-alarm",
      subjectType: "telemetry-batch",
      subjectId: "agent-1#3",
      score: 0.25,
      batchId: "agent-1#5",
      evidence: { records: ["r1"] },
    };
    expect(toFinding(alert, "1.0.0")).toEqual({
      subjectType: "telemetry-batch",
      subjectId: "agent-1#3",
      kind: "trigger-alarm",
      score: 0.25,
      evidence: { records: ["r1"], batchId: "agent-1#5" },
      check: "monitor/trigger-alarm",
      checkVersion: "1.0.0",
    });
  });

  it("refuses a baseline whose sizes do not fit", () => {
    expect(() => monitorBaseline(new Float32Array(5), 2, ["a", "b"])).toThrow(
      /5 probabilities are not 2 records × 2 classes/,
    );
    expect(() => monitorBaseline(Float32Array.from([0.5, 0.5]), 1, ["a", "b"], Int32Array.from([3]))).toThrow(
      /label 3/,
    );
  });
});

describe("text triggers on SpamAssassin e-mail", () => {
  it("matches exactly the e-mails carrying the trigger n-gram, on the featurizer's tokens", () => {
    const emails = spamAssassinSamples(400).map((s) => s.text ?? "");
    const trigger = knownTriggerFromFinding({
      kind: "trigger-token",
      evidence: { id: "x", ngram: "zeta quantum offer", target: "ham", offset: 0 },
    });
    expect(trigger).toMatchObject({
      kind: "text-tokens",
      tokens: ["zeta", "quantum", "offer"],
      target: "ham",
    });
    const rng = new Rng(1);
    const carriers = new Set(rng.sample([...emails.keys()], 40));
    // Inserted the way the text-trigger simulator does: somewhere in the body, any case and punctuation.
    const texts = emails.map((t, i) =>
      carriers.has(i) ? `${t.slice(0, 200)} Zeta-QUANTUM  offer! ${t.slice(200)}` : t,
    );
    let tp = 0;
    let fp = 0;
    texts.forEach((text, i) => {
      if (!matchesTrigger(trigger, { text })) return;
      if (carriers.has(i)) tp++;
      else fp++;
    });
    expect({ tp, fp }).toEqual({ tp: 40, fp: 0 });
    expect(
      calibrateKnownTriggers(
        [trigger],
        emails.map((text) => ({ text })),
      ),
    ).toMatchObject({ n: 400, matches: 0 });
    // Parts of the n-gram apart are not the trigger.
    expect(matchesTrigger(trigger, { text: "zeta and quantum offer" })).toBe(false);
  });

  it("flags carriers in a text model's telemetry for the per-agent chart", async () => {
    const trigger = knownTriggerFromFinding({
      kind: "trigger-token",
      evidence: { ngram: "zeta quantum offer" },
    });
    const alarm = createTriggerAlarm({ known: [trigger], knownCalibration: { n: 400, matches: 0 } });
    const alerts: MonitorAlert[] = [];
    for (let s = 0; s < 6; s++) {
      const records = Array.from({ length: 40 }, (_, i) =>
        record(`m${s}-${i}`, [0.9, 0.1], -1, {
          text: i < 6 ? "win a zeta quantum offer now" : "meeting at noon",
        }),
      );
      alerts.push(...(await alarm.observe(batch("mailer-7", s, records))));
    }
    const agent = alerts.find((a) => a.subjectType === "source");
    expect(agent).toMatchObject({
      subjectId: "mailer-7",
      kind: "trigger-alarm",
      evidence: { screen: "known" },
    });
    const listed = alerts
      .filter((a) => a.subjectType === "telemetry-batch")
      .flatMap((a) => a.evidence.records as string[]);
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.every((id) => Number(id.split("-")[1]) < 6)).toBe(true);
  });
});

describe("feedback consensus and the fleet reference", () => {
  const opts = { window: 100, k: 3, minNeighbours: 2, maxSupport: 0.1, maxModelProbability: 0.01 };

  it("asks other agents about the same input first, then the nearest; never the agent's own records", () => {
    const w = new ConsensusWindow(3, opts);
    const sure0 = [0.995, 0.004, 0.001];
    // Other agents labeled inputs like this one 0.
    for (let i = 0; i < 5; i++) w.add(`other-${i}`, record(`o${i}`, sure0, 0));
    // The agent's own many records labeled 2 do not count as support.
    for (let i = 0; i < 20; i++) w.add("me", record(`m${i}`, sure0, 2));
    expect(w.judge("me", record("q1", sure0, 2))).toBe("suspicious");
    expect(w.judge("me", record("q2", sure0, 0))).toBe("agrees");
    expect(w.judge("me", record("q3", [0.9, 0.09, 0.01], 1))).toBe("plausible"); // the model gives it 9%
    expect(w.judge("me", record("q4", sure0, -1))).toBe("none");
    // Two other agents labeled this very input 2: supported, whatever the neighbours say.
    w.add("other-7", record("same", [0.3, 0.3, 0.4], 2, { digest: "d".repeat(64) }));
    expect(w.judge("me", record("q5", sure0, 2, { digest: "d".repeat(64) }))).toBe("supported");
    // Too few other agents' records: no judgement.
    const empty = new ConsensusWindow(3, opts);
    empty.add("other", record("x", sure0, 0));
    expect(empty.judge("me", record("q6", sure0, 2))).toBe("undecided");
    // The window round-trips through JSON.
    const back = new ConsensusWindow(3, opts, JSON.parse(JSON.stringify(w.toJSON())) as ConsensusState);
    expect(back.judge("me", record("q1", sure0, 2))).toBe("suspicious");
  });

  it("compares an agent with the decayed sums of the others, leaving out excluded agents", () => {
    const ref = new FleetReference(2, 100);
    ref.add("a", Float64Array.from([10, 100]), 100);
    ref.add("b", Float64Array.from([50, 100]), 100);
    // After b's 100 records, a's sums have decayed by half.
    expect(Array.from(ref.others("b"))).toEqual([5, 50]);
    expect(Array.from(ref.others("a"))).toEqual([50, 100]);
    ref.exclude("b");
    expect(Array.from(ref.others("c"))).toEqual([5, 50]);
    const back = new FleetReference(2, 100, JSON.parse(JSON.stringify(ref.toJSON())) as FleetReferenceState);
    expect(Array.from(back.others("c"))).toEqual([5, 50]);
    expect(back.isExcluded("b")).toBe(true);
  });
});
