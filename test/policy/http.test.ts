// The policy over HTTP. The server ingests through the same library function as the CLI, so a
// supplier's upload is refused under the policy in force (403, the rule named, no event, no
// store file); and the read-only policy routes answer what `policy show` and `source show
// --why` print, with the server's error shape for an unknown source.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenAPIHono } from "@hono/zod-openapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import type { Authenticated } from "../../src/auth/tokens.js";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { applyPolicy } from "../../src/policy/index.js";
import { addSource } from "../../src/provenance/sources.js";
import { createApp, openRequestIdStore, type RequestIdStore } from "../../src/server/index.js";
import { errorResponse } from "../../src/server/errors.js";
import { policyRoutes } from "../../src/server/routes/policy.js";
import type { AppEnv } from "../../src/server/types.js";
import {
  MULTIPART,
  caller,
  countEvents,
  fakeQueue,
  multipart,
  signedDelivery,
  supplierKey,
} from "../server/helpers.js";

let dir: string;
let ledger: Ledger;
let requestIds: RequestIdStore;
let token: string;
let delivery: Awaited<ReturnType<typeof signedDelivery>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-policy-http-"));
  ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "test" });
  requestIds = openRequestIdStore(ledger);
  const acme = supplierKey();
  await addSource(ledger, { name: "acme", kind: "supplier", trust: 0.5, publicKeysPem: [acme.publicKeyPem] });
  token = (await createToken(ledger, { principal: "acme-ci", role: "supplier:acme" })).token;
  delivery = await signedDelivery(mkdtempSync(join(dir, "supplier-")), acme);
});
afterAll(async () => {
  await requestIds.close();
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the policy over HTTP", () => {
  it("refuses a delivery under the policy's minimum reputation, writing nothing", async () => {
    const app = createApp({
      ledger,
      jobs: fakeQueue(ledger),
      requestIds,
      log: (l) => void process.stderr.write(`LOG ${l}\n`),
    });
    const call = caller(async (path, init) => app.request(path, init));
    const upload = (rows = delivery) =>
      call("POST", "/v1/deliveries", {
        token,
        type: MULTIPART,
        body: multipart([
          { name: "source", value: "acme" },
          { name: "data", filename: rows.file, value: rows.bytes },
          { name: "signature", filename: "delivery.sigstore.json", value: rows.bundle },
        ]),
      });
    expect((await upload()).status).toBe(201);
    // acme's prior 0.5 and one verified delivery give (2·0.5 + 1) / 3 ≈ 0.667; the policy asks 0.7.
    const path = join(dir, "policy.yaml");
    writeFileSync(
      path,
      "apiVersion: antidote.dev/policy/v1\nname: gate\nversion: 1\nkinds:\n  supplier:\n    minReputation: 0.7\n",
    );
    await applyPolicy(ledger, path, { actor: "ciso" });
    const events = await countEvents(ledger);
    const store = readdirSync(join(ledger.homeDir, "store"));
    const second = await signedDelivery(mkdtempSync(join(dir, "supplier-2-")), supplierKey(), 30);
    const refused = await upload({ ...delivery, bytes: second.bytes });
    expect([refused.status, refused.body.error.code]).toEqual([403, "FORBIDDEN"]);
    expect(refused.body.error.message).toMatch(
      /^policy "gate" 1 \(rule kinds\.supplier\.minReputation\): source "acme" has reputation 0\.667, under 0\.7/,
    );
    expect(await countEvents(ledger)).toBe(events);
    expect(readdirSync(join(ledger.homeDir, "store"))).toEqual(store);
  });

  it("answers GET /v1/policy and GET /v1/sources/{name}/reputation", async () => {
    const app = new OpenAPIHono<AppEnv>();
    app.use("*", async (c, next) => {
      c.set("auth", { principal: "rita", role: "reader", source: null } as unknown as Authenticated);
      await next();
    });
    app.route("/v1", policyRoutes(ledger));
    app.onError((e, c) => errorResponse(c, e, () => undefined));
    const policy = await app.request("/v1/policy");
    expect(policy.status).toBe(200);
    expect(await policy.json()).toMatchObject({
      actor: "ciso",
      policy: { name: "gate", kinds: { supplier: { minReputation: 0.7 } } },
    });
    const rep = await app.request("/v1/sources/acme/reputation");
    expect(rep.status).toBe(200);
    expect(await rep.json()).toMatchObject({
      source: "acme",
      prior: 0.5,
      score: 0.666667,
      // The policy's own refusal is not held against the source (it would ratchet the score).
      events: [expect.objectContaining({ kind: "delivery.ingested", evidence: 1 })],
    });
    const unknown = await app.request("/v1/sources/nobody/reputation");
    expect([unknown.status, ((await unknown.json()) as { error: { code: string } }).error.code]).toEqual([
      404,
      "SOURCE_UNKNOWN",
    ]);
  });
});
