// /v1/telemetry: deployed agents send signed telemetry batches; people read what was accepted
// and refused, and quarantine batches. A batch goes through `ingestTelemetry` exactly as
// `antidote telemetry ingest` takes it offline: the envelope's signature against the agent's
// current keys, the statement, the records' digest, the attested model, the window, the
// sequence and every record — before anything is stored or appended. An agent token sends only
// as its own agent (the intake checks the binding before it reads the signature). A refused
// batch is recorded with its reason (monitor/refusals.ts: an operational table, never a ledger
// event) and answered 4xx with the refusal's code; failures of the request itself (no token, a
// role without the permission, a body that is not JSON or over the limit) are not batches and
// are not recorded.
//
// The upload is read by the intake, not by the route's schema: a malformed batch must be a
// counted refusal attributed to the agent it names, not a bare 400. The schema is still the
// documented request body (registered with the OpenAPI document by hand).
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import { z } from "zod";
import { formatRole, hasPermission } from "../../auth/roles.js";
import type { Authenticated } from "../../auth/tokens.js";
import type { Ledger, TelemetryBatchRecord } from "../../ledger/types.js";
import { quarantineTelemetry, releaseTelemetry } from "../../monitor/containment.js";
import { ingestTelemetry } from "../../monitor/intake.js";
import type { RecordsCheck } from "../../monitor/intake-thread.js";
import {
  TELEMETRY_REFUSAL_CODES,
  telemetryRefusalCounts,
  telemetryRefusals,
} from "../../monitor/refusals.js";
import { telemetryUploadSchema } from "../../monitor/schema.js";
import { HttpError } from "../errors.js";
import { contentType } from "../middleware/content-type.js";
import { requirePermission } from "../middleware/permission.js";
import { errors, guard, json, jsonBody, security } from "../openapi.js";
import { pageOf } from "../schemas.js";
import type { AppEnv } from "../types.js";

const iso = z.string();

export const telemetryBatchSchema = z
  .object({
    batchId: z.string().describe('"<agent>#<sequence>"'),
    agent: z.string(),
    sequence: z.number().int(),
    keyId: z.string().describe("The agent's key that signed the batch"),
    model: z.string().describe("Digest of the model the agent attests it runs"),
    window: z.object({ start: iso, end: iso }),
    classes: z.array(z.string()),
    recordsSha256: z.string(),
    count: z.number().int(),
    feedbackCount: z.number().int(),
    bytes: z.number().int(),
    store: z.string(),
    gap: z
      .object({ expected: z.number().int(), got: z.number().int() })
      .nullable()
      .describe("Set when the sequence skipped numbers"),
    quarantined: z.boolean().describe("Quarantined directly or through its agent"),
    seq: z.number().int().describe("The telemetry.accepted event's ledger seq"),
    at: iso.describe("When the ledger accepted it"),
  })
  .openapi("TelemetryBatch");

const refusalSchema = z
  .object({
    id: z.number().int(),
    at: iso,
    agent: z.string().describe("The agent the batch claimed to be from"),
    principal: z.string(),
    code: z.enum(TELEMETRY_REFUSAL_CODES),
    message: z.string(),
  })
  .openapi("TelemetryRefusal");

const refusalCountSchema = z
  .object({
    agent: z.string().describe('A registered source, or "" for names that are not'),
    code: z.enum(TELEMETRY_REFUSAL_CODES),
    refusals: z.number().int(),
    lastAt: iso,
  })
  .openapi("TelemetryRefusalCount");

// Rebuilt here: zod attaches .openapi to schemas made after @hono/zod-openapi loads, and
// monitor/schema.ts does not depend on the server.
const uploadDoc = z.object(telemetryUploadSchema.shape).openapi("TelemetryUpload", {
  description:
    "A batch: the DSSE envelope over the statement (agent, sequence, window, model, classes, records' SHA-256, count and bytes) and the JSONL records as UTF-8 text. See docs/telemetry.md.",
});

const batchQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().min(1).max(300).optional().describe("nextCursor of the previous page (a batch id)"),
  agent: z.string().min(1).max(200).optional(),
  model: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "a model digest")
    .optional(),
  since: z.iso.datetime({ offset: true }).optional(),
});

const batches = createRoute({
  method: "get",
  path: "/telemetry/batches",
  tags: ["telemetry"],
  summary: "Accepted telemetry batches, in the order accepted (an agent token sees its own)",
  security,
  request: { query: batchQuery },
  responses: {
    200: json(pageOf(telemetryBatchSchema, "TelemetryBatchPage"), "A page of batches"),
    ...errors(400),
  },
});

const refusals = createRoute({
  method: "get",
  path: "/telemetry/refusals",
  tags: ["telemetry"],
  summary:
    "Refused telemetry batches, newest first, with the counts per agent and code (an agent token sees its own)",
  security,
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: z
        .string()
        .regex(/^[1-9]\d{0,15}$/, "the nextCursor of the previous page")
        .optional(),
      agent: z.string().min(1).max(200).optional(),
    }),
  },
  responses: {
    200: json(
      z
        .object({
          items: z.array(refusalSchema),
          nextCursor: z.string().nullable(),
          counts: z.array(refusalCountSchema),
        })
        .openapi("TelemetryRefusalPage"),
      "A page of refusals and the counts",
    ),
    ...errors(400),
  },
});

const quarantineBody = z
  .object({
    action: z.enum(["quarantine", "release"]).default("quarantine"),
    batches: z.array(z.string().min(1).max(300)).min(1).max(10_000),
    reason: z.string().min(1).max(2_000),
  })
  .openapi("TelemetryDecision");

const quarantine = createRoute({
  method: "post",
  path: "/telemetry/quarantine",
  tags: ["telemetry"],
  summary: "Quarantine (or release) accepted telemetry batches: the closed-loop gate leaves them out",
  security,
  middleware: guard("decide", "application/json"),
  request: { body: jsonBody(quarantineBody) },
  responses: {
    201: json(
      z
        .object({
          action: z.enum(["quarantine", "release"]),
          batchIds: z.array(z.string()),
          actor: z.string(),
          reason: z.string(),
        })
        .openapi("TelemetryDecisionResult"),
      "The recorded decision",
    ),
    ...errors(400, 404, 413, 415),
  },
});

export function telemetryRoutes(
  ledger: Ledger,
  options: {
    checkRecords?: RecordsCheck;
    /** Told of each accepted batch after it is recorded (the server runs its monitors). */
    onAccepted?: (batch: TelemetryBatchRecord) => void;
  } = {},
): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

  app.openAPIRegistry.registerPath({
    method: "post",
    path: "/telemetry",
    tags: ["telemetry"],
    summary:
      "Send a signed telemetry batch; it is verified (signature, agent, model, window, sequence, records) before anything is written",
    security,
    request: { body: jsonBody(uploadDoc) },
    responses: {
      201: json(telemetryBatchSchema, "Accepted and recorded (gap set when sequence numbers were skipped)"),
      ...errors(400, 404, 409, 413, 415, 422),
    },
  });
  app.post("/telemetry", requirePermission("telemetry"), contentType("application/json"), async (c) => {
    const auth = c.get("auth");
    const upload = await readJson(c);
    const batch = await ingestTelemetry(ledger, upload, {
      principal: auth.principal,
      boundAgent: auth.role === "agent" ? (auth.source ?? "") : null,
      ...(options.checkRecords !== undefined ? { checkRecords: options.checkRecords } : {}),
    });
    options.onAccepted?.(batch);
    return c.json(batch, 201);
  });

  app.openapi(batches, async (c) => {
    const q = c.req.valid("query");
    const agent = readableAgent(c.get("auth"), q.agent);
    const items = await ledger.listTelemetryBatches({
      limit: q.limit + 1,
      ...(agent !== undefined ? { agent } : {}),
      ...(q.model !== undefined ? { model: q.model } : {}),
      ...(q.since !== undefined ? { since: q.since } : {}),
      ...(q.cursor !== undefined ? { after: q.cursor } : {}),
    });
    const shown = items.slice(0, q.limit);
    const last = shown[shown.length - 1];
    return c.json(
      { items: shown, nextCursor: items.length > q.limit && last !== undefined ? last.batchId : null },
      200,
    );
  });

  app.openapi(refusals, async (c) => {
    const q = c.req.valid("query");
    const agent = readableAgent(c.get("auth"), q.agent);
    const items = await telemetryRefusals(ledger, {
      limit: q.limit + 1,
      ...(agent !== undefined ? { agent } : {}),
      ...(q.cursor !== undefined ? { before: Number(q.cursor) } : {}),
    });
    const shown = items.slice(0, q.limit);
    const last = shown[shown.length - 1];
    const counts = await telemetryRefusalCounts(ledger, agent !== undefined ? { agent } : {});
    return c.json(
      {
        items: shown,
        nextCursor: items.length > q.limit && last !== undefined ? String(last.id) : null,
        counts,
      },
      200,
    );
  });

  app.openapi(quarantine, async (c) => {
    const body = c.req.valid("json");
    const decide = body.action === "release" ? releaseTelemetry : quarantineTelemetry;
    return c.json(await decide(ledger, body.batches, body.reason, c.get("auth").principal), 201);
  });

  return app;
}

/** The JSON body, or a 400 that is not a refusal (no batch was read, so no agent is known). */
async function readJson(c: Context<AppEnv>): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, "INPUT_FORMAT", "the request body is not valid JSON.");
  }
}

/** Whose telemetry `auth` may read: any agent's with "read"; an agent token its own only. */
function readableAgent(auth: Authenticated, asked: string | undefined): string | undefined {
  if (hasPermission(auth.role, "read")) return asked;
  if (hasPermission(auth.role, "telemetry") && auth.source !== null) {
    if (asked !== undefined && asked !== auth.source)
      throw new HttpError(
        403,
        "FORBIDDEN",
        `a ${formatRole(auth)} token reads only its own agent's telemetry.`,
      );
    return auth.source;
  }
  throw new HttpError(403, "FORBIDDEN", `a ${formatRole(auth)} token may not read telemetry.`);
}
