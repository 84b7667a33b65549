// What the server is built from (`createApp(deps)`) and what a request carries through its
// middleware. Routes depend on these and on the library, never on each other.
import type { Authenticated } from "../auth/tokens.js";
import type { JobQueue } from "../jobs/types.js";
import type { Ledger, TelemetryBatchRecord } from "../ledger/types.js";
import type { RecordsCheck } from "../monitor/intake-thread.js";
import { TELEMETRY_LIMITS } from "../monitor/schema.js";
import type { IngestStages } from "../provenance/ingest.js";
import type { RequestIdStore } from "./request-ids.js";

export interface ServerLimits {
  /** Most bytes of a JSON (or any non-multipart) body; default 1 MiB. */
  maxJsonBytes: number;
  /** Most bytes of a multipart upload (a delivery, an audited model); default 1 GiB. */
  maxUploadBytes: number;
  /** Most bytes of a telemetry batch's JSON body (POST /v1/telemetry): its JSONL within
   * TELEMETRY_LIMITS.maxBytes, escaped inside JSON (up to twice as long), plus the envelope. */
  maxTelemetryBytes: number;
  /** Requests per second each token may make on average; default 20. */
  ratePerSecond: number;
  /** Requests a token may make at once after being idle; default 40. */
  rateBurst: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxJsonBytes: 1024 * 1024,
  maxUploadBytes: 1024 * 1024 * 1024,
  maxTelemetryBytes: 2 * TELEMETRY_LIMITS.maxBytes + 1024 * 1024,
  ratePerSecond: 20,
  rateBurst: 40,
};

export interface AppDeps {
  ledger: Ledger;
  jobs: JobQueue;
  requestIds: RequestIdStore;
  limits?: Partial<ServerLimits>;
  /** Where a delivery is verified and staged; default the request's own thread (`startServer` passes worker threads). */
  ingest?: IngestStages;
  /** Where a telemetry batch's records are hashed and parsed; default the request's own thread
   * (`startServer` passes worker threads). */
  telemetryChecks?: RecordsCheck;
  /** Told of each accepted telemetry batch once it is recorded (`serve --monitor` runs the monitors). */
  onTelemetryAccepted?: (batch: TelemetryBatchRecord) => void;
  /** Where uploads are staged (a private directory per request is made inside); default the OS temp dir. */
  uploadDir?: string;
  /** One line per request and per server-side failure; default stderr. Never given a token or a body. */
  log?: (line: string) => void;
  /** The present (token expiry, rate buckets); default the clock. */
  now?: () => Date;
}

/** Hono's environment: what middleware leave for the routes. */
export interface AppEnv {
  Variables: {
    /** Who the request speaks for (set by the auth middleware on /v1). */
    auth: Authenticated;
  };
}
