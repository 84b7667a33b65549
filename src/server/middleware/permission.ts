// Role check for one route: the token's role must grant the route's permission (auth/roles.ts
// holds the whole table), else 403. A supplier's source binding is checked by the routes
// that take a source, since only they know which source the request names.
import type { MiddlewareHandler } from "hono";
import { formatRole, hasPermission, type Permission } from "../../auth/roles.js";
import { HttpError } from "../errors.js";
import type { AppEnv } from "../types.js";

export function requirePermission(permission: Permission): MiddlewareHandler<AppEnv> {
  return async function requirePermission(c, next) {
    const auth = c.get("auth");
    if (!hasPermission(auth.role, permission))
      throw new HttpError(
        403,
        "FORBIDDEN",
        `a ${formatRole(auth)} token may not do this (it needs the "${permission}" permission).`,
      );
    await next();
  };
}
