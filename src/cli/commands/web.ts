// `antidote web verify <index>`: download every URL of a web dataset's index, compare each
// body's SHA-256 with the index's, report split-view poisoning (content changed since
// indexing) and record the findings in the ledger.
import { createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import type { Finding, Ledger, LedgerEventInput } from "../../ledger/types.js";
import {
  countUrlCheck,
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_BYTES,
  DEFAULT_TIMEOUT_MS,
  emptyUrlIndexSummary,
  urlCheckFinding,
  verifyUrlIndex,
  type UrlCheck,
  type UrlIndexSummary,
} from "../../provenance/web.js";
import { stageOutput, type OutputOptions, type StagedOutput } from "../../data/atomic-output.js";
import { EXIT } from "../exit-codes.js";
import { parseFlags } from "../options.js";
import { progressBar, type ProgressBar } from "../progress.js";
import { printTable } from "../table.js";

/** Findings per ledger append: each append is one transaction and one signed checkpoint. */
const LEDGER_BATCH = 500;
/** Mismatches listed on the terminal; --json and --out list them all. */
const SHOWN_MISMATCHES = 50;

const positiveInt = (max: number) => z.coerce.number().int().min(1).max(max);

const webVerifyFlags = z.object({
  index: z.string().min(1),
  urlColumn: z.string().min(1).optional(),
  hashColumn: z.string().min(1).optional(),
  idColumn: z.string().min(1).optional(),
  concurrency: positiveInt(1024).default(DEFAULT_CONCURRENCY),
  timeoutMs: positiveInt(24 * 3600 * 1000).default(DEFAULT_TIMEOUT_MS),
  maxBytes: positiveInt(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_BYTES),
  store: z.string().min(1).optional(),
  out: z.string().min(1).optional(),
  force: z.boolean().optional(),
  ledger: z.string().min(1).optional(),
  json: z.boolean().optional(),
  strict: z.boolean().optional(),
});

/** What `runWebVerify` takes: the command's flags, numbers as numbers or as typed text. */
export interface WebVerifyOptions {
  index: string;
  urlColumn?: string;
  hashColumn?: string;
  idColumn?: string;
  concurrency?: number | string;
  timeoutMs?: number | string;
  maxBytes?: number | string;
  /** Keep verified content here, named by SHA-256. */
  store?: string;
  /** Write a JSON report of every URL that did not match. */
  out?: string;
  /** Replace an existing report at `out`. */
  force?: boolean;
  /** Ledger location (SQLite path or postgres URL) to record findings in. */
  ledger?: string;
  json?: boolean;
  /** Also fail (exit 6) when some URL could not be verified. */
  strict?: boolean;
}

export interface WebVerifyResult {
  index: string;
  summary: UrlIndexSummary;
  /** Every URL whose content differs from the index. */
  mismatches: UrlCheck[];
  /** Findings appended to the ledger (0 without --ledger). */
  findingsRecorded: number;
  seconds: number;
  /** 0, or EXIT.verification when a URL mismatched (or, with --strict, was unverifiable). */
  exitCode: number;
}

export function registerWeb(program: Command): void {
  const web = program.command("web").description("Checks for web-sourced data");
  web
    .command("verify")
    .argument("<index>", "URL index: CSV, TSV, JSONL or Parquet with a URL and an expected SHA-256 column")
    .description(
      "Download every URL of a dataset index and compare its SHA-256 with the index's, to catch\n" +
        "split-view poisoning (content changed since the index was made). Exit 6 on any mismatch.",
    )
    .option("--url-column <name>", "column holding the URL (default: url, image_url, link, uri)")
    .option("--hash-column <name>", "column holding the expected SHA-256 (default: sha256, hash, …)")
    .option("--id-column <name>", "column holding the row id (default: id, sample_id, uid, key)")
    .option("--concurrency <n>", `downloads at once (default ${DEFAULT_CONCURRENCY})`)
    .option("--timeout-ms <n>", `limit per URL, redirects and body included (default ${DEFAULT_TIMEOUT_MS})`)
    .option("--max-bytes <n>", `largest body to hash (default ${DEFAULT_MAX_BYTES})`)
    .option("--store <dir>", "keep verified content here, named by SHA-256")
    .option("--out <report.json>", "write every URL that did not match, with why, as JSON")
    .option("--force", "replace an existing --out report")
    .option("--ledger <location>", "record findings in this ledger (SQLite path or postgres URL)")
    .option("--strict", "also exit 6 when a URL is unreachable, too large or invalid")
    .option("--json", "print the result as JSON")
    .action(async (index: string, flags: Record<string, unknown>) => {
      const result = await runWebVerify({ ...flags, index });
      if (result.exitCode === EXIT.verification) {
        const { mismatch, total } = result.summary;
        const unverified = total - result.summary.match - mismatch;
        throw new AntidoteError(
          "DIGEST_MISMATCH",
          mismatch > 0
            ? `${mismatch} of ${total} URLs serve different content than ${index} promises (split-view poisoning?).`
            : `${unverified} of ${total} URLs could not be verified (--strict).`,
        );
      }
    });
}

/** The command without its exit: verify, print, report, record; returns what it found. */
export async function runWebVerify(
  options: WebVerifyOptions,
  stdout: NodeJS.WritableStream = process.stdout,
): Promise<WebVerifyResult> {
  const f = parseFlags(webVerifyFlags, options);
  const started = performance.now();
  const ledger = f.ledger === undefined ? undefined : await openLedgerAt(f.ledger);
  const report =
    f.out === undefined
      ? undefined
      : await ReportWriter.open(f.out, f.index, { overwrite: f.force === true, inputs: [f.index] });
  const recorder = ledger === undefined ? undefined : new FindingRecorder(ledger);
  let bar: ProgressBar | undefined;
  const summary = emptyUrlIndexSummary();
  const mismatches: UrlCheck[] = [];
  try {
    const checks = verifyUrlIndex(f.index, {
      urlColumn: f.urlColumn,
      hashColumn: f.hashColumn,
      idColumn: f.idColumn,
      concurrency: f.concurrency,
      timeoutMs: f.timeoutMs,
      maxBytes: f.maxBytes,
      storeDir: f.store,
      onProgress: (done, total) => {
        // The total is known only once the index is open (Parquet), so the bar starts here.
        bar ??= progressBar({ label: "verifying", total, unit: "samples", enabled: f.json !== true });
        if (done % 50 === 0) bar.update(done);
      },
    });
    for await (const check of checks) {
      countUrlCheck(summary, check);
      if (check.status === "mismatch") mismatches.push(check);
      if (check.status !== "match") await report?.add(check);
      const finding = urlCheckFinding(check);
      if (finding !== undefined) await recorder?.add(finding);
    }
    await recorder?.flush();
  } finally {
    bar?.stop();
    await report?.close(summary);
    await ledger?.close();
  }

  const seconds = (performance.now() - started) / 1000;
  const failed = summary.mismatch > 0 || (f.strict === true && summary.match < summary.total);
  const result: WebVerifyResult = {
    index: f.index,
    summary,
    mismatches,
    findingsRecorded: recorder?.recorded ?? 0,
    seconds,
    exitCode: failed ? EXIT.verification : EXIT.ok,
  };
  if (f.json === true) stdout.write(JSON.stringify(result, null, 2) + "\n");
  else printHuman(result, f.out, f.ledger, stdout);
  return result;
}

function printHuman(
  r: WebVerifyResult,
  out: string | undefined,
  ledger: string | undefined,
  stdout: NodeJS.WritableStream,
): void {
  const s = r.summary;
  stdout.write(
    `checked ${s.total.toLocaleString("en-US")} URLs from ${r.index} in ${r.seconds.toFixed(1)} s\n\n`,
  );
  printTable(
    ["status", "URLs"],
    [
      ["match", s.match],
      ["mismatch", s.mismatch],
      ["unreachable", s.unreachable],
      ["too-large", s.tooLarge],
      ["invalid-url", s.invalid],
    ],
    stdout,
  );
  if (r.mismatches.length > 0) {
    stdout.write(`\nContent differs from the index (split-view poisoning?):\n`);
    printTable(
      ["id", "url", "expected", "downloaded"],
      r.mismatches
        .slice(0, SHOWN_MISMATCHES)
        .map((c) => [c.id, c.url, c.expected.slice(0, 16) + "…", (c.actual ?? "").slice(0, 16) + "…"]),
      stdout,
    );
    if (r.mismatches.length > SHOWN_MISMATCHES) {
      stdout.write(`… and ${r.mismatches.length - SHOWN_MISMATCHES} more (--json or --out lists them all)\n`);
    }
  }
  if (out !== undefined) stdout.write(`\nreport: ${out}\n`);
  if (ledger !== undefined) stdout.write(`ledger: ${r.findingsRecorded} findings recorded in ${ledger}\n`);
}

// Loaded only when --ledger is given, so verifying without a ledger never loads the database drivers.
async function openLedgerAt(location: string): Promise<Ledger> {
  const { openLedger } = await import("../../ledger/index.js");
  return openLedger({ location });
}

/** Appends findings in batches, so a million-URL index is a few thousand transactions. */
class FindingRecorder {
  recorded = 0;
  private pending: LedgerEventInput[] = [];

  constructor(private readonly ledger: Ledger) {}

  async add(finding: Finding): Promise<void> {
    this.pending.push({ kind: "finding.recorded", payload: finding });
    if (this.pending.length >= LEDGER_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    await this.ledger.append(batch);
    this.recorded += batch.length;
  }
}

/**
 * The --out report, written as results arrive so that an index with millions of dead links
 * does not have to fit in memory: {index, checks: [every non-match], summary}.
 */
class ReportWriter {
  private first = true;

  private constructor(
    private readonly stream: WriteStream,
    private readonly staged: StagedOutput,
  ) {}

  // Written under a temporary name and renamed when complete (src/data/atomic-output.ts).
  static async open(path: string, index: string, guard: OutputOptions): Promise<ReportWriter> {
    const staged = await stageOutput(path, guard);
    const stream = createWriteStream(staged.path);
    await Promise.race([
      once(stream, "open"),
      once(stream, "error").then(([e]: unknown[]) => {
        throw new AntidoteError("USAGE", `--out ${path}: cannot write the report (${String(e)}).`);
      }),
    ]);
    const writer = new ReportWriter(stream, staged);
    await writer.write(`{\n  "index": ${JSON.stringify(index)},\n  "checks": [`);
    return writer;
  }

  async add(check: UrlCheck): Promise<void> {
    await this.write(`${this.first ? "" : ","}\n    ${JSON.stringify(check)}`);
    this.first = false;
  }

  async close(summary: UrlIndexSummary): Promise<void> {
    await this.write(`${this.first ? "" : "\n  "}],\n  "summary": ${JSON.stringify(summary)}\n}\n`);
    this.stream.end();
    await once(this.stream, "finish");
    await this.staged.commit();
  }

  private async write(text: string): Promise<void> {
    if (!this.stream.write(text)) await once(this.stream, "drain");
  }
}
