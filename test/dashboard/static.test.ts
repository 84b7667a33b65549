// The dashboard's static files as `antidote serve` hands them out (src/server/dashboard.ts):
// path traversal in every spelling an attacker tries, sent byte for byte over a real socket
// (no client-side URL normalisation), content types, the Content-Security-Policy, caching,
// the single-page-app fallback, the message when the dashboard is not built — and that the
// API around it (/v1, /openapi.json, /healthz) answers exactly as before.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { addSource } from "../../src/provenance/index.js";
import { createApp, openRequestIdStore, type RequestIdStore } from "../../src/server/index.js";
import { CONTENT_SECURITY_POLICY, dashboard, safePath } from "../../src/server/dashboard.js";
import { fakeQueue } from "../server/helpers.js";

const SECRET = "TOP-SECRET-OUTSIDE-THE-ASSETS";
let root: string;
let assets: string;
let server: ServerType;
let port: number;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET `path` exactly as written (Node's client sends the request target unchanged). */
function raw(path: string, at = port): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: at, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function listen(
  fetch: (r: Request) => Response | Promise<Response>,
): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve) => {
    const s = serve({ fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) =>
      resolve({ server: s, port: info.port }),
    );
  });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "antidote-static-"));
  assets = join(root, "dashboard");
  mkdirSync(join(assets, "assets"), { recursive: true });
  writeFileSync(join(assets, "index.html"), "<!doctype html><title>Antidote</title><div id=app></div>");
  writeFileSync(join(assets, "assets", "index-abc123.js"), "console.log('app');");
  writeFileSync(join(assets, "assets", "index-abc123.css"), "body{}");
  writeFileSync(join(assets, ".env"), SECRET);
  writeFileSync(join(root, "secret.txt"), SECRET);
  writeFileSync(join(root, "package.json"), SECRET);
  symlinkSync(join(root, "secret.txt"), join(assets, "assets", "link.js"));
  ({ server, port } = await listen(new Hono().use("*", dashboard(assets)).fetch));
});

afterAll(() => {
  server?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("dashboard static files", () => {
  it.each([
    "/../secret.txt",
    "/assets/../../secret.txt",
    "/assets/..%2f..%2fpackage.json",
    "/assets/..%2F..%2Fpackage.json",
    "/assets/%2e%2e/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/assets/..%5c..%5csecret.txt",
    "/assets/..\\..\\secret.txt",
    "/assets/%252e%252e%252fsecret.txt",
    "/assets/index-abc123.js%00.html",
    "/assets/index-abc123.js%00",
    "/.env",
    "/assets/.%2e/.env",
    "/assets/link.js",
    "/%c0%ae%c0%ae/secret.txt",
    "/assets/%ZZ",
    "//etc/passwd",
    "/C:%5cwindows",
  ])("refuses %s without leaking a byte", async (path) => {
    const r = await raw(path);
    expect(r.body).not.toContain(SECRET);
    expect(r.body).not.toContain("root:");
    expect([400, 404]).toContain(r.status);
    // The dashboard's own refusals carry its headers (a raw backslash is refused by Node's HTTP
    // parser first; a path the URL parser already resolved to "/secret.txt" is not a page and
    // falls through to the server's 404).
    if (r.status === 400 && !path.includes("\\"))
      expect(r.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
  });

  it("decodes paths once and refuses every unsafe segment", () => {
    expect(safePath("/assets/a.js")).toBe("assets/a.js");
    expect(safePath("/sources/acme/")).toBe("sources/acme");
    expect(safePath("/")).toBe("");
    for (const bad of ["/a/../b", "/a/./b", "/a//b", "/.git/config", "/a%00", "/a%5cb", "/%E0%A4%A", "/a:b"])
      expect(safePath(bad)).toBeUndefined();
  });

  it("serves assets with their content type, a strict CSP and a year's cache", async () => {
    const js = await raw("/assets/index-abc123.js");
    expect(js.status).toBe(200);
    expect(js.body).toBe("console.log('app');");
    expect(js.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(js.headers["x-content-type-options"]).toBe("nosniff");
    const csp = String(js.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe");
    const css = await raw("/assets/index-abc123.css");
    expect(css.headers["content-type"]).toMatch(/^text\/css/);
  });

  it("answers pages of the app with index.html, revalidated, and missing files with 404", async () => {
    for (const path of ["/", "/sources/acme", "/versions/train%40abc", "/jobs/job-1/"]) {
      const r = await raw(path);
      expect(r.status, path).toBe(200);
      expect(r.headers["content-type"]).toMatch(/^text\/html/);
      expect(r.headers["cache-control"]).toBe("no-cache");
      expect(r.body).toContain("<div id=app>");
    }
    expect((await raw("/assets/index-old.js")).status).toBe(404);
    // Not a page of the dashboard: left to the server's own 404.
    for (const path of ["/favicon.png", "/etc", "/sourcesx", "/admin/"])
      expect((await raw(path)).status, path).toBe(404);
  });

  it("says plainly when the dashboard is not built", async () => {
    const empty = mkdtempSync(join(tmpdir(), "antidote-static-empty-"));
    const other = await listen(new Hono().use("*", dashboard(empty)).fetch);
    try {
      const r = await raw("/", other.port);
      expect(r.status).toBe(503);
      expect(r.headers["content-type"]).toMatch(/^text\/plain/);
      expect(r.body).toMatch(/dashboard is not built.*npm run build/s);
    } finally {
      other.server.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe("the API beside the dashboard", () => {
  let ledger: Ledger;
  let requestIds: RequestIdStore;
  let app: ReturnType<typeof createApp>;
  let reader = "";
  let supplier = "";
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-static-api-"));
    ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "test" });
    requestIds = openRequestIdStore(ledger);
    app = createApp({ ledger, jobs: fakeQueue(ledger), requestIds, log: () => undefined });
    reader = (
      await createToken(ledger, { principal: "rita", role: "reader", expires: "2099-01-01T00:00:00Z" })
    ).token;
    await addSource(ledger, { name: "acme", kind: "supplier", publicKeysPem: [], requireSignature: false });
    supplier = (await createToken(ledger, { principal: "acme-ci", role: "supplier:acme" })).token;
  });
  afterAll(async () => {
    await requestIds?.close();
    await ledger?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const get = (path: string, token?: string) =>
    app.request(path, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

  it("keeps /healthz, /openapi.json and /v1 errors as JSON", async () => {
    expect(await (await get("/healthz")).json()).toMatchObject({ ok: true });
    const doc = (await (await get("/openapi.json")).json()) as { paths: Record<string, unknown> };
    for (const path of [
      "/v1/whoami",
      "/v1/overview",
      "/v1/risk/sources",
      "/v1/sources/{name}/blast-radius",
      "/v1/sources/{name}/samples",
      "/v1/versions/{version}/summary",
    ])
      expect(Object.keys(doc.paths)).toContain(path);
    const unauthenticated = await get("/v1/nothing-here");
    expect(unauthenticated.status).toBe(401);
    const missing = await get("/v1/nothing-here", reader);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
    expect((await get("/v1")).status).toBe(401);
    // Outside the dashboard's pages, an unknown path is the API's JSON 404, as before.
    const etc = await get("/etc");
    expect(etc.status).toBe(404);
    expect(((await etc.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
  });

  it("says who a token is, for any role, and never its secret", async () => {
    const me = (await (await get("/v1/whoami", reader)).json()) as Record<string, unknown>;
    expect(me).toMatchObject({
      principal: "rita",
      role: "reader",
      source: null,
      expiresAt: "2099-01-01T00:00:00.000Z",
    });
    expect(me.permissions).toEqual(["read", "deliveries:read"]);
    expect(JSON.stringify(me)).not.toContain(reader.slice(22));
    const acme = (await (await get("/v1/whoami", supplier)).json()) as Record<string, unknown>;
    expect(acme).toMatchObject({
      role: "supplier",
      source: "acme",
      permissions: ["deliver", "deliveries:read"],
    });
    expect((await get("/v1/whoami")).status).toBe(401);
  });

  it("lets readers read the overview, and refuses it to a supplier", async () => {
    const overview = await get("/v1/overview", reader);
    expect(overview.status).toBe(200);
    expect(await overview.json()).toMatchObject({
      sources: { total: 1, flagged: 0 },
      quarantine: { samples: 0, sources: 0 },
    });
    expect((await get("/v1/overview", supplier)).status).toBe(403);
    expect((await get("/v1/risk/sources?limit=0", reader)).status).toBe(400);
    expect((await get("/v1/sources/nope/blast-radius", reader)).status).toBe(404);
    expect((await get("/v1/sources/nope/samples?cursor=zz", reader)).status).toBe(400);
  });
});
