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

const { values: args } = parseArgs({
  options: {
    fm: { type: "string", default: "12000" },
    only: { type: "string" },
    model: { type: "string" },
    json: { type: "string" },
    speed: { type: "string" },
    /** Skip the built-in proxy runs (with --model: only the model rows). */
    "model-only": { type: "boolean", default: false },
  },
});
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
