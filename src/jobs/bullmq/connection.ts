// Reaching Redis: connection options from a redis:// URL, and the URL as people may see it.
// A Redis URL may carry a password; it is never printed, logged or put in a message — only
// `maskRedisUrl`'s form is.
import type { ConnectionOptions } from "bullmq";
import { AntidoteError } from "../../errors.js";

export const DEFAULT_QUEUE_NAME = "antidote-jobs";

/** Reconnect quickly after an outage (Redis restarted), never slower than every 2 s. */
const retryStrategy = (times: number): number => Math.min(100 * 2 ** Math.min(times, 5), 2000);

/**
 * Options for BullMQ's connections. A worker's must wait out an outage (BullMQ requires
 * `maxRetriesPerRequest: null` for its blocking commands); a producer's fail fast instead, so
 * that submitting a job never hangs on Redis — its row is in the ledger database, and the
 * producer puts it on Redis again once Redis is back (bullmq/queue.ts).
 */
export function redisConnection(url: string, role: "producer" | "worker"): ConnectionOptions {
  checkRedisUrl(url);
  return role === "worker"
    ? { url, maxRetriesPerRequest: null, retryStrategy }
    : { url, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy };
}

/** The URL with its password replaced by *** (and unparseable text never shown whole). */
export function maskRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//***@");
  }
}

function checkRedisUrl(url: string): void {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new AntidoteError(
      "USAGE",
      `Redis URL "${maskRedisUrl(url)}" is not a URL (expected redis://host:port).`,
    );
  }
  if (protocol !== "redis:" && protocol !== "rediss:")
    throw new AntidoteError(
      "USAGE",
      `Redis URL "${maskRedisUrl(url)}": expected redis:// or rediss://, not ${protocol}//.`,
    );
}
