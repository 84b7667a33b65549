// The honest paths of the HTTP API over a socket, on SQLite and on PostgreSQL: an admin
// registers a source and rotates its key; a supplier's signed delivery is verified and recorded
// under the supplier's principal (and recognised when sent again); reads page through versions,
// members, findings and deliveries; an analyst quarantines, registers a model by digest and
// reads its CycloneDX BOM; the ledger reports its verification and head; tokens are made,
// listed without secrets and revoked over HTTP. Every event names the token's principal.
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LedgerEvent } from "../../src/ledger/index.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { supplierKey, type Reply } from "./helpers.js";
import { secretOf, useServer } from "./suite.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("the API on $name", (backend) => {
  const s = useServer(backend);

  it("lets an admin register a source and rotate its key, recorded under the admin's principal", async () => {
    const vendor = supplierKey();
    const added = await s.call("POST", "/v1/sources", {
      token: s.admin,
      json: { name: "vendor", kind: "contractor", keys: [vendor.publicKeyPem] },
    });
    expect(added.status, added.text).toBe(201);
    expect(added.body).toMatchObject({
      name: "vendor",
      requireSignature: true,
      keys: [{ keyId: vendor.key.keyId }],
    });
    const again = await s.call("POST", "/v1/sources", {
      token: s.admin,
      json: { name: "vendor", kind: "web" },
    });
    expect([again.status, again.body.error.code]).toEqual([409, "SOURCE_EXISTS"]);
    const next = supplierKey();
    const rotated = await s.call("POST", "/v1/sources/vendor/keys", {
      token: s.admin,
      json: { publicKeyPem: next.publicKeyPem },
    });
    expect((rotated.body.keys as unknown[]).length).toBe(2);
    const prefix = vendor.key.keyId.slice(0, 12);
    const revoked = await s.call("DELETE", `/v1/sources/vendor/keys/${prefix}`, {
      token: s.admin,
      json: { reason: "rotated" },
    });
    expect(revoked.body.keys).toEqual([
      expect.objectContaining({ keyId: vendor.key.keyId, revokedAt: expect.any(String) as string }),
      expect.objectContaining({ keyId: next.key.keyId, revokedAt: null }),
    ]);
    const actors: string[] = [];
    for await (const e of s.ledger.events())
      if (e.kind.startsWith("source.") && e.payload !== null && JSON.stringify(e.payload).includes("vendor"))
        actors.push(e.actor);
    expect(actors).toEqual(["root", "root", "root"]);
    expect((await s.call("GET", "/v1/sources/vendor", { token: s.reader })).body.name).toBe("vendor");
    expect((await s.call("GET", "/v1/sources/nobody", { token: s.reader })).status).toBe(404);
    expect(
      (
        await s.call("POST", "/v1/sources/nobody/keys", {
          token: s.admin,
          json: { publicKeyPem: next.publicKeyPem },
        })
      ).status,
    ).toBe(404);
  });

  it("verifies a signed delivery uploaded over HTTP and records it under the supplier's principal", async () => {
    const before = s.storeFiles().length;
    const r = await s.upload(s.deliveryParts("acme"));
    expect(r.status, r.text).toBe(201);
    expect(r.body).toMatchObject({
      source: "acme",
      keyId: s.acme.key.keyId,
      sampleCount: 40,
      alreadyIngested: false,
    });
    const actors = new Set<string>();
    for await (const e of s.ledger.events())
      if (
        e.kind === "delivery.ingested" ||
        e.kind === "samples.added" ||
        e.kind === "dataset.version-created"
      )
        actors.add(e.actor);
    expect([...actors]).toEqual(["acme-ci"]);
    expect(s.storeFiles().length).toBe(before + 1);
    expect(readdirSync(s.uploads)).toEqual([]);
    // The same delivery again: verified again, nothing new written.
    const again = await s.upload(s.deliveryParts("acme"));
    expect([again.status, again.body.alreadyIngested]).toEqual([200, true]);
  });

  it("reads versions, members, trace, findings and deliveries, paginated", async () => {
    const versions = await s.call("GET", "/v1/versions?limit=1", { token: s.reader });
    expect(versions.body.items).toHaveLength(1);
    const version = versions.body.items[0]?.version as string;
    expect(
      (await s.call("GET", `/v1/versions/${encodeURIComponent(version)}`, { token: s.reader })).body
        .sampleCount,
    ).toBe(40);
    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Reply = await s.call(
        "GET",
        `/v1/versions/${encodeURIComponent(version)}/members?limit=15${cursor === null ? "" : `&cursor=${cursor}`}`,
        { token: s.reader },
      );
      expect(page.status, page.text).toBe(200);
      pages.push(...(page.body.items as { digest: string }[]).map((m) => m.digest));
      cursor = page.body.nextCursor;
    } while (cursor !== null);
    expect(pages).toHaveLength(40);
    expect([...pages].sort()).toEqual(pages);
    expect((await s.call("GET", "/v1/versions?cursor=nope", { token: s.reader })).status).toBe(400);

    const trace = await s.call("GET", "/v1/sources/acme/trace?limit=5", { token: s.reader });
    expect([trace.body.sampleCount, (trace.body.samples as unknown[]).length]).toEqual([40, 5]);
    const sample = await s.call("GET", `/v1/samples/${pages[0]}/trace`, { token: s.reader });
    expect(sample.body.sample).toMatchObject({ digest: pages[0] });
    expect((await s.call("GET", "/v1/samples/nothing-here/trace", { token: s.reader })).status).toBe(404);

    await s.ledger.append(
      pages.slice(0, 5).map((digest, i) => ({
        kind: "finding.recorded" as const,
        payload: {
          subjectType: "sample" as const,
          subjectId: digest,
          kind: "label-issue",
          score: i / 4,
          evidence: {},
          check: "test",
          checkVersion: "1",
        },
      })),
    );
    const high = await s.call("GET", "/v1/findings?subjectType=sample&minScore=0.5&limit=2", {
      token: s.reader,
    });
    expect(high.body.items.map((f) => f.score)).toEqual([0.5, 0.75]);
    const next = await s.call(
      "GET",
      `/v1/findings?subjectType=sample&minScore=0.5&limit=2&cursor=${high.body.nextCursor}`,
      { token: s.reader },
    );
    expect([next.body.items.map((f) => f.score), next.body.nextCursor]).toEqual([[1], null]);

    expect((await s.call("GET", "/v1/deliveries", { token: s.supplier })).body.items).toHaveLength(1);
    expect((await s.call("GET", "/v1/deliveries?source=crawl", { token: s.supplier })).status).toBe(403);
    expect((await s.call("GET", "/v1/sources", { token: s.supplier })).status).toBe(403);
  });

  it("lets an analyst quarantine (as its principal), register a model by digest and read its CycloneDX BOM", async () => {
    const q = await s.call("POST", "/v1/decisions", {
      token: s.analyst,
      json: { action: "quarantine", findingsOver: 0.6, reason: "scan" },
    });
    expect([q.status, q.body]).toEqual([
      201,
      { action: "quarantine", sources: [], samples: 2, actor: "ana", reason: "scan" },
    ]);
    let last: LedgerEvent | undefined;
    for await (const e of s.ledger.events()) last = e;
    expect([last?.kind, last?.actor]).toEqual(["decision.recorded", "ana"]);
    expect(
      (
        await s.call("POST", "/v1/decisions", {
          token: s.analyst,
          json: { action: "quarantine", sources: ["nobody"], reason: "x" },
        })
      ).status,
    ).toBe(404);

    const version = (await s.call("GET", "/v1/versions", { token: s.analyst })).body.items[0]
      ?.version as string;
    const digest = "ab".repeat(32);
    const m = await s.call("POST", "/v1/models", {
      token: s.analyst,
      json: { digest, name: "clf", trainedOn: [version] },
    });
    expect([m.status, m.body.digest]).toEqual([201, digest]);
    expect(
      (
        await s.call("POST", "/v1/models", {
          token: s.analyst,
          json: { digest, name: "clf", trainedOn: [version] },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await s.call("POST", "/v1/models", {
          token: s.analyst,
          json: { digest: "cd".repeat(32), name: "x", trainedOn: ["nope@1"] },
        })
      ).status,
    ).toBe(404);
    expect((await s.call("GET", `/v1/models/${digest.slice(0, 12)}`, { token: s.reader })).body.name).toBe(
      "clf",
    );
    const bom = await s.call("GET", `/v1/models/${digest}/bom`, { token: s.reader });
    expect(bom.status, bom.text).toBe(200);
    expect(bom.body).toMatchObject({ bomFormat: "CycloneDX", specVersion: "1.6" });
    expect(bom.text).toContain(version);
  });

  it("reports the ledger's verification and signed head", async () => {
    expect((await s.call("GET", "/v1/ledger/verify", { token: s.reader })).body).toMatchObject({
      ok: true,
      tableMismatches: [],
    });
    const head = await s.call("GET", "/v1/ledger/head", { token: s.reader });
    expect(head.body).toMatchObject({ format: "antidote-ledger-head/v1", keyId: s.ledger.signer.keyId });
  });

  it("makes, lists and revokes tokens over HTTP (admin only); a secret is shown once", async () => {
    const made = await s.call("POST", "/v1/tokens", {
      token: s.admin,
      json: { principal: "ci", role: "supplier:acme", expires: "1d" },
    });
    expect(made.status, made.text).toBe(201);
    s.secret(made.body.token as string);
    expect((await s.call("GET", "/v1/deliveries", { token: made.body.token as string })).status).toBe(200);
    const list = await s.call("GET", "/v1/tokens", { token: s.admin });
    expect(list.text).not.toContain(secretOf(made.body.token as string));
    expect(list.text).not.toMatch(/secretSha256/);
    expect((list.body as unknown as { principal: string }[]).map((t) => t.principal)).toContain("ci");
    expect((await s.call("GET", "/v1/tokens", { token: s.analyst })).status).toBe(403);
    const revoked = await s.call("DELETE", `/v1/tokens/${made.body.tokenId as string}`, {
      token: s.admin,
      json: { reason: "rotated" },
    });
    expect([revoked.status, revoked.body.alreadyRevoked]).toEqual([200, false]);
    expect((await s.call("GET", "/v1/deliveries", { token: made.body.token as string })).status).toBe(401);
    // A query-string secret is never logged either.
    await s.call("GET", `/v1/sources?s.token=${s.admin}`, { token: s.admin });
  });
});
