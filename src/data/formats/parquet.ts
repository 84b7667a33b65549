// Apache Parquet, including Hugging Face `datasets` exports (Image structs, ClassLabel
// names in the `huggingface` key-value metadata). Reading goes one row group at a time;
// writing buffers one row group (by rows or by image bytes) and flushes it to disk, so
// neither side holds more than two row groups (reading decodes one ahead, on a thread with a
// deadline: parquet-decoder.ts) whatever the file's size.
import { randomUUID } from "node:crypto";
import { mkdir, open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetSchema,
  type AsyncBuffer,
  type FileMetaData,
  type KeyValue,
  type RowGroup,
  type SchemaElement,
  type SchemaTree,
} from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { ByteWriter, ParquetWriter, type ColumnSource } from "hyparquet-writer";
import { z } from "zod";
import { AntidoteError, where } from "../../errors.js";
import { closest, COLUMN_ROLES, columnMissing, resolveColumns, type ColumnMapping } from "../columns.js";
import {
  skipOrThrow,
  type Dataset,
  type DatasetWriter,
  type FormatModule,
  type ReadOptions,
  type WriteOptions,
} from "../dataset.js";
import { encodePng } from "../image-codec.js";
import { nonFileKind } from "../paths.js";
import { malformed, RowDecoder } from "../rows.js";
import { imageToBytes, type ColumnRole, type DatasetInfo, type JsonValue, type Sample } from "../sample.js";
import { createParquetDecoder, type ParquetDecoder, type RowRange } from "./parquet-decoder.js";

export interface ParquetWriteOptions extends WriteOptions {
  /** Rows per row group (default 10,000). */
  rowGroupSize?: number;
  /** A row group is also flushed once its encoded images and texts reach this many bytes (default 64 MiB). */
  rowGroupBytes?: number;
}

export const parquetFormat: FormatModule = {
  format: "parquet",
  open: openParquet,
  create: createParquetWriter,
};

/**
 * Open a Parquet file: the footer gives the schema, row count and key-value metadata up
 * front; samples are then decoded one row group at a time.
 */
export async function openParquet(path: string, options: ReadOptions = {}): Promise<Dataset> {
  const { file, metadata } = await readFooter(path);
  requireReadableCodecs(path, metadata);
  requireConsistentLayout(path, metadata);
  const available = parquetSchema(metadata).children.map((c) => c.element.name);
  const ours = antidoteLayout(path, metadata);
  const columns = mapColumns(path, available, ours, options.columns ?? {});
  const featureColumns = chooseFeatureColumns(
    path,
    metadata,
    available,
    columns,
    options.featureColumns ?? ours?.featureNames,
  );
  const labelType = columns.label === undefined ? undefined : leafType(metadata, columns.label);
  const labelKind =
    labelType === "INT32" || labelType === "INT64"
      ? "integer"
      : labelType === "BYTE_ARRAY"
        ? "string"
        : undefined;
  const classes =
    labelKind === "integer" ? (options.classes ?? classLabelNames(metadata, columns.label)) : undefined;

  const info: DatasetInfo = {
    format: "parquet",
    path,
    count: Number(metadata.num_rows),
    bytes: file.byteLength,
    columns,
  };
  if (classes !== undefined) info.classes = classes;
  if (labelKind !== undefined) info.labelKind = labelKind;
  if (featureColumns.length > 0) info.featureNames = featureColumns;

  const reader: GroupReader = {
    path,
    file,
    metadata,
    columns,
    featureColumns,
    classes,
    metadataColumn: ours?.metadataColumn,
    options,
  };
  return { info, samples: () => readSamples(reader) };
}

/** Create a streaming Parquet writer laid out as a Hugging Face `datasets` table (see `layoutOf`). */
export async function createParquetWriter(
  path: string,
  options: ParquetWriteOptions = {},
): Promise<DatasetWriter> {
  for (const name of options.featureNames ?? []) {
    if (RESERVED_COLUMNS.has(name)) {
      throw new AntidoteError(
        "USAGE",
        `${path}: feature name "${name}" clashes with a column Antidote writes; rename the feature.`,
      );
    }
  }
  const sink = await FileSink.open(path);
  return new ParquetDatasetWriter(path, sink, options);
}

// ── reading ────────────────────────────────────────────────────────────────────────

interface GroupReader {
  path: string;
  file: TrackedBuffer;
  metadata: FileMetaData;
  columns: ColumnMapping;
  featureColumns: string[];
  classes: string[] | undefined;
  metadataColumn: string | undefined;
  options: ReadOptions;
}

const TEXT_ROLES: readonly ColumnRole[] = ["id", "text", "label", "source", "annotations"];

async function* readSamples(r: GroupReader): AsyncGenerator<Sample> {
  const { path, metadata, options } = r;
  const decoder = new RowDecoder({
    file: path,
    columns: r.columns,
    featureColumns: r.featureColumns,
    idPrefix: stem(path),
    allowPathsOutsideRoot: options.allowPathsOutsideRoot,
    maxImagePixels: options.maxImagePixels,
  });
  const textColumns = TEXT_ROLES.map((role) => r.columns[role]).filter((c): c is string => c !== undefined);
  const pages = createParquetDecoder(path, r.file.byteLength, {
    ...(options.decodeDeadlineMs !== undefined && { deadlineMs: options.decodeDeadlineMs }),
  });
  const groups = metadata.row_groups;
  const ranges: RowRange[] = [];
  for (let g = 0, rowStart = 0; g < groups.length; g++) {
    const group = groups[g]!;
    const rowEnd = rowStart + Number(group.num_rows);
    ranges.push({ rowStart, rowEnd, bytes: groupBytes(group), utf8: false });
    rowStart = rowEnd;
  }
  // One row group ahead: the thread decodes pages of the next while this one's images are
  // decoded here.
  const fetch = (g: number) => {
    const read = readGroup(r, pages, g, ranges[g]!);
    read.catch(() => undefined); // awaited below, or dropped when the reader stops early
    return read;
  };
  let ahead = ranges.length > 0 ? fetch(0) : undefined;
  let bytesRead = 0;
  try {
    for (const [g, range] of ranges.entries()) {
      const rows = await ahead!;
      ahead = g + 1 < ranges.length ? fetch(g + 1) : undefined;
      for (const [k, row] of rows.entries()) {
        const index = range.rowStart + k;
        try {
          yield decodeRow(r, decoder, textColumns, row, index);
        } catch (e) {
          skipOrThrow(e, options);
        }
      }
      bytesRead += range.bytes;
      options.onProgress?.(g === ranges.length - 1 ? r.file.byteLength : bytesRead);
    }
  } finally {
    await pages.close();
  }
}

// Only this row group's pages are fetched, and decoded on the decoder's thread under a
// deadline (parquet-decoder.ts). Unannotated BYTE_ARRAY stays binary (image bytes); string
// columns carry a UTF8 annotation in every writer we know of, and `decodeRow` converts stray
// binary text cells anyway.
async function readGroup(
  r: GroupReader,
  pages: ParquetDecoder,
  g: number,
  range: RowRange,
): Promise<Record<string, unknown>[]> {
  const { rowStart, rowEnd } = range;
  try {
    return await pages.read(range);
  } catch (e) {
    if (e instanceof AntidoteError && e.code === "INPUT_FORMAT") throw e;
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${r.path}: cannot read row group ${g} (rows ${rowStart}–${rowEnd - 1}): ${reason(e)}.`,
      { cause: e },
    );
  }
}

function decodeRow(
  r: GroupReader,
  decoder: RowDecoder,
  textColumns: string[],
  row: Record<string, unknown>,
  index: number,
): Sample {
  const at = where(r.path, index, "row");
  const record: Record<string, unknown> = { ...row };
  for (const column of textColumns) {
    const v = record[column];
    if (v instanceof Uint8Array) record[column] = TEXT_DECODER.decode(v);
  }
  let packed: unknown;
  if (r.metadataColumn !== undefined) {
    packed = record[r.metadataColumn];
    delete record[r.metadataColumn];
  }
  const sample = decoder.decode(record, index, at);
  if (r.classes !== undefined && sample.label !== null)
    sample.label = className(r.classes, sample.label, at, r.columns.label ?? "label");
  if (r.metadataColumn !== undefined) sample.metadata = unpackMetadata(packed, at, r.metadataColumn);
  return sample;
}

// Hugging Face stores ClassLabel values as indices and uses -1 for "no label".
function className(classes: string[], label: string, at: string, column: string): string | null {
  const i = Number(label);
  if (i === -1) return null;
  const name = classes[i];
  if (name === undefined)
    throw malformed(at, column, `class index ${label} is outside the ${classes.length} class names`);
  return name;
}

const metadataObject = z.record(z.string(), z.json());

function unpackMetadata(packed: unknown, at: string, column: string): Record<string, JsonValue> {
  if (packed === null || packed === undefined || packed === "") return {};
  let value: unknown = packed instanceof Uint8Array ? TEXT_DECODER.decode(packed) : packed;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      throw malformed(at, column, "metadata is not valid JSON");
    }
  }
  const parsed = metadataObject.safeParse(value);
  if (!parsed.success) throw malformed(at, column, "metadata must be a JSON object");
  return parsed.data;
}

async function readFooter(path: string): Promise<{ file: TrackedBuffer; metadata: FileMetaData }> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such file.`);
  if (!info.isFile())
    throw new AntidoteError("INPUT_FORMAT", `${path}: is ${nonFileKind(info)}, not a Parquet file.`);
  const file = tracked(await asyncBufferFromFile(path));
  try {
    if (file.byteLength < 12 || TEXT_DECODER.decode(await file.slice(0, 4)) !== "PAR1")
      throw new Error("no PAR1 magic at the start");
    const metadata = await parquetMetadataAsync(file);
    // The schema tree is built from counts the footer declares; a footer that parses can still
    // describe a tree that does not close (a child count past the end of the list).
    parquetSchema(metadata);
    return { file, metadata };
  } catch (e) {
    await file.settled();
    throw new AntidoteError("INPUT_FORMAT", `${path}: not a Parquet file (${reason(e)}).`, { cause: e });
  }
}

/** An AsyncBuffer that knows its reads in flight. */
interface TrackedBuffer extends AsyncBuffer {
  /** Resolves when every read started so far has finished, however it ended. */
  settled(): Promise<void>;
}

// hyparquet reads column chunks in parallel and abandons the rest when one fails. Waiting
// for those reads before reporting the failure means no read outlives the call: none can
// fail later (the file removed meanwhile) as an unhandled rejection that ends the process.
function tracked(file: AsyncBuffer): TrackedBuffer {
  const inFlight = new Set<Promise<ArrayBuffer>>();
  return {
    byteLength: file.byteLength,
    slice(start, end) {
      const read = Promise.resolve(file.slice(start, end));
      inFlight.add(read);
      const done = () => void inFlight.delete(read);
      read.then(done, done);
      return read;
    },
    async settled() {
      await Promise.allSettled([...inFlight]);
    },
  };
}

// hyparquet-compressors covers every codec pyarrow, Spark and `datasets` write (Snappy,
// ZSTD, GZIP, Brotli, LZ4); only the long-deprecated LZO is left out.
const READABLE_CODECS = new Set(["UNCOMPRESSED", ...Object.keys(compressors)]);

function requireReadableCodecs(path: string, metadata: FileMetaData): void {
  for (const group of metadata.row_groups) {
    for (const chunk of group.columns) {
      const codec = chunk.meta_data?.codec;
      if (codec !== undefined && !READABLE_CODECS.has(codec)) {
        const column = chunk.meta_data?.path_in_schema.join(".") ?? "?";
        throw new AntidoteError(
          "INPUT_FORMAT",
          `${path}: column "${column}" is compressed with ${codec}; Antidote reads ${[...READABLE_CODECS].join(", ")} (rewrite it with compression="zstd" or "snappy").`,
        );
      }
    }
  }
}

/** A row group is decoded whole; one declaring more than this is refused before reading it. */
const MAX_ROW_GROUP_BYTES = 2 ** 31;

// The footer is untrusted: every row group must hold each schema column exactly once (a
// column chunk hyparquet cannot place is decoded but never awaited, and its failure would
// surface as an unhandled rejection), and declare a size that can be held in memory.
function requireConsistentLayout(path: string, metadata: FileMetaData): void {
  const leaves = leafPaths(parquetSchema(metadata)).sort();
  for (const [g, group] of metadata.row_groups.entries()) {
    const chunks = group.columns.map((c) => c.meta_data?.path_in_schema.join(".") ?? "").sort();
    if (chunks.join("\u0000") !== leaves.join("\u0000"))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${path}: row group ${g} holds columns [${chunks.join(", ")}], the schema declares [${leaves.join(", ")}]; the footer is corrupt.`,
      );
    const bytes = group.columns.reduce(
      (sum, c) => sum + Number(c.meta_data?.total_uncompressed_size ?? 0),
      0,
    );
    if (bytes > MAX_ROW_GROUP_BYTES)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${path}: row group ${g} declares ${bytes} uncompressed bytes, over the ${MAX_ROW_GROUP_BYTES}-byte limit for one row group; refused before reading it.`,
      );
  }
}

function leafPaths(node: SchemaTree): string[] {
  return node.children.length === 0 ? [node.path.join(".")] : node.children.flatMap(leafPaths);
}

// Files we wrote name their own columns in the `antidote` key; anything the user maps
// explicitly still wins. Our feature and metadata columns are kept out of auto-detection
// so a feature called "content" is never taken for text.
function mapColumns(
  path: string,
  available: string[],
  ours: AntidoteLayout | undefined,
  explicit: ColumnMapping,
): ColumnMapping {
  for (const role of COLUMN_ROLES) {
    const name = explicit[role];
    if (name !== undefined && !available.includes(name)) throw columnMissing(path, role, name, available);
  }
  const requested: ColumnMapping = { ...ours?.columns, ...explicit };
  const hidden = new Set([
    ...(ours?.featureNames ?? []),
    ...(ours?.metadataColumn === undefined ? [] : [ours.metadataColumn]),
  ]);
  const named = new Set(Object.values(requested));
  const visible = available.filter((c) => !hidden.has(c) || named.has(c));
  for (const role of COLUMN_ROLES) {
    const name = requested[role];
    if (name !== undefined && !visible.includes(name)) delete requested[role];
  }
  return resolveColumns(path, visible, requested);
}

const NUMERIC = new Set(["INT32", "INT64", "FLOAT", "DOUBLE"]);
const NOT_A_QUANTITY = new Set([
  "DATE",
  "TIME_MILLIS",
  "TIME_MICROS",
  "TIMESTAMP_MILLIS",
  "TIMESTAMP_MICROS",
  "INTERVAL",
]);

function chooseFeatureColumns(
  path: string,
  metadata: FileMetaData,
  available: string[],
  columns: ColumnMapping,
  requested: string[] | undefined,
): string[] {
  if (requested !== undefined) {
    for (const name of requested) {
      if (!available.includes(name)) {
        const guess = closest(name, available);
        throw new AntidoteError(
          "COLUMN_MISSING",
          `${path}: no column "${name}" for --feature-columns.${guess === undefined ? "" : ` Did you mean "${guess}"?`} Columns: ${available.join(", ")}.`,
        );
      }
    }
    return requested;
  }
  if (columns.text !== undefined || columns.image !== undefined) return [];
  const mapped = new Set(Object.values(columns));
  return parquetSchema(metadata)
    .children.map((c) => c.element)
    .filter((e) => !mapped.has(e.name) && e.type !== undefined && NUMERIC.has(e.type))
    .filter((e) => e.converted_type === undefined || !NOT_A_QUANTITY.has(e.converted_type))
    .filter(
      (e) =>
        e.logical_type === undefined ||
        e.logical_type.type === "INTEGER" ||
        e.logical_type.type === "DECIMAL",
    )
    .map((e) => e.name);
}

function leafType(metadata: FileMetaData, column: string): string | undefined {
  const node = parquetSchema(metadata).children.find((c) => c.element.name === column);
  return node === undefined || node.children.length > 0 ? undefined : node.element.type;
}

const hfFeaturesSchema = z.object({ info: z.object({ features: z.record(z.string(), z.unknown()) }) });
const classLabelSchema = z.object({ _type: z.literal("ClassLabel"), names: z.array(z.string()) });

/** Class names from the `huggingface` metadata when the label column is a ClassLabel. */
function classLabelNames(metadata: FileMetaData, labelColumn: string | undefined): string[] | undefined {
  if (labelColumn === undefined) return undefined;
  const features = hfFeaturesSchema.safeParse(kvJson(metadata, "huggingface"));
  if (!features.success) return undefined;
  const label = classLabelSchema.safeParse(features.data.info.features[labelColumn]);
  return label.success ? label.data.names : undefined;
}

// Our own key: how a file Antidote wrote lays out its columns, so a round trip restores
// the sample exactly (metadata keys included) without guessing.
const ANTIDOTE_KEY = "antidote";
const roleNames = z.object(
  Object.fromEntries(COLUMN_ROLES.map((r) => [r, z.string().optional()])) as Record<
    ColumnRole,
    z.ZodOptional<z.ZodString>
  >,
);
const antidoteLayoutSchema = z.object({
  version: z.literal(1),
  columns: roleNames,
  featureNames: z.array(z.string()).optional(),
  metadataColumn: z.string().optional(),
});
type AntidoteLayout = z.infer<typeof antidoteLayoutSchema>;

function antidoteLayout(path: string, metadata: FileMetaData): AntidoteLayout | undefined {
  const raw = kvJson(metadata, ANTIDOTE_KEY);
  if (raw === undefined) return undefined;
  const parsed = antidoteLayoutSchema.safeParse(raw);
  if (!parsed.success) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: the "${ANTIDOTE_KEY}" key-value metadata is not a layout this version understands.`,
    );
  }
  return parsed.data;
}

function kvJson(metadata: FileMetaData, key: string): unknown {
  const value = metadata.key_value_metadata?.find((kv) => kv.key === key)?.value;
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return undefined;
  }
}

function groupBytes(group: RowGroup): number {
  if (group.total_compressed_size !== undefined) return Number(group.total_compressed_size);
  return group.columns.reduce((sum, c) => sum + Number(c.meta_data?.total_compressed_size ?? 0n), 0);
}

// ── writing ────────────────────────────────────────────────────────────────────────

const DEFAULT_ROW_GROUP_ROWS = 10_000;
const DEFAULT_ROW_GROUP_BYTES = 64 * 1024 * 1024;
const RESERVED_COLUMNS = new Set(["id", "text", "image", "label", "source", "annotations", "metadata"]);

/** One sample, encoded for storage while it waits in the row-group buffer. */
interface PendingRow {
  id: string;
  text: string | undefined;
  png: Uint8Array | undefined;
  features: Float32Array | undefined;
  label: string | null;
  source: string | null;
  annotations: string | null;
  metadata: string | null;
}

/** The columns of the file, fixed by the first row group (Parquet has one schema per file). */
interface Layout {
  text: boolean;
  image: boolean;
  featureNames: string[];
  label:
    | { kind: "classes"; classes: string[]; index: Map<string, number> }
    | { kind: "integer" }
    | { kind: "string" };
}

/**
 * Columns, in order: `id` STRING; `text` STRING; `image` STRUCT<bytes BINARY, path STRING>
 * holding PNG (the HF Image feature); one FLOAT column per feature; `label` INT64 with an
 * HF ClassLabel when classes are known, else INT64 for integer labels or STRING;
 * `source` STRING; `annotations` and `metadata` as JSON text.
 */
class ParquetDatasetWriter implements DatasetWriter {
  private pending: PendingRow[] = [];
  private pendingBytes = 0;
  private layout: Layout | undefined;
  private pq: ParquetWriter | undefined;
  private written = 0;
  private closed = false;
  private failure: Error | undefined;

  constructor(
    private readonly path: string,
    private readonly sink: FileSink,
    private readonly options: ParquetWriteOptions,
  ) {}

  async write(sample: Sample): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new AntidoteError("INTERNAL", `${this.path}: write after close.`);
    const row = encodeRow(sample);
    this.pending.push(row);
    this.pendingBytes +=
      (row.png?.byteLength ?? 0) + (row.text?.length ?? 0) + (row.features?.byteLength ?? 0);
    const rowLimit = this.options.rowGroupSize ?? DEFAULT_ROW_GROUP_ROWS;
    const byteLimit = this.options.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES;
    if (this.pending.length >= rowLimit || this.pendingBytes >= byteLimit)
      await this.guard(() => this.flush());
  }

  async close(): Promise<number> {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) return this.written;
    this.closed = true;
    await this.guard(async () => {
      if (this.pending.length > 0) await this.flush();
      await this.parquetWriter().finish();
      await this.sink.commit();
    });
    return this.written;
  }

  /** Give up: close and remove the partial file. */
  async abort(): Promise<void> {
    this.closed = true;
    this.failure ??= new AntidoteError("INTERNAL", `${this.path}: write after abort.`);
    await this.sink.abandon();
  }

  // A failed row group leaves no file behind: the partial file is removed and every
  // later call repeats the first error.
  private async guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      this.failure = e instanceof Error ? e : new AntidoteError("INTERNAL", String(e));
      await this.sink.abandon();
      throw e;
    }
  }

  private async flush(): Promise<void> {
    const rows = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.layout ??= layoutOf(rows, this.options);
    const columnData = toColumns(this.path, this.layout, rows);
    await this.parquetWriter().write({ columnData, rowGroupSize: rows.length });
    this.written += rows.length;
  }

  private parquetWriter(): ParquetWriter {
    this.layout ??= layoutOf([], this.options);
    this.pq ??= new ParquetWriter({
      writer: this.sink,
      schema: schemaOf(this.layout),
      kvMetadata: kvMetadataOf(this.layout),
      createdBy: "antidote",
    });
    return this.pq;
  }
}

function encodeRow(sample: Sample): PendingRow {
  const img = sample.image;
  return {
    id: sample.id,
    text: sample.text,
    png: img && encodePng(imageToBytes(img), img.height, img.width, img.channels),
    features: sample.features,
    label: sample.label,
    source: sample.source,
    annotations: sample.annotations.length > 0 ? JSON.stringify(sample.annotations) : null,
    metadata: Object.keys(sample.metadata).length > 0 ? JSON.stringify(sample.metadata) : null,
  };
}

function layoutOf(rows: PendingRow[], options: ParquetWriteOptions): Layout {
  const width =
    rows.find((r) => r.features !== undefined)?.features?.length ?? options.featureNames?.length ?? 0;
  const featureNames = options.featureNames ?? Array.from({ length: width }, (_, i) => `f${i}`);
  const classes = options.classes;
  return {
    text: rows.some((r) => r.text !== undefined),
    image: rows.some((r) => r.png !== undefined),
    featureNames,
    label:
      classes !== undefined
        ? { kind: "classes", classes, index: new Map(classes.map((c, i) => [c, i])) }
        : options.labelKind === "integer"
          ? { kind: "integer" }
          : { kind: "string" },
  };
}

function toColumns(path: string, layout: Layout, rows: PendingRow[]): ColumnSource[] {
  const fail = (row: PendingRow, detail: string) =>
    new AntidoteError("USAGE", `${path}: sample "${row.id}" ${detail}.`);
  const columns: ColumnSource[] = [{ name: "id", data: rows.map((r) => r.id) }];
  if (layout.text) columns.push({ name: "text", data: rows.map((r) => r.text ?? null) });
  if (layout.image) {
    columns.push({
      name: "image",
      statistics: false,
      data: rows.map((r) => (r.png === undefined ? null : { bytes: r.png, path: null })),
    });
  }
  layout.featureNames.forEach((name, j) => {
    columns.push({
      name,
      data: rows.map((r) => {
        if (r.features?.length !== layout.featureNames.length) {
          throw fail(
            r,
            `has ${r.features?.length ?? 0} features, but the file has ${layout.featureNames.length} feature columns`,
          );
        }
        return r.features[j] ?? 0;
      }),
    });
  });
  columns.push({ name: "label", data: rows.map((r) => labelCell(layout, r, fail)) });
  columns.push({ name: "source", data: rows.map((r) => r.source) });
  columns.push({ name: "annotations", data: rows.map((r) => r.annotations) });
  columns.push({ name: "metadata", data: rows.map((r) => r.metadata) });
  for (const r of rows) {
    if (!layout.text && r.text !== undefined)
      throw fail(r, "has text, but the first row group had none (Parquet fixes the columns)");
    if (!layout.image && r.png !== undefined)
      throw fail(r, "has an image, but the first row group had none (Parquet fixes the columns)");
  }
  return columns;
}

function labelCell(
  layout: Layout,
  row: PendingRow,
  fail: (row: PendingRow, detail: string) => AntidoteError,
): bigint | string | null {
  if (row.label === null) return null;
  const spec = layout.label;
  if (spec.kind === "string") return row.label;
  if (spec.kind === "integer") {
    if (!/^-?\d+$/.test(row.label))
      throw fail(row, `has label "${row.label}", which is not an integer class index`);
    return BigInt(row.label);
  }
  const i = spec.index.get(row.label);
  if (i === undefined)
    throw fail(row, `has label "${row.label}", which is not one of the classes (${spec.classes.join(", ")})`);
  return BigInt(i);
}

const STRING = { type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" } as const;

function schemaOf(layout: Layout): SchemaElement[] {
  const body: SchemaElement[] = [
    { name: "id", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "REQUIRED" },
  ];
  if (layout.text) body.push({ name: "text", ...STRING });
  if (layout.image) {
    body.push(
      { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
      { name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" },
      { name: "path", ...STRING },
    );
  }
  for (const name of layout.featureNames) body.push({ name, type: "FLOAT", repetition_type: "REQUIRED" });
  body.push(
    layout.label.kind === "string"
      ? { name: "label", ...STRING }
      : { name: "label", type: "INT64", repetition_type: "OPTIONAL" },
  );
  body.push(
    { name: "source", ...STRING },
    { name: "annotations", ...STRING },
    { name: "metadata", ...STRING },
  );
  const nested = layout.image ? 2 : 0; // the image struct's bytes and path
  return [{ name: "schema", num_children: body.length - nested }, ...body];
}

// `huggingface` is what `datasets` writes and reads back as Features; `antidote` is ours.
function kvMetadataOf(layout: Layout): KeyValue[] {
  const string = { dtype: "string", _type: "Value" };
  const features: Record<string, unknown> = { id: string };
  const columns: ColumnMapping = { id: "id", label: "label", source: "source", annotations: "annotations" };
  if (layout.text) [features.text, columns.text] = [string, "text"];
  if (layout.image) [features.image, columns.image] = [{ _type: "Image" }, "image"];
  for (const name of layout.featureNames) features[name] = { dtype: "float32", _type: "Value" };
  const label = layout.label;
  features.label =
    label.kind === "classes"
      ? { names: label.classes, _type: "ClassLabel" }
      : label.kind === "integer"
        ? { dtype: "int64", _type: "Value" }
        : string;
  Object.assign(features, { source: string, annotations: string, metadata: string });
  const ours: AntidoteLayout = {
    version: 1,
    columns,
    featureNames: layout.featureNames,
    metadataColumn: "metadata",
  };
  return [
    { key: "huggingface", value: JSON.stringify({ info: { features } }) },
    { key: ANTIDOTE_KEY, value: JSON.stringify(ours) },
  ];
}

/**
 * hyparquet-writer's byte sink, flushed to disk after every row group (ParquetWriter calls
 * `flush` then and awaits it), so the buffer never holds more than one encoded row group.
 * (hyparquet-writer's own `fileWriter` appends with synchronous writes.) The bytes go to a
 * hidden partial file that becomes the output only once the footer is written, so a
 * reader never sees half a file under the output name.
 */
class FileSink extends ByteWriter {
  private constructor(
    private readonly target: string,
    private readonly partial: string,
    private readonly handle: FileHandle,
  ) {
    super(1 << 20);
  }

  static async open(target: string): Promise<FileSink> {
    const partial = join(
      dirname(target),
      `.${basename(target)}.${process.pid}-${randomUUID().slice(0, 8)}.partial`,
    );
    try {
      await mkdir(dirname(target), { recursive: true });
      return new FileSink(target, partial, await open(partial, "w"));
    } catch (e) {
      throw new AntidoteError("USAGE", `${target}: cannot create the output file: ${reason(e)}.`, {
        cause: e,
      });
    }
  }

  async flush(): Promise<void> {
    if (this.index === 0) return;
    try {
      await this.handle.write(new Uint8Array(this.buffer, 0, this.index));
    } catch (e) {
      throw new AntidoteError("USAGE", `${this.target}: cannot write: ${reason(e)}.`, { cause: e });
    }
    this.index = 0;
  }

  /** Write what ParquetWriter.finish left in the buffer (indexes, footer), then publish the file. */
  async commit(): Promise<void> {
    await this.flush();
    await this.handle.close();
    await rename(this.partial, this.target);
  }

  async abandon(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(this.partial, { force: true });
  }
}

const TEXT_DECODER = new TextDecoder();

function stem(path: string): string {
  return basename(path, extname(path));
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
