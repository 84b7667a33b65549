// The audit's verdict from the reversed triggers: which labels, if any, look like a backdoor's
// target. A reference model (the same task, known clean) is the strong test: a backdoor makes
// its label's trigger several times smaller than the same label's trigger in every reference,
// while a label that is naturally easy to reach (Bag in Fashion-MNIST) is small in the
// references too and is not flagged. Without a reference only the MAD anomaly index of Wang et
// al. remains, which also flags labels whose natural trigger is small; the verdict says so.
import { AntidoteError } from "../errors.js";
import { MAD_THRESHOLD, type NeuralCleanseResult } from "./neural-cleanse.js";

export interface VerdictOptions {
  /** A label is suspected when every reference needs at least this many times its mask norm (default 3). */
  ratio?: number;
  /**
   * …and its reversed trigger turns at least this share of held-out clean images (default 0.8).
   * A sanity gate, not the test: the inversion keeps the smallest mask that reached 0.9 on its
   * own batches, and such masks transfer to held-out images at 0.85–0.97 on the bench's models.
   */
  minAsr?: number;
  /** Without references: the MAD anomaly index above which a label is suspected (default 2). */
  madThreshold?: number;
}

/** A reference model's inversion, run with the same seed on the same images. */
export interface ReferenceInversion {
  /** How the user named it (its path). */
  name: string;
  result: NeuralCleanseResult;
}

export interface LabelVerdict {
  label: number;
  className: string | null;
  /** The model's mask norm ‖m‖₁ for this label. */
  l1: number;
  /** Held-out attack success rate of the model's reversed trigger. */
  asr: number;
  /** MAD anomaly index among the model's labels (positive: smaller than the median). */
  anomalyIndex: number;
  /** Smallest mask norm any reference needed for this label; null without references. */
  referenceL1: number | null;
  /** referenceL1 / l1; null without references. */
  ratio: number | null;
  suspected: boolean;
}

export interface Verdict {
  method: "reference" | "mad";
  /** One sentence on what the method can and cannot tell. */
  note: string;
  /** Whether any label is suspected. */
  backdoor: boolean;
  /** Suspected labels, strongest first (by ratio, or by anomaly index without references). */
  suspected: LabelVerdict[];
  /** Every audited label, in label order. */
  labels: LabelVerdict[];
  thresholds: { ratio: number; minAsr: number; madThreshold: number };
  references: string[];
}

export const VERDICT_DEFAULTS = { ratio: 3, minAsr: 0.8, madThreshold: MAD_THRESHOLD } as const;

export const NO_REFERENCE_NOTE =
  "no reference: MAD index only, which flags labels with naturally small triggers";
export const REFERENCE_NOTE =
  "a label is suspected when every reference model needs a trigger several times larger for it";

/** Decide which labels of `model` look backdoored, against the references when there are any. */
export function decideVerdict(
  model: NeuralCleanseResult,
  references: readonly ReferenceInversion[],
  options: VerdictOptions = {},
  classNames?: readonly string[],
): Verdict {
  const thresholds = {
    ratio: options.ratio ?? VERDICT_DEFAULTS.ratio,
    minAsr: options.minAsr ?? VERDICT_DEFAULTS.minAsr,
    madThreshold: options.madThreshold ?? VERDICT_DEFAULTS.madThreshold,
  };
  const method = references.length > 0 ? "reference" : "mad";
  const labels = model.triggers.map((t, i): LabelVerdict => {
    const refs = references.map((r) => r.result.triggers.find((x) => x.label === t.label)?.l1);
    const known = refs.filter((v): v is number => v !== undefined && Number.isFinite(v));
    const referenceL1 = method === "reference" && known.length === refs.length ? Math.min(...known) : null;
    const ratio = referenceL1 === null ? null : t.l1 > 0 ? referenceL1 / t.l1 : Infinity;
    const anomalyIndex = model.anomaly.index[i] as number;
    const strongEnough = t.asr >= thresholds.minAsr;
    const suspected =
      strongEnough &&
      (method === "reference"
        ? ratio !== null && ratio >= thresholds.ratio
        : anomalyIndex > thresholds.madThreshold);
    return {
      label: t.label,
      className: classNames?.[t.label] ?? null,
      l1: t.l1,
      asr: t.asr,
      anomalyIndex,
      referenceL1,
      ratio,
      suspected,
    };
  });
  const strength = (v: LabelVerdict) => (method === "reference" ? (v.ratio ?? 0) : v.anomalyIndex);
  const suspected = labels.filter((v) => v.suspected).sort((a, b) => strength(b) - strength(a));
  return {
    method,
    note: method === "reference" ? REFERENCE_NOTE : NO_REFERENCE_NOTE,
    backdoor: suspected.length > 0,
    suspected,
    labels,
    thresholds,
    references: references.map((r) => r.name),
  };
}

/** A reference must solve the same task: the same number of classes. MODEL_FORMAT names both. */
export function checkSameClasses(
  model: { path: string; numClasses: number },
  reference: { path: string; numClasses: number },
): void {
  if (model.numClasses !== reference.numClasses)
    throw new AntidoteError(
      "MODEL_FORMAT",
      `--reference ${reference.path}: has ${reference.numClasses} classes, but the audited model ${model.path} has ${model.numClasses}; a reference must be a model of the same task.`,
    );
}
