// /v1/findings: what the checks found, in ledger order, filtered by subject type and
// minimum score; the cursor is the ledger sequence number of the previous page's last one.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Ledger } from "../../ledger/types.js";
import { findingSchema } from "../../ledger/schemas.js";
import { errors, guard, json, security } from "../openapi.js";
import { findingRecordSchema, pageOf, pageQuery } from "../schemas.js";
import type { AppEnv } from "../types.js";

const list = createRoute({
  method: "get",
  path: "/findings",
  tags: ["findings"],
  summary: "List findings (paginated), optionally by subject type and minimum score",
  security,
  middleware: guard("read"),
  request: {
    query: pageQuery.extend({
      cursor: z
        .string()
        .regex(/^\d{1,15}$/, "the nextCursor of the previous page")
        .optional(),
      subjectType: findingSchema.shape.subjectType.optional(),
      minScore: z.coerce.number().optional(),
    }),
  },
  responses: { 200: json(pageOf(findingRecordSchema, "FindingPage"), "A page of findings"), ...errors(400) },
});

export function findingRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(list, async (c) => {
    const { limit, cursor, subjectType, minScore } = c.req.valid("query");
    const after = cursor === undefined ? 0 : Number(cursor);
    const items = [];
    let more = false;
    for await (const finding of ledger.findings({ subjectType, minScore })) {
      if (finding.seq <= after) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(finding);
    }
    const last = items[items.length - 1];
    return c.json({ items, nextCursor: more && last !== undefined ? String(last.seq) : null }, 200);
  });
  return app;
}
