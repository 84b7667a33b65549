// Output-distribution drift, per model, against the model's validation baseline (baseline.ts):
// what the deployed model answers, pooled over the whole fleet, no longer looks like what it
// answered on clean validation data — a backdoor being used at scale (a label's share rises, the
// answers get surer), a data shift (answers get less sure), a swapped model.
//
// Test: per batch, one CUSUM chart per class on the count of records predicted as that class
// (binomial, p0 → p0 + share·(1 − p0): `share` of the traffic moved into the class), and four
// charts on the batch's sums of per-record entropy and confidence, up and down, for a mean shift of
// `shift` baseline standard deviations. A change in the label mix raises at least one class's
// share, so upward class charts cover it.
//
// False-alarm control (sequential.ts): a batch updates m = K + 4 charts of its model, threshold
// h = ln(arl0 · m), so the in-control average run length is ≥ arl0 batches per model. The class
// charts test against the upper confidence limit (level `confidence`) of the baseline's class share,
// not the share itself, so the bound holds whatever the validation set's sampling error; the
// entropy/confidence charts use the baseline histogram's own cumulant generating function (bounded
// at the bin edges) with the mean moved by z_confidence · sd / √n in the chart's direction: exact
// for the skewed entropy distribution where a Gaussian chart would not be. Measured (test/monitor/
// monitors-real.test.ts): 0 false alarms in 20,000 clean batches resampled from real Fashion-MNIST
// outputs; the findings are "output-drift" on the model.
import { z } from "zod";
import { parseOptions } from "../../features/options.js";
import { normalQuantile } from "../../math/linalg.js";
import { recordSummary, type MonitorBaseline } from "../baseline.js";
import type { DecodedBatch } from "../schema.js";
import {
  alternativeRate,
  binomialLlr,
  cusumThreshold,
  histogramCumulant,
  rateUpperBound,
  tiltedLlr,
  type Cumulant,
} from "../sequential.js";
import {
  ChartBank,
  chartEvidence,
  chartOptionsShape,
  cusumChartSchema,
  parseState,
  round,
  sameClasses,
  type SyncMonitor,
  type MonitorAlert,
} from "./types.js";

export const DRIFT_MONITOR = "drift";

export const driftOptionsSchema = z
  .object({
    ...chartOptionsShape,
    /** Label mix: tuned to detect this share of the traffic moving into one class. */
    share: z.number().gt(0).lt(1).default(0.05),
    /** Entropy and confidence: tuned to detect a mean shift of this many baseline standard deviations. */
    shift: z.number().gt(0).max(5).default(0.5),
  })
  .strict();
export type DriftOptions = z.input<typeof driftOptionsSchema>;

const driftStateSchema = z.object({
  monitor: z.literal(DRIFT_MONITOR),
  charts: z.record(z.string(), cusumChartSchema),
  batches: z.number().int().min(0),
  /** Batches of a model without a baseline (or whose classes differ from it): not monitored. */
  unmonitored: z.number().int().min(0),
});
export type DriftState = z.output<typeof driftStateSchema>;

/** A statistic's two charts: the tilt λ each way and the cumulant it is tested against. */
interface MeanCharts {
  mean: number;
  up: { lambda: number; psi: Cumulant } | null;
  down: { lambda: number; psi: Cumulant } | null;
}

interface ModelPlan {
  baseline: MonitorBaseline;
  h: number;
  p0: number[];
  p1: number[];
  entropy: MeanCharts;
  confidence: MeanCharts;
}

export function createDriftMonitor(
  baselines: Readonly<Record<string, MonitorBaseline>>,
  options: DriftOptions = {},
  state?: unknown,
): SyncMonitor<DriftState> {
  const o = parseOptions(driftOptionsSchema, options, "drift monitor");
  const saved = state === undefined ? undefined : parseState(driftStateSchema, state, DRIFT_MONITOR);
  const bank = new ChartBank(0, saved?.charts);
  let batches = saved?.batches ?? 0;
  let unmonitored = saved?.unmonitored ?? 0;
  const plans = new Map<string, ModelPlan>();
  const beta = 1 - o.confidence;
  const z = normalQuantile(o.confidence);

  const planOf = (model: string): ModelPlan | null => {
    const baseline = baselines[model];
    if (baseline === undefined) return null;
    let plan = plans.get(model);
    if (plan === undefined) {
      const K = baseline.classes.length;
      const p0 = baseline.predicted.map((c) => rateUpperBound(c, baseline.n, beta));
      const meanCharts = (stat: MonitorBaseline["entropy"]): MeanCharts => {
        if (!(stat.sd > 0)) return { mean: stat.mean, up: null, down: null };
        const lambda = o.shift / stat.sd;
        const psi = histogramCumulant(stat.histogram, (z * stat.sd) / Math.sqrt(baseline.n));
        return { mean: stat.mean, up: { lambda, psi }, down: { lambda: -lambda, psi } };
      };
      plan = {
        baseline,
        h: cusumThreshold(o.arl0, K + 4),
        p0,
        p1: p0.map((p) => alternativeRate(p, o.share)),
        entropy: meanCharts(baseline.entropy),
        confidence: meanCharts(baseline.confidence),
      };
      plans.set(model, plan);
    }
    return plan;
  };

  return {
    name: DRIFT_MONITOR,
    observe(batch: DecodedBatch): MonitorAlert[] {
      batches++;
      const plan = planOf(batch.model);
      if (batch.records.length === 0) return [];
      if (plan === null || !sameClasses(plan.baseline.classes, batch.classes)) {
        unmonitored++;
        return [];
      }
      const K = batch.classes.length;
      const n = batch.records.length;
      const counts = new Array<number>(K).fill(0);
      let entropySum = 0;
      let confidenceSum = 0;
      for (const r of batch.records) {
        const s = recordSummary(r.probs, 0, K);
        counts[r.predicted] = (counts[r.predicted] as number) + 1;
        entropySum += s.entropyBits;
        confidenceSum += s.max;
      }
      const alerts: MonitorAlert[] = [];
      const alert = (score: number, evidence: Record<string, unknown>): void => {
        alerts.push({
          monitor: DRIFT_MONITOR,
          kind: "output-drift",
          subjectType: "model",
          subjectId: batch.model,
          score: round(score),
          batchId: batch.batchId,
          evidence,
        });
      };
      const { baseline } = plan;
      for (let k = 0; k < K; k++) {
        const x = counts[k] as number;
        const p0 = plan.p0[k] as number;
        const p1 = plan.p1[k] as number;
        const step = bank.update(
          `${batch.model}|class:${k}`,
          binomialLlr(x, n, p0, p1),
          { x, n, batchId: batch.batchId },
          plan.h,
        );
        if (step.alarm)
          alert(step.s, {
            statistic: "label-mix",
            class: batch.classes[k],
            baselineRate: round((baseline.predicted[k] as number) / baseline.n),
            referenceRate: round(p0),
            alternativeRate: round(p1),
            observedRate: round(step.run.x / Math.max(1, step.run.n)),
            records: step.run.n,
            ...chartEvidence(step, plan.h),
          });
      }
      const meanChart = (name: string, charts: MeanCharts, sum: number): void => {
        for (const [direction, c] of [
          ["up", charts.up],
          ["down", charts.down],
        ] as const) {
          if (c === null) continue;
          const step = bank.update(
            `${batch.model}|${name}:${direction}`,
            tiltedLlr(sum, n, c.lambda, c.psi),
            { x: sum, n, batchId: batch.batchId },
            plan.h,
          );
          if (step.alarm)
            alert(step.s, {
              statistic: name,
              direction,
              baselineMean: round(charts.mean),
              observedMean: round(step.run.x / Math.max(1, step.run.n)),
              records: step.run.n,
              ...chartEvidence(step, plan.h),
            });
        }
      };
      meanChart("entropy", plan.entropy, entropySum);
      meanChart("confidence", plan.confidence, confidenceSum);
      return alerts;
    },
    state(): DriftState {
      return { monitor: DRIFT_MONITOR, charts: bank.toJSON(), batches, unmonitored };
    },
  };
}
