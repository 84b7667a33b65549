// Read throughput and streaming memory of the dataset readers, on real data.
//   npm run bench            (first run prepares converted copies under .cache/bench, ~2 min)
// Each measurement runs in its own child process so peak RSS is that reader's alone.
import { execFileSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { openDataset } from "../src/data/open.js";
import { convertDataset } from "../src/data/convert.js";
import type { DatasetFormat } from "../src/data/sample.js";

const CACHE = join(process.cwd(), ".cache", "bench");
const FM = "/usr/share/datasets/fashion-mnist";

interface Measurement {
  count: number;
  seconds: number;
  bytes: number;
  maxRssMB: number;
  /** RSS in MB after each tenth of the samples. */
  rssTrace: number[];
}

if (process.argv[2] === "--measure") {
  const [spec, format, expected] = process.argv.slice(3);
  process.stdout.write(
    JSON.stringify(await measure(spec ?? "", format as DatasetFormat | undefined, Number(expected))) + "\n",
  );
} else {
  await main();
}

async function main(): Promise<void> {
  mkdirSync(CACHE, { recursive: true });
  await prepare();
  const cases: { name: string; spec: string; format?: DatasetFormat; count: number }[] = [
    { name: "Fashion-MNIST train, IDX (gzip)", spec: "fashion-mnist", count: 60_000 },
    {
      name: "Fashion-MNIST train, Parquet (HF image struct, PNG)",
      spec: join(CACHE, "fashion-mnist.parquet"),
      count: 60_000,
    },
    {
      name: "Fashion-MNIST train, ImageFolder (PNG files)",
      spec: join(CACHE, "fashion-mnist-imagefolder"),
      format: "imagefolder",
      count: 60_000,
    },
    { name: "SpamAssassin, JSONL", spec: join(CACHE, "spamassassin.jsonl"), count: 6_046 },
    {
      name: "Fashion-MNIST ×1, IDX (raw)",
      spec: join(CACHE, "fm-x1", "train-images-idx3-ubyte"),
      count: 60_000,
    },
    {
      name: "Fashion-MNIST ×10, IDX (raw, 600k)",
      spec: join(CACHE, "fm-x10", "train-images-idx3-ubyte"),
      count: 600_000,
    },
  ];
  const rows: string[][] = [];
  const results: Record<string, Measurement> = {};
  for (const c of cases) {
    const args = ["--import", "tsx", "bench/read.ts", "--measure", c.spec, c.format ?? "", String(c.count)];
    const m = JSON.parse(
      execFileSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 20 }),
    ) as Measurement;
    results[c.name] = m;
    rows.push([
      c.name,
      m.count.toLocaleString("en-US"),
      fmt(m.count / m.seconds, 0),
      fmt(m.bytes / 1e6 / m.seconds, 1),
      fmt(m.seconds, 1),
      fmt(m.maxRssMB, 0),
    ]);
    process.stderr.write(`  measured ${c.name}\n`);
  }
  printTable(["dataset", "samples", "samples/s", "MB/s (on disk)", "s", "peak RSS MB"], rows);
  const x10 = results["Fashion-MNIST ×10, IDX (raw, 600k)"];
  const x1 = results["Fashion-MNIST ×1, IDX (raw)"];
  if (x10 && x1) {
    process.stdout.write(
      `\nStreaming memory: peak RSS ${fmt(x1.maxRssMB, 0)} MB for 60k vs ${fmt(x10.maxRssMB, 0)} MB for 600k ` +
        `(ratio ${fmt(x10.maxRssMB / x1.maxRssMB, 2)}; a reader that buffered would need ~${fmt((600_000 * 784 * 4) / 1e6, 0)} MB of Float32 pixels).\n` +
        `RSS (MB) after each tenth of the 600k: ${x10.rssTrace.map((v) => fmt(v, 0)).join(" ")}\n`,
    );
  }
}

async function measure(
  spec: string,
  format: DatasetFormat | undefined,
  expected: number,
): Promise<Measurement> {
  const dataset = await openDataset(spec, format ? { format } : {});
  const started = performance.now();
  const trace: number[] = [];
  const step = Math.max(1, Math.floor(expected / 10));
  let count = 0;
  let checksum = 0;
  for await (const s of dataset.samples()) {
    count++;
    checksum += s.image ? (s.image.data[100] ?? 0) : (s.text?.length ?? 0); // touch the data
    if (count % step === 0) trace.push(process.memoryUsage().rss / 1e6);
  }
  const seconds = (performance.now() - started) / 1000;
  if (Number.isNaN(checksum)) throw new Error("unreachable");
  return {
    count,
    seconds,
    bytes: inputBytes(spec, dataset.info.bytes),
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    rssTrace: trace,
  };
}

function inputBytes(spec: string, reported: number | undefined): number {
  if (reported !== undefined && reported > 0) return reported;
  return existsSync(spec) ? duBytes(spec) : 0;
}

function duBytes(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + duBytes(join(path, name)), 0);
}

// Converted copies of the real data, made once with Antidote's own writers.
async function prepare(): Promise<void> {
  const jobs: [string, string][] = [
    [join(CACHE, "fashion-mnist.parquet"), "fashion-mnist"],
    [join(CACHE, "fashion-mnist-imagefolder"), "fashion-mnist"],
    [join(CACHE, "spamassassin.jsonl"), "spamassassin"],
  ];
  for (const [out, spec] of jobs) {
    if (existsSync(out)) continue;
    process.stderr.write(`  preparing ${out} …\n`);
    await convertDataset(
      await openDataset(spec),
      out,
      out.endsWith("imagefolder") ? { format: "imagefolder" } : {},
    );
  }
  for (const times of [1, 10]) {
    const dir = join(CACHE, `fm-x${times}`);
    if (existsSync(join(dir, "train-labels-idx1-ubyte"))) continue;
    process.stderr.write(`  preparing ${dir} (${times}× Fashion-MNIST train, uncompressed IDX) …\n`);
    mkdirSync(dir, { recursive: true });
    await replicateIdx(
      join(FM, "train-images-idx3-ubyte.gz"),
      join(dir, "train-images-idx3-ubyte"),
      16,
      times,
    );
    await replicateIdx(
      join(FM, "train-labels-idx1-ubyte.gz"),
      join(dir, "train-labels-idx1-ubyte"),
      8,
      times,
    );
  }
}

// Write the payload `times` times after a header whose count (bytes 4..8) is multiplied.
// Preparation only (not measured), so reading the 47 MB original into memory is fine here.
async function replicateIdx(src: string, dst: string, headerBytes: number, times: number): Promise<void> {
  const original = gunzipSync(readFileSync(src));
  const header = Buffer.from(original.subarray(0, headerBytes));
  header.writeUInt32BE(header.readUInt32BE(4) * times, 4);
  const out = createWriteStream(dst);
  const write = (b: Uint8Array) => new Promise<void>((res, rej) => out.write(b, (e) => (e ? rej(e) : res())));
  await write(header);
  for (let t = 0; t < times; t++) await write(original.subarray(headerBytes));
  await new Promise<void>((res) => out.end(res));
}

function fmt(v: number, digits: number): string {
  return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) =>
    "| " +
    r.map((v, c) => (c === 0 ? v.padEnd(widths[c] ?? 0) : v.padStart(widths[c] ?? 0))).join(" | ") +
    " |";
  process.stdout.write("\n" + line(header) + "\n|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|\n");
  for (const r of rows) process.stdout.write(line(r) + "\n");
}
