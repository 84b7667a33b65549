// GET /v1/evidence?model=…|dataset=…: the evidence pack's JSON (src/evidence/) for a dashboard or
// a GRC tool. Unsigned here: the signed pack, with its HTML, OSCAL and PDF, is what
// `antidote evidence --out` writes with the ledger's key; this answer carries the same signed
// ledger checkpoint, so a reader can still check it against `GET /v1/ledger/head`.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { buildEvidencePack, evidencePackSchema } from "../../evidence/index.js";
import type { LedgerReader } from "../../ledger/types.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, security } from "../openapi.js";
import type { AppEnv } from "../types.js";

const evidence = createRoute({
  method: "get",
  path: "/evidence",
  tags: ["evidence"],
  summary: "The evidence pack for one model (digest or unique prefix) or one dataset version",
  security,
  middleware: guard("read"),
  request: {
    query: z.object({
      model: z.string().min(4).max(64).optional(),
      dataset: z.string().min(1).max(500).optional(),
    }),
  },
  responses: { 200: json(evidencePackSchema, "The evidence pack (evidence.json)"), ...errors(400, 404) },
});

export function evidenceRoutes(ledger: LedgerReader): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(evidence, async (c) => {
    const { model, dataset } = c.req.valid("query");
    if ((model === undefined) === (dataset === undefined))
      throw new HttpError(400, "USAGE", "give exactly one of the query parameters model or dataset.");
    const target = model !== undefined ? { model } : { dataset: dataset as string };
    return c.json(await buildEvidencePack(ledger, target), 200);
  });
  return app;
}
