// How a job's outcome reaches the ledger: one `job.finished` event per job, appended with
// `onceForJob` so that however many times a job is run, cancelled or recovered, the first
// outcome recorded is the only one. Shared by the runner's path (execute.ts), cancellation
// (core.ts) and recovery after a crash (the engines).
import { createHash } from "node:crypto";
import type { JsonValue } from "../data/sample.js";
import { isAntidoteError } from "../errors.js";
import { canonicalJson } from "../ledger/chain.js";
import type { Ledger, LedgerEventInput } from "../ledger/types.js";
import type { JobStore } from "./store.js";

/** Jobs that were started this many times without finishing are failed, not started again. */
export const MAX_ATTEMPTS = 3;

/** How long a row may be ended without its outcome before a sweep records it for the process
 * that ended it (which appends right after its update, unless it died). */
const UNRECORDED_GRACE_MS = 10_000;

/** Longest error message kept in a row or an event. */
const MAX_ERROR_LENGTH = 500;

export type Outcome = "done" | "failed" | "cancelled";

export function finishedEvent(
  jobId: string,
  state: Outcome,
  result: JsonValue | null,
  error: string | null,
): LedgerEventInput {
  return {
    kind: "job.finished",
    payload: { jobId, state, resultDigest: result === null ? null : resultDigest(result), error },
  };
}

/** Hex SHA-256 of the result's canonical JSON: the ledger holds the digest, the row the result. */
export function resultDigest(result: JsonValue): string {
  return createHash("sha256").update(canonicalJson(result)).digest("hex");
}

/** Record that a job ended without a result (failed or cancelled); a no-op when already recorded. */
export async function recordEnd(
  ledger: Ledger,
  job: { jobId: string; actor: string },
  state: "failed" | "cancelled",
  error: string | null,
): Promise<void> {
  await ledger.append([finishedEvent(job.jobId, state, null, error)], {
    actor: job.actor,
    onceForJob: job.jobId,
  });
}

/**
 * Record the outcomes of rows that ended without one in the ledger: a process that set the row
 * (a cancel, a recovery) and stopped before its append. Run at start-up and on each sweep.
 */
export async function recordUnrecorded(store: JobStore, ledger: Ledger): Promise<void> {
  for (const row of await store.unrecorded(UNRECORDED_GRACE_MS))
    await recordEnd(
      ledger,
      { jobId: row.job_id, actor: row.principal },
      row.state === "cancelled" ? "cancelled" : "failed",
      row.error,
    );
}

/**
 * Why a job failed, for people: an AntidoteError's message (it names the field or file at
 * fault and never carries contents); anything else is a bug, said in one line without a stack.
 */
export function errorMessage(e: unknown): string {
  if (isAntidoteError(e)) return clip(e.message);
  // V8's JSON messages quote the text they failed on.
  if (e instanceof SyntaxError) return "internal error: malformed JSON";
  const message = e instanceof Error ? e.message : String(e);
  return clip(`internal error: ${message.split("\n")[0] ?? ""}`);
}

function clip(message: string): string {
  return message.length <= MAX_ERROR_LENGTH ? message : `${message.slice(0, MAX_ERROR_LENGTH - 1)}…`;
}
