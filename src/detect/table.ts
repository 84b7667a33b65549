// Build the ScanTable detectors read, one sample at a time, so that a scan can stream a dataset
// larger than memory: labels become class indices (in the dataset's class order when it has one,
// else sorted once the last sample is in), annotations are mapped onto the same classes, images
// keep what the sketch policy says (data/image-sketch.ts), and the optional parts are present
// only when some sample has them. Nothing holds on to the samples themselves.
import { AntidoteError } from "../errors.js";
import { GrowableRows } from "../data/growable.js";
import { ImageSketches, KEEP_ALL_IMAGES, type ImageSketchPolicy } from "../data/image-sketch.js";
import type { Sample } from "../data/sample.js";
import type { ScanAnnotation, ScanTable } from "./types.js";

export interface ScanTableOptions {
  /** The class list in index order (DatasetInfo.classes); default: the sorted set of labels seen. */
  classes?: string[];
  /** Keep raw texts (default true when samples carry text). */
  keepTexts?: boolean;
  /** Which images keep their pixels (default: all, whole). */
  images?: ImageSketchPolicy;
  /** Samples to expect (DatasetInfo.count), so that the columns are allocated once. */
  expected?: number;
}

export function scanTableFromSamples(samples: readonly Sample[], options: ScanTableOptions = {}): ScanTable {
  const builder = new ScanTableBuilder({ expected: samples.length, ...options });
  for (const s of samples) builder.add(s);
  return builder.finish();
}

/** Appends samples to a ScanTable in order; `finish` settles the classes and returns the table. */
export class ScanTableBuilder {
  private readonly ids: string[] = [];
  private readonly digests: string[] = [];
  // Class indices: final ones when the class list is given, else in order of first appearance
  // until `finish` sorts the classes and renumbers them.
  private readonly labels: GrowableRows<Int32Array>;
  private readonly index: Map<string, number>;
  private readonly known: boolean;
  private sources: (string | null)[] | undefined;
  private annotations: ScanAnnotation[][] | undefined;
  private texts: string[] | undefined;
  private images: ImageSketches | undefined;

  constructor(private readonly options: ScanTableOptions = {}) {
    this.known = options.classes !== undefined;
    this.index = new Map((options.classes ?? []).map((c, i) => [c, i]));
    this.labels = new GrowableRows(Int32Array, 1, options.expected ?? 0);
  }

  /** Samples added so far. */
  get length(): number {
    return this.ids.length;
  }

  add(s: Sample): void {
    const i = this.ids.length;
    this.ids.push(s.id);
    this.digests.push(s.digest);
    this.labels.push(s.label === null ? -1 : this.classOf(s.label, s, "label"));
    if (s.source !== null || this.sources !== undefined) {
      this.sources ??= new Array<string | null>(i).fill(null);
      this.sources.push(s.source);
    }
    if (s.annotations.length > 0 || this.annotations !== undefined) {
      this.annotations ??= Array.from({ length: i }, () => []);
      this.annotations.push(
        s.annotations.map((a): ScanAnnotation => ({
          annotator: a.annotator,
          label: this.classOf(a.label, s, "annotation"),
        })),
      );
    }
    if (s.image !== undefined || this.images !== undefined) {
      if (this.images === undefined) {
        this.images = new ImageSketches(this.options.images ?? KEEP_ALL_IMAGES, this.options.expected ?? 0);
        for (let k = 0; k < i; k++) this.images.add(undefined);
      }
      this.images.add(s.image);
    }
    if ((this.options.keepTexts ?? true) && (s.text !== undefined || this.texts !== undefined)) {
      this.texts ??= new Array<string>(i).fill("");
      this.texts.push(s.text ?? "");
    }
  }

  /** The table of every sample added; the builder is spent. */
  finish(): ScanTable {
    const labels = this.labels.finish();
    let classes = this.options.classes ?? [];
    if (!this.known) {
      const seen = [...this.index.keys()];
      classes = [...seen].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
      const to = Int32Array.from(seen, (c) => classes.indexOf(c));
      for (let i = 0; i < labels.length; i++)
        if ((labels[i] as number) >= 0) labels[i] = to[labels[i] as number] as number;
      for (const list of this.annotations ?? []) for (const a of list) a.label = to[a.label] as number;
    }
    const table: ScanTable = { ids: this.ids, digests: this.digests, labels, classes };
    if (this.sources !== undefined) table.sources = this.sources;
    if (this.annotations !== undefined) table.annotations = this.annotations;
    if (this.images !== undefined) table.images = this.images;
    if (this.texts !== undefined) table.texts = this.texts;
    return table;
  }

  private classOf(label: string, sample: Sample, field: string): number {
    const i = this.index.get(label);
    if (i !== undefined) return i;
    if (this.known) {
      const classes = this.options.classes ?? [];
      throw new AntidoteError(
        "ROW_MALFORMED",
        `sample ${sample.id}: ${field} "${label}" is not one of the dataset's classes (${classes.join(", ")}).`,
      );
    }
    this.index.set(label, this.index.size);
    return this.index.size - 1;
  }
}
