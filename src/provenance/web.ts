// Split-view web poisoning check (Carlini et al., "Poisoning Web-Scale Training Datasets is
// Practical", 2023). Web-scale datasets ship as URL indexes with a hash taken at index time;
// whoever controls a domain later (an expired one, say) can serve the trainer different
// bytes. The defence is to hash what is downloaded and compare it with the index hash.
//
// The index is read here rather than through `openDataset`: that reader turns rows into
// Samples and so auto-maps columns to roles (a "label" column can stop the pass with
// LABEL_MIXED_TYPES, numeric columns become features that must parse) and loses the
// file:line of a row, while an index needs only two or three cells per row, reported at
// their line. Rows still stream, and Parquet reads only the columns it needs.
import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { createInterface } from "node:readline";
import { join } from "node:path";
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetSchema,
  type AsyncBuffer,
  type FileMetaData,
} from "hyparquet";
import { parse as parseCsv } from "csv-parse/sync";
import { z } from "zod";
import { closest } from "../data/columns.js";
import { RecordSplitter } from "../data/formats/csv.js";
import { createParquetDecoder } from "../data/formats/parquet-decoder.js";
import {
  checkInput,
  fileStem,
  innerExtension,
  inputError,
  openInputStream,
} from "../data/formats/row-layout.js";
import { detectFormat } from "../data/open.js";
import { malformed } from "../data/rows.js";
import { AntidoteError, where } from "../errors.js";
import type { Finding } from "../ledger/types.js";
import { VERSION } from "../version.js";

export interface UrlIndexOptions {
  /** Column holding the URL (default: url, image_url, link, uri — compared case-insensitively). */
  urlColumn?: string;
  /** Column holding the expected SHA-256 (default: sha256, hash, expected_sha256, sha256_hash). */
  hashColumn?: string;
  /** Column holding the row's id (default: id, sample_id, uid, uuid, key; else `<file stem>:<row>`). */
  idColumn?: string;
  /** Downloads in flight at once (default 8). */
  concurrency?: number;
  /** Limit for one URL, redirects and body included (default 30 000 ms). */
  timeoutMs?: number;
  /** Larger bodies are not hashed; the URL is reported "too-large" (default 50 MiB). */
  maxBytes?: number;
  /** Keep verified content here, named by its SHA-256. */
  storeDir?: string;
  /** Called after each result; `total` is known up front only for Parquet. */
  onProgress?: (done: number, total: number | undefined) => void;
}

export type UrlCheckStatus = "match" | "mismatch" | "unreachable" | "too-large" | "invalid-url";

export interface UrlCheck {
  /** The index row's id (its id column, or `<file stem>:<0-based row>`). */
  id: string;
  url: string;
  /** Lowercase hex SHA-256 from the index (the cell as written when it is not a hash). */
  expected: string;
  /** Lowercase hex SHA-256 of the downloaded body; null when nothing was downloaded whole. */
  actual: string | null;
  status: UrlCheckStatus;
  /** Status of the last response (after redirects); null when none came. */
  httpStatus: number | null;
  /** Body bytes received. */
  bytes: number;
  /** Why the URL could not be verified; for "invalid-url" it names file:line and field. */
  error?: string;
}

export interface UrlIndexSummary {
  total: number;
  match: number;
  mismatch: number;
  unreachable: number;
  tooLarge: number;
  invalid: number;
}

export const WEB_VERIFY_CHECK = "web-verify";
export const DEFAULT_CONCURRENCY = 8;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_BYTES = 50 * 2 ** 20;
export const MAX_REDIRECTS = 5;

const URL_COLUMNS = ["url", "image_url", "link", "uri"] as const;
const HASH_COLUMNS = ["sha256", "hash", "expected_sha256", "sha256_hash"] as const;
const ID_COLUMNS = ["id", "sample_id", "uid", "uuid", "key"] as const;

const optionsSchema = z.object({
  urlColumn: z.string().min(1).optional(),
  hashColumn: z.string().min(1).optional(),
  idColumn: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(1024).default(DEFAULT_CONCURRENCY),
  timeoutMs: z.number().int().min(1).default(DEFAULT_TIMEOUT_MS),
  maxBytes: z.number().int().min(1).default(DEFAULT_MAX_BYTES),
  storeDir: z.string().min(1).optional(),
});
type Settings = z.output<typeof optionsSchema>;

/**
 * Download every URL of the index and compare the SHA-256 of its body with the index's.
 * Streams the index; at most `concurrency` downloads run at once, and results come out in
 * the order they finish. A network failure is a result ("unreachable"), never a throw;
 * what throws is a problem with the index as a whole (missing file or column, bad format).
 * Stopping the iteration early aborts the downloads in flight.
 */
export function verifyUrlIndex(indexPath: string, options: UrlIndexOptions = {}): AsyncIterable<UrlCheck> {
  const { onProgress, ...rest } = options;
  const parsed = optionsSchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AntidoteError(
      "USAGE",
      `verifyUrlIndex: option ${String(issue?.path[0] ?? "")}: ${issue?.message ?? "invalid value"}.`,
    );
  }
  return runChecks(indexPath, parsed.data, onProgress);
}

/** The finding a check contributes to the ledger; a match contributes none. */
export function urlCheckFinding(check: UrlCheck): Finding | undefined {
  if (check.status === "match") return undefined;
  const evidence: Record<string, unknown> = {
    url: check.url,
    expected: check.expected,
    actual: check.actual,
    httpStatus: check.httpStatus,
    status: check.status,
    bytes: check.bytes,
  };
  if (check.error !== undefined) evidence.error = check.error;
  // Content that differs from what was indexed is the attack itself; content that could not
  // be checked is only a weak signal (dead links are common), but the sample is unverified.
  const mismatch = check.status === "mismatch";
  return {
    subjectType: "sample",
    subjectId: check.id,
    kind: mismatch ? "split-view-mismatch" : "web-unverifiable",
    score: mismatch ? 1 : 0.3,
    evidence,
    check: WEB_VERIFY_CHECK,
    checkVersion: VERSION,
  };
}

export function emptyUrlIndexSummary(): UrlIndexSummary {
  return { total: 0, match: 0, mismatch: 0, unreachable: 0, tooLarge: 0, invalid: 0 };
}

/** Count one check into `summary` (mutates and returns it). */
export function countUrlCheck(summary: UrlIndexSummary, check: UrlCheck): UrlIndexSummary {
  summary.total++;
  const key = SUMMARY_KEY[check.status];
  summary[key]++;
  return summary;
}

const SUMMARY_KEY: Record<UrlCheckStatus, Exclude<keyof UrlIndexSummary, "total">> = {
  match: "match",
  mismatch: "mismatch",
  unreachable: "unreachable",
  "too-large": "tooLarge",
  "invalid-url": "invalid",
};

/**
 * Lowercase hex from a SHA-256 as indexes spell it: 64 hex digits, "sha256:<hex>",
 * base64 / base64url of the 32 bytes (with or without padding, or SRI "sha256-<base64>"),
 * or the 32 raw bytes (a Parquet binary column). Undefined when it is none of these.
 */
export function normalizeSha256(value: unknown): string | undefined {
  if (value instanceof Uint8Array)
    return value.length === 32 ? Buffer.from(value).toString("hex") : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim().replace(/^sha-?256[:-]/i, "");
  if (/^[0-9a-f]{64}$/i.test(text)) return text.toLowerCase();
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const bytes = Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (bytes.length === 32) return bytes.toString("hex");
  }
  return undefined;
}

// ── the pipeline: index rows → jobs → bounded pool of downloads ─────────────────────────

async function* runChecks(
  indexPath: string,
  settings: Settings,
  onProgress: UrlIndexOptions["onProgress"],
): AsyncGenerator<UrlCheck> {
  const index = await openIndex(indexPath);
  const columns = resolveIndexColumns(indexPath, index.columns, settings);
  if (settings.storeDir !== undefined) await prepareStore(settings.storeDir);
  const stopped = new AbortController();
  const inFlight = new Map<number, Promise<{ key: number; check: UrlCheck }>>();
  const rows = index.rows(columns)[Symbol.asyncIterator]();
  const stem = fileStem(indexPath);
  let rowIndex = 0;
  let done = 0;
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && inFlight.size < settings.concurrency) {
        const next = await rows.next();
        if (next.done === true) {
          exhausted = true;
          break;
        }
        const key = rowIndex++;
        const job = toJob(next.value, columns, `${stem}:${key}`);
        const pending = "check" in job ? Promise.resolve(job.check) : download(job, settings, stopped.signal);
        const settled = pending.then((check) => ({ key, check }));
        // A store failure rejects; it is raised by the race below, not as an unhandled rejection.
        settled.catch(() => undefined);
        inFlight.set(key, settled);
      }
      if (inFlight.size === 0) return;
      const { key, check } = await Promise.race(inFlight.values());
      inFlight.delete(key);
      onProgress?.(++done, index.total);
      yield check;
    }
  } finally {
    // The consumer stopped early or the index failed: cancel what is still downloading.
    stopped.abort();
    await Promise.allSettled(inFlight.values());
    await rows.return?.();
  }
}

interface IndexColumns {
  url: string;
  hash: string;
  id: string | undefined;
}

interface Job {
  id: string;
  url: URL;
  rawUrl: string;
  expected: string;
}

/** A row as a download to run, or the check that reports why it cannot be run. */
function toJob(row: IndexRow, columns: IndexColumns, generatedId: string): Job | { check: UrlCheck } {
  if ("error" in row) {
    return { check: invalid(generatedId, "", "", row.error.message) };
  }
  const { record, at } = row;
  const rawId = record[columns.id ?? ""];
  const id = columns.id === undefined || isBlank(rawId) ? generatedId : cellText(rawId);
  const rawUrl = record[columns.url];
  const rawHash = record[columns.hash];
  const urlText = typeof rawUrl === "string" ? rawUrl.trim() : cellText(rawUrl);
  const hashText = rawHash instanceof Uint8Array ? Buffer.from(rawHash).toString("hex") : cellText(rawHash);
  const url = httpUrl(urlText);
  if (url === undefined) {
    const detail = isBlank(rawUrl)
      ? "no URL"
      : `${JSON.stringify(urlText.slice(0, 200))} is not an http(s) URL`;
    return { check: invalid(id, urlText, hashText, malformed(at, columns.url, detail).message) };
  }
  const expected = normalizeSha256(rawHash);
  if (expected === undefined) {
    const detail = isBlank(rawHash)
      ? "no expected hash"
      : `${JSON.stringify(hashText.slice(0, 100))} is not a SHA-256 (64 hex digits, sha256:<hex> or base64 of 32 bytes)`;
    return { check: invalid(id, urlText, hashText, malformed(at, columns.hash, detail).message) };
  }
  return { id, url, rawUrl: urlText, expected };
}

function invalid(id: string, url: string, expected: string, error: string): UrlCheck {
  return { id, url, expected, actual: null, status: "invalid-url", httpStatus: null, bytes: 0, error };
}

function httpUrl(text: string, base?: URL): URL | undefined {
  if (text === "") return undefined;
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    return undefined;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url : undefined;
}

// ── one download ─────────────────────────────────────────────────────────────────────

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = `antidote/${VERSION} (web-verify; split-view poisoning check)`;

/** Thrown by the store so that a disk problem is not mistaken for a network failure. */
class StoreFailure extends Error {}

async function download(job: Job, settings: Settings, stopped: AbortSignal): Promise<UrlCheck> {
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const signal = AbortSignal.any([timeout, stopped]);
  const result: UrlCheck = {
    id: job.id,
    url: job.rawUrl,
    expected: job.expected,
    actual: null,
    status: "unreachable",
    httpStatus: null,
    bytes: 0,
  };
  const unreachable = (error: string): UrlCheck => ({ ...result, status: "unreachable", error });
  let sink: StoreSink | undefined;
  try {
    // Redirects are followed by hand: fetch's own limit is 20 and it would not say where it went.
    let url = job.url;
    let response: Response;
    for (let hops = 0; ; hops++) {
      response = await fetch(url, { redirect: "manual", signal, headers: { "user-agent": USER_AGENT } });
      result.httpStatus = response.status;
      if (!REDIRECT_STATUSES.has(response.status)) break;
      await response.body?.cancel();
      const location = response.headers.get("location");
      if (location === null) return unreachable(`HTTP ${response.status} redirect without a Location header`);
      if (hops === MAX_REDIRECTS) return unreachable(`more than ${MAX_REDIRECTS} redirects`);
      const next = httpUrl(location, url);
      if (next === undefined)
        return unreachable(`redirected to ${JSON.stringify(location)}, not an http(s) URL`);
      url = next;
    }
    if (!response.ok) {
      await response.body?.cancel();
      return unreachable(`HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`);
    }
    const declared = Number(response.headers.get("content-length") ?? NaN);
    if (declared > settings.maxBytes) {
      await response.body?.cancel();
      return {
        ...result,
        status: "too-large",
        error: `Content-Length ${declared} is over the ${settings.maxBytes}-byte limit`,
      };
    }
    const hash = createHash("sha256");
    if (settings.storeDir !== undefined) sink = await StoreSink.open(settings.storeDir);
    if (response.body !== null) {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        result.bytes += chunk.byteLength;
        // Leaving the loop cancels the body, so an endless response stops here.
        if (result.bytes > settings.maxBytes) {
          return {
            ...result,
            status: "too-large",
            error: `body is over the ${settings.maxBytes}-byte limit`,
          };
        }
        hash.update(chunk);
        await sink?.write(chunk);
      }
    }
    result.actual = hash.digest("hex");
    result.status = result.actual === job.expected ? "match" : "mismatch";
    if (result.status === "match") await sink?.keep(result.actual);
    return result;
  } catch (e) {
    if (e instanceof StoreFailure) throw storeError(settings.storeDir ?? "", e);
    if (timeout.aborted) return unreachable(`timed out after ${settings.timeoutMs} ms`);
    if (stopped.aborted) return unreachable("cancelled");
    return unreachable(networkError(e));
  } finally {
    await sink?.discard();
  }
}

// undici reports "fetch failed" and hides the reason (ECONNREFUSED, ENOTFOUND, …) in `cause`.
function networkError(e: unknown): string {
  const cause = (e as { cause?: unknown } | null)?.cause;
  const inner = cause instanceof Error ? cause.message : typeof cause === "string" ? cause : undefined;
  const outer = e instanceof Error ? e.message : String(e);
  return inner === undefined ? outer : `${outer}: ${inner}`;
}

/** Writes a body to a temporary file in the store; only a verified one gets its hash as name. */
class StoreSink {
  private constructor(
    private readonly dir: string,
    private readonly temp: string,
    private handle: FileHandle | undefined,
  ) {}

  static async open(dir: string): Promise<StoreSink> {
    const temp = join(dir, `.partial-${randomUUID()}`);
    try {
      return new StoreSink(dir, temp, await open(temp, "w"));
    } catch (e) {
      throw new StoreFailure(temp, { cause: e });
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    try {
      await this.handle?.write(chunk);
    } catch (e) {
      throw new StoreFailure(this.temp, { cause: e });
    }
  }

  async keep(sha256: string): Promise<void> {
    try {
      await this.handle?.close();
      this.handle = undefined;
      await rename(this.temp, join(this.dir, sha256));
    } catch (e) {
      throw new StoreFailure(this.temp, { cause: e });
    }
  }

  /** Removes the temporary file unless `keep` moved it. */
  async discard(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await rm(this.temp, { force: true });
  }
}

async function prepareStore(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw storeError(dir, e);
  }
}

function storeError(dir: string, e: unknown): AntidoteError {
  const cause = e instanceof StoreFailure ? e.cause : e;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new AntidoteError("USAGE", `--store ${dir}: cannot write verified content there (${reason}).`, {
    cause,
  });
}

// ── reading the index ────────────────────────────────────────────────────────────────

/** One data row with where it is ("file:line", "file row N"), or why it could not be parsed. */
type IndexRow = { record: Record<string, unknown>; at: string } | { error: AntidoteError };

interface IndexFile {
  columns: string[];
  /** Rows up front, when the format says (Parquet). */
  total: number | undefined;
  /** The data rows; `columns` says which cells are needed (Parquet reads only those). */
  rows(columns: IndexColumns): AsyncIterable<IndexRow>;
}

async function openIndex(path: string): Promise<IndexFile> {
  checkInput(path);
  const format = detectFormat(path);
  if (format === "csv") return openCsvIndex(path);
  if (format === "jsonl") return openJsonlIndex(path);
  if (format === "parquet") return openParquetIndex(path);
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${path}: a URL index must be CSV, TSV, JSONL or Parquet, not ${format}.`,
  );
}

function resolveIndexColumns(path: string, available: readonly string[], settings: Settings): IndexColumns {
  const url = pickColumn(path, available, "url", settings.urlColumn, URL_COLUMNS);
  const hash = pickColumn(path, available, "hash", settings.hashColumn, HASH_COLUMNS);
  if (url === hash) {
    throw new AntidoteError("USAGE", `${path}: column "${url}" cannot be both the URL and the hash column.`);
  }
  const id =
    settings.idColumn === undefined
      ? autoColumn(available, ID_COLUMNS, [url, hash])
      : pickColumn(path, available, "id", settings.idColumn, ID_COLUMNS);
  return { url, hash, id };
}

function pickColumn(
  path: string,
  available: readonly string[],
  role: "url" | "hash" | "id",
  requested: string | undefined,
  candidates: readonly string[],
): string {
  const columnList = `Columns: ${available.join(", ") || "(none)"}.`;
  if (requested !== undefined) {
    if (available.includes(requested)) return requested;
    const guess = closest(requested, available);
    const hint = guess === undefined ? "" : ` Did you mean "${guess}"?`;
    throw new AntidoteError(
      "COLUMN_MISSING",
      `${path}: no column "${requested}" for --${role}-column.${hint} ${columnList}`,
    );
  }
  const hit = autoColumn(available, candidates, []);
  if (hit !== undefined) return hit;
  const guess = candidates.map((c) => closest(c, available)).find((c) => c !== undefined);
  const hint = guess === undefined ? "" : ` Did you mean "${guess}"?`;
  throw new AntidoteError(
    "COLUMN_MISSING",
    `${path}: no ${role} column (looked for ${candidates.join(", ")}); name it with --${role}-column.${hint} ${columnList}`,
  );
}

function autoColumn(
  available: readonly string[],
  candidates: readonly string[],
  taken: readonly string[],
): string | undefined {
  const lower = new Map(available.filter((c) => !taken.includes(c)).map((c) => [c.toLowerCase(), c]));
  return candidates.map((c) => lower.get(c)).find((c) => c !== undefined);
}

// CSV / TSV: the exported RecordSplitter finds record ends (quoted line breaks, runaway
// quotes) and the line each starts on; csv-parse parses the one-line records in batches.
async function openCsvIndex(path: string): Promise<IndexFile> {
  const delimiter = innerExtension(path) === ".tsv" ? "\t" : ",";
  const records = csvRecords(path, delimiter);
  const first = await records.next();
  if (first.done === true) throw new AntidoteError("INPUT_FORMAT", `${path}: empty, no header row.`);
  if ("error" in first.value) {
    await records.return(undefined);
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: cannot read the header (${first.value.error.message}).`,
    );
  }
  const header = first.value.fields;
  async function* rows(): AsyncGenerator<IndexRow> {
    try {
      for await (const item of { [Symbol.asyncIterator]: () => records }) {
        if ("error" in item) {
          yield { error: item.error };
        } else if (item.fields.length !== header.length) {
          const detail = `expected ${header.length} fields as in the header, found ${item.fields.length}`;
          yield { error: malformed(where(path, item.line), "", detail) };
        } else {
          const fields = item.fields;
          yield {
            record: Object.fromEntries(header.map((h, i) => [h, fields[i]])),
            at: where(path, item.line),
          };
        }
      }
    } finally {
      await records.return(undefined);
    }
  }
  return { columns: header, total: undefined, rows };
}

type CsvRecord = { fields: string[]; line: number } | { error: AntidoteError; line: number };
type CsvPiece = ReturnType<RecordSplitter["push"]>[number];

async function* csvRecords(path: string, delimiter: string): AsyncGenerator<CsvRecord> {
  const input = openInputStream(path);
  input.setEncoding("utf8");
  const splitter = new RecordSplitter(path, delimiter);
  try {
    let first = true;
    for await (const chunk of input as AsyncIterable<string>) {
      yield* parsePieces(path, delimiter, splitter.push(first ? chunk.replace(/^\uFEFF/, "") : chunk));
      first = false;
    }
    yield* parsePieces(path, delimiter, splitter.end());
  } catch (e) {
    throw inputError(path, e);
  } finally {
    input.destroy();
  }
}

// One-line records are parsed together; only a batch that fails is parsed record by record,
// to tell which record is bad.
function parsePieces(path: string, delimiter: string, pieces: CsvPiece[]): CsvRecord[] {
  const out: CsvRecord[] = [];
  let batch: { text: string; line: number }[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    const parsed = tryParse(batch.map((p) => p.text).join("\n"), delimiter);
    if (parsed !== undefined && parsed.length === batch.length) {
      batch.forEach((p, i) => out.push({ fields: parsed[i] ?? [], line: p.line }));
    } else {
      for (const p of batch) {
        const one = tryParse(p.text, delimiter);
        out.push(
          one?.length === 1 && one[0] !== undefined
            ? { fields: one[0], line: p.line }
            : { error: malformed(where(path, p.line), "", "not a valid CSV record"), line: p.line },
        );
      }
    }
    batch = [];
  };
  for (const piece of pieces) {
    if ("text" in piece) batch.push(piece);
    else {
      flush();
      out.push(piece);
    }
  }
  flush();
  return out;
}

function tryParse(text: string, delimiter: string): string[][] | undefined {
  try {
    return parseCsv(text, { delimiter, record_delimiter: "\n", relax_column_count: true });
  } catch {
    return undefined;
  }
}

// JSONL: columns are the keys of the first object (as the dataset readers take them); a
// later row without a key is that row's problem.
async function openJsonlIndex(path: string): Promise<IndexFile> {
  let columns: string[] = [];
  for await (const row of jsonlRows(path)) {
    if ("record" in row) {
      columns = Object.keys(row.record);
      break;
    }
  }
  return { columns, total: undefined, rows: () => jsonlRows(path) };
}

async function* jsonlRows(path: string): AsyncGenerator<IndexRow> {
  const input = openInputStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const raw of lines) {
      lineNo++;
      const text = lineNo === 1 ? raw.replace(/^\uFEFF/, "") : raw;
      if (text.trim() === "") continue;
      const at = where(path, lineNo);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        yield { error: malformed(at, "", "not valid JSON") };
        continue;
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        yield { error: malformed(at, "", "expected a JSON object") };
        continue;
      }
      yield { record: value as Record<string, unknown>, at };
    }
  } catch (e) {
    throw inputError(path, e);
  } finally {
    lines.close();
    input.destroy();
  }
}

// Parquet: one row group at a time, only the URL, hash and id columns of it, decoded on a
// thread with a deadline (data/formats/parquet-decoder.ts): a crawl index comes from outside.
async function openParquetIndex(path: string): Promise<IndexFile> {
  let file: AsyncBuffer;
  let metadata: FileMetaData;
  let columns: string[];
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
    columns = parquetSchema(metadata).children.map((c) => c.element.name);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${path}: not a Parquet file (${reason(e)}).`, { cause: e });
  }
  const byteLength = file.byteLength;
  async function* rows(wanted: IndexColumns): AsyncGenerator<IndexRow> {
    const names = [wanted.url, wanted.hash, ...(wanted.id === undefined ? [] : [wanted.id])];
    const pages = createParquetDecoder(path, byteLength);
    let rowStart = 0;
    try {
      for (const [g, group] of metadata.row_groups.entries()) {
        const rowEnd = rowStart + Number(group.num_rows);
        const bytes = group.columns.reduce(
          (sum, c) => sum + Number(c.meta_data?.total_compressed_size ?? 0n),
          0,
        );
        let records: Record<string, unknown>[];
        try {
          records = await pages.read({ rowStart, rowEnd, bytes, columns: names });
        } catch (e) {
          if (e instanceof AntidoteError && e.code === "INPUT_FORMAT") throw e;
          throw new AntidoteError("INPUT_FORMAT", `${path}: cannot read row group ${g}: ${reason(e)}.`, {
            cause: e,
          });
        }
        for (const [k, record] of records.entries()) yield { record, at: where(path, rowStart + k, "row") };
        rowStart = rowEnd;
      }
    } finally {
      await pages.close();
    }
  }
  return { columns, total: Number(metadata.num_rows), rows };
}

function reason(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\.$/, "");
}

function isBlank(v: unknown): boolean {
  return v === null || v === undefined || (typeof v === "string" && v.trim() === "");
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  return JSON.stringify(v) ?? "";
}
