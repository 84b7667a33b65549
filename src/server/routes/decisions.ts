// POST /v1/decisions: quarantine or release sources and samples, through the same library
// function as `antidote quarantine`/`release`; the decision's actor is the token's principal.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import type { Ledger } from "../../ledger/types.js";
import { recordDecision } from "../../provenance/decisions.js";
import { errors, guard, json, jsonBody, security } from "../openapi.js";
import { decisionBody, decisionResultSchema } from "../schemas.js";
import type { AppEnv } from "../types.js";

const decide = createRoute({
  method: "post",
  path: "/decisions",
  tags: ["decisions"],
  summary: "Quarantine or release sources, samples, or every sample with a finding over a score",
  security,
  middleware: guard("decide", "application/json"),
  request: { body: jsonBody(decisionBody) },
  responses: { 201: json(decisionResultSchema, "The recorded decision"), ...errors(400, 404, 413, 415) },
});

export function decisionRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(decide, async (c) => {
    const principal = c.get("auth").principal;
    return c.json(await recordDecision(ledger, c.req.valid("json"), { actor: principal }), 201);
  });
  return app;
}
