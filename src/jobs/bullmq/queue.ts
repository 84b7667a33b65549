// The BullMQ engine's producer side, used by `antidote serve --redis`: jobs are accepted and
// kept exactly as in-process (a row in the ledger database, `job.submitted` in the log), and
// each is put on a BullMQ queue for `antidote worker`s to run (worker.ts).
//
// Redis is a delivery channel, not the record: a Redis restarted without persistence loses its
// queue, and a Redis that is down refuses the add. So the producer sweeps the rows every few
// seconds and puts back on the queue every queued job Redis does not have (an add with the
// job's id is a no-op when it does), and ends the rows of jobs BullMQ gave up on (stalled too
// often: their worker kept dying) with the reason.
//
// A job whose runner splits into parts (a sharded scan) goes on the queue as a BullMQ flow: the
// parts as child jobs any free worker takes, the job itself as their parent, which BullMQ
// releases once every child has ended — completed or, after its retries, failed (the job then
// computes what is missing itself). The parent waits without holding a worker. A flow lost with
// Redis comes back from the sweep as a plain job, which computes its missing parts itself.
import { FlowProducer, Queue, type JobsOptions } from "bullmq";
import type { Ledger } from "../../ledger/types.js";
import { jobCore, runnerMap } from "../core.js";
import { MAX_ATTEMPTS, recordEnd, recordUnrecorded } from "../record.js";
import { JobStore, type JobRow } from "../store.js";
import type { JobQueue, JobRunner } from "../types.js";
import { JOB_RUNNERS } from "../runners/index.js";
import { DEFAULT_QUEUE_NAME, redisConnection } from "./connection.js";

export interface BullmqQueueOptions {
  ledger: Ledger;
  /** redis:// or rediss:// URL (it may carry a password; it is never shown). */
  redisUrl: string;
  queueName?: string;
  runners?: readonly JobRunner[];
  /** How often rows are compared with Redis (default 5 s). */
  reconcileMs?: number;
}

/** What a job's entry on Redis carries: only its id (and a part's name); the row holds the rest. */
export interface QueuedJobData {
  jobId: string;
  /** Set on a part's entry (JobRunner.parts): the worker computes that part of the job. */
  part?: string;
}

/** The BullMQ job name of a part's entry (a job's own entries are named after its kind). */
export const PART_JOB_NAME = "part";

/** Give up on one add after this long (Redis down): the next sweep adds it again. */
const ENQUEUE_TIMEOUT_MS = 3000;

/** BullMQ's own reason for a job whose worker kept dying (its stalled-job limit). */
const STALLED = /stalled more than allowable limit/;

export function jobOptions(jobId: string): JobsOptions {
  return {
    jobId,
    // Retries of a job whose outcome could not be recorded (the ledger unreachable); a worker
    // that dies is handled by BullMQ's stalled-job detection instead.
    attempts: MAX_ATTEMPTS,
    backoff: { type: "exponential", delay: 1000 },
    removeOnComplete: { count: 1000 },
    // Kept, so that the sweep can tell a job BullMQ gave up on from one Redis lost.
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

/** A part's entry: retried like a job; its failure releases the parent instead of failing it. */
export function partOptions(jobId: string, part: string): JobsOptions {
  return { ...jobOptions(`${jobId}.${part}`), ignoreDependencyOnFailure: true };
}

// async although nothing inside waits: a bad Redis URL then rejects, as every engine factory does.
// eslint-disable-next-line @typescript-eslint/require-await
export async function createBullmqQueue(options: BullmqQueueOptions): Promise<JobQueue> {
  const { ledger } = options;
  const runners = runnerMap(options.runners ?? JOB_RUNNERS);
  // A bad URL is refused before anything is opened.
  const connection = redisConnection(options.redisUrl, "producer");
  const store = new JobStore(options.ledger);
  const queueName = options.queueName ?? DEFAULT_QUEUE_NAME;
  const queue = new Queue<QueuedJobData>(queueName, { connection });
  const flows = new FlowProducer({ connection });
  // Connection errors are retried by the client; an unhandled 'error' would end the process.
  queue.on("error", () => undefined);
  flows.on("error", () => undefined);

  /** The parts a job splits into; none when its parameters no longer parse (its run fails them). */
  const partsOf = (kind: string, parameters: unknown): readonly string[] => {
    const runner = runners.get(kind);
    if (runner?.parts === undefined) return [];
    const parsed = runner.parameters.safeParse(parameters);
    return parsed.success ? runner.parts(parsed.data) : [];
  };
  /** On the queue as a plain job, or with `parts` as a flow. */
  const enqueue = async (job: { jobId: string; kind: string }, parts: readonly string[]): Promise<void> => {
    const data = { jobId: job.jobId };
    await withTimeout<unknown>(
      parts.length === 0
        ? queue.add(job.kind, data, jobOptions(job.jobId))
        : flows.add({
            name: job.kind,
            queueName,
            data,
            opts: jobOptions(job.jobId),
            children: parts.map((part) => ({
              name: PART_JOB_NAME,
              queueName,
              data: { jobId: job.jobId, part },
              opts: partOptions(job.jobId, part),
            })),
          }),
      ENQUEUE_TIMEOUT_MS,
    );
  };
  const core = jobCore(store, ledger, runners, {
    // A failed add is not the caller's failure: the job is queued in its row, and the sweep adds it.
    queued: (record) => enqueue(record, partsOf(record.kind, record.parameters)).catch(() => undefined),
    cancelledQueued: async (jobId) => {
      await withTimeout(queue.remove(jobId), ENQUEUE_TIMEOUT_MS).catch(() => undefined);
    },
  });

  let closed = false;
  let sweeping: Promise<void> = Promise.resolve();
  const sweep = async (): Promise<void> => {
    try {
      await recordUnrecorded(store, ledger);
      const now = new Date().toISOString();
      const lapsed = (await store.inState("running")).filter(
        (r) => r.lease_until === null || r.lease_until < now,
      );
      for (const row of [...(await store.inState("queued")), ...lapsed]) {
        if (closed) return;
        await reconcile(row);
      }
    } catch {
      // Redis or the database is unreachable: the next sweep tries again.
    }
  };
  const reconcile = async (row: JobRow): Promise<void> => {
    const job = await withTimeout(queue.getJob(row.job_id), ENQUEUE_TIMEOUT_MS);
    // Back as a plain job: a flow's parts may have run already, and the job computes the rest.
    if (job === undefined || job === null) return enqueue({ jobId: row.job_id, kind: row.kind }, []);
    if ((await job.getState()) !== "failed") return;
    const error = STALLED.test(job.failedReason ?? "")
      ? `interrupted ${Number(row.attempts)} times`
      : `gave up after ${MAX_ATTEMPTS} attempts: ${(job.failedReason ?? "unknown").slice(0, 300)}`;
    if (await store.finish(row.job_id, { state: "failed", error }))
      await recordEnd(ledger, { jobId: row.job_id, actor: row.principal }, "failed", error);
  };
  const timer = setInterval(() => {
    sweeping = sweeping.then(sweep);
  }, options.reconcileMs ?? 5000);
  sweeping = sweep();

  return {
    engine: "bullmq",
    ...core,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await sweeping;
      await queue.close().catch(() => undefined);
      await flows.close().catch(() => undefined);
      await store.close();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
