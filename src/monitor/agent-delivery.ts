// Getting a signed batch to `antidote serve`: the HTTP transport and the retry policy.
//
// Delivery is at-least-once with the server deciding duplicates: every attempt carries a
// fresh Antidote-Request-Id (the server refuses a request id it has seen, so a retry can never
// reuse one), and a batch is identified by its sequence number instead. A retry after an
// attempt whose fate is unknown (no answer, a timeout, a 5xx) that the server answers 409
// means the earlier attempt went through: the batch is delivered. Network errors, 5xx and 429
// are retried with exponential backoff and jitter (waiting at least Retry-After); any other
// 4xx is a refusal — the same bytes would be refused again — and is not retried.
import { randomUUID } from "node:crypto";
import { AntidoteError } from "../errors.js";
import type { TelemetryUpload } from "./schema.js";

/** What a transport answers: the HTTP status, the parsed JSON body, and Retry-After if any. */
export interface TelemetryResponse {
  status: number;
  body: unknown;
  /** The Retry-After header (seconds or an HTTP date), when the server sent one. */
  retryAfter?: string | null;
}

/** Send one upload as one request; throw for a request that got no answer (network, timeout). */
export type TelemetrySend = (upload: TelemetryUpload, requestId: string) => Promise<TelemetryResponse>;

export interface RetryOptions {
  /** Attempts per batch, the first included; default 5. */
  attempts?: number;
  /** First backoff; doubles per attempt, with jitter; default 500 ms. */
  baseDelayMs?: number;
  /** Longest wait between attempts (Retry-After included); default 60 s. */
  maxDelayMs?: number;
}

export interface TelemetryDelivery {
  sequence: number;
  records: number;
  status: number;
  attempts: number;
  /** A retry found the batch already accepted (409 after an attempt whose answer was lost). */
  duplicate: boolean;
}

export interface TelemetryBatchRefusal {
  sequence: number;
  records: number;
  /** HTTP status; 0 when no answer came. */
  status: number;
  /** The server's error code (KEY_UNTRUSTED, REPLAYED, …), UNREACHABLE, QUEUE_FULL or HTTP_<status>. */
  code: string;
  message: string;
  attempts: number;
  /** True when retries ran out (sending it again later may work); false for a refusal. */
  retriable: boolean;
  /** The signed batch, e.g. to keep it with `writeTelemetryBatch` and ingest it offline. */
  upload: TelemetryUpload;
}

/** The default transport: POST the upload as JSON to `<url>/v1/telemetry` with the agent's token. */
export function httpTelemetrySender(server: {
  url: string;
  token: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): TelemetrySend {
  let base: URL;
  try {
    base = new URL(server.url);
  } catch {
    throw new AntidoteError("USAGE", `server URL "${server.url}" is not a valid URL.`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:")
    throw new AntidoteError("USAGE", `server URL "${server.url}": expected http:// or https://.`);
  const endpoint = `${base.toString().replace(/\/+$/, "")}/v1/telemetry`;
  const fetchFn = server.fetch ?? fetch;
  return async (upload, requestId) => {
    const response = await fetchFn(endpoint, {
      method: "POST",
      headers: {
        authorization: `Bearer ${server.token}`,
        "content-type": "application/json",
        "antidote-request-id": requestId,
      },
      body: JSON.stringify(upload),
      signal: AbortSignal.timeout(server.timeoutMs ?? 60_000),
    });
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      body = null; // a proxy's error page: the status says enough
    }
    return { status: response.status, body, retryAfter: response.headers.get("retry-after") };
  };
}

export type DeliveryOutcome =
  | ({ delivered: true } & Omit<TelemetryDelivery, "sequence" | "records">)
  | ({ delivered: false } & Omit<TelemetryBatchRefusal, "sequence" | "records" | "upload">);

/** Send one upload with retries (see the module comment); never throws for a failed delivery. */
export async function deliverTelemetry(
  send: TelemetrySend,
  upload: TelemetryUpload,
  retry: RetryOptions & { random?: () => number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<DeliveryOutcome> {
  const attempts = Math.max(1, retry.attempts ?? 5);
  const base = retry.baseDelayMs ?? 500;
  const cap = retry.maxDelayMs ?? 60_000;
  const random = retry.random ?? Math.random;
  const sleep = retry.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  // Whether an earlier attempt may have reached the server without its answer reaching us.
  let unknownFate = false;
  let last: { status: number; code: string; message: string } = {
    status: 0,
    code: "UNREACHABLE",
    message: "",
  };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let response: TelemetryResponse;
    try {
      response = await send(upload, randomUUID());
    } catch (e) {
      unknownFate = true;
      last = {
        status: 0,
        code: "UNREACHABLE",
        message: `no answer (${e instanceof Error ? e.message : String(e)})`,
      };
      if (attempt < attempts) await sleep(backoff(attempt, base, cap, random));
      continue;
    }
    const { status } = response;
    if (status >= 200 && status < 300)
      return { delivered: true, status, attempts: attempt, duplicate: false };
    const error = errorOf(response);
    if (status === 409 && unknownFate) return { delivered: true, status, attempts: attempt, duplicate: true };
    last = { status, ...error };
    if (status >= 500 || status === 429) {
      // A 5xx may come after the batch was written (a proxy timing out on a slow server).
      if (status >= 500) unknownFate = true;
      if (attempt < attempts)
        await sleep(
          Math.min(cap, Math.max(retryAfterMs(response.retryAfter), backoff(attempt, base, cap, random))),
        );
      continue;
    }
    return { delivered: false, ...last, attempts: attempt, retriable: false };
  }
  return { delivered: false, ...last, attempts, retriable: true };
}

// ---------------------------------------------------------------------------------------

function backoff(attempt: number, base: number, cap: number, random: () => number): number {
  const full = Math.min(cap, base * 2 ** (attempt - 1));
  return full / 2 + random() * (full / 2);
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; 0 when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number {
  if (value === undefined || value === null || value.trim() === "") return 0;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}

function errorOf(response: TelemetryResponse): { code: string; message: string } {
  const error = (response.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return {
    code: typeof error?.code === "string" ? error.code : `HTTP_${response.status}`,
    message: typeof error?.message === "string" ? error.message : `HTTP ${response.status}`,
  };
}
