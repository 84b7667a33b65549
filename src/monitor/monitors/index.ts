// All monitors behind one entry: `createMonitors(config, runtime)` builds the configured monitors
// and runs every batch through them in an order that lets one feed the next (the trigger alarm's
// flags go to the per-agent anomaly through the step's BatchNotes), returning the alerts. The
// config is JSON (a zod schema, stored with the server's settings); what cannot be JSON — model
// predictors, STRIP's background images, the saved state — comes in `runtime`.
//
// Every monitor holds its own false-alarm rate at most one per `arl0` batches (see each file's
// header), so with all five enabled the union is at most five per arl0 batches; `arl0` and
// `confidence` set at the top apply to every monitor that does not set its own.
import { z } from "zod";
import type { BatchPredictor, ImageSet } from "../../audit/strip.js";
import { AntidoteError } from "../../errors.js";
import { parseOptions } from "../../features/options.js";
import { monitorBaselineSchema } from "../baseline.js";
import type { DecodedBatch } from "../schema.js";
import { agentAnomalyOptionsSchema, createAgentAnomalyMonitor, ANOMALY_MONITOR } from "./agent-anomaly.js";
import {
  attestationOptionsSchema,
  createAttestationCheck,
  ATTESTATION_MONITOR,
  type InputEncoder,
} from "./attestation.js";
import { createDriftMonitor, driftOptionsSchema, DRIFT_MONITOR } from "./drift.js";
import { createTargetedWatch, targetedWatchOptionsSchema, TARGETED_MONITOR } from "./targeted-watch.js";
import { createTriggerAlarm, triggerAlarmOptionsSchema, TRIGGER_MONITOR } from "./trigger-alarm.js";
import { chartOptionsShape, emptyNotes, type Monitor, type MonitorAlert } from "./types.js";

export * from "./types.js";
export * from "./known-triggers.js";
export {
  createDriftMonitor,
  driftOptionsSchema,
  DRIFT_MONITOR,
  type DriftOptions,
  type DriftState,
} from "./drift.js";
export {
  createTriggerAlarm,
  calibrateStripScreen,
  triggerAlarmOptionsSchema,
  stripScreenSchema,
  TRIGGER_MONITOR,
  type StripScreen,
  type StripRuntime,
  type TriggerAlarmOptions,
  type TriggerAlarmState,
} from "./trigger-alarm.js";
export {
  createTargetedWatch,
  targetedWatchOptionsSchema,
  TARGETED_MONITOR,
  type TargetedWatchOptions,
  type TargetedWatchState,
} from "./targeted-watch.js";
export {
  createAgentAnomalyMonitor,
  agentAnomalyOptionsSchema,
  inputStatistic,
  ANOMALY_MONITOR,
  type AgentAnomalyOptions,
  type AgentAnomalyState,
} from "./agent-anomaly.js";
export {
  createAttestationCheck,
  attestationOptionsSchema,
  defaultEncoder,
  ATTESTATION_MONITOR,
  type AttestationOptions,
  type AttestationRuntime,
  type AttestationState,
  type InputEncoder,
} from "./attestation.js";

const enabled = { enabled: z.boolean().default(true) };

const monitorsConfigObject = z
  .object({
    ...chartOptionsShape,
    /** Validation baselines by model digest (baseline.ts): drift and the targeted watch need them. */
    baselines: z
      .record(z.string().regex(/^[0-9a-f]{64}$/, "must be a model digest"), monitorBaselineSchema)
      .default({}),
    drift: driftOptionsSchema.extend(enabled).prefault({}),
    triggers: triggerAlarmOptionsSchema.extend(enabled).prefault({}),
    targeted: targetedWatchOptionsSchema.extend(enabled).prefault({}),
    anomaly: agentAnomalyOptionsSchema.extend(enabled).prefault({}),
    attestation: attestationOptionsSchema.extend(enabled).prefault({}),
  })
  .strict();

/** The monitors' config; `arl0` and `confidence` at the top are inherited by every charting monitor. */
export const monitorsConfigSchema = z.preprocess(inheritChartOptions, monitorsConfigObject);
export type MonitorsConfig = z.input<typeof monitorsConfigObject>;
export type ResolvedMonitorsConfig = z.output<typeof monitorsConfigObject>;

/** What the config cannot hold: per model digest, its predictor (attestation, STRIP) and STRIP's clean backgrounds. */
export interface MonitorsRuntime {
  predictors?: Record<string, BatchPredictor>;
  encoders?: Record<string, InputEncoder>;
  stripBackground?: Record<string, ImageSet>;
  /** A state saved by `state()`, to continue from. */
  state?: unknown;
}

export const MONITORS_STATE_SCHEMA = "antidote.monitor-state";
const monitorsStateSchema = z.object({
  schema: z.literal(MONITORS_STATE_SCHEMA),
  version: z.literal(1),
  batches: z.number().int().min(0),
  monitors: z.record(z.string(), z.unknown()),
});
export type MonitorsState = z.output<typeof monitorsStateSchema>;

export interface Monitors {
  /** The enabled monitors, in the order each batch goes through them. */
  readonly names: readonly string[];
  readonly config: ResolvedMonitorsConfig;
  /** Run one batch (time order) through every monitor; the alerts they raised. */
  observe(batch: DecodedBatch): Promise<MonitorAlert[]>;
  /** Everything needed to continue after a restart, as JSON. */
  state(): MonitorsState;
}

export function createMonitors(config: MonitorsConfig = {}, runtime: MonitorsRuntime = {}): Monitors {
  const c = parseOptions(monitorsConfigSchema, config, "monitors config");
  let saved: MonitorsState | undefined;
  if (runtime.state !== undefined) {
    const r = monitorsStateSchema.safeParse(runtime.state);
    if (!r.success)
      throw new AntidoteError(
        "INPUT_FORMAT",
        "monitors: the saved state is not a monitor state (schema antidote.monitor-state v1).",
      );
    saved = r.data;
  }
  const stateOf = (name: string): unknown => saved?.monitors[name];
  const predictors = runtime.predictors ?? {};
  const monitors: Monitor[] = [];
  const { enabled: attestationOn, ...attestation } = c.attestation;
  if (attestationOn && Object.keys(predictors).length > 0)
    monitors.push(
      createAttestationCheck(
        Object.fromEntries(
          Object.entries(predictors).map(([model, predict]) => {
            const encode = runtime.encoders?.[model];
            return [model, encode === undefined ? { predict } : { predict, encode }];
          }),
        ),
        attestation,
        stateOf(ATTESTATION_MONITOR),
      ),
    );
  const { enabled: triggersOn, ...triggers } = c.triggers;
  if (triggersOn) {
    const strip = Object.fromEntries(
      Object.keys(triggers.strip).flatMap((model) => {
        const predict = predictors[model];
        const background = runtime.stripBackground?.[model];
        if (predict === undefined || background === undefined)
          throw new AntidoteError(
            "USAGE",
            `monitors: STRIP for model ${model} needs its predictor and clean background images.`,
          );
        return [[model, { predict, background }]];
      }),
    );
    monitors.push(createTriggerAlarm(triggers, { strip }, stateOf(TRIGGER_MONITOR)));
  }
  const { enabled: driftOn, ...drift } = c.drift;
  if (driftOn) monitors.push(createDriftMonitor(c.baselines, drift, stateOf(DRIFT_MONITOR)));
  const { enabled: targetedOn, ...targeted } = c.targeted;
  if (targetedOn) monitors.push(createTargetedWatch(c.baselines, targeted, stateOf(TARGETED_MONITOR)));
  const { enabled: anomalyOn, ...anomaly } = c.anomaly;
  if (anomalyOn) monitors.push(createAgentAnomalyMonitor(anomaly, stateOf(ANOMALY_MONITOR)));
  let batches = saved?.batches ?? 0;

  return {
    names: monitors.map((m) => m.name),
    config: c,
    async observe(batch: DecodedBatch): Promise<MonitorAlert[]> {
      batches++;
      const notes = emptyNotes();
      const alerts: MonitorAlert[] = [];
      for (const m of monitors) alerts.push(...(await m.observe(batch, notes)));
      return alerts;
    },
    state(): MonitorsState {
      return {
        schema: MONITORS_STATE_SCHEMA,
        version: 1,
        batches,
        monitors: Object.fromEntries(monitors.map((m) => [m.name, m.state()])),
      };
    },
  };
}

/** Copy the top-level arl0/confidence into each monitor section that does not set its own. */
function inheritChartOptions(raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return raw;
  const top = raw as Record<string, unknown>;
  const out: Record<string, unknown> = { ...top };
  for (const section of ["drift", "triggers", "targeted", "anomaly"]) {
    const s = top[section] ?? {};
    if (typeof s !== "object" || s === null || Array.isArray(s)) continue;
    out[section] = {
      ...(top.arl0 === undefined ? {} : { arl0: top.arl0 }),
      ...(top.confidence === undefined ? {} : { confidence: top.confidence }),
      ...(s as Record<string, unknown>),
    };
  }
  return out;
}
