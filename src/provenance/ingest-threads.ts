// Ingest stages on worker threads (piscina). A server verifies deliveries while it answers
// other requests: hashing and decoding a delivery of 200 images takes ~150 ms of CPU, and on
// the event loop every read waiting behind it waited that long too. The ledger work (the
// known-delivery check, the append) stays with the caller; the threads get plain data (the
// source record, the paths) and answer plain data (ingest-thread.ts).
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Piscina } from "piscina";
import { AntidoteError } from "../errors.js";
import type { IngestOptions, IngestStages } from "./ingest.js";
import type { ThreadOutcome } from "./ingest-thread.js";

export interface IngestThreads extends IngestStages {
  readonly threads: number;
  /** Ends the threads once the tasks they hold are done. */
  close(): Promise<void>;
}

/** Default threads: one core left to the event loop, at most 4 (ingest is also disk-bound). */
export function defaultIngestThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export function createIngestThreads(options: { threads?: number } = {}): IngestThreads {
  const threads = options.threads ?? defaultIngestThreads();
  if (!Number.isInteger(threads) || threads < 1)
    throw new AntidoteError("USAGE", `ingest threads: expected a whole number ≥ 1, got ${threads}.`);
  const pool = new Piscina({
    filename: pathToFileURL(threadEntry()).href,
    minThreads: threads,
    maxThreads: threads,
    // Threads stay up between deliveries: starting one loads the readers (~0.3 s).
    idleTimeout: Number.POSITIVE_INFINITY,
  });
  async function call<T>(name: string, task: object): Promise<T> {
    const outcome = (await pool.run(task, { name })) as ThreadOutcome<T>;
    if ("error" in outcome) throw new AntidoteError(outcome.error.code, outcome.error.message);
    return outcome.value;
  }
  return {
    threads,
    statement: (source, o) => call("statement", { source, options: cloneable(o) }),
    verifyKnown: (o, statement) => call("verifyKnown", { options: cloneable(o), statement }),
    stage: (source, trusted, o, storeDir) =>
      call("stage", { source, trusted, options: cloneable(o), storeDir }),
    close: () => pool.close(),
  };
}

/**
 * What of the options can cross to a thread: callbacks cannot. Progress is not reported from
 * a thread; a row-skipping callback is refused rather than dropped, so that no one loses
 * skipped rows silently (a caller that needs it runs the stages in its own thread).
 */
function cloneable(options: IngestOptions): IngestOptions {
  const read = options.readOptions;
  if (read?.onSkip !== undefined || read?.onProgress !== undefined)
    throw new AntidoteError(
      "USAGE",
      "ingest threads: readOptions.onSkip and onProgress cannot run on another thread; use the in-thread stages.",
    );
  const { onProgress: _progress, ...rest } = options;
  return rest;
}

// The compiled entry: beside this file in a build; under tsx or vitest (this file is .ts) the
// build's copy, since a worker thread cannot load TypeScript (`npm test` builds first).
function threadEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const entry = here.endsWith(".ts")
    ? join(dirname(here), "..", "..", "dist", "provenance", "ingest-thread.js")
    : join(dirname(here), "ingest-thread.js");
  if (!existsSync(entry))
    throw new AntidoteError(
      "INTERNAL",
      `ingest threads: ${entry} is missing; build the package first (npm run build).`,
    );
  return entry;
}
