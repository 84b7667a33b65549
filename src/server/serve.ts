// `startServer`: the ledger opened once, the job queue on top of it, the request-id store,
// and the HTTP API listening on a loopback address by default (tokens travel in headers: on
// any other address, put a TLS-terminating proxy in front). `close()` stops taking
// connections, lets requests in flight finish for a grace period, then ends the rest and
// closes the queue (running jobs are resumed or retried later, never lost) and the ledger.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { JobQueue } from "../jobs/types.js";
import { openLedger } from "../ledger/index.js";
import { createIngestThreads, type IngestThreads } from "../provenance/ingest-threads.js";
import { createIntakeThreads, type IntakeThreads } from "../monitor/intake-threads.js";
import { createMonitorRunner, type MonitorRunner } from "../monitor/runner.js";
import type { MonitorSetup } from "../monitor/setup.js";
import type { Ledger, TelemetryBatchRecord } from "../ledger/types.js";
import { createApp } from "./app.js";
import { openRequestIdStore, type RequestIdStore } from "./request-ids.js";
import { sweepStaleUploads } from "./uploads.js";
import type { ServerLimits } from "./types.js";

export interface StartServerOptions {
  /** SQLite file or postgres:// URL (with its password); default `.antidote/ledger.db`. */
  location?: string;
  /** The ledger's signing key (default: beside the ledger, or $ANTIDOTE_LEDGER_KEY). */
  keyPath?: string;
  /** Default 8600; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  limits?: Partial<ServerLimits>;
  uploadDir?: string;
  log?: (line: string) => void;
  /** The job queue over the opened ledger: the caller picks the engine (in-process or BullMQ). */
  queue: (ledger: Ledger) => Promise<JobQueue>;
  /** Worker threads verifying deliveries, and as many checking telemetry records (default: one
   * per core but one, at most 4). */
  ingestThreads?: number;
  /** How long close() waits for requests in flight before ending them (default 10 s). */
  graceMs?: number;
  /** Run the monitors of this setup (`antidote monitor init`) on every accepted telemetry batch. */
  monitor?: { setup: MonitorSetup; setupFile: string };
}

export interface RunningServer {
  /** http://host:port */
  url: string;
  ledger: Ledger;
  jobs: JobQueue;
  close(): Promise<void>;
}

/** PostgreSQL connections of the server's ledger: reads keep going while appends hold one each. */
const SERVER_POOL_SIZE = 16;

/** Long enough for a large upload on a slow link; Node's default (300 s) is not. */
const REQUEST_TIMEOUT_MS = 60 * 60_000;
/** Idle keep-alive connections are kept this long (Node's default, 5 s, is below clients' 4–60 s). */
const KEEP_ALIVE_MS = 65_000;

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const ledger = await openLedger({
    poolSize: SERVER_POOL_SIZE,
    ...(options.location !== undefined ? { location: options.location } : {}),
    ...(options.keyPath !== undefined ? { keyPath: options.keyPath } : {}),
  });
  let requestIds: RequestIdStore | undefined;
  let jobs: JobQueue | undefined;
  let ingest: IngestThreads | undefined;
  let intake: IntakeThreads | undefined;
  let monitor: MonitorSchedule | undefined;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  try {
    // Uploads a killed server left half-received.
    await sweepStaleUploads(options.uploadDir);
    requestIds = openRequestIdStore(ledger);
    ingest = createIngestThreads(
      options.ingestThreads !== undefined ? { threads: options.ingestThreads } : {},
    );
    intake = createIntakeThreads({ threads: ingest.threads });
    jobs = await options.queue(ledger);
    if (options.monitor !== undefined)
      monitor = monitorSchedule(
        await createMonitorRunner(ledger, options.monitor.setup, { setupFile: options.monitor.setupFile }),
        log,
      );
    const app = createApp({
      ledger,
      jobs,
      requestIds,
      ingest,
      telemetryChecks: intake.check,
      ...(monitor !== undefined
        ? { onTelemetryAccepted: (batch: TelemetryBatchRecord) => monitor?.schedule(batch) }
        : {}),
      ...(options.limits !== undefined ? { limits: options.limits } : {}),
      ...(options.uploadDir !== undefined ? { uploadDir: options.uploadDir } : {}),
      ...(options.log !== undefined ? { log: options.log } : {}),
    });
    const host = options.host ?? "127.0.0.1";
    const { server, address } = await listen(app.fetch, options.port ?? 8600, host);
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    // Longer than clients' own idle timeouts, so that it is the client that closes an idle
    // connection: a server closing one as a request goes out makes the client see a reset.
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
    const opened = { requestIds, jobs, ingest, intake, monitor };
    let closing: Promise<void> | undefined;
    return {
      url,
      ledger,
      jobs,
      close: () => (closing ??= shutDown(server, options.graceMs ?? 10_000, opened, ledger)),
    };
  } catch (e) {
    await monitor?.close().catch(() => undefined);
    await jobs?.close().catch(() => undefined);
    await ingest?.close().catch(() => undefined);
    await intake?.close().catch(() => undefined);
    await requestIds?.close().catch(() => undefined);
    await ledger.close().catch(() => undefined);
    throw e;
  }
}

function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  port: number,
  hostname: string,
): Promise<{ server: Server; address: AddressInfo }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname }) as Server;
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      resolve({ server, address: server.address() as AddressInfo });
    });
  });
}

async function shutDown(
  server: Server,
  graceMs: number,
  opened: {
    requestIds: RequestIdStore;
    jobs: JobQueue;
    ingest: IngestThreads;
    intake: IntakeThreads;
    monitor: MonitorSchedule | undefined;
  },
  ledger: Ledger,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // Event streams never end by themselves; anything still open after the grace period is cut.
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
  await opened.monitor?.close();
  await opened.jobs.close();
  await opened.ingest.close();
  await opened.intake.close();
  await opened.requestIds.close();
  await ledger.close();
}

interface MonitorSchedule {
  schedule(batch: TelemetryBatchRecord): void;
  close(): Promise<void>;
}

// The monitors run after the response, one run at a time: batches accepted while a run is on
// are read by the next run (the runner keeps its own cursor), so a burst of batches costs one
// run more, not one per batch. A failing run is logged and the next batch tries again; the
// alerts it did record stay recorded.
function monitorSchedule(runner: MonitorRunner, log: (line: string) => void): MonitorSchedule {
  let active: Promise<void> | null = null;
  let again = false;
  let closed = false;
  const loop = async (): Promise<void> => {
    do {
      again = false;
      try {
        const result = await runner.run();
        if (result.alerts.length > 0)
          log(
            `monitor: ${result.alerts.length} alerts over ${result.batches} batches (${result.findings} new findings)`,
          );
      } catch (e) {
        log(`monitor: run failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    } while (again && !closed);
  };
  return {
    schedule() {
      if (closed) return;
      if (active !== null) {
        again = true;
        return;
      }
      active = loop().finally(() => (active = null));
    },
    async close() {
      closed = true;
      await active;
      await runner.close();
    },
  };
}
