// /v1/jobs: scans, audits and exports as jobs on the `JobQueue` (jobs/types.ts) — submit
// (JSON, or multipart with input files such as a model to audit), list, read, cancel,
// follow live (Server-Sent Events, one `job` event per change until the job ends) and
// download what a job produced. The routes know only the queue's contract; which engine
// runs the jobs (in-process or BullMQ) is the server's choice.
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import type { JobQueue, JobRecord } from "../../jobs/types.js";
import { JOB_STATES } from "../../jobs/types.js";
import { jobId } from "../../ledger/schemas.js";
import { HttpError, describeError, zodMessage } from "../errors.js";
import { requirePermission } from "../middleware/permission.js";
import { readMultipart } from "../multipart.js";
import { errors, guard, json, security } from "../openapi.js";
import { jobSchema, pageOf, pageQuery, submitJobBody } from "../schemas.js";
import type { AppEnv, ServerLimits } from "../types.js";
import { withUploadDir } from "../uploads.js";

const jobParam = z.object({ jobId });
const artifactParams = jobParam.extend({ name: z.string().min(1).max(300) });
/** Most input files one job may take (an audit takes a model and perhaps a reference). */
const MAX_INPUTS = 8;
/** The input name the audit runner reads its model from (jobs/runners/audit.ts AUDIT_MODEL_INPUT):
 * a `model` part is stored under it whatever the client's file was called. */
const MODEL_INPUT = "model.onnx";

const submit = createRoute({
  method: "post",
  path: "/jobs",
  tags: ["jobs"],
  summary: "Submit a scan, audit or export; multipart when it takes input files (a model to audit)",
  security,
  middleware: guard("jobs:write", "application/json", "multipart/form-data"),
  request: {
    body: {
      // Required in practice; marked optional so a multipart body reaches the handler unparsed.
      required: false,
      content: {
        "application/json": { schema: submitJobBody },
        "multipart/form-data": {
          schema: {
            type: "object",
            required: ["kind"],
            properties: {
              kind: { type: "string" },
              parameters: { type: "string", description: "The parameters as a JSON object" },
              model: {
                type: "string",
                format: "binary",
                description: "The ONNX model an audit examines or a scan runs (input model.onnx)",
              },
              reference: {
                type: "string",
                format: "binary",
                description: "A known-clean reference model, by its file name",
              },
              input: { type: "array", items: { type: "string", format: "binary" } },
            },
          },
        },
      },
    },
  },
  responses: { 202: json(jobSchema, "Queued"), ...errors(400, 413, 415) },
});

const list = createRoute({
  method: "get",
  path: "/jobs",
  tags: ["jobs"],
  summary: "List jobs, newest first",
  security,
  middleware: guard("read"),
  request: {
    query: pageQuery.extend({
      cursor: z
        .string()
        .regex(/^\d{1,9}$/, "the nextCursor of the previous page")
        .optional(),
      state: z.enum(JOB_STATES).optional(),
      kind: z.string().min(1).max(100).optional(),
    }),
  },
  responses: { 200: json(pageOf(jobSchema, "JobPage"), "A page of jobs"), ...errors(400) },
});

const get = createRoute({
  method: "get",
  path: "/jobs/{jobId}",
  tags: ["jobs"],
  summary: "One job: state, progress, result, artifacts",
  security,
  middleware: guard("read"),
  request: { params: jobParam },
  responses: { 200: json(jobSchema, "The job"), ...errors(400, 404) },
});

const cancel = createRoute({
  method: "post",
  path: "/jobs/{jobId}/cancel",
  tags: ["jobs"],
  summary: "Cancel a queued job, or ask a running one to stop",
  security,
  middleware: guard("jobs:write", "application/json"),
  request: { params: jobParam },
  responses: { 200: json(jobSchema, "The job after the request"), ...errors(400, 404, 415) },
});

const events = createRoute({
  method: "get",
  path: "/jobs/{jobId}/events",
  tags: ["jobs"],
  summary: "Server-Sent Events: a `job` event with the record on every change, until the job ends",
  security,
  middleware: guard("read"),
  request: { params: jobParam },
  responses: {
    200: { description: "An event stream", content: { "text/event-stream": { schema: z.string() } } },
    ...errors(400, 404),
  },
});

// Registered for the document only: the handler below takes a name of several segments
// (input/model.onnx), which an OpenAPI path parameter cannot express.
const artifact = createRoute({
  method: "get",
  path: "/jobs/{jobId}/artifacts/{name}",
  tags: ["jobs"],
  summary: "Download a file the job produced (the name may hold /, e.g. input/model.onnx)",
  security,
  middleware: guard("read"),
  request: { params: artifactParams },
  responses: {
    200: {
      description: "The file",
      content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    ...errors(400, 404),
  },
});

export function jobRoutes(
  jobs: JobQueue,
  options: { limits: ServerLimits; uploadDir?: string; log: (line: string) => void },
): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(submit, async (c) => {
    const principal = c.get("auth").principal;
    const type = c.req.header("content-type") ?? "";
    if (!type.toLowerCase().startsWith("multipart/form-data")) {
      if (c.req.header("content-type") === undefined)
        throw new HttpError(400, "USAGE", "body: send {kind, parameters} as application/json.");
      // Validated by the route's JSON schema; the typing cannot see it beside the multipart form.
      const body = (c.req.valid as (target: "json") => z.output<typeof submitJobBody>)("json");
      return c.json(await jobs.submit(body.kind, body.parameters, principal), 202);
    }
    const record = await withUploadDir(options.uploadDir, async (dir) => {
      const inputDir = join(dir, "input");
      await mkdir(inputDir);
      const form = await readMultipart(c.req.raw.body, type, {
        // Every file part is an input, named by its file name (the runner finds it in input/),
        // except the model, which the runner knows by one name.
        files: {
          model: { dir: inputDir, maxCount: 1 },
          reference: { dir: inputDir, maxCount: MAX_INPUTS },
          input: { dir: inputDir, maxCount: MAX_INPUTS },
        },
        fields: ["kind", "parameters"],
        maxBytes: options.limits.maxUploadBytes,
      });
      const parsed = submitJobBody.safeParse({
        kind: form.fields.kind,
        parameters: parametersOf(form.fields.parameters),
      });
      if (!parsed.success) throw new HttpError(400, "USAGE", zodMessage(parsed.error, "form"));
      // The queue keeps inputs in the ledger database (any worker may run the job), as bytes.
      const inputs = await Promise.all(
        form.files.map(async (f) => ({
          name: f.field === "model" ? MODEL_INPUT : f.filename,
          bytes: new Uint8Array(await readFile(f.path)),
        })),
      );
      return jobs.submit(parsed.data.kind, parsed.data.parameters, principal, inputs);
    });
    return c.json(record, 202);
  });

  app.openapi(list, async (c) => {
    const { limit, cursor, state, kind } = c.req.valid("query");
    const offset = cursor === undefined ? 0 : Number(cursor);
    // One more than a page says whether there is a next one.
    const found = await jobs.list({ state, kind, limit: limit + 1, offset });
    const items = found.slice(0, limit);
    return c.json({ items, nextCursor: found.length > limit ? String(offset + limit) : null }, 200);
  });

  app.openapi(get, async (c) => c.json(await requireJob(jobs, c.req.valid("param").jobId), 200));

  app.openapi(cancel, async (c) => {
    const { jobId } = c.req.valid("param");
    await requireJob(jobs, jobId);
    return c.json(await jobs.cancel(jobId, c.get("auth").principal), 200);
  });

  app.openapi(events, async (c) => {
    const { jobId } = c.req.valid("param");
    await requireJob(jobs, jobId);
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      let n = 0;
      try {
        for await (const record of jobs.watch(jobId, abort.signal))
          await stream.writeSSE({ event: "job", id: String(++n), data: JSON.stringify(record) });
      } catch (e) {
        if (abort.signal.aborted) return;
        const described = describeError(e);
        if (described.log !== undefined) options.log(`job events ${jobId}: ${described.log}`);
        await stream.writeSSE({ event: "error", data: JSON.stringify(described.body) });
      }
    });
  });

  app.openAPIRegistry.registerPath(artifact);
  app.get("/jobs/:jobId/artifacts/:name{.+}", requirePermission("read"), async (c) => {
    const params = artifactParams.safeParse(c.req.param());
    if (!params.success) throw new HttpError(400, "USAGE", zodMessage(params.error, "path"));
    const { jobId, name } = params.data;
    const found = await jobs.artifact(jobId, name);
    if (found === undefined)
      throw new HttpError(404, "NOT_FOUND", `job ${jobId} has no artifact "${name.slice(0, 300)}".`);
    const file = found.name.split("/").pop() ?? "artifact";
    // The queue hands out bytes backed by a plain ArrayBuffer (read from the database).
    return c.body(found.bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": found.mediaType,
      "Content-Disposition": `attachment; filename="${file.replace(/[^\w.-]/g, "_")}"`,
      ETag: `"${found.sha256}"`,
      "X-Content-Type-Options": "nosniff",
    });
  });

  return app;
}

async function requireJob(jobs: JobQueue, id: string): Promise<JobRecord> {
  const record = await jobs.get(id);
  if (record === undefined) throw new HttpError(404, "NOT_FOUND", `job ${id} does not exist.`);
  return record;
}

function parametersOf(text: string | undefined): unknown {
  if (text === undefined || text.trim() === "") return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, "INPUT_FORMAT", "form.parameters: not valid JSON.");
  }
}
