// One log line per request, written after the response: method, path, status, time and
// the principal. Never the Authorization header, never a query string (a client may put a
// secret there), never a body: a log file must be safe to hand to anyone debugging.
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../types.js";

export function requestLogger(write: (line: string) => void): MiddlewareHandler<AppEnv> {
  return async function requestLogger(c, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      const auth = c.get("auth") as AppEnv["Variables"]["auth"] | undefined;
      write(
        JSON.stringify({
          at: new Date().toISOString(),
          method: c.req.method,
          // The path only: `c.req.path` has no query string.
          path: c.req.path,
          status: c.res.status,
          ms: Math.round(performance.now() - started),
          ...(auth === undefined ? {} : { principal: auth.principal, tokenId: auth.tokenId }),
        }),
      );
    }
  };
}
