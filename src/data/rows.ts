// Turns one row of a row-shaped file (JSONL object, CSV record, Parquet row) into a
// Sample. Shared by the three row formats so that a column means the same in each.
import { readFileSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { AntidoteError } from "../errors.js";
import type { ColumnMapping } from "./columns.js";
import { decodeImage } from "./image-codec.js";
import { DatasetRoot } from "./paths.js";
import {
  annotationSchema,
  canonicalParts,
  digestParts,
  imageFromBytes,
  type Annotation,
  type JsonValue,
  type Sample,
} from "./sample.js";

export interface RowDecoderOptions {
  file: string;
  columns: ColumnMapping;
  /** Numeric columns read as tabular features, in order. */
  featureColumns?: string[];
  /** Prefix of generated ids (`<stem>:<index>`) when there is no id column. */
  idPrefix: string;
  /** CSV stores everything as text: numbers are recognised by their spelling. */
  untyped?: boolean;
  /** Read image files named outside the file's directory (after links); see ReadOptions. */
  allowPathsOutsideRoot?: boolean;
  /** Refuse images declaring more pixels than this before decoding (see ReadOptions). */
  maxImagePixels?: number;
}

/** Decodes rows one at a time and remembers the label type to catch mixed label columns. */
export class RowDecoder {
  labelKind: "integer" | "string" | undefined;
  private firstLabelAt = "";
  private readonly mapped: Set<string>;
  /** Image paths in cells are relative to the data file's directory and may not leave it. */
  private readonly root: DatasetRoot;

  constructor(private readonly opts: RowDecoderOptions) {
    this.mapped = new Set([...Object.values(opts.columns), ...(opts.featureColumns ?? [])]);
    this.root = new DatasetRoot(dirname(opts.file), opts.allowPathsOutsideRoot === true);
  }

  /** `index` is the 0-based sample index; `at` is "file:line" or "file row N" for messages. */
  decode(record: Record<string, unknown>, index: number, at: string): Sample {
    const { columns } = this.opts;
    const field = (role: keyof ColumnMapping): unknown =>
      columns[role] === undefined ? undefined : record[columns[role]];

    const rawId = field("id");
    const id = isBlank(rawId) ? `${this.opts.idPrefix}:${index}` : scalarText(rawId, at, columns.id ?? "id");
    const text = columns.text === undefined ? undefined : this.text(field("text"), at, columns.text);
    const image = columns.image === undefined ? undefined : this.image(field("image"), at, columns.image);
    const features = this.features(record, at);
    const label = this.label(field("label"), at, columns.label ?? "label");
    const rawSource = field("source");
    const source = isBlank(rawSource) ? null : scalarText(rawSource, at, columns.source ?? "source");
    const annotations = this.annotations(field("annotations"), at, columns.annotations ?? "annotations");

    const digest = digestParts(canonicalParts({ text, imageBytes: image, features }));
    const sample: Sample = { id, digest, label, source, annotations, metadata: this.metadata(record) };
    if (text !== undefined) sample.text = text;
    if (image !== undefined)
      sample.image = imageFromBytes(image.bytes, image.height, image.width, image.channels);
    if (features !== undefined) sample.features = features;
    return sample;
  }

  private text(value: unknown, at: string, column: string): string {
    if (typeof value === "string") return value;
    if (value === null || value === undefined) return "";
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    throw malformed(at, column, `expected text, found ${describe(value)}`);
  }

  private image(value: unknown, at: string, column: string) {
    const where = `${at} field "${column}"`;
    return decodeImage(this.imageBytes(value, where), where, { maxPixels: this.opts.maxImagePixels });
  }

  // An image cell may be raw bytes, a Hugging Face {bytes, path} struct, a data: URI or
  // base64 string, or a path relative to the dataset file.
  private imageBytes(value: unknown, where: string): Uint8Array {
    if (value instanceof Uint8Array) return value;
    if (Array.isArray(value) && value.every((v) => typeof v === "number")) return Uint8Array.from(value);
    if (isRecord(value)) {
      const { bytes, path } = value;
      if (bytes !== null && bytes !== undefined) return this.imageBytes(bytes, where);
      if (typeof path === "string") return this.imageFile(path, where);
      throw malformed(where, "", "image struct has neither bytes nor path");
    }
    if (typeof value === "string") {
      const dataUri = /^data:image\/[a-z+]+;base64,/i.exec(value);
      if (dataUri) return Buffer.from(value.slice(dataUri[0].length), "base64");
      // Base64 never contains ".", so a name ending in an image extension is a path, and a
      // missing one is reported as a missing file rather than as undecodable base64.
      if (/\.(png|jpe?g)$/i.test(value)) return this.imageFile(value, where);
      // Any other existing path is a file too (base64 may start with "/", as JPEG's "/9j/"
      // does, so only an existing file is taken for a path) — checked like any other path.
      if (value.length < 1024 && existsSync(resolve(dirname(this.opts.file), value)))
        return this.imageFile(value, where);
      if (/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return Buffer.from(value, "base64");
      throw new AntidoteError(
        "IMAGE_UNDECODABLE",
        `${where}: "${value.slice(0, 60)}" is neither an image file nor base64 image data.`,
      );
    }
    throw malformed(where, "", `expected image bytes, found ${describe(value)}`);
  }

  // Relative to the data file's directory; refused outside it unless allowed (paths.ts).
  private imageFile(path: string, where: string): Uint8Array {
    return readFileSync(this.root.resolveFile(path, where));
  }

  private features(record: Record<string, unknown>, at: string): Float32Array | undefined {
    const names = this.opts.featureColumns;
    if (names === undefined || names.length === 0) return undefined;
    const out = new Float32Array(names.length);
    names.forEach((name, i) => {
      const v = toNumber(record[name]);
      if (v === undefined) throw malformed(at, name, `expected a number, found ${describe(record[name])}`);
      out[i] = v;
    });
    return out;
  }

  private label(value: unknown, at: string, column: string): string | null {
    if (isBlank(value)) return null;
    let kind: "integer" | "string";
    let text: string;
    if (typeof value === "number" || typeof value === "bigint") {
      if (typeof value === "number" && !Number.isInteger(value))
        throw malformed(at, column, `label ${value} is not a whole number`);
      kind = "integer";
      text = String(value);
    } else if (typeof value === "string") {
      kind = this.opts.untyped && /^-?\d+$/.test(value.trim()) ? "integer" : "string";
      text = kind === "integer" ? String(Number(value.trim())) : value;
    } else if (typeof value === "boolean") {
      kind = "string";
      text = String(value);
    } else {
      throw malformed(at, column, `expected a class label, found ${describe(value)}`);
    }
    if (this.labelKind === undefined) {
      this.labelKind = kind;
      this.firstLabelAt = at;
    } else if (this.labelKind !== kind) {
      throw new AntidoteError(
        "LABEL_MIXED_TYPES",
        `${at}: label column "${column}" holds ${article(kind)} (${JSON.stringify(text)}) but ${this.firstLabelAt} held ${article(this.labelKind)}; use one type for every label.`,
      );
    }
    return text;
  }

  private annotations(value: unknown, at: string, column: string): Annotation[] {
    if (isBlank(value)) return [];
    let parsed: unknown = value;
    if (typeof value === "string") {
      try {
        parsed = JSON.parse(value);
      } catch {
        throw malformed(at, column, "annotations must be a JSON array of {annotator, label}");
      }
    }
    if (!Array.isArray(parsed))
      throw malformed(at, column, `annotations must be an array, found ${describe(parsed)}`);
    return parsed.map((entry, i) => {
      const r = annotationSchema.safeParse(normaliseBigInts(entry));
      if (!r.success) {
        const issue = r.error.issues[0];
        throw malformed(
          at,
          `${column}[${i}]${issue?.path.length ? "." + issue.path.join(".") : ""}`,
          issue?.message ?? "invalid annotation",
        );
      }
      return r.data;
    });
  }

  private metadata(record: Record<string, unknown>): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    for (const [key, value] of Object.entries(record)) {
      if (this.mapped.has(key)) continue;
      const json = toJson(value);
      if (json !== undefined) out[key] = json;
    }
    return out;
  }
}

export function malformed(at: string, field: string, detail: string): AntidoteError {
  return new AntidoteError("ROW_MALFORMED", `${at}${field ? ` field "${field}"` : ""}: ${detail}.`);
}

function isBlank(v: unknown): v is null | undefined | "" {
  return v === null || v === undefined || v === "";
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function scalarText(v: unknown, at: string, column: string): string {
  if (typeof v === "string" || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean")
    return String(v);
  throw malformed(at, column, `expected a string or number, found ${describe(v)}`);
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v);
    return Number.isNaN(n) && v.trim().toLowerCase() !== "nan" ? undefined : n;
  }
  return undefined;
}

function toJson(v: unknown): JsonValue | undefined {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return undefined; // binary payloads are content, not metadata
  if (Array.isArray(v)) return v.map((x) => toJson(x) ?? null);
  if (isRecord(v)) {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) {
      const j = toJson(x);
      if (j !== undefined) out[k] = j;
    }
    return out;
  }
  return undefined;
}

function normaliseBigInts(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normaliseBigInts(x)]));
  return v;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return "binary data";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `text ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return `${typeof v} ${v}`;
  return typeof v;
}

function article(kind: "integer" | "string"): string {
  return kind === "integer" ? "integers" : "strings";
}
