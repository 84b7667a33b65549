import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  createAlertSink,
  signWebhookBody,
  verifyWebhookSignature,
} from "../../src/monitor/alerts.js";
import type { MonitorAlert } from "../../src/monitor/monitors/types.js";
import { freePort } from "../helpers/free-port.js";

// Webhook delivery against a real HTTP server on a free loopback port: the receiver verifies the
// Stripe-style signature over the raw body, a tampered body or an old timestamp fails, 5xx is
// retried until it succeeds or the attempts run out, 4xx is not retried, a hung server times out.

const SECRET = "whsec_test_0123456789abcdef";
const ALERT: MonitorAlert = {
  monitor: "agent-anomaly",
  kind: "suspicious-feedback",
  subjectType: "source",
  subjectId: "agent-17",
  score: 12.3,
  batchId: "agent-17#4",
  evidence: { statistic: "suspicious-feedback", observedRate: 0.09 },
};

interface Received {
  body: string;
  signature: string | undefined;
  delivery: string | undefined;
}

describe("webhook alerts", () => {
  let server: Server;
  let url: string;
  const received: Received[] = [];
  /** What the server answers next, one status per request (then 200). */
  let script: number[] = [];
  let hang = false;

  beforeAll(async () => {
    const port = await freePort();
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({
          body: Buffer.concat(chunks).toString("utf8"),
          signature: req.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined,
          delivery: req.headers[DELIVERY_HEADER.toLowerCase()] as string | undefined,
        });
        if (hang) return; // never answers
        res.statusCode = script.shift() ?? 200;
        res.end("{}");
      });
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${port}/hooks/antidote`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const reset = (statuses: number[] = []): void => {
    received.length = 0;
    script = statuses;
    hang = false;
  };

  it("delivers a body whose signature verifies at the receiver; a tampered body or stale time fails", async () => {
    reset();
    const sink = createAlertSink({ url, secret: SECRET });
    const result = await sink.send([ALERT]);
    expect(result).toMatchObject({ delivered: true, attempts: 1, status: 200, error: null });
    expect(received).toHaveLength(1);
    const got = received[0] as Received;
    expect(got.delivery).toBe(result.deliveryId);
    expect(JSON.parse(got.body)).toMatchObject({ type: "antidote.monitor-alerts", alerts: [ALERT] });
    expect(verifyWebhookSignature(got.body, got.signature, SECRET, 300)).toBe(true);
    // Tampered body, wrong secret, missing header: refused.
    const tampered = got.body.replace('"score":12.3', '"score":0.1');
    expect(tampered).not.toBe(got.body);
    expect(verifyWebhookSignature(tampered, got.signature, SECRET, 300)).toBe(false);
    expect(verifyWebhookSignature(got.body, got.signature, "another-secret-000000", 300)).toBe(false);
    expect(verifyWebhookSignature(got.body, undefined, SECRET, 300)).toBe(false);
    // A replay an hour later is outside the tolerance.
    const t = Number(/t=(\d+)/.exec(got.signature ?? "")?.[1]);
    expect(verifyWebhookSignature(got.body, got.signature, SECRET, 300, t + 3600)).toBe(false);
    // Rotation: any matching v1 of several is accepted.
    const rotated = `${signWebhookBody(got.body, "old-secret-0000000000", t)},v1=${/v1=([0-9a-f]+)/.exec(got.signature ?? "")?.[1]}`;
    expect(verifyWebhookSignature(got.body, rotated, SECRET, 300, t)).toBe(true);
  });

  it("retries 5xx with backoff until it succeeds, re-signing each attempt under one delivery id", async () => {
    reset([500, 503]);
    const sleeps: number[] = [];
    const sink = createAlertSink({
      url,
      secret: SECRET,
      backoffMs: 100,
      sleep: (ms) => (sleeps.push(ms), Promise.resolve()),
    });
    const result = await sink.send([ALERT]);
    expect(result).toMatchObject({ delivered: true, attempts: 3, status: 200 });
    expect(received).toHaveLength(3);
    expect(new Set(received.map((r) => r.delivery))).toEqual(new Set([result.deliveryId]));
    for (const r of received) expect(verifyWebhookSignature(r.body, r.signature, SECRET)).toBe(true);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(50);
    expect(sleeps[1]).toBeGreaterThanOrEqual(100); // doubled (with jitter in [½, 1])
  });

  it("gives up after N attempts on persistent 5xx, and does not retry a 4xx", async () => {
    reset([500, 500, 500, 500]);
    const sink = createAlertSink({ url, secret: SECRET, attempts: 3, sleep: () => Promise.resolve() });
    expect(await sink.send([ALERT])).toMatchObject({
      delivered: false,
      attempts: 3,
      status: 500,
      error: "HTTP 500",
    });
    expect(received).toHaveLength(3);
    reset([400]);
    expect(await sink.send([ALERT])).toMatchObject({
      delivered: false,
      attempts: 1,
      status: 400,
      error: "HTTP 400",
    });
    expect(received).toHaveLength(1);
  });

  it("times out a receiver that never answers, and reports a refused connection without the URL or secret", async () => {
    reset();
    hang = true;
    const sink = createAlertSink({
      url,
      secret: SECRET,
      attempts: 2,
      timeoutMs: 200,
      sleep: () => Promise.resolve(),
    });
    const slow = await sink.send([ALERT]);
    expect(slow).toMatchObject({
      delivered: false,
      attempts: 2,
      status: null,
      error: "timeout after 200 ms",
    });
    server.closeAllConnections();
    hang = false;
    const closed = createAlertSink({
      url: `http://127.0.0.1:${await freePort()}/x?token=${SECRET}`,
      secret: SECRET,
      attempts: 2,
      sleep: () => Promise.resolve(),
    });
    const refused = await closed.send([ALERT]);
    expect(refused.delivered).toBe(false);
    expect(refused.error).toMatch(/^network error \(/);
    expect(JSON.stringify(refused)).not.toContain(SECRET);
  });

  it("refuses bad options: a short secret, a non-http URL", () => {
    expect(() => createAlertSink({ url, secret: "short" })).toThrow(/secret/);
    expect(() => createAlertSink({ url: "ftp://example.com/x", secret: SECRET })).toThrow(/url/);
  });
});
