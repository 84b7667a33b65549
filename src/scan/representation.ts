// What the detectors see of each sample beyond its label: a dense representation (the user's
// penultimate-layer features, their ONNX model's, or a built-in proxy's) and class probabilities
// (the user's, their model's, or the built-in proxy's out-of-sample ones). User files are checked
// at the boundary — row count, finite values, width, distributions — and matched to samples by id
// when they carry one, else by row order; every problem names the file, the row (and its sample)
// and the column. A user's file wins over their model for what it provides.
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname } from "node:path";
import { gunzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset } from "../data/dataset.js";
import { PROXY_IMAGES, type ImageShape, type ImageSketches } from "../data/image-sketch.js";
import type { Sample } from "../data/sample.js";
import { cnnOutOfSampleProbs, cnnProxyUnsupported } from "../detect/proxy-image-cnn.js";
import type { Reclassifier } from "../detect/exclusion-check.js";
import { imageProbabilitiesWithout, imageProxyFeatures } from "../detect/proxy-image.js";
import { NEIGHBOURS, neighbourLabelProbs } from "../detect/neighbour-labels.js";
import { outOfSampleProbs } from "../detect/proxy-linear.js";
import type { ScanTable } from "../detect/types.js";
import { featurizeText } from "../features/featurize.js";
import { readOnnxModel } from "../onnx/model-file.js";
import { parsePythonLiteral } from "../robust/npy.js";
import type { ModelOutputs, ModelRunOptions, ModelRunSummary } from "./model-run.js";
import { checkPrecomputed, type PrecomputedModelOutputs } from "./precomputed.js";
import { InputCollector, type RepresentationInput } from "./read.js";

export type { ModelRunSummary } from "./model-run.js";

/** A numeric matrix read from a user's file, with the ids and column names the file carried. */
export interface UserMatrix {
  file: string;
  rows: number;
  cols: number;
  data: Float32Array;
  /** Sample ids, when the file has an id column (CSV). */
  ids?: string[];
  /** Column names (CSV header), without the id column. */
  columns?: string[];
}

/** The built-in image proxy's choices (`--image-proxy`), the default first. */
export const IMAGE_PROXIES = ["mlp+cnn", "mlp"] as const;
export type ImageProxyKind = (typeof IMAGE_PROXIES)[number];

export interface RepresentationOptions {
  /** `--features`: .npy (float32/float64, n × k) or CSV (optionally with an id column). */
  features?: string;
  /** `--pred-probs`: .npy (n × classes) or CSV (columns in class order, or named by class). */
  predProbs?: string;
  /** `--model`: an ONNX image classifier run over the samples for probabilities and penultimate features. */
  model?: string;
  /**
   * The outputs of a model run elsewhere over the same samples (merged shards, scan/shard-merge.ts),
   * used as `model`'s would be; no model is run. They are checked against the table's samples.
   */
  modelOutputs?: PrecomputedModelOutputs;
  /** `--input-shape`: the model's input without batch ([C, H, W] or [D]) when the model leaves it symbolic. */
  inputShape?: number[];
  /** `--output`: the model output holding the class scores, when it has several. */
  output?: string;
  /** Samples per model inference batch (see ModelRunOptions.batchSize). */
  batchSize?: number;
  /**
   * Average the model's probabilities over the image and its four one-pixel shifts (default
   * true; `--no-shifted-views`): five inferences per image for probabilities that lean less on
   * what the model memorised of its training images. Features always come from the image itself.
   */
  shiftedViews?: boolean;
  seed?: number;
  /**
   * The built-in image proxy's probabilities: "mlp+cnn" (default) averages an MLP's and a CNN's,
   * both k-fold; "mlp" is the MLP alone (≈ 3× faster at 12k images, 73 s against 190–240 s;
   * weaker for confident learning). Features are the MLP's either way.
   */
  imageProxy?: ImageProxyKind;
  /** Called as each stage starts and ends, for progress. */
  onStage?: (stage: string) => void;
  /** Progress of model inference: samples done of all. */
  onProgress?: (done: number, total: number) => void;
}

export type ProbabilitySource =
  | "pred-probs"
  | "model"
  | "model-and-probe"
  | "feature-probe"
  | "text-proxy"
  | "image-proxy"
  | "tabular-proxy";

/** What the detectors got, and where it came from, for the report. */
export interface RepresentationSummary {
  probabilities: {
    /** Where they came from; the scan trusts a weak or in-sample source's extremes only. */
    kind: ProbabilitySource;
    from: string;
    /** Accuracy against the given labels: held out for proxies; in-sample for a model trained on these samples. */
    accuracy: number | null;
    matchedBy?: "id" | "row order";
    /** Set for a model's own probabilities: on its training data they are not out-of-sample. */
    inSample?: boolean;
    /** "model-and-probe": the held-out accuracy of the linear probe averaged in. */
    probeAccuracy?: number;
  } | null;
  features: { from: string; dims: number; matchedBy?: "id" | "row order" } | null;
  /** The `--model` that was run, when one was. */
  model?: ModelRunSummary;
  warnings: string[];
  seconds: number;
}

export interface Representation {
  probs?: Float32Array;
  features?: Float32Array;
  featureDims?: number;
  /** The proxy's further feature models from other random starts (ScanTable.featureReplicates). */
  featureReplicates?: Float32Array[];
  /** A model the scan can train without given samples (the exclusion check), when the samples allow one. */
  reclassifier?: { from: string; reclassify: Reclassifier };
  summary: RepresentationSummary;
}

/**
 * Feature models the image proxy trains from independent random starts; SPECTRE flags what any
 * of them flags, and the exclusion check dismisses the natural sub-populations that collects.
 * Measured on 12k Fashion-MNIST: of four models, two separated a 0.5 % patch (56, 57 of 60) and
 * two saw one mode; the union flagged 59. Each model costs about 12 s per 12k images.
 */
export const IMAGE_FEATURE_MODELS = 4;

/**
 * `--model` checked before the dataset is read: the file exists and is an ONNX model ONNX Runtime
 * can load (FILE_NOT_FOUND / MODEL_FORMAT naming the file).
 */
export function checkModelFile(path: string): void {
  readOnnxModel(path);
}

/**
 * The cleaned probe is not trained on samples whose label the first opinions give less than this
 * (confident learning's own candidate bar). Measured with the CNN trained on each variant (12k
 * Fashion-MNIST, confident learning alone, then all 60k clean images): dropping every sample the
 * opinions put in another class found 10 % random flips at 0.875 / 0.908 but flagged 360 of the
 * 60k clean images (Shirt, the catch-all class, lost its ambiguous members and the probe called
 * them T-shirts); this bar 0.888 / 0.895 and 220 clean; no cleaning 0.902 / 0.865 and 120 clean.
 */
export const DOUBTED_LABEL = 0.1;

/** Each fold of a linear probe on features trains on at most this many samples (no cap below 25k samples). */
export const PROBE_TRAIN_ROWS = 20_000;

/** A class with fewer labeled samples than this gets a warning: its statistics are unreliable. */
export const SMALL_CLASS = 10;

/**
 * Build the representation for `table`: the user's files when given, else proxies. Text → hashed
 * word TF-IDF and k-fold logistic regression; tabular features → k-fold logistic regression on
 * them (the features are the representation); images → the average of a one-hidden-layer MLP's
 * and a small CNN's k-fold probabilities on the table's pixels, and the MLP's hidden-layer
 * features from one model trained on everything, for the feature-space detectors
 * (`imageProxy: "mlp"`: the MLP alone). `input` is what the scan's read gathered beside the table
 * (the model's outputs, tabular features: scan/read.ts), or the samples the table was built from
 * (same order), from which it is gathered here.
 */
export async function buildRepresentation(
  table: ScanTable,
  input: readonly Sample[] | RepresentationInput,
  options: RepresentationOptions = {},
): Promise<Representation> {
  const started = performance.now();
  const given = Array.isArray(input)
    ? await inputFromSamples(table, input as readonly Sample[], options)
    : (input as RepresentationInput);
  const warnings: string[] = [];
  const n = table.ids.length;
  const C = table.classes.length;
  const labeledCounts = classCounts(table);
  const labeledClasses = labeledCounts.filter((c) => c > 0).length;
  const small = table.classes.filter(
    (_, j) => (labeledCounts[j] as number) > 0 && (labeledCounts[j] as number) < SMALL_CLASS,
  );
  if (small.length > 0)
    warnings.push(
      `${small.length === 1 ? "class" : "classes"} ${small.map((c) => `"${c}" (${labeledCounts[table.classes.indexOf(c)]})`).join(", ")} ` +
        `${small.length === 1 ? "has" : "have"} fewer than ${SMALL_CLASS} labeled samples: label statistics for ${small.length === 1 ? "it" : "them"} are unreliable.`,
    );
  const rep: Representation = {
    summary: { probabilities: null, features: null, warnings, seconds: 0 },
  };

  let model: ModelOutputs | undefined;
  // The model's outputs come from running it during the read, or precomputed (sharded scans).
  const modelPath = options.modelOutputs?.summary.path ?? options.model;
  if (modelPath !== undefined) {
    if (modelSuperseded(options)) {
      warnings.push(
        `--model ${modelPath} was not ${options.modelOutputs !== undefined ? "used" : "run"}: --features and ` +
          "--pred-probs give everything it would.",
      );
    } else {
      if (options.modelOutputs !== undefined) checkPrecomputed(options.modelOutputs, table);
      model = options.modelOutputs ?? given.model;
      if (model === undefined) throw new AntidoteError("INTERNAL", `--model ${modelPath} was not run`);
      warnings.push(...model.warnings);
      rep.summary.model = model.summary;
    }
  }

  if (options.features !== undefined) {
    options.onStage?.("reading --features");
    const m = readUserMatrix(options.features, "--features");
    const aligned = alignRows(m, table.ids, "--features");
    checkFinite(aligned, table.ids, "--features");
    rep.features = aligned.data;
    rep.featureDims = aligned.cols;
    rep.summary.features = {
      from: `--features ${options.features}`,
      dims: aligned.cols,
      matchedBy: aligned.matchedBy,
    };
  } else if (model?.features !== undefined) {
    rep.features = model.features.data;
    rep.featureDims = model.features.dims;
    rep.summary.features = { from: model.features.from, dims: model.features.dims };
  } else if (model !== undefined) {
    warnings.push(
      `--model ${modelPath}: no penultimate features, so the feature-space detectors are skipped; ` +
        "pass the model's embeddings with --features to run them.",
    );
  }

  // A k-fold logistic regression on the features in hand: what that representation says of each
  // label, out of sample (each sample's probe never saw its label).
  const linearProbe = (features: Float32Array, labels = table.labels) =>
    outOfSampleProbs({ rows: n, cols: rep.featureDims ?? 0, data: features }, labels, C, {
      seed: options.seed ?? 0,
      maxTrainRows: PROBE_TRAIN_ROWS,
    });
  // The probe trained a second time without the samples whose label the opinions in hand give
  // under DOUBTED_LABEL: with 10 % random flips every class boundary is pulled by the flips on
  // its far side, and a probe that never trains on them draws it where the clean samples do.
  // Every sample is still predicted by a fold that never saw its label (out of sample).
  // Null when there is nothing to clean by: the opinions doubt most labels, or a whole class.
  const cleanedProbe = (
    features: Float32Array,
    opinions: Float32Array,
  ): { probs: Float32Array; doubted: number } | null => {
    const trusted = Int32Array.from(table.labels, (y, i) =>
      y >= 0 && (opinions[i * C + y] as number) < DOUBTED_LABEL ? -1 : y,
    );
    const kept = trusted.filter((y) => y >= 0);
    const labeled = labeledCounts.reduce((a, b) => a + b, 0);
    if (2 * kept.length < labeled || new Set(kept).size < labeledClasses) return null;
    return { probs: linearProbe(features, trusted).probs, doubted: labeled - kept.length };
  };

  if (options.predProbs !== undefined) {
    options.onStage?.("reading --pred-probs");
    if (C < 2 || labeledClasses < 2)
      throw new AntidoteError(
        "USAGE",
        `--pred-probs ${options.predProbs}: the dataset's labels have ${labeledClasses === 1 ? "one class only" : "no class"}` +
          `${table.classes.length > 0 ? ` (${table.classes.join(", ")})` : ""}; predicted probabilities need at least two.`,
      );
    const m = readUserMatrix(options.predProbs, "--pred-probs");
    const byClass = orderColumnsByClass(m, table.classes, "--pred-probs");
    const aligned = alignRows(byClass, table.ids, "--pred-probs");
    checkFinite(aligned, table.ids, "--pred-probs");
    warnings.push(...normaliseDistributions(aligned, table.ids, "--pred-probs"));
    rep.probs = aligned.data;
    rep.summary.probabilities = {
      kind: "pred-probs",
      from: `--pred-probs ${options.predProbs}`,
      accuracy: heldOutAccuracy(aligned.data, table.labels, C),
      matchedBy: aligned.matchedBy,
    };
  } else if (model?.probs !== undefined && labeledClasses >= 2 && rep.features !== undefined) {
    // A model's probabilities on its own training data are in-sample: it is confident on the
    // flips it has learned and on its own confusions alike, so confident learning on them alone
    // flagged 0.55 % of clean 12k Fashion-MNIST (a CNN trained on it; noise-structure selection)
    // and, with the strict bar that needed, found 35 % of 10 % random flips and none of 3 %
    // targeted ones. Averaged with a k-fold linear probe on the same penultimate features (out of
    // sample: each sample's probe never saw its label): clean 0 flagged, targeted 3 %
    // 0.886 / 0.911, random 10 % 0.836 / 0.860 (bench:detect, model column; weights 0.35 / 0.65
    // and a geometric mean measured no better). Now three opinions are averaged: the model's
    // probabilities over shifted views, the probe retrained without the labels the first
    // opinions doubt, and the labels of each sample's nearest neighbours in the features (out of
    // sample: a sample never votes for itself): clean 0, targeted 0.960 / 0.936, random 10 %
    // 0.869 / 0.903. A model trained elsewhere loses little: probe and neighbours are out of
    // sample too.
    options.onStage?.("linear probe and nearest-neighbour labels on the features");
    const probe = linearProbe(rep.features);
    const neighbours = await neighbourLabelProbs(rep.features, rep.featureDims ?? 0, table.labels, C, {
      seed: options.seed ?? 0,
    });
    const others = neighbours === null ? [] : [neighbours];
    const cleaned = cleanedProbe(rep.features, averageOf(model.probs, probe.probs, ...others));
    rep.probs = averageOf(model.probs, cleaned?.probs ?? probe.probs, ...others);
    rep.summary.probabilities = {
      kind: "model-and-probe",
      from:
        `${model.probsFrom}, averaged with a linear probe on ${rep.summary.features?.from ?? "the features"} ` +
        "(5-fold logistic regression, out of sample" +
        (cleaned === null
          ? ")"
          : `, retrained without the ${cleaned.doubted} labels the first opinions gave under ${DOUBTED_LABEL})`) +
        (neighbours === null
          ? ""
          : ` and with the labels of each sample's ${NEIGHBOURS} nearest neighbours in those features`),
      accuracy: heldOutAccuracy(model.ownProbs ?? model.probs, table.labels, C),
      inSample: true,
      probeAccuracy: round(probe.accuracy),
    };
  } else if (model?.probs !== undefined && labeledClasses >= 2) {
    rep.probs = model.probs;
    rep.summary.probabilities = {
      kind: "model",
      from: model.probsFrom,
      accuracy: heldOutAccuracy(model.ownProbs ?? model.probs, table.labels, C),
      inSample: true,
    };
    warnings.push(
      `--model ${modelPath}: its probabilities are in-sample for the samples it was trained on (a model ` +
        "is confident on its own training labels, flipped ones included), and it has no penultimate features " +
        "to train an out-of-sample probe on, so confident learning finds fewer label errors; pass k-fold " +
        "(cross-validated) probabilities with --pred-probs, or its embeddings with --features, when you have them.",
    );
  } else if (labeledClasses < 2) {
    warnings.push(
      `the dataset's labels have ${labeledClasses === 1 ? "one class only" : "no class"}: no class probabilities, ` +
        "so detectors that judge labels are skipped.",
    );
  } else if (rep.features !== undefined) {
    // A linear probe on the user's own embeddings: what the model's representation says of each label.
    options.onStage?.("linear probe on --features");
    const probe = linearProbe(rep.features);
    rep.probs = probe.probs;
    rep.summary.probabilities = {
      kind: "feature-probe",
      from: "linear probe on --features (5-fold logistic regression, out of sample)",
      accuracy: round(probe.accuracy),
    };
  } else {
    const proxy = await proxyProbabilities(table, given, options, warnings);
    if (proxy !== null) {
      rep.probs = proxy.probs;
      rep.summary.probabilities = { kind: proxy.kind, from: proxy.from, accuracy: round(proxy.accuracy) };
      if (proxy.features !== undefined) {
        rep.features = proxy.features.data;
        rep.featureDims = proxy.features.dims;
        if ((proxy.features.replicates?.length ?? 0) > 0) rep.featureReplicates = proxy.features.replicates;
        rep.summary.features = { from: proxy.features.from, dims: proxy.features.dims };
      }
    } else {
      warnings.push("the samples have no text, image or tabular features to build a proxy model from.");
    }
  }
  const reclassifier = imageReclassifier(table, options.seed ?? 0);
  if (reclassifier !== null) rep.reclassifier = reclassifier;
  rep.summary.seconds = round((performance.now() - started) / 1000);
  return rep;
}

/**
 * The exclusion check's model for image datasets: the proxy MLP on the table's pixels, whatever
 * gave the features (the user's model cannot be retrained here). Null for other content, mixed
 * image sizes, or images whose pixels the scan did not keep (larger than 32×32 with a model).
 * The pixels are unpacked only when the check runs.
 */
function imageReclassifier(
  table: ScanTable,
  seed: number,
): { from: string; reclassify: Reclassifier } | null {
  const images = table.images;
  const first = images?.keptShape(0);
  if (images === undefined || first === undefined || table.classes.length < 2) return null;
  const size = first.height * first.width * first.channels;
  for (let i = 0; i < images.length; i++) if (images.pixels(i)?.length !== size) return null;
  return {
    from: "the proxy MLP on pixels (one model, at most 12k training samples)",
    reclassify: (excluded) => {
      const { data } = pixelRows(table);
      return imageProbabilitiesWithout(data, table.labels, table.classes.length, excluded, { seed });
    },
  };
}

/** Whether the user's files make their model redundant (it is then not run). */
export function modelSuperseded(options: Pick<RepresentationOptions, "features" | "predProbs">): boolean {
  return options.features !== undefined && options.predProbs !== undefined;
}

// The scan's read gathers the input while it streams (scan/read.ts); a caller with the samples in
// memory gets the same from them here.
async function inputFromSamples(
  table: ScanTable,
  samples: readonly Sample[],
  options: RepresentationOptions,
): Promise<RepresentationInput> {
  const collector = new InputCollector({
    tabular: true,
    expected: samples.length,
    ...(options.model !== undefined && options.modelOutputs === undefined && !modelSuperseded(options)
      ? { model: { ...modelRunOptions(options), path: options.model, classes: table.classes } }
      : {}),
  });
  try {
    for (const s of samples) await collector.add(s);
    return await collector.finish(table.classes);
  } finally {
    await collector.close();
  }
}

/** The model options of the representation's. */
export function modelRunOptions(
  options: RepresentationOptions,
): Omit<ModelRunOptions, "classes" | "expected"> {
  return {
    ...(options.inputShape !== undefined ? { inputShape: options.inputShape } : {}),
    ...(options.output !== undefined ? { output: options.output } : {}),
    ...(options.shiftedViews !== undefined ? { shiftedViews: options.shiftedViews } : {}),
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
  };
}

interface Proxy {
  kind: ProbabilitySource;
  probs: Float32Array;
  accuracy: number;
  from: string;
  features?: { data: Float32Array; dims: number; from: string; replicates?: Float32Array[] };
}

async function proxyProbabilities(
  table: ScanTable,
  input: RepresentationInput,
  options: RepresentationOptions,
  warnings: string[],
): Promise<Proxy | null> {
  const seed = options.seed ?? 0;
  const C = table.classes.length;
  if (table.ids.length === 0) return null;
  const first = table.images?.shape(0);
  if (first !== undefined) {
    options.onStage?.("proxy model (MLP on pixels)");
    const { data, shape } = pixelRows(table);
    if (shape.height !== first.height || shape.width !== first.width)
      warnings.push(
        `the image proxy models read the images box-filtered from ${first.height}×${first.width}×${first.channels} ` +
          `to ${shape.height}×${shape.width}×${shape.channels} (at most ${PROXY_IMAGES.maxValues} values, what the CNN ` +
          "trains on in reasonable time on a CPU); pass your model (--model) for a representation at full size.",
      );
    const r = imageProxyFeatures(data, table.labels, C, { seed, featureModels: IMAGE_FEATURE_MODELS });
    if (r.probs === null) throw new AntidoteError("INTERNAL", "the image proxy returned no probabilities");
    const features = {
      data: r.features,
      dims: r.featureDims,
      from: `proxy: ${r.provenance.features}`,
      replicates: r.featureReplicates,
    };
    const mlpOnly = {
      probs: r.probs,
      accuracy: r.accuracy,
      kind: "image-proxy" as const,
      from: `proxy: ${r.provenance.probs ?? "MLP on pixels"}`,
      features,
    };
    if (options.imageProxy === "mlp") return mlpOnly;
    // The CNN joins only where it can: one image shape for all, small enough to train on a CPU.
    const images = table.images as ImageSketches;
    let odd: number | undefined;
    for (let i = 0; i < images.length && odd === undefined; i++) {
      const s = images.keptShape(i);
      if (s?.height !== shape.height || s.width !== shape.width || s.channels !== shape.channels) odd = i;
    }
    const oddShape = odd === undefined ? undefined : images.keptShape(odd);
    const why =
      odd !== undefined
        ? `sample "${table.ids[odd]}" is ${oddShape?.height}×${oddShape?.width}×${oddShape?.channels}, the first ${shape.height}×${shape.width}×${shape.channels}`
        : cnnProxyUnsupported(shape);
    if (why !== null) {
      warnings.push(
        `the image proxy is the MLP alone (no CNN: ${why}); confident learning is weaker for it.`,
      );
      return mlpOnly;
    }
    const cnnOptions = { seed, folds: 3, repeats: 2 };
    const models = cnnOptions.folds * cnnOptions.repeats;
    const cnnStage = (model: number): void =>
      options.onStage?.(`proxy model (CNN on pixels, ${model} of ${models})`);
    cnnStage(1);
    const cnn = await cnnOutOfSampleProbs(data, shape, table.labels, C, cnnOptions, (done) => {
      if (done < models) cnnStage(done + 1);
    });
    // Each CNN repeat counts as one member beside the MLP (measured better than 1 : 1, see
    // proxy-image-cnn.ts). All are out of sample for every sample, so the mean is too.
    const w = 1 / (1 + cnnOptions.repeats);
    const probs = new Float32Array(r.probs.length);
    for (let k = 0; k < probs.length; k++) probs[k] = w * r.probs[k]! + (1 - w) * cnn.probs[k]!;
    return {
      probs,
      accuracy: heldOutAccuracy(probs, table.labels, C) ?? NaN,
      kind: "image-proxy",
      from:
        `proxy: out-of-sample probabilities of an MLP and a CNN on pixels, weighted 1 : ${cnnOptions.repeats} ` +
        `(one per CNN repeat) — MLP: ${r.provenance.probs ?? "on pixels"} (accuracy ${r.accuracy.toFixed(3)}); ` +
        `CNN: ${cnn.provenance} (accuracy ${cnn.accuracy.toFixed(3)})`,
      features,
    };
  }
  if (table.texts !== undefined) {
    options.onStage?.("featurizing text");
    if (input.textless !== undefined)
      throw new AntidoteError(
        "USAGE",
        `sample "${input.textless}" has no text; text features need a text column`,
      );
    const rows = await featurizeText(textDataset(table, table.texts), { charNgrams: false, seed });
    options.onStage?.("proxy model (logistic regression on TF-IDF)");
    const r = outOfSampleProbs(rows, table.labels, C, { seed });
    return {
      probs: r.probs,
      accuracy: r.accuracy,
      kind: "text-proxy",
      from: "proxy: 5-fold logistic regression on hashed word TF-IDF (unigrams + bigrams)",
    };
  }
  const tabular = input.tabular;
  if (tabular !== undefined) {
    options.onStage?.("proxy model (logistic regression on tabular features)");
    if ("mismatch" in tabular)
      throw new AntidoteError(
        "ROW_MALFORMED",
        `sample "${tabular.mismatch.id}": its tabular features have ${tabular.mismatch.values} values, the first ` +
          `sample's ${tabular.mismatch.dims}; the proxy model needs one shape for all samples.`,
      );
    const { data, dims } = tabular;
    const r = outOfSampleProbs({ rows: table.ids.length, cols: dims, data }, table.labels, C, { seed });
    return {
      probs: r.probs,
      accuracy: r.accuracy,
      kind: "tabular-proxy",
      from: "proxy: 5-fold logistic regression on the tabular features",
      features: { data, dims, from: "the tabular features" },
    };
  }
  return null;
}

/**
 * The table's kept pixels as one n × values matrix in [0, 1] (an 8-bit pixel b reads as b / 255,
 * as a Float32 image of it does): what the pixel proxies train on. Every sample needs pixels of
 * the first one's size.
 */
function pixelRows(table: ScanTable): { data: Float32Array; shape: ImageShape } {
  const images = table.images;
  const shape = images?.keptShape(0);
  if (images === undefined || shape === undefined)
    throw new AntidoteError("INTERNAL", "the image proxy needs the table's pixels");
  const dims = shape.height * shape.width * shape.channels;
  const n = table.ids.length;
  const data = new Float32Array(n * dims);
  for (let i = 0; i < n; i++) {
    const row = images.pixels(i);
    if (row === undefined || row.length !== dims)
      throw new AntidoteError(
        "ROW_MALFORMED",
        `sample "${table.ids[i]}": its image have ${row?.length ?? 0} values, the first sample's ${dims}; ` +
          "the proxy model needs one shape for all samples.",
      );
    const base = i * dims;
    for (let k = 0; k < dims; k++) data[base + k] = (row[k] as number) / 255;
  }
  return { data, shape };
}

// The table's texts as a dataset for the text featurizer (which reads only ids and texts).
function textDataset(table: ScanTable, texts: readonly string[]): Dataset {
  const sampleAt = (i: number): Sample => ({
    id: table.ids[i] as string,
    digest: table.digests[i] as string,
    label: null,
    text: texts[i],
    source: null,
    annotations: [],
    metadata: {},
  });
  return {
    info: { format: "jsonl", path: "(scan table)", count: texts.length },
    samples() {
      let i = 0;
      return {
        [Symbol.asyncIterator]: () => ({
          next: () =>
            Promise.resolve<IteratorResult<Sample>>(
              i < texts.length ? { value: sampleAt(i++), done: false } : { value: undefined, done: true },
            ),
        }),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// User files.

/** Read an .npy or CSV matrix. */
export function readUserMatrix(file: string, flag: string): UserMatrix {
  if (!existsSync(file) || !statSync(file).isFile())
    throw new AntidoteError("FILE_NOT_FOUND", `${flag} ${file}: no such file.`);
  let bytes = readFileSync(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes.subarray(0, 6).equals(NPY_MAGIC)) return readNpy(file, flag, bytes);
  const ext = extname(file.replace(/\.gz$/i, "")).toLowerCase();
  if (ext === ".npy")
    throw new AntidoteError("INPUT_FORMAT", `${flag} ${file}: not a NumPy .npy file (bad magic bytes).`);
  return readCsv(file, flag, bytes.toString("utf8"), ext === ".tsv" ? "\t" : ",");
}

const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

const npyHeaderSchema = z.object({
  descr: z.string(),
  fortran_order: z.boolean(),
  shape: z.array(z.number().int().min(0)),
});

function readNpy(file: string, flag: string, bytes: Buffer): UserMatrix {
  const fail = (detail: string) => new AntidoteError("INPUT_FORMAT", `${flag} ${file}: ${detail}`);
  const major = bytes[6] ?? 0;
  if (major < 1 || major > 3) throw fail(`.npy format version ${major} is not supported (1, 2 or 3).`);
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw fail("truncated inside the .npy preamble.");
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  if (start + headerLength > bytes.length) throw fail("truncated inside the .npy header.");
  const text = bytes.subarray(start, start + headerLength).toString(major === 3 ? "utf8" : "latin1");
  let literal: unknown;
  try {
    literal = parsePythonLiteral(text);
  } catch (e) {
    throw fail(`bad .npy header (${e instanceof Error ? e.message : String(e)}).`);
  }
  const parsed = npyHeaderSchema.safeParse(literal);
  if (!parsed.success) throw fail(`bad .npy header ${JSON.stringify(text.trim())}.`);
  const { descr, fortran_order: fortran, shape } = parsed.data;
  if (descr !== "<f4" && descr !== "<f8")
    throw fail(
      `dtype '${descr}' is not supported: save float32 or float64 (arr.astype(np.float32)); ` +
        "big-endian, integer and object arrays are not read.",
    );
  if (shape.length !== 2 && shape.length !== 1)
    throw fail(`shape (${shape.join(", ")}) is not a matrix: expected (samples, columns).`);
  const rows = shape[0] as number;
  const cols = shape.length === 2 ? (shape[1] as number) : 1;
  if (fortran && rows > 1 && cols > 1)
    throw fail("is in Fortran order; save it in C order (np.ascontiguousarray(arr)).");
  const width = descr === "<f4" ? 4 : 8;
  const offset = start + headerLength;
  const need = rows * cols * width;
  if (bytes.length - offset !== need)
    throw fail(
      `shape (${shape.join(", ")}) of ${descr} needs ${need} data bytes, the file has ${bytes.length - offset}.`,
    );
  const data = new Float32Array(rows * cols);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, need);
  for (let k = 0; k < data.length; k++)
    data[k] = width === 4 ? view.getFloat32(k * 4, true) : view.getFloat64(k * 8, true);
  return { file, rows, cols, data };
}

// Names that mark a CSV column as the sample id; a pandas index column (empty name) is dropped.
const ID_COLUMNS = ["id", "sample_id", "sampleid", "uid", "uuid"];

function readCsv(file: string, flag: string, text: string, delimiter: string): UserMatrix {
  let records: string[][];
  try {
    records = parse(text, {
      delimiter,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: false,
    });
  } catch (e) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${flag} ${file}: not a readable CSV (${e instanceof Error ? e.message : String(e)}); expected .npy or CSV.`,
    );
  }
  if (records.length === 0) throw new AntidoteError("INPUT_FORMAT", `${flag} ${file}: the file is empty.`);
  const first = records[0] as string[];
  const hasHeader = first.some((cell) => cell !== "" && parseCell(cell) === undefined);
  const header = hasHeader ? first : first.map((_, j) => String(j));
  const body = hasHeader ? records.slice(1) : records;
  const idAt = hasHeader ? header.findIndex((h) => ID_COLUMNS.includes(h.toLowerCase())) : -1;
  const dropped = new Set<number>();
  if (idAt >= 0) dropped.add(idAt);
  if (hasHeader && header[0] === "" && idAt !== 0) dropped.add(0);
  const keep = header.map((_, j) => j).filter((j) => !dropped.has(j));
  const cols = keep.length;
  const data = new Float32Array(body.length * cols);
  const ids: string[] = [];
  body.forEach((row, r) => {
    const line = r + (hasHeader ? 2 : 1);
    if (idAt >= 0) ids.push(row[idAt] ?? "");
    keep.forEach((j, c) => {
      const cell = row[j] ?? "";
      const v = parseCell(cell);
      if (v === undefined)
        throw new AntidoteError(
          "ROW_MALFORMED",
          `${flag} ${file}:${line}: column "${header[j]}" is ${JSON.stringify(cell)}, not a number.`,
        );
      data[r * cols + c] = v;
    });
  });
  const m: UserMatrix = {
    file,
    rows: body.length,
    cols,
    data,
    columns: keep.map((j) => header[j] as string),
  };
  if (idAt >= 0) m.ids = ids;
  return m;
}

// Numbers as CSV writers print them, non-finite ones included (pandas writes nan, inf, -inf), so
// that a NaN is reported by row and sample rather than as an unreadable cell.
function parseCell(cell: string): number | undefined {
  if (/^nan$/i.test(cell)) return NaN;
  const inf = /^([+-]?)inf(inity)?$/i.exec(cell);
  if (inf !== null) return inf[1] === "-" ? -Infinity : Infinity;
  const v = cell === "" ? NaN : Number(cell);
  return Number.isNaN(v) ? undefined : v;
}

/** Pred-probs columns: by class name when the CSV header names every class, else in class order. */
export function orderColumnsByClass(m: UserMatrix, classes: readonly string[], flag: string): UserMatrix {
  const C = classes.length;
  const named = m.columns !== undefined && classes.every((c) => m.columns?.includes(c));
  if (named && m.cols === C) {
    const from = classes.map((c) => (m.columns as string[]).indexOf(c));
    const data = new Float32Array(m.rows * C);
    for (let i = 0; i < m.rows; i++)
      from.forEach((j, c) => (data[i * C + c] = m.data[i * m.cols + j] as number));
    return { ...m, data, columns: [...classes] };
  }
  if (m.cols !== C)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${flag} ${m.file}: ${m.cols} ${m.cols === 1 ? "column" : "columns"} of probabilities, but the dataset has ` +
        `${C} classes (${classes.join(", ")}); give one column per class, in this order or named by class.`,
    );
  return m;
}

/** Rows in table order: by id when the file has ids, else by row order (counts must agree). */
export function alignRows(
  m: UserMatrix,
  ids: readonly string[],
  flag: string,
): UserMatrix & { matchedBy: "id" | "row order" } {
  const n = ids.length;
  if (m.ids === undefined) {
    if (m.rows !== n)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${flag} ${m.file}: ${m.rows} rows, but the dataset has ${n} samples (rows are matched to samples by ` +
          "order because the file has no id column; add an id column to match by id).",
      );
    return { ...m, matchedBy: "row order" };
  }
  const at = new Map<string, number>();
  m.ids.forEach((id, r) => {
    if (at.has(id))
      throw new AntidoteError(
        "ROW_MALFORMED",
        `${flag} ${m.file}: id "${id}" appears twice (rows ${(at.get(id) as number) + 1} and ${r + 1}).`,
      );
    at.set(id, r);
  });
  const missing = ids.filter((id) => !at.has(id));
  if (missing.length > 0)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${flag} ${m.file}: ${m.rows} rows, but ${missing.length} of the dataset's ${n} samples have no row ` +
        `(first: "${missing[0]}"); rows are matched by the file's id column.`,
    );
  const data = new Float32Array(n * m.cols);
  ids.forEach((id, i) => {
    const r = at.get(id) as number;
    data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols);
  });
  return { ...m, rows: n, data, ids: [...ids], matchedBy: "id" };
}

function checkFinite(m: UserMatrix, ids: readonly string[], flag: string): void {
  for (let k = 0; k < m.data.length; k++) {
    const v = m.data[k] as number;
    if (Number.isFinite(v)) continue;
    const i = Math.floor(k / m.cols);
    const j = k % m.cols;
    const column = m.columns?.[j] !== undefined ? `"${m.columns[j]}"` : String(j);
    throw new AntidoteError(
      "ROW_MALFORMED",
      `${flag} ${m.file}: row ${i + 1} (sample "${ids[i]}"), column ${column} is ${Number.isNaN(v) ? "NaN" : v > 0 ? "+Infinity" : "-Infinity"}.`,
    );
  }
}

// Rows that are not distributions: negative values are logits or garbage (refused); rows that
// do not sum to 1 are rescaled, which keeps the argmax and the ratios a model meant.
function normaliseDistributions(m: UserMatrix, ids: readonly string[], flag: string): string[] {
  const C = m.cols;
  let fixed = 0;
  let worst = 0;
  let worstRow = -1;
  for (let i = 0; i < m.rows; i++) {
    let sum = 0;
    for (let j = 0; j < C; j++) {
      const v = m.data[i * C + j] as number;
      if (v < 0)
        throw new AntidoteError(
          "ROW_MALFORMED",
          `${flag} ${m.file}: row ${i + 1} (sample "${ids[i]}") has ${v} in column ${j}: probabilities cannot be ` +
            "negative (pass softmax(logits), not logits).",
        );
      sum += v;
    }
    if (sum <= 0)
      throw new AntidoteError(
        "ROW_MALFORMED",
        `${flag} ${m.file}: row ${i + 1} (sample "${ids[i]}") is all zeros: not a probability distribution.`,
      );
    const deviation = Math.abs(sum - 1);
    if (deviation > 1e-4) {
      fixed++;
      if (deviation > worst) {
        worst = deviation;
        worstRow = i;
      }
      for (let j = 0; j < C; j++) m.data[i * C + j] = (m.data[i * C + j] as number) / sum;
    }
  }
  if (fixed === 0) return [];
  return [
    `${flag}: ${fixed} of ${m.rows} rows did not sum to 1 (largest deviation ${worst.toPrecision(3)}, row ` +
      `${worstRow + 1}, sample "${ids[worstRow]}"); they were renormalised.`,
  ];
}

function heldOutAccuracy(probs: Float32Array, labels: Int32Array, C: number): number | null {
  let correct = 0;
  let labeled = 0;
  labels.forEach((y, i) => {
    if (y < 0) return;
    labeled++;
    let best = 0;
    for (let j = 1; j < C; j++) if ((probs[i * C + j] as number) > (probs[i * C + best] as number)) best = j;
    if (best === y) correct++;
  });
  return labeled === 0 ? null : round(correct / labeled);
}

/** The element-wise mean of same-shaped probability matrices. */
function averageOf(...matrices: Float32Array[]): Float32Array {
  const out = new Float32Array((matrices[0] as Float32Array).length);
  for (const m of matrices)
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (m[i] as number);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / matrices.length;
  return out;
}

function classCounts(table: ScanTable): number[] {
  const counts = new Array<number>(table.classes.length).fill(0);
  for (const y of table.labels) if (y >= 0) counts[y] = (counts[y] as number) + 1;
  return counts;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
