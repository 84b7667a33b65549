// Per-token rate limit: a token bucket per API token (`burst` requests at once, refilled at
// `perSecond`), so one client cannot starve the others; over it, 429 with Retry-After. The
// buckets live in this process: several servers behind a balancer each allow the rate.
import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.js";
import type { AppEnv } from "../types.js";

export interface RateLimitOptions {
  perSecond: number;
  burst: number;
  now?: () => Date;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets idle this long are full again and are dropped, so memory follows active tokens. */
const IDLE_MS = 10 * 60_000;

export function rateLimit(options: RateLimitOptions): MiddlewareHandler<AppEnv> {
  const now = options.now ?? (() => new Date());
  const buckets = new Map<string, Bucket>();
  let lastSweep = 0;
  return async function rateLimit(c, next) {
    const t = now().getTime();
    if (t - lastSweep > IDLE_MS) {
      for (const [id, b] of buckets) if (t - b.at > IDLE_MS) buckets.delete(id);
      lastSweep = t;
    }
    const id = c.get("auth").tokenId;
    const bucket = buckets.get(id) ?? { tokens: options.burst, at: t };
    bucket.tokens = Math.min(options.burst, bucket.tokens + ((t - bucket.at) / 1000) * options.perSecond);
    bucket.at = t;
    buckets.set(id, bucket);
    if (bucket.tokens < 1) {
      const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / options.perSecond));
      throw new HttpError(
        429,
        "RATE_LIMITED",
        `this token is over its rate of ${options.perSecond} requests per second; retry in ${retryAfter} s.`,
        { "Retry-After": String(retryAfter) },
      );
    }
    bucket.tokens -= 1;
    await next();
  };
}
