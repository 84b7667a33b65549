// /v1/versions: dataset versions, paginated, and a version's members (sample records with
// their source and quarantine state), paginated by digest.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Ledger } from "../../ledger/types.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, page, security } from "../openapi.js";
import { datasetVersionSchema, memberSchema, pageOf, pageQuery } from "../schemas.js";
import type { AppEnv } from "../types.js";

const versionParam = z.object({ version: z.string().min(1).max(300) });

const list = createRoute({
  method: "get",
  path: "/versions",
  tags: ["datasets"],
  summary: "List dataset versions, oldest first",
  security,
  middleware: guard("read"),
  request: { query: pageQuery },
  responses: {
    200: json(pageOf(datasetVersionSchema, "DatasetVersionPage"), "A page of versions"),
    ...errors(400),
  },
});

const get = createRoute({
  method: "get",
  path: "/versions/{version}",
  tags: ["datasets"],
  summary: "One dataset version",
  security,
  middleware: guard("read"),
  request: { params: versionParam },
  responses: { 200: json(datasetVersionSchema, "The version"), ...errors(404) },
});

const members = createRoute({
  method: "get",
  path: "/versions/{version}/members",
  tags: ["datasets"],
  summary: "A version's member samples in digest order (cursor: the last digest of the previous page)",
  security,
  middleware: guard("read"),
  request: { params: versionParam, query: pageQuery },
  responses: { 200: json(pageOf(memberSchema, "MemberPage"), "A page of members"), ...errors(400, 404) },
});

export function versionRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(list, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    return c.json(
      page(await ledger.listDatasetVersions(), (v) => v.version, limit, cursor),
      200,
    );
  });
  app.openapi(get, async (c) => c.json(await requireVersion(ledger, c.req.valid("param").version), 200));
  app.openapi(members, async (c) => {
    const { version } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    await requireVersion(ledger, version);
    // Members are keyed by digest, so the cursor is a digest: the reader starts after it (an
    // indexed range read, as fast on the last page of 60,000 as on the first) and reads one
    // more than a page to say whether there is a next one.
    const items = [];
    let more = false;
    const after = cursor === undefined ? {} : { after: cursor };
    for await (const member of ledger.datasetMembers(version, { ...after, limit: limit + 1 })) {
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(member);
    }
    const last = items[items.length - 1];
    return c.json({ items, nextCursor: more && last !== undefined ? last.digest : null }, 200);
  });
  return app;
}

async function requireVersion(ledger: Ledger, version: string) {
  const found = await ledger.getDatasetVersion(version);
  if (found === undefined)
    throw new HttpError(404, "NOT_FOUND", `dataset version "${version}" is not in the ledger.`);
  return found;
}
