// The in-process engine, behind `antidote serve` alone: jobs run in the server's own process,
// and the queue is the `jobs` table of the ledger database — nothing else to start. A loop
// claims the oldest queued row (a guarded update: several servers on one PostgreSQL ledger
// never take the same job), runs it (execute.ts) and takes the next, up to `concurrency` at
// once. It is woken by each submit and sweeps every `pollMs` for rows queued by another
// process and for leases that lapsed (recover.ts).
//
// Closing stops the loop and the running jobs, records nothing for them and puts them back in
// the queue: the next server to open the ledger resumes them. A server killed outright leaves
// them `running`; once their lease lapses, the next sweep (or start-up) queues them again.
// One engine per ledger: beside a BullMQ producer this loop would take the workers' jobs.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { hostname, setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import type { Ledger } from "../../ledger/types.js";
import { jobCore, runnerMap } from "../core.js";
import { AntidoteError } from "../../errors.js";
import { executeJob, type ExecuteContext, type Execution } from "../execute.js";
import { JOB_RUNNERS } from "../runners/index.js";
import { JobStore, type JobRow } from "../store.js";
import type { JobQueue, JobRunner } from "../types.js";
import type { ChildJob } from "./child.js";
import { recoverExpired } from "./recover.js";

export interface InProcessQueueOptions {
  ledger: Ledger;
  runners?: readonly JobRunner[];
  /** Jobs run at once (default 1). */
  concurrency?: number;
  /** How long a running job's claim holds without a heartbeat (default 60 s). */
  leaseMs?: number;
  /** How often to look for work queued elsewhere and for lapsed leases (default 1 s). */
  pollMs?: number;
  /**
   * Run each job in a child process that opens the same ledger (child.ts), so that a job's
   * minutes of computing never stall the server's requests and a crashing job does not take
   * the server down. Needs the ledger's location (a postgres URL with its password) and its
   * key file (or $ANTIDOTE_LEDGER_KEY, which the child inherits); the default runners only.
   */
  isolate?: { location: string; keyPath?: string };
}

export async function createInProcessQueue(options: InProcessQueueOptions): Promise<JobQueue> {
  const store = new JobStore(options.ledger);
  try {
    const ctx: ExecuteContext = {
      store,
      ledger: options.ledger,
      runners: runnerMap(options.runners ?? JOB_RUNNERS),
    };
    if (options.isolate !== undefined && options.runners !== undefined)
      throw new AntidoteError(
        "USAGE",
        "isolate: a job run in a child process uses the default runners only.",
      );
    const loop = new Loop(ctx, {
      concurrency: Math.max(1, options.concurrency ?? 1),
      leaseMs: options.leaseMs ?? 60_000,
      isolate: options.isolate,
    });
    const core = jobCore(store, options.ledger, ctx.runners, { queued: () => Promise.resolve(loop.wake()) });
    // A restarted server: take back what the previous one left running, then resume the queue.
    await recoverExpired(store, options.ledger, loop.mine);
    loop.start(options.pollMs ?? 1000);
    return { engine: "in-process", ...core, close: () => loop.close() };
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
}

class Loop {
  private readonly instance = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  private readonly running = new Map<
    string,
    { owner: string; controller: AbortController; done: Promise<void> }
  >();
  private claims = 0;
  private closed = false;
  private again = false;
  private pumping: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: ExecuteContext,
    private readonly settings: {
      concurrency: number;
      leaseMs: number;
      isolate: InProcessQueueOptions["isolate"];
    },
  ) {}

  /**
   * Claims of jobs this loop is running now: never taken back from itself, however late a
   * heartbeat. A claim whose run has ended without an outcome (the job's process was killed,
   * or the ledger was unreachable) is not among them, so its lapsed lease is recovered.
   */
  readonly mine = (owner: string | null): boolean =>
    owner !== null && [...this.running.values()].some((job) => job.owner === owner);

  start(pollMs: number): void {
    this.timer = setInterval(() => {
      this.sweeping = this.sweeping.then(() => this.sweep());
    }, pollMs);
    this.wake();
  }

  wake(): void {
    if (this.closed) return;
    if (this.pumping !== undefined) this.again = true;
    else this.pumping = this.pump().finally(() => (this.pumping = undefined));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.pumping;
    await this.sweeping;
    for (const job of this.running.values()) job.controller.abort();
    await Promise.all([...this.running.values()].map((job) => job.done));
    await this.ctx.store.close();
  }

  private async sweep(): Promise<void> {
    if (this.closed) return;
    try {
      await recoverExpired(this.ctx.store, this.ctx.ledger, this.mine);
    } catch {
      // The database is unreachable now; the next sweep tries again.
    }
    this.wake();
  }

  private async pump(): Promise<void> {
    do {
      this.again = false;
      while (!this.closed && this.running.size < this.settings.concurrency) {
        const owner = `${this.instance}#${++this.claims}`;
        const row = await this.ctx.store.claimNext(owner, this.settings.leaseMs).catch(() => undefined);
        if (row === undefined) break;
        // Claimed just as the queue closed: back in the queue before it starts.
        if (this.closed) await this.ctx.store.requeue(row.job_id, owner);
        else this.run(row, owner);
      }
    } while (this.again && !this.closed);
  }

  private run(row: JobRow, owner: string): void {
    const controller = new AbortController();
    const options = { owner, leaseMs: this.settings.leaseMs, signal: controller.signal };
    const isolate = this.settings.isolate;
    const done = (
      isolate === undefined
        ? executeJob(this.ctx, row, options)
        : executeInChild(
            { ...isolate, jobId: row.job_id, owner, leaseMs: options.leaseMs },
            controller.signal,
          )
    )
      .then(async (execution) => {
        if (execution === "interrupted") await this.ctx.store.requeue(row.job_id, owner);
      })
      // The outcome could not be recorded (the ledger unreachable): the row stays running,
      // its lease lapses, and recovery queues it again.
      .catch(() => undefined)
      .finally(() => {
        this.running.delete(row.job_id);
        this.wake();
      });
    this.running.set(row.job_id, { owner, controller, done });
  }
}

/** The niceness of a job's process (Unix: 0 is the default, 19 the lowest priority). */
const JOB_NICENESS = 10;

// child.ts beside this file: the compiled .js in a build, the .ts source under tsx (tests).
const CHILD_PATH = fileURLToPath(
  new URL(`./child${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url),
);

/**
 * Run the claimed job in a child process; its last stdout line says how it ended. A child that
 * dies without saying (killed, crashed) is an error here: the row stays running under the
 * claim, whose lease lapses, and recovery runs the job again (recorded once whatever happens).
 */
function executeInChild(job: ChildJob, signal: AbortSignal): Promise<Execution> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...(CHILD_PATH.endsWith(".ts") ? ["--import", "tsx"] : []), CHILD_PATH],
      {
        env: { ...process.env, ANTIDOTE_JOB_CHILD: JSON.stringify(job) },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    // A job is background work: requests the server answers meanwhile go first.
    if (child.pid !== undefined && process.platform !== "win32")
      try {
        setPriority(child.pid, JOB_NICENESS);
      } catch {
        // Not permitted here; the job runs at the server's priority.
      }
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const stop = () => child.kill("SIGTERM");
    signal.addEventListener("abort", stop, { once: true });
    child.once("error", reject);
    child.once("exit", (code, how) => {
      signal.removeEventListener("abort", stop);
      const last = out.trim().split("\n").pop() ?? "";
      try {
        resolve((JSON.parse(last) as { execution: Execution }).execution);
      } catch {
        reject(
          new AntidoteError(
            "INTERNAL",
            `job ${job.jobId}: its process ended (${how ?? `exit ${code}`}) without an outcome.`,
          ),
        );
      }
    });
  });
}
