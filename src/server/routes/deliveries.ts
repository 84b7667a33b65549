// /v1/deliveries: upload a signed delivery, list deliveries and the refused ones. The upload
// is multipart: one or more `data` file parts (the delivered files, named as the signed
// manifest names them), an optional `signature` part (the supplier's Sigstore bundle or DSSE
// envelope), an optional `samples` part (the sample manifest a v2 bundle names, written by
// `antidote sign` beside the bundle), and the fields `source` and `name`. Parts stream into a private temporary directory and then go
// through `ingestDelivery` exactly as `antidote ingest` does: the signature and every file
// and sample digest are verified before anything reaches the ledger or the sample store.
// The verification runs on the server's ingest threads (startServer), off the event loop.
// A supplier or agent token delivers only as its own source; that is checked as soon as
// the `source` field arrives (send it first) and again before ingesting.
//
// A delivery refused by that check or by verification (signature, key, digest, format,
// policy) is recorded as a refusal (provenance/refusals.ts: an operational table, never a
// ledger event) and listed by GET /v1/deliveries/refused; failures of the request itself
// (the multipart body, a missing field, size, auth, rate, replay) are not deliveries and are
// not recorded.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { Authenticated } from "../../auth/tokens.js";
import { boundToSource, formatRole } from "../../auth/roles.js";
import type { Ledger } from "../../ledger/types.js";
import { ingestDelivery, inThreadStages, type IngestStages } from "../../provenance/ingest.js";
import { latestRefusals, recordRefusal } from "../../provenance/refusals.js";
import { actingAs } from "../acting-as.js";
import { HttpError, describeError, zodMessage } from "../errors.js";
import { readMultipart } from "../multipart.js";
import { errors, guard, json, page, security } from "../openapi.js";
import { deliveryRefusalSchema, deliverySchema, ingestResultSchema, pageOf, pageQuery } from "../schemas.js";
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
              samples: {
                type: "string",
                format: "binary",
                description:
                  "The sample manifest a v2 bundle names (antidote-samples/v1: `<sha256 hex> <id>` per line, written by `antidote sign` beside the bundle)",
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

const refused = createRoute({
  method: "get",
  path: "/deliveries/refused",
  tags: ["deliveries"],
  summary:
    "Refused deliveries, newest first, with the reason (a supplier or agent token sees its own source's; the newest 10,000 are kept)",
  security,
  middleware: guard("deliveries:read"),
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: z
        .string()
        .regex(/^[1-9]\d{0,15}$/, "the nextCursor of the previous page")
        .optional(),
      source: z.string().min(1).max(200).optional(),
    }),
  },
  responses: {
    200: json(pageOf(deliveryRefusalSchema, "DeliveryRefusalPage"), "A page of refused deliveries"),
    ...errors(400),
  },
});

export function deliveryRoutes(
  ledger: Ledger,
  options: {
    limits: ServerLimits;
    uploadDir?: string;
    ingest?: IngestStages;
    /** Where a refusal that could not be recorded is reported (the server log). */
    log?: (line: string) => void;
  },
): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(upload, async (c) => {
    const auth = c.get("auth");
    // The claimed source while a check whose failure refuses the delivery runs (the source
    // check, verification); undefined while the request itself is read.
    let refusing: string | undefined;
    const mayDeliver = (source: string) => {
      refusing = source;
      mayDeliverAs(auth, source);
      refusing = undefined;
    };
    try {
      const result = await withUploadDir(options.uploadDir, async (dir) => {
        const dataDir = join(dir, "delivery");
        const signatureDir = join(dir, "signature");
        // Inside the signature's folder, so messages name the uploaded manifest by its file name.
        const samplesDir = join(signatureDir, "samples");
        await Promise.all([mkdir(dataDir), mkdir(samplesDir, { recursive: true })]);
        const form = await readMultipart(c.req.raw.body, c.req.header("content-type") ?? "", {
          files: {
            data: { dir: dataDir, maxCount: MAX_FILES, nested: true },
            signature: { dir: signatureDir, maxCount: 1 },
            samples: { dir: samplesDir, maxCount: 1 },
          },
          fields: ["source", "name"],
          maxBytes: options.limits.maxUploadBytes,
          onField: (field, value) => {
            if (field === "source") mayDeliver(value);
          },
        });
        const parsed = deliveryFields.safeParse(form.fields);
        if (!parsed.success) throw new HttpError(400, "USAGE", zodMessage(parsed.error, "form"));
        const { source, name } = parsed.data;
        mayDeliver(source);
        const data = form.files.filter((f) => f.field === "data");
        const only = data.length === 1 ? data[0] : undefined;
        if (data.length === 0)
          throw new HttpError(400, "USAGE", 'form.data: send the delivered file(s) as "data" parts.');
        refusing = source;
        return ingestDelivery(
          actingAs(ledger, auth.principal),
          {
            target: only?.path ?? dataDir,
            source,
            signaturePath: form.files.find((f) => f.field === "signature")?.path,
            // Never looked for beside the uploaded signature: only this part is the manifest.
            samplesPath:
              form.files.find((f) => f.field === "samples")?.path ?? join(samplesDir, "missing-samples-part"),
            name,
          },
          options.ingest ?? inThreadStages,
        );
      });
      return c.json(result, result.alreadyIngested ? 200 : 201);
    } catch (e) {
      // After withUploadDir: its messages name the uploaded files, not the temporary paths.
      if (refusing !== undefined) await noteRefusal(refusing, auth.principal, e);
      throw e;
    }
  });

  app.openapi(refused, async (c) => {
    const auth = c.get("auth");
    const query = c.req.valid("query");
    const source = readableSource(auth, query.source);
    const items = await latestRefusals(ledger, {
      limit: query.limit + 1,
      ...(source !== undefined ? { source } : {}),
      ...(query.cursor !== undefined ? { before: Number(query.cursor) } : {}),
    });
    const shown = items.slice(0, query.limit);
    const last = shown[shown.length - 1];
    return c.json(
      { items: shown, nextCursor: items.length > query.limit && last !== undefined ? String(last.id) : null },
      200,
    );
  });

  // A refused delivery is recorded best effort: the client is told why either way, and a
  // failure to record must not change that answer.
  async function noteRefusal(source: string, principal: string, error: unknown): Promise<void> {
    const { status, body } = describeError(error);
    if (!REFUSAL_STATUSES.has(status)) return;
    await recordRefusal(ledger, {
      source,
      principal,
      code: body.error.code,
      message: body.error.message,
    }).catch((failure: unknown) =>
      options.log?.(
        `deliveries: a refused delivery could not be recorded: ${failure instanceof Error ? failure.message : String(failure)}`,
      ),
    );
  }

  app.openapi(list, async (c) => {
    const auth = c.get("auth");
    const query = c.req.valid("query");
    const source = readableSource(auth, query.source);
    const all = (await ledger.listDeliveries()).filter((d) => source === undefined || d.source === source);
    return c.json(
      page(all, (d) => d.deliveryId, query.limit, query.cursor),
      200,
    );
  });

  return app;
}

/**
 * The statuses of a refused delivery: a bad request (unparseable data), forbidden (a
 * supplier naming another source), not found (an unregistered source), unprocessable
 * (signature, key, digest). Not 401, 409, 413, 415 or 429: those refuse the request, not
 * a delivery, and the source check and verification do not raise them.
 */
const REFUSAL_STATUSES: ReadonlySet<number> = new Set([400, 403, 404, 422]);

/** The source whose deliveries `auth` may list: its own for a supplier or agent, else any. */
function readableSource(auth: Authenticated, asked: string | undefined): string | undefined {
  if (!boundToSource(auth.role)) return asked;
  if (asked !== undefined && asked !== auth.source)
    throw new HttpError(
      403,
      "FORBIDDEN",
      `a ${formatRole(auth)} token reads only its own source's deliveries.`,
    );
  if (auth.source === null)
    throw new HttpError(403, "FORBIDDEN", `a ${formatRole(auth)} token is bound to no source.`);
  return auth.source;
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
