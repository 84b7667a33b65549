// `scanDataset`: the pipeline behind `antidote scan`. Stream the samples once into a ScanTable —
// with the user's model, through ONNX Runtime batch by batch as they are read, so that no image
// outlives its batch (scan/read.ts) — build what the detectors need (the user's features and
// probabilities, or proxies), run every registered detector that applies (the others are
// reported as skipped, with why), combine their results into one risk per sample with
// per-class, per-source and per-annotator aggregates, and, given a ledger, record the findings
// in one append. A second pass reads only the flagged images shown as thumbnails. The input is
// only read. A sharded scan hands in the model's outputs, computed by workers and merged
// (scan/shard.ts), and the read then runs no model.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset } from "../data/dataset.js";
import { PROXY_IMAGES, SMALL_IMAGES_ONLY } from "../data/image-sketch.js";
import type { JsonValue } from "../data/sample.js";
import { confidentLearning } from "../detect/confident-learning.js";
import { dawidSkene } from "../detect/dawid-skene.js";
import { nearDuplicates } from "../detect/near-duplicates.js";
import { triggerPatches } from "../detect/trigger-patches.js";
import { triggerTokens } from "../detect/trigger-tokens.js";
import type { Detector, DetectorResult, ScanTable } from "../detect/types.js";
import { labelsFromAnnotations, type LabelOrigin } from "./consensus-labels.js";
import { parseOptions } from "../features/options.js";
import type { Finding, Ledger } from "../ledger/types.js";
import { merkleRoot } from "../provenance/merkle.js";
import {
  EXCLUSION_CHECK_VERSION,
  exclusionCheck,
  hasCheckedFlags,
  type ExclusionCheckSummary,
} from "../detect/exclusion-check.js";
import { combineResults, type EnsembleOptions, type EnsembleResult } from "./ensemble.js";
import { buildPreviews, type SamplePreview } from "./previews.js";
import type { PrecomputedModelOutputs } from "./precomputed.js";
import { readForScan } from "./read.js";
import {
  buildRepresentation,
  checkModelFile,
  IMAGE_PROXIES,
  modelRunOptions,
  modelSuperseded,
  type Representation,
  type RepresentationSummary,
} from "./representation.js";

export type { SamplePreview } from "./previews.js";
import { spectre } from "../detect/spectre.js";
import { spectralSignature } from "../detect/spectral-signature.js";
import { activationClustering } from "../detect/activation-clustering.js";
import { featureOutliers } from "../detect/feature-outliers.js";
import { enforcePolicy, scanCoverageEvent } from "../policy/enforce.js";

export const SCAN_CHECK = "scan";
export const SCAN_VERSION = "1.0.0";

/** A detector the scan runs, with how far its flags are trusted and the options it gets. */
export interface RegisteredDetector {
  detector: Pick<Detector, "name" | "version" | "appliesTo"> & {
    run(table: ScanTable, options?: Record<string, unknown>): DetectorResult;
  };
  /**
   * ρ: the chance that one of its flags is a real finding — its precision measured on the bench
   * (test/detect/*), conservatively rounded down. Used by the ensemble's noisy-OR risk.
   */
  reliability: number;
  /** Options derived from the scan's own (seed …) and from where the representation came from. */
  options?: (context: {
    seed: number;
    representation: RepresentationSummary;
    classes: number;
  }) => Record<string, unknown>;
}

/**
 * Every detector the scan knows, in the order they run. Adding one is one line here; each decides
 * for itself whether it applies to a dataset (`appliesTo`).
 */
export const DETECTORS: readonly RegisteredDetector[] = [
  // Measured precision 0.91–0.94 on 25% flips from one of five SpamAssassin suppliers.
  {
    detector: confidentLearning,
    reliability: 0.85,
    // With 5+ classes, the selection that separates a model's own confusions from flips
    // (noise-structure, see confident-learning.ts): on 12k Fashion-MNIST with the pixel proxy, plain
    // confident learning flagged 7.4% of the clean set (the proxy is confidently wrong on shirts,
    // pullovers and coats), a bar of p(label) < 0.5% still 0.4% and found 37% of 10% random flips;
    // noise-structure flags none of the clean set and finds 83% of the flips at precision 0.82; with the
    // MLP + CNN proxy (proxy-image-cnn.ts), the cells counting up to a Poisson quantile of the floor and
    // that many taken across cells, 90% at precision 0.89 (confident learning's own flags; 92–93% at
    // 0.86 on two other 12k slices; 94% at 0.90 on all 60k).
    // A model's probabilities on its own training data are not out-of-sample: it has learned part of
    // the flips and is overconfident elsewhere (a CNN 90% accurate on its 12k training images made
    // plain confident learning flag 3.2% of the clean set, noise-structure 0.55%); their flags stand
    // only where p(label) < 0.5% (0.09%), which finds 35% of 10% flips. Averaged with a k-fold
    // linear probe on the model's penultimate features ("model-and-probe", see representation.ts)
    // they are out of sample enough for noise-structure: clean 0 flagged, 10% flips 0.84 / 0.86.
    // With fewer than 5 classes there are too few cells for a floor: confident learning's own
    // selection, with the same bar for the pixel proxy and a model's averaged probabilities.
    options: ({ representation, classes }) => {
      const kind = representation.probabilities?.kind;
      if (kind === "model") return { maxSelfConfidence: 0.005 };
      if (classes >= 5) return { filterBy: "noise-structure" };
      return kind === "image-proxy" || kind === "model-and-probe" ? { maxSelfConfidence: 0.005 } : {};
    },
  },
  // Measured > 0.95 on a malicious annotator among six.
  { detector: dawidSkene, reliability: 0.95 },
  // Measured ≥ 0.9 on one-token and phrase triggers at 1% of SpamAssassin.
  { detector: triggerTokens, reliability: 0.9 },
  // The image counterpart, on pixels (its own pixel model, whatever the representation): a fixed
  // pattern whose images look like another class without it. Measured on 0.5–1% 3×3 patches in 12k
  // Fashion-MNIST: precision 0.97–1.00, recall 0.92–0.97 (all 60k: 0.92–0.97 / 0.91–0.96); 0 flagged
  // on the clean images (12k and 60k), on 10% flips and on a 2% blend. It sees patches the user's
  // model has learned so well that its features hold no separate mode (a CNN trained on 0.5% patched
  // images: SPECTRE and activation clustering flagged none).
  { detector: triggerPatches, reliability: 0.9, options: ({ seed }) => ({ seed }) },
  // Measured ≥ 0.9 on a 120-copy campaign in SpamAssassin.
  { detector: nearDuplicates, reliability: 0.9, options: ({ seed }) => ({ seed }) },
  // Measured precision ≥ 0.98, recall 0.93–0.99 on 0.5–1% 3×3 patches in 12k Fashion-MNIST (MLP proxy features).
  { detector: spectre, reliability: 0.9 },
  // Finds nothing on those patches with the proxy's features; kept as evidence for deeper user features.
  { detector: spectralSignature, reliability: 0.5 },
  // Calibrated on the dataset's own classes: flags no clean class; catches a 300-sample relabelled cluster.
  { detector: activationClustering, reliability: 0.6 },
  // kNN isolation and robust Mahalanobis distance within each class, each against the class's own
  // tail: 0 flagged on clean 12k Fashion-MNIST (proxy and model features), and no bench variant's
  // flags changed with it; it is there for what the others do not look for, samples foreign to
  // their class (15 planted extreme activations: 10–15 found, ≤ 1 false). 0.6–1 s at 12k, 7.8 s
  // at 60k with a CNN's features. Its neighbour-label pass is off in
  // the scan: confident learning judges labels on out-of-sample probabilities, which the scan
  // always has when there are labels, and that pass is an exact n² search (57 s at 60k) that
  // flagged none of 10 % random flips on the model's features.
  {
    detector: featureOutliers,
    reliability: 0.6,
    options: () => ({ neighbourLabels: false }),
  },
];

export const scanOptionsSchema = z.object({
  features: z.string().min(1).optional(),
  predProbs: z.string().min(1).optional(),
  model: z.string().min(1).optional(),
  /** The model's input shape without batch, when the model leaves it symbolic (--input-shape). */
  inputShape: z.array(z.number().int().min(1)).min(1).optional(),
  /** The model output holding the class scores, when it has several (--output). */
  output: z.string().min(1).optional(),
  /** Average the model's probabilities over one-pixel shifts of each image (see RepresentationOptions.shiftedViews). */
  shiftedViews: z.boolean().default(true),
  /** Run only these detectors (names as in DETECTORS). */
  detectors: z.array(z.string().min(1)).min(1).optional(),
  seed: z.number().int().default(0),
  /** The built-in image proxy's probabilities (see RepresentationOptions.imageProxy). */
  imageProxy: z.enum(IMAGE_PROXIES).default(IMAGE_PROXIES[0]),
  /** Flagged samples given a preview (image thumbnail or text excerpt) for the HTML report. */
  previews: z.number().int().min(0).max(100_000).default(500),
  /**
   * Samples per model inference batch: with a model, the most samples the scan holds at once
   * (default: 1,024, fewer for large inputs so that a batch is at most 16M values).
   */
  batchSize: z.number().int().min(1).max(65_536).optional(),
});

export interface ScanOptions extends z.input<typeof scanOptionsSchema> {
  /**
   * The user's model's outputs computed elsewhere — its shards run by workers and merged
   * (scan/shard.ts, scan/shard-merge.ts) — used instead of running `model`, which must then be
   * left out: the scan reads the dataset for ids, labels, digests and image sketches only, and
   * refuses outputs computed for other samples (DIGEST_MISMATCH).
   */
  modelOutputs?: PrecomputedModelOutputs;
  /** Record findings here (one append). */
  ledger?: Ledger;
  ensemble?: EnsembleOptions;
  /** Per-detector option overrides, by detector name. */
  detectorOptions?: Record<string, Record<string, unknown>>;
  /** Called when a stage starts (for progress on a terminal). */
  onStage?: (stage: string) => void;
  /** Called with the number of samples read so far. */
  onSample?: (count: number) => void;
  /**
   * Progress of model inference over the samples, which runs as they are read: done of total
   * (DatasetInfo.count when the format tells it up front, else the samples read so far).
   */
  onProgress?: (done: number, total: number) => void;
  /** Defaults to the registry; tests and library users may pass their own list. */
  registry?: readonly RegisteredDetector[];
}

export interface StageTiming {
  stage: string;
  seconds: number;
}

export interface ScanReport {
  dataset: {
    path: string;
    format: string;
    samples: number;
    labeled: number;
    /** "consensus" when the dataset had only annotations and the detectors read their consensus. */
    labelOrigin: LabelOrigin;
    classes: string[];
    content: string[];
    sources: number;
    annotators: number;
    /** Merkle root over the sorted unique sample digests (a ledger version's merkleRoot). */
    merkleRoot: string;
  };
  representation: RepresentationSummary;
  table: ScanTable;
  results: (DetectorResult & { seconds: number })[];
  /**
   * The exclusion check of the spectral detectors' minor modes (detect/exclusion-check.ts); null
   * when they flagged nothing. `groups` is empty when no model could be trained (see `from`).
   */
  exclusionCheck: ExclusionCheckSummary | null;
  skipped: { detector: string; reason: string }[];
  ensemble: EnsembleResult;
  /** Per flagged sample (index into the table): each detector's finding evidence. */
  evidence: Map<number, Record<string, Record<string, unknown>>>;
  previews: Map<number, SamplePreview>;
  timings: StageTiming[];
  seconds: number;
  ledger: {
    location: string;
    findings: number;
    /** Sequence numbers of the first and last recorded event. */
    events: [number, number] | null;
    /** Ledger dataset versions whose samples are exactly this dataset's. */
    datasetVersions: string[];
  } | null;
  warnings: string[];
}

/**
 * Scan a dataset for poisoning. Reads it once, holding at most one batch of samples at a time
 * (`batchSize`, with a model), and a second time for the flagged images it shows; never writes to
 * it. What it keeps per sample: ids, digests, labels, sources, annotations and texts; the model's
 * features and probabilities; images' 8-bit pixels only where the scan's own pixel models or
 * trigger-patches read them (data/image-sketch.ts).
 */
export async function scanDataset(dataset: Dataset, options: ScanOptions = {}): Promise<ScanReport> {
  const opts = parseOptions(scanOptionsSchema, options, "scan options");
  const registry = options.registry ?? DETECTORS;
  const wanted = selectDetectors(registry, opts.detectors);
  const started = performance.now();
  const timings: StageTiming[] = [];
  const stage = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
    options.onStage?.(name);
    const t = performance.now();
    const out = await fn();
    timings.push({ stage: name, seconds: round3((performance.now() - t) / 1000) });
    return out;
  };
  // Before reading anything: a missing or broken model fails at once.
  if (opts.model !== undefined) checkModelFile(opts.model);
  const modelOutputs = options.modelOutputs;
  if (modelOutputs !== undefined && opts.model !== undefined)
    throw new AntidoteError(
      "USAGE",
      "scan options: give the model or its precomputed outputs (modelOutputs), not both.",
    );

  const representationOptions = {
    features: opts.features,
    predProbs: opts.predProbs,
    model: opts.model,
    modelOutputs,
    inputShape: opts.inputShape,
    output: opts.output,
    shiftedViews: opts.shiftedViews,
    batchSize: opts.batchSize,
    seed: opts.seed,
    imageProxy: opts.imageProxy,
    onStage: options.onStage,
    onProgress: options.onProgress,
  };
  // The scan's own pixel models need every image; with the user's representation only the small
  // images trigger-patches and the exclusion check read are kept (data/image-sketch.ts).
  const userRepresentation =
    opts.model !== undefined ||
    modelOutputs !== undefined ||
    opts.features !== undefined ||
    opts.predProbs !== undefined;
  const runModel = opts.model !== undefined && !modelSuperseded(opts);
  const read = await stage("read", () =>
    readForScan(dataset, {
      images: userRepresentation ? SMALL_IMAGES_ONLY : PROXY_IMAGES,
      tabular: !userRepresentation,
      ...(runModel
        ? {
            model: {
              ...modelRunOptions(representationOptions),
              path: opts.model as string,
              ...(dataset.info.classes !== undefined ? { classes: dataset.info.classes } : {}),
            },
          }
        : {}),
      ...(options.onSample !== undefined ? { onSample: options.onSample } : {}),
    }),
  );
  const { table } = read;
  const n = table.ids.length;
  if (n === 0)
    throw new AntidoteError("INPUT_FORMAT", `${dataset.info.path}: the dataset has no samples to scan.`);
  // Annotations only, no label column: the detectors read the annotators' consensus.
  const labelOrigin = await stage("consensus labels", () => labelsFromAnnotations(table));

  const representation = await stage("representation", () =>
    buildRepresentation(table, read.input, representationOptions),
  );
  if (representation.probs !== undefined) table.probs = representation.probs;
  if (representation.features !== undefined) {
    table.features = representation.features;
    table.featureDims = representation.featureDims;
    if (representation.featureReplicates !== undefined)
      table.featureReplicates = representation.featureReplicates;
  }

  const results: (DetectorResult & { seconds: number })[] = [];
  const skipped: { detector: string; reason: string }[] = [];
  for (const entry of registry) {
    const { detector } = entry;
    if (!wanted.has(detector.name)) {
      skipped.push({ detector: detector.name, reason: "not selected (--detectors)" });
      continue;
    }
    const why = detector.appliesTo(table);
    if (why !== null) {
      skipped.push({ detector: detector.name, reason: why });
      continue;
    }
    const t = performance.now();
    const result = await stage(`detector ${detector.name}`, () =>
      detector.run(table, {
        ...entry.options?.({
          seed: opts.seed,
          representation: representation.summary,
          classes: table.classes.length,
        }),
        ...options.detectorOptions?.[detector.name],
      }),
    );
    results.push({ ...result, seconds: round3((performance.now() - t) / 1000) });
  }

  const exclusion = await checkMinorModes(table, results, representation, stage);
  if (exclusion !== null) results.splice(0, results.length, ...exclusion.results);

  const reliability = Object.fromEntries(registry.map((e) => [e.detector.name, e.reliability]));
  const ensemble = await stage("ensemble", () =>
    combineResults(table, results, {
      ...options.ensemble,
      reliability: { ...reliability, ...options.ensemble?.reliability },
    }),
  );
  const evidence = sampleEvidence(table, results, ensemble.flagged);
  const previewWarnings: string[] = [];
  const previews = await stage("previews", () =>
    buildPreviews(dataset, table, ensemble, evidence, opts.previews, previewWarnings),
  );
  const root = merkleRoot([...new Set(table.digests)].sort());

  const report: ScanReport = {
    dataset: {
      path: dataset.info.path,
      format: dataset.info.format,
      samples: n,
      labeled: table.labels.reduce((a, y) => a + (y >= 0 ? 1 : 0), 0),
      labelOrigin,
      classes: table.classes,
      content: read.content,
      sources: new Set((table.sources ?? []).filter((s) => s !== null)).size,
      annotators: new Set((table.annotations ?? []).flatMap((list) => list.map((a) => a.annotator))).size,
      merkleRoot: root,
    },
    representation: representation.summary,
    table,
    results,
    exclusionCheck: exclusion?.summary ?? null,
    skipped,
    ensemble,
    evidence,
    previews,
    timings,
    seconds: 0,
    ledger: null,
    warnings: [
      ...representation.summary.warnings,
      ...results.flatMap((r) => r.warnings.map((w) => `${r.detector}: ${w}`)),
      ...ensemble.warnings.map((w) => `ensemble: ${w}`),
      ...previewWarnings,
    ],
  };
  const ledger = options.ledger;
  if (ledger !== undefined) {
    report.ledger = await stage("ledger", () => recordFindings(ledger, report));
  }
  report.seconds = round3((performance.now() - started) / 1000);
  return report;
}

// Exclusionary reclassification of the spectral detectors' flags, before the ensemble reads them.
async function checkMinorModes(
  table: ScanTable,
  results: (DetectorResult & { seconds: number })[],
  representation: Representation,
  stage: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>,
): Promise<{ results: (DetectorResult & { seconds: number })[]; summary: ExclusionCheckSummary } | null> {
  if (!hasCheckedFlags(results)) return null;
  const reclassifier = representation.reclassifier;
  if (reclassifier === undefined)
    return {
      results,
      summary: {
        from:
          "none: the scan trains a model without given samples only for images of one size whose pixels it " +
          "keeps (with a model, images of at most 32×32 pixels), so these minor modes are unchecked",
        version: EXCLUSION_CHECK_VERSION,
        excluded: 0,
        groups: [],
      },
    };
  const out = await stage("exclusion check", () => exclusionCheck(table, results, reclassifier.reclassify));
  return {
    results: out.results,
    summary: {
      from: reclassifier.from,
      version: EXCLUSION_CHECK_VERSION,
      excluded: out.excluded,
      groups: out.groups,
    },
  };
}

function selectDetectors(registry: readonly RegisteredDetector[], names: string[] | undefined): Set<string> {
  const known = registry.map((e) => e.detector.name);
  if (names === undefined) return new Set(known);
  for (const name of names)
    if (!known.includes(name))
      throw new AntidoteError(
        "USAGE",
        `--detectors: "${name}" is not a detector; known: ${known.join(", ")}.`,
      );
  return new Set(names);
}

/** Each flagged sample's evidence from the detectors' own sample findings, by detector. */
function sampleEvidence(
  table: ScanTable,
  results: readonly DetectorResult[],
  flagged: Uint8Array,
): Map<number, Record<string, Record<string, unknown>>> {
  const byId = new Map<string, number>();
  table.ids.forEach((id, i) => byId.set(id, i));
  const byDigest = new Map<string, number[]>();
  table.digests.forEach((d, i) => byDigest.set(d, [...(byDigest.get(d) ?? []), i]));
  const out = new Map<number, Record<string, Record<string, unknown>>>();
  for (const r of results)
    for (const f of r.findings) {
      if (f.subjectType !== "sample") continue;
      const id = f.evidence.id;
      const at =
        typeof id === "string" && byId.has(id) ? [byId.get(id) as number] : (byDigest.get(f.subjectId) ?? []);
      for (const i of at) {
        if (flagged[i] !== 1) continue;
        const row = out.get(i) ?? {};
        row[r.detector] = { kind: f.kind, score: f.score, ...f.evidence };
        out.set(i, row);
      }
    }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Ledger.

/**
 * The scan's findings as ledger events: one "poisoning-risk" finding per flagged sample (subject:
 * its digest; score: the ensemble risk, > 0.5; evidence: each detector's own), the detectors'
 * findings about other subjects (a trigger n-gram on the dataset, an unreliable annotator, a
 * source behind a burst), and source-risk's anomalous sources and annotators. Detectors' own
 * per-sample findings are folded into the one per-sample finding, so that every sample finding
 * the scan records is on the ensemble's scale and `quarantine --findings-over 0.5` takes exactly
 * the flagged set.
 */
export function scanFindings(report: ScanReport): Finding[] {
  const { table, ensemble } = report;
  const findings: Finding[] = [];
  const seen = new Map<string, number>();
  ensemble.flagged.forEach((f, i) => {
    if (f !== 1) return;
    const digest = table.digests[i] as string;
    const finding: Finding = {
      subjectType: "sample",
      subjectId: digest,
      kind: "poisoning-risk",
      score: round6(ensemble.risk[i] as number),
      evidence: jsonRecord({
        id: table.ids[i],
        label: labelOf(table, i),
        source: table.sources?.[i] ?? null,
        detectors: ensemble.flaggedBy[i],
        combinedEvidence: round6(ensemble.evidence[i] as number),
        expectedByChance: round6(ensemble.chance[i] as number),
        findings: report.evidence.get(i) ?? {},
      }),
      check: SCAN_CHECK,
      checkVersion: SCAN_VERSION,
    };
    // Exact duplicates share a digest: one finding per subject, the highest risk.
    const at = seen.get(digest);
    if (at === undefined) {
      seen.set(digest, findings.length);
      findings.push(finding);
    } else if (finding.score > (findings[at] as Finding).score) findings[at] = finding;
  });
  for (const r of report.results)
    for (const f of r.findings)
      if (f.subjectType !== "sample")
        findings.push({ ...f, score: finite(f.score), evidence: jsonRecord(f.evidence) });
  for (const f of ensemble.groupFindings)
    findings.push({ ...f, score: finite(f.score), evidence: jsonRecord(f.evidence) });
  return findings;
}

async function recordFindings(
  ledger: Ledger,
  report: ScanReport,
): Promise<NonNullable<ScanReport["ledger"]>> {
  const findings = scanFindings(report);
  const versions = (await ledger.listDatasetVersions())
    .filter((v) => v.merkleRoot === report.dataset.merkleRoot)
    .map((v) => v.version);
  // With the findings, which detectors scanned each version holding exactly these samples: a
  // curation policy's requiredScans reads it before export or training (policy/enforce.ts).
  const ran = report.results.map((r) => r.detector);
  const coverage = versions.map((v) => scanCoverageEvent(v, report.dataset.merkleRoot, ran));
  const toAppend = [
    ...findings.map((payload) => ({ kind: "finding.recorded" as const, payload })),
    ...coverage,
  ];
  const appended = toAppend.length === 0 ? [] : await ledger.append(toAppend);
  const events = appended.filter((e) => e.kind === "finding.recorded");
  // A policy's autoQuarantine and maxFlagRate act on findings as they are recorded.
  if (findings.length > 0) await enforcePolicy(ledger);
  return {
    location: ledger.location,
    findings: findings.length,
    events:
      events.length === 0
        ? null
        : [(events[0] as { seq: number }).seq, (events[events.length - 1] as { seq: number }).seq],
    datasetVersions: versions,
  };
}

export function labelOf(table: ScanTable, i: number): string | null {
  const y = table.labels[i] as number;
  return y >= 0 ? (table.classes[y] ?? null) : null;
}

/** Plain JSON for the ledger and report.json: non-finite numbers become null, typed arrays arrays. */
export function toJson(value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return Array.from(value as unknown as ArrayLike<number>, (v) => toJson(v));
  if (Array.isArray(value)) return value.map((v) => toJson(v));
  if (value instanceof Map) return toJson(Object.fromEntries(value));
  if (typeof value === "object") {
    // fromEntries defines own keys: a label or source named "__proto__" stays a key.
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, toJson(v)]),
    );
  }
  return null;
}

function jsonRecord(value: Record<string, unknown>): Record<string, JsonValue> {
  return toJson(value) as Record<string, JsonValue>;
}

// A finding's score must be a number the ledger can store; overwhelming evidence stays large.
function finite(x: number): number {
  return Number.isFinite(x) ? x : x > 0 ? Number.MAX_VALUE : 0;
}

function round3(x: number): number {
  return Math.round(x * 1e3) / 1e3;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
