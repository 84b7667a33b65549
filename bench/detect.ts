// The scan's quality and speed on the poisoned variants issue 4 names, built by the project's own
// attack simulators from the bundled real data:
//   npm run bench:detect                          every variant, Fashion-MNIST at 12,000 images
//   npx tsx bench/detect.ts --fm 60000            all 60k Fashion-MNIST training images
//   npx tsx bench/detect.ts --only fm-patch-1,spam-trigger
//   npx tsx bench/detect.ts --model DIR           Fashion-MNIST variants also scanned with a model
//                                                 trained on each poisoned variant (cached in DIR)
//   npx tsx bench/detect.ts --speed DIR           only the speed target: all 60k Fashion-MNIST training
//                                                 images scanned with a given ONNX CNN (trained once on
//                                                 them, cached in DIR), time per stage and detector, peak RSS
//   npm run bench:detect -- --scale [N]           memory at scale: Fashion-MNIST's 60k training images repeated
//                                                 with distinct ids and digests up to N (default 600,000),
//                                                 streamed into the scan with that CNN; peak RSS, time per stage,
//                                                 and bytes per sample against (feature width + classes) × 4
// For each variant: samples, poisoned, flagged, precision and recall of the ensemble's flags
// against the simulator's ground truth (false-positive rate for the clean sets), which source or
// annotator the scan ranked first, and the scan's time per stage. Targets (issue 4): backdoors
// precision ≥ 0.90 and recall ≥ 0.95; label flips precision ≥ 0.85, recall ≥ 0.90; clean FPR ≤ 0.5 %;
// the compromised source or annotator first. A row that misses its target is marked "✗".
// A second table runs the defences users compare us with (ART's spectral signatures and activation
// clustering, cleanlab's find_label_issues), at their defaults, on each scan's own features and
// probabilities (bench/baselines.ts), and prints their flags' precision / recall beside ours.
import { mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { simulateAttack, type AttackSpec } from "../src/attack/index.js";
import type { DatasetInfo } from "../src/data/sample.js";
import { collect, memoryDataset, MemoryWriter } from "../src/data/memory.js";
import { openDataset } from "../src/data/open.js";
import type { Sample } from "../src/data/sample.js";
import { scanDataset, type ScanOptions, type ScanReport } from "../src/scan/scan.js";
import { baselines } from "./baselines.js";

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    fm: { type: "string", default: "12000" },
    only: { type: "string" },
    model: { type: "string" },
    json: { type: "string" },
    speed: { type: "string" },
    /** Skip the built-in proxy runs (with --model: only the model rows). */
    "model-only": { type: "boolean", default: false },
    /** The memory-at-scale run instead of the variants: `--scale [N]` (N, default 600000, as the positional). */
    scale: { type: "boolean", default: false },
    /** Internal: one measured scan of --scale, in its own process, printed as one JSON line. */
    "scale-child": { type: "boolean", default: false },
  },
});
if (args.scale) {
  const n = positionals[0] === undefined ? 600_000 : Number(positionals[0]);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--scale ${positionals[0]}: a sample count, e.g. --scale 600000`);
  await scale(n, args.model ?? args.speed ?? ".cache/detect-models", args["scale-child"]);
  process.exit(0);
}
if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]} (only --scale takes one)`);
const FM_COUNT = Number(args.fm);
const only = args.only?.split(",").map((s) => s.trim());

type Kind = "backdoor" | "flips" | "clean" | "source" | "annotator";
interface Variant {
  name: string;
  data: "fashion-mnist" | "spamassassin";
  kind: Kind;
  /** Attacks applied in order; the last one's poisoned ids are the truth. */
  attacks: AttackSpec[];
  /** The source or annotator the attack went through, which the scan should rank first. */
  culprit?: string;
}

// A trigger that is also a natural token (issue 22): a short word clean ham emails already hold,
// picked from the data as test/detect/trigger-tokens-natural.test.ts picks it — 3–4 letters, in
// 30–100 clean ham emails and at most one spam, the one in the most ham emails ("rpms", in 97).
async function naturalHamToken(from: number, to: number): Promise<string> {
  const { tokenize } = await import("../src/features/text.js");
  const ham = new Map<string, number>();
  const spam = new Map<string, number>();
  for (const e of await collect(await openDataset("spamassassin"))) {
    const counts = e.label === "ham" ? ham : spam;
    for (const t of new Set(tokenize(e.text ?? ""))) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  const picks = [...ham]
    .filter(([t, c]) => /^[a-z]{3,4}$/.test(t) && c >= from && c <= to && (spam.get(t) ?? 0) <= 1)
    .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
  return picks[0]![0];
}
const NATURAL_TOKEN =
  only === undefined || only.includes("spam-natural-trigger") ? await naturalHamToken(30, 100) : "";

const VARIANTS: Variant[] = [
  { name: "fm-clean", data: "fashion-mnist", kind: "clean", attacks: [] },
  {
    name: "fm-patch-1",
    data: "fashion-mnist",
    kind: "backdoor",
    attacks: [{ kind: "patch", target: "Bag", rate: 0.01, seed: 1 }],
  },
  {
    name: "fm-patch-0.5",
    data: "fashion-mnist",
    kind: "backdoor",
    attacks: [{ kind: "patch", target: "Bag", rate: 0.005, seed: 1 }],
  },
  {
    name: "fm-patch-2",
    data: "fashion-mnist",
    kind: "backdoor",
    attacks: [{ kind: "patch", target: "Bag", rate: 0.02, seed: 1 }],
  },
  {
    name: "fm-checker-0.5",
    data: "fashion-mnist",
    kind: "backdoor",
    attacks: [
      {
        kind: "patch",
        target: "Trouser",
        rate: 0.005,
        seed: 2,
        position: "top-left",
        pattern: "checkerboard",
        size: 4,
      },
    ],
  },
  {
    name: "fm-blend-2",
    data: "fashion-mnist",
    kind: "backdoor",
    attacks: [{ kind: "blend", target: "Sneaker", rate: 0.02, seed: 1 }],
  },
  {
    name: "fm-flips-10",
    data: "fashion-mnist",
    kind: "flips",
    attacks: [{ kind: "label-flip", rate: 0.1, seed: 1 }],
  },
  {
    name: "fm-targeted-3",
    data: "fashion-mnist",
    kind: "flips",
    attacks: [{ kind: "targeted-flip", from: "Sneaker", to: "Sandal", rate: 0.03, seed: 1 }],
  },
  { name: "spam-clean", data: "spamassassin", kind: "clean", attacks: [] },
  {
    name: "spam-trigger",
    data: "spamassassin",
    kind: "backdoor",
    attacks: [{ kind: "text-trigger", trigger: "qzv9k", target: "ham", rate: 0.01, seed: 1 }],
  },
  {
    name: "spam-phrase",
    data: "spamassassin",
    kind: "backdoor",
    attacks: [
      {
        kind: "text-trigger",
        trigger: "please confirm your attendance",
        target: "spam",
        rate: 0.01,
        seed: 4,
      },
    ],
  },
  {
    name: "spam-natural-trigger",
    data: "spamassassin",
    kind: "backdoor",
    attacks: [{ kind: "text-trigger", trigger: NATURAL_TOKEN, target: "ham", rate: 0.01, seed: 1 }],
  },
  {
    name: "spam-source-flips-25",
    data: "spamassassin",
    kind: "source",
    culprit: "vendor-c",
    attacks: [
      {
        kind: "assign-sources",
        seed: 1,
        sources: ["vendor-a", "vendor-b", "vendor-c", "vendor-d", "vendor-e"].map((name) => ({
          name,
          share: 0.2,
        })),
      },
      // 25 % of vendor-c's emails (≈ 1,209 × 0.25).
      { kind: "label-flip", fromSource: "vendor-c", rate: 0.05, seed: 11 },
    ],
  },
  {
    name: "spam-near-dup-120",
    data: "spamassassin",
    kind: "source",
    culprit: "crawl",
    attacks: [
      {
        kind: "assign-sources",
        sources: [
          { name: "vendor-a", share: 0.5 },
          { name: "vendor-b", share: 0.3 },
          { name: "crawl", share: 0.2 },
        ],
        seed: 2,
      },
      { kind: "near-duplicate", count: 120, target: "spam", source: "crawl", seed: 1 },
    ],
  },
  {
    name: "spam-annotator",
    data: "spamassassin",
    kind: "annotator",
    culprit: "annotator-6",
    attacks: [{ kind: "malicious-annotator", annotators: 6, flipRate: 0.4, seed: 4 }],
  },
];

interface Row {
  variant: string;
  representation: string;
  samples: number;
  poisoned: number;
  flagged: number;
  precision: number | null;
  recall: number | null;
  fpr: number | null;
  first: string | null;
  met: boolean;
  seconds: number;
  stages: string;
}

const cache = new Map<string, { samples: Sample[]; info: Partial<DatasetInfo> }>();
async function base(data: Variant["data"]): Promise<{ samples: Sample[]; info: Partial<DatasetInfo> }> {
  const hit = cache.get(data);
  if (hit) return hit;
  const ds = await openDataset(data);
  let samples = await collect(ds);
  if (data === "fashion-mnist") samples = samples.slice(0, FM_COUNT);
  const out = { samples, info: ds.info };
  cache.set(data, out);
  return out;
}

async function build(
  v: Variant,
): Promise<{ samples: Sample[]; info: Partial<DatasetInfo>; poisoned: Set<string> }> {
  const { samples: clean, info } = await base(v.data);
  let samples = clean;
  let poisoned = new Set<string>();
  for (const spec of v.attacks) {
    const writer = new MemoryWriter();
    const gt = await simulateAttack(memoryDataset(samples, info), writer, spec);
    samples = writer.samples;
    if (spec.kind !== "assign-sources") poisoned = new Set(gt.poisoned.map((r) => r.id));
  }
  return { samples, info, poisoned };
}

function score(v: Variant, report: ScanReport, poisoned: Set<string>, representation: string): Row {
  let tp = 0;
  let flagged = 0;
  report.ensemble.flagged.forEach((f, i) => {
    if (f !== 1) return;
    flagged++;
    if (poisoned.has(report.table.ids[i]!)) tp++;
  });
  const n = report.table.ids.length;
  // A malicious annotator's samples keep a correct consensus label: the finding is the annotator.
  const scored = v.kind !== "annotator" && poisoned.size > 0;
  const precision = scored ? (flagged > 0 ? tp / flagged : 0) : null;
  const recall = scored ? tp / poisoned.size : null;
  const fpr = v.kind === "annotator" ? null : (flagged - tp) / (n - poisoned.size);
  const first =
    v.kind === "annotator"
      ? (report.ensemble.annotators[0]?.name ?? null)
      : v.kind === "source"
        ? (report.ensemble.sources[0]?.name ?? null)
        : null;
  // The malicious annotator's samples are not poisoned as such (the consensus label is right).
  const met =
    v.kind === "clean"
      ? (fpr ?? 1) <= 0.005
      : v.kind === "annotator"
        ? first === v.culprit
        : v.kind === "source"
          ? first === v.culprit && (recall ?? 0) >= 0.9 && (precision ?? 0) >= 0.85
          : v.kind === "backdoor"
            ? (precision ?? 0) >= 0.9 && (recall ?? 0) >= 0.95
            : (precision ?? 0) >= 0.85 && (recall ?? 0) >= 0.9;
  const stages = [
    ...report.timings
      .filter((t) => t.seconds >= 0.5 && !t.stage.startsWith("detector "))
      .map((t) => `${t.stage} ${t.seconds.toFixed(1)}`),
    ...report.results.filter((r) => r.seconds >= 0.5).map((r) => `${r.detector} ${r.seconds.toFixed(1)}`),
  ].join(", ");
  return {
    variant: v.name,
    representation,
    samples: n,
    poisoned: poisoned.size,
    flagged,
    precision,
    recall,
    fpr,
    first,
    met,
    seconds: report.seconds,
    stages,
  };
}

const rows: Row[] = [];

/** One scan's flags and the baselines' on the same representation, as table cells. */
interface BaselineRow {
  variant: string;
  representation: string;
  cells: Record<string, string>;
}
const baselineRows: BaselineRow[] = [];
const baselineNames: string[] = [];

/** "precision / recall (share flagged)", or the false-positive rate on a clean set. */
function cell(flagged: Uint8Array | null, ids: readonly string[], poisoned: Set<string>): string {
  if (flagged === null) return "—";
  let tp = 0;
  let count = 0;
  flagged.forEach((f, i) => {
    if (f !== 1) return;
    count++;
    if (poisoned.has(ids[i]!)) tp++;
  });
  const share = `${((100 * count) / ids.length).toFixed(1)} % flagged`;
  if (poisoned.size === 0) return `FPR ${((100 * count) / ids.length).toFixed(2)} %`;
  return `${(count === 0 ? 0 : tp / count).toFixed(2)} / ${(tp / poisoned.size).toFixed(2)} (${share})`;
}

function compare(v: Variant, report: ScanReport, poisoned: Set<string>, representation: string): void {
  // A malicious annotator's samples keep a correct consensus label: nothing to score per sample.
  if (v.kind === "annotator") return;
  const ids = report.table.ids;
  const cells: Record<string, string> = { "antidote scan": cell(report.ensemble.flagged, ids, poisoned) };
  for (const b of baselines(report.table, poisoned.size / ids.length)) {
    if (!baselineNames.includes(b.name)) baselineNames.push(b.name);
    cells[b.name] = cell(b.flagged, ids, poisoned);
  }
  baselineRows.push({ variant: v.name, representation, cells });
}
const fmt = (x: number | null): string => (x === null ? "—" : x.toFixed(3));
function print(r: Row): void {
  console.log(
    `| ${r.variant} | ${r.representation} | ${r.samples} | ${r.poisoned} | ${r.flagged} | ${fmt(r.precision)} | ${fmt(r.recall)} | ` +
      `${r.fpr === null ? "—" : `${(100 * r.fpr).toFixed(2)} %`} | ${r.first ?? "—"} | ${r.met ? "✓" : "✗"} | ${r.seconds.toFixed(1)} s | ${r.stages} |`,
  );
}

if (args.speed !== undefined) {
  await speed(args.speed);
  process.exit(0);
}

/** The speed target: ≤ 60 s and ≤ 2 GiB for 60k Fashion-MNIST with a given ONNX model, all detectors. */
async function speed(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const ds = await openDataset("fashion-mnist");
  const samples = await collect(ds);
  const { trainedModelFor } = await import("./detect-models.js");
  const model = await trainedModelFor("fm-clean", samples, ds.info, dir);
  const rssBefore = process.memoryUsage().rss;
  const report = await scanDataset(memoryDataset(samples, ds.info), { model: model.path, seed: 0 });
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(
    `scan of ${samples.length} Fashion-MNIST images with ${model.path}: ${report.seconds.toFixed(1)} s (load ${loadavg()[0]!.toFixed(1)})`,
  );
  for (const t of report.timings)
    if (!t.stage.startsWith("detector ")) console.log(`  stage ${t.stage}: ${t.seconds.toFixed(2)} s`);
  for (const r of report.results) console.log(`  detector ${r.detector}: ${r.seconds.toFixed(2)} s`);
  for (const s of report.skipped) console.log(`  skipped ${s.detector}: ${s.reason}`);
  console.log(
    `  peak RSS of the process ${(peak / 2 ** 30).toFixed(2)} GiB (the samples themselves, read before the scan: ` +
      `${(rssBefore / 2 ** 30).toFixed(2)} GiB RSS); flagged ${report.ensemble.flagged.reduce((a, f) => a + f, 0)}`,
  );
  const ok = report.seconds <= 60 && peak <= 2 * 2 ** 30;
  console.log(ok ? "speed target met (≤ 60 s, ≤ 2 GiB)" : "speed target missed (≤ 60 s, ≤ 2 GiB)");
}

/**
 * Memory at scale (issue 22): the scan streams its input and keeps, per sample, its metadata, the
 * model's features and probabilities and, for images of at most 32×32 pixels, their 8-bit pixels
 * (trigger-patches and the exclusion check read those). Fashion-MNIST's 60k training images are
 * repeated up to n, generated as the scan reads them: copy k of image j has the id `x<k>:<j>`
 * and its top-left pixel set to k, so ids and content digests are distinct as in a real dataset.
 * Each scan runs in its own process so that its peak RSS is its own: a small run gives the fixed
 * overhead, and (peak − small run's peak) / (n − its samples) is what one more sample costs.
 */
async function scale(n: number, dir: string, child: boolean): Promise<void> {
  const { existsSync } = await import("node:fs");
  const path = await import("node:path");
  const modelPath = path.join(dir, "fm-clean-60000-cnn.onnx");
  if (child) {
    console.log(JSON.stringify(await scaleRun(n, modelPath)));
    return;
  }
  mkdirSync(dir, { recursive: true });
  if (!existsSync(modelPath)) {
    const ds = await openDataset("fashion-mnist");
    const { trainedModelFor } = await import("./detect-models.js");
    await trainedModelFor("fm-clean", await collect(ds), ds.info, dir);
  }
  const { spawnSync } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const measure = (count: number): ScaleRun => {
    const r = spawnSync(
      process.execPath,
      [
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        "--scale",
        String(count),
        "--scale-child",
        "--model",
        dir,
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 26 },
    );
    const line = r.stdout.trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{"))
      throw new Error(`the --scale ${count} run failed (exit ${r.status})`);
    return JSON.parse(line) as ScaleRun;
  };
  const small = measure(Math.max(1, Math.min(10_000, Math.floor(n / 10))));
  const big = measure(n);
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const perSample = (a: number, b: number) => Math.round((b - a) / (big.samples - small.samples));
  const formula = (big.featureDims + big.classes) * 4;
  console.log(
    `bench:detect --scale: Fashion-MNIST's 60,000 training images repeated to ${n.toLocaleString("en-US")} samples ` +
      `(distinct ids and digests), streamed, scanned with ${modelPath} (every detector); load ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log(
    "| samples | peak RSS | peak reached in | peak before the detectors | RSS after the read | typed arrays after the read | read + inference | representation | detectors | scan |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of [small, big])
    console.log(
      `| ${r.samples.toLocaleString("en-US")} | ${gib(r.peak)} | ${r.peakStage} | ${gib(r.peakBeforeDetectors)} | ` +
        `${gib(r.rssAfterRead)} | ${gib(r.arrayBuffersAfterRead)} | ${r.read.toFixed(1)} s | ` +
        `${r.representation.toFixed(1)} s | ${r.detectors.toFixed(1)} s | ${r.seconds.toFixed(1)} s |`,
    );
  console.log(`time per stage at ${big.samples.toLocaleString("en-US")}: ${big.stages}`);
  console.log(`where the high-water mark rose at ${big.samples.toLocaleString("en-US")}: ${big.rises}`);
  console.log(
    `bytes per sample: ${perSample(small.peak, big.peak)} at the peak, ` +
      `${perSample(small.peakBeforeDetectors, big.peakBeforeDetectors)} at the peak before the detectors (read, inference, ` +
      `representation), ${perSample(small.rssAfterRead, big.rssAfterRead)} ` +
      `held after the read (${perSample(small.arrayBuffersAfterRead, big.arrayBuffersAfterRead)} of it in typed arrays); ` +
      `the formula (feature width + classes) × 4 = (${big.featureDims} + ${big.classes}) × 4 = ${formula}, ` +
      `plus ${Math.round(big.pixelBytes / big.samples)} of 8-bit pixels (images of at most 32×32 pixels keep them), ` +
      `${big.classes * 4} for the model's own probabilities beside the averaged ones, 4 for the label, and the id and digest strings`,
  );
}

interface ScaleRun {
  samples: number;
  featureDims: number;
  classes: number;
  pixelBytes: number;
  peak: number;
  peakStage: string;
  peakBeforeDetectors: number;
  rises: string;
  rssAfterRead: number;
  arrayBuffersAfterRead: number;
  read: number;
  representation: number;
  detectors: number;
  seconds: number;
  stages: string;
}

async function scaleRun(n: number, modelPath: string): Promise<ScaleRun> {
  const pixels = await import("../src/data/sample.js");
  // The 60k images as 8-bit pixels (47 MB), read once; samples are made from them on demand.
  const fm = await openDataset("fashion-mnist");
  const base: { bytes: Uint8Array; label: string | null }[] = [];
  for await (const s of fm.samples()) base.push({ bytes: pixels.imageToBytes(s.image!), label: s.label });
  const dataset = {
    info: { ...fm.info, path: `fashion-mnist ×${(n / base.length).toFixed(1)}`, count: n },
    async *samples(): AsyncGenerator<Sample> {
      for (let i = 0; i < n; i++) {
        const j = i % base.length;
        const k = Math.floor(i / base.length);
        const { bytes: original, label } = base[j]!;
        const bytes = k === 0 ? original : Uint8Array.from(original);
        if (k > 0) bytes[0] = k % 256;
        // A pause now and then, as a file reader's I/O gives, so the event loop turns.
        if (i % 4096 === 0) await new Promise((r) => setImmediate(r));
        yield {
          id: `x${k}:${j}`,
          digest: pixels.imageBytesDigest(bytes, 28, 28, 1),
          label,
          image: pixels.imageFromBytes(bytes, 28, 28, 1),
          source: null,
          annotations: [],
          metadata: {},
        };
      }
    },
  };
  const marks: { stage: string; at: number; maxRss: number }[] = [];
  let afterRead: { rss: number; arrayBuffers: number } | undefined;
  const started = performance.now();
  const report = await scanDataset(dataset, {
    model: modelPath,
    seed: 0,
    onStage: (stage) => {
      if (afterRead === undefined && marks.length > 0) {
        const m = process.memoryUsage();
        afterRead = { rss: m.rss, arrayBuffers: m.arrayBuffers };
      }
      marks.push({ stage, at: performance.now(), maxRss: process.resourceUsage().maxRSS * 1024 });
      process.stderr.write(`  [${n}] ${((performance.now() - started) / 1000).toFixed(0)} s: ${stage}\n`);
    },
  });
  const peak = process.resourceUsage().maxRSS * 1024;
  // The stages during which the high-water mark rose by 16 MiB or more; the peak is the last one's.
  const risen = marks
    .map((mark, m) => ({ stage: mark.stage, by: (marks[m + 1]?.maxRss ?? peak) - mark.maxRss }))
    .filter((r) => r.by >= 2 ** 24);
  const peakStage = risen[risen.length - 1]?.stage ?? "";
  const rises = risen.map((r) => `${r.stage} +${Math.round(r.by / 2 ** 20)} MiB`).join(", ");
  const timing = (name: string) => report.timings.find((t) => t.stage === name)?.seconds ?? 0;
  return {
    samples: report.dataset.samples,
    featureDims: report.representation.features?.dims ?? 0,
    classes: report.table.classes.length,
    pixelBytes: report.table.images?.pixelBytes ?? 0,
    peak,
    peakStage,
    peakBeforeDetectors: marks.find((m) => m.stage.startsWith("detector "))?.maxRss ?? peak,
    rises,
    rssAfterRead: afterRead?.rss ?? 0,
    arrayBuffersAfterRead: afterRead?.arrayBuffers ?? 0,
    read: timing("read"),
    representation: timing("representation"),
    detectors: report.results.reduce((a, r) => a + r.seconds, 0),
    seconds: report.seconds,
    stages: [
      ...report.timings
        .filter((t) => !t.stage.startsWith("detector "))
        .map((t) => `${t.stage} ${t.seconds.toFixed(1)} s`),
      ...report.results.map((r) => `${r.detector} ${r.seconds.toFixed(1)} s`),
      `model ${report.representation.model?.imagesPerSecond ?? 0} images/s`,
    ].join(", "),
  };
}

console.log(
  `bench:detect — Fashion-MNIST ${FM_COUNT} images, SpamAssassin 6,046 emails; load ${loadavg()[0]!.toFixed(1)}`,
);
console.log(
  "| variant | representation | samples | poisoned | flagged | precision | recall | FPR | ranked first | target | scan | stages ≥ 0.5 s (s) |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const v of VARIANTS) {
  if (only && !only.includes(v.name)) continue;
  const { samples, info, poisoned } = await build(v);
  const runs: { representation: string; options: ScanOptions }[] = [];
  if (!args["model-only"] || v.data !== "fashion-mnist") runs.push({ representation: "proxy", options: {} });
  if (args.model !== undefined && v.data === "fashion-mnist") {
    mkdirSync(args.model, { recursive: true });
    // Imported here so the proxy-only runs need no TF.js.
    const { trainedModelFor } = await import("./detect-models.js");
    const model = await trainedModelFor(v.name, samples, info, args.model);
    runs.push({ representation: `model (${model.describe})`, options: { model: model.path } });
  }
  for (const run of runs) {
    const report = await scanDataset(memoryDataset(samples, info), { seed: 0, ...run.options });
    const row = score(v, report, poisoned, run.representation);
    rows.push(row);
    print(row);
    compare(v, report, poisoned, run.representation);
  }
}
if (baselineRows.length > 0) {
  const columns = ["antidote scan", ...baselineNames];
  console.log(
    "\nOther tools' defences at their defaults on the same features and probabilities " +
      "(precision / recall and share flagged; FPR on clean sets; — where a defence needs features the scan did not have):",
  );
  console.log(`| variant | representation | ${columns.join(" | ")} |`);
  console.log(`|---|---|${columns.map(() => "---").join("|")}|`);
  for (const r of baselineRows)
    console.log(
      `| ${r.variant} | ${r.representation} | ${columns.map((c) => r.cells[c] ?? "—").join(" | ")} |`,
    );
}
const missed = rows.filter((r) => !r.met);
console.log(
  missed.length === 0
    ? "every target met"
    : `targets missed: ${missed.map((r) => `${r.variant} (${r.representation})`).join(", ")}`,
);
if (args.json !== undefined) {
  const { writeFileSync } = await import("node:fs");
  writeFileSync(args.json, JSON.stringify({ rows, baselines: baselineRows }, null, 2));
}
