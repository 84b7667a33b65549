// `antidote worker` as an operator runs it (the built CLI, a process of its own): it takes an
// export job a server queued on a password-protected Redis, prints a line as the job starts and
// ends — never the password — and on SIGTERM stops and exits 0.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter } from "../../src/data/open.js";
import { createBullmqQueue } from "../../src/jobs/bullmq/queue.js";
import { ingestDelivery } from "../../src/provenance/ingest.js";
import { antidote, expectUserError } from "../helpers/cli.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { freshLedger, waitFor, waitForState, type TestLedger } from "./engines.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");
const PASSWORD = "s3cret-redis-pw";

describe("antidote worker", () => {
  it("says how to use it, and refuses to start without Redis", async () => {
    const help = await antidote(["worker", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--redis <url>/);
    expect(help.stdout).toMatch(/Examples:\n\s+antidote worker --redis/);
    expectUserError(await antidote(["worker"], { env: { ANTIDOTE_REDIS: "" } }), 2, /--redis/);
    expectUserError(await antidote(["worker", "--redis", "http://:pw@host"], {}), 2, /redis:\/\//);
  });
});

describe.runIf(hasFashionMnist())("antidote worker running a job", () => {
  let redis: RedisServer;
  let t: TestLedger;
  let version: string;

  beforeAll(async () => {
    redis = await startRedis({ password: PASSWORD });
    t = await freshLedger();
    const data = join(t.dir, "delivery.parquet");
    const writer = await createWriter(data, { classes: FASHION_MNIST_CLASSES });
    for (const s of fashionMnistSamples(200)) await writer.write(s);
    await writer.close();
    await t.ledger.append([
      {
        kind: "source.added",
        payload: { name: "crawl", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
      },
    ]);
    version = (await ingestDelivery(t.ledger, { target: data, source: "crawl" })).datasetVersion;
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  it("runs an export job, prints its lines without the password, and stops on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [
        BIN,
        "worker",
        "--ledger",
        t.location,
        "--ledger-key",
        t.keyPath,
        "--queue",
        "cli",
        "--concurrency",
        "1",
      ],
      { env: { ...process.env, ANTIDOTE_REDIS: redis.url }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const output: string[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => output.push(line));
    createInterface({ input: child.stderr }).on("line", (line) => output.push(line));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const ready = await waitFor(
        "the worker to start",
        () => output.find((l) => l.includes("taking jobs")),
        30_000,
      );
      expect(ready).toContain('queue "cli" on redis://:***@127.0.0.1:');

      const producer = await createBullmqQueue({
        ledger: t.ledger,
        redisUrl: redis.url,
        queueName: "cli",
      });
      try {
        const job = await producer.submit("export", { version, format: "jsonl" }, "ci");
        const done = await waitForState(producer, job.jobId, "done", 60_000);
        expect(done.result).toMatchObject({ parent: version, written: 200, file: "clean.jsonl" });
        await waitFor("the finish line", () => output.some((l) => l.includes(`${job.jobId} export done`)));
        expect(output.some((l) => l.includes(`${job.jobId} export started (attempt 1)`))).toBe(true);
      } finally {
        await producer.close();
      }
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(output.at(-1)).toMatch(/worker: stopped$/);
      expect(output.join("\n")).not.toContain(PASSWORD);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
