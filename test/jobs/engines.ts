// The two engines every contract test runs on, like the ledger's BACKENDS: each opens a
// JobQueue over a ledger — in-process, or a BullMQ producer with a worker in this process on a
// Redis the suite starts — with test-fast timings (short leases, frequent sweeps).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBullmqQueue } from "../../src/jobs/bullmq/queue.js";
import { startWorker, type JobWorker } from "../../src/jobs/bullmq/worker.js";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import type { JobQueue, JobRecord, JobRunner } from "../../src/jobs/types.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Ledger, LedgerEvent } from "../../src/ledger/types.js";
import { REDIS_MISSING, startRedis, type RedisServer } from "../helpers/redis.js";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset } from "../../src/data/memory.js";
import { createWriter } from "../../src/data/open.js";
import { ingestDelivery } from "../../src/provenance/ingest.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

/** BullMQ settings that make a dead worker's job come back within a few seconds. */
export const FAST_LOCK = { lockDurationMs: 2000, stalledIntervalMs: 500 } as const;

export interface Engine {
  name: "in-process" | "bullmq";
  setup(): Promise<void>;
  teardown(): Promise<void>;
  open(ledger: Ledger, location: string, runners: readonly JobRunner[]): Promise<JobQueue>;
}

export const inProcess: Engine = {
  name: "in-process",
  setup: () => Promise.resolve(),
  teardown: () => Promise.resolve(),
  open: (ledger, location, runners) => createInProcessQueue({ ledger, runners, leaseMs: 2000, pollMs: 200 }),
};

export function bullmq(): Engine & { redis(): RedisServer } {
  let server: RedisServer | undefined;
  let failure: Error | undefined;
  return {
    name: "bullmq",
    redis() {
      if (server === undefined) throw failure ?? new Error(REDIS_MISSING);
      return server;
    },
    async setup() {
      try {
        server = await startRedis();
      } catch (e) {
        // Every test that needs Redis fails with the reason, rather than being skipped.
        failure = e instanceof Error ? e : new Error(String(e));
      }
    },
    async teardown() {
      await server?.stop();
    },
    async open(ledger, location, runners) {
      if (server === undefined) throw failure ?? new Error(REDIS_MISSING);
      const queueName = `test-${randomBytes(4).toString("hex")}`;
      const common = { ledger, location, redisUrl: server.url, queueName, runners };
      const producer = await createBullmqQueue({ ...common, reconcileMs: 300 });
      const worker: JobWorker = await startWorker({ ...common, ...FAST_LOCK });
      return {
        ...producer,
        engine: producer.engine,
        async close() {
          await worker.close();
          await producer.close();
        },
      };
    },
  };
}

export const ENGINES: Engine[] = [inProcess, bullmq()];

export interface TestLedger {
  dir: string;
  location: string;
  keyPath: string;
  ledger: Ledger;
  close(): Promise<void>;
}

export async function freshLedger(prefix = "antidote-jobs-"): Promise<TestLedger> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const location = join(dir, "ledger.db");
  const keyPath = join(dir, "ledger-key.pem");
  const ledger = await openLedger({ location, keyPath, actor: "test" });
  return {
    dir,
    location,
    keyPath,
    ledger,
    async close() {
      await ledger.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Poll `check` until it returns a value (not undefined), or fail after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Wait until the job reaches `state` (any terminal state ends the wait with a mismatch). */
export function waitForState(queue: JobQueue, jobId: string, state: JobRecord["state"], timeoutMs?: number) {
  return waitFor(
    `${jobId} to be ${state}`,
    async () => {
      const record = await queue.get(jobId);
      return record?.state === state ? record : undefined;
    },
    timeoutMs,
  );
}

/** The ledger's events about one job (its own, and the findings its runner recorded). */
export async function jobEvents(ledger: Ledger, jobId: string): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  for await (const e of ledger.events()) {
    const payload = e.payload as { jobId?: string; subjectId?: string };
    if (payload.jobId === jobId || payload.subjectId === jobId) out.push(e);
  }
  return out;
}

/**
 * A crawl's delivery of `samples` real Fashion-MNIST images, 2 % of them stamped with a 3×3
 * BadNets patch and relabelled Bag by the project's simulator, ingested into `t`: the version
 * and the ids of the patched images (the ground truth the scan jobs are held to).
 */
export async function patchedVersion(
  t: TestLedger,
  samples: number,
): Promise<{ version: string; victims: Set<string> }> {
  const data = join(t.dir, "delivery.parquet");
  const gt = await simulateAttack(
    memoryDataset(fashionMnistSamples(samples), { classes: FASHION_MNIST_CLASSES }),
    await createWriter(data, { classes: FASHION_MNIST_CLASSES }),
    { kind: "patch", target: "Bag", rate: 0.02, seed: 2 },
  );
  await t.ledger.append([
    {
      kind: "source.added",
      payload: { name: "crawl", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
    },
  ]);
  const { datasetVersion } = await ingestDelivery(t.ledger, { target: data, source: "crawl" });
  return { version: datasetVersion, victims: new Set(gt.poisoned.map((r) => r.id)) };
}
