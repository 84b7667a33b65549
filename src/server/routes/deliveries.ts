// /v1/deliveries: upload a signed delivery, list deliveries. The upload is multipart: one
// or more `data` file parts (the delivered files, named as the signed manifest names them),
// an optional `signature` part (the supplier's Sigstore bundle or DSSE envelope), and the
// fields `source` and `name`. Parts stream into a private temporary directory and then go
// through `ingestDelivery` exactly as `antidote ingest` does: the signature and every file
// and sample digest are verified before anything reaches the ledger or the sample store.
// The verification runs on the server's ingest threads (startServer), off the event loop.
// A supplier or agent token delivers only as its own source; that is checked as soon as
// the `source` field arrives (send it first) and again before ingesting.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Authenticated } from "../../auth/tokens.js";
import { boundToSource, formatRole } from "../../auth/roles.js";
import type { Ledger } from "../../ledger/types.js";
import { ingestDelivery, inThreadStages, type IngestStages } from "../../provenance/ingest.js";
import { actingAs } from "../acting-as.js";
import { HttpError, zodMessage } from "../errors.js";
import { readMultipart } from "../multipart.js";
import { errors, guard, json, page, security } from "../openapi.js";
import { deliverySchema, ingestResultSchema, pageOf, pageQuery } from "../schemas.js";
import type { AppEnv, ServerLimits } from "../types.js";
import { withUploadDir } from "../uploads.js";

const deliveryFields = z.object({
  source: z.string().min(1, "must not be empty").max(200),
  name: z.string().min(1, "must not be empty").max(200).optional(),
});

/** Most files one delivery may upload (a directory delivery sends one part per file). */
const MAX_FILES = 10_000;

const upload = createRoute({
  method: "post",
  path: "/deliveries",
  tags: ["deliveries"],
  summary: "Upload a delivery; it is verified (signature, files, samples) before anything is written",
  security,
  middleware: guard("deliver", "multipart/form-data"),
  request: {
    body: {
      required: true,
      content: {
        "multipart/form-data": {
          schema: {
            type: "object",
            required: ["source", "data"],
            properties: {
              source: { type: "string", description: "The registered source delivering (send it first)" },
              name: {
                type: "string",
                description: "Dataset name (default: the file's name; for several files, delivery)",
              },
              data: {
                type: "array",
                items: { type: "string", format: "binary" },
                description: "The delivered file(s), named as the signed manifest names them",
              },
              signature: {
                type: "string",
                format: "binary",
                description: "Sigstore bundle or DSSE envelope",
              },
            },
          },
        },
      },
    },
  },
  responses: {
    201: json(ingestResultSchema, "Verified and recorded"),
    200: json(ingestResultSchema, "Already ingested: nothing written"),
    ...errors(400, 404, 413, 415, 422),
  },
});

const list = createRoute({
  method: "get",
  path: "/deliveries",
  tags: ["deliveries"],
  summary: "List deliveries (a supplier or agent token sees its own source's)",
  security,
  middleware: guard("deliveries:read"),
  request: { query: pageQuery.extend({ source: z.string().min(1).optional() }) },
  responses: { 200: json(pageOf(deliverySchema, "DeliveryPage"), "A page of deliveries"), ...errors(400) },
});

export function deliveryRoutes(
  ledger: Ledger,
  options: { limits: ServerLimits; uploadDir?: string; ingest?: IngestStages },
): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(upload, async (c) => {
    const auth = c.get("auth");
    const result = await withUploadDir(options.uploadDir, async (dir) => {
      const dataDir = join(dir, "delivery");
      const signatureDir = join(dir, "signature");
      await Promise.all([mkdir(dataDir), mkdir(signatureDir)]);
      const form = await readMultipart(c.req.raw.body, c.req.header("content-type") ?? "", {
        files: {
          data: { dir: dataDir, maxCount: MAX_FILES, nested: true },
          signature: { dir: signatureDir, maxCount: 1 },
        },
        fields: ["source", "name"],
        maxBytes: options.limits.maxUploadBytes,
        onField: (field, value) => {
          if (field === "source") mayDeliverAs(auth, value);
        },
      });
      const parsed = deliveryFields.safeParse(form.fields);
      if (!parsed.success) throw new HttpError(400, "USAGE", zodMessage(parsed.error, "form"));
      const { source, name } = parsed.data;
      mayDeliverAs(auth, source);
      const data = form.files.filter((f) => f.field === "data");
      const only = data.length === 1 ? data[0] : undefined;
      if (data.length === 0)
        throw new HttpError(400, "USAGE", 'form.data: send the delivered file(s) as "data" parts.');
      return ingestDelivery(
        actingAs(ledger, auth.principal),
        {
          target: only?.path ?? dataDir,
          source,
          signaturePath: form.files.find((f) => f.field === "signature")?.path,
          name,
        },
        options.ingest ?? inThreadStages,
      );
    });
    return c.json(result, result.alreadyIngested ? 200 : 201);
  });

  app.openapi(list, async (c) => {
    const auth = c.get("auth");
    const query = c.req.valid("query");
    const source = boundToSource(auth.role) ? auth.source : query.source;
    if (boundToSource(auth.role) && query.source !== undefined && query.source !== auth.source)
      throw new HttpError(
        403,
        "FORBIDDEN",
        `a ${formatRole(auth)} token reads only its own source's deliveries.`,
      );
    const all = (await ledger.listDeliveries()).filter((d) => source === undefined || d.source === source);
    return c.json(
      page(all, (d) => d.deliveryId, query.limit, query.cursor),
      200,
    );
  });

  return app;
}

/** A supplier or agent token delivers only as its own source; other roles with `deliver` as any. */
function mayDeliverAs(auth: Authenticated, source: string): void {
  if (boundToSource(auth.role) && auth.source !== source)
    throw new HttpError(
      403,
      "FORBIDDEN",
      `a ${formatRole(auth)} token may deliver only as source "${auth.source ?? ""}", not "${source.slice(0, 200)}"; nothing was written.`,
    );
}
