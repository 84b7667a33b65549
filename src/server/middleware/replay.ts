// Replay protection: every mutating request (POST, PUT, PATCH, DELETE) carries
// `Antidote-Request-Id` (8–128 of [A-Za-z0-9_-]); missing → 400, used before → 409. The id
// is claimed before the request runs, so a copy racing the original is refused too, and
// given back if the request fails (4xx/5xx), so only accepted requests use up their ids.
import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.js";
import type { RequestIdStore } from "../request-ids.js";
import type { AppEnv } from "../types.js";

export const REQUEST_ID_HEADER = "Antidote-Request-Id";
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const ID = /^[A-Za-z0-9_-]{8,128}$/;

export function replayGuard(
  store: RequestIdStore,
  now: () => Date = () => new Date(),
): MiddlewareHandler<AppEnv> {
  return async function replayGuard(c, next) {
    if (!MUTATING.has(c.req.method)) return next();
    const id = c.req.header(REQUEST_ID_HEADER);
    if (id === undefined || !ID.test(id))
      throw new HttpError(
        400,
        "USAGE",
        `a ${c.req.method} request needs a ${REQUEST_ID_HEADER} header: 8 to 128 characters of A-Z, a-z, 0-9, _ and - (a fresh one per request, e.g. a UUID).`,
      );
    if (!(await store.claim(id, c.get("auth").tokenId, now())))
      throw new HttpError(
        409,
        "REPLAYED",
        `request id ${id} was used before: this request is a replay and was not run.`,
      );
    let accepted = false;
    try {
      await next();
      accepted = c.res.status < 400;
    } finally {
      if (!accepted) await store.release(id);
    }
  };
}
