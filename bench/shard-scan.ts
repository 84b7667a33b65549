// The sharded scan against the single-process one (issue 23's target: a 60k-image scan split over
// 2 workers within 1.2× of the single-process scan's time, with the same flagged set):
//   npm run bench:shard                    all 60,000 Fashion-MNIST training images, 1% BadNets patch
//   npm run bench:shard -- --shards 3      split into 3 instead of 2
//   npm run bench:shard -- --perturb 20    (b) with every merged output value times 1 + u·2^-20,
//                                          u uniform in [-1, 1]: how far the decisions move if
//                                          workers' outputs differed in their last bits (other CPUs)
// The data is bench:detect's fm-patch-1 variant (a 3×3 patch on 1% of the images, relabelled Bag),
// written once as IDX under .cache/shard-bench; the model is bench:detect's CNN trained on it
// (.cache/detect-models/fm-patch-1-60000-cnn.onnx, trained here when missing). Every run is its own
// OS process, started and timed from here, so each peak RSS is its own and the shards use every
// core: (a) `scanDataset` with the model; (b) the K shards (`scanShard`, written with `encodeShard`)
// in parallel, then one process that decodes, merges and scans with the merged outputs. Wall
// times include process start-up (about a second each). Prints a table, the ratio b / a, the
// flagged sets' agreement and the largest difference between the features and probabilities the
// detectors read in (a) and (b). Each shard gets cores ÷ shards ONNX Runtime threads (`--threads`):
// two processes of two spinning threads each on two cores ran at a third of the speed. Load is
// printed: other work on the machine skews both.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { simulateAttack } from "../src/attack/index.js";
import { collect, memoryDataset, MemoryWriter } from "../src/data/memory.js";
import { createWriter, openDataset } from "../src/data/open.js";
import { decodeShard, encodeShard } from "../src/scan/shard-file.js";
import { mergeShards } from "../src/scan/shard-merge.js";
import { scanShard } from "../src/scan/shard.js";
import { scanDataset, type ScanOptions, type ScanReport } from "../src/scan/scan.js";
import type { Sample } from "../src/data/sample.js";
import type { ModelOutputs } from "../src/scan/model-run.js";

const { values: args } = parseArgs({
  options: {
    shards: { type: "string", default: "2" },
    child: { type: "string" },
    index: { type: "string", default: "0" },
    out: { type: "string" },
    /** ONNX Runtime threads per shard; default the cores divided among the shards. */
    threads: { type: "string" },
    perturb: { type: "string" },
  },
});
const DIR = ".cache/shard-bench";
const DATA = join(DIR, "fm-patch-1");
const MODEL = ".cache/detect-models/fm-patch-1-60000-cnn.onnx";
const K = Number(args.shards);
const THREADS = Number(args.threads ?? Math.max(1, Math.floor(availableParallelism() / K)));
const shardFile = (k: number) => join(DIR, `shard-${k}-of-${K}.safetensors`);

/** What a child process reports on its last stdout line. */
interface ChildResult {
  seconds: number;
  peakRss: number;
  stages?: string;
  flagged?: string[];
  findings?: Record<string, number>;
  bytes?: number;
  imagesPerSecond?: number;
}

async function dataset() {
  const fm = await openDataset("fashion-mnist");
  return openDataset(DATA, { classes: fm.info.classes ?? [] });
}

async function child(kind: string): Promise<ChildResult> {
  const started = performance.now();
  const peakRss = () => process.resourceUsage().maxRSS * 1024;
  if (kind === "shard") {
    const shard = { index: Number(args.index), count: K };
    const s = await scanShard(await dataset(), { model: MODEL, shard, threads: THREADS });
    const bytes = encodeShard(s);
    writeFileSync(shardFile(shard.index), bytes);
    return {
      seconds: (performance.now() - started) / 1000,
      peakRss: peakRss(),
      bytes: bytes.length,
      imagesPerSecond: s.outputs.summary.imagesPerSecond,
    };
  }
  let options: ScanOptions = { model: MODEL, seed: 0 };
  let merge = "";
  if (kind === "central") {
    const t = performance.now();
    const shards = await Promise.all(
      Array.from({ length: K }, (_, k) => decodeShard(readFileSync(shardFile(k)), shardFile(k))),
    );
    const merged = mergeShards(shards);
    if (args.perturb !== undefined) perturb(merged, 2 ** -Number(args.perturb));
    options = { modelOutputs: merged, seed: 0 };
    merge = `decode + merge ${((performance.now() - t) / 1000).toFixed(1)} s, `;
  }
  const report = await scanDataset(await dataset(), options);
  writeFileSync(args.out as string, representationBytes(report));
  return {
    seconds: (performance.now() - started) / 1000,
    peakRss: peakRss(),
    stages: merge + stages(report),
    flagged: report.table.ids.filter((_, i) => report.ensemble.flagged[i] === 1),
    findings: Object.fromEntries(
      report.results.map((r) => [r.detector, r.flagged.reduce((a, b) => a + b, 0)]),
    ),
  };
}

// Every output value times 1 + u·relative, u uniform in [-1, 1] from a fixed seed.
function perturb(outputs: ModelOutputs, relative: number): void {
  let seed = 12345;
  const u = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  for (const a of [outputs.probs, outputs.ownProbs, outputs.features?.data])
    if (a !== undefined) for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) * (1 + relative * u());
}

// The features and probabilities the detectors read, back to back, for the comparison.
function representationBytes(report: ScanReport): Uint8Array {
  const parts = [report.table.features, report.table.probs].map((a) =>
    a === undefined ? new Uint8Array(0) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
  );
  return Buffer.concat(parts);
}

function stages(report: ScanReport): string {
  const t = (name: string) => report.timings.find((x) => x.stage === name)?.seconds ?? 0;
  const detectors = report.timings.filter(
    (x) => x.stage.startsWith("detector ") || x.stage === "exclusion check",
  );
  return (
    `read ${t("read").toFixed(1)} s, representation ${t("representation").toFixed(1)} s, ` +
    `detectors ${detectors.reduce((a, x) => a + x.seconds, 0).toFixed(1)} s`
  );
}

// Start this file as a child; resolves with its result and its wall time seen from here.
function run(childArgs: string[]): Promise<ChildResult & { wall: number }> {
  const started = performance.now();
  const script = fileURLToPath(import.meta.url);
  const shared = ["--shards", String(K), "--threads", String(THREADS)];
  if (args.perturb !== undefined) shared.push("--perturb", args.perturb);
  const p = spawn(process.execPath, [...process.execArgv, script, ...shared, ...childArgs], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) =>
    p.on("close", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code !== 0 || !line.startsWith("{"))
        return reject(new Error(`${childArgs.join(" ")} failed (exit ${code})`));
      resolve({ ...(JSON.parse(line) as ChildResult), wall: (performance.now() - started) / 1000 });
    }),
  );
}

async function prepare(): Promise<void> {
  mkdirSync(DIR, { recursive: true });
  if (existsSync(DATA) && existsSync(MODEL)) return;
  const fm = await openDataset("fashion-mnist");
  const clean = (await collect(fm)).slice(0, 60_000);
  const writer = new MemoryWriter();
  // bench:detect's fm-patch-1.
  await simulateAttack(memoryDataset(clean, fm.info), writer, {
    kind: "patch",
    target: "Bag",
    rate: 0.01,
    seed: 1,
  });
  if (!existsSync(MODEL)) {
    mkdirSync(".cache/detect-models", { recursive: true });
    const { trainedModelFor } = await import("./detect-models.js");
    await trainedModelFor("fm-patch-1", writer.samples, fm.info, ".cache/detect-models");
  }
  if (!existsSync(DATA)) {
    mkdirSync(DATA, { recursive: true });
    const out = await createWriter(join(DATA, "train-images-idx3-ubyte"), { classes: fm.info.classes ?? [] });
    for (const s of writer.samples) await out.write(s);
    await out.close();
  }
}

function maxAbsDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Infinity;
  const x = new Float32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.length));
  const y = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs((x[i] as number) - (y[i] as number)));
  return max;
}

/**
 * Whether ONNX Runtime's outputs here depend on how samples are batched or on its thread count —
 * what would make shards whose batches differ from the single-process run's disagree. Sharding
 * keeps batches whole, so this is the margin, not the mechanism: the first 8,192 images in batches
 * of 1,024 on 2 threads against batches of 1,000 on 1 thread.
 */
async function batchInvariance(): Promise<{ probs: number; features: number }> {
  const { ModelRun } = await import("../src/scan/model-run.js");
  const data = await dataset();
  const classes = data.info.classes ?? [];
  const images: Sample[] = [];
  for await (const s of data.samples()) if (images.push(s) >= 8192) break;
  const outputs = async (batchSize: number, threads: number) => {
    const run = await ModelRun.open(MODEL, { batchSize, threads, classes });
    for (let i = 0; i < images.length; i += batchSize) await run.run(images.slice(i, i + batchSize));
    return run.finish(classes);
  };
  const a = await outputs(1024, 2);
  const b = await outputs(1000, 1);
  const diff = (x?: Float32Array, y?: Float32Array) =>
    x === undefined || y === undefined ? NaN : maxAbsDifference(bytesOf(x), bytesOf(y));
  return { probs: diff(a.probs, b.probs), features: diff(a.features?.data, b.features?.data) };
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function main(): Promise<void> {
  if (args.child !== undefined) {
    console.log(JSON.stringify(await child(args.child)));
    return;
  }
  await prepare();
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(1))
      .join(" ");
  console.log(
    `bench:shard — 60,000 Fashion-MNIST images, 1% BadNets patch, ${MODEL}; load before: ${load()}` +
      (args.perturb === undefined ? "" : `; (b)'s merged outputs perturbed by relative 2^-${args.perturb}`),
  );
  const single = await run(["--child", "single", "--out", join(DIR, "single.bin")]);
  const t = performance.now();
  const shards = await Promise.all(
    Array.from({ length: K }, (_, k) => run(["--child", "shard", "--index", String(k)])),
  );
  const central = await run(["--child", "central", "--out", join(DIR, "central.bin")]);
  const sharded = (performance.now() - t) / 1000;

  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  console.log("\n| run | wall | inside the process | peak RSS |\n|---|---|---|---|");
  console.log(
    `| (a) single-process scan | ${single.wall.toFixed(1)} s | ${single.stages} | ${gib(single.peakRss)} |`,
  );
  shards.forEach((s, k) =>
    console.log(
      `| (b) shard ${k} of ${K} (in parallel) | ${s.wall.toFixed(1)} s | read + inference (${THREADS} ` +
        `ONNX Runtime ${THREADS === 1 ? "thread" : "threads"}, ${s.imagesPerSecond} images/s), ` +
        `${(s.bytes! / 2 ** 20).toFixed(1)} MiB of outputs | ${gib(s.peakRss)} |`,
    ),
  );
  console.log(
    `| (b) merge + central scan | ${central.wall.toFixed(1)} s | ${central.stages} | ${gib(central.peakRss)} |`,
  );
  console.log(`| (b) sharded, end to end | ${sharded.toFixed(1)} s | | |`);
  const ratio = sharded / single.wall;
  const A = new Set(single.flagged);
  const B = new Set(central.flagged);
  const both = [...A].filter((id) => B.has(id)).length;
  console.log(
    `\nb / a = ${ratio.toFixed(2)} (target ≤ 1.2: ${ratio <= 1.2 ? "met" : "missed"}); load after: ${load()}`,
  );
  console.log(
    `flagged: |A| ${A.size}, |B| ${B.size}, |A∩B| ${both}, |A\\B| ${A.size - both}, |B\\A| ${B.size - both}`,
  );
  const detectors = Object.keys(single.findings ?? {});
  console.log(
    `flagged per detector (a / b): ${detectors.map((d) => `${d} ${single.findings?.[d]} / ${central.findings?.[d]}`).join(", ")}`,
  );
  const diff = maxAbsDifference(
    readFileSync(join(DIR, "single.bin")),
    readFileSync(join(DIR, "central.bin")),
  );
  console.log(`largest |a − b| over the features and probabilities the detectors read: ${diff}`);
  const invariance = await batchInvariance();
  console.log(
    `ONNX Runtime on this CPU, 8,192 images in batches of 1,024 on 2 threads against 1,000 on 1: ` +
      `largest difference ${invariance.probs} in the probabilities, ${invariance.features} in the features`,
  );
}

await main();
