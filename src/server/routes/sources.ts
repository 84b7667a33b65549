// /v1/sources: who may deliver data — list and read sources, register one, add a key,
// revoke a key. Writes go through provenance/sources.ts, as `antidote source …` does, with
// the token's principal as the actor.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Ledger } from "../../ledger/types.js";
import { addSource, addSourceKey, revokeSourceKey } from "../../provenance/sources.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, jsonBody, security } from "../openapi.js";
import { addKeyBody, addSourceBody, reasonBody, sourceSchema } from "../schemas.js";
import type { AppEnv } from "../types.js";

const nameParam = z.object({ name: z.string().min(1).max(200) });

const list = createRoute({
  method: "get",
  path: "/sources",
  tags: ["sources"],
  summary: "List registered sources with their keys and policy",
  security,
  middleware: guard("read"),
  responses: { 200: json(z.array(sourceSchema), "The sources"), ...errors() },
});

const get = createRoute({
  method: "get",
  path: "/sources/{name}",
  tags: ["sources"],
  summary: "One source",
  security,
  middleware: guard("read"),
  request: { params: nameParam },
  responses: { 200: json(sourceSchema, "The source"), ...errors(404) },
});

const add = createRoute({
  method: "post",
  path: "/sources",
  tags: ["sources"],
  summary: "Register a source with its Ed25519 public keys and signature policy",
  security,
  middleware: guard("sources:write", "application/json"),
  request: { body: jsonBody(addSourceBody) },
  responses: { 201: json(sourceSchema, "The registered source"), ...errors(400, 409, 413, 415) },
});

const addKey = createRoute({
  method: "post",
  path: "/sources/{name}/keys",
  tags: ["sources"],
  summary: "Add a signing key (rotation: add the new key, then revoke the old one)",
  security,
  middleware: guard("sources:write", "application/json"),
  request: { params: nameParam, body: jsonBody(addKeyBody) },
  responses: { 201: json(sourceSchema, "The source with its keys"), ...errors(400, 404, 413, 415, 422) },
});

const revokeKey = createRoute({
  method: "delete",
  path: "/sources/{name}/keys/{keyId}",
  tags: ["sources"],
  summary: "Revoke a key (id or unique prefix): deliveries signed with it are refused from now on",
  security,
  middleware: guard("sources:write", "application/json"),
  request: {
    params: nameParam.extend({
      keyId: z.string().regex(/^[0-9a-fA-F]{4,64}$/, "a key id or a prefix of one"),
    }),
    body: jsonBody(reasonBody),
  },
  responses: {
    200: json(sourceSchema, "The source with its keys (revoking a revoked key writes nothing)"),
    ...errors(400, 404, 413, 415),
  },
});

export function sourceRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(list, async (c) => c.json(await ledger.listSources(), 200));
  app.openapi(get, async (c) => c.json(await requireSource(ledger, c.req.valid("param").name), 200));
  app.openapi(add, async (c) => {
    const body = c.req.valid("json");
    const actor = c.get("auth").principal;
    await addSource(
      ledger,
      {
        name: body.name,
        kind: body.kind,
        trust: body.trust,
        requireSignature: body.requireSignature,
        publicKeysPem: body.keys,
      },
      { actor },
    );
    return c.json(await requireSource(ledger, body.name), 201);
  });
  app.openapi(addKey, async (c) => {
    const { name } = c.req.valid("param");
    await addSourceKey(ledger, name, c.req.valid("json").publicKeyPem, { actor: c.get("auth").principal });
    return c.json(await requireSource(ledger, name), 201);
  });
  app.openapi(revokeKey, async (c) => {
    const { name, keyId } = c.req.valid("param");
    await revokeSourceKey(ledger, name, keyId, c.req.valid("json").reason, {
      actor: c.get("auth").principal,
    });
    return c.json(await requireSource(ledger, name), 200);
  });
  return app;
}

async function requireSource(ledger: Ledger, name: string) {
  const source = await ledger.getSource(name);
  if (source === undefined) throw new HttpError(404, "SOURCE_UNKNOWN", `source "${name}" is not registered.`);
  return source;
}
