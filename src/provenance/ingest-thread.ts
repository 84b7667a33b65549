// A worker thread of `createIngestThreads`: the CPU-heavy stages of an ingest (ingest.ts's
// `IngestStages`) run here, off the server's event loop. Tasks and answers are plain data;
// an AntidoteError (a user's mistake: a bad signature, a tampered file) comes back as its
// code and message, because an Error crossing threads loses its class and its code.
import { setPriority } from "node:os";
import { AntidoteError, type AntidoteErrorCode } from "../errors.js";
import type { Source } from "../ledger/types.js";
import type { DeliveryStatement } from "./manifest.js";
import { inThreadStages, type IngestOptions, type StagedDelivery, type TrustedStatement } from "./ingest.js";

/** What a thread answers: the stage's value, or the user-facing error it threw. */
export type ThreadOutcome<T> = { value: T } | { error: { code: AntidoteErrorCode; message: string } };

// Verification yields to the requests the server is answering: on Linux a thread has a
// niceness of its own, so this lowers only this thread. (Elsewhere it would lower the whole
// process, the server's event loop with it, so it is left alone.)
const NICENESS = 10;
if (process.platform === "linux") {
  try {
    setPriority(0, NICENESS);
  } catch {
    // Not permitted in some sandboxes; the stages run the same, only at normal priority.
  }
}

export function statement(task: { source: Source; options: IngestOptions }) {
  return settle<TrustedStatement>(() => inThreadStages.statement(task.source, task.options));
}

export function verifyKnown(task: { options: IngestOptions; statement: DeliveryStatement }) {
  return settle<void>(() => inThreadStages.verifyKnown(task.options, task.statement));
}

export function stage(task: {
  source: Source;
  trusted: TrustedStatement;
  options: IngestOptions;
  storeDir: string;
}) {
  return settle<StagedDelivery>(() =>
    inThreadStages.stage(task.source, task.trusted, task.options, task.storeDir),
  );
}

async function settle<T>(run: () => Promise<T>): Promise<ThreadOutcome<T>> {
  try {
    return { value: await run() };
  } catch (e) {
    if (e instanceof AntidoteError) return { error: { code: e.code, message: e.message } };
    throw e;
  }
}
