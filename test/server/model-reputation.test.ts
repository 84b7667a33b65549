// The foundation-model reputation list and a model's lineage over HTTP: a reader may read but
// not decide; a malformed or unknown request is a 4xx naming the field with nothing written;
// `POST /v1/models` refuses to build on a distrusted base, as `model register` does.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { createApp, openRequestIdStore, type RequestIdStore } from "../../src/server/index.js";
import { deliveryEvents, realSamples, sha256, sourceAdded } from "../ledger/events.js";
import { caller, countEvents, fakeQueue } from "./helpers.js";

let dir: string;
let ledger: Ledger;
let requestIds: RequestIdStore;
const tokens: Record<string, string> = {};
const base = sha256("foundation");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-model-rep-http-"));
  ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "test" });
  requestIds = openRequestIdStore(ledger);
  await ledger.append([sourceAdded("acme")]);
  await ledger.append(
    deliveryEvents({ deliveryId: "d1", source: "acme", samples: realSamples(100), version: "fm@1" }),
  );
  for (const role of ["analyst", "reader"] as const)
    tokens[role] = (await createToken(ledger, { principal: role, role })).token;
});
afterAll(async () => {
  await requestIds.close();
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("model reputation and lineage over HTTP", () => {
  it("records a verdict for an analyst, refuses a reader and bad bodies, and guards registration", async () => {
    const app = createApp({ ledger, jobs: fakeQueue(ledger), requestIds, log: () => undefined });
    const call = caller(async (path, init) => app.request(path, init));
    const register = (digest: string, baseModel?: string) =>
      call("POST", "/v1/models", {
        token: tokens.analyst,
        json: { digest, name: digest.slice(0, 6), trainedOn: ["fm@1"], ...(baseModel ? { baseModel } : {}) },
      });
    expect((await register(base)).status).toBe(201);
    expect((await register(sha256("tune"), base.slice(0, 12))).status).toBe(201);

    const before = await countEvents(ledger);
    const reader = await call("PUT", `/v1/model-reputations/${base}`, {
      token: tokens.reader,
      json: { verdict: "distrusted", reason: "x" },
    });
    expect(reader.status).toBe(403);
    const badVerdict = await call("PUT", `/v1/model-reputations/${base}`, {
      token: tokens.analyst,
      json: { verdict: "maybe", reason: "x" },
    });
    expect(badVerdict.status).toBe(400);
    expect(badVerdict.text).toMatch(/verdict/);
    const extraField = await call("PUT", `/v1/model-reputations/${base}`, {
      token: tokens.analyst,
      json: { verdict: "trusted", reason: "x", publisher: "forged" },
    });
    expect(extraField.status).toBe(400);
    const unknown = await call("PUT", `/v1/model-reputations/${"ab".repeat(5)}`, {
      token: tokens.analyst,
      json: { verdict: "distrusted", reason: "x" },
    });
    expect(unknown.status).toBe(404);
    expect(await countEvents(ledger)).toBe(before);

    const set = await call("PUT", `/v1/model-reputations/${base.slice(0, 12)}`, {
      token: tokens.analyst,
      json: { verdict: "distrusted", reason: "backdoor found" },
    });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({
      digest: base,
      verdict: "distrusted",
      actor: "analyst",
      publisher: null,
    });
    const list = await call("GET", "/v1/model-reputations", { token: tokens.reader });
    expect((list.body as unknown as { digest: string }[]).map((r) => r.digest)).toEqual([base]);

    const lineage = await call("GET", `/v1/models/${base.slice(0, 10)}/lineage`, { token: tokens.reader });
    expect(lineage.status).toBe(200);
    expect(
      (lineage.body as unknown as { descendants: { digest: string }[] }).descendants.map((d) => d.digest),
    ).toEqual([sha256("tune")]);

    const afterDistrust = await countEvents(ledger);
    const refused = await register(sha256("tune-2"), base);
    expect(refused.status).toBe(403);
    expect(refused.text).toMatch(/distrusted \(backdoor found/);
    expect(await countEvents(ledger)).toBe(afterDistrust);
  });
});
