// The model the simulated fleet serves, as one small contract: class probabilities for a
// batch of inputs, and the digest the agents attest. Three ways to get one — a user's ONNX
// image classifier (the file's SHA-256 is its digest, as `antidote model register` records
// it), a built-in text model for SpamAssassin (hashed TF-IDF word n-grams projected to 1,024
// dimensions and a softmax regression: the scan's text representation, fitted on emails the
// agents never serve; about 95 % held-out accuracy), and a "wrong model" — a different model
// behind the same attested digest, by default the served model's outputs at a higher
// temperature with per-class noise, so its predicted labels and confidences drift from the
// attested model's on the very same inputs.
import { createHash } from "node:crypto";
import type { ImageTensor, Sample } from "../../data/sample.js";
import { fitSoftmax } from "../../detect/proxy-linear.js";
import { AntidoteError } from "../../errors.js";
import { createFeaturizer } from "../../features/featurize.js";
import { Rng } from "../../math/rng.js";
import { openOnnxClassifier, type OnnxClassifierOptions } from "../../onnx/classifier.js";
import { imageBatch } from "../../onnx/input.js";

/** One input as an agent's model sees it. */
export interface FleetInput {
  image?: ImageTensor;
  text?: string;
}

export interface FleetModel {
  /** Hex SHA-256 the agents attest (a model registered in the ledger). */
  readonly digest: string;
  /** Class names in output order. */
  readonly classes: readonly string[];
  /** Row-major [inputs.length × classes] probabilities. */
  predict(inputs: readonly FleetInput[]): Promise<Float32Array>;
  close?(): Promise<void>;
}

/** An ONNX image classifier (NCHW input) as a fleet model; its digest is the file's SHA-256. */
export async function onnxFleetModel(
  path: string,
  classes: readonly string[],
  options: Omit<OnnxClassifierOptions, "classes"> = {},
): Promise<FleetModel> {
  const model = await openOnnxClassifier(path, { ...options, classes });
  return {
    digest: model.digest,
    classes,
    async predict(inputs) {
      const samples = inputs.map((input, i) => asSample(input, `input ${i}`));
      const { probs } = await model.run(imageBatch(samples, model.inputShape), samples.length);
      return probs;
    },
    close: () => model.close(),
  };
}

/** A predictor over NCHW float32 images as a fleet model (a model the caller runs itself). */
export function predictorFleetModel(
  digest: string,
  classes: readonly string[],
  inputShape: readonly number[],
  predictor: (x: Float32Array, n: number) => Promise<Float32Array>,
): FleetModel {
  return {
    digest,
    classes,
    predict: (inputs) => {
      const samples = inputs.map((input, i) => asSample(input, `input ${i}`));
      return predictor(imageBatch(samples, inputShape), samples.length);
    },
  };
}

export interface TextModelOptions {
  /** Projected feature width; default 1024 (256 gave 87 % held-out accuracy on SpamAssassin, 1024 gave 95 %). */
  dims?: number;
  seed?: number;
}

/**
 * The built-in text model: the scan's hashed TF-IDF of word uni- and bigrams, randomly
 * projected, and a softmax regression fitted on `train`. Its digest is a SHA-256 over its
 * options, the fitted document frequencies and the linear map it computes, so the same
 * training data and seed give the same digest (there is no file to hash).
 */
export async function textFleetModel(
  train: readonly Sample[],
  classes: readonly string[],
  options: TextModelOptions = {},
): Promise<FleetModel> {
  const dims = options.dims ?? 1024;
  const seed = options.seed ?? 0;
  const featurizer = createFeaturizer("text", { dims, seed, text: { charNgrams: false } });
  await featurizer.fit(iterate(train));
  const x = new Float32Array(train.length * dims);
  const y = new Int32Array(train.length);
  train.forEach((s, i) => {
    x.set(featurizer.transform(s), i * dims);
    y[i] = s.label === null ? -1 : classes.indexOf(s.label);
  });
  const fitted = fitSoftmax({ rows: train.length, cols: dims, data: x }, y, classes.length, { seed });
  const C = classes.length;
  const scores = new Float64Array(C);
  const probsOf = (row: Float32Array, out: Float32Array, at: number): void => {
    fitted.rowScores(row, scores);
    softmaxInto(scores, out, at);
  };
  return {
    digest: textModelDigest(featurizer.stats().df, dims, seed, classes, (row, out) =>
      fitted.rowScores(row, out),
    ),
    classes,
    predict(inputs) {
      const out = new Float32Array(inputs.length * C);
      inputs.forEach((input, i) => {
        if (input.text === undefined)
          throw new AntidoteError("MODEL_FORMAT", `input ${i} has no text; the text model takes text.`);
        probsOf(featurizer.transform(asSample(input, `input ${i}`)), out, i * C);
      });
      return Promise.resolve(out);
    },
  };
}

/**
 * A different model behind the same attested digest: `base`'s outputs with logits divided by
 * `temperature` and Gaussian noise of `noise` standard deviations added per class, seeded.
 */
export function perturbedFleetModel(
  base: FleetModel,
  options: { seed?: number | string; temperature?: number; noise?: number } = {},
): FleetModel {
  const rng = new Rng(`${String(options.seed ?? 0)}/wrong-model`);
  const temperature = options.temperature ?? 3;
  const noise = options.noise ?? 1.5;
  const C = base.classes.length;
  return {
    digest: createHash("sha256")
      .update(`perturbed:${base.digest}:${String(options.seed ?? 0)}`)
      .digest("hex"),
    classes: base.classes,
    async predict(inputs) {
      const probs = await base.predict(inputs);
      const z = new Float64Array(C);
      for (let i = 0; i < inputs.length; i++) {
        for (let c = 0; c < C; c++)
          z[c] = Math.log((probs[i * C + c] as number) + 1e-7) / temperature + noise * rng.normal();
        softmaxInto(z, probs, i * C);
      }
      return probs;
    },
  };
}

// ---------------------------------------------------------------------------------------

function asSample(input: FleetInput, id: string): Sample {
  const sample: Sample = { id, digest: "", label: null, source: null, annotations: [], metadata: {} };
  if (input.image !== undefined) sample.image = input.image;
  if (input.text !== undefined) sample.text = input.text;
  return sample;
}

function iterate(samples: readonly Sample[]): AsyncIterable<Sample> {
  return {
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: () =>
          Promise.resolve(
            i < samples.length
              ? { value: samples[i++] as Sample, done: false as const }
              : { value: undefined, done: true as const },
          ),
      };
    },
  };
}

function softmaxInto(z: Float64Array, out: Float32Array, at: number): void {
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  let sum = 0;
  for (let c = 0; c < z.length; c++) sum += Math.exp((z[c] as number) - max);
  for (let c = 0; c < z.length; c++) out[at + c] = Math.exp((z[c] as number) - max) / sum;
}

function textModelDigest(
  df: Uint32Array,
  dims: number,
  seed: number,
  classes: readonly string[],
  rowScores: (row: ArrayLike<number>, out: Float64Array) => void,
): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ model: "antidote-fleet-text/v1", dims, seed, classes }));
  h.update(new Uint8Array(df.buffer, df.byteOffset, df.byteLength));
  // The linear map itself: its scores on the zero row and on each basis row.
  const row = new Float32Array(dims);
  const out = new Float64Array(classes.length);
  rowScores(row, out);
  h.update(new Uint8Array(out.buffer.slice(0)));
  for (let j = 0; j < dims; j++) {
    row[j] = 1;
    rowScores(row, out);
    h.update(new Uint8Array(out.buffer.slice(0)));
    row[j] = 0;
  }
  return h.digest("hex");
}
