// The K models' predictions for each test point, as users bring them: a CSV/TSV with a
// header (an optional id column, a label column, K prediction columns; labels as class
// names or indices), or NumPy .npy int matrices (N × K predictions, labels of length N).
// Read row by row and validated at the boundary: a message names the file, row and column.
import { open, readFile, type FileHandle } from "node:fs/promises";
import { parse } from "csv-parse";
import { z } from "zod";
import { closest } from "../data/columns.js";
import { checkInput, openInputStream } from "../data/formats/row-layout.js";
import { AntidoteError, where } from "../errors.js";
import { DpaCertifier, type Certification, type CertifiedPoint } from "./dpa-certify.js";
import { parsePythonLiteral } from "./npy.js";

export interface VoteTableOptions {
  /** CSV: the column of true labels (default "label"). */
  labelColumn?: string;
  /** CSV: the column of point ids (default "id" when the header has one; else the row index). */
  idColumn?: string;
  /**
   * CSV: the K prediction columns: a comma-separated list of names, or a prefix such as
   * "model_" (every column starting with it, in header order). Default: every column but
   * the id and label columns.
   */
  predictionColumns?: string;
  /** Class names in index order. Cells may hold a name or an index. Default: inferred. */
  classes?: string[];
  /** Number of classes when labels are indices and no names are given (default: inferred). */
  numClasses?: number;
  /** .npy input: the labels file (N or N × 1 integers). */
  labelsPath?: string;
  /** Expected number of models; a table with another K is refused. */
  k?: number;
}

export interface VoteRow {
  id: string;
  label: number;
  predictions: Int32Array;
}

export interface VoteTable {
  path: string;
  k: number;
  classes: string[];
  /** Names of the prediction columns (CSV) or "0" … "K−1" (.npy). */
  predictionColumns: string[];
  rows(): AsyncIterable<VoteRow>;
}

/** Open a vote table; the format comes from the extension (.npy, else CSV; .tsv is tab-separated). */
export async function openVoteTable(path: string, options: VoteTableOptions = {}): Promise<VoteTable> {
  checkInput(path);
  if (/\.npy$/i.test(path)) return openNpyTable(path, options);
  if (options.labelsPath !== undefined)
    throw new AntidoteError(
      "USAGE",
      `--labels is for .npy predictions; ${path} carries its labels in a column.`,
    );
  return openCsvTable(path, options);
}

/** Stream a vote table through the certifier; `onPoint` hears each point's certificate. */
export async function certifyVoteTable(
  table: VoteTable,
  onPoint?: (point: CertifiedPoint) => void,
): Promise<Certification> {
  const certifier = new DpaCertifier(table.k, table.classes);
  let n = 0;
  for await (const row of table.rows()) {
    const point = certifier.add(row.id, row.label, row.predictions);
    onPoint?.(point);
    n++;
  }
  if (n === 0) throw new AntidoteError("INPUT_FORMAT", `${table.path}: no data rows.`);
  return certifier.result();
}

// ── classes ────────────────────────────────────────────────────────────────────────────

/**
 * Cell text → class index. A cell equal to a class name is that class; otherwise a decimal
 * integer is read as an index. Without given names, an all-integer table is read as
 * indices 0 … max, and any other table's names are sorted (code-point order) so the
 * tie-breaking order does not depend on row order.
 */
class ClassIndex {
  private readonly byName: Map<string, number>;
  constructor(readonly classes: string[]) {
    this.byName = new Map(classes.map((c, i) => [c, i]));
  }

  static infer(path: string, values: Set<string>, numClasses: number | undefined): ClassIndex {
    const all = [...values];
    if (all.every((v) => /^\d+$/.test(v))) {
      const max = all.reduce((m, v) => Math.max(m, Number(v)), -1);
      return ClassIndex.indices(Math.max(numClasses ?? 0, max + 1, 2));
    }
    if (all.length < 2)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${path}: only one class ("${all[0]}") appears; pass --classes with all the class names.`,
      );
    return new ClassIndex(all.sort());
  }

  static indices(n: number): ClassIndex {
    return new ClassIndex(Array.from({ length: n }, (_, i) => String(i)));
  }

  resolve(cell: string): number | undefined {
    const named = this.byName.get(cell);
    if (named !== undefined) return named;
    if (/^\d+$/.test(cell)) {
      const i = Number(cell);
      if (i < this.classes.length) return i;
    }
    return undefined;
  }

  describe(): string {
    const shown = this.classes.slice(0, 12).join(", ");
    return this.classes.length > 12 ? `${shown}, … ${this.classes.length} in all` : shown;
  }
}

function givenClasses(options: VoteTableOptions, file: string): ClassIndex | undefined {
  if (options.classes !== undefined) {
    const dup = options.classes.find((c, i) => options.classes?.indexOf(c) !== i);
    if (dup !== undefined) throw new AntidoteError("USAGE", `--classes: "${dup}" appears twice.`);
    if (options.classes.length < 2)
      throw new AntidoteError("USAGE", `--classes: DPA needs at least 2 classes.`);
    return new ClassIndex(options.classes);
  }
  if (options.numClasses !== undefined) {
    if (!Number.isInteger(options.numClasses) || options.numClasses < 2)
      throw new AntidoteError("USAGE", `--num-classes: must be an integer ≥ 2 (reading ${file}).`);
    return ClassIndex.indices(options.numClasses);
  }
  return undefined;
}

function checkK(path: string, k: number, columns: string[], expected: number | undefined): void {
  if (k === 0) throw new AntidoteError("INPUT_FORMAT", `${path}: no prediction columns.`);
  if (expected !== undefined && k !== expected) {
    const shown =
      columns.length > 6 ? `${columns.slice(0, 3).join(", ")}, …, ${columns.at(-1)}` : columns.join(", ");
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: ${k} prediction columns (${shown}) but --k is ${expected}: one column per partition model.`,
    );
  }
}

// ── CSV / TSV ──────────────────────────────────────────────────────────────────────────

interface CsvLayout {
  header: string[];
  id: number | undefined;
  label: number;
  predictions: number[];
}

async function openCsvTable(path: string, options: VoteTableOptions): Promise<VoteTable> {
  const delimiter = /\.tsv(\.gz)?$/i.test(path) ? "\t" : ",";
  const header = await readHeader(path, delimiter);
  const layout = csvLayout(path, header, options);
  const columns = layout.predictions.map((c) => header[c] ?? "");
  checkK(path, columns.length, columns, options.k);
  let classes = givenClasses(options, path);
  if (classes === undefined) {
    // Names must be known before the first row is certified: one pass collects them.
    const seen = new Set<string>();
    for await (const { fields } of csvRecords(path, delimiter, header.length)) {
      seen.add(fields[layout.label] ?? "");
      for (const c of layout.predictions) seen.add(fields[c] ?? "");
    }
    seen.delete("");
    classes = ClassIndex.infer(path, seen, options.numClasses);
  }
  const index = classes;
  return {
    path,
    k: columns.length,
    classes: index.classes,
    predictionColumns: columns,
    rows: () => csvVoteRows(path, delimiter, layout, index),
  };
}

function csvLayout(path: string, header: string[], options: VoteTableOptions): CsvLayout {
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined)
    throw new AntidoteError("INPUT_FORMAT", `${path}: the header names column "${dup}" twice.`);
  const find = (name: string, flag: string): number => {
    const i = header.indexOf(name);
    if (i !== -1) return i;
    const guess = closest(name, header);
    throw new AntidoteError(
      "COLUMN_MISSING",
      `${path}: no column "${name}" for ${flag}.${guess === undefined ? "" : ` Did you mean "${guess}"?`} ` +
        `Columns: ${header.join(", ")}.`,
    );
  };
  const label = find(options.labelColumn ?? "label", "--label-column");
  const id =
    options.idColumn !== undefined
      ? find(options.idColumn, "--id-column")
      : header.includes("id")
        ? header.indexOf("id")
        : undefined;
  const others = header.map((_, i) => i).filter((i) => i !== label && i !== id);
  const spec = options.predictionColumns;
  let predictions: number[];
  if (spec === undefined) predictions = others;
  else if (spec.includes(",")) {
    predictions = spec
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((name) => find(name, "--prediction-columns"));
    const clash = predictions.find((i) => i === label || i === id);
    if (clash !== undefined)
      throw new AntidoteError("USAGE", `--prediction-columns: "${header[clash]}" is the label or id column.`);
  } else {
    predictions = others.filter((i) => (header[i] ?? "").startsWith(spec));
    if (predictions.length === 0)
      throw new AntidoteError(
        "COLUMN_MISSING",
        `${path}: no column starts with "${spec}" (--prediction-columns). Columns: ${header.join(", ")}.`,
      );
  }
  return { header, id, label, predictions };
}

async function readHeader(path: string, delimiter: string): Promise<string[]> {
  for await (const { fields } of csvRecords(path, delimiter, undefined)) return fields.map((f) => f.trim());
  throw new AntidoteError("INPUT_FORMAT", `${path}: empty file; expected a header row.`);
}

/**
 * Records with the line they end on. With `width`, the header is skipped and a record with
 * another field count fails naming its line.
 */
async function* csvRecords(
  path: string,
  delimiter: string,
  width: number | undefined,
): AsyncGenerator<{ fields: string[]; line: number }> {
  const input = openInputStream(path);
  const parser = input.pipe(
    parse({ delimiter, bom: true, relax_column_count: true, skip_empty_lines: true, info: true }),
  );
  let first = true;
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const line = item.info.lines;
      if (width !== undefined && first) {
        first = false;
        continue;
      }
      if (width !== undefined && item.record.length !== width)
        throw new AntidoteError(
          "ROW_MALFORMED",
          `${where(path, line)}: ${item.record.length} fields, but the header has ${width}.`,
        );
      yield { fields: item.record, line };
    }
  } catch (e) {
    if (e instanceof AntidoteError) throw e;
    const reason = e instanceof Error ? e.message.replace(/\.$/, "") : String(e);
    throw new AntidoteError("ROW_MALFORMED", `${path}: not valid CSV (${reason}).`, { cause: e });
  } finally {
    input.destroy();
  }
}

async function* csvVoteRows(
  path: string,
  delimiter: string,
  layout: CsvLayout,
  classes: ClassIndex,
): AsyncGenerator<VoteRow> {
  let row = 0;
  for await (const { fields, line } of csvRecords(path, delimiter, layout.header.length)) {
    const cell = (column: number, role: string): number => {
      const text = (fields[column] ?? "").trim();
      const name = layout.header[column] ?? "";
      if (text === "")
        throw new AntidoteError("ROW_MALFORMED", `${where(path, line)} column ${name}: empty ${role}.`);
      const index = classes.resolve(text);
      if (index === undefined)
        throw new AntidoteError(
          "ROW_MALFORMED",
          `${where(path, line)} column ${name}: ${role} "${text}" is not a class (classes: ${classes.describe()}).`,
        );
      return index;
    };
    const label = cell(layout.label, "label");
    const predictions = Int32Array.from(layout.predictions, (c) => cell(c, "prediction"));
    const id = layout.id === undefined ? String(row) : (fields[layout.id] ?? "").trim();
    row++;
    yield { id, label, predictions };
  }
}

// ── NumPy .npy ─────────────────────────────────────────────────────────────────────────

interface NpyHeader {
  path: string;
  /** Bytes before the data. */
  offset: number;
  shape: number[];
  itemBytes: number;
  read: (view: DataView, at: number) => number;
}

const NPY_MAGIC = "\x93NUMPY";

const npyHeaderSchema = z.object({
  descr: z.string(),
  fortran_order: z.boolean(),
  shape: z.array(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
});

async function readNpyHeader(handle: FileHandle, path: string, size: number): Promise<NpyHeader> {
  const head = Buffer.alloc(Math.min(size, 65_536 + 12));
  await handle.read(head, 0, head.length, 0);
  const bad = (why: string) =>
    new AntidoteError("INPUT_FORMAT", `${path}: not a NumPy .npy file we can read (${why}).`);
  if (head.subarray(0, 6).toString("latin1") !== NPY_MAGIC) throw bad("no \\x93NUMPY magic");
  const major = head[6] ?? 0;
  if (major < 1 || major > 3) throw bad(`format version ${major}`);
  // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one, both at byte 8.
  const textAt = major === 1 ? 10 : 12;
  const length = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  if (textAt + length > head.length) throw bad("header longer than the file");
  const text = head.subarray(textAt, textAt + length).toString(major === 3 ? "utf8" : "latin1");
  let literal: unknown;
  try {
    literal = parsePythonLiteral(text);
  } catch (e) {
    throw bad(`header ${JSON.stringify(text.trim())}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const fields = npyHeaderSchema.safeParse(literal);
  if (!fields.success) throw bad(`header ${JSON.stringify(text.trim())}`);
  const { descr, fortran_order: fortran, shape } = fields.data;
  if (fortran && shape.filter((d) => d !== 1).length > 1)
    throw bad("Fortran-ordered array; save it with np.save(path, np.ascontiguousarray(a))");
  const dtype = /^([<>|=])([iuf])(\d)$/.exec(descr);
  if (dtype === null) throw bad(`dtype ${descr}; expected integers (or whole-valued floats)`);
  const little = dtype[1] !== ">";
  const kind = dtype[2] ?? "";
  const bytes = Number(dtype[3]);
  const readers: Record<string, (v: DataView, at: number) => number> = {
    i1: (v, at) => v.getInt8(at),
    u1: (v, at) => v.getUint8(at),
    i2: (v, at) => v.getInt16(at, little),
    u2: (v, at) => v.getUint16(at, little),
    i4: (v, at) => v.getInt32(at, little),
    u4: (v, at) => v.getUint32(at, little),
    i8: (v, at) => Number(v.getBigInt64(at, little)),
    u8: (v, at) => Number(v.getBigUint64(at, little)),
    f4: (v, at) => v.getFloat32(at, little),
    f8: (v, at) => v.getFloat64(at, little),
  };
  const read = readers[`${kind}${bytes}`];
  if (read === undefined) throw bad(`dtype ${descr}`);
  const offset = textAt + length;
  const expected = offset + shape.reduce((a, b) => a * b, 1) * bytes;
  if (size < expected) throw bad(`truncated: ${size} bytes, the header promises ${expected}`);
  if (size > expected) throw bad(`${size - expected} bytes follow the array; a .npy file holds one array`);
  return { path, offset, shape, itemBytes: bytes, read };
}

/** One array element as a class index, or the reason it is not one. */
function npyClass(value: number, classes: number): number | string {
  if (!Number.isInteger(value)) return `${value} is not a class index`;
  if (value < 0 || value >= classes) return `${value} is outside the class range 0–${classes - 1}`;
  return value;
}

async function openNpyTable(path: string, options: VoteTableOptions): Promise<VoteTable> {
  if (options.labelsPath === undefined)
    throw new AntidoteError(
      "USAGE",
      `${path}: .npy predictions need --labels <labels.npy> with the true labels.`,
    );
  const labelsPath = options.labelsPath;
  const { bytes: size } = checkInput(path);
  const handle = await open(path, "r");
  let header: NpyHeader;
  try {
    header = await readNpyHeader(handle, path, size);
  } finally {
    await handle.close();
  }
  if (header.shape.length !== 2)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: shape (${header.shape.join(", ")}); expected (N, K): one row per test point, one column per model.`,
    );
  const [n = 0, k = 0] = header.shape;
  const columns = Array.from({ length: k }, (_, i) => String(i));
  checkK(path, k, columns, options.k);
  const labels = await readNpyLabels(labelsPath, n);
  let classes = givenClasses(options, path);
  if (classes === undefined) {
    let max = labels.reduce((m, v) => Math.max(m, v), 1);
    for await (const { values } of npyRows(header)) for (const v of values) if (v > max) max = v;
    classes = ClassIndex.indices(Math.max(2, Math.floor(max) + 1));
  }
  const c = classes.classes.length;
  labels.forEach((v, row) => {
    const r = npyClass(v, c);
    if (typeof r === "string")
      throw new AntidoteError("ROW_MALFORMED", `${labelsPath} row ${row}: label ${r}.`);
  });
  return {
    path,
    k,
    classes: classes.classes,
    predictionColumns: columns,
    rows: async function* () {
      for await (const { row, values } of npyRows(header)) {
        const predictions = new Int32Array(k);
        values.forEach((v, column) => {
          const r = npyClass(v, c);
          if (typeof r === "string")
            throw new AntidoteError("ROW_MALFORMED", `${path} row ${row} column ${column}: prediction ${r}.`);
          predictions[column] = r;
        });
        yield { id: String(row), label: labels[row] ?? -1, predictions };
      }
    },
  };
}

async function readNpyLabels(path: string, n: number): Promise<number[]> {
  const { bytes: size } = checkInput(path);
  const handle = await open(path, "r");
  let header: NpyHeader;
  try {
    header = await readNpyHeader(handle, path, size);
  } finally {
    await handle.close();
  }
  const [rows = 0, cols = 1, ...rest] = header.shape;
  if (header.shape.length === 0 || cols !== 1 || rest.length > 0)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: shape (${header.shape.join(", ")}); expected (N,) or (N, 1).`,
    );
  if (rows !== n)
    throw new AntidoteError("INPUT_FORMAT", `${path}: ${rows} labels, but the predictions have ${n} rows.`);
  const data = await readFile(path);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return Array.from({ length: rows }, (_, i) => header.read(view, header.offset + i * header.itemBytes));
}

/** Rows of an (N, K) array, read about 1 MiB at a time. */
async function* npyRows(header: NpyHeader): AsyncGenerator<{ row: number; values: number[] }> {
  const [n = 0, k = 0] = header.shape;
  const rowBytes = k * header.itemBytes;
  const perChunk = Math.max(1, Math.floor((1 << 20) / Math.max(1, rowBytes)));
  const buffer = Buffer.alloc(perChunk * rowBytes);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const handle = await open(header.path, "r");
  try {
    for (let start = 0; start < n; start += perChunk) {
      const rows = Math.min(perChunk, n - start);
      await handle.read(buffer, 0, rows * rowBytes, header.offset + start * rowBytes);
      for (let r = 0; r < rows; r++) {
        const values = new Array<number>(k);
        for (let m = 0; m < k; m++) values[m] = header.read(view, r * rowBytes + m * header.itemBytes);
        yield { row: start + r, values };
      }
    }
  } finally {
    await handle.close();
  }
}
