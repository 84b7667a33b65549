// /v1/ledger: whether the ledger verifies (every hash, link, tree head, checkpoint signature
// and derived table recomputed) and its signed head, to publish as a witness elsewhere.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import type { LedgerReader } from "../../ledger/types.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, security } from "../openapi.js";
import { signedHeadSchema, verifyReportSchema } from "../schemas.js";
import type { AppEnv } from "../types.js";

const verify = createRoute({
  method: "get",
  path: "/ledger/verify",
  tags: ["ledger"],
  summary: "Verify the whole ledger (reads everything: slow on large ledgers)",
  security,
  middleware: guard("read"),
  responses: { 200: json(verifyReportSchema, "The report; ok false says what failed"), ...errors(503) },
});

const head = createRoute({
  method: "get",
  path: "/ledger/head",
  tags: ["ledger"],
  summary: "The latest signed checkpoint with its public key",
  security,
  middleware: guard("read"),
  responses: { 200: json(signedHeadSchema, "The signed tree head"), ...errors(404) },
});

export function ledgerRoutes(ledger: LedgerReader): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(verify, async (c) => c.json(await ledger.verify(), 200));
  app.openapi(head, async (c) => {
    const signed = await ledger.signedHead();
    if (signed === undefined)
      throw new HttpError(404, "NOT_FOUND", "the ledger has no signed checkpoint yet.");
    return c.json(signed, 200);
  });
  return app;
}
