// Blast radius and a sample's story: GET /v1/sources/{name}/trace (every sample, version and
// model a source reached) and GET /v1/samples/{id}/trace (by sample id or digest).
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Ledger } from "../../ledger/types.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, security } from "../openapi.js";
import { sampleTraceSchema, sourceTraceSchema } from "../schemas.js";
import type { AppEnv } from "../types.js";

const source = createRoute({
  method: "get",
  path: "/sources/{name}/trace",
  tags: ["trace"],
  summary: "Blast radius of a source: its deliveries, samples (up to limit), versions and models",
  security,
  middleware: guard("read"),
  request: {
    params: z.object({ name: z.string().min(1).max(200) }),
    query: z.object({ limit: z.coerce.number().int().min(0).max(100_000).default(1000) }),
  },
  responses: { 200: json(sourceTraceSchema, "The source's trace"), ...errors(400, 404) },
});

const sample = createRoute({
  method: "get",
  path: "/samples/{id}/trace",
  tags: ["trace"],
  summary: "A sample's origins, transforms, versions, findings and decisions",
  security,
  middleware: guard("read"),
  request: { params: z.object({ id: z.string().min(1).max(500) }) },
  responses: { 200: json(sampleTraceSchema, "The sample's trace"), ...errors(404) },
});

export function traceRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(source, async (c) =>
    c.json(await ledger.traceSource(c.req.valid("param").name, { limit: c.req.valid("query").limit }), 200),
  );
  app.openapi(sample, async (c) => {
    const { id } = c.req.valid("param");
    const trace = await ledger.traceSample(id);
    if (trace === undefined) throw new HttpError(404, "NOT_FOUND", `sample "${id}" is not in the ledger.`);
    return c.json(trace, 200);
  });
  return app;
}
