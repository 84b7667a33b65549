// Running one claimed job and recording what came of it — the same code under both engines.
// The runner gets a fresh working directory holding the job's inputs, a progress callback and
// an abort signal; its lease is kept alive meanwhile (lease.ts). Then, in this order: the
// runner's events and `job.finished` go to the ledger in ONE append that is skipped when an
// outcome is already recorded (`onceForJob`: a job rerun after a crash records once); then
// the artifacts are stored; then the row gets its final state. A crash between two steps
// leaves a row that is still `running`, which recovery reruns from scratch — the rerun's
// append is skipped, and its artifacts and row take the place of the lost ones.
//
// A job stopped by a shutdown (the engine closing) is not an outcome: nothing is recorded and
// the caller puts it back in the queue.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createHash } from "node:crypto";
import type { JsonValue } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Ledger } from "../ledger/types.js";
import { enforcePolicy } from "../policy/enforce.js";
import { Lease } from "./lease.js";
import { errorMessage, finishedEvent, type Outcome } from "./record.js";
import { INPUT_PREFIX, type JobRow, type JobStore } from "./store.js";
import {
  TERMINAL_STATES,
  type JobArtifact,
  type JobOutput,
  type JobParts,
  type JobRunner,
  type JobState,
} from "./types.js";

export interface ExecuteContext {
  store: JobStore;
  ledger: Ledger;
  runners: ReadonlyMap<string, JobRunner>;
  /** CPU threads a job may give a compute library (JobContext.threads). */
  threads?: number;
}

export interface ExecuteOptions {
  /** The owner the row was claimed for (its lease_owner). */
  owner: string;
  leaseMs: number;
  /** Aborted when the engine shuts down: the job stops and is left to be run again. */
  signal: AbortSignal;
}

/** How a run ended: an outcome recorded in the ledger, or "interrupted" (nothing recorded). */
export type Execution = Outcome | "interrupted";

type Ended =
  { state: "done"; output: JobOutput } | { state: "failed"; error: string } | { state: "cancelled" };

/** Artifact names: one plain file name each (they are served by name and written to disk). */
const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Run `row` (already claimed for `options.owner`) and record its outcome. Throws only when the
 * outcome cannot be recorded (the ledger is unreachable): the row then stays running and its
 * lease lapses, so the job is run again.
 */
export async function executeJob(
  ctx: ExecuteContext,
  row: JobRow,
  options: ExecuteOptions,
): Promise<Execution> {
  const job = { jobId: row.job_id, principal: row.principal };
  const runner = ctx.runners.get(row.kind);
  if (Number(row.cancel_requested) === 1) return record(ctx, job, { state: "cancelled" });
  if (runner === undefined)
    return record(ctx, job, { state: "failed", error: `no runner for jobs of kind "${row.kind}" here` });
  let parameters: unknown;
  try {
    parameters = parseOptions(runner.parameters, JSON.parse(row.parameters), `${row.kind} job parameters`);
  } catch (e) {
    return record(ctx, job, { state: "failed", error: errorMessage(e) });
  }

  const workDir = await mkdtemp(join(tmpdir(), "antidote-job-"));
  const controller = new AbortController();
  let cancelled = false;
  let lost = false;
  // The standard abort reason: what a runner's own `signal` users (fetch, streams) expect.
  const stop = (why: string) => controller.abort(new DOMException(why, "AbortError"));
  const shutdown = () => stop("the job was stopped: its worker is shutting down");
  options.signal.addEventListener("abort", shutdown, { once: true });
  if (options.signal.aborted) shutdown();
  const lease = new Lease(ctx.store, job.jobId, options.owner, options.leaseMs, {
    cancel: () => {
      cancelled = true;
      stop("the job was cancelled");
    },
    lost: () => {
      lost = true;
      stop("the job was taken over by another worker");
    },
  });
  let ended: Ended;
  try {
    await writeInputs(workDir, await ctx.store.inputs(job.jobId));
    const output = await runner.run(parameters, {
      jobId: job.jobId,
      principal: job.principal,
      ledger: ctx.ledger,
      workDir,
      signal: controller.signal,
      progress(stage, done, total) {
        // Throwing here is how a runner deep in a library call learns it must stop.
        controller.signal.throwIfAborted();
        lease.progress({ stage, done, total });
      },
      parts: jobParts(ctx.store, job.jobId),
      ...(ctx.threads !== undefined ? { threads: ctx.threads } : {}),
    });
    ended = { state: "done", output };
  } catch (e) {
    if (cancelled) ended = { state: "cancelled" };
    else if (lost || options.signal.aborted) {
      await cleanUp(lease, workDir, options.signal, shutdown);
      return "interrupted";
    } else ended = { state: "failed", error: errorMessage(e) };
  }
  await cleanUp(lease, workDir, options.signal, shutdown);
  return record(ctx, job, ended);
}

async function cleanUp(
  lease: Lease,
  workDir: string,
  signal: AbortSignal,
  shutdown: () => void,
): Promise<void> {
  signal.removeEventListener("abort", shutdown);
  await lease.stop();
  await rm(workDir, { recursive: true, force: true });
}

function jobParts(store: JobStore, jobId: string): JobParts {
  return {
    get: (part) => store.part(jobId, part),
    put: (part, bytes) => store.putPart(jobId, part, bytes),
  };
}

/**
 * Compute one part of a job (JobRunner.parts) ahead of the job itself, and keep its output
 * with the job. Nothing is recorded in the ledger: the job's own run does that. A part already
 * kept is not computed again, and a job that has ended (cancelled, finished without waiting)
 * has no use for it: both are "skipped". Throws when the part fails; the job's run then
 * computes it itself (and fails with the reason, if it is the data's).
 */
export async function executePart(
  ctx: ExecuteContext,
  jobId: string,
  part: string,
  signal: AbortSignal,
): Promise<"done" | "skipped"> {
  const row = await ctx.store.row(jobId);
  if (row === undefined || TERMINAL_STATES.includes(row.state as JobState)) return "skipped";
  if (Number(row.cancel_requested) === 1) return "skipped";
  const runner = ctx.runners.get(row.kind);
  if (runner?.runPart === undefined || runner.parts === undefined)
    throw new AntidoteError("INTERNAL", `jobs of kind "${row.kind}" have no parts to run here.`);
  const parameters: unknown = parseOptions(
    runner.parameters,
    JSON.parse(row.parameters),
    `${row.kind} job parameters`,
  );
  const all = runner.parts(parameters);
  if (!all.includes(part))
    throw new AntidoteError("INTERNAL", `job ${jobId} has no part "${part.slice(0, 80)}".`);
  if ((await ctx.store.part(jobId, part)) !== undefined) return "skipped";
  const workDir = await mkdtemp(join(tmpdir(), "antidote-part-"));
  try {
    await writeInputs(workDir, await ctx.store.inputs(jobId));
    const bytes = await runner.runPart(parameters, part, {
      jobId,
      principal: row.principal,
      ledger: ctx.ledger,
      workDir,
      signal,
      progress: () => signal.throwIfAborted(),
      parts: jobParts(ctx.store, jobId),
      ...(ctx.threads !== undefined ? { threads: ctx.threads } : {}),
    });
    // Ended meanwhile (cancelled while queued): nothing will read it.
    const now = await ctx.store.row(jobId);
    if (now === undefined || TERMINAL_STATES.includes(now.state as JobState)) return "skipped";
    await ctx.store.putPart(jobId, part, bytes);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const done = new Set(await ctx.store.partNames(jobId));
  await ctx.store.queuedProgress(jobId, {
    stage: "parts",
    done: all.filter((p) => done.has(p)).length,
    total: all.length,
  });
  return "done";
}

/** The job's inputs, as files under workDir/input/. */
async function writeInputs(workDir: string, inputs: readonly JobArtifact[]): Promise<void> {
  const dir = join(workDir, "input");
  await mkdir(dir);
  for (const input of inputs) {
    // Names were checked at submit; basename keeps a row edited behind our back inside the directory.
    await writeFile(join(dir, basename(input.name.slice(INPUT_PREFIX.length))), input.bytes);
  }
}

/** Ledger first (once), then artifacts, then the row. */
async function record(
  ctx: ExecuteContext,
  job: { jobId: string; principal: string },
  ended: Ended,
): Promise<Outcome> {
  let artifacts: JobArtifact[] = [];
  let result: JsonValue | null = null;
  if (ended.state === "done") {
    try {
      artifacts = checkArtifacts(ended.output.artifacts);
      result = ended.output.result;
    } catch (e) {
      return record(ctx, job, { state: "failed", error: errorMessage(e) });
    }
  }
  const error = ended.state === "failed" ? ended.error : null;
  const events = [
    ...(ended.state === "done" ? ended.output.events : []),
    finishedEvent(job.jobId, ended.state, result, error),
  ];
  let appended: unknown[];
  try {
    appended = await ctx.ledger.append(events, { actor: job.principal, onceForJob: job.jobId });
  } catch (e) {
    // Events the ledger refuses (a runner's malformed finding) fail the job, with why; an
    // unreachable or tampered ledger is not the job's fault and is left to a retry.
    const refused =
      e instanceof AntidoteError && e.code !== "LEDGER_UNAVAILABLE" && e.code !== "LEDGER_TAMPERED";
    if (ended.state === "done" && refused)
      return record(ctx, job, {
        state: "failed",
        error: `its results were refused by the ledger: ${errorMessage(e)}`,
      });
    throw e;
  }
  if (appended.length === 0) {
    // An earlier run recorded the outcome first: the row follows the ledger.
    const recorded = await ctx.store.recordedOutcome(job.jobId);
    if (recorded !== undefined && recorded.state !== ended.state) {
      await ctx.store.finish(job.jobId, { state: recorded.state, error: recorded.error });
      return recorded.state as Outcome;
    }
  }
  if (artifacts.length > 0) await ctx.store.putArtifacts(job.jobId, artifacts);
  // Findings just recorded may trip the curation policy (autoQuarantine, maxFlagRate). Applied before
  // the row says done, so a client that sees the job done sees its consequences; a failure
  // here is said, and the next scan or `policy enforce` applies the policy then.
  if (appended.some((e) => (e as { kind?: string }).kind === "finding.recorded"))
    await enforcePolicy(ctx.ledger, { actor: job.principal }).catch((e: unknown) =>
      process.emitWarning(`job ${job.jobId}: the curation policy was not applied: ${errorMessage(e)}`),
    );
  await ctx.store.finish(job.jobId, { state: ended.state, result, error });
  // Parts were working state. A crash before this line leaves them behind: unused (the row has
  // its final state), and dropped with the job's other artifacts.
  await ctx.store.dropParts(job.jobId);
  return ended.state;
}

function checkArtifacts(artifacts: JobOutput["artifacts"]): JobArtifact[] {
  const seen = new Set<string>();
  return artifacts.map((a) => {
    if (!ARTIFACT_NAME.test(a.name) || seen.has(a.name))
      throw new AntidoteError(
        "INTERNAL",
        `the runner produced an artifact with a bad or repeated name "${a.name.slice(0, 80)}"`,
      );
    seen.add(a.name);
    return { ...a, sha256: createHash("sha256").update(a.bytes).digest("hex") };
  });
}
