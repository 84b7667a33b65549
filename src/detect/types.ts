// The contract of detect/: what a scan knows about the dataset (ScanTable), what every
// detector returns (DetectorResult), and the shape they share. Detectors are independent —
// each reads the table and returns per-sample scores plus findings — and per-sample or
// per-source risk is combined from their results by the ensemble, never by one detector
// reaching into another (DESIGN.md).
import type { ImageSketches } from "../data/image-sketch.js";
import type { Finding } from "../ledger/types.js";

/** One annotation of one sample by one annotator, labels as class indices. */
export interface ScanAnnotation {
  annotator: string;
  label: number;
}

/**
 * The dataset as the detectors see it: n samples in dataset order. Only `ids`, `digests`,
 * `labels` and `classes` are always present; each detector says which optional parts it
 * needs (`appliesTo`).
 */
export interface ScanTable {
  /** The dataset's own sample ids (shown to users). */
  ids: string[];
  /** Content digests (Sample.digest): the subject of sample findings in the ledger. */
  digests: string[];
  /** Given label of each sample as an index into `classes`; −1 for unlabeled. */
  labels: Int32Array;
  classes: string[];
  /** The source each sample came from (provenance or a source column), null when unknown. */
  sources?: (string | null)[];
  /** Several annotations per sample (crowd or contractor labels), when the data has them. */
  annotations?: ScanAnnotation[][];
  /**
   * The images, for image datasets: every sample's image shape, and its 8-bit pixels where the
   * scan kept them (data/image-sketch.ts: small images always; larger ones only when the scan's
   * own pixel models need them, then possibly reduced).
   */
  images?: ImageSketches;
  /** Raw text, for text datasets. */
  texts?: string[];
  /** Dense representation, row-major n × featureDims: penultimate-layer activations of a model. */
  features?: Float32Array;
  featureDims?: number;
  /**
   * The same representation from models trained from other random starts (each n × featureDims),
   * when the scan trained its own: detectors whose verdict hangs on one model's random start
   * (SPECTRE) test each of them.
   */
  featureReplicates?: Float32Array[];
  /** Out-of-sample predicted probabilities, row-major n × classes.length (each row sums to 1). */
  probs?: Float32Array;
}

/** A detector's verdict on the whole table. */
export interface DetectorResult {
  /** The detector's name ("confident-learning", "spectral-signature", …), also the Finding `check`. */
  detector: string;
  version: string;
  /** Per-sample suspicion, higher = more suspicious, NaN where the detector has no opinion. */
  scores: Float64Array;
  /** Per-sample decision at the detector's own data-driven threshold (1 = flagged). */
  flagged: Uint8Array;
  /** The threshold applied to `scores`, and how it was chosen (in words, for the report). */
  threshold: { value: number; method: string };
  /** One Finding per flagged sample (subjectType "sample", subjectId = digest, evidence has the id and why),
   * plus findings on other subjects the detector itself establishes (e.g. an annotator, a trigger token). */
  findings: Finding[];
  /** Detector-level evidence for the report (per-class statistics, tokens, clusters …), plain JSON. */
  summary: Record<string, unknown>;
  /** Things the user must know: skipped classes, degraded modes ("class Bag has 4 samples: skipped"). */
  warnings: string[];
}

export interface Detector<Options = Record<string, never>> {
  name: string;
  version: string;
  /** null when the detector can run on this table, else why not (reported as "skipped: …"). */
  appliesTo(table: ScanTable): string | null;
  run(table: ScanTable, options?: Partial<Options>): DetectorResult;
}
