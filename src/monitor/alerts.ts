// Alert delivery by webhook: the monitors' alerts POSTed as JSON to a URL the operator gives, signed
// so the receiver knows they come from this server and were not altered or replayed.
//
// Signature (the Stripe scheme, so receivers can reuse what they know): the request carries
//
//     Antidote-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// over the exact body bytes. A receiver recomputes the HMAC with the shared secret, compares in
// constant time, and refuses a timestamp further than its tolerance from its clock (a replay of an
// old request) — `verifyWebhookSignature` does all three. Several v1 entries are accepted (a
// receiver rotating its secret lists both). Each attempt is signed afresh, so a retry minutes later
// still verifies; `Antidote-Delivery` carries one id per delivery, the same on every attempt, for
// the receiver to drop duplicates.
//
// Delivery: a timeout per attempt; network errors, timeouts, 5xx, 408 and 429 are retried with
// exponential backoff and jitter (at least Retry-After when the server sends one); any other 4xx is
// final — the receiver refused this request and would refuse it again. The outcome is a result,
// not a throw. Nothing here logs, and no error carries the secret, the body or the URL's query.
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import type { MonitorAlert } from "./monitors/types.js";

export const SIGNATURE_HEADER = "Antidote-Signature";
export const DELIVERY_HEADER = "Antidote-Delivery";
/** The JSON body's `type`. */
export const ALERT_PAYLOAD_TYPE = "antidote.monitor-alerts";

export const alertSinkOptionsSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    secret: z.string().min(16, "must be at least 16 characters"),
    /** Per attempt. */
    timeoutMs: z.number().int().min(1).default(5000),
    /** Attempts per delivery, the first included. */
    attempts: z.number().int().min(1).max(20).default(5),
    /** First retry after about this long, doubling each time (with jitter), at most maxBackoffMs. */
    backoffMs: z.number().int().min(0).default(500),
    maxBackoffMs: z.number().int().min(0).default(30_000),
  })
  .strict();

export type AlertSinkOptions = z.input<typeof alertSinkOptionsSchema> & {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** How to wait between attempts (default: setTimeout). */
  sleep?: (ms: number) => Promise<void>;
};

export interface DeliveryResult {
  delivered: boolean;
  /** The delivery's id (the Antidote-Delivery header). */
  deliveryId: string;
  attempts: number;
  /** The last HTTP status, or null when no answer came. */
  status: number | null;
  /** Why it was not delivered: "HTTP 404", "timeout after 5000 ms", "network error (ECONNREFUSED)". */
  error: string | null;
}

export interface AlertSink {
  /** POST the alerts as one signed JSON body. */
  send(alerts: readonly MonitorAlert[]): Promise<DeliveryResult>;
}

/** The Antidote-Signature header value for a body at time t (unix seconds). */
export function signWebhookBody(body: string, secret: string, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}`;
}

/**
 * Whether `header` is a valid Antidote-Signature of `body` under `secret`, made within `toleranceS`
 * seconds of `now` (unix seconds). For receivers: pass the raw body exactly as received.
 */
export function verifyWebhookSignature(
  body: string,
  header: string | null | undefined,
  secret: string,
  toleranceS = 300,
  now = Date.now() / 1000,
): boolean {
  if (typeof header !== "string") return false;
  let t: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t" && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (key === "v1" && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (t === null || signatures.length === 0 || Math.abs(now - t) > toleranceS) return false;
  const expected = Buffer.from(hmacHex(secret, `${t}.${body}`), "hex");
  return signatures.some((s) => timingSafeEqual(Buffer.from(s, "hex"), expected));
}

export function createAlertSink(options: AlertSinkOptions): AlertSink {
  const { fetch: fetchImpl = globalThis.fetch, sleep = defaultSleep, ...rest } = options;
  const o = parseOptions(alertSinkOptionsSchema, rest, "alert webhook");
  return {
    async send(alerts: readonly MonitorAlert[]): Promise<DeliveryResult> {
      const deliveryId = randomUUID();
      const body = JSON.stringify({
        type: ALERT_PAYLOAD_TYPE,
        id: deliveryId,
        createdAt: new Date().toISOString(),
        alerts,
      });
      let status: number | null = null;
      let error: string | null = null;
      for (let attempt = 1; attempt <= o.attempts; attempt++) {
        let retryAfter = 0;
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), o.timeoutMs);
        try {
          const res = await fetchImpl(o.url, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              [SIGNATURE_HEADER]: signWebhookBody(body, o.secret),
              [DELIVERY_HEADER]: deliveryId,
            },
            body,
            signal: controller.signal,
            redirect: "error",
          });
          status = res.status;
          // Drain the answer (its content is not needed, and is not reported).
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) return { delivered: true, deliveryId, attempts: attempt, status, error: null };
          error = `HTTP ${res.status}`;
          const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
          if (!retryable) return { delivered: false, deliveryId, attempts: attempt, status, error };
          retryAfter = retryAfterMs(res.headers.get("retry-after"));
        } catch (e) {
          status = null;
          error = controller.signal.aborted
            ? `timeout after ${o.timeoutMs} ms`
            : `network error (${networkCode(e)})`;
        } finally {
          clearTimeout(timer);
        }
        if (attempt < o.attempts) {
          const backoff = Math.min(o.maxBackoffMs, o.backoffMs * 2 ** (attempt - 1));
          await sleep(Math.min(o.maxBackoffMs, Math.max(retryAfter, backoff * (0.5 + Math.random() / 2))));
        }
      }
      return { delivered: false, deliveryId, attempts: o.attempts, status, error };
    },
  };
}

function hmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message, "utf8").digest("hex");
}

function retryAfterMs(value: string | null): number {
  if (value === null || value.trim() === "") return 0;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

/** A system error code (ECONNREFUSED, ENOTFOUND…) from fetch's error or its cause, never its message. */
function networkCode(e: unknown): string {
  const code = (x: unknown): string | null =>
    typeof x === "object" && x !== null && typeof (x as { code?: unknown }).code === "string"
      ? (x as { code: string }).code
      : null;
  const cause = typeof e === "object" && e !== null ? (e as { cause?: unknown }).cause : undefined;
  return code(cause) ?? code(e) ?? (e instanceof Error ? e.name : "unknown");
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
