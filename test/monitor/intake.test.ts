// The telemetry intake, on SQLite and PostgreSQL, with batches of real Fashion-MNIST test
// images signed by their agent: accepted batches read back checked, a revoked key's and a
// quarantined agent's batches refused from then on, replays refused and gaps recorded, two
// copies sent at once landing once (the projection refusing the second under the write lock),
// the refusal list bounded while the counts keep every refusal, containment recorded, and an
// edited store file or telemetry_batches row caught. The attacks on a batch's signature, agent
// and content are in intake-attacks.test.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerConnection } from "../../src/ledger/index.js";
import {
  quarantineTelemetry,
  releaseTelemetry,
  resumeModel,
  suspendModel,
} from "../../src/monitor/containment.js";
import { ingestTelemetry } from "../../src/monitor/intake.js";
import { MAX_TELEMETRY_REFUSALS, telemetryRefusals } from "../../src/monitor/refusals.js";
import { readDecodedTelemetryBatch, readTelemetryBatch, telemetryDir } from "../../src/monitor/store.js";
import { recordDecision } from "../../src/provenance/decisions.js";
import { revokeSourceKey } from "../../src/provenance/sources.js";
import { antidoteFailure } from "../helpers/errors.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { MODEL, N, UNREGISTERED, useIntake } from "./intake-suite.js";
import { CLASSES } from "./telemetry-batches.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("telemetry intake on $name", (backend) => {
  const s = useIntake(backend);

  it("accepts a signed batch of real images and reads it back checked", async () => {
    const upload = s.batch(s.a1, 0);
    const images = s.lastImages;
    const accepted = await ingestTelemetry(s.ledger, upload, { principal: "agent-1-deploy" });
    expect(accepted).toMatchObject({
      batchId: "agent-1#0",
      agent: "agent-1",
      sequence: 0,
      keyId: s.a1.key.keyId,
      model: MODEL,
      count: N,
      feedbackCount: N / 4,
      gap: null,
      quarantined: false,
    });
    expect(s.storeFiles()).toEqual([accepted.store, accepted.store.replace(/\.jsonl$/, ".dsse.json")].sort());
    const events = [];
    for await (const e of s.ledger.events(accepted.seq)) events.push(e);
    expect(events).toMatchObject([{ kind: "telemetry.accepted", actor: "agent-1-deploy" }]);

    const read = await readTelemetryBatch(s.ledger, "agent-1#0");
    expect(read.records.map((r) => r.input.digest)).toEqual(images.map((s) => s.digest));
    expect(read.statement.records.sha256).toBe(accepted.recordsSha256);
    const decoded = await readDecodedTelemetryBatch(s.ledger, "agent-1#0");
    expect(decoded.records.map((r) => CLASSES[r.predicted])).toEqual(images.map((s) => s.label));
    expect(decoded.records[0]?.image?.data.length).toBe(28 * 28);
    expect(await s.ledger.lastTelemetrySequence("agent-1")).toBe(0);
  });

  it("refuses a revoked key's batches from the moment it is revoked, and a quarantined agent's", async () => {
    await ingestTelemetry(s.ledger, s.batch(s.a3, 0));
    await revokeSourceKey(s.ledger, "agent-3", s.a3.key.keyId, "laptop stolen");
    await s.refused(s.batch(s.a3, 1), "KEY_UNTRUSTED", /no current key/, "agent-3");
    await recordDecision(
      s.ledger,
      { action: "quarantine", sources: ["agent-2"], reason: "drift" },
      { actor: "test" },
    );
    await s.refused(s.batch(s.a2, 0), "FORBIDDEN", /quarantined/, "agent-2");
    await recordDecision(
      s.ledger,
      { action: "release", sources: ["agent-2"], reason: "cleared" },
      { actor: "test" },
    );
    expect((await ingestTelemetry(s.ledger, s.batch(s.a2, 0))).batchId).toBe("agent-2#0");
  });

  it("refuses replays and lower sequence numbers, records gaps, and lands two concurrent copies once", async () => {
    const one = s.batch(s.a1, 1);
    expect((await ingestTelemetry(s.ledger, one)).gap).toBeNull();
    await s.refused(one, "REPLAYED", /sent up to sequence 1; the next batch is 2/, "agent-1");
    await s.refused(s.batch(s.a1, 0), "REPLAYED", /replay/, "agent-1");
    const jump = await ingestTelemetry(s.ledger, s.batch(s.a1, 5));
    expect(jump.gap).toEqual({ expected: 2, got: 5 });
    expect((await s.ledger.getTelemetryBatch("agent-1#5"))?.gap).toEqual({ expected: 2, got: 5 });
    await s.refused(s.batch(s.a1, 3), "REPLAYED", /up to sequence 5/, "agent-1");

    const before = await s.state();
    const copy = s.batch(s.a1, 6);
    const results = await Promise.allSettled([
      ingestTelemetry(s.ledger, copy),
      ingestTelemetry(s.ledger, copy),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const rejected = results.find((r) => r.status === "rejected");
    expect((rejected?.reason as { code?: string }).code).toBe("REPLAYED");
    s.expected.set("agent-1\u0000REPLAYED", (s.expected.get("agent-1\u0000REPLAYED") ?? 0) + 1);
    const after = await s.state();
    expect(after.events).toBe(before.events + 1);
    expect(after.batches).toBe(before.batches + 1);
    expect(after.files.length).toBe(before.files.length + 2);

    // The projection is the backstop under the write lock: a second acceptance of a sequence,
    // or one whose gap is not what the s.ledger saw, cannot be appended by anyone.
    const accepted = await s.ledger.getTelemetryBatch("agent-1#6");
    const { quarantined: _q, seq: _s, at: _a, ...payload } = accepted ?? ({} as NonNullable<typeof accepted>);
    const again = await antidoteFailure(s.ledger.append([{ kind: "telemetry.accepted", payload }]));
    expect(again.code).toBe("REPLAYED");
    const skewed = { ...payload, batchId: "agent-1#8", sequence: 8, gap: null };
    expect(
      (await antidoteFailure(s.ledger.append([{ kind: "telemetry.accepted", payload: skewed }]))).code,
    ).toBe("USAGE");
    expect(await s.state()).toEqual(after);
  });

  it("keeps the newest 10,000 refusals listed, and counts every one", async () => {
    const db = ledgerConnection(s.ledger);
    const row = {
      at: new Date(0).toISOString(),
      agent: "agent-2",
      principal: "flood",
      code: "REPLAYED",
      message: "m",
    };
    for (let i = 0; i < MAX_TELEMETRY_REFUSALS; i += 1000)
      await db
        .insertInto("telemetry_refusals")
        .values(Array.from({ length: 1000 }, () => row))
        .execute();
    await s.refused(s.batch(s.a2, 0), "REPLAYED", /replay/, "agent-2");
    const kept = await db
      .selectFrom("telemetry_refusals")
      .select((eb) => eb.fn.countAll<string | number>().as("n"))
      .executeTakeFirst();
    expect(Number(kept?.n)).toBe(MAX_TELEMETRY_REFUSALS);
    const newest = await telemetryRefusals(s.ledger, { limit: 1 });
    expect(newest[0]).toMatchObject({ agent: "agent-2", code: "REPLAYED", principal: "local" });
  });

  it("contains: suspends and resumes a model, quarantines and releases batches", async () => {
    expect(await s.ledger.getModelStatus(MODEL)).toMatchObject({ status: "active", reason: null });
    const suspended = await suspendModel(s.ledger, MODEL.slice(0, 12), "trigger alarms from 3 agents", "ana");
    expect(suspended).toMatchObject({ unchanged: false, status: { status: "suspended", actor: "ana" } });
    expect((await suspendModel(s.ledger, MODEL, "again", "ana")).unchanged).toBe(true);
    expect(await s.ledger.getModelStatus(MODEL)).toMatchObject({
      status: "suspended",
      reason: "trigger alarms from 3 agents",
    });
    expect((await resumeModel(s.ledger, MODEL, "retrained", "ana")).status.status).toBe("active");
    expect(await s.ledger.getModelStatus(UNREGISTERED)).toBeUndefined();

    await quarantineTelemetry(s.ledger, ["agent-1#5", "agent-1#6"], "trigger alarm", "ana");
    const listed = await s.ledger.listTelemetryBatches({ agent: "agent-1" });
    expect(listed.filter((b) => b.quarantined).map((b) => b.batchId)).toEqual(["agent-1#5", "agent-1#6"]);
    await releaseTelemetry(s.ledger, ["agent-1#6"], "false alarm", "ana");
    expect((await s.ledger.getTelemetryBatch("agent-1#6"))?.quarantined).toBe(false);
    expect((await antidoteFailure(quarantineTelemetry(s.ledger, ["agent-1#4"], "x", "ana"))).code).toBe(
      "NOT_FOUND",
    );
    const page = await s.ledger.listTelemetryBatches({ agent: "agent-1", after: "agent-1#1", limit: 1 });
    expect(page.map((b) => b.batchId)).toEqual(["agent-1#5"]);
  });

  it("refuses to read a batch whose store file was edited", async () => {
    const { store } = (await s.ledger.getTelemetryBatch("agent-1#5")) ?? { store: "" };
    const file = join(telemetryDir(s.ledger), store);
    const original = readFileSync(file);
    const edited = Buffer.from(original);
    edited[200] = edited[200] === 0x30 ? 0x31 : 0x30;
    writeFileSync(file, edited);
    const failure = await antidoteFailure(readTelemetryBatch(s.ledger, "agent-1#5"));
    expect(failure.code).toBe("DIGEST_MISMATCH");
    expect(failure.message).toMatch(/modified after intake/);
    writeFileSync(file, original);
    expect((await readTelemetryBatch(s.ledger, "agent-1#5")).records).toHaveLength(N);
  });

  it("detects an edited telemetry_batches row: on read, and by verify's replay", async () => {
    const raw = await s.fresh.raw();
    try {
      const row = await s.ledger.getTelemetryBatch("agent-1#5");
      await raw.query("update telemetry_batches set records_sha256 = ? where batch_id = ?", [
        "0".repeat(64),
        "agent-1#5",
      ]);
      expect((await antidoteFailure(readTelemetryBatch(s.ledger, "agent-1#5"))).code).toBe("LEDGER_TAMPERED");
      const report = await s.ledger.verify();
      expect(report.ok).toBe(false);
      expect(report.tableMismatches).toEqual([
        expect.stringMatching(/^telemetry_batches: row contents differ/),
      ]);
      await raw.query("update telemetry_batches set records_sha256 = ? where batch_id = ?", [
        row?.recordsSha256,
        "agent-1#5",
      ]);
      expect((await s.ledger.verify()).ok).toBe(true);
    } finally {
      await raw.close();
    }
  });
});
