// The job contract: scans, audits and exports that take minutes run as jobs, handed to a
// `JobQueue` and carried out by a runner (runners/). Two engines implement the queue, like
// Kysely's drivers behind one dialect: an in-process engine persisted in the ledger database
// (`antidote serve` alone) and a BullMQ engine on Redis (`antidote serve --redis` with any
// number of `antidote worker`s). Both keep each job's working row in the ledger database's
// `jobs` table, so the server reads state, progress and results the same way whichever runs
// it, and both record a job's outcome in the log exactly once (job.finished, `onceForJob`).
import type { z } from "zod";
import type { JsonValue } from "../data/sample.js";
import type { Ledger, LedgerEventInput } from "../ledger/types.js";

export const JOB_STATES = ["queued", "running", "done", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ["done", "failed", "cancelled"];

export interface JobProgress {
  /** What the job is doing now, in a few words ("reading", "spectral-signature", "writing"). */
  stage: string;
  done: number;
  /** 0 when not known. */
  total: number;
}

export interface JobRecord {
  jobId: string;
  kind: string;
  parameters: Record<string, JsonValue>;
  state: JobState;
  /** Who asked for it: the token's principal (recorded as the actor of its ledger events). */
  principal: string;
  progress: JobProgress | null;
  /** The runner's summary (counts, the new version, verdicts); null until done. */
  result: JsonValue | null;
  /** Why it failed, for people; never a stack or file contents. */
  error: string | null;
  /** How many times a worker has started it (a crash mid-job means another attempt). */
  attempts: number;
  /** Names of the files it produced, fetched with `JobQueue.artifact`. */
  artifacts: string[];
  createdAt: string;
  updatedAt: string;
}

/** A file a job produced, kept in the ledger database so any server or worker can serve it. */
export interface JobArtifact {
  name: string;
  mediaType: string;
  /** Hex SHA-256 of `bytes`. */
  sha256: string;
  bytes: Uint8Array;
}

export interface JobListFilter {
  state?: JobState;
  kind?: string;
  limit?: number;
  offset?: number;
}

export interface JobQueue {
  readonly engine: "in-process" | "bullmq";
  /**
   * Validate the parameters against the runner's schema (a USAGE error naming the field when
   * wrong), record `job.submitted` in the ledger with the principal as actor, and queue it.
   * `inputs` are files the job reads (an uploaded model to audit): stored as artifacts named
   * `input/<name>` and written into the runner's `workDir/input/` before it starts.
   */
  submit(
    kind: string,
    parameters: unknown,
    principal: string,
    inputs?: readonly { name: string; bytes: Uint8Array }[],
  ): Promise<JobRecord>;
  get(jobId: string): Promise<JobRecord | undefined>;
  list(filter?: JobListFilter): Promise<JobRecord[]>;
  /**
   * Cancel a queued job at once, or ask a running one to stop at its next progress report;
   * the outcome (`cancelled`) is recorded once. A finished job is returned unchanged.
   */
  cancel(jobId: string, principal: string): Promise<JobRecord>;
  artifact(jobId: string, name: string): Promise<JobArtifact | undefined>;
  /** The job's record each time it changes, until it is done, failed or cancelled, or `signal` aborts. */
  watch(jobId: string, signal?: AbortSignal): AsyncIterable<JobRecord>;
  /** Stop taking jobs; a running job is left to be resumed (in-process) or retried (BullMQ). */
  close(): Promise<void>;
}

/** What a runner is given to do its work. */
export interface JobContext {
  jobId: string;
  principal: string;
  ledger: Ledger;
  /** A private directory for temporary files, holding the job's inputs under `input/`; removed after the job. */
  workDir: string;
  /** Aborted when the job is cancelled or its worker is shutting down. */
  signal: AbortSignal;
  /** Report progress (throttled by the engine); throws once the job is cancelled. */
  progress(stage: string, done: number, total: number): void;
  /** The outputs of the job's parts (JobRunner.parts) computed so far, here or by other workers. */
  parts: JobParts;
  /** CPU threads the job may give a compute library (ONNX Runtime); unset: the library's default. */
  threads?: number;
}

/**
 * Parts of one job's work, kept with the job (in the ledger database) across its runs and
 * across workers: a part computed once is not computed again, whoever asks.
 */
export interface JobParts {
  get(part: string): Promise<Uint8Array | undefined>;
  put(part: string, bytes: Uint8Array): Promise<void>;
}

/** What a runner hands back; the engine records it (events and job.finished in one append). */
export interface JobOutput {
  result: JsonValue;
  artifacts: Omit<JobArtifact, "sha256">[];
  /** Ledger events the job's work produced (findings, a new version), appended with its outcome. */
  events: LedgerEventInput[];
}

export interface JobRunner<S extends z.ZodType = z.ZodType> {
  kind: string;
  /** One line for --help and the OpenAPI document. */
  description: string;
  parameters: S;
  /** Names of the inputs it cannot run without (JobQueue.submit's `inputs`); checked at submit. */
  requiredInputs?: readonly string[] | ((parameters: z.output<S>) => readonly string[]);
  run(parameters: z.output<S>, context: JobContext): Promise<JobOutput>;
  /**
   * Parts of the work an engine may run ahead of `run`, in parallel on other workers (the
   * BullMQ engine: child jobs of a flow, `run` once all have ended). `run` must not count on
   * them: it takes each part's output from `context.parts` when there and computes the rest
   * itself, so a part that failed, or an engine that runs none, changes nothing but the time.
   */
  parts?(parameters: z.output<S>): readonly string[];
  /** Compute one part's output (stored by the engine under the part's name). */
  runPart?(parameters: z.output<S>, part: string, context: JobContext): Promise<Uint8Array>;
}
