// What JSONL and CSV share: turning a stream of raw rows into Samples (column roles,
// tabular feature columns, ids, skip-or-fail), the file plumbing on both ends (gzip by
// magic number, progress, backpressure) and the column layout the two writers emit.
import { closeSync, createReadStream, existsSync, openSync, readSync, statSync } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { once } from "node:events";
import { basename, dirname, extname } from "node:path";
import { Transform, pipeline, type Readable, type Writable } from "node:stream";
import { finished, pipeline as pipelineAsync } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { AntidoteError } from "../../errors.js";
import { closest, resolveColumns, type ColumnMapping } from "../columns.js";
import { skipOrThrow, type Dataset, type ReadOptions, type WriteOptions } from "../dataset.js";
import { encodePng } from "../image-codec.js";
import { malformed, RowDecoder, type RowDecoderOptions } from "../rows.js";
import { requireSeekable } from "../paths.js";
import { imageToBytes, type DatasetInfo, type JsonValue, type Sample } from "../sample.js";

/** One data row as a format parsed it, or why it could not; either way it uses up one row index. */
export type RawRow = { record: Record<string, unknown>; at: string } | { error: AntidoteError };

export interface RowFile {
  format: "jsonl" | "csv";
  /** CSV keeps every value as text; numbers are recognised by their spelling. */
  untyped: boolean;
  /** The file's column names and its first well-formed record (to infer feature columns). */
  peek(): Promise<{ columns: string[]; first: Record<string, unknown> | undefined }>;
  /** A fresh pass over the data rows. Fatal problems (bad header, corrupt gzip) are thrown. */
  rows(onProgress?: (bytesRead: number) => void): AsyncGenerator<RawRow>;
}

/**
 * Open a row-shaped file as a Dataset: resolve the column roles against the file's
 * columns, choose the feature columns, then decode rows lazily, one pass per `samples()`.
 */
export async function openRowDataset(path: string, options: ReadOptions, file: RowFile): Promise<Dataset> {
  const bytes = checkInput(path).bytes;
  const { columns: available, first } = await file.peek();
  const columns = resolveColumns(path, available, options.columns ?? {});
  const featureColumns = chooseFeatureColumns(
    path,
    available,
    columns,
    first,
    options.featureColumns,
    file.untyped,
  );
  const info: DatasetInfo = { format: file.format, path, bytes, columns };
  if (featureColumns.length > 0) info.featureNames = featureColumns;
  const idPrefix = fileStem(path);
  const decoderOptions: RowDecoderOptions = {
    file: path,
    columns,
    featureColumns,
    idPrefix,
    untyped: file.untyped,
    allowPathsOutsideRoot: options.allowPathsOutsideRoot,
    maxImagePixels: options.maxImagePixels,
  };
  const labelKind = firstLabelKind(decoderOptions, first);
  if (labelKind !== undefined) info.labelKind = labelKind;

  async function* samples(): AsyncGenerator<Sample> {
    const decoder = new RowDecoder(decoderOptions);
    let index = 0;
    for await (const row of file.rows(options.onProgress)) {
      const rowIndex = index++;
      if ("error" in row) {
        skipOrThrow(row.error, options);
        continue;
      }
      let sample: Sample;
      try {
        sample = decoder.decode(row.record, rowIndex, row.at);
      } catch (e) {
        skipOrThrow(asRowError(e, row.at), options);
        continue;
      }
      info.labelKind ??= decoder.labelKind;
      yield sample;
    }
  }
  return { info, samples };
}

// Writers (convert) need the label kind before the first pass; the first row tells it, and
// a later row of the other kind stops the pass with LABEL_MIXED_TYPES anyway.
function firstLabelKind(
  options: RowDecoderOptions,
  first: Record<string, unknown> | undefined,
): "integer" | "string" | undefined {
  if (first === undefined) return undefined;
  const decoder = new RowDecoder(options);
  try {
    decoder.decode(first, 0, options.file);
  } catch {
    // a bad first row is reported by the pass that reaches it
  }
  return decoder.labelKind;
}

/** Size and compression of an input file, after checking it exists and is a file. */
export function checkInput(path: string): { bytes: number; gzip: boolean } {
  if (!existsSync(path)) throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such file.`);
  const stat = statSync(path);
  if (stat.isDirectory())
    throw new AntidoteError("INPUT_FORMAT", `${path}: is a directory, not a data file.`);
  requireSeekable(path, stat);
  return { bytes: stat.size, gzip: isGzip(path) };
}

/**
 * The decompressed bytes of a file. Gzip is recognised by its magic number (1f 8b), not
 * by the name; `onProgress` hears the compressed bytes read so far, once per chunk.
 */
export function openInputStream(path: string, onProgress?: (bytesRead: number) => void): Readable {
  const { gzip } = checkInput(path);
  const file = createReadStream(path);
  const stages: Transform[] = [];
  if (onProgress !== undefined) stages.push(progressCounter(onProgress));
  if (gzip) stages.push(createGunzip());
  const last = stages.at(-1);
  if (last === undefined) return file;
  // Errors anywhere in the chain destroy the last stage with that error, so the consumer sees
  // them; destroying the last stage (a consumer that stops early) closes the file.
  pipeline([file, ...stages], () => {});
  return last;
}

/** An error while reading the bytes of `path` (not one row's content), as an AntidoteError. */
export function inputError(path: string, e: unknown): AntidoteError {
  if (e instanceof AntidoteError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const reason = e instanceof Error ? e.message : String(e);
  if (typeof code === "string" && code.startsWith("Z_")) {
    return new AntidoteError("INPUT_FORMAT", `${path}: corrupt or truncated gzip data (${reason}).`, {
      cause: e,
    });
  }
  if (code === "ENOENT") return new AntidoteError("FILE_NOT_FOUND", `${path}: no such file.`, { cause: e });
  return new AntidoteError("INPUT_FORMAT", `${path}: cannot read the file (${reason}).`, { cause: e });
}

/** `data.jsonl.gz` → `data`: the prefix of generated ids `<stem>:<row index>`. */
export function fileStem(path: string): string {
  const name = basename(path).replace(/\.gz$/i, "");
  return name.slice(0, name.length - extname(name).length) || name;
}

/** The file's extension with any `.gz` removed, lower-case (`.tsv` selects tab delimiters). */
export function innerExtension(path: string): string {
  return extname(basename(path).toLowerCase().replace(/\.gz$/, ""));
}

// Explicit --feature-columns must exist; otherwise a file with neither text nor image is
// tabular and every unmapped column whose first value is a number is a feature.
function chooseFeatureColumns(
  path: string,
  available: readonly string[],
  columns: ColumnMapping,
  first: Record<string, unknown> | undefined,
  requested: readonly string[] | undefined,
  untyped: boolean,
): string[] {
  if (requested !== undefined) {
    for (const name of requested) {
      if (!available.includes(name)) throw featureColumnMissing(path, name, available);
    }
    return [...requested];
  }
  if (columns.text !== undefined || columns.image !== undefined || first === undefined) return [];
  const mapped = new Set(Object.values(columns));
  return available.filter((c) => !mapped.has(c) && looksNumeric(first[c], untyped));
}

function featureColumnMissing(path: string, name: string, available: readonly string[]): AntidoteError {
  const guess = closest(name, available);
  const hint = guess === undefined ? "" : ` Did you mean "${guess}"?`;
  return new AntidoteError(
    "COLUMN_MISSING",
    `${path}: no column "${name}" for --feature-columns.${hint} Columns: ${available.join(", ") || "(none)"}.`,
  );
}

// JSON numbers, and the spellings our writers use for non-finite features ("NaN",
// "Infinity"); in CSV any cell that parses as a number.
function looksNumeric(value: unknown, untyped: boolean): boolean {
  if (typeof value === "number") return true;
  if (typeof value !== "string") return false;
  const v = value.trim();
  if (v.toLowerCase() === "nan" || /^[+-]?Infinity$/.test(v)) return true; // as rows.ts parses them
  return untyped && v !== "" && !Number.isNaN(Number(v));
}

// A row's content can make the file system fail (an image cell naming a directory or an
// unreadable file): that is the row's fault, so it is reported as the row's error.
function asRowError(e: unknown, at: string): AntidoteError {
  if (e instanceof AntidoteError) return e;
  const err = e as { code?: unknown; syscall?: unknown } | null;
  if (e instanceof Error && typeof err?.code === "string" && typeof err.syscall === "string") {
    return malformed(at, "", e.message);
  }
  throw e;
}

function isGzip(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(2);
    const n = readSync(fd, head, 0, 2, 0);
    return n === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

function progressCounter(onProgress: (bytesRead: number) => void): Transform {
  let read = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      read += chunk.length;
      onProgress(read);
      callback(null, chunk);
    },
  });
}

// ---------------------------------------------------------------------------------------
// Writing

/** A cell as the writers see it: JSON for JSONL, turned into text for CSV. */
export type Field = [name: string, value: JsonValue];

const ROLE_KEYS = ["id", "text", "image", "label", "source", "annotations"] as const;

/**
 * The fields of one output row, in the order both writers use: id, text, image (PNG data
 * URI), one field per feature, label, source, annotations, then metadata. Metadata keys
 * that would overwrite one of the other fields are left out.
 */
export class WriterLayout {
  private featureNames: string[] | undefined;

  constructor(
    private readonly path: string,
    private readonly options: WriteOptions,
  ) {}

  fields(sample: Sample): Field[] {
    const out: Field[] = [["id", sample.id]];
    if (sample.text !== undefined) out.push(["text", sample.text]);
    if (sample.image !== undefined) out.push(["image", imageDataUri(sample)]);
    const names = sample.features === undefined ? [] : this.namesFor(sample);
    names.forEach((name, i) => out.push([name, jsonNumber(sample.features?.[i] ?? 0)]));
    out.push(["label", this.label(sample.label)]);
    out.push(["source", sample.source]);
    out.push(["annotations", sample.annotations.map((a) => ({ annotator: a.annotator, label: a.label }))]);
    const reserved = new Set<string>([...ROLE_KEYS, ...names]);
    for (const [key, value] of Object.entries(sample.metadata)) {
      if (!reserved.has(key)) out.push([key, jsonValue(value)]);
    }
    return out;
  }

  // Integer class indices go out as JSON numbers so a reader sees the same label kind.
  private label(label: string | null): JsonValue {
    if (label === null) return null;
    if (this.options.labelKind === "integer" && /^-?\d+$/.test(label) && String(Number(label)) === label) {
      return Number(label);
    }
    return label;
  }

  private namesFor(sample: Sample): string[] {
    const n = sample.features?.length ?? 0;
    if (this.featureNames === undefined) {
      const names = this.options.featureNames ?? Array.from({ length: n }, (_, i) => `f${i}`);
      const clash = names.find((name) => (ROLE_KEYS as readonly string[]).includes(name));
      if (clash !== undefined) {
        throw new AntidoteError(
          "USAGE",
          `${this.path}: feature name "${clash}" clashes with the ${clash} column.`,
        );
      }
      this.featureNames = names;
    }
    if (this.featureNames.length !== n) {
      throw new AntidoteError(
        "USAGE",
        `${this.path}: sample "${sample.id}" has ${n} features but the output has ${this.featureNames.length} feature columns.`,
      );
    }
    return this.featureNames;
  }
}

function imageDataUri(sample: Sample): string {
  const img = sample.image;
  if (img === undefined) return "";
  const png = encodePng(imageToBytes(img), img.height, img.width, img.channels);
  return `data:image/png;base64,${png.toString("base64")}`;
}

// JSON has no NaN or ±Infinity: write them as the strings readers parse back as numbers.
function jsonNumber(v: number): JsonValue {
  return Number.isFinite(v) ? v : String(v);
}

function jsonValue(v: JsonValue): JsonValue {
  if (typeof v === "number") return jsonNumber(v);
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v !== null && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  return v;
}

/** A number as text that parses back to the same value, -0 included. */
export function numberText(v: number): string {
  return Object.is(v, -0) ? "-0" : String(v);
}

const FLUSH_CHARS = 1 << 16;

/**
 * An output file written in chunks with backpressure, gzipped when asked. Errors (disk
 * full, no permission) come back as AntidoteErrors from `write` or `close`.
 */
export class OutputFile {
  private pending: string[] = [];
  private pendingChars = 0;

  private constructor(
    private readonly path: string,
    private readonly sink: Writable,
    private readonly done: Promise<void>,
  ) {}

  static async create(path: string, gzip: boolean): Promise<OutputFile> {
    let file: Writable;
    try {
      await mkdir(dirname(path), { recursive: true });
      file = (await open(path, "w")).createWriteStream();
    } catch (e) {
      throw outputError(path, e);
    }
    const gzipper = gzip ? createGzip() : undefined;
    const sink = gzipper ?? file;
    const done = gzipper === undefined ? finished(file) : pipelineAsync(gzipper, file);
    done.catch(() => {}); // observed in write/close; this keeps an early failure from being "unhandled"
    return new OutputFile(path, sink, done);
  }

  async write(text: string): Promise<void> {
    this.pending.push(text);
    this.pendingChars += text.length;
    if (this.pendingChars >= FLUSH_CHARS) await this.flush();
  }

  async close(): Promise<void> {
    await this.flush();
    this.sink.end();
    try {
      await this.done;
    } catch (e) {
      throw outputError(this.path, e);
    }
  }

  /** Stop writing and release the file (its removal is the caller's: see atomic-output.ts). */
  async abort(): Promise<void> {
    this.pending = [];
    this.sink.destroy();
    await this.done.catch(() => undefined);
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join("");
    this.pending = [];
    this.pendingChars = 0;
    try {
      if (!this.sink.write(chunk)) await Promise.race([once(this.sink, "drain"), this.done]);
    } catch (e) {
      throw outputError(this.path, e);
    }
  }
}

function outputError(path: string, e: unknown): AntidoteError {
  if (e instanceof AntidoteError) return e;
  const reason = e instanceof Error ? e.message : String(e);
  return new AntidoteError("USAGE", `${path}: cannot write the output file (${reason}).`, { cause: e });
}
