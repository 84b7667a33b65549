// Opening a dataset by path (or bundled name) and creating a writer for an output path:
// the one place that knows every format, so callers never branch on formats themselves.
import { existsSync, openSync, readSync, closeSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { AntidoteError } from "../errors.js";
import { stagedWriter, type OutputOptions } from "./atomic-output.js";
import { resolveBuiltin } from "./builtin.js";
import type { Dataset, FormatModule, ReadOptions, WriteOptions, DatasetWriter } from "./dataset.js";
import { csvFormat } from "./formats/csv.js";
import { idxFormat } from "./formats/idx.js";
import { imagefolderFormat } from "./formats/imagefolder.js";
import { jsonlFormat } from "./formats/jsonl.js";
import { parquetFormat } from "./formats/parquet.js";
import { spamAssassinFormat } from "./formats/spamassassin.js";
import { requireSeekable } from "./paths.js";
import type { DatasetFormat } from "./sample.js";

export const FORMATS: Record<DatasetFormat, FormatModule> = {
  jsonl: jsonlFormat,
  csv: csvFormat,
  parquet: parquetFormat,
  imagefolder: imagefolderFormat,
  idx: idxFormat,
  spamassassin: spamAssassinFormat,
};

export const READABLE_FORMATS = Object.keys(FORMATS) as DatasetFormat[];
export const WRITABLE_FORMATS = READABLE_FORMATS.filter((f) => FORMATS[f].create !== undefined);

export interface OpenOptions extends ReadOptions {
  /** Skip detection and read as this format. */
  format?: DatasetFormat;
}

/**
 * Open a dataset for streaming. `spec` is a path (file or directory) or the name of a
 * bundled dataset ("fashion-mnist", "fashion-mnist:test", "spamassassin").
 */
export async function openDataset(spec: string, options: OpenOptions = {}): Promise<Dataset> {
  const builtin = existsSync(spec) ? undefined : resolveBuiltin(spec);
  if (builtin !== undefined) {
    return FORMATS[builtin.format].open(builtin.path, { ...builtin.readOptions, ...withoutFormat(options) });
  }
  if (!existsSync(spec)) {
    throw new AntidoteError(
      "FILE_NOT_FOUND",
      `${spec}: no such file or directory, and not a bundled dataset (see \`antidote datasets\`).`,
    );
  }
  // Before detection reads the first bytes: a pipe (/dev/stdin, <(…)) cannot be read twice.
  requireSeekable(spec);
  const format = options.format ?? detectFormat(spec);
  return FORMATS[format].open(spec, withoutFormat(options));
}

/**
 * Create a streaming writer; the format comes from `format` or the output path's extension.
 * The output is written to a hidden temporary beside it and appears under `path` only when
 * `close` succeeds; a failed write or close, or `abort`, leaves the old output (if any)
 * untouched and removes the temporary. An output that is one of `inputs` (or a directory
 * holding one) is refused, and so is an existing one unless `overwrite` is set.
 */
export async function createWriter(
  path: string,
  options: WriteOptions & { format?: DatasetFormat } & OutputOptions = {},
): Promise<DatasetWriter & { abort(): Promise<void> }> {
  const format = options.format ?? formatFromOutputPath(path);
  const create = FORMATS[format].create;
  if (create === undefined) {
    throw new AntidoteError(
      "USAGE",
      `cannot write ${format}; writable formats: ${WRITABLE_FORMATS.join(", ")}.`,
    );
  }
  const { overwrite, inputs, ...writeOptions } = options;
  // An IDX images file comes with its labels file: both are the output.
  const idxLabels = /images([-.])idx[34]-ubyte/.test(basename(path))
    ? join(dirname(path), basename(path).replace(/images([-.])idx[34]-ubyte/, "labels$1idx1-ubyte"))
    : undefined;
  return stagedWriter(
    path,
    {
      overwrite,
      inputs,
      kind: format === "imagefolder" ? "directory" : "file",
      companions: format === "idx" && idxLabels !== undefined ? [idxLabels] : [],
    },
    (staged) => create(staged, writeOptions),
  );
}

/** Guess a dataset's format from its path and first bytes. */
export function detectFormat(path: string): DatasetFormat {
  const stats = statSync(path);
  if (stats.isDirectory()) return detectDirectoryFormat(path);
  requireSeekable(path, stats);
  const name = basename(path).toLowerCase().replace(/\.gz$/, "");
  if (/idx\d-ubyte$|\.idx\d$/.test(name)) return "idx";
  const ext = extname(name);
  if (ext === ".jsonl" || ext === ".ndjson" || ext === ".json") return "jsonl";
  if (ext === ".csv" || ext === ".tsv") return "csv";
  if (ext === ".parquet" || ext === ".pq") return "parquet";
  const head = firstBytes(path, 4);
  if (head.toString("latin1") === "PAR1") return "parquet";
  if (head[0] === 0 && head[1] === 0 && head[2] === 0x08) return "idx";
  if (head[0] === 0x7b /* { */) return "jsonl";
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${path}: cannot tell the format from the name or content; pass --format (${READABLE_FORMATS.join(", ")}).`,
  );
}

function detectDirectoryFormat(dir: string): DatasetFormat {
  const entries = readdirSync(dir, { withFileTypes: true });
  if (entries.some((e) => e.isFile() && /idx\d-ubyte(\.gz)?$/.test(e.name))) return "idx";
  if (entries.some((e) => e.name === "file_list.json") || existsSync(join(dir, "data", "file_list.json"))) {
    return "spamassassin";
  }
  return "imagefolder";
}

function formatFromOutputPath(path: string): DatasetFormat {
  const name = basename(path).toLowerCase().replace(/\.gz$/, "");
  if (/idx\d-ubyte$/.test(name)) return "idx";
  const ext = extname(name);
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  if (ext === ".csv" || ext === ".tsv") return "csv";
  if (ext === ".parquet") return "parquet";
  if (ext === "") return "imagefolder";
  throw new AntidoteError(
    "USAGE",
    `${path}: cannot tell the output format from the extension; pass --format (${WRITABLE_FORMATS.join(", ")}).`,
  );
}

function firstBytes(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(n);
    const read = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

function withoutFormat(options: OpenOptions): ReadOptions {
  const { format: _format, ...rest } = options;
  return rest;
}
