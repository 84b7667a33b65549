// The HTTP API attacked the way a hostile client would, over a socket, on SQLite and on
// PostgreSQL: no token, or a bad, revoked or expired one; a reader trying every mutating route
// of the OpenAPI document; a supplier delivering as another source; tampered data and a
// tampered bundle; path-like upload names; malformed JSON, a wrong content type, bodies over
// the limit (declared and streamed), a missing request id; a replayed request. Each is a 4xx
// with the one JSON error shape, and the ledger, the sample store and the disk are unchanged.
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeToken } from "../../src/auth/index.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { MULTIPART, isErrorBody, multipart, type Part } from "./helpers.js";
import { useServer } from "./suite.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("attacks on the API on $name", (backend) => {
  const s = useServer(backend);

  it("answers 401 with the JSON error without a token, or with a malformed, unknown, revoked or expired one", async () => {
    expect((await s.call("GET", "/healthz")).body).toMatchObject({ ok: true });
    const revoked = await s.token("old", "reader");
    await revokeToken(s.ledger, revoked.split("_")[1] ?? "", "test");
    const expired = await s.token("late", "reader", "1m", new Date(Date.now() - 120_000));
    const wrongSecret = s.admin.slice(0, -2) + (s.admin.endsWith("AA") ? "BB" : "AA");
    const cases: [string | undefined, RegExp][] = [
      [undefined, /needs an API token/],
      ["not-a-token", /not an Antidote API token/],
      [wrongSecret, /not valid/],
      [revoked, /revoked/],
      [expired, /expired/],
    ];
    for (const [bearer, message] of cases) {
      const r = await s.call("GET", "/v1/sources", bearer === undefined ? {} : { token: bearer });
      expect([r.status, r.body.error?.code]).toEqual([401, "UNAUTHENTICATED"]);
      expect(r.body.error.message).toMatch(message);
      expect(isErrorBody(r.body)).toBe(true);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
      if (bearer !== undefined) expect(r.text).not.toContain(bearer);
    }
  });

  it("refuses a reader (403) on every mutating route in the OpenAPI document, writing nothing", async () => {
    const doc = (await s.call("GET", "/openapi.json")).body as unknown as {
      paths: Record<string, Record<string, unknown>>;
    };
    const mutating = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ["post", "put", "patch", "delete"].includes(m))
        .map((m) => [m.toUpperCase(), path.replace(/\{[^}]+\}/g, "0123456789abcdef")] as const),
    );
    expect(mutating.length).toBeGreaterThanOrEqual(9);
    for (const [method, path] of mutating) {
      const r = await s.nothingWritten(() => s.call(method, path, { token: s.reader, json: {} }));
      expect([method, path, r.status, r.body.error.code]).toEqual([method, path, 403, "FORBIDDEN"]);
    }
  });

  it("refuses a supplier delivering as another source (403), whether the source comes first or last", async () => {
    for (const parts of [
      s.deliveryParts("crawl"),
      [...s.deliveryParts("crawl").slice(1), s.deliveryParts("crawl")[0] as Part],
    ]) {
      const r = await s.nothingWritten(() => s.upload(parts));
      expect([r.status, r.body.error.code]).toEqual([403, "FORBIDDEN"]);
      expect(r.body.error.message).toMatch(/may deliver only as source "acme", not "crawl"/);
    }
  });

  it("refuses tampered data and a tampered bundle (422) with the reason, writing nothing", async () => {
    const data = Buffer.from(s.delivery.bytes);
    data[data.length - 5] = 0x58; // one label character changed after signing
    const tamperedData = await s.nothingWritten(() => s.upload(s.deliveryParts("acme", data)));
    expect([tamperedData.status, tamperedData.body.error.code]).toEqual([422, "DIGEST_MISMATCH"]);
    expect(tamperedData.body.error.message).toMatch(/delivery\.csv/);
    expect(tamperedData.body.error.message).not.toMatch(/antidote-upload-|\/tmp\//);

    const bundle = JSON.parse(s.delivery.bundle) as { dsseEnvelope: { signatures: { sig: string }[] } };
    const sig = Buffer.from(bundle.dsseEnvelope.signatures[0]?.sig ?? "", "base64");
    sig[0] = (sig[0] ?? 0) ^ 0xff;
    (bundle.dsseEnvelope.signatures[0] as { sig: string }).sig = sig.toString("base64");
    const tamperedBundle = await s.nothingWritten(() =>
      s.upload(s.deliveryParts("acme", s.delivery.bytes, JSON.stringify(bundle))),
    );
    expect([tamperedBundle.status, tamperedBundle.body.error.code]).toEqual([422, "SIGNATURE_INVALID"]);
    expect(tamperedBundle.body.error.message).toMatch(/signature/);

    // The attacker's best try: tampered data, and the manifest in the bundle edited to match it.
    const forged = JSON.parse(s.delivery.bundle) as { dsseEnvelope: { payload: string } };
    const statement = Buffer.from(forged.dsseEnvelope.payload, "base64").toString("utf8");
    const honest = createHash("sha256").update(s.delivery.bytes).digest("hex");
    forged.dsseEnvelope.payload = Buffer.from(
      statement.replace(honest, createHash("sha256").update(data).digest("hex")),
    ).toString("base64");
    const forgedManifest = await s.nothingWritten(() =>
      s.upload(s.deliveryParts("acme", data, JSON.stringify(forged))),
    );
    expect([forgedManifest.status, forgedManifest.body.error.code]).toEqual([422, "SIGNATURE_INVALID"]);

    const unsigned = await s.nothingWritten(() => s.upload(s.deliveryParts("acme").slice(0, 2)));
    expect([unsigned.status, unsigned.body.error.message]).toEqual([
      422,
      expect.stringMatching(/requires signed deliveries/),
    ]);
  });

  it("refuses path-like upload names (400) and writes nothing outside the upload directory", async () => {
    const outside = readdirSync(dirname(s.uploads));
    for (const filename of [
      "../x",
      "a/../../x",
      "/etc/x",
      "a//b",
      "a/.git/x",
      "..\\x",
      ".hidden",
      "x".repeat(256),
    ]) {
      const r = await s.nothingWritten(() =>
        s.upload([
          { name: "source", value: "acme" },
          { name: "data", filename, value: "id,text,label\n1,a,b\n" },
        ]),
      );
      expect([r.status, r.body.error.message]).toEqual([400, expect.stringMatching(/upload file name/)]);
    }
    expect(readdirSync(dirname(s.uploads))).toEqual(outside);
    expect(existsSync(join(dirname(s.uploads), "x"))).toBe(false);
  });

  it("answers malformed JSON 400, a wrong content type 415, a body over the limit 413, a missing request id 400", async () => {
    const bad = await s.nothingWritten(() =>
      s.call("POST", "/v1/sources", { token: s.admin, json: '{"name": "x", kind:' }),
    );
    expect([bad.status, bad.body.error.code]).toEqual([400, "INPUT_FORMAT"]);
    const invalid = await s.nothingWritten(() =>
      s.call("POST", "/v1/sources", { token: s.admin, json: { name: "x", kind: "alien" } }),
    );
    expect([invalid.status, invalid.body.error.message]).toEqual([
      400,
      expect.stringMatching(/^body\.kind:/),
    ]);
    const text = await s.nothingWritten(() =>
      s.call("POST", "/v1/sources", { token: s.admin, json: "name=x", type: "text/plain" }),
    );
    expect([text.status, text.body.error.code]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
    const form = await s.nothingWritten(() =>
      s.call("POST", "/v1/decisions", {
        token: s.admin,
        body: multipart([{ name: "reason", value: "x" }]),
        type: MULTIPART,
      }),
    );
    expect(form.status).toBe(415);
    const huge = await s.nothingWritten(() =>
      s.call("POST", "/v1/sources", {
        token: s.admin,
        json: { name: "big", kind: "web", keys: ["x".repeat(70 * 1024)] },
      }),
    );
    expect([huge.status, huge.body.error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
    const bigUpload = await s.nothingWritten(() =>
      s.upload([
        { name: "source", value: "acme" },
        { name: "data", filename: "big.csv", value: Buffer.alloc(300 * 1024, 0x61) },
      ]),
    );
    expect([bigUpload.status, bigUpload.body.error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
    // Streamed without a Content-Length: counted as it arrives, refused once over.
    const chunked = await s.nothingWritten(async () => {
      const body = multipart([
        { name: "source", value: "acme" },
        { name: "data", filename: "big.csv", value: Buffer.alloc(300 * 1024, 0x61) },
      ]);
      const stream = new ReadableStream({
        start(c) {
          for (let i = 0; i < body.length; i += 16 * 1024)
            c.enqueue(new Uint8Array(body.subarray(i, i + 16 * 1024)));
          c.close();
        },
      });
      return s.call("POST", "/v1/deliveries", { token: s.supplier, body: stream, type: MULTIPART });
    });
    expect(chunked.status).toBe(413);
    const noId = await s.nothingWritten(() =>
      s.call("POST", "/v1/sources", { token: s.admin, json: { name: "y", kind: "web" }, requestId: null }),
    );
    expect([noId.status, noId.body.error.message]).toEqual([
      400,
      expect.stringMatching(/Antidote-Request-Id/),
    ]);
  });

  it("refuses a replayed request id (409) and writes nothing; a failed request does not use up its id", async () => {
    const id = "replay-test-0001";
    const first = await s.call("POST", "/v1/sources", {
      token: s.admin,
      json: { name: "once", kind: "web" },
      requestId: id,
    });
    expect(first.status).toBe(201);
    const replay = await s.nothingWritten(() =>
      s.call("POST", "/v1/sources", { token: s.admin, json: { name: "twice", kind: "web" }, requestId: id }),
    );
    expect([replay.status, replay.body.error.code]).toEqual([409, "REPLAYED"]);
    const failed = await s.call("POST", "/v1/sources", {
      token: s.admin,
      json: { name: "z" },
      requestId: "retry-me-0001",
    });
    expect(failed.status).toBe(400);
    const retried = await s.call("POST", "/v1/sources", {
      token: s.admin,
      json: { name: "z", kind: "web" },
      requestId: "retry-me-0001",
    });
    expect(retried.status).toBe(201);
  });
});
