// Refused deliveries, on SQLite and PostgreSQL: a tampered delivery, a supplier delivering as
// another source and data that does not parse each leave one row in `delivery_refusals` with
// the code and the reason the client got — and no ledger event, so `verify` stays ok and a
// stolen supplier token cannot fill the log. Failures of the request itself (no data part, a
// path-like file name) are not recorded. A reader pages them through the API and sees them on
// the overview; a supplier sees only its own source's; the table keeps the newest 10,000.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerConnection } from "../../src/ledger/index.js";
import { MAX_REFUSALS, latestRefusals } from "../../src/provenance/refusals.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { countEvents } from "./helpers.js";
import { useServer } from "./suite.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("refused deliveries on $name", (backend) => {
  const s = useServer(backend);

  it("records a tampered delivery and a supplier delivering as another source, writing no event", async () => {
    const events = await countEvents(s.ledger);
    const data = Buffer.from(s.delivery.bytes);
    data[data.length - 5] = 0x58; // one label character changed after signing
    const tampered = await s.nothingWritten(() => s.upload(s.deliveryParts("acme", data)));
    expect([tampered.status, tampered.body.error.code]).toEqual([422, "DIGEST_MISMATCH"]);
    const asCrawl = await s.nothingWritten(() => s.upload(s.deliveryParts("crawl")));
    expect([asCrawl.status, asCrawl.body.error.code]).toEqual([403, "FORBIDDEN"]);

    const refusals = await latestRefusals(s.ledger, { limit: 10 });
    expect(refusals).toEqual([
      expect.objectContaining({
        source: "crawl",
        principal: "acme-ci",
        code: "FORBIDDEN",
        message: asCrawl.body.error.message,
      }),
      expect.objectContaining({
        source: "acme",
        principal: "acme-ci",
        code: "DIGEST_MISMATCH",
        message: tampered.body.error.message,
      }),
    ]);
    expect(refusals[1]?.message).toMatch(/delivery\.csv/);
    expect(refusals[1]?.message).not.toMatch(/antidote-upload-|\/tmp\//);
    expect(Date.parse(refusals[0]?.at ?? "")).not.toBeNaN();
    expect(await countEvents(s.ledger)).toBe(events);
    expect(await s.ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
  });

  it("does not record failures of the request itself", async () => {
    const before = await latestRefusals(s.ledger, { limit: 100 });
    const noData = await s.nothingWritten(() => s.upload(s.deliveryParts("acme").slice(0, 1)));
    expect([noData.status, noData.body.error.message]).toEqual([400, expect.stringMatching(/form\.data/)]);
    const pathLike = await s.nothingWritten(() =>
      s.upload([
        { name: "source", value: "acme" },
        { name: "data", filename: "../x", value: "id,text,label\n1,a,b\n" },
      ]),
    );
    expect([pathLike.status, pathLike.body.error.message]).toEqual([
      400,
      expect.stringMatching(/upload file name/),
    ]);
    expect(await latestRefusals(s.ledger, { limit: 100 })).toEqual(before);
  });

  it("lists them for a reader (paged, and on the overview); a supplier sees only its own source's", async () => {
    // Data that does not parse, delivered by an admin to a source that needs no signature.
    const garbage = await s.nothingWritten(() =>
      s.upload(
        [
          { name: "source", value: "crawl" },
          { name: "data", filename: "dump.bin", value: Buffer.from([0, 1, 2, 3, 255, 254]) },
        ],
        s.admin,
      ),
    );
    expect(garbage.status).toBeGreaterThanOrEqual(400);
    expect(garbage.status).toBeLessThan(500);

    const all = await s.call("GET", "/v1/deliveries/refused", { token: s.reader });
    expect(all.status).toBe(200);
    expect(all.body.items.map((r) => [r.source, r.code])).toEqual([
      ["crawl", garbage.body.error.code],
      ["crawl", "FORBIDDEN"],
      ["acme", "DIGEST_MISMATCH"],
    ]);
    expect(all.body.items[0]).toMatchObject({ principal: "root", message: garbage.body.error.message });
    expect(all.body.nextCursor).toBeNull();

    const first = await s.call("GET", "/v1/deliveries/refused?limit=2", { token: s.reader });
    expect(first.body.items).toEqual(all.body.items.slice(0, 2));
    const next = await s.call("GET", `/v1/deliveries/refused?limit=2&cursor=${first.body.nextCursor ?? ""}`, {
      token: s.reader,
    });
    expect(next.body).toEqual({ items: all.body.items.slice(2), nextCursor: null });
    // The largest page the route allows (it asks the library for one more, to know about a next page).
    const largest = await s.call("GET", "/v1/deliveries/refused?limit=1000", { token: s.reader });
    expect(largest.status).toBe(200);
    expect(largest.body.items).toEqual(all.body.items);
    const crawl = await s.call("GET", "/v1/deliveries/refused?source=crawl", { token: s.analyst });
    expect(crawl.body.items).toEqual(all.body.items.slice(0, 2));
    const badCursor = await s.call("GET", "/v1/deliveries/refused?cursor=abc", { token: s.reader });
    expect([badCursor.status, badCursor.body.error.message]).toEqual([
      400,
      expect.stringMatching(/^query\.cursor:/),
    ]);

    const own = await s.call("GET", "/v1/deliveries/refused", { token: s.supplier });
    expect(own.body.items.map((r) => [r.source, r.code])).toEqual([["acme", "DIGEST_MISMATCH"]]);
    const other = await s.call("GET", "/v1/deliveries/refused?source=crawl", { token: s.supplier });
    expect([other.status, other.body.error.code]).toEqual([403, "FORBIDDEN"]);

    const overview = await s.call("GET", "/v1/overview", { token: s.reader });
    expect(overview.body).toMatchObject({ deliveries: { refused: all.body.items } });
    const doc = (await s.call("GET", "/openapi.json")).body as unknown as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toContain("/v1/deliveries/refused");
  });

  it("keeps the newest 10,000", async () => {
    const db = ledgerConnection(s.ledger);
    const at = new Date(0).toISOString();
    for (let i = 0; i < MAX_REFUSALS; i += 500)
      await db
        .insertInto("delivery_refusals")
        .values(
          Array.from({ length: 500 }, (_, k) => ({
            at,
            source: "flood",
            principal: "flood",
            code: "SIGNATURE_INVALID",
            message: `refusal ${i + k}`,
          })),
        )
        .execute();
    const oldest = await latestRefusals(s.ledger, { source: "acme" });
    expect(oldest).toHaveLength(1);
    const r = await s.nothingWritten(() => s.upload(s.deliveryParts("crawl")));
    expect(r.status).toBe(403);
    const { count } = await db
      .selectFrom("delivery_refusals")
      .select((e) => e.fn.countAll<string>().as("count"))
      .executeTakeFirstOrThrow();
    expect(Number(count)).toBe(MAX_REFUSALS);
    // The oldest went first: the earlier refusals, then the first of the flood.
    expect(await latestRefusals(s.ledger, { source: "acme" })).toEqual([]);
    const [newest] = await latestRefusals(s.ledger, { limit: 1 });
    expect(newest).toMatchObject({ source: "crawl", code: "FORBIDDEN" });
    expect(await s.ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
  });
});
