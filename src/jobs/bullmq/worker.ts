// The BullMQ engine's worker side, behind `antidote worker`: take jobs from the queue and run
// each exactly as the in-process engine does (execute.ts), against the same ledger database.
//
// Who holds a job is BullMQ's lock, renewed while the job runs. A worker killed mid-job stops
// renewing it; after `lockDurationMs` another worker's stalled-job check puts the job back on
// the queue, and the worker that takes it claims the row from `running` and reruns the job
// from scratch — its outcome is recorded once (onceForJob) whichever run finishes. A job can
// stall twice; the third time BullMQ fails it, and the producer's sweep ends its row.
//
// A worker asked to stop (SIGTERM) stops its jobs at their next progress report, records
// nothing for them and hands them straight back to the queue.
//
// A part's entry (a shard of a sharded scan: queue.ts) runs `executePart`: the part's output is
// kept with the job; nothing is recorded. A worker killed mid-part is handled as mid-job: the
// part goes back on the queue for another worker, and the job waits for it.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { WaitingError, Worker, type Job } from "bullmq";
import type { Ledger } from "../../ledger/types.js";
import { runnerMap } from "../core.js";
import { executeJob, executePart, type Execution } from "../execute.js";
import { MAX_ATTEMPTS, errorMessage } from "../record.js";
import { JOB_RUNNERS } from "../runners/index.js";
import { JobStore } from "../store.js";
import { TERMINAL_STATES, type JobRunner, type JobState } from "../types.js";
import { DEFAULT_QUEUE_NAME, redisConnection } from "./connection.js";
import { PART_JOB_NAME, type QueuedJobData } from "./queue.js";

export interface WorkerOptions {
  ledger: Ledger;
  redisUrl: string;
  queueName?: string;
  /** Jobs run at once by this worker (default 1). */
  concurrency?: number;
  /** How long a job's lock holds without renewal: how soon a dead worker's job is retried (default 30 s). */
  lockDurationMs?: number;
  /** How often this worker looks for other workers' stalled jobs (default: lockDurationMs). */
  stalledIntervalMs?: number;
  runners?: readonly JobRunner[];
  /** CPU threads each job may give a compute library (ONNX Runtime); default: the library's. */
  threads?: number;
  /** Told when a job starts and when it ends here (`antidote worker` prints a line for each). */
  onEvent?: (event: WorkerEvent) => void;
}

export type WorkerEvent =
  | { phase: "started"; jobId: string; kind: string; attempt: number }
  | {
      phase: "finished";
      jobId: string;
      kind: string;
      attempt: number;
      state: Execution;
      error: string | null;
    }
  | {
      phase: "part";
      jobId: string;
      part: string;
      attempt: number;
      /** done: computed and kept; skipped: kept already, or the job has ended; failed: the job computes it. */
      state: "started" | "done" | "skipped" | "failed" | "interrupted";
      error: string | null;
    };

export interface JobWorker {
  /** Stop taking jobs; running ones stop and go back to the queue. */
  close(): Promise<void>;
}

// async although nothing inside waits: a bad Redis URL then rejects, as every engine factory does.
// eslint-disable-next-line @typescript-eslint/require-await
export async function startWorker(options: WorkerOptions): Promise<JobWorker> {
  // A bad URL is refused before anything is opened.
  const connection = redisConnection(options.redisUrl, "worker");
  const store = new JobStore(options.ledger);
  const ctx = {
    store,
    ledger: options.ledger,
    runners: runnerMap(options.runners ?? JOB_RUNNERS),
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
  };
  const lockDuration = options.lockDurationMs ?? 30_000;
  const instance = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const shutdown = new AbortController();
  let claims = 0;

  const processJob = async (
    job: Job<QueuedJobData>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<string> => {
    const { jobId } = job.data;
    const stop = signal === undefined ? shutdown.signal : AbortSignal.any([shutdown.signal, signal]);
    if (job.name === PART_JOB_NAME && job.data.part !== undefined)
      return processPart(jobId, job.data.part, job.attemptsMade + 1, stop, job, token);
    const row = await store.row(jobId);
    // Ended already (cancelled while queued, or finished by a run whose completion Redis lost).
    if (row === undefined || TERMINAL_STATES.includes(row.state as JobState)) return "skipped";
    const owner = `${instance}#${++claims}`;
    // From `running` too: BullMQ's lock says the previous holder is gone.
    const claimed = await store.claim(jobId, owner, lockDuration, ["queued", "running"]);
    if (claimed === undefined) return "skipped";
    const attempt = Number(claimed.attempts);
    options.onEvent?.({ phase: "started", jobId, kind: claimed.kind, attempt });
    let execution: Execution;
    try {
      // Throws when the outcome cannot be recorded: BullMQ retries the job (attempts, backoff).
      execution = await executeJob(ctx, claimed, { owner, leaseMs: lockDuration, signal: stop });
    } catch (e) {
      options.onEvent?.({
        phase: "finished",
        jobId,
        kind: claimed.kind,
        attempt,
        state: "interrupted",
        error: errorMessage(e),
      });
      throw e;
    }
    const final = execution === "interrupted" ? null : await store.row(jobId);
    options.onEvent?.({
      phase: "finished",
      jobId,
      kind: claimed.kind,
      attempt,
      state: execution,
      error: final?.error ?? null,
    });
    if (execution !== "interrupted") return execution;
    await store.requeue(jobId, owner);
    if (shutdown.signal.aborted && token !== undefined) {
      // Straight back to the queue for another worker, not after the lock lapses.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    throw new Error("the job was stopped before it finished (its lock was lost)");
  };

  const processPart = async (
    jobId: string,
    part: string,
    attempt: number,
    stop: AbortSignal,
    job: Job<QueuedJobData>,
    token?: string,
  ): Promise<string> => {
    const event = { phase: "part" as const, jobId, part, attempt };
    options.onEvent?.({ ...event, state: "started", error: null });
    let state: "done" | "skipped";
    try {
      state = await executePart(ctx, jobId, part, stop);
    } catch (e) {
      const interrupted = stop.aborted;
      options.onEvent?.({ ...event, state: interrupted ? "interrupted" : "failed", error: errorMessage(e) });
      if (interrupted && shutdown.signal.aborted && token !== undefined) {
        await job.moveToWait(token);
        throw new WaitingError();
      }
      throw e;
    }
    options.onEvent?.({ ...event, state, error: null });
    return state;
  };

  const worker = new Worker<QueuedJobData, string>(options.queueName ?? DEFAULT_QUEUE_NAME, processJob, {
    connection,
    name: instance,
    concurrency: options.concurrency ?? 1,
    lockDuration,
    stalledInterval: options.stalledIntervalMs ?? lockDuration,
    // Started at most MAX_ATTEMPTS times by workers that died, like in-process recovery.
    maxStalledCount: MAX_ATTEMPTS - 1,
  });
  // Connection errors are retried by the client (Redis restarted); an unhandled 'error' would end the process.
  worker.on("error", () => undefined);

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        shutdown.abort();
        await worker.close();
        await store.close();
      })();
      return closing;
    },
  };
}
