// API tokens against a real SQLite ledger: a token authenticates as its principal and role;
// a wrong secret, an unknown id, a revoked or an expired token, and anything not shaped like
// a token are each refused with their reason; only the secret's hash reaches the ledger; the
// role table gives each role exactly its permissions.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PERMISSIONS,
  authenticate,
  createToken,
  hasPermission,
  parseExpiry,
  parseRole,
  revokeToken,
} from "../../src/auth/index.js";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { antidoteFailure, expectUsage } from "../helpers/errors.js";

let dir: string;
let ledger: Ledger;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-auth-"));
  ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "test" });
  await ledger.append([
    {
      kind: "source.added",
      payload: { name: "acme", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
    },
  ]);
});

afterAll(async () => {
  expect((await ledger.verify()).ok).toBe(true);
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("API tokens", () => {
  it("makes adt_<id>_<secret>, keeps only the hash, and authenticates the holder", async () => {
    const { token, grant } = await createToken(
      ledger,
      { principal: "alice", role: "analyst" },
      { actor: "root" },
    );
    expect(token).toMatch(/^adt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    // The secret is what follows "adt_<16 hex>_" (it may itself hold "_": base64url).
    const secret = token.slice("adt_".length + 17);
    expect(secret).toHaveLength(43);
    // Not in any event, table or file of the ledger: only its SHA-256.
    const events = [];
    for await (const e of ledger.events()) events.push(JSON.stringify(e));
    expect(events.join("\n")).not.toContain(secret);
    for (const file of ["ledger.db", "ledger.db-wal"].map((f) => join(dir, f)).filter((f) => existsSync(f)))
      expect(readFileSync(file).includes(Buffer.from(secret))).toBe(false);
    const created = events.find((e) => e.includes('"token.created"') && e.includes(grant.tokenId)) ?? "";
    expect(JSON.parse(created)).toMatchObject({
      actor: "root",
      payload: { principal: "alice", role: "analyst" },
    });

    expect(await authenticate(ledger, token)).toEqual({
      ok: true,
      tokenId: grant.tokenId,
      principal: "alice",
      role: "analyst",
      source: null,
      expiresAt: null,
    });
  });

  it("refuses a wrong secret and an unknown id alike, and anything not shaped like a token", async () => {
    const { token, grant } = await createToken(ledger, { principal: "bob", role: "reader" });
    const flipped = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    expect(await authenticate(ledger, flipped)).toEqual({ ok: false, reason: "unknown" });
    expect(await authenticate(ledger, token.replace(grant.tokenId, "0123456789abcdef"))).toEqual({
      ok: false,
      reason: "unknown",
    });
    for (const bad of ["", "adt_", token + "x", token.toUpperCase(), `Bearer ${token}`, "adt_zz_yy"])
      expect(await authenticate(ledger, bad)).toEqual({ ok: false, reason: "malformed" });
  });

  it("refuses a revoked token; revoking twice writes nothing", async () => {
    const { token, grant } = await createToken(ledger, { principal: "carol", role: "admin" });
    const first = await revokeToken(ledger, grant.tokenId, "left the team", { actor: "root" });
    expect(first.alreadyRevoked).toBe(false);
    expect(first.token.revokedAt).not.toBeNull();
    expect(await authenticate(ledger, token)).toEqual({ ok: false, reason: "revoked" });
    const before = (await ledger.verify()).events;
    expect((await revokeToken(ledger, grant.tokenId, "again")).alreadyRevoked).toBe(true);
    expect((await ledger.verify()).events).toBe(before);
    expect(await antidoteFailure(revokeToken(ledger, "ffffffffffffffff", "x"))).toMatchObject({
      code: "NOT_FOUND",
    });
  });

  it("refuses an expired token, and an expiry in the past at creation", async () => {
    const then = new Date("2026-01-01T00:00:00Z");
    const { token } = await createToken(
      ledger,
      { principal: "dave", role: "reader", expires: "1h" },
      { now: then },
    );
    expect(await authenticate(ledger, token, { now: new Date("2026-01-01T00:59:00Z") })).toMatchObject({
      ok: true,
    });
    expect(await authenticate(ledger, token, { now: new Date("2026-01-01T01:00:00Z") })).toEqual({
      ok: false,
      reason: "expired",
    });
    expect(
      await antidoteFailure(
        createToken(ledger, { principal: "x", role: "reader", expires: "2020-01-01T00:00:00Z" }),
      ),
    ).toMatchObject({ code: "USAGE", message: expect.stringMatching(/not in the future/) as string });
    expect(parseExpiry("30d", then)).toBe("2026-01-31T00:00:00.000Z");
    expectUsage(() => parseExpiry("soon", then), /neither a duration/);
  });

  it("binds a supplier token to a registered source", async () => {
    const { token } = await createToken(ledger, { principal: "acme-ci", role: "supplier:acme" });
    expect(await authenticate(ledger, token)).toMatchObject({ ok: true, role: "supplier", source: "acme" });
    expect(
      await antidoteFailure(createToken(ledger, { principal: "x", role: "supplier:nobody" })),
    ).toMatchObject({
      code: "SOURCE_UNKNOWN",
    });
    expectUsage(() => parseRole("supplier"), /names its source/);
    expectUsage(() => parseRole("admin:acme"), /only supplier and agent/);
    expectUsage(() => parseRole("root"), /not one of/);
    expect(await antidoteFailure(createToken(ledger, { principal: "a\nb", role: "reader" }))).toMatchObject({
      code: "USAGE",
    });
  });
});

describe("roles", () => {
  it("gives each role its permissions and no others", () => {
    const granted = (role: Parameters<typeof hasPermission>[0]) =>
      PERMISSIONS.filter((p) => hasPermission(role, p));
    expect(granted("reader")).toEqual(["read", "deliveries:read"]);
    expect(granted("analyst")).toEqual(["read", "deliveries:read", "decide", "models:write", "jobs:write"]);
    expect(granted("supplier")).toEqual(["deliveries:read", "deliver"]);
    expect(granted("agent")).toEqual(["deliveries:read", "deliver", "telemetry"]);
    expect(granted("admin")).toEqual([...PERMISSIONS]);
  });
});
