// The user's ONNX image classifier run over the samples as the scan reads them: each batch goes
// through ONNX Runtime — the images and, for the probabilities, their one-pixel shifts — as soon
// as it is full, and only the model's probabilities and penultimate features are kept. So the
// images never accumulate: memory is the outputs (n × (features + 2 · classes) floats) and one
// batch of inputs, whatever the dataset's size.
import { AntidoteError } from "../errors.js";
import { GrowableRows } from "../data/growable.js";
import type { ImageTensor, Sample } from "../data/sample.js";
import { matchClasses, openOnnxClassifier, type OnnxClassifier } from "../onnx/classifier.js";
import { imageBatch } from "../onnx/input.js";
import { SHIFTED_VIEWS, shiftedImage } from "../onnx/shifted-views.js";

export interface ModelRunSummary {
  path: string;
  /** sha256 of the model file. */
  digest: string;
  input: { name: string; shape: number[] };
  output: string;
  outputIsProbabilities: boolean;
  /** The tensor read as penultimate features, or null when the model has none we can find. */
  penultimate: string | null;
  samples: number;
  imagesPerSecond: number;
  /** Inputs run per sample: the image, and its one-pixel shifts unless `shiftedViews` is false. */
  views: number;
}

/** What the model said of every sample, in sample order. */
export interface ModelOutputs {
  /** [n × classes] in the table's class order, averaged over the views; undefined when the dataset has no class list. */
  probs?: Float32Array;
  /** The same for the images alone (the model's accuracy is stated from these). */
  ownProbs?: Float32Array;
  probsFrom: string;
  features?: { data: Float32Array; dims: number; from: string };
  summary: ModelRunSummary;
  /** For the user, prefixed with the model's path. */
  warnings: string[];
}

export interface ModelRunOptions {
  /** The model's input shape without batch, when it leaves it symbolic. */
  inputShape?: number[];
  /** The model output holding the class scores, when it has several. */
  output?: string;
  /** Average the probabilities over the image and its four one-pixel shifts (default true). */
  shiftedViews?: boolean;
  /**
   * The dataset's classes when they are known before reading (DatasetInfo.classes); otherwise
   * the model's columns are matched to the classes the read found, at `finish`.
   */
  classes?: string[];
  /** Samples to expect (DatasetInfo.count): the outputs are allocated once, and progress has a total. */
  expected?: number;
  /** Samples per batch; default MODEL_BATCH_VALUES / the input's size, at most 1,024. */
  batchSize?: number;
  /**
   * ONNX Runtime's intra-op threads (default 2). Shards run side by side on one machine want
   * cores ÷ shards each: more threads than cores spin and wait instead of computing.
   */
  threads?: number;
  /** Progress: samples run of all (of those read so far when the count is not known). */
  onProgress?: (done: number, total: number) => void;
}

/** A batch holds at most this many input values (1,024 Fashion-MNIST images; 111 of 3×224×224). */
export const MODEL_BATCH_VALUES = 16 * 1024 * 1024;

/** A model being run over a stream of samples: `run` each batch in order, then `finish`. */
export class ModelRun {
  readonly batchSize: number;
  private readonly views: readonly (readonly [number, number])[];
  private readonly probs: GrowableRows<Float32Array>;
  private readonly ownProbs: GrowableRows<Float32Array>;
  private readonly features: GrowableRows<Float32Array> | null;
  private buffer = new Float32Array(0);
  private done = 0;
  private seconds = 0;
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly model: OnnxClassifier,
    private readonly options: ModelRunOptions,
  ) {
    const rowSize = model.inputShape.reduce((a, b) => a * b, 1);
    this.batchSize = Math.max(
      1,
      Math.floor(options.batchSize ?? Math.min(1024, Math.floor(MODEL_BATCH_VALUES / rowSize))),
    );
    this.views = options.shiftedViews === false ? SHIFTED_VIEWS.slice(0, 1) : SHIFTED_VIEWS;
    const expected = options.expected ?? 0;
    this.probs = new GrowableRows(Float32Array, model.numClasses, expected);
    this.ownProbs = new GrowableRows(Float32Array, model.numClasses, expected);
    const F = model.penultimate?.dims ?? 0;
    this.features = F > 0 ? new GrowableRows(Float32Array, F, expected) : null;
  }

  /** Open the model (MODEL_FORMAT / USAGE errors name the file and what is wrong). */
  static async open(path: string, options: ModelRunOptions = {}): Promise<ModelRun> {
    const classes = options.classes;
    const model = await openOnnxClassifier(path, {
      ...(options.inputShape !== undefined ? { inputShape: options.inputShape } : {}),
      ...(options.output !== undefined ? { output: options.output } : {}),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(classes !== undefined && classes.length >= 2 ? { classes } : {}),
    });
    return new ModelRun(path, model, options);
  }

  /** Run the next samples (at most `batchSize` at a time keeps memory bounded); each must have an image. */
  async run(batch: readonly Sample[]): Promise<void> {
    const started = performance.now();
    const { model } = this;
    const rowSize = model.inputShape.reduce((a, b) => a * b, 1);
    if (this.buffer.length < batch.length * rowSize) this.buffer = new Float32Array(batch.length * rowSize);
    const out = await model.run(imageBatch(batch, model.inputShape, this.buffer), batch.length);
    this.ownProbs.append(out.probs);
    const sum = Float32Array.from(out.probs);
    if (this.features !== null && out.features !== null) this.features.append(out.features);
    // The features stay the image's own: the feature-space detectors look for a trigger's
    // exact pixels, which a shifted view would blur.
    for (const [dx, dy] of this.views.slice(1)) {
      const shifted = batch.map((s) => ({ ...s, image: shiftedImage(s.image as ImageTensor, dx, dy) }));
      const view = await model.run(imageBatch(shifted, model.inputShape, this.buffer), batch.length);
      for (let v = 0; v < sum.length; v++) sum[v] = (sum[v] as number) + (view.probs[v] as number);
    }
    for (let v = 0; v < sum.length; v++) sum[v] = (sum[v] as number) / this.views.length;
    this.probs.append(sum);
    this.done += batch.length;
    this.seconds += (performance.now() - started) / 1000;
    this.options.onProgress?.(this.done, Math.max(this.options.expected ?? 0, this.done));
  }

  /**
   * Every sample's outputs, columns in the order of `classes` (the table's); closes the model.
   * Fails with MODEL_FORMAT when the model's width is not the dataset's class count (a class list
   * known only after the read) or when it produced non-finite values.
   */
  async finish(classes: readonly string[]): Promise<ModelOutputs> {
    try {
      const { model, path } = this;
      const C = classes.length;
      const matchedAtOpen = (this.options.classes?.length ?? 0) >= 2;
      const columns = C >= 2 && !matchedAtOpen ? matchClasses(model, classes) : null;
      const views = this.views.length;
      const n = this.done;
      const summary: ModelRunSummary = {
        path,
        digest: model.digest,
        input: { name: model.inputName, shape: model.inputShape },
        output: model.outputName,
        outputIsProbabilities: model.outputIsProbabilities,
        penultimate: model.penultimate?.name ?? null,
        samples: n,
        imagesPerSecond: Math.round(n / Math.max(this.seconds, 1e-6)),
        views,
      };
      const result: ModelOutputs = {
        probsFrom:
          `model ${path}: output '${model.outputName}'` +
          (model.outputIsProbabilities ? " (its softmax)" : " (softmax of its logits)") +
          (views > 1 ? `, averaged over the image and ${views - 1} one-pixel shifts of it` : "") +
          ", in-sample for the samples it was trained on",
        summary,
        warnings: model.warnings.map((w) => `--model ${path}: ${w}`),
      };
      const probs = reorderColumns(this.probs.finish(), columns);
      if (C >= 2) {
        result.probs = probs;
        result.ownProbs = reorderColumns(this.ownProbs.finish(), columns);
      }
      const features = this.features?.finish() ?? null;
      if (features !== null && model.penultimate !== null) {
        if (!features.every(Number.isFinite))
          throw new AntidoteError(
            "MODEL_FORMAT",
            `${path}: the penultimate layer '${model.penultimate.name}' produced non-finite values.`,
          );
        result.features = {
          data: features,
          dims: model.penultimate.dims,
          from: `model ${path}: penultimate layer '${model.penultimate.name}' (the input of its final Gemm/MatMul)`,
        };
      }
      if (!probs.every(Number.isFinite))
        throw new AntidoteError(
          "MODEL_FORMAT",
          `${path}: output '${model.outputName}' produced non-finite values.`,
        );
      return result;
    } finally {
      await this.close();
    }
  }

  /** Release the session (finish does; call it when the read stops early). Safe twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.model.close();
  }
}

// Row-major rows whose columns are the model's, in the caller's order (null: already so).
function reorderColumns(rows: Float32Array, columns: readonly number[] | null): Float32Array {
  if (columns === null) return rows;
  const C = columns.length;
  const out = new Float32Array(rows.length);
  for (let i = 0; i < rows.length; i += C)
    for (let j = 0; j < C; j++) out[i + j] = rows[i + (columns[j] as number)] as number;
  return out;
}
