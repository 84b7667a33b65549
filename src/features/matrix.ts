// What featurizers hand to detectors: a dense row-major matrix (one row per sample, in
// dataset order) or sparse rows, and the contract every featurizer follows.
import type { Sample } from "../data/sample.js";
import type { SparseVector } from "../math/sparse.js";

export type { SparseVector } from "../math/sparse.js";

export interface FeatureMatrix {
  rows: number;
  cols: number;
  /** Row-major: row i is data[i·cols, (i+1)·cols). */
  data: Float32Array;
  /** Sample id of each row. */
  ids: string[];
}

/** One sparse row per sample, in dataset order; `cols` is the dimension of the space. */
export interface SparseRows {
  cols: number;
  rows: SparseVector[];
  ids: string[];
}

/**
 * A featurizer learns mergeable statistics in one streaming pass (`observe` each sample, or
 * `fit` a stream), then transforms samples one at a time. Fitting adds to what was fitted
 * before, so fitting two shards in turn equals fitting their concatenation; `stats()` is the
 * plain-data summary that shards fitted apart exchange and merge.
 */
export interface Featurizer<Out, Stats> {
  observe(sample: Sample): void;
  fit(samples: AsyncIterable<Sample>): Promise<void>;
  transform(sample: Sample): Out;
  stats(): Stats;
}

/** Row i of a matrix, as a view (no copy). */
export function matrixRow(m: FeatureMatrix, i: number): Float32Array {
  return m.data.subarray(i * m.cols, (i + 1) * m.cols);
}

/** `fit` in terms of `observe`, for featurizers to share. */
export async function observeAll(
  featurizer: { observe(sample: Sample): void },
  samples: AsyncIterable<Sample>,
) {
  for await (const s of samples) featurizer.observe(s);
}

/** Appends equal-length rows into one growing Float32Array, so the matrix is built in one copy. */
export class MatrixBuilder {
  private data = new Float32Array(0);
  private count = 0;
  private readonly ids: string[] = [];
  private cols = -1;

  constructor(private readonly expectedRows = 0) {}

  push(id: string, row: Float32Array): void {
    if (this.cols < 0) {
      this.cols = row.length;
      this.data = new Float32Array(Math.max(1, this.expectedRows) * row.length);
    } else if (row.length !== this.cols) {
      throw new RangeError(`row "${id}" has ${row.length} columns, earlier rows ${this.cols}`);
    }
    if ((this.count + 1) * this.cols > this.data.length) {
      const grown = new Float32Array(Math.max(2 * this.data.length, (this.count + 1) * this.cols));
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set(row, this.count * this.cols);
    this.ids.push(id);
    this.count++;
  }

  finish(): FeatureMatrix {
    const cols = Math.max(0, this.cols);
    return { rows: this.count, cols, data: this.data.slice(0, this.count * cols), ids: this.ids };
  }
}
