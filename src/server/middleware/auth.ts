// Bearer-token authentication: `Authorization: Bearer adt_…` → who the request speaks for,
// or a 401 naming what is wrong with the token (missing, malformed, unknown, revoked,
// expired) — never echoing it.
import type { MiddlewareHandler } from "hono";
import { authenticate, type AuthFailure } from "../../auth/tokens.js";
import type { LedgerReader } from "../../ledger/types.js";
import { HttpError } from "../errors.js";
import type { AppEnv } from "../types.js";

const WHY: Record<AuthFailure, string> = {
  malformed: "the bearer token is not an Antidote API token (adt_<id>_<secret>).",
  unknown: "the bearer token is not valid.",
  revoked: "the bearer token was revoked.",
  expired: "the bearer token has expired.",
};

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="antidote"' };

export function bearerAuth(
  ledger: Pick<LedgerReader, "getToken">,
  now: () => Date = () => new Date(),
): MiddlewareHandler<AppEnv> {
  return async function bearerAuth(c, next) {
    const header = c.req.header("authorization");
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (match === null)
      throw new HttpError(
        401,
        "UNAUTHENTICATED",
        "this request needs an API token: send Authorization: Bearer <token> (made with `antidote token create`).",
        CHALLENGE,
      );
    const result = await authenticate(ledger, match[1] ?? "", { now: now() });
    if (!result.ok) throw new HttpError(401, "UNAUTHENTICATED", WHY[result.reason], CHALLENGE);
    const { tokenId, principal, role, source, expiresAt } = result;
    c.set("auth", { tokenId, principal, role, source, expiresAt });
    await next();
  };
}
