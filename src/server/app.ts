// The HTTP API of `antidote serve`, composed the way Hono composes: middleware factories,
// then one small route factory per resource, all mounted under /v1. Every /v1 request is
// authenticated (bearer token), rate-limited per token and size-limited; every mutating one
// must carry a fresh Antidote-Request-Id; each route then checks its own permission and the
// content type it reads. Failures of every kind leave as one JSON shape (errors.ts), and
// the OpenAPI 3.1 document at /openapi.json is generated from the routes' zod schemas.
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { VERSION } from "../version.js";
import { HttpError, errorResponse, zodMessage } from "./errors.js";
import { bearerAuth } from "./middleware/auth.js";
import { sizeLimit } from "./middleware/body-limit.js";
import { requestLogger } from "./middleware/logger.js";
import { rateLimit } from "./middleware/rate-limit.js";
import { REQUEST_ID_HEADER, replayGuard } from "./middleware/replay.js";
import { dashboard } from "./dashboard.js";
import { BEARER } from "./openapi.js";
import { decisionRoutes } from "./routes/decisions.js";
import { deliveryRoutes } from "./routes/deliveries.js";
import { findingRoutes } from "./routes/findings.js";
import { fleetRoutes } from "./routes/fleet.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { ledgerRoutes } from "./routes/ledger.js";
import { overviewRoutes } from "./routes/overview.js";
import { modelRoutes } from "./routes/models.js";
import { modelStatusRoutes } from "./routes/model-status.js";
import { sourceRoutes } from "./routes/sources.js";
import { policyRoutes } from "./routes/policy.js";
import { evidenceRoutes } from "./routes/evidence.js";
import { telemetryRoutes } from "./routes/telemetry.js";
import { tokenRoutes } from "./routes/tokens.js";
import { traceRoutes } from "./routes/trace.js";
import { versionRoutes } from "./routes/versions.js";
import { DEFAULT_LIMITS, type AppDeps, type AppEnv } from "./types.js";

export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const limits = { ...DEFAULT_LIMITS, ...deps.limits };
  const log = deps.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const now = deps.now ?? (() => new Date());
  const { ledger } = deps;

  const app = new OpenAPIHono<AppEnv>({ defaultHook: invalidRequest });
  app.onError((e, c) => errorResponse(c, e, log));
  app.notFound((c) =>
    c.json({ error: { code: "NOT_FOUND", message: `no route for ${c.req.method} ${c.req.path}.` } }, 404),
  );
  app.use("*", requestLogger(log));

  app.route("/", healthRoutes(ledger));

  app.use(
    "/v1/*",
    bearerAuth(ledger, now),
    rateLimit({ perSecond: limits.ratePerSecond, burst: limits.rateBurst, now }),
    sizeLimit(limits, [{ method: "POST", path: "/v1/telemetry", maxBytes: limits.maxTelemetryBytes }]),
    replayGuard(deps.requestIds, now),
  );
  const uploads = { limits, uploadDir: deps.uploadDir };
  app.route("/v1", sourceRoutes(ledger));
  app.route("/v1", policyRoutes(ledger));
  app.route("/v1", traceRoutes(ledger));
  app.route("/v1", deliveryRoutes(ledger, { ...uploads, ingest: deps.ingest, log }));
  app.route("/v1", versionRoutes(ledger));
  app.route("/v1", findingRoutes(ledger));
  app.route("/v1", decisionRoutes(ledger));
  app.route("/v1", modelRoutes(ledger));
  app.route("/v1", modelStatusRoutes(ledger));
  app.route("/v1", evidenceRoutes(ledger));
  app.route(
    "/v1",
    telemetryRoutes(ledger, {
      ...(deps.telemetryChecks !== undefined ? { checkRecords: deps.telemetryChecks } : {}),
      ...(deps.onTelemetryAccepted !== undefined ? { onAccepted: deps.onTelemetryAccepted } : {}),
    }),
  );
  app.route("/v1", fleetRoutes(ledger));
  app.route("/v1", ledgerRoutes(ledger));
  app.route("/v1", tokenRoutes(ledger, now));
  app.route("/v1", jobRoutes(deps.jobs, { ...uploads, log }));
  app.route("/v1", overviewRoutes(ledger));

  app.openAPIRegistry.registerComponent("securitySchemes", BEARER, {
    type: "http",
    scheme: "bearer",
    description: "An API token made with `antidote token create` (adt_<id>_<secret>).",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Antidote",
      version: VERSION,
      description:
        "Antidote as a service: signed deliveries and agents' telemetry verified before anything is written, a hash-chained " +
        `ledger, trace, findings, decisions, models (and their suspension) and jobs. Every mutating request carries a fresh ${REQUEST_ID_HEADER}; ` +
        'every error is { "error": { "code", "message" } }.',
    },
  });
  // The web dashboard's files and pages (last, as a middleware: it sees only what no API route
  // answered, and adds no route to the API).
  app.use("*", dashboard());
  return app;
}

// A request that fails its route's schema: 400 naming the first field at fault.
function invalidRequest(
  result: { success: boolean; error?: unknown; target?: string },
  _c: Context,
): undefined {
  if (result.success) return undefined;
  const where = { json: "body", query: "query", param: "path", header: "header", form: "form" }[
    result.target ?? "json"
  ];
  throw new HttpError(
    400,
    "USAGE",
    result.error instanceof Error && "issues" in result.error
      ? zodMessage(result.error as Parameters<typeof zodMessage>[0], where ?? "request")
      : "the request does not match its schema.",
  );
}
