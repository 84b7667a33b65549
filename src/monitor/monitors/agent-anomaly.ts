// Per-agent anomaly: an agent whose telemetry departs from the rest of the fleet's. A compromised
// agent alters a share of what it sends — trigger-carrying inputs, relabeled feedback, inputs of
// its own choosing — while the fleet around it keeps sending what users send. So each agent is
// compared with the pooled, exponentially decayed telemetry of all OTHER agents running the same
// model (fleet-reference.ts; agents that have alarmed are left out of the others' reference):
//
//   label mix          one chart per class: share of the agent's records predicted as the class;
//   disagreement       share of its feedback labels that differ from the model's answer;
//   suspicious feedback share of its feedback labels that disagree with the model AND with other
//                      agents' labels on the same or similar inputs (feedback-consensus.ts) — the
//                      closed-loop label-poisoning path, finding "suspicious-feedback";
//   trigger flags      share of its screened records the trigger alarm flagged (BatchNotes);
//   input mean         the mean of a per-record input statistic (mean pixel intensity; for
//                      features, their mean squashed to (0, 1); for text, log-length), up and down.
//
// Each is a CUSUM over the agent's batches: binomial for the rates (p0 = the upper confidence limit
// of the others' pooled rate, plus `tolerance` for fleets whose honest agents differ; p1 = p0 +
// share·(1 − p0)), and the exponentially tilted chart of sequential.ts for the input mean (the
// cumulant of the others' histogram, shifted by the confidence margin). A batch updates m = K + 5
// charts of its own agent, so h = ln(arl0 · (K + 5)) keeps the fleet's false alarms at most one per
// arl0 batches. No chart is updated until the others' reference holds `minReference` records.
// Findings: "agent-anomaly" (or "suspicious-feedback") on the agent, subject "source".
//
// Measured (test/monitor/monitors.test.ts: 50 agents, batches of 50, 1,000 batches): relabeling
// agents (5% of their traffic) raised "suspicious-feedback" within 9–13 of their batches; no honest
// agent was flagged. bench:monitor (50 agents, 200-record batches), every monitor on: serving one
// population, 0 honest agents flagged and 0 alarms in 2,000 clean batches; each agent cycling
// through its own 150 images (--slices disjoint), the pooled reference alone flagged 42 of 47
// honest agents, and with the spread allowance (spreadZ) the bench still flagged 4 of 47 and
// raised 6 alarms in 2,000 clean batches.
// Where honest agents really differ (sites, seasons), raise `tolerance` or `spreadZ`.
import { z } from "zod";
import { parseOptions } from "../../features/options.js";
import { normalQuantile } from "../../math/linalg.js";
import type { DecodedBatch, DecodedRecord } from "../schema.js";
import {
  alternativeRate,
  binomialLlr,
  cusumThreshold,
  histogramCumulant,
  rateUpperBound,
  tiltedLlr,
} from "../sequential.js";
import { ConsensusWindow, consensusOptionsShape, consensusStateSchema } from "./feedback-consensus.js";
import { FleetReference, fleetReferenceStateSchema } from "./fleet-reference.js";
import {
  ChartBank,
  chartEvidence,
  chartOptionsShape,
  cusumChartSchema,
  emptyNotes,
  parseState,
  round,
  type BatchNotes,
  type SyncMonitor,
  type MonitorAlert,
} from "./types.js";

export const ANOMALY_MONITOR = "agent-anomaly";

export const agentAnomalyOptionsSchema = z
  .object({
    ...chartOptionsShape,
    /** Rates: tuned to detect this share of an agent's traffic altered into the event. */
    share: z.number().gt(0).lt(1).default(0.03),
    /** Input mean: tuned to detect a shift of this many of the fleet's standard deviations. */
    shift: z.number().gt(0).max(5).default(0.5),
    /** Allowed excess over the fleet (rate points; standard deviations for the input mean) for honest heterogeneity. */
    tolerance: z.number().min(0).lt(1).default(0),
    /**
     * Honest heterogeneity, measured: an agent is tested against the larger of the pooled rate's
     * upper confidence limit and median + z·1.4826·MAD of the other agents' own rates (each over
     * at least `spreadMinRecords` records, once `spreadMinAgents` agents have that many).
     */
    spreadZ: z.number().min(0).default(4),
    spreadMinRecords: z.number().int().min(1).default(200),
    spreadMinAgents: z.number().int().min(3).default(8),
    /** The fleet reference forgets with this half-life, in records. */
    halfLife: z.number().gt(0).default(200_000),
    /** Records the others' reference needs before an agent is charted. */
    minReference: z.number().int().min(1).default(1000),
    consensus: z.object(consensusOptionsShape).strict().prefault({}),
  })
  .strict();
export type AgentAnomalyOptions = z.input<typeof agentAnomalyOptionsSchema>;

const anomalyStateSchema = z.object({
  monitor: z.literal(ANOMALY_MONITOR),
  charts: z.record(z.string(), cusumChartSchema),
  models: z.record(
    z.string(),
    z.object({
      K: z.number().int().min(2),
      reference: fleetReferenceStateSchema,
      window: consensusStateSchema,
    }),
  ),
  /** Per agent: its latest suspicious feedback records. */
  suspicious: z.record(z.string(), z.array(z.object({ batchId: z.string(), id: z.string() }))),
});
export type AgentAnomalyState = z.output<typeof anomalyStateSchema>;

const INPUT_BINS = 128;
const RECENT_SUSPICIOUS = 100;

/** Offsets of one model's sums: K class counts, then the fixed slots, then the input histogram. */
function layout(K: number) {
  return {
    records: K,
    disagree: K + 1,
    feedback: K + 2,
    suspicious: K + 3,
    judged: K + 4,
    flagged: K + 5,
    screened: K + 6,
    inputN: K + 7,
    inputSum: K + 8,
    inputSs: K + 9,
    hist: K + 10,
    size: K + 10 + INPUT_BINS,
  };
}

interface ModelState {
  K: number;
  reference: FleetReference;
  window: ConsensusWindow;
}

export function createAgentAnomalyMonitor(
  options: AgentAnomalyOptions = {},
  state?: unknown,
): SyncMonitor<AgentAnomalyState> {
  const o = parseOptions(agentAnomalyOptionsSchema, options, "agent anomaly monitor");
  const saved = state === undefined ? undefined : parseState(anomalyStateSchema, state, ANOMALY_MONITOR);
  const bank = new ChartBank(0, saved?.charts);
  const beta = 1 - o.confidence;
  const z = normalQuantile(o.confidence);
  const models = new Map<string, ModelState>();
  for (const [model, m] of Object.entries(saved?.models ?? {}))
    models.set(model, {
      K: m.K,
      reference: new FleetReference(layout(m.K).size, o.halfLife, m.reference),
      window: new ConsensusWindow(m.K, o.consensus, m.window),
    });
  const suspicious: AgentAnomalyState["suspicious"] = structuredClone(saved?.suspicious ?? {});

  return {
    name: ANOMALY_MONITOR,
    observe(batch: DecodedBatch, notes: BatchNotes = emptyNotes()): MonitorAlert[] {
      const K = batch.classes.length;
      if (batch.records.length === 0) return [];
      let m = models.get(batch.model);
      if (m === undefined || m.K !== K) {
        m = {
          K,
          reference: new FleetReference(layout(K).size, o.halfLife),
          window: new ConsensusWindow(K, o.consensus),
        };
        models.set(batch.model, m);
      }
      const L = layout(K);
      const sums = new Float64Array(L.size);
      const suspiciousIds: string[] = [];
      for (const r of batch.records) {
        sums[r.predicted] = (sums[r.predicted] as number) + 1;
        sums[L.records] = (sums[L.records] as number) + 1;
        if (r.feedback >= 0) {
          sums[L.feedback] = (sums[L.feedback] as number) + 1;
          if (r.feedback !== r.predicted) sums[L.disagree] = (sums[L.disagree] as number) + 1;
          const j = m.window.judge(batch.agent, r);
          if (j !== "undecided") sums[L.judged] = (sums[L.judged] as number) + 1;
          if (j === "suspicious") {
            sums[L.suspicious] = (sums[L.suspicious] as number) + 1;
            suspiciousIds.push(r.id);
          }
        }
        if (notes.screened.has(r.id)) {
          sums[L.screened] = (sums[L.screened] as number) + 1;
          if (notes.flagged.has(r.id)) sums[L.flagged] = (sums[L.flagged] as number) + 1;
        }
        const v = inputStatistic(r);
        if (v !== null) {
          sums[L.inputN] = (sums[L.inputN] as number) + 1;
          sums[L.inputSum] = (sums[L.inputSum] as number) + v;
          sums[L.inputSs] = (sums[L.inputSs] as number) + v * v;
          const b = L.hist + Math.min(INPUT_BINS - 1, Math.floor(v * INPUT_BINS));
          sums[b] = (sums[b] as number) + 1;
        }
      }
      if (suspiciousIds.length > 0) {
        const list = (suspicious[batch.agent] ??= []);
        for (const id of suspiciousIds) list.push({ batchId: batch.batchId, id });
        if (list.length > RECENT_SUSPICIOUS) list.splice(0, list.length - RECENT_SUSPICIOUS);
      }

      const fleet = m.reference;
      const ref = fleet.others(batch.agent);
      const h = cusumThreshold(o.arl0, K + 5);
      const alerts: MonitorAlert[] = [];
      const raise = (kind: string, score: number, evidence: Record<string, unknown>): void => {
        alerts.push({
          monitor: ANOMALY_MONITOR,
          kind,
          subjectType: "source",
          subjectId: batch.agent,
          score: round(score),
          batchId: batch.batchId,
          evidence: { model: batch.model, ...evidence },
        });
      };
      const rateChart = (
        statistic: string,
        xAt: number,
        nAt: number,
        extra: Record<string, unknown> = {},
      ): void => {
        const x = sums[xAt] as number;
        const n = sums[nAt] as number;
        const refN = ref[nAt] as number;
        if (n === 0 || refN < o.minReference) return;
        const spread = m.reference.robustUpper(
          batch.agent,
          xAt,
          nAt,
          o.spreadZ,
          o.spreadMinRecords,
          o.spreadMinAgents,
        );
        const p0 = Math.min(
          1,
          Math.max(rateUpperBound(ref[xAt] as number, refN, beta), spread ?? 0) + o.tolerance,
        );
        if (p0 >= 1) return;
        const p1 = alternativeRate(p0, o.share);
        const step = bank.update(
          `${batch.model}|${batch.agent}|${statistic}`,
          binomialLlr(x, n, p0, p1),
          { x, n, batchId: batch.batchId },
          h,
        );
        if (!step.alarm) return;
        raise(statistic === "suspicious-feedback" ? "suspicious-feedback" : "agent-anomaly", step.s, {
          statistic,
          ...extra,
          fleetRate: round((ref[xAt] as number) / refN),
          referenceRate: round(p0),
          alternativeRate: round(p1),
          observedRate: round(step.run.x / Math.max(1, step.run.n)),
          events: step.run.x,
          trials: step.run.n,
          ...chartEvidence(step, h),
        });
      };
      for (let k = 0; k < K; k++) rateChart(`label-mix:${k}`, k, L.records, { class: batch.classes[k] });
      rateChart("feedback-disagreement", L.disagree, L.feedback);
      rateChart("suspicious-feedback", L.suspicious, L.judged, {
        records: (suspicious[batch.agent] ?? []).map((e) => e.id),
      });
      rateChart("trigger-flags", L.flagged, L.screened);
      inputCharts();
      if (alerts.length > 0) m.reference.exclude(batch.agent);
      m.reference.add(batch.agent, sums, batch.records.length);
      for (const r of batch.records) m.window.add(batch.agent, r);
      return alerts;

      function inputCharts(): void {
        const n = sums[L.inputN] as number;
        const refN = ref[L.inputN] as number;
        if (n === 0 || refN < o.minReference) return;
        const mean = (ref[L.inputSum] as number) / refN;
        const sd = Math.sqrt(Math.max(0, (ref[L.inputSs] as number) / refN - mean * mean));
        if (!(sd > 0)) return;
        const hist = { lo: 0, hi: 1, counts: Array.from(ref.subarray(L.hist, L.hist + INPUT_BINS)) };
        // Between-agent spread of the mean (robust), beside the reference mean's own uncertainty.
        const between =
          fleet.robustMeanSpread(batch.agent, L.inputSum, L.inputN, o.spreadMinRecords, o.spreadMinAgents) ??
          0;
        const psi = histogramCumulant(
          hist,
          (z * sd) / Math.sqrt(refN) + o.tolerance * sd + o.spreadZ * between,
        );
        const lambda = o.shift / sd;
        const sum = sums[L.inputSum] as number;
        for (const [direction, l] of [
          ["up", lambda],
          ["down", -lambda],
        ] as const) {
          const step = bank.update(
            `${batch.model}|${batch.agent}|input:${direction}`,
            tiltedLlr(sum, n, l, psi),
            { x: sum, n, batchId: batch.batchId },
            h,
          );
          if (step.alarm)
            raise("agent-anomaly", step.s, {
              statistic: `input-mean:${direction}`,
              fleetMean: round(mean),
              fleetSd: round(sd),
              observedMean: round(step.run.x / Math.max(1, step.run.n)),
              records: step.run.n,
              ...chartEvidence(step, h),
            });
        }
      }
    },
    state(): AgentAnomalyState {
      return {
        monitor: ANOMALY_MONITOR,
        charts: bank.toJSON(),
        models: Object.fromEntries(
          [...models].map(([model, m]) => [
            model,
            { K: m.K, reference: m.reference.toJSON(), window: m.window.toJSON() },
          ]),
        ),
        suspicious: structuredClone(suspicious),
      };
    },
  };
}

/**
 * The record's input statistic in [0, 1]: mean pixel intensity; else the features' mean v as
 * (v / (1 + |v|) + 1) / 2; else log2(1 + characters) / 17 for text; null without an input.
 */
export function inputStatistic(r: DecodedRecord): number | null {
  if (r.image !== undefined) {
    const d = r.image.data;
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i] as number;
    return d.length === 0 ? null : Math.min(1, Math.max(0, s / d.length));
  }
  if (r.features !== undefined && r.features.length > 0) {
    let s = 0;
    for (const v of r.features) s += v;
    const v = s / r.features.length;
    return (v / (1 + Math.abs(v)) + 1) / 2;
  }
  if (r.text !== undefined) return Math.min(1, Math.log2(1 + r.text.length) / 17);
  return null;
}
