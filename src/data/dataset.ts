// The reader/writer contract every format implements. A Dataset can be streamed any
// number of times (simulators make two passes); nothing is held in memory beyond one
// batch, so a dataset larger than memory works.
import type { ColumnMapping } from "./columns.js";
import type { DatasetFormat, DatasetInfo, Sample } from "./sample.js";
import type { AntidoteError } from "../errors.js";

export type OnError = "fail" | "skip";

export interface ReadOptions {
  columns?: ColumnMapping;
  /** What to do with a malformed row: stop (default) or skip it and count it. */
  onError?: OnError;
  /** Called for each skipped row when onError is "skip". */
  onSkip?: (error: AntidoteError) => void;
  /** Called with bytes consumed so far, for progress bars. */
  onProgress?: (bytesRead: number) => void;
  /** Class names for formats that store only indices (IDX). */
  classes?: string[];
  /** Row formats: numeric columns to read as tabular features (default: every unmapped numeric
   * column, when the file has neither a text nor an image column). */
  featureColumns?: string[];
  /** IDX directories hold several splits (train, t10k); which one to read. */
  split?: string;
}

export interface Dataset {
  readonly info: DatasetInfo;
  /** Stream the samples in file order. Each call starts a new pass over the input. */
  samples(): AsyncIterable<Sample>;
}

export interface WriteOptions {
  /** Class list to write (IDX stores indices; Parquet stores HF ClassLabel names). */
  classes?: string[];
  labelKind?: "integer" | "string";
  /** IDX and JSONL/CSV: gzip the output. */
  gzip?: boolean;
  featureNames?: string[];
}

/** A streaming writer: `write` each sample, then `close` to flush and finish the file(s). */
export interface DatasetWriter {
  write(sample: Sample): Promise<void>;
  /** Finishes the output; returns the number of samples written. */
  close(): Promise<number>;
}

export type ReaderFactory = (path: string, options: ReadOptions) => Promise<Dataset>;
export type WriterFactory = (path: string, options: WriteOptions) => Promise<DatasetWriter>;

export interface FormatModule {
  format: DatasetFormat;
  open: ReaderFactory;
  create?: WriterFactory;
}
