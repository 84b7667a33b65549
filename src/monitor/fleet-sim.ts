// A simulated fleet of deployed agents, for measuring the monitors the way the scan's
// detectors are measured: N agents serve one model on real data (Fashion-MNIST images or
// SpamAssassin emails), each drawing inputs from its own slice and sending signed telemetry
// batches in time order; a few are compromised and, on `rate` of their traffic, send
// trigger-carrying inputs, flip their feedback labels to a target, replay or forge batches,
// or run a different model than the one they attest. Everything is planned from the seed
// (fleet/plan.ts), generated round by round (fleet/generate.ts), handed to a transport
// (fleet/transport.ts: HTTP to `antidote serve`, or an in-process intake) and recorded as
// ground truth (fleet/truth.ts) together with what the transport answered.
import { z } from "zod";
import { openDataset } from "../data/open.js";
import type { Sample } from "../data/sample.js";
import { classRefSchema, resolveClass } from "../attack/select.js";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { Rng } from "../math/rng.js";
import type { SigningKey } from "../provenance/keys.js";
import { generateRound, type GeneratedUpload, type RoundContext } from "./fleet/generate.js";
import { perturbedFleetModel, type FleetModel } from "./fleet/model.js";
import { planFleet } from "./fleet/plan.js";
import { seededSigningKey, type FleetSend, type FleetUploadMeta } from "./fleet/transport.js";
import { defaultTrigger, parseFleetTrigger, triggerTarget, type FleetTriggerInput } from "./fleet/trigger.js";
import {
  FLEET_BEHAVIOURS,
  summarizeFleet,
  type FleetSummary,
  type FleetTruth,
  type FleetUploadTruth,
} from "./fleet/truth.js";
import { TELEMETRY_LIMITS, batchIdOf, type TelemetryUpload } from "./schema.js";

export const fleetSimOptionsSchema = z
  .object({
    agents: z.number().int().min(1).max(10_000).default(10),
    compromised: z.number().int().min(0).default(0),
    /** Share of a compromised agent's records (and batches) its behaviours touch. */
    rate: z.number().gt(0).lte(1).default(0.05),
    behaviours: z.array(z.enum(FLEET_BEHAVIOURS)).min(1).default(["trigger", "flip"]),
    /** "all": every compromised agent does every behaviour; "round-robin": one each, in turn. */
    assign: z.enum(["all", "round-robin"]).default("all"),
    batches: z.number().int().min(1).max(1_000_000).default(20),
    batchSize: z.number().int().min(1).max(TELEMETRY_LIMITS.maxRecords).default(200),
    /** Share of honest records that carry a feedback label. */
    feedbackShare: z.number().min(0).max(1).default(0.3),
    /** Share of honest feedback labels that are wrong (natural noise, not poisoning). */
    feedbackNoise: z.number().min(0).max(0.5).default(0.01),
    /** The trigger (an attack spec or trigger spec); default a 3×3 patch or the token "cf7x". */
    trigger: z.unknown().optional(),
    /** Target of flips and forgeries; default the trigger's target. */
    flipTarget: classRefSchema.optional(),
    /** Flip only records of this class (a targeted source→target flip); default any class. */
    flipSource: classRefSchema.optional(),
    seed: z.union([z.number().int(), z.string().min(1)]).default(0),
    /** Start of the first batch's window; default so that the last batch ends about now. */
    start: z.union([z.date(), z.iso.datetime({ offset: true })]).optional(),
    batchIntervalMs: z.number().int().min(1).max(TELEMETRY_LIMITS.maxWindowMs).default(60_000),
    /** Send inputs' content (pixels, text), not only digests. */
    sendContent: z.boolean().default(true),
    /** "shared": every agent serves the whole data (one population); "disjoint": a slice each. */
    slices: z.enum(["shared", "disjoint"]).default("shared"),
    agentPrefix: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, "must start an agent (source) name")
      .max(180)
      .default("agent-"),
    /** Agents whose uploads are sent at once (each agent's in order). */
    concurrency: z.number().int().min(1).max(256).default(1),
    keepUploads: z.boolean().default(false),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.compromised > o.agents)
      ctx.addIssue({
        code: "custom",
        path: ["compromised"],
        message: `must be at most agents (${o.agents})`,
      });
  });

export type FleetSimSettings = z.input<typeof fleetSimOptionsSchema>;

export interface FleetData {
  /** Labeled samples with an image or a text. */
  samples: readonly Sample[];
  classes: readonly string[];
}

export interface FleetSimOptions extends FleetSimSettings {
  /** The trigger: a trigger spec, or an image/text attack spec as `antidote attack` takes it. */
  trigger?: FleetTriggerInput | Record<string, unknown>;
  /** What the agents serve: labeled samples, or a dataset spec ("fashion-mnist:test", "spamassassin"). */
  data: FleetData | string;
  model: FleetModel;
  /** What wrong-model batches are served by; default `perturbedFleetModel(model)`. */
  wrongModel?: FleetModel;
  send?: FleetSend;
  /** Each agent's key; default one derived from the seed (seededSigningKey). */
  keys?: (agent: string) => SigningKey;
  onProgress?: (progress: FleetProgress) => void;
}

export interface FleetProgress {
  round: number;
  rounds: number;
  sent: number;
  accepted: number;
  refused: number;
}

export interface FleetSimResult {
  truth: FleetTruth;
  summary: FleetSummary;
  /** Every upload in send order, with keepUploads. */
  uploads?: { upload: TelemetryUpload; meta: FleetUploadMeta }[];
  /** The agents' public keys, for registering them as sources. */
  agents: { name: string; keyId: string; publicKeyPem: string; compromised: boolean }[];
  seconds: number;
}

/**
 * Labeled samples of a dataset (texts over TELEMETRY_LIMITS.maxTextLength skipped and counted);
 * `holdOut` of them (shuffled by seed) set apart, e.g. to train a model on.
 */
export async function loadFleetData(
  spec: string,
  options: { limit?: number; holdOut?: number; seed?: number | string } = {},
): Promise<FleetData & { heldOut: Sample[]; skipped: number }> {
  const dataset = await openDataset(spec);
  const samples: Sample[] = [];
  let skipped = 0;
  for await (const s of dataset.samples()) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    if (s.label === null || (s.image === undefined && s.text === undefined)) continue;
    // An agent cannot send a text over the limit (a few SpamAssassin emails are).
    if (s.text !== undefined && s.text.length > TELEMETRY_LIMITS.maxTextLength) {
      skipped++;
      continue;
    }
    samples.push(s);
  }
  const classes = dataset.info.classes ?? [...new Set(samples.map((s) => s.label ?? ""))].sort();
  if (samples.length === 0) throw new AntidoteError("USAGE", `${spec}: no labeled images or texts to serve.`);
  if (options.holdOut === undefined || options.holdOut <= 0)
    return { samples, classes, heldOut: [], skipped };
  const order = new Rng(`${String(options.seed ?? 0)}/hold-out`).shuffle(samples);
  const cut = Math.round(order.length * options.holdOut);
  return { samples: order.slice(cut), classes, heldOut: order.slice(0, cut), skipped };
}

/** Run the fleet: plan, generate round by round, send, and return the ground truth. */
export async function simulateFleet(options: FleetSimOptions): Promise<FleetSimResult> {
  const started = performance.now();
  const { data, model, wrongModel, send, keys, onProgress, ...settings } = options;
  const o = parseOptions(fleetSimOptionsSchema, settings, "fleet-sim options");
  const { samples, classes } = typeof data === "string" ? await loadFleetData(data) : data;
  checkModel(model, classes);
  const long = samples.findIndex(
    (s) => s.text !== undefined && s.text.length > TELEMETRY_LIMITS.maxTextLength,
  );
  if (long >= 0 && o.sendContent)
    throw new AntidoteError(
      "USAGE",
      `sample "${samples[long]?.id ?? ""}" has a text over ${TELEMETRY_LIMITS.maxTextLength} characters, more than a record may send.`,
    );
  const modality = samples.some((s) => s.image !== undefined) ? "image" : "text";
  const trigger =
    o.trigger === undefined ? defaultTrigger(modality, classes[0] ?? "") : parseFleetTrigger(o.trigger);
  const target =
    o.flipTarget === undefined
      ? triggerTarget(trigger, classes)
      : resolveClass(o.flipTarget, classes, "flipTarget");
  const triggerClass = triggerTarget(trigger, classes);
  const source = o.flipSource === undefined ? undefined : resolveClass(o.flipSource, classes, "flipSource");
  const seed = String(o.seed);
  const plans = planFleet(
    samples,
    o,
    {
      trigger: (s) => s.label !== triggerClass,
      flip: (s) => s.label !== target && (source === undefined || s.label === source),
    },
    keys ?? ((agent) => seededSigningKey(`${seed}/agent/${agent}`)),
  );
  if (plans.some((p) => p.slice.length === 0))
    throw new AntidoteError("USAGE", `${samples.length} samples cannot give each of ${o.agents} agents one.`);
  const start =
    o.start === undefined
      ? Math.floor((Date.now() - o.batches * o.batchIntervalMs) / 1000) * 1000 - 60_000
      : new Date(o.start).getTime();
  const ctx: RoundContext = {
    samples,
    classes,
    model,
    wrongModel: wrongModel ?? perturbedFleetModel(model, { seed: o.seed }),
    trigger,
    target,
    batchSize: o.batchSize,
    batchIntervalMs: o.batchIntervalMs,
    start,
    feedbackShare: o.feedbackShare,
    feedbackNoise: o.feedbackNoise,
    sendContent: o.sendContent,
    forgerKey: (agent) => seededSigningKey(`${seed}/forger/${agent}`),
  };
  const { start: _s, ...rest } = o;
  const truth: FleetTruth = {
    version: 1,
    settings: {
      ...rest,
      start: new Date(start).toISOString(),
      trigger,
      data: typeof data === "string" ? data : "(samples)",
    },
    model: model.digest,
    classes: [...classes],
    target,
    agents: plans.map((p) => ({
      name: p.name,
      keyId: p.key.keyId,
      compromised: p.compromised,
      behaviours: p.behaviours,
      sliceSize: p.slice.length,
      records: o.batches * o.batchSize,
      poisonedRecords: 0,
    })),
    uploads: [],
    records: [],
  };
  const uploads: FleetSimResult["uploads"] = o.keepUploads ? [] : undefined;
  const earlier = new Map<string, GeneratedUpload>();
  const record = truthRecorder(truth);
  const counts = { sent: 0, accepted: 0, refused: 0 };
  for (let round = 0; round < o.batches; round++) {
    const perAgent: { items: { generated: GeneratedUpload; meta: FleetUploadMeta }[] }[] = [];
    for (const plan of plans) {
      const items = (await generateRound(ctx, plan, round, earlier)).map((generated) => {
        const meta = record(plan.name, round, generated);
        uploads?.push({ upload: generated.upload, meta });
        return { generated, meta };
      });
      perAgent.push({ items });
    }
    if (send !== undefined)
      await pool(perAgent, o.concurrency, async ({ items }) => {
        for (const { generated, meta } of items) {
          const outcome = await send(generated.upload, meta);
          (truth.uploads[meta.index] as FleetUploadTruth).outcome = outcome;
          if (outcome === null) continue;
          counts.sent++;
          if (outcome.accepted) counts.accepted++;
          else counts.refused++;
        }
      });
    onProgress?.({ round: round + 1, rounds: o.batches, ...counts });
  }
  const result: FleetSimResult = {
    truth,
    summary: summarizeFleet(truth),
    agents: plans.map((p) => ({
      name: p.name,
      keyId: p.key.keyId,
      publicKeyPem: p.key.publicKeyPem,
      compromised: p.compromised,
    })),
    seconds: (performance.now() - started) / 1000,
  };
  if (uploads !== undefined) result.uploads = uploads;
  return result;
}

// ---------------------------------------------------------------------------------------

/** Adds each generated upload (and its marked records) to the truth; returns what the transport is told. */
function truthRecorder(
  truth: FleetTruth,
): (agent: string, round: number, g: GeneratedUpload) => FleetUploadMeta {
  const agents = new Map(truth.agents.map((a) => [a.name, a]));
  const ownBatch = new Map<string, number>(); // "<agent>#<batch>" → upload index of the agent's own batch
  return (agent, round, g) => {
    const meta: FleetUploadMeta = {
      index: truth.uploads.length,
      round,
      agent,
      sequence: g.sequence,
      kind: g.kind,
    };
    const batchId = batchIdOf(agent, g.sequence);
    const u: FleetUploadTruth = {
      index: meta.index,
      round,
      agent,
      sequence: g.sequence,
      batchId,
      kind: g.kind,
      records: g.records,
      poisoned: g.marked.filter((m) => m.how !== "noise").length,
      sha256: g.sha256,
      outcome: null,
    };
    if (g.forgery !== undefined) u.forgery = g.forgery;
    const original = g.replayOf === undefined ? undefined : ownBatch.get(`${agent}#${g.replayOf}`);
    if (original !== undefined) {
      u.replayOf = original;
      // A replay carries the poisoned records of the batch it repeats (listed under that one).
      u.poisoned = truth.uploads[original]?.poisoned ?? 0;
    }
    truth.uploads.push(u);
    if (g.kind === "batch" || g.kind === "wrong-model") ownBatch.set(`${agent}#${round}`, meta.index);
    const agentTruth = agents.get(agent);
    for (const m of g.marked) {
      truth.records.push({ upload: meta.index, agent, batchId, ...m, poisoned: m.how !== "noise" });
      if (agentTruth !== undefined && (m.how === "trigger" || m.how === "flip")) agentTruth.poisonedRecords++;
    }
    return meta;
  };
}

function checkModel(model: FleetModel, classes: readonly string[]): void {
  if (model.classes.length !== classes.length || model.classes.some((c, i) => c !== classes[i]))
    throw new AntidoteError(
      "USAGE",
      `the model's classes (${model.classes.join(", ")}) are not the data's (${classes.join(", ")}), in order.`,
    );
  if (!/^[0-9a-f]{64}$/.test(model.digest))
    throw new AntidoteError("USAGE", `the model's digest "${model.digest}" is not a hex SHA-256.`);
}

/** Run `work` over `items` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++] as T);
  });
  await Promise.all(runners);
}
