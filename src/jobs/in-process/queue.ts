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
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Ledger } from "../../ledger/types.js";
import { jobCore, runnerMap } from "../core.js";
import { executeJob, type ExecuteContext } from "../execute.js";
import { JOB_RUNNERS } from "../runners/index.js";
import { JobStore, type JobRow } from "../store.js";
import type { JobQueue, JobRunner } from "../types.js";
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
}

export async function createInProcessQueue(options: InProcessQueueOptions): Promise<JobQueue> {
  const store = new JobStore(options.ledger);
  try {
    const ctx: ExecuteContext = {
      store,
      ledger: options.ledger,
      runners: runnerMap(options.runners ?? JOB_RUNNERS),
    };
    const loop = new Loop(ctx, {
      concurrency: Math.max(1, options.concurrency ?? 1),
      leaseMs: options.leaseMs ?? 60_000,
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
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private claims = 0;
  private closed = false;
  private again = false;
  private pumping: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: ExecuteContext,
    private readonly settings: { concurrency: number; leaseMs: number },
  ) {}

  /** Leases this loop holds: never taken back from itself, however late a heartbeat. */
  readonly mine = (owner: string | null): boolean => owner?.startsWith(`${this.instance}#`) === true;

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
    const done = executeJob(this.ctx, row, {
      owner,
      leaseMs: this.settings.leaseMs,
      signal: controller.signal,
    })
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
    this.running.set(row.job_id, { controller, done });
  }
}
