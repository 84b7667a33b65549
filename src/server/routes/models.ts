// /v1/models: register a trained model by its digest (the file stays where it was trained),
// list and read models, and a model's AI-BOM (CycloneDX 1.6) built from the ledger exactly
// as `antidote bom` builds it; a model's lineage both ways (`trace --model`) and the
// foundation-model reputation list (`model trust` / `distrust`).
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Ledger } from "../../ledger/types.js";
import { registerModelDigest } from "../../provenance/model-digest.js";
import { resolveModel } from "../../provenance/model.js";
import { traceModel } from "../../provenance/model-lineage.js";
import { modelReputations, setModelReputation } from "../../provenance/model-reputation.js";
import { buildModelBom } from "../../report/bom.js";
import { modelBomInput } from "../../report/from-ledger.js";
import { HttpError } from "../errors.js";
import { errors, guard, json, jsonBody, security } from "../openapi.js";
import {
  bomSchema,
  modelLineageSchema,
  modelReputationBody,
  modelReputationSchema,
  modelSchema,
  registerModelBody,
} from "../schemas.js";
import type { AppEnv } from "../types.js";

const digestParam = z.object({
  digest: z.string().regex(/^[0-9a-fA-F]{8,64}$/, "a model digest (hex; a unique prefix will do)"),
});

const register = createRoute({
  method: "post",
  path: "/models",
  tags: ["models"],
  summary: "Register a model by digest, with the dataset versions it was trained on and its base model",
  security,
  middleware: guard("models:write", "application/json"),
  request: { body: jsonBody(registerModelBody) },
  responses: {
    201: json(modelSchema, "Registered"),
    200: json(modelSchema, "Already registered: nothing written"),
    ...errors(400, 404, 413, 415),
  },
});

const list = createRoute({
  method: "get",
  path: "/models",
  tags: ["models"],
  summary: "List registered models",
  security,
  middleware: guard("read"),
  responses: { 200: json(z.array(modelSchema), "The models"), ...errors() },
});

const get = createRoute({
  method: "get",
  path: "/models/{digest}",
  tags: ["models"],
  summary: "One model, by digest or unique prefix",
  security,
  middleware: guard("read"),
  request: { params: digestParam },
  responses: { 200: json(modelSchema, "The model"), ...errors(400, 404) },
});

const bom = createRoute({
  method: "get",
  path: "/models/{digest}/bom",
  tags: ["models"],
  summary: "The model's AI-BOM: CycloneDX 1.6 JSON with datasets, sources, deliveries and lineage",
  security,
  middleware: guard("read"),
  request: { params: digestParam },
  responses: { 200: json(bomSchema, "The CycloneDX document"), ...errors(400, 404) },
});

const lineage = createRoute({
  method: "get",
  path: "/models/{digest}/lineage",
  tags: ["models"],
  summary: "The model's bases and every model built on it, with their status and the findings on the chain",
  security,
  middleware: guard("read"),
  request: { params: digestParam },
  responses: { 200: json(modelLineageSchema, "The lineage"), ...errors(400, 404) },
});

const reputations = createRoute({
  method: "get",
  path: "/model-reputations",
  tags: ["models"],
  summary: "The foundation-model reputation list: trusted and distrusted models, with why and who said so",
  security,
  middleware: guard("read"),
  responses: { 200: json(z.array(modelReputationSchema), "The list"), ...errors() },
});

const putReputation = createRoute({
  method: "put",
  path: "/model-reputations/{digest}",
  tags: ["models"],
  summary: "Trust or distrust a model (a full SHA-256, or a registered model's unique prefix)",
  security,
  middleware: guard("decide", "application/json"),
  request: { params: digestParam, body: jsonBody(modelReputationBody) },
  responses: { 200: json(modelReputationSchema, "Recorded"), ...errors(400, 404, 413, 415) },
});

export function modelRoutes(ledger: Ledger): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(register, async (c) => {
    const body = c.req.valid("json");
    const { model, alreadyRegistered } = await registerModelDigest(
      ledger,
      {
        digest: body.digest,
        name: body.name,
        trainedOn: body.trainedOn,
        base: body.baseModel,
        format: body.format,
        ...(body.requireTrustedBase === true && { requireTrustedBase: true }),
      },
      { actor: c.get("auth").principal },
    );
    return c.json(model, alreadyRegistered ? 200 : 201);
  });
  app.openapi(list, async (c) => c.json(await ledger.listModels(), 200));
  app.openapi(get, async (c) => {
    const digest = await resolveModel(ledger, c.req.valid("param").digest);
    const model = await ledger.getModel(digest);
    if (model === undefined) throw new HttpError(404, "NOT_FOUND", `model ${digest} is not registered.`);
    return c.json(model, 200);
  });
  app.openapi(bom, async (c) => {
    const document = await buildModelBom(await modelBomInput(ledger, c.req.valid("param").digest));
    return c.json(document as Record<string, unknown>, 200);
  });
  app.openapi(lineage, async (c) => c.json(await traceModel(ledger, c.req.valid("param").digest), 200));
  app.openapi(reputations, async (c) => c.json([...(await modelReputations(ledger)).values()], 200));
  app.openapi(putReputation, async (c) => {
    const body = c.req.valid("json");
    const { reputation } = await setModelReputation(
      ledger,
      { digest: c.req.valid("param").digest, ...body },
      { actor: c.get("auth").principal },
    );
    return c.json(reputation, 200);
  });
  return app;
}
