// JSON Lines (one JSON object per line), plain or gzipped. Read line by line and written
// line by line, so a file larger than memory streams through.
import { createInterface } from "node:readline";
import { jsonSyntaxReason, where } from "../../errors.js";
import type { Dataset, DatasetWriter, FormatModule, ReadOptions, WriteOptions } from "../dataset.js";
import { malformed } from "../rows.js";
import type { JsonValue } from "../sample.js";
import {
  inputError,
  numberText,
  openInputStream,
  openRowDataset,
  OutputFile,
  WriterLayout,
  type Field,
  type RawRow,
} from "./row-layout.js";

export const jsonlFormat: FormatModule = { format: "jsonl", open: openJsonl, create: createJsonlWriter };

/** Columns come from the keys of the first record; blank lines are skipped. */
function openJsonl(path: string, options: ReadOptions): Promise<Dataset> {
  return openRowDataset(path, options, {
    format: "jsonl",
    untyped: false,
    rows: (onProgress) => jsonlRows(path, onProgress),
    peek: async () => {
      for await (const row of jsonlRows(path)) {
        if ("record" in row) return { columns: Object.keys(row.record), first: row.record };
      }
      return { columns: [], first: undefined };
    },
  });
}

/**
 * One object per sample: id, text, image (PNG data URI), one key per feature, label,
 * source, annotations, then the metadata keys. Gzipped when asked or when the path ends .gz.
 */
async function createJsonlWriter(path: string, options: WriteOptions): Promise<DatasetWriter> {
  const out = await OutputFile.create(path, options.gzip === true || /\.gz$/i.test(path));
  const layout = new WriterLayout(path, options);
  let count = 0;
  return {
    async write(sample) {
      await out.write(jsonLine(layout.fields(sample)));
      count++;
    },
    async close() {
      await out.close();
      return count;
    },
    abort: () => out.abort(),
  };
}

async function* jsonlRows(path: string, onProgress?: (bytesRead: number) => void): AsyncGenerator<RawRow> {
  const input = openInputStream(path, onProgress);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const text of lines) {
      lineNo++;
      if (text.trim() === "") continue;
      yield parseLine(lineNo === 1 ? text.replace(/^\uFEFF/, "") : text, where(path, lineNo));
    }
  } catch (e) {
    throw inputError(path, e);
  } finally {
    lines.close();
    input.destroy();
  }
}

function parseLine(text: string, at: string): RawRow {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: malformed(at, "", `not valid JSON (${jsonSyntaxReason(e)})`) };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const found = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    return { error: malformed(at, "", `expected a JSON object, found ${found}`) };
  }
  return { record: value as Record<string, unknown>, at };
}

// Built by hand rather than with one JSON.stringify so that a -0 feature keeps its sign
// (and therefore its digest).
function jsonLine(fields: Field[]): string {
  const parts = fields.map(([key, value]) => `${JSON.stringify(key)}:${jsonText(value)}`);
  return `{${parts.join(",")}}\n`;
}

function jsonText(value: JsonValue): string {
  return typeof value === "number" ? numberText(value) : JSON.stringify(value);
}
