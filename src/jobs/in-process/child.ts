// One in-process job, run in a process of its own (`InProcessQueueOptions.isolate`): a scan or
// an audit keeps a core busy for minutes, and in the server's process it would stall every
// request behind it — and a job that crashes would take the server with it. The server's loop
// has claimed the row; this process opens the same ledger (same location, same key), runs the
// job under the loop's claim exactly as the loop would (execute.ts: heartbeats, progress,
// cancellation, the outcome recorded once), prints how it ended as one JSON line, and exits.
// SIGTERM (the server closing) stops the job without recording anything, like `close()`.
import { openLedger } from "../../ledger/index.js";
import { runnerMap } from "../core.js";
import { executeJob } from "../execute.js";
import { JOB_RUNNERS } from "../runners/index.js";
import { JobStore } from "../store.js";

export interface ChildJob {
  location: string;
  keyPath?: string;
  jobId: string;
  owner: string;
  leaseMs: number;
}

// A server killed (kill -9) while this job ran leaves it to finish on its own: the claim's
// heartbeats keep a restarted server from running it twice, and the outcome goes to the
// ledger. The line below then has no reader; a broken pipe must not turn into a crash.
process.stdout.on("error", () => undefined);
const job = JSON.parse(process.env.ANTIDOTE_JOB_CHILD ?? "{}") as ChildJob;
const controller = new AbortController();
process.once("SIGTERM", () => controller.abort());
const ledger = await openLedger({
  location: job.location,
  ...(job.keyPath !== undefined ? { keyPath: job.keyPath } : {}),
});
let execution = "interrupted";
try {
  const store = new JobStore(ledger);
  const row = await store.row(job.jobId);
  if (row !== undefined && row.lease_owner === job.owner)
    execution = await executeJob({ store, ledger, runners: runnerMap(JOB_RUNNERS) }, row, {
      owner: job.owner,
      leaseMs: job.leaseMs,
      signal: controller.signal,
    });
} finally {
  await ledger.close();
}
process.stdout.write(JSON.stringify({ execution }) + "\n");
