// /v1/tokens (admin): make a token (its secret is in this one response and nowhere else),
// list tokens (never a secret or its hash), revoke one.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { createToken, revokeToken } from "../../auth/tokens.js";
import type { ApiToken, Ledger } from "../../ledger/types.js";
import { errors, guard, json, jsonBody, security } from "../openapi.js";
import { apiTokenSchema, createTokenBody, createdTokenSchema, reasonBody } from "../schemas.js";
import type { AppEnv } from "../types.js";

const create = createRoute({
  method: "post",
  path: "/tokens",
  tags: ["tokens"],
  summary: "Create an API token; the secret is returned once",
  security,
  middleware: guard("tokens", "application/json"),
  request: { body: jsonBody(createTokenBody) },
  responses: { 201: json(createdTokenSchema, "The token, with its secret"), ...errors(400, 404, 413, 415) },
});

const list = createRoute({
  method: "get",
  path: "/tokens",
  tags: ["tokens"],
  summary: "List tokens, revoked ones included (no secrets)",
  security,
  middleware: guard("tokens"),
  responses: { 200: json(z.array(apiTokenSchema), "The tokens"), ...errors() },
});

const revoke = createRoute({
  method: "delete",
  path: "/tokens/{tokenId}",
  tags: ["tokens"],
  summary: "Revoke a token",
  security,
  middleware: guard("tokens", "application/json"),
  request: {
    params: z.object({ tokenId: z.string().regex(/^[0-9a-f]{16}$/, "a token id") }),
    body: jsonBody(reasonBody),
  },
  responses: {
    200: json(apiTokenSchema.extend({ alreadyRevoked: z.boolean() }), "The revoked token"),
    ...errors(400, 404, 413, 415),
  },
});

export function tokenRoutes(ledger: Ledger, now: () => Date): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const { token, grant } = await createToken(ledger, body, { actor: c.get("auth").principal, now: now() });
    const created = await ledger.getToken(grant.tokenId);
    return c.json(
      { ...withoutHash(created ?? { ...grant, createdAt: now().toISOString(), revokedAt: null }), token },
      201,
    );
  });
  app.openapi(list, async (c) => c.json((await ledger.listTokens()).map(withoutHash), 200));
  app.openapi(revoke, async (c) => {
    const { token, alreadyRevoked } = await revokeToken(
      ledger,
      c.req.valid("param").tokenId,
      c.req.valid("json").reason,
      {
        actor: c.get("auth").principal,
      },
    );
    return c.json({ ...withoutHash(token), alreadyRevoked }, 200);
  });
  return app;
}

// The secret's hash is not a secret in the cryptographic sense, but nothing needs it outside the ledger.
function withoutHash(token: ApiToken): Omit<ApiToken, "secretSha256"> {
  const { secretSha256: _, ...rest } = token;
  return rest;
}
