// Taking back jobs whose process died: a `running` row whose lease lapsed has no one working
// on it. It goes back to the queue to run again from scratch (its outcome is recorded once
// however often it runs), unless it was started too many times already — then it fails, with
// the reason — or someone asked to cancel it. Run when a queue starts (a restarted server) and
// on every sweep after, so a job left by another server that died is taken back too.
import type { Ledger } from "../../ledger/types.js";
import { MAX_ATTEMPTS, recordEnd, recordUnrecorded } from "../record.js";
import type { JobStore } from "../store.js";

/** `mine`: owners this queue holds leases under, never taken back from itself. */
export async function recoverExpired(
  store: JobStore,
  ledger: Ledger,
  mine: (owner: string | null) => boolean,
): Promise<void> {
  const now = new Date().toISOString();
  for (const row of await store.inState("running")) {
    if (mine(row.lease_owner) || (row.lease_until !== null && row.lease_until >= now)) continue;
    const job = { jobId: row.job_id, actor: row.principal };
    if (Number(row.cancel_requested) === 1) {
      if (await store.releaseExpired(row.job_id, now, { state: "cancelled", error: null }))
        await recordEnd(ledger, job, "cancelled", null);
    } else if (Number(row.attempts) < MAX_ATTEMPTS) {
      await store.releaseExpired(row.job_id, now, { state: "queued" });
    } else {
      const error = `interrupted ${Number(row.attempts)} times`;
      if (await store.releaseExpired(row.job_id, now, { state: "failed", error }))
        await recordEnd(ledger, job, "failed", error);
    }
  }
  await recordUnrecorded(store, ledger);
}
