// Trigger alarms: production inputs that carry a backdoor's trigger. Two screens per record, both
// optional: (a) known triggers (known-triggers.ts: what a scan or an audit found, or an attack spec)
// matched against every record that sends its input; (b) STRIP (Gao et al., 2019; src/audit/strip.ts)
// for image models, on a sample of each batch's images: an input whose prediction stays sure when
// overlaid on clean background images carries something that overrides the content, and is flagged
// below the entropy threshold calibrated on clean inputs at false-rejection rate α.
//
// A flag is per record; an ALERT needs more than flags, because clean inputs get flagged too (α of
// them by STRIP, the natural match rate by a known trigger). Per agent and screen, one binomial
// CUSUM on the batch's flagged count against the rate clean inputs explain: the upper confidence
// limit of the calibration's flagged share (sequential.ts), against that plus `share` of the agent's
// traffic carrying the trigger. A batch updates its agent's two charts: m = 2, h = ln(arl0 · 2), so
// at most one false alarm per arl0 batches. When a chart alarms, the agent gets a "trigger-alarm"
// finding (subject: source) and every batch of the run that crossed — since the chart was last at 0 —
// that holds flagged records gets one (subject: telemetry-batch, record ids in the evidence), so the
// closed-loop gate can leave them out; later batches of an alarmed agent with flagged records get
// one each. Scores: the chart statistic S (nats) on the agent, the batch's flagged share on a batch.
// The flags are also written to the step's BatchNotes for the per-agent anomaly monitor.
//
// Measured (test/monitor/monitors.test.ts, Fashion-MNIST CNN with a 3×3 patch backdoor): three of 50
// agents sending 5% patched inputs alarmed at their batches 1, 4 and 3 (50 records each), with
// every patched record named in a batch alert and nothing else; STRIP at FRR 1% caught 67% of the
// triggered records (precision 0.72), and two agents sending 20% at their batches 3 and 6.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import {
  stripEntropies,
  calibrateStrip,
  type BatchPredictor,
  type ImageSet,
  type StripOptions,
} from "../../audit/strip.js";
import { parseOptions } from "../../features/options.js";
import { murmur3_32 } from "../../math/hash.js";
import type { DecodedBatch, DecodedRecord } from "../schema.js";
import { alternativeRate, binomialLlr, cusumThreshold, rateUpperBound } from "../sequential.js";
import { canMatch, knownTriggerSchema, matchesTrigger, type KnownTrigger } from "./known-triggers.js";
import {
  ChartBank,
  chartEvidence,
  chartOptionsShape,
  cusumChartSchema,
  emptyNotes,
  imageToChw,
  parseState,
  round,
  type BatchNotes,
  type AsyncMonitor,
  type MonitorAlert,
} from "./types.js";

export const TRIGGER_MONITOR = "trigger-alarm";

/** A STRIP screen for one model: its calibration (JSON) and how much of each batch it screens. */
export const stripScreenSchema = z
  .object({
    /** Mean overlay entropy (bits) below which an input is flagged. */
    threshold: z.number().finite(),
    /** The false-rejection rate asked for at calibration. */
    frr: z.number().gt(0).lt(1),
    /** Clean calibration inputs, and how many of them fell below the threshold. */
    n: z.number().int().min(2),
    flagged: z.number().int().min(0),
    perturbations: z.number().int().min(1).default(32),
    superimpose: z.enum(["add", "average"]).default("add"),
    /** Images the model takes (H×W×C of the records); others are not screened. */
    shape: z.object({
      height: z.number().int().min(1),
      width: z.number().int().min(1),
      channels: z.number().int().min(1),
    }),
    /** Records screened per batch (each costs `perturbations` forward passes), chosen by a keyed hash of their ids. */
    perBatch: z.number().int().min(1).default(32),
    /** Seed of the overlays. */
    seed: z.number().int().default(0),
  })
  .strict();
export type StripScreen = z.output<typeof stripScreenSchema>;

export const triggerAlarmOptionsSchema = z
  .object({
    ...chartOptionsShape,
    /** Tuned to detect this share of an agent's screened traffic carrying a trigger. */
    share: z.number().gt(0).lt(1).default(0.03),
    known: z.array(knownTriggerSchema).default([]),
    /** The known triggers' natural match rate on clean inputs (calibrateKnownTriggers). */
    knownCalibration: z
      .object({ n: z.number().int().min(1), matches: z.number().int().min(0) })
      .nullable()
      .default(null),
    /** The natural match rate assumed without a calibration. */
    assumedNaturalRate: z.number().gt(0).lt(1).default(0.001),
    /** STRIP screens by model digest (calibrateStripScreen); each needs a predictor at run time. */
    strip: z.record(z.string(), stripScreenSchema).default({}),
    /** Key of STRIP's record choice; default a random one, kept in the state (an agent must not know it). */
    samplingKey: z.number().int().min(0).max(0xffffffff).optional(),
    /** Record ids listed per alert at most. */
    maxIds: z.number().int().min(1).default(200),
  })
  .strict();
export type TriggerAlarmOptions = z.input<typeof triggerAlarmOptionsSchema>;

/** What STRIP needs at run time, per model digest: the model and clean background images (CHW, [0, 1]). */
export type StripRuntime = Record<string, { predict: BatchPredictor; background: ImageSet }>;

const pendingSchema = z.array(
  z.object({ batchId: z.string(), ids: z.array(z.string()), screened: z.number().int() }),
);
const triggerStateSchema = z.object({
  monitor: z.literal(TRIGGER_MONITOR),
  /** Key of the STRIP sample choice: random, so an agent cannot tell which records get screened. */
  samplingKey: z.number().int().min(0).max(0xffffffff),
  charts: z.record(z.string(), cusumChartSchema),
  /** Per chart: the batches of its current run that held flagged records. */
  pending: z.record(z.string(), pendingSchema),
  /** Charts that have alarmed: later flagged batches of their agent are reported one by one. */
  alarmed: z.array(z.string()),
  /** Per agent: records screened and flagged, by screen. */
  totals: z.record(
    z.string(),
    z.object({ known: z.tuple([z.number(), z.number()]), strip: z.tuple([z.number(), z.number()]) }),
  ),
});
export type TriggerAlarmState = z.output<typeof triggerStateSchema>;

/** Calibrate a STRIP screen on clean images (CHW, [0, 1]) at the chosen FRR: its JSON config. */
export async function calibrateStripScreen(
  predict: BatchPredictor,
  clean: ImageSet,
  background: ImageSet,
  shape: StripScreen["shape"],
  options: StripOptions & { perBatch?: number } = {},
): Promise<StripScreen> {
  const { perBatch, ...stripOptions } = options;
  const cal = await calibrateStrip(predict, clean, background, stripOptions);
  let flagged = 0;
  for (const h of cal.cleanEntropies) if (h < cal.threshold) flagged++;
  return stripScreenSchema.parse({
    threshold: cal.threshold,
    frr: cal.frr,
    n: clean.n,
    flagged,
    perturbations: cal.perturbations,
    superimpose: cal.superimpose,
    shape,
    perBatch,
    seed: stripOptions.seed,
  });
}

type Screen = "known" | "strip";

export function createTriggerAlarm(
  options: TriggerAlarmOptions = {},
  runtime: { strip?: StripRuntime } = {},
  state?: unknown,
): AsyncMonitor<TriggerAlarmState> {
  const o = parseOptions(triggerAlarmOptionsSchema, options, "trigger alarm");
  const saved = state === undefined ? undefined : parseState(triggerStateSchema, state, TRIGGER_MONITOR);
  const h = cusumThreshold(o.arl0, 2);
  const bank = new ChartBank(h, saved?.charts);
  const pending: TriggerAlarmState["pending"] = structuredClone(saved?.pending ?? {});
  const alarmed = new Set(saved?.alarmed ?? []);
  const totals: TriggerAlarmState["totals"] = structuredClone(saved?.totals ?? {});
  const samplingKey = o.samplingKey ?? saved?.samplingKey ?? randomBytes(4).readUInt32LE(0);
  const beta = 1 - o.confidence;
  const knownP0 =
    o.knownCalibration === null
      ? o.assumedNaturalRate
      : rateUpperBound(o.knownCalibration.matches, o.knownCalibration.n, beta);

  const triggersFor = (model: string): KnownTrigger[] =>
    o.known.filter((t) => t.models === undefined || t.models.includes(model));

  return {
    name: TRIGGER_MONITOR,
    async observe(batch: DecodedBatch, notes: BatchNotes = emptyNotes()): Promise<MonitorAlert[]> {
      const agentTotals = (totals[batch.agent] ??= { known: [0, 0], strip: [0, 0] });
      // (a) Known triggers, on every record whose content they can be matched against; (b) STRIP,
      // on a sample of the batch's images.
      const known = screenKnown(batch, triggersFor(batch.model), notes);
      const screen = o.strip[batch.model];
      const run = runtime.strip?.[batch.model];
      const strip =
        screen !== undefined && run !== undefined
          ? await screenStrip(batch, screen, run, samplingKey, notes)
          : { screened: 0, hits: [] };
      const { screened: knownScreened, hits: knownHits, byTrigger } = known;
      const { screened: stripScreened, hits: stripHits } = strip;

      agentTotals.known[0] += knownScreened;
      agentTotals.known[1] += knownHits.length;
      agentTotals.strip[0] += stripScreened;
      agentTotals.strip[1] += stripHits.length;
      const alerts: MonitorAlert[] = [];
      const chart = (
        which: Screen,
        screened: number,
        hits: string[],
        p0: number,
        extra: Record<string, unknown>,
      ): void => {
        if (screened === 0) return;
        const key = which === "known" ? `${batch.agent}|known` : `${batch.model}|${batch.agent}|strip`;
        const p1 = alternativeRate(p0, o.share);
        const step = bank.update(key, binomialLlr(hits.length, screened, p0, p1), {
          x: hits.length,
          n: screened,
          batchId: batch.batchId,
        });
        // An agent that has alarmed before has each flagged batch reported as it comes; the others
        // keep the flagged batches of the chart's current run, reported if the run crosses h.
        const wasAlarmed = alarmed.has(key);
        const runBatches = (pending[key] ??= []);
        if (!step.alarm && step.s === 0) runBatches.length = 0;
        else if (hits.length > 0 && !wasAlarmed) {
          runBatches.push({ batchId: batch.batchId, ids: hits.slice(0, o.maxIds), screened });
          if (runBatches.length > 100) runBatches.shift();
        }
        const batchAlert = (
          b: { batchId: string; ids: string[]; screened: number },
          score: number,
        ): MonitorAlert => ({
          monitor: TRIGGER_MONITOR,
          kind: "trigger-alarm",
          subjectType: "telemetry-batch",
          subjectId: b.batchId,
          score: round(score),
          batchId: batch.batchId,
          evidence: {
            screen: which,
            agent: batch.agent,
            model: batch.model,
            screened: b.screened,
            flagged: b.ids.length,
            records: b.ids,
          },
        });
        if (step.alarm) {
          alarmed.add(key);
          alerts.push({
            monitor: TRIGGER_MONITOR,
            kind: "trigger-alarm",
            subjectType: "source",
            subjectId: batch.agent,
            score: round(step.s),
            batchId: batch.batchId,
            evidence: {
              screen: which,
              model: batch.model,
              referenceRate: round(p0),
              alternativeRate: round(p1),
              flaggedInRun: step.run.x,
              screenedInRun: step.run.n,
              batches: [
                ...runBatches.map((b) => b.batchId),
                ...(wasAlarmed && hits.length > 0 ? [batch.batchId] : []),
              ],
              agentTotals: { screened: agentTotals[which][0], flagged: agentTotals[which][1] },
              ...extra,
              ...chartEvidence(step, h),
            },
          });
          for (const b of runBatches) alerts.push(batchAlert(b, b.ids.length / Math.max(1, b.screened)));
          runBatches.length = 0;
        }
        if (wasAlarmed && hits.length > 0) {
          alerts.push(
            batchAlert(
              { batchId: batch.batchId, ids: hits.slice(0, o.maxIds), screened },
              hits.length / screened,
            ),
          );
        }
      };
      chart("known", knownScreened, knownHits, knownP0, {
        triggers: byTrigger,
        calibrated: o.knownCalibration !== null,
      });
      if (screen !== undefined)
        chart("strip", stripScreened, stripHits, rateUpperBound(screen.flagged, screen.n, beta), {
          stripThreshold: round(screen.threshold),
          frr: screen.frr,
        });
      return alerts;
    },
    state(): TriggerAlarmState {
      return {
        monitor: TRIGGER_MONITOR,
        samplingKey,
        charts: bank.toJSON(),
        pending: structuredClone(pending),
        alarmed: [...alarmed].sort(),
        totals: structuredClone(totals),
      };
    },
  };
}

/** Match the known triggers on every record they apply to; flags go into the notes. */
function screenKnown(
  batch: DecodedBatch,
  triggers: readonly KnownTrigger[],
  notes: BatchNotes,
): { screened: number; hits: string[]; byTrigger: Record<string, number> } {
  const hits: string[] = [];
  const byTrigger: Record<string, number> = {};
  let screened = 0;
  if (triggers.length === 0) return { screened, hits, byTrigger };
  for (const r of batch.records) {
    const applicable = triggers.filter((t) => canMatch(t, r));
    if (applicable.length === 0) continue;
    screened++;
    notes.screened.add(r.id);
    let hit = false;
    for (const t of applicable)
      if (matchesTrigger(t, r)) {
        flag(notes, r.id, t.id);
        byTrigger[t.id] = (byTrigger[t.id] ?? 0) + 1;
        hit = true;
      }
    if (hit) hits.push(r.id);
  }
  return { screened, hits, byTrigger };
}

/** STRIP on a keyed-hash sample of the batch's images of the screen's shape; flags go into the notes. */
async function screenStrip(
  batch: DecodedBatch,
  screen: StripScreen,
  run: { predict: BatchPredictor; background: ImageSet },
  samplingKey: number,
  notes: BatchNotes,
): Promise<{ screened: number; hits: string[] }> {
  const chosen = sampleImages(batch, screen, samplingKey);
  const hits: string[] = [];
  if (chosen.length === 0) return { screened: 0, hits };
  const size = screen.shape.height * screen.shape.width * screen.shape.channels;
  const x = new Float32Array(chosen.length * size);
  chosen.forEach((r, i) => x.set(imageToChw(r.image as NonNullable<DecodedRecord["image"]>), i * size));
  const entropies = await stripEntropies(run.predict, { x, n: chosen.length }, run.background, {
    perturbations: screen.perturbations,
    superimpose: screen.superimpose,
    seed: screen.seed,
  });
  chosen.forEach((r, i) => {
    notes.screened.add(r.id);
    if ((entropies[i] as number) < screen.threshold) {
      flag(notes, r.id, "strip");
      hits.push(r.id);
    }
  });
  return { screened: chosen.length, hits };
}

function flag(notes: BatchNotes, id: string, why: string): void {
  const list = notes.flagged.get(id);
  if (list === undefined) notes.flagged.set(id, [why]);
  else list.push(why);
}

/** Up to perBatch records with an image of the screen's shape, chosen by a keyed hash of their ids. */
function sampleImages(batch: DecodedBatch, screen: StripScreen, key: number): DecodedRecord[] {
  const { height, width, channels } = screen.shape;
  const fit = batch.records.filter(
    (r) =>
      r.image !== undefined &&
      r.image.height === height &&
      r.image.width === width &&
      r.image.channels === channels,
  );
  if (fit.length <= screen.perBatch) return fit;
  return fit
    .map((r) => ({ r, key: murmur3_32(`${batch.batchId}/${r.id}`, key) }))
    .sort((a, b) => a.key - b.key)
    .slice(0, screen.perBatch)
    .map((e) => e.r);
}
