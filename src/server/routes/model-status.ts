// /v1/models/{digest}/status, /suspend, /resume: containment of a deployed model. A suspended
// model stays registered (its lineage is evidence); its status says suspended, since when, why
// and who decided, and deployments poll the status with whatever token they hold — an agent
// token included — to stop serving it. Suspending and resuming are decisions (analyst, admin),
// recorded under the token's principal.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Ledger } from "../../ledger/types.js";
import { resumeModel, suspendModel } from "../../monitor/containment.js";
import { resolveModel } from "../../provenance/model.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, jsonBody, security } from "../openapi.js";
import { reasonBody } from "../schemas.js";
import type { AppEnv } from "../types.js";

const digestParam = z.object({
  digest: z.string().regex(/^[0-9a-fA-F]{8,64}$/, "a model digest (hex; a unique prefix will do)"),
});

export const modelStatusSchema = z
  .object({
    digest: z.string(),
    status: z.enum(["active", "suspended"]),
    since: z.string().describe("When it took this status (its registration while never changed)"),
    reason: z.string().nullable(),
    actor: z.string().nullable(),
  })
  .openapi("ModelStatus");

const changedSchema = z
  .object({
    status: modelStatusSchema,
    unchanged: z.boolean().describe("It already had that status: nothing written"),
  })
  .openapi("ModelStatusChange");

const status = createRoute({
  method: "get",
  path: "/models/{digest}/status",
  tags: ["models"],
  summary: "Whether a model is suspended (any valid token: deployments poll this)",
  security,
  request: { params: digestParam },
  responses: { 200: json(modelStatusSchema, "The model's status"), ...errors(400, 404) },
});

const change = (action: "suspend" | "resume") =>
  createRoute({
    method: "post",
    path: `/models/{digest}/${action}`,
    tags: ["models"],
    summary:
      action === "suspend"
        ? "Suspend a model, with a reason: deployments polling its status stop serving it"
        : "Resume a suspended model, with a reason",
    security,
    middleware: guard("decide", "application/json"),
    request: { params: digestParam, body: jsonBody(reasonBody) },
    responses: {
      201: json(changedSchema, "Recorded"),
      200: json(changedSchema, "It already had that status: nothing written"),
      ...errors(400, 404, 413, 415),
    },
  });

export function modelStatusRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(status, async (c) => {
    const digest = await resolveModel(ledger, c.req.valid("param").digest);
    const found = await ledger.getModelStatus(digest);
    if (found === undefined) throw new HttpError(404, "NOT_FOUND", `model ${digest} is not registered.`);
    return c.json(found, 200);
  });
  for (const [action, apply] of [
    ["suspend", suspendModel],
    ["resume", resumeModel],
  ] as const)
    app.openapi(change(action), async (c) => {
      const { reason } = c.req.valid("json");
      const result = await apply(ledger, c.req.valid("param").digest, reason, c.get("auth").principal);
      return c.json(result, result.unchanged ? 200 : 201);
    });
  return app;
}
