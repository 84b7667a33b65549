// A sharded scan job on BullMQ, with `antidote worker` processes as an operator runs them: 3,000
// Fashion-MNIST images with a 1 % BadNets patch, scanned with the user's CNN (the uploaded
// model.onnx). Split in two, its shards run as child jobs on both workers and the job merges
// them: the flagged set and each detector's findings are the unsplit job's. A worker killed with
// SIGKILL mid-shard leaves its shard to the other worker; the job still ends done, with the same
// decisions, its outcome recorded once, and the ledger verifies. The in-process engine, which
// runs no parts ahead, computes the shards inside the job: the same decisions again.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter } from "../../src/data/open.js";
import { createBullmqQueue } from "../../src/jobs/bullmq/queue.js";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import type { JobQueue, JobRecord } from "../../src/jobs/types.js";
import { ingestDelivery } from "../../src/provenance/ingest.js";
import { poisonedFashion, userCnn } from "../helpers/fm-user-model.js";
import { FASHION_MNIST_CLASSES, hasFashionMnist } from "../helpers/real-data.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { freshLedger, jobEvents, waitFor, waitForState, type TestLedger } from "./engines.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");
const N = 3000;
/** The lock a dead worker's shard waits out before the other worker takes it. */
const LOCK_SECONDS = 5;

interface Worker {
  child: ChildProcess;
  lines: string[];
  exited: Promise<unknown>;
}

describe.runIf(hasFashionMnist())("a sharded scan job over two antidote workers", () => {
  let redis: RedisServer;
  let t: TestLedger;
  let version: string;
  let model: Uint8Array;
  let producer: JobQueue;
  let unsplit: JobRecord;
  const workers: Worker[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    t = await freshLedger("antidote-sharded-");
    const patch = { kind: "patch", target: "Bag", rate: 0.01, seed: 1 } as const;
    const data = join(t.dir, "delivery.parquet");
    const writer = await createWriter(data, { classes: [...FASHION_MNIST_CLASSES] });
    for (const s of (await poisonedFashion(N, patch)).samples) await writer.write(s);
    await writer.close();
    await t.ledger.append([
      {
        kind: "source.added",
        payload: { name: "crawl", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
      },
    ]);
    version = (await ingestDelivery(t.ledger, { target: data, source: "crawl" })).datasetVersion;
    model = new Uint8Array(readFileSync(await userCnn(N, patch, t.dir, "user")));
    producer = await createBullmqQueue({ ledger: t.ledger, redisUrl: redis.url, queueName: "shards" });
    workers.push(startWorker(), startWorker());
    for (const w of workers)
      await waitFor("a worker to start", () => w.lines.find((l) => l.includes("taking jobs")), 30_000);
  });
  afterAll(async () => {
    for (const w of workers) w.child.kill("SIGKILL");
    await producer?.close();
    await t?.close();
    await redis?.stop();
  });

  function startWorker(): Worker {
    const child = spawn(
      process.execPath,
      [
        BIN,
        "worker",
        ...["--ledger", t.location, "--ledger-key", t.keyPath, "--queue", "shards"],
        ...["--lock-duration", String(LOCK_SECONDS), "--threads", "1"],
      ],
      { env: { ...process.env, ANTIDOTE_REDIS: redis.url }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on("line", (l) => lines.push(l));
    createInterface({ input: child.stderr }).on("line", (l) => lines.push(l));
    return { child, lines, exited: new Promise((resolve) => child.once("exit", resolve)) };
  }

  const scan = (queue: JobQueue, shards?: number) =>
    queue.submit("scan", { version, seed: 0, ...(shards !== undefined ? { shards } : {}) }, "ana", [
      { name: "model.onnx", bytes: model },
    ]);
  /** What the decisions are: the flagged ids, and each detector's flag count. */
  async function decisions(queue: JobQueue, job: JobRecord) {
    const report = JSON.parse(
      new TextDecoder().decode((await queue.artifact(job.jobId, "report.json"))?.bytes),
    ) as { flagged: { id: string }[] };
    const result = job.result as { flagged: number; detectors: Record<string, number> };
    return {
      flagged: result.flagged,
      detectors: result.detectors,
      ids: report.flagged.map((f) => f.id).sort(),
    };
  }

  it("runs its shards on both workers and decides as the unsplit scan does", async () => {
    unsplit = await waitForState(producer, (await scan(producer)).jobId, "done", 120_000);
    const split = await scan(producer, 2);
    const done = await waitForState(producer, split.jobId, "done", 120_000);
    for (const [k, w] of workers.entries())
      expect(
        w.lines.filter((l) => new RegExp(`${split.jobId} part shard-\\d-of-2 done`).test(l)),
        `worker ${k} ran a shard`,
      ).toHaveLength(1);
    const expected = await decisions(producer, unsplit);
    expect(expected.flagged).toBeGreaterThan(0);
    expect(await decisions(producer, done)).toEqual(expected);
    // The shards were working state: not among the job's files once it is done.
    expect(done.artifacts).toEqual(["previews.json", "report.html", "report.json"]);
  });

  it("finishes a shard whose worker was killed mid-shard on the other worker, recorded once", async () => {
    const job = await scan(producer, 2);
    const started = new RegExp(`${job.jobId} part shard-\\d-of-2 started`);
    const [victim, survivor] = await waitFor(
      "a shard to start",
      () => {
        const k = workers.findIndex((w) => w.lines.some((l) => started.test(l)));
        return k < 0 ? undefined : [workers[k] as Worker, workers[1 - k] as Worker];
      },
      60_000,
    );
    victim.child.kill("SIGKILL");
    await victim.exited;
    const done = await waitForState(producer, job.jobId, "done", 120_000);
    expect(await decisions(producer, done)).toEqual(await decisions(producer, unsplit));
    // The survivor ran both shards: its own, and the dead worker's once its lock lapsed.
    expect(
      survivor.lines.filter((l) => new RegExp(`${job.jobId} part shard-\\d-of-2 done`).test(l)),
    ).toHaveLength(2);
    const events = await jobEvents(t.ledger, job.jobId);
    expect(events.filter((e) => e.kind === "job.finished")).toHaveLength(1);
    expect((await t.ledger.verify()).ok).toBe(true);
  });

  it("computes the shards inside the job on the in-process engine, with the same decisions", async () => {
    // The BullMQ producer closed first: it would put the in-process engine's queued job on Redis.
    await producer.close();
    for (const w of workers) w.child.kill("SIGKILL");
    const queue = await createInProcessQueue({ ledger: t.ledger, pollMs: 200 });
    try {
      const done = await waitForState(queue, (await scan(queue, 2)).jobId, "done", 120_000);
      expect(await decisions(queue, done)).toEqual(await decisions(queue, unsplit));
    } finally {
      await queue.close();
    }
  });
});
