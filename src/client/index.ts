// A small typed client for `antidote serve`: what a supplier's machine, a CI pipeline or a
// notebook uses instead of opening the ledger itself. Each method is one HTTP request (a job's
// progress is one Server-Sent Events stream); answers come back as the library's own types,
// and a failure comes back as an `AntidoteError` carrying the server's code and message, so a
// caller branches on `code` the same way against a local ledger and against a service.
//
// Every mutating request carries a fresh `Antidote-Request-Id`: the server refuses a request id
// it has seen (a captured request replayed), so a retry is a new request, never a copy.
import { randomUUID } from "node:crypto";
import { existsSync, openAsBlob } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";
import { AntidoteError, type AntidoteErrorCode } from "../errors.js";
import type { JobRecord } from "../jobs/types.js";
import type {
  DatasetVersion,
  DeliveryRecord,
  Finding,
  SampleRecord,
  SampleTrace,
  SignedTreeHead,
  Source,
  SourceKind,
  SourceTrace,
  VerifyReport,
} from "../ledger/types.js";
import type { IngestResult } from "../provenance/ingest.js";
import type { DeliveryRefusal } from "../provenance/refusals.js";
import { sampleManifestPathFor } from "../provenance/sample-manifest.js";

export interface ClientOptions {
  /** The service's base URL, e.g. http://127.0.0.1:8600 (no /v1). */
  url: string;
  /** An API token made by `antidote token create`. */
  token: string;
  /** For tests and proxies; default the global fetch. */
  fetch?: typeof fetch;
}

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last. */
  nextCursor: string | null;
}

export interface PageOptions {
  limit?: number;
  cursor?: string;
}

export interface DeliverOptions {
  source: string;
  /** The delivered file, or a directory whose files are sent with their relative names. */
  data: string;
  /** The supplier's signature (`antidote sign`). */
  signature?: string;
  /**
   * The sample manifest a v2 signature names. Default: the file beside the signature
   * (`x.sigstore.json` → `x.sigstore.samples`), sent when it exists.
   */
  samples?: string;
  /** Dataset name of the new version (default: the file name). */
  name?: string;
}

export interface DecisionRequest {
  action: "quarantine" | "release";
  sources?: string[];
  samples?: string[];
  findingsOver?: number;
  reason: string;
}

/** Codes the server adds to the library's own (auth, limits, replay). */
const HTTP_CODES: Record<string, AntidoteErrorCode> = {
  UNAUTHENTICATED: "USAGE",
  FORBIDDEN: "USAGE",
  PAYLOAD_TOO_LARGE: "USAGE",
  UNSUPPORTED_MEDIA_TYPE: "USAGE",
  RATE_LIMITED: "LEDGER_UNAVAILABLE",
  REPLAYED: "USAGE",
};

/** A failed request: the library error the server reported, with the HTTP status and server code. */
export class ServiceError extends AntidoteError {
  constructor(
    code: AntidoteErrorCode,
    message: string,
    readonly status: number,
    /** The server's own code (e.g. FORBIDDEN, RATE_LIMITED), which may be finer than `code`. */
    readonly serverCode: string,
  ) {
    super(code, message);
  }
}

export class AntidoteClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new AntidoteError("USAGE", `server URL "${options.url}" is not a valid URL.`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new AntidoteError("USAGE", `server URL "${options.url}": expected http:// or https://.`);
    this.base = url.toString().replace(/\/+$/, "");
    this.fetchFn = options.fetch ?? fetch;
  }

  // ── ledger ────────────────────────────────────────────────────────────────────────────
  verifyLedger(): Promise<VerifyReport> {
    return this.get("/v1/ledger/verify");
  }
  signedHead(): Promise<SignedTreeHead> {
    return this.get("/v1/ledger/head");
  }

  // ── sources ───────────────────────────────────────────────────────────────────────────
  sources(): Promise<Source[]> {
    return this.get("/v1/sources");
  }
  source(name: string): Promise<Source> {
    return this.get(`/v1/sources/${encodeURIComponent(name)}`);
  }
  addSource(body: {
    name: string;
    kind: SourceKind;
    trust?: number;
    requireSignature?: boolean;
    keys?: string[];
  }): Promise<Source> {
    return this.send("POST", "/v1/sources", body);
  }
  addSourceKey(name: string, publicKeyPem: string): Promise<Source> {
    return this.send("POST", `/v1/sources/${encodeURIComponent(name)}/keys`, { publicKeyPem });
  }
  revokeSourceKey(name: string, keyId: string, reason: string): Promise<Source> {
    return this.send("DELETE", `/v1/sources/${encodeURIComponent(name)}/keys/${encodeURIComponent(keyId)}`, {
      reason,
    });
  }

  // ── deliveries and versions ───────────────────────────────────────────────────────────
  /** Upload a delivery; the server verifies it exactly as `antidote ingest` before writing anything. */
  async deliver(options: DeliverOptions): Promise<IngestResult> {
    const form = new FormData();
    // The source goes first: the server refuses a token delivering as another source before
    // reading the data.
    form.append("source", options.source);
    if (options.name !== undefined) form.append("name", options.name);
    for (const file of await deliveryFiles(options.data))
      form.append("data", await openAsBlob(file.path), file.name);
    if (options.signature !== undefined)
      form.append("signature", await openAsBlob(options.signature), basename(options.signature));
    const samples =
      options.samples ??
      (options.signature === undefined ? undefined : sampleManifestPathFor(options.signature));
    if (samples !== undefined && (options.samples !== undefined || existsSync(samples)))
      form.append("samples", await openAsBlob(samples), basename(samples));
    return this.request("POST", "/v1/deliveries", form);
  }
  deliveries(page: PageOptions & { source?: string } = {}): Promise<Page<DeliveryRecord>> {
    return this.get(`/v1/deliveries${query(page)}`);
  }
  /** Refused deliveries, newest first, with the reason (a supplier token sees its own source's). */
  refusedDeliveries(page: PageOptions & { source?: string } = {}): Promise<Page<DeliveryRefusal>> {
    return this.get(`/v1/deliveries/refused${query(page)}`);
  }
  versions(page: PageOptions = {}): Promise<Page<DatasetVersion>> {
    return this.get(`/v1/versions${query(page)}`);
  }
  version(version: string): Promise<DatasetVersion> {
    return this.get(`/v1/versions/${encodeURIComponent(version)}`);
  }
  members(
    version: string,
    page: PageOptions = {},
  ): Promise<Page<SampleRecord & { source: string | null; quarantined: boolean }>> {
    return this.get(`/v1/versions/${encodeURIComponent(version)}/members${query(page)}`);
  }

  // ── trace, findings, decisions ────────────────────────────────────────────────────────
  traceSource(name: string): Promise<SourceTrace> {
    return this.get(`/v1/sources/${encodeURIComponent(name)}/trace`);
  }
  traceSample(idOrDigest: string): Promise<SampleTrace> {
    return this.get(`/v1/samples/${encodeURIComponent(idOrDigest)}/trace`);
  }
  findings(
    filter: PageOptions & { subjectType?: Finding["subjectType"]; minScore?: number } = {},
  ): Promise<Page<Finding & { seq: number }>> {
    return this.get(`/v1/findings${query(filter)}`);
  }
  decide(decision: DecisionRequest): Promise<{
    action: "quarantine" | "release";
    sources: string[];
    samples: number;
    actor: string;
    reason: string;
  }> {
    return this.send("POST", "/v1/decisions", decision);
  }

  // ── jobs ──────────────────────────────────────────────────────────────────────────────
  /** Queue a scan, audit or export; `model` uploads the ONNX file an audit examines. */
  async submitJob(
    kind: string,
    parameters: Record<string, unknown> = {},
    model?: string,
  ): Promise<JobRecord> {
    if (model === undefined) return this.send("POST", "/v1/jobs", { kind, parameters });
    const form = new FormData();
    form.append("kind", kind);
    form.append("parameters", JSON.stringify(parameters));
    form.append("model", await openAsBlob(model), basename(model));
    return this.request("POST", "/v1/jobs", form);
  }
  job(jobId: string): Promise<JobRecord> {
    return this.get(`/v1/jobs/${encodeURIComponent(jobId)}`);
  }
  jobs(filter: PageOptions & { state?: JobRecord["state"]; kind?: string } = {}): Promise<Page<JobRecord>> {
    return this.get(`/v1/jobs${query(filter)}`);
  }
  cancelJob(jobId: string): Promise<JobRecord> {
    return this.send("POST", `/v1/jobs/${encodeURIComponent(jobId)}/cancel`, {});
  }
  /** Fetch a file the job produced (report.json, report.html, previews.json, an export). */
  async artifact(jobId: string, name: string): Promise<Uint8Array> {
    const response = await this.raw(
      "GET",
      `/v1/jobs/${encodeURIComponent(jobId)}/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`,
    );
    return new Uint8Array(await response.arrayBuffer());
  }

  /** The job's record each time it changes, from the server's event stream, until it ends. */
  async *watchJob(jobId: string, signal?: AbortSignal): AsyncIterable<JobRecord> {
    const response = await this.raw("GET", `/v1/jobs/${encodeURIComponent(jobId)}/events`, undefined, signal);
    if (response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (data === "") continue;
        const job = JSON.parse(data) as JobRecord;
        yield job;
        if (job.state === "done" || job.state === "failed" || job.state === "cancelled") return;
      }
    }
  }

  /** Wait for a job to end, calling `onUpdate` on each change; the final record. */
  async waitForJob(jobId: string, onUpdate?: (job: JobRecord) => void): Promise<JobRecord> {
    let last: JobRecord | undefined;
    for await (const job of this.watchJob(jobId)) {
      last = job;
      onUpdate?.(job);
    }
    return last ?? this.job(jobId);
  }

  // ── plumbing ──────────────────────────────────────────────────────────────────────────
  private get<T>(path: string): Promise<T> {
    return this.request("GET", path);
  }

  private send<T>(method: string, path: string, body: unknown): Promise<T> {
    return this.request(method, path, JSON.stringify(body));
  }

  private async request<T>(method: string, path: string, body?: string | FormData): Promise<T> {
    const response = await this.raw(method, path, body);
    return (await response.json()) as T;
  }

  private async raw(
    method: string,
    path: string,
    body?: string | FormData,
    signal?: AbortSignal,
  ): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}` };
    if (typeof body === "string") headers["content-type"] = "application/json";
    if (method !== "GET") headers["antidote-request-id"] = randomUUID();
    const send = () =>
      this.fetchFn(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(signal !== undefined ? { signal } : {}),
      });
    let response: Response;
    try {
      response = await send().catch((e: unknown) => {
        // A kept-alive connection the server closed as idle just as this request went out is
        // reset without the request having been read: a read is safe to send once more. A
        // mutation is not retried here — its request id would be refused as a replay anyway.
        if (method === "GET" && signal?.aborted !== true && connectionReset(e)) return send();
        throw e;
      });
    } catch (e) {
      throw new AntidoteError(
        "LEDGER_UNAVAILABLE",
        `server ${this.base} cannot be reached (${e instanceof Error ? e.message : String(e)}).`,
        { cause: e },
      );
    }
    if (response.ok) return response;
    throw await failure(response, `${method} ${path}`);
  }
}

function connectionReset(e: unknown): boolean {
  const cause = e instanceof Error ? (e.cause as { code?: unknown } | undefined) : undefined;
  return cause?.code === "ECONNRESET" || cause?.code === "UND_ERR_SOCKET";
}

/** The server's JSON error as a ServiceError; a body that is not one is described by its status. */
async function failure(response: Response, what: string): Promise<ServiceError> {
  let code = "INTERNAL";
  let message = `${what}: HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    // Not JSON (a proxy's error page): the status says enough, and its text is not ours to print.
  }
  const libraryCode = (HTTP_CODES[code] ?? (isLibraryCode(code) ? code : "INTERNAL")) as AntidoteErrorCode;
  return new ServiceError(libraryCode, message, response.status, code);
}

function isLibraryCode(code: string): boolean {
  return /^[A-Z_]+$/.test(code) && !(code in HTTP_CODES);
}

function query(params: object): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params))
    if (typeof value === "string" || typeof value === "number") search.set(key, String(value));
  const text = search.toString();
  return text === "" ? "" : `?${text}`;
}

/** A file is sent under its base name; a directory's files under their paths relative to it. */
async function deliveryFiles(target: string): Promise<{ path: string; name: string }[]> {
  const info = await stat(target).catch(() => undefined);
  if (info === undefined) throw new AntidoteError("FILE_NOT_FOUND", `${target} does not exist.`);
  if (!info.isDirectory()) return [{ path: target, name: basename(target) }];
  const files: { path: string; name: string }[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.push({ path, name: relative(target, path).split(sep).join("/") });
    }
  };
  await walk(target);
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
