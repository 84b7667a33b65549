// Jobs survive what kills processes. In-process: a queue closed mid-job puts the job back and
// the next queue resumes it; a server that died after recording an outcome but before updating
// the row has the job rerun with nothing recorded twice; a job whose lease lapsed too often is
// failed with the reason. BullMQ: a worker killed with SIGKILL mid-job leaves the job to another
// worker, which finishes it and records it once; Redis restarted mid-run (losing its queue)
// loses no job.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBullmqQueue } from "../../src/jobs/bullmq/queue.js";
import { startWorker } from "../../src/jobs/bullmq/worker.js";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import type { JobQueue } from "../../src/jobs/types.js";
import {
  FAST_LOCK,
  bullmq,
  freshLedger,
  jobEvents,
  waitFor,
  waitForState,
  type TestLedger,
} from "./engines.js";
import { countRunner } from "./fixtures/count-runner.js";
import type { WorkerArgs } from "./fixtures/worker.js";

const REPO = join(import.meta.dirname, "..", "..");

const inProcess = (t: TestLedger) =>
  createInProcessQueue({
    ledger: t.ledger,
    runners: [countRunner],
    leaseMs: 1000,
    pollMs: 200,
  });

async function finishedOnce(t: TestLedger, jobId: string, findings: number): Promise<void> {
  const events = await jobEvents(t.ledger, jobId);
  expect(events.filter((e) => e.kind === "job.finished")).toHaveLength(1);
  expect(events.filter((e) => e.kind === "finding.recorded")).toHaveLength(findings);
}

/** Edit the jobs table behind the queue's back, as a crash would have left it. */
function editRow(t: TestLedger, sql: string, ...params: unknown[]): void {
  const db = new BetterSqlite3(t.location, { timeout: 30_000 });
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

function readRow(t: TestLedger, jobId: string): Record<string, unknown> {
  const db = new BetterSqlite3(t.location, { readonly: true, timeout: 30_000 });
  try {
    return db.prepare("select * from jobs where job_id = ?").get(jobId) as Record<string, unknown>;
  } finally {
    db.close();
  }
}

describe("in-process engine: restarts", () => {
  let t: TestLedger;
  beforeAll(async () => {
    t = await freshLedger();
  });
  afterAll(() => t.close());

  it("resumes a job whose queue was closed mid-run, and records it once", async () => {
    const first = await inProcess(t);
    const job = await first.submit("count", { steps: 30, stepMs: 40, findings: 1 }, "alice");
    await waitFor("progress", async () => ((await first.get(job.jobId))?.progress?.done ?? 0) >= 3);
    await first.close();
    // Nothing recorded for the interrupted run; the row is back in the queue.
    expect(readRow(t, job.jobId)).toMatchObject({ state: "queued", attempts: 1, lease_owner: null });
    expect((await jobEvents(t.ledger, job.jobId)).map((e) => e.kind)).toEqual(["job.submitted"]);

    const second = await inProcess(t);
    try {
      const done = await waitForState(second, job.jobId, "done");
      expect(done).toMatchObject({ attempts: 2, result: { count: 30 } });
      await finishedOnce(t, job.jobId, 1);
    } finally {
      await second.close();
    }
  });

  it("reruns a job that died after recording its outcome, without recording it twice", async () => {
    const queue = await inProcess(t);
    const job = await queue.submit("count", { steps: 2, stepMs: 5, findings: 3 }, "alice");
    const done = await waitForState(queue, job.jobId, "done");
    await queue.close();
    // As if the server died between the ledger append and the row update: still running, its
    // lease long gone, no artifacts stored yet.
    editRow(
      t,
      "update jobs set state = 'running', result = null, lease_owner = 'dead', lease_until = '2000-01-01T00:00:00.000Z' where job_id = ?",
      job.jobId,
    );
    editRow(t, "delete from job_artifacts where job_id = ?", job.jobId);

    const restarted = await inProcess(t);
    try {
      const again = await waitForState(restarted, job.jobId, "done");
      expect(again).toMatchObject({ attempts: 2, result: done.result, artifacts: ["out.txt"] });
      await finishedOnce(t, job.jobId, 3);
    } finally {
      await restarted.close();
    }
  });

  it("fails a job interrupted three times, with the reason, recorded once", async () => {
    const queue = await inProcess(t);
    const job = await queue.submit("count", { steps: 1000, stepMs: 20 }, "alice");
    await waitForState(queue, job.jobId, "running");
    await queue.close();
    editRow(
      t,
      "update jobs set state = 'running', attempts = 3, lease_owner = 'dead', lease_until = '2000-01-01T00:00:00.000Z' where job_id = ?",
      job.jobId,
    );
    const restarted = await inProcess(t);
    try {
      const failed = await restarted.get(job.jobId);
      expect(failed).toMatchObject({ state: "failed", error: "interrupted 3 times", attempts: 3 });
      const finished = (await jobEvents(t.ledger, job.jobId)).filter((e) => e.kind === "job.finished");
      expect(finished.map((e) => [e.payload, e.actor])).toEqual([
        [{ jobId: job.jobId, state: "failed", resultDigest: null, error: "interrupted 3 times" }, "alice"],
      ]);
      expect((await t.ledger.verify()).ok).toBe(true);
    } finally {
      await restarted.close();
    }
  });
});

describe("bullmq engine: dying workers and Redis", () => {
  const engine = bullmq();
  let t: TestLedger;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    await engine.setup();
    t = await freshLedger();
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await t.close();
    await engine.teardown();
  });

  it("retries on another worker a job whose worker was killed with SIGKILL, and records it once", async () => {
    const queueName = "killed";
    const args: WorkerArgs = {
      location: t.location,
      keyPath: t.keyPath,
      redisUrl: engine.redis().url,
      queueName,
      ...FAST_LOCK,
    };
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "test/jobs/fixtures/worker.ts", JSON.stringify(args)],
      {
        cwd: REPO,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    children.push(child);
    const lines = createInterface({ input: child.stdout });
    const said: string[] = [];
    lines.on("line", (line) => said.push(line));
    await waitFor("the child worker", () => said.some((l) => l.includes('"ready"')), 30_000);

    const producer = await createBullmqQueue({
      ledger: t.ledger,
      redisUrl: engine.redis().url,
      queueName,
      runners: [countRunner],
      reconcileMs: 300,
    });
    try {
      const job = await producer.submit("count", { steps: 40, stepMs: 50, findings: 2 }, "alice");
      await waitFor(
        "the child to make progress",
        async () => ((await producer.get(job.jobId))?.progress?.done ?? 0) >= 3,
      );
      expect(said.some((l) => l.includes('"started"') && l.includes(job.jobId))).toBe(true);
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));

      const second = await startWorker({
        ledger: t.ledger,
        redisUrl: engine.redis().url,
        queueName,
        runners: [countRunner],
        ...FAST_LOCK,
      });
      try {
        const done = await waitForState(producer, job.jobId, "done", 30_000);
        expect(done).toMatchObject({ attempts: 2, result: { count: 40 } });
        await finishedOnce(t, job.jobId, 2);
      } finally {
        await second.close();
      }
    } finally {
      await producer.close();
    }
  });

  it("hands a running job back to the queue when its worker is closed, for another to finish", async () => {
    const common = {
      ledger: t.ledger,
      redisUrl: engine.redis().url,
      queueName: "closed",
      runners: [countRunner],
    };
    const producer = await createBullmqQueue({ ...common, reconcileMs: 300 });
    try {
      const first = await startWorker({ ...common, ...FAST_LOCK });
      const job = await producer.submit("count", { steps: 30, stepMs: 40, findings: 1 }, "alice");
      await waitFor("progress", async () => ((await producer.get(job.jobId))?.progress?.done ?? 0) >= 3);
      await first.close();
      expect(await producer.get(job.jobId)).toMatchObject({ state: "queued", attempts: 1 });
      expect((await jobEvents(t.ledger, job.jobId)).map((e) => e.kind)).toEqual(["job.submitted"]);
      // Back on the queue at once, not left active until its lock lapses.
      const redisQueue = new Queue("closed", { connection: { url: engine.redis().url } });
      try {
        expect(await (await redisQueue.getJob(job.jobId))?.getState()).toBe("waiting");
      } finally {
        await redisQueue.close();
      }

      const second = await startWorker({ ...common, ...FAST_LOCK });
      try {
        expect(await waitForState(producer, job.jobId, "done")).toMatchObject({ attempts: 2 });
        await finishedOnce(t, job.jobId, 1);
      } finally {
        await second.close();
      }
    } finally {
      await producer.close();
    }
  });

  it("loses no job when Redis restarts mid-run", async () => {
    const redis = engine.redis();
    const common = {
      ledger: t.ledger,
      redisUrl: redis.url,
      queueName: "restart",
      runners: [countRunner],
    };
    const producer: JobQueue = await createBullmqQueue({ ...common, reconcileMs: 300 });
    const worker = await startWorker({ ...common, ...FAST_LOCK });
    try {
      const jobs = [];
      for (let i = 0; i < 3; i++)
        jobs.push(await producer.submit("count", { steps: 15, stepMs: 50, findings: 1 }, "alice"));
      await waitForState(producer, jobs[0]!.jobId, "running");
      // Killed and started empty: the waiting jobs and the running one's lock are gone.
      await redis.restart();
      for (const job of jobs) {
        const done = await waitForState(producer, job.jobId, "done", 30_000);
        expect(done.result).toEqual({ count: 15, inputs: {} });
        await finishedOnce(t, job.jobId, 1);
      }
      expect((await t.ledger.verify()).ok).toBe(true);
    } finally {
      await worker.close();
      await producer.close();
    }
  });
});
