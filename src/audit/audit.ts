// `auditModel`: the pipeline behind `antidote audit`. Open the ONNX model in ONNX Runtime and as
// a differentiable TF.js copy, prove the copy computes what the model computes (or refuse),
// read clean images, reverse-engineer a trigger per label (Neural Cleanse) on the model and on
// each reference with the same seed and images, decide the verdict, calibrate STRIP on the clean
// images and flag the given inputs, and, with a ledger, record one finding for the model.
import type { Dataset } from "../data/dataset.js";
import { openDataset, type OpenOptions } from "../data/open.js";
import type { JsonValue, Sample } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import type { Finding, Ledger } from "../ledger/types.js";
import { Rng } from "../math/rng.js";
import { openOnnxClassifier, type OnnxClassifier } from "../onnx/classifier.js";
import { imageBatch } from "../onnx/input.js";
import type { OnnxModelFile } from "../onnx/model-file.js";
import { checkTranslation } from "./equivalence.js";
import {
  imageShapeOf,
  neuralCleanse,
  type NeuralCleanseOptions,
  type NeuralCleanseProgress,
  type NeuralCleanseResult,
} from "./neural-cleanse.js";
import { translateOnnx, type TranslatedModel } from "./onnx-to-tf.js";
import {
  calibrateStrip,
  flaggedShare,
  stripEntropies,
  type BatchPredictor,
  type StripCalibration,
  type StripOptions,
} from "./strip.js";
import { checkSameClasses, decideVerdict, type ReferenceInversion, type Verdict } from "./verdict.js";

export const AUDIT_CHECK = "audit";
export const AUDIT_VERSION = "1.0.0";

export interface AuditOptions {
  /** Known-clean models of the same task (paths). */
  references?: readonly string[];
  /** Clean images: a path or bundled dataset name, or an opened Dataset. */
  data: string | Dataset;
  /** Read options for `data` (columns, format, split …). */
  dataReadOptions?: OpenOptions;
  /** Input shape without batch, for models with symbolic dimensions. */
  inputShape?: readonly number[];
  /** Graph output holding the class scores. */
  output?: string;
  /** Clean images drawn (seeded reservoir sample) from `data` (default 600). */
  samples?: number;
  seed?: number;
  /** Neural Cleanse's most steps per label (default 500). */
  steps?: number;
  /** Further Neural Cleanse settings (batch size, thresholds …). */
  neuralCleanse?: Omit<NeuralCleanseOptions, "seed" | "maxSteps" | "onProgress" | "imageShape">;
  /**
   * Largest |ONNX Runtime − TF.js| accepted on the check batch before any gradient is taken
   * (default 1e-4). Loosen it only for a model whose scores are large enough that float32
   * rounding alone exceeds it; the report records the difference found either way.
   */
  translationTolerance?: number;
  /** Verdict thresholds. */
  ratio?: number;
  minAsr?: number;
  /** STRIP: false to skip it; otherwise its options, and `inputs` (a dataset) to flag. */
  strip?: false | (StripOptions & { inputs?: string | Dataset; inputsReadOptions?: OpenOptions });
  /** Record one finding for the model. */
  ledger?: Ledger;
  /**
   * Inversions computed by earlier audits, reused when the model (by digest), the seed, the data,
   * the sample count and the inversion settings are the same; new ones are added.
   */
  inversionCache?: Map<string, NeuralCleanseResult>;
  onStage?: (stage: AuditStage) => void;
  onInversion?: (p: NeuralCleanseProgress & { model: string; index: number; of: number }) => void;
}

export type AuditStage = "open" | "data" | "invert" | "verdict" | "strip" | "ledger";

/** What the audit knows about one model file. */
export interface AuditedModel {
  path: string;
  digest: string;
  opset: number;
  inputShape: number[];
  numClasses: number;
  /** Class names from the model's metadata, if it carries them. */
  classes: string[] | null;
  outputName: string;
  outputIsProbabilities: boolean;
  /** Operators of the translated graph. */
  ops: string[];
  /** Largest |ONNX Runtime − TF.js| on the check batch. */
  translationMaxAbsDiff: number;
  warnings: string[];
}

export interface StripInputsResult {
  name: string;
  ids: string[];
  entropies: Float64Array;
  flagged: number;
  flaggedRate: number;
}

export interface StripReport {
  calibration: StripCalibration;
  /** Clean images overlaid on the inputs. */
  backgroundImages: number;
  inputs: StripInputsResult | null;
}

export interface AuditReport {
  model: AuditedModel;
  references: AuditedModel[];
  data: {
    name: string;
    format: string;
    /** Samples read from the dataset (those with an image). */
    imagesRead: number;
    /** Images used (the reservoir sample). */
    used: number;
    /** Of those, images whose label maps to a model class. */
    labeled: number;
    /** [C, H, W] the triggers are reversed in. */
    imageShape: [number, number, number];
  };
  /** Class names in output order (the model's, else the dataset's when the counts agree), or null. */
  classes: string[] | null;
  inversion: NeuralCleanseResult;
  referenceInversions: ReferenceInversion[];
  verdict: Verdict;
  strip: StripReport | null;
  ledger: { location: string; findings: number; event: number | null } | null;
  seed: number;
  timings: { stage: AuditStage; seconds: number }[];
  seconds: number;
}

interface OpenedModel {
  file: OnnxModelFile;
  info: AuditedModel;
  translated: TranslatedModel;
  runtime: OnnxClassifier;
}

const DEFAULT_SAMPLES = 600;
const CHECK_SAMPLES = 64;
/** The issue's bar for trusting the differentiable copy. */
export const DEFAULT_TRANSLATION_TOLERANCE = 1e-4;

/** Audit an ONNX classifier for backdoors; see the module comment. */
export async function auditModel(modelPath: string, options: AuditOptions): Promise<AuditReport> {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const timings: AuditReport["timings"] = [];
  const stage = async <T>(name: AuditStage, fn: () => Promise<T>): Promise<T> => {
    options.onStage?.(name);
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings.push({ stage: name, seconds: round3((performance.now() - t0) / 1000) });
    }
  };
  const sampleCount = options.samples ?? DEFAULT_SAMPLES;
  if (!Number.isInteger(sampleCount) || sampleCount < 20)
    throw new AntidoteError("USAGE", `--samples: must be a whole number of at least 20, got ${sampleCount}.`);
  const tolerance = options.translationTolerance ?? DEFAULT_TRANSLATION_TOLERANCE;
  if (!(tolerance >= 0) || !Number.isFinite(tolerance))
    throw new AntidoteError("USAGE", `--tolerance: must be a finite number ≥ 0, got ${tolerance}.`);

  const opened: OpenedModel[] = [];
  try {
    // Open every model first: a bad reference should fail before minutes of optimisation.
    const model = await stage("open", async () => {
      const m = await openModel(modelPath, options);
      opened.push(m);
      for (const ref of options.references ?? []) {
        const r = await openModel(ref, options);
        opened.push(r);
        checkSameClasses(
          { path: modelPath, numClasses: m.info.numClasses },
          { path: ref, numClasses: r.info.numClasses },
        );
      }
      return m;
    });
    const references = opened.slice(1);

    const data = await stage("data", () => readCleanImages(options, sampleCount, seed));
    // Fails with MODEL_FORMAT naming the first image whose shape does not fit the model.
    const x = imageBatch(data.samples, model.info.inputShape);
    // Triggers live in image space ([C, H, W] of the data); each model gets its own layout.
    const first = (data.samples[0] as Sample).image as NonNullable<Sample["image"]>;
    const imageShape = imageShapeOf(model.translated, [first.channels, first.height, first.width]);
    const images = imageBatch(data.samples, imageShape);
    const classes = classNames(model.info, data.classes);
    const labels = mapLabels(data.samples, model.info, data.classes);

    // The translation must compute what ONNX Runtime computes, or the gradients are of another model.
    const check = Math.min(CHECK_SAMPLES, data.samples.length);
    for (const m of opened) {
      const batch = imageBatch(data.samples.slice(0, check), m.info.inputShape);
      const { maxAbsDiff } = await checkTranslation(m.file, m.translated, batch, check, tolerance);
      m.info.translationMaxAbsDiff = maxAbsDiff;
    }

    // Same model, images and settings ⇒ the same inversion (it is deterministic for a seed).
    const settings = JSON.stringify([
      seed,
      sampleCount,
      data.name,
      options.steps ?? null,
      options.neuralCleanse ?? {},
    ]);
    const invert = async (m: OpenedModel, index: number): Promise<NeuralCleanseResult> => {
      const key = `${m.info.digest} ${settings}`;
      const cached = options.inversionCache?.get(key);
      if (cached !== undefined) return cached;
      const result = await neuralCleanse(
        m.translated,
        { x: images, n: data.samples.length, labels },
        {
          ...options.neuralCleanse,
          imageShape,
          seed,
          ...(options.steps !== undefined ? { maxSteps: options.steps } : {}),
          onProgress: (p) => options.onInversion?.({ ...p, model: m.info.path, index, of: opened.length }),
        },
      );
      options.inversionCache?.set(key, result);
      return result;
    };
    const { inversion, referenceInversions } = await stage("invert", async () => {
      const own = await invert(model, 0);
      const refs: ReferenceInversion[] = [];
      for (const [i, r] of references.entries())
        refs.push({ name: r.info.path, result: await invert(r, i + 1) });
      return { inversion: own, referenceInversions: refs };
    });

    const verdict = await stage("verdict", () =>
      Promise.resolve(
        decideVerdict(
          inversion,
          referenceInversions,
          {
            ...(options.ratio !== undefined ? { ratio: options.ratio } : {}),
            ...(options.minAsr !== undefined ? { minAsr: options.minAsr } : {}),
          },
          classes ?? undefined,
        ),
      ),
    );

    const strip =
      options.strip === false
        ? null
        : await stage("strip", () =>
            runStrip(
              model,
              x,
              data.samples.length,
              options.strip === false ? {} : (options.strip ?? {}),
              seed,
            ),
          );

    const report: AuditReport = {
      model: model.info,
      references: references.map((r) => r.info),
      data: {
        name: data.name,
        format: data.format,
        imagesRead: data.imagesRead,
        used: data.samples.length,
        labeled: labels.filter((y) => y >= 0).length,
        imageShape,
      },
      classes,
      inversion,
      referenceInversions,
      verdict,
      strip,
      ledger: null,
      seed,
      timings,
      seconds: 0,
    };
    if (options.ledger !== undefined) {
      const ledger = options.ledger;
      report.ledger = await stage("ledger", async () => {
        const events = await ledger.append([{ kind: "finding.recorded", payload: auditFinding(report) }]);
        return { location: ledger.location, findings: 1, event: events[0]?.seq ?? null };
      });
    }
    report.seconds = round3((performance.now() - started) / 1000);
    return report;
  } finally {
    for (const m of opened) {
      m.translated.dispose();
      await m.runtime.close();
    }
  }
}

/** The one finding an audit records about the model (see the module comment of verdict.ts for the rule). */
export function auditFinding(report: AuditReport): Finding {
  const v = report.verdict;
  // Score: the strongest label's reference ratio (how many times smaller its trigger is than in
  // every reference), or its MAD anomaly index without references. Higher is more suspicious.
  const strengths = v.labels
    .filter((l) => l.asr >= v.thresholds.minAsr)
    .map((l) => (v.method === "reference" ? (l.ratio ?? 0) : l.anomalyIndex))
    .filter(Number.isFinite);
  const score = strengths.length > 0 ? Math.max(0, ...strengths) : 0;
  return {
    subjectType: "model",
    subjectId: report.model.digest,
    kind: v.backdoor ? "backdoor-suspected" : "backdoor-audit-clean",
    score: round6(score),
    evidence: {
      path: report.model.path,
      method: v.method,
      note: v.note,
      suspected: v.suspected.map((l) => ({
        label: l.label,
        className: l.className,
        l1: round6(l.l1),
        referenceL1: l.referenceL1 === null ? null : round6(l.referenceL1),
        ratio: finiteOrNull(l.ratio),
        anomalyIndex: finiteOrNull(l.anomalyIndex),
        asr: round6(l.asr),
      })),
      references: report.references.map((r) => ({ path: r.path, digest: r.digest })),
      thresholds: v.thresholds,
      data: report.data.name,
      images: report.data.used,
      seed: report.seed,
      strip:
        report.strip === null
          ? null
          : {
              threshold: round6(report.strip.calibration.threshold),
              frr: report.strip.calibration.frr,
              inputs: report.strip.inputs?.name ?? null,
              flagged: report.strip.inputs?.flagged ?? null,
            },
    } satisfies Record<string, JsonValue>,
    check: AUDIT_CHECK,
    checkVersion: AUDIT_VERSION,
  };
}

// ---------------------------------------------------------------------------------------------
// Models.

async function openModel(path: string, options: AuditOptions): Promise<OpenedModel> {
  const shape = options.inputShape !== undefined ? { inputShape: options.inputShape } : {};
  const output = options.output !== undefined ? { output: options.output } : {};
  const runtime = await openOnnxClassifier(path, { ...shape, ...output });
  const file = runtime.file;
  let translated: TranslatedModel;
  try {
    translated = await translateOnnx(file, { ...shape, ...output });
  } catch (e) {
    await runtime.close();
    throw e;
  }
  return {
    file,
    runtime,
    translated,
    info: {
      path,
      digest: file.digest,
      opset: file.opset,
      inputShape: [...runtime.inputShape],
      numClasses: runtime.numClasses,
      classes: runtime.modelClasses,
      outputName: runtime.outputName,
      outputIsProbabilities: runtime.outputIsProbabilities,
      ops: translated.ops,
      translationMaxAbsDiff: NaN,
      warnings: [...runtime.warnings],
    },
  };
}

function classNames(model: AuditedModel, dataClasses: string[] | undefined): string[] | null {
  if (model.classes !== null && model.classes.length === model.numClasses) return model.classes;
  if (dataClasses !== undefined && dataClasses.length === model.numClasses) return dataClasses;
  return null;
}

/** Each image's class as a model output index: by the model's class names, else the dataset's order, else an integer label; −1 when none fits. */
function mapLabels(
  samples: readonly Sample[],
  model: AuditedModel,
  dataClasses: string[] | undefined,
): Int32Array {
  const byName = new Map((model.classes ?? []).map((c, i) => [c, i]));
  const byData =
    dataClasses !== undefined && dataClasses.length === model.numClasses
      ? new Map(dataClasses.map((c, i) => [c, i]))
      : new Map<string, number>();
  return Int32Array.from(samples, (s) => {
    const label = s.label;
    if (label === null) return -1;
    const named = byName.get(label) ?? byData.get(label);
    if (named !== undefined) return named;
    const k = /^\d+$/.test(label) ? Number(label) : -1;
    return k < model.numClasses ? k : -1;
  });
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---------------------------------------------------------------------------------------------
// Data.

interface CleanData {
  name: string;
  format: string;
  classes: string[] | undefined;
  imagesRead: number;
  samples: Sample[];
}

/** A seeded reservoir sample of the dataset's images (Algorithm R), in reading order. */
async function readCleanImages(options: AuditOptions, k: number, seed: number): Promise<CleanData> {
  const dataset =
    typeof options.data === "string"
      ? await openDataset(options.data, options.dataReadOptions ?? {})
      : options.data;
  const name = typeof options.data === "string" ? options.data : dataset.info.path;
  const rng = new Rng(`${seed}:data`);
  const kept: { at: number; sample: Sample }[] = [];
  let seen = 0;
  let withoutImage = 0;
  for await (const sample of dataset.samples()) {
    if (sample.image === undefined) {
      withoutImage++;
      // A text or tabular dataset: say so after a few rows instead of reading it all.
      if (seen === 0 && withoutImage >= 32) break;
      continue;
    }
    if (kept.length < k) kept.push({ at: seen, sample });
    else {
      const j = rng.int(seen + 1);
      if (j < k) kept[j] = { at: seen, sample };
    }
    seen++;
  }
  if (seen === 0)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `--data ${name}: has no images (${dataset.info.format}${withoutImage > 0 ? `, ${withoutImage}+ samples without an image` : ", no samples"}); the audit needs clean images like the model's inputs.`,
    );
  if (seen < 20)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `--data ${name}: has only ${seen} images; the audit needs at least 20 clean images.`,
    );
  kept.sort((a, b) => a.at - b.at);
  return {
    name,
    format: dataset.info.format,
    classes: dataset.info.classes,
    imagesRead: seen,
    samples: kept.map((e) => e.sample),
  };
}

// ---------------------------------------------------------------------------------------------
// STRIP.

async function runStrip(
  model: OpenedModel,
  x: Float32Array,
  n: number,
  options: StripOptions & { inputs?: string | Dataset; inputsReadOptions?: OpenOptions },
  seed: number,
): Promise<StripReport> {
  const predict: BatchPredictor = async (batch, count) => (await model.runtime.run(batch, count)).probs;
  const size = sizeOf(model.info.inputShape);
  // Half the clean images are overlays, the other half calibrate the threshold.
  const half = Math.floor(n / 2);
  const background = { x: x.subarray(0, half * size), n: half };
  const clean = { x: x.subarray(half * size, n * size), n: n - half };
  const { inputs, inputsReadOptions, ...stripOptions } = options;
  const o = { ...stripOptions, seed: options.seed ?? seed };
  const calibration = await calibrateStrip(predict, clean, background, o);
  let result: StripInputsResult | null = null;
  if (inputs !== undefined) {
    const dataset = typeof inputs === "string" ? await openDataset(inputs, inputsReadOptions ?? {}) : inputs;
    const name = typeof inputs === "string" ? inputs : dataset.info.path;
    const ids: string[] = [];
    const parts: Float64Array[] = [];
    let chunk: Sample[] = [];
    const flush = async () => {
      if (chunk.length === 0) return;
      const batch = imageBatch(chunk, model.info.inputShape);
      parts.push(
        await stripEntropies(predict, { x: batch, n: chunk.length }, background, {
          ...o,
          seed: o.seed + parts.length + 1,
        }),
      );
      chunk = [];
    };
    for await (const sample of dataset.samples()) {
      if (sample.image === undefined)
        throw new AntidoteError(
          "INPUT_FORMAT",
          `--inputs ${name}: sample "${sample.id}" has no image; STRIP checks image inputs.`,
        );
      ids.push(sample.id);
      chunk.push(sample);
      if (chunk.length >= 256) await flush();
    }
    await flush();
    if (ids.length === 0)
      throw new AntidoteError("INPUT_FORMAT", `--inputs ${name}: has no images to screen.`);
    const entropies = new Float64Array(ids.length);
    let at = 0;
    for (const p of parts) {
      entropies.set(p, at);
      at += p.length;
    }
    const rate = flaggedShare(entropies, calibration.threshold);
    result = { name, ids, entropies, flagged: Math.round(rate * ids.length), flaggedRate: rate };
  }
  return { calibration, backgroundImages: half, inputs: result };
}

function finiteOrNull(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : round6(x);
}

function round3(x: number): number {
  return Math.round(x * 1e3) / 1e3;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
