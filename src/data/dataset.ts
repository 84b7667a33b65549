// The reader/writer contract every format implements. A Dataset can be streamed any
// number of times (simulators make two passes); nothing is held in memory beyond one
// batch, so a dataset larger than memory works.
import type { ColumnMapping } from "./columns.js";
import type { DatasetFormat, DatasetInfo, Sample } from "./sample.js";
import { isAntidoteError, type AntidoteError, type AntidoteErrorCode } from "../errors.js";

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
  /**
   * Read image files that a row or a metadata record names even when they resolve (after
   * following links) outside the dataset's root — the directory holding a JSONL/CSV/Parquet
   * file, or an ImageFolder's directory. Default false: a dataset must not make us read, and
   * then store or export, arbitrary files on this machine.
   */
  allowPathsOutsideRoot?: boolean;
  /**
   * Refuse an image whose header declares more pixels than this, before decoding it
   * (default DEFAULT_MAX_IMAGE_PIXELS): a tiny compressed file can declare gigabytes.
   */
  maxImagePixels?: number;
  /**
   * Parquet: how long one row group may take to decode (milliseconds, default 60 s, plus 2 s
   * per MiB of its compressed pages) before the file is judged built to stall readers.
   */
  decodeDeadlineMs?: number;
}

/**
 * 50 megapixels: above any camera frame in common datasets (a 48 Mpx phone photo) and
 * below Pillow's 89 Mpx bomb warning; decoding one costs about 0.6 GB at most.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;

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
  /** Give up: release what is open and remove what was written (the writers `createWriter`
   * returns always have it). Safe after a failed write or close, and twice. */
  abort?(): Promise<void>;
}

export type ReaderFactory = (path: string, options: ReadOptions) => Promise<Dataset>;
export type WriterFactory = (path: string, options: WriteOptions) => Promise<DatasetWriter>;

export interface FormatModule {
  format: DatasetFormat;
  open: ReaderFactory;
  create?: WriterFactory;
}

/**
 * Problems confined to one row, image or record: `onError: "skip"` may skip these and
 * count them. Anything else (a bad header, corrupt gzip, mixed label types) always stops,
 * because skipping it would silently drop or mislabel the rest of the file.
 */
const SKIPPABLE: ReadonlySet<AntidoteErrorCode> = new Set([
  "ROW_MALFORMED",
  "IMAGE_UNDECODABLE",
  "FILE_NOT_FOUND",
  "PATH_OUTSIDE_ROOT", // the file is not read; the rows around it are unaffected
]);

/** The one place a reader decides whether a row's error stops the read or is skipped and reported. */
export function skipOrThrow(e: unknown, options: Pick<ReadOptions, "onError" | "onSkip">): void {
  if (!isAntidoteError(e) || !SKIPPABLE.has(e.code) || options.onError !== "skip") throw e;
  options.onSkip?.(e);
}
