// The hash chain and its faults, on SQLite and PostgreSQL: the chain recomputes with the
// documented formula, and edits, truncation and bad batches are caught.
import { createHash, createPublicKey } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import canonicalize from "canonicalize";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import type { Ledger, LedgerEvent } from "../../src/ledger/index.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type FreshLedger } from "./backends.js";
import { decision, deliveryEvents, finding, model, realSamples, sourceAdded } from "./events.js";

const samples = realSamples(1500);

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

async function collectEvents(ledger: Ledger, fromSeq?: number): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  for await (const e of ledger.events(fromSeq)) out.push(e);
  return out;
}

/** A ledger with two sources, two deliveries, findings, decisions and models: `appends` separate appends. */
async function populated(fresh: FreshLedger): Promise<{ ledger: Ledger; appends: number }> {
  const ledger = await fresh.open("tester");
  let appends = 0;
  const append = async (events: Parameters<Ledger["append"]>[0]) => {
    await ledger.append(events);
    appends++;
  };
  await append([sourceAdded("acme"), sourceAdded("crawl", "web")]);
  await append(
    deliveryEvents({
      deliveryId: "d-acme",
      source: "acme",
      samples: samples.slice(0, 1000),
      version: "fm-a@1",
      batch: 250,
    }),
  );
  await append(
    deliveryEvents({
      deliveryId: "d-crawl",
      source: "crawl",
      samples: samples.slice(1000),
      version: "fm-c@1",
      batch: 250,
    }),
  );
  for (let i = 0; i < 20; i++) await append([finding((samples[i] as { digest: string }).digest, i / 20)]);
  await append([decision("quarantine", "source", ["crawl"])]);
  await append([model("m".repeat(8), ["fm-a@1", "fm-c@1"])]);
  return { ledger, appends };
}

describe.each(BACKENDS)("ledger chain on $name", (backend) => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it("chains many appends so that the documented formula recomputes every hash, and verify agrees", async () => {
    const fresh = await backend.fresh();
    const { ledger, appends } = await populated(fresh);
    const events = await collectEvents(ledger);
    // Independent oracle: the formula in src/ledger/chain.ts, written out with node:crypto.
    let prev = "0".repeat(64);
    events.forEach((e, i) => {
      expect(e.seq).toBe(i + 1);
      expect(e.prevHash).toBe(prev);
      const body = canonicalize({ seq: e.seq, at: e.at, actor: e.actor, kind: e.kind, payload: e.payload });
      expect(e.hash).toBe(createHash("sha256").update(`${prev}\n${body}`).digest("hex"));
      prev = e.hash;
    });
    expect(events[0]?.kind).toBe("ledger.key-rotated");
    expect(events.filter((e) => e.kind === "samples.added")).toHaveLength(6);
    expect((await collectEvents(ledger, 10)).map((e) => e.seq)).toEqual(events.slice(9).map((e) => e.seq));

    // The tree head, by the same oracle: RFC 9162's MTH over leaf = SHA-256(0x00 || event hash).
    const sha = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();
    const mth = (leaves: Buffer[]): Buffer => {
      if (leaves.length === 1) return leaves[0] as Buffer;
      let k = 1;
      while (k * 2 < leaves.length) k *= 2;
      return sha(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
    };
    const root = mth(events.map((e) => sha(Buffer.from([0]), Buffer.from(e.hash, "hex")))).toString("hex");
    const report = await ledger.verify();
    expect(report).toEqual({
      ok: true,
      events: events.length,
      checkpoints: appends + 1,
      root,
      tableMismatches: [],
      localWitness: "ok",
    });
    await ledger.close();
  });

  it("names the seq of an event whose payload was edited in the database", async () => {
    const fresh = await backend.fresh();
    const { ledger } = await populated(fresh);
    const raw = await fresh.raw();
    const [target] = await raw.query<{ seq: number }>(
      "select seq from events where kind = 'samples.added' order by seq limit 1 offset 2",
    );
    const seq = Number(target?.seq);
    // Relabel one sample inside the stored event — a label flip hidden in the provenance.
    const label = (samples[500] as { label: string }).label;
    const [before] = await raw.query<{ payload: string }>("select payload from events where seq = ?", [seq]);
    const edited = (before?.payload ?? "").replace(
      `"label":"${label}"`,
      `"label":"${label === "Bag" ? "Coat" : "Bag"}"`,
    );
    expect(edited).not.toBe(before?.payload);
    await raw.query("update events set payload = ? where seq = ?", [edited, seq]);
    await raw.close();

    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad?.seq).toBe(seq);
    expect(report.firstBad?.reason).toMatch(/hash does not recompute/);
    // The replay takes the edited label, the stored table does not: the samples table differs.
    expect(report.tableMismatches.join("\n")).toMatch(/^samples: /m);
    await ledger.close();
  });

  it("reports a derived table edited behind the log's back, with an intact chain", async () => {
    const fresh = await backend.fresh();
    const { ledger } = await populated(fresh);
    expect(await ledger.isQuarantined((samples[1200] as { digest: string }).digest)).toBe(true);
    const raw = await fresh.raw();
    await raw.query("update quarantine set quarantined = 0 where subject_id = 'crawl'");
    await raw.close();
    expect(await ledger.isQuarantined((samples[1200] as { digest: string }).digest)).toBe(false);
    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad).toBeUndefined();
    expect(report.tableMismatches).toEqual(["quarantine: row contents differ from a replay of the events"]);
    await ledger.close();
  });

  it("names an event deleted from the middle of the log", async () => {
    const fresh = await backend.fresh();
    const { ledger } = await populated(fresh);
    const total = (await collectEvents(ledger)).length;
    const raw = await fresh.raw();
    await raw.query("delete from events where seq = 5");
    await raw.close();
    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.events).toBe(total - 1);
    expect(report.firstBad).toEqual({ seq: 5, reason: "event 5 is missing (the log jumps to 6)" });
    await ledger.close();
  });

  it("detects trailing events deleted while their checkpoints remain", async () => {
    const fresh = await backend.fresh();
    const { ledger } = await populated(fresh);
    const last = (await collectEvents(ledger)).length;
    const raw = await fresh.raw();
    await raw.query("delete from events where seq > ?", [last - 3]);
    await raw.close();
    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.events).toBe(last - 3);
    expect(report.firstBad?.seq).toBe(last - 2);
    expect(report.firstBad?.reason).toMatch(
      /checkpoint at seq \d+ records head \d+ but the log ends at \d+: trailing events were deleted/,
    );
    await ledger.close();
  });

  it("detects trailing events deleted together with their checkpoints, through the witness", async () => {
    const fresh = await backend.fresh();
    const { ledger } = await populated(fresh);
    const last = (await collectEvents(ledger)).length;
    const raw = await fresh.raw();
    // Cut back to an earlier checkpoint, so events and checkpoints left agree with each other.
    const [cut] = await raw.query<{ seq: number }>(
      "select seq from checkpoints where seq < ? order by seq desc limit 1",
      [last - 5],
    );
    const keep = Number(cut?.seq);
    await raw.query("delete from events where seq > ?", [keep]);
    await raw.query("delete from checkpoints where seq > ?", [keep]);
    const left = await raw.query<{ n: number | string }>(
      "select count(*) as n from checkpoints where seq > ?",
      [keep],
    );
    expect(Number(left[0]?.n)).toBe(0);
    await raw.close();

    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad).toEqual({
      seq: keep + 1,
      reason: expect.stringMatching(
        new RegExp(`^witness .*head\\.json records head ${last} but the log ends at ${keep}`),
      ) as string,
    });
    await ledger.close();
  });

  it("rejects a batch with an invalid payload, naming event, kind and field, and writes nothing", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open();
    await ledger.append([sourceAdded("acme")]);
    const before = await collectEvents(ledger);
    const events = deliveryEvents({
      deliveryId: "d1",
      source: "acme",
      samples: samples.slice(0, 10),
      version: "v@1",
      batch: 5,
    });
    const bad = structuredClone(events);
    const batch = bad[2] as { payload: { samples: { digest: string }[] } };
    (batch.payload.samples[1] as { digest: string }).digest = "not-a-digest";
    const error = await ledger.append(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AntidoteError);
    expect((error as AntidoteError).code).toBe("ROW_MALFORMED");
    expect((error as AntidoteError).message).toMatch(
      /^ledger event #2 \(samples\.added\): payload\.samples\[1\]\.digest: expected 64 lowercase hex/,
    );
    expect(await collectEvents(ledger)).toEqual(before);
    expect(await ledger.listDeliveries()).toEqual([]);
    expect((await ledger.verify()).checkpoints).toBe(2);
    await ledger.close();
  });

  it("refuses unknown and duplicate sources atomically", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open();
    await ledger.append([sourceAdded("acme")]);
    const count = (await collectEvents(ledger)).length;
    // The finding is valid, but the batch also names an unknown source: none of it is written.
    const unknown = await ledger
      .append([
        finding((samples[0] as { digest: string }).digest, 1),
        ...deliveryEvents({
          deliveryId: "d",
          source: "nobody",
          samples: samples.slice(0, 3),
          version: "v@1",
        }),
      ])
      .catch((e: unknown) => e);
    expect((unknown as AntidoteError).code).toBe("SOURCE_UNKNOWN");
    expect((unknown as AntidoteError).message).toMatch(
      /ledger event #1 \(delivery\.ingested\): source "nobody" is not registered.*known: acme/,
    );
    const revoke = await ledger
      .append([
        { kind: "source.key-revoked", payload: { source: "ghost", keyId: "a".repeat(64), reason: "x" } },
      ])
      .catch((e: unknown) => e);
    expect((revoke as AntidoteError).code).toBe("SOURCE_UNKNOWN");
    const dup = await ledger.append([sourceAdded("acme", "web")]).catch((e: unknown) => e);
    expect((dup as AntidoteError).code).toBe("SOURCE_EXISTS");
    expect((dup as AntidoteError).message).toMatch(/source "acme" is already registered \(supplier/);
    expect(await collectEvents(ledger)).toHaveLength(count);
    expect(await ledger.findings()[Symbol.asyncIterator]().next()).toEqual({ done: true, value: undefined });
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
  });

  it("records the same delivery once: a repeated ingest is a no-op", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open();
    await ledger.append([sourceAdded("acme")]);
    const events = deliveryEvents({
      deliveryId: "d1",
      source: "acme",
      samples: samples.slice(0, 300),
      version: "v@1",
      batch: 100,
    });
    const first = await ledger.append(events);
    expect(first).toHaveLength(events.length);
    const again = await ledger.append(
      deliveryEvents({
        deliveryId: "d1-retry",
        source: "acme",
        samples: samples.slice(0, 300),
        version: "v@2",
        manifestDigest: first[0]?.kind === "delivery.ingested" ? first[0].payload.manifestDigest : "",
      }),
    );
    expect(again).toEqual([]);
    expect(
      await ledger.findDelivery((first[0] as { payload: { manifestDigest: string } }).payload.manifestDigest),
    ).toEqual({
      deliveryId: "d1",
      datasetVersion: "v@1",
    });
    expect((await ledger.listDeliveries()).map((d) => d.deliveryId)).toEqual(["d1"]);
    expect((await ledger.traceSource("acme")).sampleCount).toBe(300);
    expect(await ledger.listDatasetVersions()).toHaveLength(1);
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
  });

  it("re-opens without re-running migrations or re-recording its key", async () => {
    const fresh = await backend.fresh();
    const first = await fresh.open();
    await first.append([sourceAdded("acme")]);
    expect(statSync(fresh.keyPath).mode & 0o777).toBe(0o600);
    await first.close();
    const second = await fresh.open();
    const events = await collectEvents(second);
    expect(events.map((e) => e.kind)).toEqual(["ledger.key-rotated", "source.added"]);
    expect((await second.getSource("acme"))?.kind).toBe("supplier");
    expect((await second.verify()).ok).toBe(true);
    await second.close();
    const raw = await fresh.raw();
    const migrations = await raw.query<{ name: string }>("select name from kysely_migration order by name");
    await raw.close();
    expect(migrations.map((m) => m.name)).toEqual([
      "0001-initial",
      "0002-merkle-checkpoints",
      "0003-service",
      "0004-delivery-refusals",
      "0005-telemetry",
      "0006-events-by-kind",
    ]);
  });

  it("reports its location without a password and records a fresh key as a ledger.key-rotated event", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open();
    if (backend.name === "SQLite") expect(ledger.location).toBe(`sqlite:${fresh.location}`);
    else expect(ledger.location).toBe(fresh.location);
    expect(ledger.keyPath).toBe(fresh.keyPath);
    expect(existsSync(fresh.keyPath)).toBe(true);
    const [rotated] = await collectEvents(ledger);
    const spki = createPublicKey(readFileSync(fresh.keyPath, "utf8")).export({ type: "spki", format: "der" });
    expect(rotated?.kind === "ledger.key-rotated" && rotated.payload.keyId).toBe(
      createHash("sha256").update(spki).digest("hex"),
    );
    await ledger.close();
  });
});
