// GET /healthz: the process is up and its ledger answers. No token needed, nothing revealed
// but the version.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { LedgerReader } from "../../ledger/types.js";
import { VERSION } from "../../version.js";
import { json } from "../openapi.js";
import type { AppEnv } from "../types.js";

const health = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["health"],
  summary: "Liveness: the server and its ledger answer",
  responses: {
    200: json(z.object({ ok: z.literal(true), version: z.string() }), "Healthy"),
    503: json(z.object({ ok: z.literal(false), version: z.string() }), "The ledger does not answer"),
  },
});

export function healthRoutes(ledger: LedgerReader): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(health, async (c) => {
    // A cheap read: the token table is small and always there.
    const up = await ledger.getToken("0000000000000000").then(
      () => true,
      () => false,
    );
    return up
      ? c.json({ ok: true as const, version: VERSION }, 200)
      : c.json({ ok: false as const, version: VERSION }, 503);
  });
  return app;
}
