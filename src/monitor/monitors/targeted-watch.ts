// Targeted-poisoning watch: a source → target confusion that rises in production above what the
// model showed on validation data. A targeted attack (or a backdoor keyed on a natural feature)
// makes the deployed model answer t for inputs of class s, and nothing else changes — overall
// accuracy, the label mix and the confidence barely move — so the signal is in the pairs. Where
// records carry feedback, the feedback is the true class s and the model's answer the predicted t.
//
// The same pair also rises when the FEEDBACK is poisoned (inputs of class t relabeled s): the
// evidence names both readings, and the per-agent scope tells them apart — a model that learned a
// targeted attack confuses s → t for every agent, poisoned feedback comes from a few.
//
// Test: per (s, t) pair, s ≠ t, a binomial CUSUM on x = records with feedback s predicted t out of
// n = records with feedback s, p0 = the upper confidence limit (level `confidence`) of the
// validation confusion rate confusion[s][t] / row total (baseline.ts), p1 = p0 + share·(1 − p0).
// Charts per model (fleet scope, subject: the model) and, with `perAgent`, per model and agent
// (subject: the agent). A batch updates m = K(K − 1) charts per scope: h = ln(arl0 · m · scopes),
// at most one false alarm per arl0 batches. The finding is "targeted-confusion".
//
// Measured (test/monitor/monitors.test.ts): 0 false alarms in 20,000 clean batches of 50 with
// feedback; half a fleet relabeling 5% of its traffic (Trousers as Dresses) found fleet-wide at batch
// 46, and three such agents among 50 named on their own at their batches 10, 13 and 14.
import { z } from "zod";
import { parseOptions } from "../../features/options.js";
import type { MonitorBaseline } from "../baseline.js";
import type { DecodedBatch } from "../schema.js";
import { alternativeRate, binomialLlr, cusumThreshold, rateUpperBound } from "../sequential.js";
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

export const TARGETED_MONITOR = "targeted-watch";

export const targetedWatchOptionsSchema = z
  .object({
    ...chartOptionsShape,
    /** Tuned to detect this share of class s's records turned into t. */
    share: z.number().gt(0).lt(1).default(0.05),
    /** Also chart each agent's pairs (finds poisoned feedback from a few agents). */
    perAgent: z.boolean().default(true),
  })
  .strict();
export type TargetedWatchOptions = z.input<typeof targetedWatchOptionsSchema>;

const targetedStateSchema = z.object({
  monitor: z.literal(TARGETED_MONITOR),
  charts: z.record(z.string(), cusumChartSchema),
});
export type TargetedWatchState = z.output<typeof targetedStateSchema>;

interface Plan {
  baseline: MonitorBaseline;
  /** p0 and p1 per pair, row-major [s·K + t]; validation rate too. */
  p0: Float64Array;
  p1: Float64Array;
  validation: Float64Array;
}

export function createTargetedWatch(
  baselines: Readonly<Record<string, MonitorBaseline>>,
  options: TargetedWatchOptions = {},
  state?: unknown,
): SyncMonitor<TargetedWatchState> {
  const o = parseOptions(targetedWatchOptionsSchema, options, "targeted watch");
  const saved = state === undefined ? undefined : parseState(targetedStateSchema, state, TARGETED_MONITOR);
  const bank = new ChartBank(0, saved?.charts);
  const beta = 1 - o.confidence;
  const plans = new Map<string, Plan | null>();
  const planOf = (model: string): Plan | null => {
    if (plans.has(model)) return plans.get(model) ?? null;
    const baseline = baselines[model];
    let plan: Plan | null = null;
    if (baseline?.confusion != null) {
      const K = baseline.classes.length;
      const p0 = new Float64Array(K * K);
      const p1 = new Float64Array(K * K);
      const validation = new Float64Array(K * K);
      baseline.confusion.forEach((row, s) => {
        const total = row.reduce((a, b) => a + b, 0);
        row.forEach((c, t) => {
          validation[s * K + t] = total > 0 ? c / total : 0;
          p0[s * K + t] = rateUpperBound(c, total, beta);
          p1[s * K + t] = alternativeRate(p0[s * K + t] as number, o.share);
        });
      });
      plan = { baseline, p0, p1, validation };
    }
    plans.set(model, plan);
    return plan;
  };

  return {
    name: TARGETED_MONITOR,
    observe(batch: DecodedBatch): MonitorAlert[] {
      const plan = planOf(batch.model);
      if (plan === null || !sameClasses(plan.baseline.classes, batch.classes)) return [];
      const K = batch.classes.length;
      const rows = new Float64Array(K);
      const pairs = new Float64Array(K * K);
      for (const r of batch.records) {
        if (r.feedback < 0 || r.feedback >= K) continue;
        rows[r.feedback] = (rows[r.feedback] as number) + 1;
        const at = r.feedback * K + r.predicted;
        pairs[at] = (pairs[at] as number) + 1;
      }
      const scopes: { prefix: string; subjectType: "model" | "source"; subjectId: string }[] = [
        { prefix: `${batch.model}|fleet`, subjectType: "model", subjectId: batch.model },
      ];
      if (o.perAgent)
        scopes.push({
          prefix: `${batch.model}|${batch.agent}`,
          subjectType: "source",
          subjectId: batch.agent,
        });
      const h = cusumThreshold(o.arl0, K * (K - 1) * scopes.length);
      const alerts: MonitorAlert[] = [];
      for (let s = 0; s < K; s++) {
        const n = rows[s] as number;
        if (n === 0) continue;
        for (let t = 0; t < K; t++) {
          if (t === s) continue;
          const at = s * K + t;
          const x = pairs[at] as number;
          const llr = binomialLlr(x, n, plan.p0[at] as number, plan.p1[at] as number);
          for (const scope of scopes) {
            const step = bank.update(`${scope.prefix}|${s}>${t}`, llr, { x, n, batchId: batch.batchId }, h);
            if (!step.alarm) continue;
            alerts.push({
              monitor: TARGETED_MONITOR,
              kind: "targeted-confusion",
              subjectType: scope.subjectType,
              subjectId: scope.subjectId,
              score: round(step.s),
              batchId: batch.batchId,
              evidence: {
                // s → t: feedback (true) class s, predicted t.
                source: batch.classes[s],
                target: batch.classes[t],
                scope: scope.subjectType === "model" ? "fleet" : "agent",
                ...(scope.subjectType === "source" ? { model: batch.model } : { lastAgent: batch.agent }),
                validationRate: round(plan.validation[at] as number),
                referenceRate: round(plan.p0[at] as number),
                alternativeRate: round(plan.p1[at] as number),
                observedRate: round(step.run.x / Math.max(1, step.run.n)),
                confused: step.run.x,
                withFeedback: step.run.n,
                reading: `inputs labeled ${batch.classes[s]} predicted ${batch.classes[t]}: a targeted attack on the model, or ${batch.classes[t]} inputs relabeled ${batch.classes[s]}`,
                ...chartEvidence(step, h),
              },
            });
          }
        }
      }
      return alerts;
    },
    state(): TargetedWatchState {
      return { monitor: TARGETED_MONITOR, charts: bank.toJSON() };
    },
  };
}
