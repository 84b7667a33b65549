// POST /v1/telemetry and its neighbours on a running `antidote serve`, on SQLite and
// PostgreSQL: an agent token sends its own signed batches of real Fashion-MNIST images; a
// replay is 409, another agent's name 403, each refused batch a counted refusal row and no
// event; readers and suppliers may not send, and no token is 401 (neither is a refusal). Batch
// and refusal pages, model status polled with an agent token after an analyst suspends the
// model, and quarantine of batches. The suite's own afterAll checks the ledger verifies.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { addSource } from "../../src/provenance/sources.js";
import type { TelemetryUpload } from "../../src/monitor/schema.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import {
  jsonl,
  makeAgent,
  recordsFor,
  signedBatch,
  testImages,
  windowEnding,
} from "../monitor/telemetry-batches.js";
import { countEvents } from "./helpers.js";
import { useServer } from "./suite.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

const MODEL = "c4".repeat(32);

describe.each(BACKENDS)("telemetry over HTTP on $name", (backend) => {
  const s = useServer(backend);
  const a17 = makeAgent("agent-17");
  const a18 = makeAgent("agent-18");
  let agent17 = "";
  let agent18 = "";
  let image = 0;
  const batch = (sequence: number, n = 12, agent = a17): TelemetryUpload => {
    const now = new Date();
    const records = recordsFor(testImages(image, n), new Date(now.getTime() - 30_000));
    image += n;
    return signedBatch(agent, { sequence, model: MODEL, text: jsonl(records), window: windowEnding(now) });
  };
  const send = (upload: unknown, token: string | undefined) =>
    s.call("POST", "/v1/telemetry", { ...(token !== undefined ? { token } : {}), json: upload });
  const counts = async () =>
    (await s.call("GET", "/v1/telemetry/refusals?limit=1000", { token: s.reader })).body.counts as {
      agent: string;
      code: string;
      refusals: number;
    }[];
  const refusalsOf = async (agent: string, code: string) =>
    (await counts()).find((c) => c.agent === agent && c.code === code)?.refusals ?? 0;

  beforeAll(async () => {
    for (const a of [a17, a18])
      await addSource(
        s.ledger,
        { name: a.name, kind: "agent", publicKeysPem: [a.publicKeyPem] },
        { actor: "test" },
      );
    await registerModelDigest(s.ledger, { digest: MODEL, name: "fm", trainedOn: [] }, { actor: "test" });
    agent17 = await s.token("agent-17-deploy", "agent:agent-17");
    agent18 = await s.token("agent-18-deploy", "agent:agent-18");
  });

  it("accepts an agent's own batch (201, over the JSON limit), refuses its replay (409) and counts it", async () => {
    // 80 records of 28×28 images: well over the suite's 64 KiB JSON limit, under telemetry's.
    const first = batch(0, 80);
    expect(JSON.stringify(first).length).toBeGreaterThan(64 * 1024);
    const accepted = await send(first, agent17);
    expect(accepted.status, accepted.text).toBe(201);
    expect(accepted.body).toMatchObject({ batchId: "agent-17#0", count: 80, gap: null, quarantined: false });
    const replay = await s.nothingWritten(() => send(first, agent17));
    expect([replay.status, replay.body.error.code]).toEqual([409, "REPLAYED"]);
    expect(replay.body.error.message).toMatch(/has sent up to sequence 0/);
    expect(await refusalsOf("agent-17", "REPLAYED")).toBe(1);
    const gap = await send(batch(3), agent17);
    expect([gap.status, gap.body.gap]).toEqual([201, { expected: 1, got: 3 }]);
    const events = await countEvents(s.ledger);
    const byAdmin = await send(batch(0, 12, a18), s.admin);
    expect([byAdmin.status, byAdmin.body.batchId]).toEqual([201, "agent-18#0"]);
    expect(await countEvents(s.ledger)).toBe(events + 1);
  });

  it("refuses an agent token sending as another agent (403, counted) and a forged signature (422)", async () => {
    const asOther = await s.nothingWritten(() => send(batch(1, 12, a18), agent17));
    expect([asOther.status, asOther.body.error.code]).toEqual([403, "FORBIDDEN"]);
    const refusals = await s.call("GET", "/v1/telemetry/refusals", { token: s.reader });
    expect(refusals.body.items[0]).toMatchObject({
      agent: "agent-18",
      principal: "agent-17-deploy",
      code: "FORBIDDEN",
    });
    const forged = batch(4);
    forged.envelope.signatures = [{ keyid: a17.key.keyId, sig: batch(4).envelope.signatures[0]?.sig ?? "" }];
    const bad = await s.nothingWritten(() => send(forged, agent17));
    expect([bad.status, bad.body.error.code]).toEqual([422, "SIGNATURE_INVALID"]);
    const malformed = await s.nothingWritten(() => send({ envelope: batch(4).envelope }, agent17));
    expect([malformed.status, malformed.body.error.code]).toEqual([400, "INPUT_FORMAT"]);
    // Checked on the server's intake threads: the refusal crosses back with its code.
    const tampered = batch(4);
    const nan = batch(4);
    nan.records = nan.records.replace('"probs":[', '"probs":[NaN,');
    const resigned = signedBatch(a17, {
      sequence: 4,
      model: MODEL,
      text: nan.records,
      window: windowEnding(new Date()),
    });
    const notJson = await s.nothingWritten(() => send(resigned, agent17));
    expect([notJson.status, notJson.body.error.code, notJson.body.error.message]).toEqual([
      400,
      "ROW_MALFORMED",
      expect.stringMatching(/batch agent-17#4:1: not JSON/),
    ]);
    const edited = await s.nothingWritten(() =>
      send({ ...tampered, records: tampered.records.replace("r0-", "r9-") }, agent17),
    );
    expect([edited.status, edited.body.error.code]).toEqual([422, "DIGEST_MISMATCH"]);
    expect(await refusalsOf("agent-17", "SIGNATURE_INVALID")).toBe(1);
    expect(await refusalsOf("agent-17", "ROW_MALFORMED")).toBe(1);
    expect(await refusalsOf("agent-17", "DIGEST_MISMATCH")).toBe(1);
    expect(await refusalsOf("agent-17", "INPUT_FORMAT")).toBe(1);
  });

  it("answers request failures without recording them: no token 401, reader and supplier 403, not JSON 400", async () => {
    const before = await counts();
    const upload = batch(5);
    const none = await s.nothingWritten(() => send(upload, undefined));
    expect([none.status, none.body.error.code]).toEqual([401, "UNAUTHENTICATED"]);
    for (const token of [s.reader, s.supplier]) {
      const denied = await s.nothingWritten(() => send(upload, token));
      expect([denied.status, denied.body.error.code]).toEqual([403, "FORBIDDEN"]);
    }
    const garbage = await s.nothingWritten(() =>
      s.call("POST", "/v1/telemetry", { token: agent17, body: "{not json", type: "application/json" }),
    );
    expect([garbage.status, garbage.body.error.code]).toEqual([400, "INPUT_FORMAT"]);
    expect(await counts()).toEqual(before);
    expect((await send(upload, agent17)).status).toBe(201);
  });

  it("pages batches; an agent token reads only its own", async () => {
    const all = await s.call("GET", "/v1/telemetry/batches", { token: s.reader });
    expect(all.body.items.map((b) => b.batchId)).toEqual([
      "agent-17#0",
      "agent-17#3",
      "agent-18#0",
      "agent-17#5",
    ]);
    const first = await s.call("GET", "/v1/telemetry/batches?limit=2&agent=agent-17", { token: s.analyst });
    expect(first.body.items.map((b) => b.batchId)).toEqual(["agent-17#0", "agent-17#3"]);
    const next = await s.call(
      "GET",
      `/v1/telemetry/batches?limit=2&agent=agent-17&cursor=${encodeURIComponent(first.body.nextCursor ?? "")}`,
      { token: s.analyst },
    );
    expect([next.body.items.map((b) => b.batchId), next.body.nextCursor]).toEqual([["agent-17#5"], null]);
    const own = await s.call("GET", "/v1/telemetry/batches", { token: agent18 });
    expect(own.body.items.map((b) => b.batchId)).toEqual(["agent-18#0"]);
    const other = await s.call("GET", "/v1/telemetry/batches?agent=agent-17", { token: agent18 });
    expect([other.status, other.body.error.code]).toEqual([403, "FORBIDDEN"]);
    const supplier = await s.call("GET", "/v1/telemetry/refusals", { token: s.supplier });
    expect(supplier.status).toBe(403);
    const badCursor = await s.call("GET", "/v1/telemetry/batches?cursor=nope%231", { token: s.reader });
    expect(badCursor.status).toBe(400);
  });

  it("suspends a model (analyst), which an agent token then reads as suspended; quarantines batches", async () => {
    const active = await s.call("GET", `/v1/models/${MODEL}/status`, { token: agent17 });
    expect([active.status, active.body.status]).toEqual([200, "active"]);
    const byReader = await s.nothingWritten(() =>
      s.call("POST", `/v1/models/${MODEL}/suspend`, { token: s.reader, json: { reason: "x" } }),
    );
    expect(byReader.status).toBe(403);
    const suspended = await s.call("POST", `/v1/models/${MODEL.slice(0, 10)}/suspend`, {
      token: s.analyst,
      json: { reason: "trigger alarms on 3 agents" },
    });
    expect([suspended.status, suspended.body.unchanged]).toEqual([201, false]);
    const polled = await s.call("GET", `/v1/models/${MODEL}/status`, { token: agent18 });
    expect(polled.body).toMatchObject({
      status: "suspended",
      reason: "trigger alarms on 3 agents",
      actor: "ana",
    });
    const again = await s.call("POST", `/v1/models/${MODEL}/suspend`, {
      token: s.analyst,
      json: { reason: "y" },
    });
    expect([again.status, again.body.unchanged]).toEqual([200, true]);
    const resumed = await s.call("POST", `/v1/models/${MODEL}/resume`, {
      token: s.admin,
      json: { reason: "clean" },
    });
    expect([resumed.status, (resumed.body.status as { status: string }).status]).toEqual([201, "active"]);
    const unknown = await s.call("GET", `/v1/models/${"9".repeat(64)}/status`, { token: agent17 });
    expect(unknown.status).toBe(404);

    const quarantined = await s.call("POST", "/v1/telemetry/quarantine", {
      token: s.analyst,
      json: { batches: ["agent-17#3"], reason: "trigger alarm" },
    });
    expect([quarantined.status, quarantined.body.actor]).toEqual([201, "ana"]);
    const listed = await s.call("GET", "/v1/telemetry/batches?agent=agent-17", { token: s.reader });
    expect(listed.body.items.map((b) => [b.batchId, b.quarantined])).toEqual([
      ["agent-17#0", false],
      ["agent-17#3", true],
      ["agent-17#5", false],
    ]);
    const byAgent = await s.call("POST", "/v1/telemetry/quarantine", {
      token: agent17,
      json: { batches: ["agent-17#3"], reason: "x" },
    });
    expect(byAgent.status).toBe(403);
    const doc = (await s.call("GET", "/openapi.json")).body as unknown as { paths: Record<string, unknown> };
    for (const path of [
      "/v1/telemetry",
      "/v1/telemetry/batches",
      "/v1/telemetry/refusals",
      "/v1/telemetry/quarantine",
      "/v1/models/{digest}/status",
      "/v1/models/{digest}/suspend",
    ])
      expect(Object.keys(doc.paths)).toContain(path);
  });
});
