// What the server tests share: a fake job queue (the routes are written against the JobQueue
// contract, not an engine), a signed delivery made with the library as a supplier makes one,
// raw multipart bodies (to send file names a well-behaved client never would), and an HTTP
// helper that sends a token and a fresh request id unless told otherwise.
import { createPrivateKey, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { AntidoteError } from "../../src/errors.js";
import type { JobArtifact, JobListFilter, JobQueue, JobRecord, JobState } from "../../src/jobs/types.js";
import type { Ledger } from "../../src/ledger/types.js";
import {
  buildStatement,
  generateSigningKey,
  signStatement,
  type SigningKey,
} from "../../src/provenance/index.js";

// ── HTTP ─────────────────────────────────────────────────────────────────────────────────
/** A parsed reply, read as tests read it: an error, a page, or a record's fields. */
export interface ReplyBody {
  error: { code: string; message: string };
  items: Record<string, unknown>[];
  nextCursor: string | null;
  [field: string]: unknown;
}

export interface Reply {
  status: number;
  headers: Headers;
  body: ReplyBody;
  text: string;
}

export interface CallOptions {
  token?: string;
  /** A JSON body (sent as application/json unless `type` says otherwise). */
  json?: unknown;
  /** A raw body. */
  body?: RequestInit["body"];
  type?: string;
  /** Default: a fresh id on mutating methods; null sends none. */
  requestId?: string | null;
  headers?: Record<string, string>;
}

export type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

export function caller(fetcher: Fetcher) {
  return async (method: string, path: string, o: CallOptions = {}): Promise<Reply> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    if (method !== "GET" && o.requestId !== null)
      headers["antidote-request-id"] = o.requestId ?? randomUUID();
    let body = o.body;
    if (o.json !== undefined) {
      body = typeof o.json === "string" ? o.json : JSON.stringify(o.json);
      headers["content-type"] = o.type ?? "application/json";
    } else if (o.type !== undefined) headers["content-type"] = o.type;
    // A streamed body (no Content-Length) needs fetch's half-duplex mode.
    const init: RequestInit = { method, headers, ...(body !== undefined ? { body } : {}) };
    if (body instanceof ReadableStream) Object.assign(init, { duplex: "half" });
    const response = await fetcher(path, init);
    const text = await response.text();
    let parsed: unknown = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: `text` is all there is
    }
    return { status: response.status, headers: response.headers, body: parsed as ReplyBody, text };
  };
}

/** The error shape every 4xx/5xx must have. */
export function isErrorBody(body: unknown): boolean {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return (
    typeof e?.code === "string" && typeof e.message === "string" && Object.keys(body as object).length === 1
  );
}

// ── multipart ────────────────────────────────────────────────────────────────────────────
export const BOUNDARY = "----antidote-server-test";
export const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

export interface Part {
  name: string;
  value: string | Uint8Array;
  filename?: string;
}

export function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const file = p.filename === undefined ? "" : `; filename="${p.filename}"`;
    chunks.push(
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"${file}\r\n\r\n`),
    );
    chunks.push(Buffer.from(p.value), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

// ── a supplier's signed delivery ─────────────────────────────────────────────────────────
export interface Supplier {
  key: SigningKey;
  publicKeyPem: string;
}

export function supplierKey(): Supplier {
  const made = generateSigningKey();
  return {
    key: {
      keyId: made.keyId,
      privateKey: createPrivateKey(made.privateKeyPem),
      publicKeyPem: made.publicKeyPem,
    },
    publicKeyPem: made.publicKeyPem,
  };
}

/** A small CSV delivery written into `dir`, signed by `supplier`: its bytes and bundle. */
export async function signedDelivery(
  dir: string,
  supplier: Supplier,
  rows = 40,
  file = "delivery.csv",
): Promise<{ file: string; bytes: Buffer; bundle: string }> {
  const lines = ["id,text,label"];
  for (let i = 0; i < rows; i++)
    lines.push(
      `s${i},message number ${i} ${i % 3 === 0 ? "win cash" : "lunch"},${i % 3 === 0 ? "spam" : "ham"}`,
    );
  const path = join(dir, file);
  writeFileSync(path, lines.join("\n") + "\n");
  const statement = await buildStatement(path);
  const bundle = JSON.stringify(signStatement(statement, supplier.key));
  return { file, bytes: Buffer.from(lines.join("\n") + "\n"), bundle };
}

// ── a fake job queue ─────────────────────────────────────────────────────────────────────
export interface FakeQueue extends JobQueue {
  /** Move a job on, as a runner would; watchers see each change. */
  advance(jobId: string, state: JobState, patch?: Partial<JobRecord>): void;
  inputs: Map<string, { name: string; bytes: Uint8Array }[]>;
}

/** The JobQueue contract in memory: kinds scan/audit/export, submit recorded in the ledger. */
export function fakeQueue(ledger: Ledger): FakeQueue {
  const jobs = new Map<string, JobRecord>();
  const artifacts = new Map<string, JobArtifact[]>();
  const inputs = new Map<string, { name: string; bytes: Uint8Array }[]>();
  const watchers = new Map<string, Set<() => void>>();
  let n = 0;
  const notify = (id: string) => watchers.get(id)?.forEach((wake) => wake());
  return {
    engine: "in-process",
    inputs,
    async submit(kind, parameters, principal, given = []) {
      if (!["scan", "audit", "export"].includes(kind))
        throw new AntidoteError("USAGE", `kind: "${kind}" is not a job kind (scan, audit, export).`);
      if (typeof parameters !== "object" || parameters === null || Array.isArray(parameters))
        throw new AntidoteError("USAGE", "parameters: expected an object.");
      const jobId = `job-${(++n).toString(16).padStart(16, "0")}`;
      const now = new Date().toISOString();
      const record: JobRecord = {
        jobId,
        kind,
        parameters: parameters as JobRecord["parameters"],
        state: "queued",
        principal,
        progress: null,
        result: null,
        error: null,
        attempts: 0,
        artifacts: given.map((i) => `input/${i.name}`),
        createdAt: now,
        updatedAt: now,
      };
      await ledger.append(
        [{ kind: "job.submitted", payload: { jobId, kind, parameters: record.parameters } }],
        {
          actor: principal,
        },
      );
      jobs.set(jobId, record);
      inputs.set(jobId, [...given]);
      artifacts.set(
        jobId,
        given.map((i) => ({
          name: `input/${i.name}`,
          mediaType: "application/octet-stream",
          sha256: "0".repeat(64),
          bytes: i.bytes,
        })),
      );
      return record;
    },
    get: (id) => Promise.resolve(jobs.get(id)),
    list: (filter: JobListFilter = {}) => {
      const all = [...jobs.values()]
        .filter(
          (j) =>
            (filter.state === undefined || j.state === filter.state) &&
            (filter.kind === undefined || j.kind === filter.kind),
        )
        .reverse();
      const offset = filter.offset ?? 0;
      return Promise.resolve(all.slice(offset, offset + (filter.limit ?? 100)));
    },
    cancel(id) {
      const job = jobs.get(id);
      if (job === undefined)
        return Promise.reject(new AntidoteError("NOT_FOUND", `job ${id} does not exist.`));
      if (job.state === "queued" || job.state === "running") this.advance(id, "cancelled");
      return Promise.resolve(jobs.get(id) as JobRecord);
    },
    artifact: (id, name) => Promise.resolve(artifacts.get(id)?.find((a) => a.name === name)),
    advance(id, state, patch = {}) {
      const job = jobs.get(id);
      if (job === undefined) return;
      const next = { ...job, ...patch, state, updatedAt: new Date().toISOString() };
      jobs.set(id, next);
      if (patch.artifacts !== undefined)
        artifacts.set(id, [
          ...(artifacts.get(id) ?? []),
          ...patch.artifacts
            .filter((a) => !a.startsWith("input/"))
            .map((name) => ({
              name,
              mediaType: "application/json",
              sha256: "1".repeat(64),
              bytes: Buffer.from(`{"name":"${name}"}`),
            })),
        ]);
      notify(id);
    },
    async *watch(id, signal) {
      let last: JobRecord | undefined;
      for (;;) {
        const job = jobs.get(id);
        if (job === undefined) return;
        if (job !== last) {
          last = job;
          yield job;
          if (["done", "failed", "cancelled"].includes(job.state)) return;
        }
        if (signal?.aborted) return;
        await new Promise<void>((resolve) => {
          const set = watchers.get(id) ?? new Set();
          watchers.set(id, set);
          const wake = () => {
            set.delete(wake);
            resolve();
          };
          set.add(wake);
          signal?.addEventListener("abort", wake, { once: true });
        });
      }
    },
    close: () => Promise.resolve(),
  };
}

export async function countEvents(ledger: Ledger): Promise<number> {
  let n = 0;
  for await (const _ of ledger.events()) n++;
  return n;
}
