// `antidote worker`: run the scans, audits and exports that `antidote serve --redis` queues on
// Redis (BullMQ), on this machine, against the shared ledger — as many workers as a team has
// machines. Long-running: it prints a line as each job starts and ends, and on SIGINT or
// SIGTERM stops taking jobs, hands the running ones back to the queue and exits. A thin shell
// over `startWorker`; the Redis URL's password is never printed.
import { availableParallelism } from "node:os";
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { DEFAULT_QUEUE_NAME, maskRedisUrl } from "../../jobs/bullmq/connection.js";
import type { WorkerEvent } from "../../jobs/bullmq/worker.js";
import { DEFAULT_LOCATION } from "../../ledger/backend.js";
import { openLedger } from "../../ledger/index.js";
import { addLedgerOption } from "../ledger-options.js";
import { parseFlags } from "../options.js";

const workerFlags = z.object({
  redis: z.string().min(1).optional(),
  concurrency: z.coerce
    .number()
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(64)
    .default(1),
  queue: z.string().min(1).default(DEFAULT_QUEUE_NAME),
  lockDuration: z.coerce.number().min(5, "must be at least 5 (seconds)").max(86_400).default(30),
  threads: z.coerce.number().int("must be a whole number").min(1, "must be at least 1").max(256).optional(),
  ledger: z.string().min(1).optional(),
  ledgerKey: z.string().min(1).optional(),
});

const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

export function registerWorker(program: Command): void {
  addLedgerOption(
    program
      .command("worker")
      .description(
        "Run the scan, audit and export jobs that `antidote serve --redis` queues (BullMQ on Redis), " +
          "recording their outcomes in the shared ledger; runs until SIGINT or SIGTERM",
      )
      .option(
        "--redis <url>",
        "Redis URL: redis://[:password@]host:port[/db] or rediss://… (default: $ANTIDOTE_REDIS; " +
          "prefer the variable for a URL with a password, which `ps` would show)",
      )
      .option("--concurrency <n>", "jobs run at once by this worker", "1")
      .option(
        "--threads <n>",
        "CPU threads each job gives ONNX Runtime (default: cores ÷ concurrency); lower it when " +
          "several workers share a machine",
      )
      .option("--queue <name>", "the queue to take jobs from (the server's)", DEFAULT_QUEUE_NAME)
      .option(
        "--lock-duration <seconds>",
        "how long a job's lock holds without renewal: a dead worker's job is retried after it " +
          "(raise it when a job's steps keep the process busy longer)",
        "30",
      ),
  )
    .addHelpText(
      "after",
      `
The ledger must be the server's: a postgres:// URL shared by every machine (or, on the server's
own machine, its SQLite file). A worker killed mid-job leaves its job to another worker once its
lock lapses (--lock-duration); the job runs again from the start and its outcome is recorded once.
A sharded scan (job parameter "shards": N, with the model uploaded) puts its N shards on the queue
for any worker; the scan itself runs once every shard has ended.

Examples:
  antidote worker --redis redis://10.0.0.5:6379 --ledger postgres://antidote@10.0.0.5/antidote
  ANTIDOTE_REDIS=redis://:secret@10.0.0.5:6379 antidote worker --ledger postgres://antidote@db/antidote --concurrency 2`,
    )
    .action(async (flags: Record<string, unknown>) => {
      const f = parseFlags(workerFlags, flags);
      const redisUrl = f.redis ?? (process.env.ANTIDOTE_REDIS || undefined);
      if (redisUrl === undefined)
        throw new AntidoteError("USAGE", "--redis: give the Redis URL (or set $ANTIDOTE_REDIS).");
      const location = f.ledger ?? (process.env.ANTIDOTE_LEDGER || DEFAULT_LOCATION);
      const ledger = await openLedger({
        location,
        ...(f.ledgerKey !== undefined ? { keyPath: f.ledgerKey } : {}),
      });
      try {
        const stopped = stopSignal();
        // Loaded here: BullMQ and the runners (scan, audit) would slow every other command's start.
        const { startWorker } = await import("../../jobs/bullmq/worker.js");
        const worker = await startWorker({
          ledger,
          redisUrl,
          queueName: f.queue,
          concurrency: f.concurrency,
          lockDurationMs: f.lockDuration * 1000,
          threads: f.threads ?? Math.max(1, Math.floor(availableParallelism() / f.concurrency)),
          onEvent: (e) => say(describe(e)),
        });
        say(
          `worker: taking jobs from queue "${f.queue}" on ${maskRedisUrl(redisUrl)}, ledger ${ledger.location}, ` +
            `${f.concurrency} at a time (Ctrl-C to stop)`,
        );
        const signal = await stopped;
        say(`worker: ${signal}, stopping; running jobs go back to the queue`);
        await worker.close();
        say("worker: stopped");
      } finally {
        await ledger.close();
      }
    });
}

// The CLI's entry point exits at once on SIGINT/SIGTERM; a worker first hands its jobs back.
// A second signal exits at once (the jobs' locks lapse and other workers retry them).
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const [signal, code] of Object.entries(SIGNALS)) {
      process.removeAllListeners(signal);
      process.on(signal, () => {
        resolve(signal);
        process.once(signal, () => process.exit(code));
      });
    }
  });
}

function describe(e: WorkerEvent): string {
  const job = `${e.jobId} ${"kind" in e ? e.kind : ""}`;
  if (e.phase === "part")
    return `${e.jobId} part ${e.part} ${e.state}${e.error !== null ? `: ${e.error}` : ""} (attempt ${e.attempt})`;
  if (e.phase === "started") return `${job} started (attempt ${e.attempt})`;
  if (e.state === "interrupted")
    return `${job} stopped before it finished${e.error !== null ? `: ${e.error}` : ""}; it goes back to the queue`;
  return `${job} ${e.state}${e.error !== null ? `: ${e.error}` : ""}`;
}

function say(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}
