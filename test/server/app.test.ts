// The app as a whole, in process: the OpenAPI 3.1 document lists every route the app serves
// with its security; a token over its rate is refused with 429 and Retry-After while another
// token is not; two copies of one request racing each other run once; an unknown route and a
// server-side bug answer the JSON error shape, the bug with a generic message and no stack.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { createApp, openRequestIdStore, type RequestIdStore } from "../../src/server/index.js";
import { caller, countEvents, fakeQueue, isErrorBody } from "./helpers.js";

let dir: string;
let ledger: Ledger;
let requestIds: RequestIdStore;
let admin: string;
let other: string;
const logs: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-app-"));
  ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "test" });
  requestIds = openRequestIdStore(ledger);
  admin = (await createToken(ledger, { principal: "root", role: "admin" })).token;
  other = (await createToken(ledger, { principal: "rita", role: "reader" })).token;
});

afterAll(async () => {
  expect((await ledger.verify()).ok).toBe(true);
  for (const t of [admin, other]) expect(logs.join("\n")).not.toContain(t);
  await requestIds.close();
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

function app(limits = {}, jobs = fakeQueue(ledger)) {
  const built = createApp({ ledger, jobs, requestIds, limits, log: (l) => logs.push(l) });
  return { built, call: caller((path, init) => Promise.resolve(built.request(path, init))) };
}

describe("the app", () => {
  it("publishes OpenAPI 3.1 listing every route it serves, each /v1 route behind the bearer scheme", async () => {
    const { built, call } = app();
    const doc = (await call("GET", "/openapi.json")).body as unknown as {
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown[] }>>;
      components: { securitySchemes: Record<string, unknown> };
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    const served = built.routes
      .filter((r) => r.method !== "ALL" && r.path !== "/openapi.json")
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}")}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m} ${path}`),
    );
    expect([...new Set(served)].sort()).toEqual([...new Set(documented)].sort());
    expect(documented.length).toBeGreaterThanOrEqual(28);
    for (const [path, ops] of Object.entries(doc.paths))
      for (const op of Object.values(ops))
        if (path.startsWith("/v1/")) expect(op.security, path).toEqual([{ bearer: [] }]);
  });

  it("refuses a token over its rate with 429 and Retry-After, and not another token", async () => {
    const { call } = app({ ratePerSecond: 0.5, rateBurst: 3 });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await call("GET", "/v1/sources", { token: admin })).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await call("GET", "/v1/sources", { token: admin });
    expect([limited.body.error.code, limited.headers.get("retry-after")]).toEqual(["RATE_LIMITED", "2"]);
    expect((await call("GET", "/v1/sources", { token: other })).status).toBe(200);
  });

  it("runs two racing copies of one request once: the other is a replay (409)", async () => {
    const { call } = app();
    const before = await countEvents(ledger);
    const send = () =>
      call("POST", "/v1/sources", {
        token: admin,
        json: { name: "race", kind: "web" },
        requestId: "same-id-12345",
      });
    const replies = await Promise.all([send(), send(), send()]);
    expect(replies.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    expect(await countEvents(ledger)).toBe(before + 1);
  });

  it("answers an unknown route and a bug with the JSON error shape; the bug's details stay in the log", async () => {
    const { call } = app();
    const missing = await call("GET", "/v1/nothing", { token: admin });
    expect([missing.status, isErrorBody(missing.body)]).toEqual([404, true]);
    const broken = fakeQueue(ledger);
    broken.list = () =>
      Promise.reject(new Error("pg: password authentication failed for user secret_user at /srv/x"));
    const r = await app({}, broken).call("GET", "/v1/jobs", { token: admin });
    expect([r.status, r.body.error.code, isErrorBody(r.body)]).toEqual([500, "INTERNAL", true]);
    expect(r.text).not.toMatch(/secret_user|\/srv\/x|at .*\.ts/);
    expect(logs.some((l) => l.includes("secret_user"))).toBe(true);
  });
});
