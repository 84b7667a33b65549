// The CPU-heavy part of the intake: the records' bytes against the signed size and SHA-256,
// then every record against the schema (JSON, fields, probabilities, window, each input's
// content against its digest). A batch of 1000 28×28 images is ~40 ms of CPU, so a server runs
// it on worker threads (intake-threads.ts) and its event loop keeps answering; offline and in
// tests it runs here, in the caller's thread (`checkRecordsInThread`). Either way the answer is
// plain data, and a refusal crosses threads as its code and message.
import { createHash } from "node:crypto";
import { setPriority } from "node:os";
import { isMainThread } from "node:worker_threads";
import { AntidoteError, type AntidoteErrorCode } from "../errors.js";
import { parseTelemetryRecords, type TelemetryStatement } from "./schema.js";

/** What the intake needs to know of a batch's records once they are checked. */
export interface RecordsSummary {
  count: number;
  feedbackCount: number;
}

/** Checks a batch's records (its JSONL text) against its verified statement. */
export type RecordsCheck = (
  text: string,
  statement: TelemetryStatement,
  label: string,
) => Promise<RecordsSummary>;

export const checkRecordsInThread: RecordsCheck = (text, statement, label) =>
  Promise.resolve(checkRecords(text, statement, label));

function checkRecords(text: string, statement: TelemetryStatement, label: string): RecordsSummary {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes !== statement.records.bytes)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${label}: the records are ${bytes} bytes but the signed statement says ${statement.records.bytes}; nothing was written.`,
    );
  const sha256 = createHash("sha256").update(text, "utf8").digest("hex");
  if (sha256 !== statement.records.sha256)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${label}: the records' SHA-256 is not the ${statement.records.sha256.slice(0, 16)}… the agent signed (altered after signing); nothing was written.`,
    );
  const records = parseTelemetryRecords(text, statement, label);
  return { count: records.length, feedbackCount: records.filter((r) => r.feedback !== undefined).length };
}

// ── the worker thread's side ─────────────────────────────────────────────────────────────
export type ThreadOutcome<T> = { value: T } | { error: { code: AntidoteErrorCode; message: string } };

/** The task a worker runs (piscina calls it by name). */
export function check(task: {
  text: string;
  statement: TelemetryStatement;
  label: string;
}): ThreadOutcome<RecordsSummary> {
  try {
    return { value: checkRecords(task.text, task.statement, task.label) };
  } catch (e) {
    if (e instanceof AntidoteError) return { error: { code: e.code, message: e.message } };
    throw e;
  }
}

// On a worker, checking yields to the requests the server answers (as the ingest threads do:
// on Linux a thread has a niceness of its own). Not on the main thread, where it would lower
// the whole process.
if (!isMainThread && process.platform === "linux") {
  try {
    setPriority(0, 10);
  } catch {
    // Not permitted in some sandboxes; checks run the same, at normal priority.
  }
}
