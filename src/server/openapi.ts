// Small pieces every route file uses to declare itself: the bearer security scheme, the
// error responses, the middleware a route runs (its permission, the body types it reads),
// and keyset-style pagination over lists the ledger returns whole.
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { Permission } from "../auth/roles.js";
import { HttpError } from "./errors.js";
import { contentType, type MediaType } from "./middleware/content-type.js";
import { requirePermission } from "./middleware/permission.js";
import { errorSchema } from "./schemas.js";
import type { AppEnv } from "./types.js";

export const BEARER = "bearer";
export const security = [{ [BEARER]: [] }];

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Bad request: a field, header or upload is wrong (the message names it)",
  401: "No valid API token",
  403: "The token's role may not do this",
  404: "Not found",
  409: "Conflict: already exists, or a replayed Antidote-Request-Id",
  413: "The body is over the server's limit",
  415: "Unsupported content type",
  422: "Verification failed: signature, key or digest",
  429: "Rate limit exceeded (see Retry-After)",
  503: "The ledger is unavailable",
};

/** Error responses for a route: the common ones plus `extra`. */
export function errors(...extra: number[]) {
  const statuses = [...new Set([401, 403, 429, ...extra])].sort();
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      {
        description: ERROR_DESCRIPTIONS[s] ?? "Error",
        content: { "application/json": { schema: errorSchema } },
      },
    ]),
  );
}

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** The middleware of a route: its permission, then the body types it reads (a mutating route). */
export function guard(permission: Permission, ...reads: MediaType[]): MiddlewareHandler<AppEnv>[] {
  return reads.length === 0
    ? [requirePermission(permission)]
    : [requirePermission(permission), contentType(...reads) as MiddlewareHandler<AppEnv>];
}

/**
 * One page of `items` after `cursor` (the key of the last item of the previous page), in
 * the order given. The key is opaque to clients; here it is the item's own id.
 */
export function page<T>(
  items: readonly T[],
  key: (item: T) => string,
  limit: number,
  cursor: string | undefined,
): { items: T[]; nextCursor: string | null } {
  const found = cursor === undefined ? -1 : items.findIndex((item) => key(item) === cursor);
  if (cursor !== undefined && found < 0)
    throw new HttpError(
      400,
      "USAGE",
      "query.cursor: not a cursor of this list (take nextCursor from the previous page).",
    );
  const start = found + 1;
  const slice = items.slice(start, start + limit);
  const last = slice[slice.length - 1];
  return {
    items: slice,
    nextCursor: start + limit < items.length && last !== undefined ? key(last) : null,
  };
}
