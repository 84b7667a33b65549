// The intake's record checks on worker threads (piscina), for `antidote serve`: the event loop
// reads the body, checks the signature and asks the ledger, while the threads hash and parse
// the records (intake-thread.ts). Threads get the JSONL text and the verified statement and
// answer the count and feedback count, or the refusal's code and message.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Piscina } from "piscina";
import { AntidoteError } from "../errors.js";
import type { RecordsCheck, RecordsSummary, ThreadOutcome } from "./intake-thread.js";

export interface IntakeThreads {
  readonly threads: number;
  check: RecordsCheck;
  /** Ends the threads once the checks they hold are done. */
  close(): Promise<void>;
}

export function createIntakeThreads(options: { threads: number }): IntakeThreads {
  const { threads } = options;
  if (!Number.isInteger(threads) || threads < 1)
    throw new AntidoteError("USAGE", `intake threads: expected a whole number ≥ 1, got ${threads}.`);
  const pool = new Piscina({
    filename: pathToFileURL(threadEntry()).href,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
  });
  return {
    threads,
    check: async (text, statement, label) => {
      const outcome = (await pool.run(
        { text, statement, label },
        { name: "check" },
      )) as ThreadOutcome<RecordsSummary>;
      if ("error" in outcome) throw new AntidoteError(outcome.error.code, outcome.error.message);
      return outcome.value;
    },
    close: () => pool.close(),
  };
}

// The compiled entry: beside this file in a build; under tsx or vitest (this file is .ts) the
// build's copy, since a worker thread cannot load TypeScript (`npm test` builds first).
function threadEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const entry = here.endsWith(".ts")
    ? join(dirname(here), "..", "..", "dist", "monitor", "intake-thread.js")
    : join(dirname(here), "intake-thread.js");
  if (!existsSync(entry))
    throw new AntidoteError(
      "INTERNAL",
      `intake threads: ${entry} is missing; build the package first (npm run build).`,
    );
  return entry;
}
