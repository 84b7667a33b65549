// The contract every monitor keeps: streaming state over decoded telemetry batches (in time
// order, many agents interleaved), alerts out, state in and out as plain JSON so a restarted
// server continues where it stopped. Each monitor's own file says what it tests and how its
// false-alarm rate is held (sequential.ts); this file holds only what they share.
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import type { Finding } from "../../ledger/types.js";
import type { DecodedBatch } from "../schema.js";
import { cusumUpdate, newChart, type CusumChart, type CusumStep } from "../sequential.js";

/** What an alert is about: a model (drift, confusion), an agent (a source), or one telemetry batch. */
export type AlertSubjectType = "model" | "source" | "telemetry-batch";

export interface MonitorAlert {
  /** The monitor that raised it ("drift", "trigger-alarm", "targeted-watch", "agent-anomaly", "attestation"). */
  monitor: string;
  /** The finding kind it records (e.g. "output-drift", "suspicious-feedback"). */
  kind: string;
  subjectType: AlertSubjectType;
  /** Model digest, agent (source) name, or batch id "<agent>#<sequence>". */
  subjectId: string;
  /** Higher is more suspicious; for chart alarms, the CUSUM statistic S in nats (≥ its threshold h). */
  score: number;
  /** The batch whose arrival raised it. */
  batchId: string;
  evidence: Record<string, unknown>;
}

/** The finding an alert records in the ledger: check "monitor/<monitor>", at the caller's check version. */
export function toFinding(alert: MonitorAlert, checkVersion: string): Finding {
  return {
    subjectType: alert.subjectType,
    subjectId: alert.subjectId,
    kind: alert.kind,
    score: alert.score,
    evidence: { ...alert.evidence, batchId: alert.batchId },
    check: `monitor/${alert.monitor}`,
    checkVersion,
  };
}

/**
 * What monitors learn about a batch's records and pass on within one `createMonitors` step: the
 * trigger alarm writes which records it screened and flagged, the per-agent anomaly reads them.
 */
export interface BatchNotes {
  /** Records screened for triggers (known-trigger match or STRIP), by id. */
  screened: Set<string>;
  /** Flagged record id → why (trigger ids, "strip"). */
  flagged: Map<string, string[]>;
}

export function emptyNotes(): BatchNotes {
  return { screened: new Set(), flagged: new Map() };
}

export interface Monitor<State = unknown> {
  readonly name: string;
  /** Take one batch (time order); return the alerts it raised. */
  observe(batch: DecodedBatch, notes?: BatchNotes): MonitorAlert[] | Promise<MonitorAlert[]>;
  /** The streaming state, as JSON (a deep copy). */
  state(): State;
}

/** A monitor that needs no model calls (drift, targeted watch, per-agent anomaly). */
export interface SyncMonitor<State = unknown> extends Monitor<State> {
  observe(batch: DecodedBatch, notes?: BatchNotes): MonitorAlert[];
}

/** A monitor that runs a model (trigger alarm with STRIP, attestation). */
export interface AsyncMonitor<State = unknown> extends Monitor<State> {
  observe(batch: DecodedBatch, notes?: BatchNotes): Promise<MonitorAlert[]>;
}

/** The false-alarm settings every charting monitor takes. */
export const chartOptionsShape = {
  /** In-control average run length, in batches: at most one false alarm per this many batches. */
  arl0: z.number().gt(1).default(10_000),
  /**
   * Confidence that an estimated in-control reference (a baseline rate, a fleet rate) is not
   * below the truth: charts test against its upper confidence limit at this level.
   */
  confidence: z.number().gt(0.5).lt(1).default(0.999),
};

export const cusumChartSchema = z.object({
  s: z.number().min(0),
  updates: z.number().int().min(0),
  alarms: z.number().int().min(0),
  run: z.object({
    batches: z.number().int().min(0),
    x: z.number().min(0),
    n: z.number().min(0),
    since: z.string().nullable(),
  }),
});

/** Named charts sharing one threshold. */
export class ChartBank {
  readonly charts: Record<string, CusumChart>;

  constructor(
    readonly h: number,
    state?: Record<string, CusumChart>,
  ) {
    this.charts = state === undefined ? {} : structuredClone(state);
  }

  /** Update one chart (created at 0 on first use); `h` overrides the bank's threshold. */
  update(key: string, llr: number, obs: { x: number; n: number; batchId: string }, h = this.h): CusumStep {
    let chart = this.charts[key];
    if (chart === undefined) this.charts[key] = chart = newChart();
    return cusumUpdate(chart, llr, h, obs);
  }

  /** The chart's current statistic (0 for a chart not yet updated). */
  statistic(key: string): number {
    return this.charts[key]?.s ?? 0;
  }

  toJSON(): Record<string, CusumChart> {
    return structuredClone(this.charts);
  }
}

/** Evidence every chart alarm carries: the statistic, the threshold and the run that crossed it. */
export function chartEvidence(step: CusumStep, h: number): Record<string, unknown> {
  return {
    statistic: round(step.s),
    threshold: round(h),
    runBatches: step.run.batches,
    runSince: step.run.since,
  };
}

/** Parse a monitor's saved state, naming the monitor in the error. */
export function parseState<T extends z.ZodType>(schema: T, state: unknown, monitor: string): z.output<T> {
  const r = schema.safeParse(state);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new AntidoteError(
    "INPUT_FORMAT",
    `monitor "${monitor}": saved state "${issue?.path.join(".") ?? ""}" ${issue?.message ?? "is invalid"}.`,
  );
}

export function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A record's image as the model takes it: H×W×C → C×H×W (the same array for one channel). */
export function imageToChw(image: {
  height: number;
  width: number;
  channels: number;
  data: Float32Array;
}): Float32Array {
  const { height, width, channels, data } = image;
  if (channels === 1) return data;
  const out = new Float32Array(data.length);
  const plane = height * width;
  for (let p = 0; p < plane; p++)
    for (let c = 0; c < channels; c++) out[c * plane + p] = data[p * channels + c] as number;
  return out;
}

/** Whether a batch names the classes a baseline was taken over, in the same order. */
export function sameClasses(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}
