// CSV and TSV with a header row (RFC 4180 quoting: fields may hold delimiters, doubled
// quotes and newlines), plain or gzipped, streamed: RecordSplitter finds where records
// end, csv-parse parses them a batch at a time, csv-stringify quotes what we write.
// CSV has no types: every cell is text, so numbers are recognised by their spelling.
import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { AntidoteError, where } from "../../errors.js";
import type { Dataset, DatasetWriter, FormatModule, ReadOptions, WriteOptions } from "../dataset.js";
import { malformed } from "../rows.js";
import type { JsonValue } from "../sample.js";
import {
  innerExtension,
  inputError,
  numberText,
  openInputStream,
  openRowDataset,
  OutputFile,
  WriterLayout,
  type Field,
  type RawRow,
} from "./row-layout.js";

export const csvFormat: FormatModule = { format: "csv", open: openCsv, create: createCsvWriter };

/** The header names the columns; `.tsv` files are tab-separated. */
function openCsv(path: string, options: ReadOptions): Promise<Dataset> {
  const delimiter = delimiterFor(path);
  return openRowDataset(path, options, {
    format: "csv",
    untyped: true,
    rows: (onProgress) => csvRows(path, delimiter, onProgress),
    peek: () => peekCsv(path, delimiter),
  });
}

/**
 * The header comes from the first sample: id, text, image, feature columns, label,
 * source, annotations (a JSON array, empty when there are none), then the first sample's
 * metadata keys. CSV is untyped, so metadata numbers and booleans read back as strings,
 * null reads back as "", and nested values as their JSON text. A later sample's metadata
 * keys that are not in the header are dropped (one header serves the whole file), and a
 * header key the sample lacks is written empty.
 */
async function createCsvWriter(path: string, options: WriteOptions): Promise<DatasetWriter> {
  const out = await OutputFile.create(path, options.gzip === true || /\.gz$/i.test(path));
  const layout = new WriterLayout(path, options);
  const delimiter = delimiterFor(path);
  let header: string[] | undefined;
  let count = 0;
  return {
    async write(sample) {
      const fields = layout.fields(sample);
      if (header === undefined) {
        header = fields.map(([name]) => name);
        await out.write(csvLine(header, delimiter));
      }
      await out.write(csvLine(cells(header, fields), delimiter));
      count++;
    },
    async close() {
      await out.close();
      return count;
    },
    abort: () => out.abort(),
  };
}

// Data rows as objects keyed by the header. A wrong field count or bad quoting is that
// row's error; the rows around it are unaffected.
async function* csvRows(
  path: string,
  delimiter: string,
  onProgress?: (bytesRead: number) => void,
): AsyncGenerator<RawRow> {
  let header: string[] | undefined;
  for await (const item of csvRecords(path, delimiter, onProgress)) {
    const at = where(path, item.line);
    if (header === undefined) {
      if ("error" in item) throw item.error; // without a header there are no columns: never skippable
      header = checkHeader(path, item.fields, item.line);
    } else if ("error" in item) {
      yield item;
    } else if (item.fields.length !== header.length) {
      yield {
        error: malformed(
          at,
          "",
          `expected ${header.length} fields as in the header, found ${item.fields.length}`,
        ),
      };
    } else {
      const fields = item.fields;
      // fromEntries, not assignment, so that a column named "__proto__" stays a column
      yield { record: Object.fromEntries(header.map((name, i) => [name, fields[i]])), at };
    }
  }
}

async function peekCsv(
  path: string,
  delimiter: string,
): Promise<{ columns: string[]; first: Record<string, unknown> | undefined }> {
  let columns: string[] | undefined;
  for await (const item of csvRecords(path, delimiter)) {
    if (columns === undefined) {
      if ("error" in item) throw item.error;
      columns = checkHeader(path, item.fields, item.line);
    } else if (!("error" in item) && item.fields.length === columns.length) {
      const fields = item.fields;
      return { columns, first: Object.fromEntries(columns.map((c, i) => [c, fields[i]])) };
    }
  }
  return { columns: columns ?? [], first: undefined };
}

type ParsedRecord = { fields: string[]; line: number } | { error: AntidoteError; line: number };
/** A one-line record not parsed yet (parsed a batch at a time), or a parsed one. */
type Piece = { text: string; line: number } | ParsedRecord;

const BATCH_CHARS = 1 << 18;

// Every non-blank record (header included) with the line it starts on. RecordSplitter
// finds where records end; csv-parse parses one-line records a batch at a time (one at a
// time only in a batch that fails, to tell which record is bad).
async function* csvRecords(
  path: string,
  delimiter: string,
  onProgress?: (bytesRead: number) => void,
): AsyncGenerator<ParsedRecord> {
  const input = openInputStream(path, onProgress);
  input.setEncoding("utf8");
  const splitter = new RecordSplitter(path, delimiter);
  const batch = new LineBatch(path, delimiter);
  try {
    let first = true;
    for await (const chunk of input as AsyncIterable<string>) {
      yield* batch.add(splitter.push(first ? chunk.replace(/^\uFEFF/, "") : chunk));
      first = false;
    }
    yield* batch.add(splitter.end());
    yield* batch.flush();
  } catch (e) {
    throw inputError(path, e);
  } finally {
    input.destroy();
  }
}

/** Collects consecutive one-line records and parses them together, keeping file order. */
class LineBatch {
  private texts: { text: string; line: number }[] = [];
  private chars = 0;

  constructor(
    private readonly path: string,
    private readonly delimiter: string,
  ) {}

  add(pieces: Piece[]): ParsedRecord[] {
    const out: ParsedRecord[] = [];
    for (const piece of pieces) {
      if ("text" in piece) {
        this.texts.push(piece);
        this.chars += piece.text.length;
      } else {
        out.push(...this.flush(), piece);
      }
    }
    if (this.chars >= BATCH_CHARS) out.push(...this.flush());
    return out;
  }

  flush(): ParsedRecord[] {
    const records = this.texts;
    this.texts = [];
    this.chars = 0;
    if (records.length === 0) return [];
    try {
      const rows = parseRecords(records.map((r) => r.text).join("\n"), this.delimiter);
      if (rows.length === records.length)
        return rows.map((fields, i) => ({ fields, line: records[i]?.line ?? 0 }));
    } catch {
      // some record in the batch is bad: find out which, below
    }
    return records.map(({ text, line }) => parseOne(this.path, this.delimiter, text, line));
  }
}

function parseOne(path: string, delimiter: string, text: string, line: number): ParsedRecord {
  try {
    const [fields, extra] = parseRecords(text, delimiter);
    if (fields !== undefined && extra === undefined) return { fields, line };
    return { error: malformed(where(path, line), "", "unexpected line break outside quotes"), line };
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e))
      .replace(/\s*at line \d+/, "")
      .replace(/\.$/, "");
    return { error: malformed(where(path, line), "", reason), line };
  }
}

function parseRecords(text: string, delimiter: string): string[][] {
  return parse(text, { delimiter, record_delimiter: "\n", relax_column_count: true });
}

/** A record still inside quotes after this many characters is taken to be an unclosed quote. */
const MAX_QUOTED_CHARS = 64 * 2 ** 20;
const QUOTE = 0x22;
const LF = 0x0a;

/**
 * Splits CSV text into records at line breaks outside quoted fields, as RFC 4180 reads
 * them: a quote opens a field only at its start; inside, "" is a quote and " closes it.
 * A record that spans lines but does not parse is almost always an unclosed quote that
 * ran on into the records after it, so its first line is reported as the bad record and
 * everything after that line is read again. (csv-parse's own skip_records_with_error
 * stays inside quotes after an invalid closing quote and swallows the rest of the file.)
 * Blank lines are dropped; lines are counted for messages.
 */
export class RecordSplitter {
  private parts: string[] = [];
  private chars = 0;
  private line = 1;
  private recordLine = 1;
  private inQuotes = false;
  private justClosed = false;
  private fieldStart = true;
  private readonly delimiterCode: number;

  constructor(
    private readonly path: string,
    private readonly delimiter: string,
  ) {
    this.delimiterCode = delimiter.charCodeAt(0);
  }

  /** The records that end in `chunk`. */
  push(chunk: string): Piece[] {
    const out: Piece[] = [];
    let again = this.scan(chunk, out);
    for (;;) {
      while (again !== undefined) again = this.scan(again, out);
      if (!this.inQuotes || this.chars <= MAX_QUOTED_CHARS) return out;
      again = this.emit(out, false); // bounded memory: cut the runaway quoted record here
    }
  }

  /** The last records: one that lacks a final line break, or an unclosed quote's aftermath. */
  end(): Piece[] {
    const out: Piece[] = [];
    let again = this.emit(out, false);
    while (again !== undefined) {
      while (again !== undefined) again = this.scan(again, out);
      again = this.emit(out, false);
    }
    return out;
  }

  // Returns the text to scan again when a bad multi-line record was cut back to its first line.
  private scan(text: string, out: Piece[]): string | undefined {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.inQuotes) {
        if (c === QUOTE) [this.inQuotes, this.justClosed] = [false, true];
        else if (c === LF) this.line++;
        continue;
      }
      if (this.justClosed) {
        this.justClosed = false;
        if (c === QUOTE) {
          this.inQuotes = true; // "" inside a quoted field
          continue;
        }
      }
      if (c === LF) {
        this.parts.push(text.slice(start, i));
        const again = this.emit(out, true);
        if (again !== undefined) return again + text.slice(i + 1);
        this.line++;
        this.recordLine = this.line;
        start = i + 1;
      } else if (c === QUOTE) {
        if (this.fieldStart) this.inQuotes = true;
        this.fieldStart = false;
      } else {
        this.fieldStart = c === this.delimiterCode;
      }
    }
    this.parts.push(text.slice(start));
    this.chars += text.length - start;
    return undefined;
  }

  // Ends the current record. One-line records go out as text; a multi-line one is parsed
  // here, and if it fails, its first line is the bad record and the rest comes back.
  private emit(out: Piece[], endedByLineBreak: boolean): string | undefined {
    const raw = this.parts.join("");
    this.parts = [];
    this.chars = 0;
    this.inQuotes = this.justClosed = false;
    this.fieldStart = true;
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const line = this.recordLine;
    if (text.trim() === "") return undefined;
    const lf = text.indexOf("\n");
    if (lf < 0) {
      out.push({ text, line });
      return undefined;
    }
    const parsed = parseOne(this.path, this.delimiter, text, line);
    out.push(parsed);
    if (!("error" in parsed)) return undefined;
    this.line = this.recordLine = line + 1;
    return raw.slice(lf + 1) + (endedByLineBreak ? "\n" : "");
  }
}

function checkHeader(path: string, header: string[], line: number): string[] {
  const seen = new Set<string>();
  for (const name of header) {
    if (seen.has(name))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${where(path, line)}: the header names column "${name}" twice.`,
      );
    seen.add(name);
  }
  return header;
}

function delimiterFor(path: string): string {
  return innerExtension(path) === ".tsv" ? "\t" : ",";
}

function cells(header: readonly string[], fields: Field[]): string[] {
  const byName = new Map(fields);
  return header.map((name) => cellText(name === "annotations", byName.get(name) ?? null));
}

function cellText(isAnnotations: boolean, value: JsonValue): string {
  if (value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return numberText(value);
  if (typeof value === "boolean") return String(value);
  if (isAnnotations && Array.isArray(value) && value.length === 0) return "";
  return JSON.stringify(value);
}

// csv-stringify 6.9 leaves a field with a lone CR unquoted, which a reader takes for a line
// break; quoting every field with a CR or LF keeps such text intact.
function csvLine(cells: readonly string[], delimiter: string): string {
  return stringify([cells], { delimiter, record_delimiter: "unix", quoted_match: /[\r\n]/ });
}
