// What the dashboard asks that the resource routes do not answer in one request: who the
// token speaks for (GET /v1/whoami, so a page shows only the actions its role may take —
// the routes' own permission checks stay the defence), the ledger at a glance
// (GET /v1/overview), sources ranked by risk (paginated), one source's risk, samples
// (keyset-paginated) and blast radius as a graph, and a version's composition. Every answer
// is computed by the library (provenance/overview.ts, ledger/insights.ts); this file only
// validates the request and shapes the reply.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { PERMISSIONS, ROLE_PERMISSIONS } from "../../auth/roles.js";
import type { Ledger } from "../../ledger/types.js";
import { SOURCE_KINDS } from "../../ledger/types.js";
import { ledgerOverview } from "../../provenance/overview.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, page, security } from "../openapi.js";
import { deliveryRefusalSchema, deliverySchema, pageOf, pageQuery } from "../schemas.js";
import type { AppEnv } from "../types.js";

// ── shapes (mirroring ledger/types.ts; `satisfies` below keeps them in step) ─────────────
const whoamiSchema = z
  .object({
    tokenId: z.string(),
    principal: z.string(),
    role: z.enum(["admin", "analyst", "supplier", "agent", "reader"]),
    source: z.string().nullable(),
    expiresAt: z.string().nullable(),
    permissions: z.array(z.enum(PERMISSIONS)),
  })
  .openapi("WhoAmI");

const sourceRiskSchema = z
  .object({
    name: z.string(),
    kind: z.enum(SOURCE_KINDS),
    trust: z.number(),
    samples: z.number(),
    deliveries: z.number(),
    lastDeliveryAt: z.string().nullable(),
    flaggedSamples: z.number(),
    flagRate: z.number(),
    latestFlagRate: z.number(),
    sourceScore: z.number().nullable(),
    quarantined: z.boolean(),
    trend: z.array(z.object({ at: z.string(), flagged: z.number(), rate: z.number() })),
  })
  .openapi("SourceRisk");

const findingCountSchema = z
  .object({
    kind: z.string(),
    subjectType: z.string(),
    findings: z.number(),
    subjects: z.number(),
    open: z.number(),
  })
  .openapi("FindingCount");

const overviewSchema = z
  .object({
    ledger: z.object({
      events: z.number(),
      lastEventAt: z.string().nullable(),
      checkpoints: z.number(),
      head: z
        .object({ seq: z.number(), at: z.string(), keyId: z.string(), root: z.string().nullable() })
        .nullable(),
    }),
    quarantine: z.object({ sources: z.number(), samples: z.number() }),
    findings: z.array(findingCountSchema),
    sources: z.object({ total: z.number(), flagged: z.number(), riskiest: z.array(sourceRiskSchema) }),
    deliveries: z.object({
      total: z.number(),
      latest: z.array(deliverySchema),
      refused: z.array(deliveryRefusalSchema),
    }),
    versions: z.number(),
    models: z.number(),
  })
  .openapi("Overview");

const sampleSummarySchema = z
  .object({
    id: z.string(),
    digest: z.string(),
    label: z.string().nullable(),
    annotations: z.array(z.object({ annotator: z.string(), label: z.string() })),
    quarantined: z.boolean(),
    findings: z.number(),
    topScore: z.number().nullable(),
  })
  .openapi("SampleSummary");

const sourceRiskDetailSchema = sourceRiskSchema
  .extend({ annotators: z.array(z.object({ annotator: z.string(), samples: z.number() })) })
  .openapi("SourceRiskDetail");

const blastRadiusSchema = z
  .object({
    source: z.string(),
    quarantined: z.boolean(),
    nodes: z.array(
      z.object({
        id: z.string(),
        type: z.enum(["source", "delivery", "version", "model"]),
        key: z.string(),
        label: z.string(),
        fromSource: z.number(),
        total: z.number(),
        quarantined: z.number(),
      }),
    ),
    edges: z.array(z.object({ from: z.string(), to: z.string(), samples: z.number() })),
  })
  .openapi("BlastRadius");

const versionSummarySchema = z
  .object({
    version: z.string(),
    bySource: z.array(z.object({ source: z.string(), samples: z.number() })),
    byLabel: z.array(z.object({ label: z.string().nullable(), samples: z.number() })),
    flagged: z.number(),
    quarantined: z.number(),
    children: z.array(z.string()),
    models: z.array(z.string()),
  })
  .openapi("VersionSummary");

const nameParam = z.object({ name: z.string().min(1).max(200) });
const digestCursor = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "the nextCursor of the previous page")
  .optional();

// ── routes ───────────────────────────────────────────────────────────────────────────────
const whoami = createRoute({
  method: "get",
  path: "/whoami",
  tags: ["auth"],
  summary: "Who this token speaks for: principal, role, bound source, expiry and permissions",
  security,
  responses: { 200: json(whoamiSchema, "The token's grant (never its secret)"), ...errors() },
});

const overview = createRoute({
  method: "get",
  path: "/overview",
  tags: ["overview"],
  summary:
    "The ledger at a glance: chain head, riskiest sources, latest deliveries (verified and refused), open findings, quarantine",
  security,
  middleware: guard("read"),
  request: {
    query: z.object({
      top: z.coerce.number().int().min(0).max(100).default(10),
      latest: z.coerce.number().int().min(0).max(100).default(10),
    }),
  },
  responses: { 200: json(overviewSchema, "The overview"), ...errors(400) },
});

const risks = createRoute({
  method: "get",
  path: "/risk/sources",
  tags: ["overview"],
  summary:
    "Sources ranked riskiest first, with their flag rate per scan (cursor: the previous page's last name)",
  security,
  middleware: guard("read"),
  request: { query: pageQuery },
  responses: { 200: json(pageOf(sourceRiskSchema, "SourceRiskPage"), "A page of sources"), ...errors(400) },
});

const risk = createRoute({
  method: "get",
  path: "/sources/{name}/risk",
  tags: ["overview"],
  summary: "One source's risk: flagged samples, flag rate per scan, annotators",
  security,
  middleware: guard("read"),
  request: { params: nameParam },
  responses: { 200: json(sourceRiskDetailSchema, "The source's risk"), ...errors(404) },
});

const samples = createRoute({
  method: "get",
  path: "/sources/{name}/samples",
  tags: ["overview"],
  summary:
    "A source's samples in digest order, with their findings (cursor: the previous page's last digest)",
  security,
  middleware: guard("read"),
  request: { params: nameParam, query: pageQuery.extend({ cursor: digestCursor }) },
  responses: {
    200: json(pageOf(sampleSummarySchema, "SampleSummaryPage"), "A page of samples"),
    ...errors(400, 404),
  },
});

const blast = createRoute({
  method: "get",
  path: "/sources/{name}/blast-radius",
  tags: ["trace"],
  summary: "What a source reached, as a graph: deliveries, versions, derived versions, models, with counts",
  security,
  middleware: guard("read"),
  request: { params: nameParam },
  responses: { 200: json(blastRadiusSchema, "The graph"), ...errors(404) },
});

const versionSummary = createRoute({
  method: "get",
  path: "/versions/{version}/summary",
  tags: ["datasets"],
  summary:
    "A version's members per source and per label, flagged and quarantined counts, derived versions, models",
  security,
  middleware: guard("read"),
  request: { params: z.object({ version: z.string().min(1).max(300) }) },
  responses: { 200: json(versionSummarySchema, "The summary"), ...errors(404) },
});

export function overviewRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(whoami, (c) => {
    const { tokenId, principal, role, source, expiresAt } = c.get("auth");
    return c.json(
      { tokenId, principal, role, source, expiresAt, permissions: [...ROLE_PERMISSIONS[role]] },
      200,
    );
  });
  app.openapi(overview, async (c) => c.json(await ledgerOverview(ledger, c.req.valid("query")), 200));
  app.openapi(risks, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    return c.json(
      page(await ledger.sourceRisks(), (r) => r.name, limit, cursor),
      200,
    );
  });
  app.openapi(risk, async (c) => {
    const { name } = c.req.valid("param");
    const [found] = await ledger.sourceRisks({ source: name });
    if (found === undefined) throw unknownSource(name);
    return c.json({ ...found, annotators: await ledger.sourceAnnotators(name) }, 200);
  });
  app.openapi(samples, async (c) => {
    const { name } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    if ((await ledger.getSource(name)) === undefined) throw unknownSource(name);
    return c.json(
      await ledger.sourceSamples(name, { limit, ...(cursor !== undefined ? { after: cursor } : {}) }),
      200,
    );
  });
  app.openapi(blast, async (c) => {
    const { name } = c.req.valid("param");
    if ((await ledger.getSource(name)) === undefined) throw unknownSource(name);
    return c.json(await ledger.blastRadius(name), 200);
  });
  app.openapi(versionSummary, async (c) => {
    const { version } = c.req.valid("param");
    if ((await ledger.getDatasetVersion(version)) === undefined)
      throw new HttpError(404, "NOT_FOUND", `dataset version "${version}" is not in the ledger.`);
    return c.json(await ledger.versionSummary(version), 200);
  });
  return app;
}

function unknownSource(name: string): HttpError {
  return new HttpError(404, "SOURCE_UNKNOWN", `source "${name}" is not registered.`);
}
