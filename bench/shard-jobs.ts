// The sharded scan as a job (issue 23's target, measured through the job system as a team runs
// it): a 60k-image scan split over 2 `antidote worker`s on this machine, against the same scan as
// one job on one worker, both from submit to done:
//   npm run bench:shard-jobs                 (after `npm run bench:shard` made the data and model)
//   npm run bench:shard-jobs -- --shards 3
// The data and model are bench:shard's: all 60,000 Fashion-MNIST training images with bench:detect's
// 1 % BadNets patch (.cache/shard-bench/fm-patch-1) and the CNN trained on them, uploaded as the
// job's model.onnx. They are ingested into a fresh SQLite ledger; Redis is Debian's redis-server on a
// free loopback port; the 2 workers are `antidote worker` processes (built CLI) with one ONNX Runtime
// thread each (`--threads 1`: two workers of two spinning threads on two cores ran at a third of the
// speed). The unsplit job runs on one of them with ONNX Runtime's default threads (2). Both jobs'
// wall times include what a job does beyond the scan: copying the version out of the sample store
// (each shard and the merging job do it) and storing report.json/html. Prints both times, the
// ratio, and whether the flagged sets are the same.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { openDataset } from "../src/data/open.js";
import { createBullmqQueue } from "../src/jobs/bullmq/queue.js";
import type { JobQueue, JobRecord } from "../src/jobs/types.js";
import { openLedger } from "../src/ledger/index.js";
import { ingestDelivery } from "../src/provenance/ingest.js";
import { startRedis } from "../test/helpers/redis.js";

const { values: args } = parseArgs({
  options: {
    shards: { type: "string", default: "2" },
    workers: { type: "string", default: "2" },
  },
});
const K = Number(args.shards);
const WORKERS = Number(args.workers);
const DATA = ".cache/shard-bench/fm-patch-1";
const MODEL = ".cache/detect-models/fm-patch-1-60000-cnn.onnx";
const BIN = join(process.cwd(), "dist", "cli", "bin.js");

if (!existsSync(DATA) || !existsSync(MODEL)) {
  process.stderr.write(
    `${DATA} or ${MODEL} is missing: run \`npm run bench:shard\` first, which makes both.\n`,
  );
  process.exit(2);
}
if (!existsSync(BIN)) {
  process.stderr.write("dist/ is missing: run `npm run build` first.\n");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "antidote-bench-shard-jobs-"));
const redis = await startRedis();
const workers: ChildProcess[] = [];
try {
  const location = join(work, "ledger.db");
  const keyPath = join(work, "ledger-key.pem");
  const ledger = await openLedger({ location, keyPath, actor: "bench" });
  await ledger.append([
    {
      kind: "source.added",
      payload: { name: "crawl", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
    },
  ]);
  const classes = (await openDataset("fashion-mnist")).info.classes ?? [];
  let t = performance.now();
  const { datasetVersion: version, sampleCount } = await ingestDelivery(ledger, {
    target: DATA,
    source: "crawl",
    readOptions: { classes },
  });
  process.stdout.write(`ingested ${sampleCount} images as ${version} in ${secs(t)}\n`);

  for (let k = 0; k < WORKERS; k++) workers.push(await startWorker(location, keyPath, redis.url));
  const producer = await createBullmqQueue({ ledger, redisUrl: redis.url, queueName: "bench" });
  const model = new Uint8Array(readFileSync(MODEL));
  const scan = async (shards?: number): Promise<{ job: JobRecord; seconds: number }> => {
    const started = performance.now();
    const submitted = await producer.submit(
      "scan",
      { version, seed: 0, ...(shards !== undefined ? { shards } : {}) },
      "bench",
      [{ name: "model.onnx", bytes: model }],
    );
    const job = await until(producer, submitted.jobId);
    return { job, seconds: (performance.now() - started) / 1000 };
  };

  process.stdout.write(
    `\n${sampleCount} images, ${WORKERS} workers on ${availableParallelism()} cores; load before: ${loadavg()[0]?.toFixed(2)}\n` +
      "| run | wall s | flagged | same flagged set |\n|---|---|---|---|\n",
  );
  t = performance.now();
  const one = await scan();
  const oneIds = await flaggedIds(producer, one.job);
  process.stdout.write(`| one job, one worker | ${one.seconds.toFixed(1)} | ${oneIds.length} | — |\n`);
  const split = await scan(K);
  const splitIds = await flaggedIds(producer, split.job);
  const same = splitIds.length === oneIds.length && splitIds.every((id, i) => id === oneIds[i]);
  process.stdout.write(
    `| split in ${K}, ${WORKERS} workers | ${split.seconds.toFixed(1)} | ${splitIds.length} | ${same ? "yes" : "NO"} |\n` +
      `\nsplit / one job: ${(split.seconds / one.seconds).toFixed(2)}× (target ≤ 1.2×)\n`,
  );
  await producer.close();
  await ledger.close();
} finally {
  for (const w of workers) w.kill("SIGKILL");
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
}

function startWorker(location: string, keyPath: string, url: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [BIN, "worker", "--ledger", location, "--ledger-key", keyPath, "--queue", "bench"]
      .concat(["--threads", String(Math.max(1, Math.floor(availableParallelism() / WORKERS)))])
      .concat(["--lock-duration", "300"]),
    { env: { ...process.env, ANTIDOTE_REDIS: url }, stdio: ["ignore", "pipe", "inherit"] },
  );
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.includes("taking jobs")) resolve(child);
      else if (process.env.BENCH_VERBOSE) process.stdout.write(`  ${line}\n`);
    });
    child.once("exit", (code) => reject(new Error(`a worker exited (${code}) before it started`)));
  });
}

async function until(queue: JobQueue, jobId: string): Promise<JobRecord> {
  for (;;) {
    const job = await queue.get(jobId);
    if (job?.state === "done") return job;
    if (job?.state === "failed" || job?.state === "cancelled")
      throw new Error(`${jobId} ${job.state}: ${job.error ?? ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function flaggedIds(queue: JobQueue, job: JobRecord): Promise<string[]> {
  const bytes = (await queue.artifact(job.jobId, "report.json"))?.bytes;
  const report = JSON.parse(new TextDecoder().decode(bytes)) as { flagged: { id: string }[] };
  return report.flagged.map((f) => f.id).sort();
}

function secs(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}
