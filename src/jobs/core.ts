// What both engines do the same way: accept a job (validate, record `job.submitted`, write its
// row and inputs), read and list rows, cancel, hand out artifacts and follow a job as it
// changes. The engines differ only in how a queued row reaches a runner — the in-process loop
// claims it from the table, the BullMQ producer puts it on Redis — so each passes the hooks
// that do that.
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { JsonValue } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Ledger } from "../ledger/types.js";
import { recordEnd } from "./record.js";
import { INPUT_PREFIX, type JobStore } from "./store.js";
import {
  TERMINAL_STATES,
  type JobArtifact,
  type JobListFilter,
  type JobQueue,
  type JobRecord,
  type JobRunner,
} from "./types.js";

/** How often `watch` reads the row. */
export const WATCH_INTERVAL_MS = 200;

/** Input names: one plain file name (no directories, nothing hidden). */
const INPUT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const MEDIA_TYPES: Record<string, string> = {
  ".json": "application/json",
  ".html": "text/html; charset=utf-8",
  ".jsonl": "application/x-ndjson",
  ".csv": "text/csv",
  ".parquet": "application/vnd.apache.parquet",
  ".onnx": "application/octet-stream",
};

export interface EngineHooks {
  /** A job was queued (its row written): hand it to whatever runs jobs. */
  queued(record: JobRecord): Promise<void>;
  /** A queued job was cancelled before it started. */
  cancelledQueued?(jobId: string): Promise<void>;
}

export type CoreQueue = Omit<JobQueue, "engine" | "close">;

export function jobCore(
  store: JobStore,
  ledger: Ledger,
  runners: ReadonlyMap<string, JobRunner>,
  hooks: EngineHooks,
): CoreQueue {
  const required = async (jobId: string): Promise<JobRecord> => {
    const record = await store.get(jobId);
    if (record === undefined) throw notFound(jobId);
    return record;
  };

  return {
    async submit(kind, parameters, principal, inputs = []) {
      const runner = runners.get(kind);
      if (runner === undefined)
        throw new AntidoteError(
          "USAGE",
          `job kind "${kind}" is not known; known: ${[...runners.keys()].join(", ")}.`,
        );
      if (typeof principal !== "string" || principal.trim() === "")
        throw new AntidoteError("USAGE", "a job needs a principal (who asked for it).");
      const parsed = parseOptions(runner.parameters, parameters, `${kind} job parameters`);
      const files = checkInputs(inputs, runner, parsed);
      const jobId = `job-${randomBytes(8).toString("hex")}`;
      const record = jsonRecord(parsed);
      // The request is evidence before it is work: recorded first, so a row never exists
      // without the event that asked for it.
      await ledger.append([{ kind: "job.submitted", payload: { jobId, kind, parameters: record } }], {
        actor: principal,
      });
      try {
        await store.insert({ jobId, kind, parameters: record, principal, inputs: files });
      } catch (e) {
        await recordEnd(ledger, { jobId, actor: principal }, "failed", "it could not be queued").catch(
          () => undefined,
        );
        throw e;
      }
      const queued = await required(jobId);
      await hooks.queued(queued);
      return queued;
    },

    get: (jobId) => store.get(jobId),
    list: (filter?: JobListFilter) => store.list(filter),

    async cancel(jobId, principal) {
      const record = await required(jobId);
      if (TERMINAL_STATES.includes(record.state)) return record;
      // Guarded on `queued`: a job a worker claimed meanwhile is asked to stop instead. A queued
      // job's cancellation is recorded here, by whoever cancelled it; a running job's by its
      // runner when it stops, under the job's principal.
      if (await store.finish(jobId, { state: "cancelled" }, ["queued"])) {
        await recordEnd(ledger, { jobId, actor: principal }, "cancelled", null);
        // Parts computed ahead of it (a sharded scan's shards) have no use now.
        await store.dropParts(jobId);
        await hooks.cancelledQueued?.(jobId);
      } else await store.requestCancel(jobId);
      return required(jobId);
    },

    artifact: (jobId, name) => store.artifact(jobId, name),

    watch(jobId, signal) {
      return watchRow(store, jobId, signal);
    },
  };
}

async function* watchRow(store: JobStore, jobId: string, signal?: AbortSignal): AsyncGenerator<JobRecord> {
  let last = "";
  while (signal?.aborted !== true) {
    const record = await store.get(jobId);
    if (record === undefined) throw notFound(jobId);
    const key = JSON.stringify([record.state, record.updatedAt, record.progress, record.artifacts]);
    if (key !== last) {
      last = key;
      yield record;
    }
    if (TERMINAL_STATES.includes(record.state)) return;
    try {
      await sleep(WATCH_INTERVAL_MS, undefined, signal === undefined ? {} : { signal });
    } catch {
      return; // aborted
    }
  }
}

function notFound(jobId: string): AntidoteError {
  return new AntidoteError("NOT_FOUND", `job "${String(jobId).slice(0, 80)}" does not exist.`);
}

function checkInputs(
  inputs: readonly { name: string; bytes: Uint8Array }[],
  runner: JobRunner,
  parameters: unknown,
): JobArtifact[] {
  const names = new Set<string>();
  const files = inputs.map(({ name, bytes }) => {
    if (typeof name !== "string" || !INPUT_NAME.test(name) || name.includes(".."))
      throw new AntidoteError(
        "USAGE",
        `input "${String(name).slice(0, 80)}": a name is one plain file name (letters, digits, . _ -), no directories.`,
      );
    if (names.has(name)) throw new AntidoteError("USAGE", `input "${name}": given twice.`);
    if (!(bytes instanceof Uint8Array)) throw new AntidoteError("USAGE", `input "${name}": no bytes.`);
    names.add(name);
    return {
      name: `${INPUT_PREFIX}${name}`,
      mediaType: mediaTypeOf(name),
      sha256: createHash("sha256").update(bytes).digest("hex"),
      bytes,
    };
  });
  const required =
    typeof runner.requiredInputs === "function"
      ? runner.requiredInputs(parameters)
      : (runner.requiredInputs ?? []);
  for (const needed of required)
    if (!names.has(needed))
      throw new AntidoteError("USAGE", `${runner.kind} job: input "${needed}" is missing.`);
  return files;
}

export function mediaTypeOf(name: string): string {
  const ext = /\.[^.]+$/.exec(name)?.[0]?.toLowerCase() ?? "";
  return MEDIA_TYPES[ext] ?? "application/octet-stream";
}

// Parameters as stored and recorded: plain JSON, without the undefined of absent options.
function jsonRecord(value: unknown): Record<string, JsonValue> {
  const json = JSON.parse(JSON.stringify(value ?? {})) as JsonValue;
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new AntidoteError("USAGE", "job parameters must be an object.");
  return json;
}

/** Runners by kind; two with one kind is a mistake in the caller's list. */
export function runnerMap(runners: readonly JobRunner[]): ReadonlyMap<string, JobRunner> {
  const map = new Map<string, JobRunner>();
  for (const runner of runners) {
    if (map.has(runner.kind))
      throw new AntidoteError("USAGE", `two job runners of kind "${runner.kind}" were given.`);
    map.set(runner.kind, runner);
  }
  return map;
}
