// One agent's uploads for one round of a simulated fleet, in send order: a forgery (when
// planned) racing ahead of the batch it imitates, the agent's own batch (served by the
// attested model, or by the wrong one), and a replay of an earlier batch (when planned).
// Honest records carry the agent's clean inputs and, on a share of them, feedback labels with
// a little natural noise; poisoned ones carry a trigger or a flipped label, with the target as
// feedback. Records go through the same checks and signing as createTelemetryClient's.
import { createHash } from "node:crypto";
import type { Sample } from "../../data/sample.js";
import type { SigningKey } from "../../provenance/keys.js";
import { telemetryRecord, signJsonl } from "../agent-batch.js";
import type { TelemetryRecord, TelemetryUpload } from "../schema.js";
import type { FleetInput, FleetModel } from "./model.js";
import { nextInput, type AgentPlan } from "./plan.js";
import type { FleetUploadKind } from "./transport.js";
import { applyTrigger, type FleetTrigger } from "./trigger.js";
import type { ForgeryKind, RecordHow } from "./truth.js";

export interface RoundContext {
  samples: readonly Sample[];
  classes: readonly string[];
  model: FleetModel;
  wrongModel: FleetModel;
  trigger: FleetTrigger;
  /** Target class name of the trigger, the flips and the forgeries. */
  target: string;
  batchSize: number;
  batchIntervalMs: number;
  start: number;
  feedbackShare: number;
  feedbackNoise: number;
  sendContent: boolean;
  forgerKey: (agent: string) => SigningKey;
}

/** A record that is not clean, before it has an upload index. */
export interface MarkedRecord {
  id: string;
  digest: string;
  how: RecordHow;
  trueLabel: string;
  feedback: string | null;
  predicted: string;
}

export interface GeneratedUpload {
  upload: TelemetryUpload;
  kind: FleetUploadKind;
  sequence: number;
  forgery?: ForgeryKind;
  /** For a replay: the batch index it repeats. */
  replayOf?: number;
  records: number;
  sha256: string;
  marked: MarkedRecord[];
}

interface Built {
  records: TelemetryRecord[];
  trueLabels: string[];
  marked: MarkedRecord[];
  upload: TelemetryUpload;
}

/** The agent's uploads of round `b`; `earlier` holds the batches a later replay re-sends. */
export async function generateRound(
  ctx: RoundContext,
  plan: AgentPlan,
  b: number,
  earlier: Map<string, GeneratedUpload>,
): Promise<GeneratedUpload[]> {
  const own = await buildBatch(ctx, plan, b);
  const kind: FleetUploadKind = plan.wrongModel.has(b) ? "wrong-model" : "batch";
  const ownUpload: GeneratedUpload = {
    upload: own.upload,
    kind,
    sequence: b,
    records: own.records.length,
    sha256: sha256(own.upload.records),
    marked: own.marked,
  };
  const out: GeneratedUpload[] = [];
  const forgery = plan.forge.get(b);
  if (forgery !== undefined) out.push(forge(ctx, plan, b, own, forgery));
  out.push(ownUpload);
  if ([...plan.replay.values()].includes(b)) earlier.set(`${plan.name}#${b}`, ownUpload);
  const replayOf = plan.replay.get(b);
  const original = replayOf === undefined ? undefined : earlier.get(`${plan.name}#${replayOf}`);
  if (replayOf !== undefined && original !== undefined)
    out.push({ ...original, kind: "replay", replayOf, marked: [] });
  return out;
}

async function buildBatch(ctx: RoundContext, plan: AgentPlan, b: number): Promise<Built> {
  const { samples, classes, batchSize: n, target } = ctx;
  const rng = plan.rng;
  const t0 = ctx.start + b * ctx.batchIntervalMs;
  const offsets = Array.from({ length: n }, () => rng.int(ctx.batchIntervalMs)).sort((x, y) => x - y);
  const inputs: FleetInput[] = [];
  const picks: { index: number; how: "trigger" | "flip" | undefined; id: string }[] = [];
  for (let j = 0; j < n; j++) {
    let how = plan.poison.get(b * n + j);
    const pool = how === "trigger" ? plan.triggerEligible : how === "flip" ? plan.flipEligible : [];
    if (pool.length === 0) how = undefined;
    const index = how === undefined ? nextInput(plan) : rng.pick(pool);
    const sample = samples[index] as Sample;
    const id = `${plan.name}-${b}-${j}`;
    const content: FleetInput = {};
    if (sample.image !== undefined) content.image = sample.image;
    if (sample.text !== undefined) content.text = sample.text;
    inputs.push(how === "trigger" ? applyTrigger(ctx.trigger, content, id, rng) : content);
    picks.push({ index, how, id });
  }
  const model = plan.wrongModel.has(b) ? ctx.wrongModel : ctx.model;
  const probs = await model.predict(inputs);
  const C = classes.length;
  const records: TelemetryRecord[] = [];
  const trueLabels: string[] = [];
  const marked: MarkedRecord[] = [];
  picks.forEach(({ index, how, id }, j) => {
    const trueLabel = (samples[index] as Sample).label ?? "";
    let feedback: string | null = null;
    let noise = false;
    if (how !== undefined) feedback = target;
    else if (rng.next() < ctx.feedbackShare) {
      feedback = trueLabel;
      if (rng.next() < ctx.feedbackNoise) {
        const others = classes.filter((c) => c !== trueLabel);
        feedback = rng.pick(others);
        noise = true;
      }
    }
    const row = probs.subarray(j * C, (j + 1) * C);
    const record = telemetryRecord(
      {
        id,
        at: t0 + (offsets[j] as number),
        input: inputs[j] as FleetInput,
        probs: row,
        ...(feedback !== null ? { feedback: { label: feedback, kind: "human" as const } } : {}),
      },
      classes,
      { sendContent: ctx.sendContent },
    );
    records.push(record);
    trueLabels.push(trueLabel);
    const kindOf: RecordHow | undefined = how ?? (noise ? "noise" : undefined);
    if (kindOf !== undefined)
      marked.push({
        id,
        digest: record.input.digest,
        how: kindOf,
        trueLabel,
        feedback,
        predicted: classes[argmax(row)] ?? "",
      });
  });
  const upload = signJsonl(jsonlOf(records), records.map(timeOf), {
    agent: plan.name,
    key: plan.key,
    model: ctx.model.digest,
    classes,
    sequence: b,
  });
  return { records, trueLabels, marked, upload };
}

/**
 * A forged copy of batch `b`: every record not already of the target class gets the target as
 * its feedback label, then it is signed by a key the ledger does not know, or sent under the
 * agent's genuine envelope (the records altered after signing).
 */
function forge(
  ctx: RoundContext,
  plan: AgentPlan,
  b: number,
  own: Built,
  forgery: ForgeryKind,
): GeneratedUpload {
  const marked: MarkedRecord[] = [];
  const records = own.records.map((r, j) => {
    const trueLabel = own.trueLabels[j] ?? "";
    if (trueLabel === ctx.target) return r;
    const probs = r.output.probs;
    marked.push({
      id: r.id,
      digest: r.input.digest,
      how: "forge",
      trueLabel,
      feedback: ctx.target,
      predicted: ctx.classes[argmax(probs)] ?? "",
    });
    return { ...r, feedback: { label: ctx.target, kind: "human" as const } };
  });
  const jsonl = jsonlOf(records);
  const upload =
    forgery === "altered-records"
      ? { envelope: own.upload.envelope, records: jsonl }
      : signJsonl(jsonl, records.map(timeOf), {
          agent: plan.name,
          key: ctx.forgerKey(plan.name),
          model: ctx.model.digest,
          classes: ctx.classes,
          sequence: b,
        });
  return {
    upload,
    kind: "forge",
    sequence: b,
    forgery,
    records: records.length,
    sha256: sha256(jsonl),
    marked,
  };
}

function jsonlOf(records: readonly TelemetryRecord[]): string {
  return records.map((r) => `${JSON.stringify(r)}\n`).join("");
}

function timeOf(r: TelemetryRecord): number {
  return Date.parse(r.at);
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < row.length; k++) if ((row[k] as number) > (row[best] as number)) best = k;
  return best;
}
