// The agent's side of telemetry: what a deployed model's host links in to report its
// predictions. Records are checked as they are recorded (a malformed one is the caller's bug,
// reported at once, not a refused batch later), gathered into batches by count, size and age,
// signed (agent-batch.ts) and sent one batch at a time in sequence order with retries
// (agent-delivery.ts). A batch the server refuses is reported through onRefused with the
// server's reason and dropped; one whose retries run out is reported as retriable, with the
// signed upload, so the caller can keep it (writeTelemetryBatch) and ingest it offline.
import { AntidoteError } from "../errors.js";
import type { SigningKey } from "../provenance/keys.js";
import { checkBatchOptions, signJsonl, telemetryRecord, type TelemetryRecordInput } from "./agent-batch.js";
import {
  deliverTelemetry,
  httpTelemetrySender,
  type RetryOptions,
  type TelemetryDelivery,
  type TelemetryBatchRefusal,
  type TelemetrySend,
} from "./agent-delivery.js";
import { TELEMETRY_LIMITS, type TelemetryUpload } from "./schema.js";

export {
  checkBatchOptions,
  readTelemetryStatement,
  signJsonl,
  signTelemetryBatch,
  telemetryRecord,
  writeTelemetryBatch,
  type TelemetryBatchOptions,
  type TelemetryContent,
  type TelemetryRecordInput,
} from "./agent-batch.js";
export {
  deliverTelemetry,
  httpTelemetrySender,
  retryAfterMs,
  type DeliveryOutcome,
  type RetryOptions,
  type TelemetryDelivery,
  type TelemetryBatchRefusal,
  type TelemetryResponse,
  type TelemetrySend,
} from "./agent-delivery.js";

export interface TelemetryClientOptions {
  /** The agent's source name, as registered (`--kind agent`). */
  agent: string;
  key: SigningKey;
  /** Hex SHA-256 of the model file this agent runs. */
  model: string;
  /** The model's class names in output order. */
  classes: readonly string[];
  /** Transport; default POST `<server.url>/v1/telemetry` with fetch. */
  send?: TelemetrySend;
  server?: { url: string; token: string; fetch?: typeof fetch; timeoutMs?: number };
  /** Records per batch; default 500. */
  maxRecords?: number;
  /** JSONL bytes per batch; default 8 MiB (TELEMETRY_LIMITS.maxBytes at most). */
  maxBytes?: number;
  /** A batch is sent at most this long after its first record; default 10 s. */
  maxDelayMs?: number;
  /** Sequence number of the first batch; default 0 (an agent that restarts resumes after its last). */
  firstSequence?: number;
  retry?: RetryOptions;
  /** Send inputs' content, not only their digests; default true. */
  sendContent?: boolean;
  /** Batches cut but not yet delivered beyond this are dropped, oldest first; default 1000. */
  maxQueuedBatches?: number;
  onDelivered?: (delivery: TelemetryDelivery) => void;
  onRefused?: (refusal: TelemetryBatchRefusal) => void;
  /** Clock and jitter source, for tests. */
  now?: () => Date;
  random?: () => number;
}

export interface TelemetryClientStats {
  /** Records taken by record(). */
  recorded: number;
  /** Batches cut (signed), and how many of them were delivered, refused or given up. */
  batches: number;
  delivered: number;
  refused: number;
  undelivered: number;
  /** Records not yet settled: buffered, queued or being sent. */
  pending: number;
}

export interface TelemetryClient {
  /** Check and buffer one prediction (throws USAGE for a malformed one); never waits. */
  record(record: TelemetryRecordInput): void;
  /** Cut the current batch and wait until every batch cut so far is delivered or given up. */
  flush(): Promise<TelemetryClientStats>;
  /** flush(), then refuse further records. */
  close(): Promise<TelemetryClientStats>;
  stats(): TelemetryClientStats;
  /** The sequence number the next batch will carry. */
  readonly nextSequence: number;
}

/** See TelemetryClient; batches are sent one at a time, in sequence order. */
export function createTelemetryClient(options: TelemetryClientOptions): TelemetryClient {
  const send =
    options.send ??
    (options.server !== undefined
      ? httpTelemetrySender(options.server)
      : (() => {
          throw new AntidoteError("USAGE", "createTelemetryClient needs `send` or `server`.");
        })());
  const maxRecords = options.maxRecords ?? 500;
  if (!Number.isInteger(maxRecords) || maxRecords < 1 || maxRecords > TELEMETRY_LIMITS.maxRecords)
    throw new AntidoteError(
      "USAGE",
      `maxRecords must be a whole number from 1 to ${TELEMETRY_LIMITS.maxRecords}.`,
    );
  const maxBytes = Math.min(options.maxBytes ?? 8 * 1024 * 1024, TELEMETRY_LIMITS.maxBytes);
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const maxQueued = options.maxQueuedBatches ?? 1000;
  const now = options.now ?? (() => new Date());
  checkBatchOptions({ ...options, sequence: options.firstSequence ?? 0 });
  const batchOptions = {
    agent: options.agent,
    key: options.key,
    model: options.model,
    classes: options.classes,
  };
  const stats: TelemetryClientStats = {
    recorded: 0,
    batches: 0,
    delivered: 0,
    refused: 0,
    undelivered: 0,
    pending: 0,
  };
  let settled = 0;

  let sequence = options.firstSequence ?? 0;
  let counter = 0;
  let closed = false;
  let lines: string[] = [];
  let times: number[] = [];
  let ids = new Set<string>();
  let bytes = 0;
  let earliest = Infinity;
  let latest = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const queue: { sequence: number; records: number; upload: TelemetryUpload }[] = [];
  let sending: Promise<void> | null = null;
  // A callback that threw: kept for flush() to throw, so a background send never rejects unheard.
  let callbackError: unknown = undefined;

  const cut = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (lines.length === 0) return;
    const upload = signJsonl(lines.join(""), times, { ...batchOptions, sequence });
    queue.push({ sequence, records: lines.length, upload });
    sequence++;
    stats.batches++;
    lines = [];
    times = [];
    ids = new Set();
    bytes = 0;
    earliest = Infinity;
    latest = -Infinity;
    while (queue.length > maxQueued) {
      const dropped = queue.shift();
      if (dropped === undefined) break;
      stats.undelivered++;
      settled += dropped.records;
      options.onRefused?.({
        ...dropped,
        status: 0,
        code: "QUEUE_FULL",
        message: `more than ${maxQueued} batches waited to be sent; the oldest was dropped.`,
        attempts: 0,
        retriable: true,
      });
    }
    pump();
  };

  const pump = (): void => {
    if (sending !== null || queue.length === 0) return;
    sending = drain()
      .catch((e: unknown) => void (callbackError ??= e))
      .finally(() => {
        sending = null;
        pump();
      });
  };

  const drain = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const outcome = await deliverTelemetry(send, next.upload, {
        ...options.retry,
        ...(options.random !== undefined ? { random: options.random } : {}),
      });
      settled += next.records;
      if (outcome.delivered) {
        stats.delivered++;
        const { delivered: _, ...rest } = outcome;
        options.onDelivered?.({ sequence: next.sequence, records: next.records, ...rest });
      } else {
        if (outcome.retriable) stats.undelivered++;
        else stats.refused++;
        const { delivered: _, ...rest } = outcome;
        options.onRefused?.({ ...next, ...rest });
      }
    }
  };

  const current = (): TelemetryClientStats => ({ ...stats, pending: stats.recorded - settled });

  return {
    record(input) {
      if (closed) throw new AntidoteError("USAGE", "the telemetry client is closed.");
      const id = input.id ?? String(counter++);
      if (ids.has(id))
        throw new AntidoteError("USAGE", `record "${id}": "id" repeats a record of this batch.`);
      const record = telemetryRecord({ ...input, id }, options.classes, {
        now,
        sendContent: options.sendContent ?? true,
      });
      const line = `${JSON.stringify(record)}\n`;
      const size = Buffer.byteLength(line, "utf8");
      if (size > maxBytes)
        throw new AntidoteError(
          "USAGE",
          `record "${id}" takes ${size} bytes, more than a whole batch (${maxBytes}).`,
        );
      const at = Date.parse(record.at);
      const span = Math.max(at, latest) - Math.min(at, earliest);
      if (lines.length > 0 && (bytes + size > maxBytes || span > TELEMETRY_LIMITS.maxWindowMs)) cut();
      lines.push(line);
      times.push(at);
      earliest = Math.min(earliest, at);
      latest = Math.max(latest, at);
      ids.add(id);
      bytes += size;
      stats.recorded++;
      if (lines.length >= maxRecords) cut();
      else if (timer === undefined) {
        // A throw inside a timer would end the process: keep it for the next flush() instead.
        timer = setTimeout(() => {
          try {
            cut();
          } catch (e) {
            callbackError ??= e;
          }
        }, maxDelayMs);
        timer.unref();
      }
    },
    async flush() {
      cut();
      while (sending !== null) await sending;
      if (callbackError !== undefined) {
        const e = callbackError;
        callbackError = undefined;
        throw e instanceof Error
          ? e
          : new AntidoteError("INTERNAL", "a telemetry callback threw a non-Error value.");
      }
      return current();
    },
    async close() {
      closed = true;
      return this.flush();
    },
    stats: current,
    get nextSequence() {
      return sequence;
    },
  };
}
