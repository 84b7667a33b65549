// The scan's pass over the dataset. Samples stream through: each one's metadata (id, digest,
// label, source, annotations, text) goes into the ScanTable, its image into a compact sketch
// (data/image-sketch.ts: 8-bit pixels where the detectors or the proxy models read them, else
// only its shape), and, with the user's model, into the next inference batch, which runs as soon
// as it is full. So a scan holds one batch of samples at a time, never the dataset.
import { AntidoteError } from "../errors.js";
import type { Dataset } from "../data/dataset.js";
import { GrowableRows } from "../data/growable.js";
import type { ImageSketchPolicy } from "../data/image-sketch.js";
import type { Sample } from "../data/sample.js";
import { ScanTableBuilder } from "../detect/table.js";
import type { ScanTable } from "../detect/types.js";
import { ModelRun, type ModelOutputs, type ModelRunOptions } from "./model-run.js";

/** What the representation needs of the samples beyond the ScanTable. */
export interface RepresentationInput {
  /** The user's model's outputs, when it was run over the samples. */
  model?: ModelOutputs;
  /** Every sample's tabular features (n × dims), when the tabular proxy may need them. */
  tabular?: TabularFeatures;
  /** The first sample with no text: the text proxy needs text in every one. */
  textless?: string;
}

/** The samples' tabular features, or the first sample whose count differs from the first's. */
export type TabularFeatures =
  { data: Float32Array; dims: number } | { mismatch: { id: string; values: number; dims: number } };

export interface InputOptions {
  /** Run this model (opened at the first sample) over every sample's image. */
  model?: { path: string } & ModelRunOptions;
  /** Gather the tabular features (only the tabular proxy reads them). */
  tabular?: boolean;
  /** Samples to expect (DatasetInfo.count), so that columns are allocated once. */
  expected?: number;
}

export interface ScanReadOptions extends InputOptions {
  /** Which images keep their pixels in the table. */
  images: ImageSketchPolicy;
  /** Called with the number of samples read so far. */
  onSample?: (count: number) => void;
}

export interface ScanRead {
  table: ScanTable;
  input: RepresentationInput;
  /** The kinds of content the samples carry ("text", "image", "tabular"). */
  content: string[];
}

/** Read the dataset once into a ScanTable and what the representation needs; holds one batch at a time. */
export async function readForScan(dataset: Dataset, options: ScanReadOptions): Promise<ScanRead> {
  const expected = options.expected ?? dataset.info.count;
  const builder = new ScanTableBuilder({
    ...(dataset.info.classes !== undefined ? { classes: dataset.info.classes } : {}),
    images: options.images,
    ...(expected !== undefined ? { expected } : {}),
  });
  const collector = new InputCollector({ ...options, ...(expected !== undefined ? { expected } : {}) });
  try {
    for await (const s of dataset.samples()) {
      builder.add(s);
      await collector.add(s);
      if (builder.length % 500 === 0) options.onSample?.(builder.length);
    }
    options.onSample?.(builder.length);
    const table = builder.finish();
    return { table, input: await collector.finish(table.classes), content: collector.content };
  } finally {
    await collector.close();
  }
}

/** Gathers, one sample at a time, what the representation needs beyond the table. */
export class InputCollector {
  private readonly kinds = new Set<string>();
  private run: ModelRun | undefined;
  private batch: Sample[] = [];
  private tabular: GrowableRows<Float32Array> | undefined;
  private mismatch: { id: string; values: number; dims: number } | undefined;
  private textless: string | undefined;
  private count = 0;

  constructor(private readonly options: InputOptions = {}) {}

  /** The kinds of content seen so far. */
  get content(): string[] {
    return [...this.kinds];
  }

  async add(s: Sample): Promise<void> {
    if (s.text !== undefined) this.kinds.add("text");
    else this.textless ??= s.id;
    if (s.image !== undefined) this.kinds.add("image");
    if (s.features !== undefined) this.kinds.add("tabular");
    if (this.options.tabular === true) this.addTabular(s);
    const model = this.options.model;
    if (model !== undefined) {
      if (s.image === undefined)
        throw new AntidoteError(
          "USAGE",
          `--model ${model.path}: sample "${s.id}" has no image; --model runs image classifiers only. For a ` +
            "text or tabular model, pass its penultimate features with --features and its probabilities with --pred-probs.",
        );
      this.run ??= await ModelRun.open(model.path, {
        ...model,
        ...(this.options.expected !== undefined ? { expected: this.options.expected } : {}),
      });
      this.batch.push(s);
      if (this.batch.length >= this.run.batchSize) await this.flush();
    }
    this.count++;
  }

  /** Run what is left and settle the model's columns on the table's classes. */
  async finish(classes: readonly string[]): Promise<RepresentationInput> {
    const input: RepresentationInput = {};
    if (this.run !== undefined) {
      await this.flush();
      input.model = await this.run.finish(classes);
    }
    if (this.mismatch !== undefined) input.tabular = { mismatch: this.mismatch };
    else if (this.tabular !== undefined)
      input.tabular = { data: this.tabular.finish(), dims: this.tabular.width };
    if (this.textless !== undefined) input.textless = this.textless;
    return input;
  }

  /** Release the model (finish does); for a read that stopped early. */
  async close(): Promise<void> {
    this.batch = [];
    await this.run?.close();
  }

  private async flush(): Promise<void> {
    if (this.run === undefined || this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    await this.run.run(batch);
  }

  // The tabular proxy takes the first sample's feature count for all (what it says otherwise).
  private addTabular(s: Sample): void {
    if (this.mismatch !== undefined) return;
    const row = s.features;
    if (this.count === 0) {
      if (row === undefined) return;
      this.tabular = new GrowableRows(Float32Array, row.length, this.options.expected ?? 0);
    }
    if (this.tabular === undefined) return;
    if (row === undefined || row.length !== this.tabular.width) {
      this.mismatch = { id: s.id, values: row?.length ?? 0, dims: this.tabular.width };
      this.tabular = undefined;
      return;
    }
    this.tabular.append(row);
  }
}
