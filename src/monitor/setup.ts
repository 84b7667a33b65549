// What monitoring a deployed model needs before the first batch arrives, in one JSON file the
// operator keeps beside the model (`antidote monitor init`): per model, its validation baseline
// (the output mix, confidence and confusion it showed on clean data: drift and the targeted watch
// test against it), a STRIP screen calibrated at the chosen false-rejection rate for image models,
// the triggers earlier scans found in the ledger with their natural match rate on clean inputs,
// and where the model file and clean background images are, so the runner can re-run the model
// the agents attest (attestation) and overlay images (STRIP).
//
// Nothing here is a secret: the webhook's secret is read from the environment variable the file
// names, never from the file.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { writeOutputFile } from "../data/atomic-output.js";
import { openDataset } from "../data/open.js";
import type { Sample } from "../data/sample.js";
import { AntidoteError, jsonSyntaxReason } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { LedgerReader } from "../ledger/types.js";
import { imageBatch } from "../onnx/input.js";
import { openOnnxClassifier, type OnnxClassifier } from "../onnx/classifier.js";
import { monitorBaseline } from "./baseline.js";
import {
  calibrateKnownTriggers,
  calibrateStripScreen,
  knownTriggerFromFinding,
  type KnownTrigger,
  type MonitorsConfig,
} from "./monitors/index.js";

export const MONITOR_SETUP_SCHEMA = "antidote.monitor-setup";

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be a model digest (hex SHA-256)");

export const monitorSetupSchema = z
  .object({
    schema: z.literal(MONITOR_SETUP_SCHEMA),
    version: z.literal(1),
    /** Per model digest: where the model and clean images are (paths relative to this file). */
    models: z.record(
      sha256Hex,
      z
        .object({
          onnx: z.string().min(1),
          inputShape: z.array(z.number().int().min(1)).min(1).optional(),
          /** Clean images for STRIP's overlays: a dataset and how many of its first samples. */
          background: z
            .object({
              data: z.string().min(1),
              skip: z.number().int().min(0),
              count: z.number().int().min(1),
            })
            .strict()
            .nullable(),
        })
        .strict(),
    ),
    /** The monitors' config (monitors/index.ts): baselines, known triggers, STRIP screens, ARL. */
    monitors: z.record(z.string(), z.unknown()),
    webhook: z
      .object({
        url: z.string().url(),
        /** The environment variable holding the HMAC secret (never the secret itself). */
        secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be an environment variable name"),
      })
      .strict()
      .optional(),
  })
  .strict();
export type MonitorSetup = z.output<typeof monitorSetupSchema>;

export const prepareOptionsSchema = z.object({
  /** The deployed model (ONNX). */
  model: z.string().min(1),
  /** Clean, labeled validation data the model was not trained on (anything `openDataset` reads). */
  data: z.string().min(1),
  /** Validation records for the baseline (default 2,000). */
  validation: z.number().int().min(50).max(1_000_000).default(2000),
  /** Of those, records STRIP is calibrated on (default 500) and background images after them (default 200). */
  stripCalibration: z.number().int().min(2).default(500),
  stripBackground: z.number().int().min(1).default(200),
  /** STRIP's accepted false-rejection rate on clean inputs (default 0.01). */
  frr: z.number().gt(0).lt(1).default(0.01),
  /** In-control average run length of every chart, in batches (default 10,000). */
  arl0: z.number().gt(1).default(10_000),
  /** The model's input shape without batch, when it leaves it symbolic. */
  inputShape: z.array(z.number().int().min(1)).min(1).optional(),
  /** Where the setup will be written: paths in it are made relative to its folder. */
  out: z.string().min(1),
  webhook: z
    .object({ url: z.string().url(), secretEnv: z.string().min(1) })
    .strict()
    .optional(),
});
export type PrepareOptions = z.input<typeof prepareOptionsSchema> & {
  /** Triggers found by earlier scans ("trigger-patch", "trigger-token" findings) are watched for. */
  ledger?: LedgerReader;
  onProgress?: (phase: string) => void;
};

export interface PreparedMonitoring {
  setup: MonitorSetup;
  model: string;
  validation: number;
  accuracy: number | null;
  triggers: number;
  strip: { threshold: number; observedFrr: number } | null;
}

/** Build a monitor setup for one model from clean validation data and write it to `out`. */
export async function prepareMonitoring(options: PrepareOptions): Promise<PreparedMonitoring> {
  const o = parseOptions(prepareOptionsSchema, options, "monitor init");
  const dataset = await openDataset(o.data);
  const classes = dataset.info.classes;
  const need = o.validation + o.stripBackground;
  const samples: Sample[] = [];
  for await (const s of dataset.samples()) {
    if (samples.length >= need) break;
    samples.push(s);
  }
  if (samples.length < o.validation)
    throw new AntidoteError(
      "USAGE",
      `${o.data}: holds ${samples.length} samples, fewer than the ${o.validation} asked for.`,
    );
  const validation = samples.slice(0, o.validation);
  const background = samples.slice(o.validation);
  options.onProgress?.("model");
  const model = await openOnnxClassifier(o.model, {
    ...(classes ? { classes } : {}),
    ...(o.inputShape ? { inputShape: o.inputShape } : {}),
  });
  try {
    const names =
      classes ?? model.modelClasses ?? Array.from({ length: model.numClasses }, (_, k) => String(k));
    const x = encode(model, validation, o.data);
    const { probs } = await model.run(x, validation.length);
    const labels = Int32Array.from(validation, (s) => (s.label === null ? -1 : names.indexOf(s.label)));
    const baseline = monitorBaseline(probs, validation.length, names, labels);
    let right = 0;
    let labeled = 0;
    labels.forEach((y, i) => {
      if (y < 0) return;
      labeled++;
      let best = 0;
      for (let k = 1; k < names.length; k++)
        if ((probs[i * names.length + k] as number) > (probs[i * names.length + best] as number)) best = k;
      if (best === y) right++;
    });

    const monitors: MonitorsConfig = { arl0: o.arl0, baselines: { [model.digest]: baseline } };
    // Triggers found earlier, watched for in production inputs.
    const known = options.ledger === undefined ? [] : await ledgerTriggers(options.ledger);
    const triggers: NonNullable<MonitorsConfig["triggers"]> = { known };
    if (known.length > 0) {
      const cal = calibrateKnownTriggers(known, validation);
      triggers.knownCalibration = { n: Math.max(1, cal.n), matches: cal.matches };
    }
    let strip: PreparedMonitoring["strip"] = null;
    const isImage = validation[0]?.image !== undefined;
    if (isImage && background.length > 0) {
      options.onProgress?.("strip");
      const first = validation[0]?.image;
      const shape = { height: first?.height ?? 0, width: first?.width ?? 0, channels: first?.channels ?? 1 };
      const clean = validation.slice(0, o.stripCalibration);
      const predict = async (batch: Float32Array, n: number): Promise<Float32Array> =>
        (await model.run(batch, n)).probs;
      const screen = await calibrateStripScreen(
        predict,
        { x: encode(model, clean, o.data), n: clean.length },
        { x: encode(model, background, o.data), n: background.length },
        shape,
        { frr: o.frr },
      );
      triggers.strip = { [model.digest]: screen };
      strip = { threshold: screen.threshold, observedFrr: screen.flagged / screen.n };
    }
    monitors.triggers = triggers;
    const base = dirname(resolve(o.out));
    const setup: MonitorSetup = {
      schema: MONITOR_SETUP_SCHEMA,
      version: 1,
      models: {
        [model.digest]: {
          onnx: relativeTo(base, o.model),
          ...(o.inputShape ? { inputShape: o.inputShape } : {}),
          background:
            isImage && background.length > 0
              ? { data: relativeTo(base, o.data), skip: o.validation, count: background.length }
              : null,
        },
      },
      monitors,
      ...(o.webhook ? { webhook: o.webhook } : {}),
    };
    await writeOutputFile(o.out, `${JSON.stringify(setup, null, 2)}\n`, { overwrite: true });
    return {
      setup,
      model: model.digest,
      validation: validation.length,
      accuracy: labeled === 0 ? null : right / labeled,
      triggers: known.length,
      strip,
    };
  } finally {
    await model.close();
  }
}

/** Read a setup file; errors name the file and the field. */
export async function readMonitorSetup(path: string): Promise<MonitorSetup> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new AntidoteError(
      "FILE_NOT_FOUND",
      `${path}: cannot read the monitor setup (${(e as NodeJS.ErrnoException).code ?? "error"}).`,
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${path}: not JSON (${jsonSyntaxReason(e)}).`);
  }
  const r = monitorSetupSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: "${issue?.path.join(".") ?? ""}" ${issue?.message ?? "is invalid"}.`,
    );
  }
  return r.data;
}

/** A path in a setup file, resolved against the file's folder (a bundled dataset's name as it is). */
export function setupPath(setupFile: string, path: string): string {
  if (isBundledDataset(path)) return path;
  return isAbsolute(path) ? path : resolve(dirname(resolve(setupFile)), path);
}

/** "fashion-mnist:test", "spamassassin": a name `openDataset` knows, not a file. */
function isBundledDataset(path: string): boolean {
  return (
    (/^[a-z][a-z0-9-]*(:[a-z0-9-]+)?$/.test(path) && !existsSync(path)) ||
    /^[a-z][a-z0-9-]*:[a-z0-9-]+$/.test(path)
  );
}

/** The triggers the ledger's scan findings describe, one per distinct trigger. */
async function ledgerTriggers(ledger: LedgerReader): Promise<KnownTrigger[]> {
  const out = new Map<string, KnownTrigger>();
  for await (const f of ledger.findings()) {
    if (f.kind !== "trigger-patch" && f.kind !== "trigger-token") continue;
    try {
      const t = knownTriggerFromFinding(f);
      if (!out.has(t.id)) out.set(t.id, t);
    } catch {
      // A finding without a trigger description (a per-sample flag) describes nothing to match.
    }
  }
  return [...out.values()];
}

function encode(model: OnnxClassifier, samples: readonly Sample[], data: string): Float32Array {
  if (samples[0]?.image !== undefined) return imageBatch(samples, model.inputShape);
  if (samples[0]?.features !== undefined) {
    const d = samples[0].features.length;
    const x = new Float32Array(samples.length * d);
    samples.forEach((s, i) => x.set(s.features ?? new Float32Array(d), i * d));
    return x;
  }
  throw new AntidoteError(
    "USAGE",
    `${data}: monitor init runs image and tabular models; a text model's baseline is built from its outputs (monitorBaseline in the library).`,
  );
}

function relativeTo(base: string, path: string): string {
  if (isBundledDataset(path)) return path;
  const abs = resolve(path);
  return abs.startsWith(`${base}/`) ? abs.slice(base.length + 1) : abs;
}
