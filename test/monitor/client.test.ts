// The agent-side telemetry client: batches cut by count and by age, each one signed so that
// the envelope verifies with the agent's key and its statement's SHA-256, byte count and
// record count match the JSONL exactly (read back with the intake's own parser), sequence
// numbers one apart; retries on 5xx and lost connections with a fresh request id per attempt,
// a 409 after a lost answer counted as delivered, other 4xx reported and never retried,
// Retry-After waited out; malformed records refused at record(). Against a fake transport and
// against a real HTTP server on a free port that verifies what it receives.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Command } from "commander";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerTelemetrySign } from "../../src/cli/commands/telemetry-sign.js";
import { imageFromBytes } from "../../src/data/sample.js";
import { verifyEnvelope } from "../../src/provenance/dsse.js";
import { generateSigningKey, type SigningKey, type TrustedKey } from "../../src/provenance/keys.js";
import {
  createTelemetryClient,
  readTelemetryStatement,
  signTelemetryBatch,
  telemetryRecord,
  writeTelemetryBatch,
  type TelemetryBatchRefusal,
  type TelemetryResponse,
} from "../../src/monitor/client.js";
import { signingKeyFromPem } from "../../src/monitor/fleet/transport.js";
import {
  TELEMETRY_PAYLOAD_TYPE,
  parseTelemetryRecords,
  telemetryUploadSchema,
  type TelemetryUpload,
} from "../../src/monitor/schema.js";
import { antidoteFailure, expectUsage } from "../helpers/errors.js";
import { freePort } from "../helpers/free-port.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";
import { createHash } from "node:crypto";

const CLASSES = ["ham", "spam"];
const MODEL = "a".repeat(64);
let key: SigningKey;
let trusted: TrustedKey[];

beforeAll(() => {
  key = signingKeyFromPem(generateSigningKey().privateKeyPem);
  trusted = [{ keyId: key.keyId, publicKeyPem: key.publicKeyPem }];
});

/** A transport that records every call and answers from a script (then 201). */
function scripted(answers: (TelemetryResponse | Error)[] = []) {
  const calls: { upload: TelemetryUpload; requestId: string }[] = [];
  return {
    calls,
    send: (upload: TelemetryUpload, requestId: string): Promise<TelemetryResponse> => {
      calls.push({ upload, requestId });
      const next = answers.shift() ?? { status: 201, body: {} };
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
  };
}

function mail(i: number, spam = i % 3 === 0) {
  return {
    at: Date.UTC(2026, 11, 7, 12, 0, i),
    input: { text: `message ${i}: ${spam ? "cheap pills" : "lunch at noon?"}` },
    probs: spam ? [0.1, 0.9] : [0.8, 0.2],
    ...(i % 2 === 0 ? { feedback: { label: spam ? "spam" : "ham" } } : {}),
  };
}

/** The upload as the intake reads it: schema, signature, digest, count, bytes, records. */
function check(upload: TelemetryUpload) {
  expect(telemetryUploadSchema.safeParse(upload).success).toBe(true);
  expect(upload.envelope.payloadType).toBe(TELEMETRY_PAYLOAD_TYPE);
  const { keyId, payload } = verifyEnvelope(upload.envelope, trusted);
  expect(keyId).toBe(key.keyId);
  const statement = readTelemetryStatement(upload);
  expect(JSON.parse(payload.toString("utf8"))).toEqual(statement);
  const bytes = Buffer.from(upload.records, "utf8");
  expect(statement.records.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
  expect(statement.records.bytes).toBe(bytes.length);
  const records = parseTelemetryRecords(upload.records, statement, `batch ${statement.sequence}`);
  expect(records).toHaveLength(statement.records.count);
  expect(statement.window.start).toBe(
    new Date(Math.min(...records.map((r) => Date.parse(r.at)))).toISOString(),
  );
  expect(statement.window.end).toBe(
    new Date(Math.max(...records.map((r) => Date.parse(r.at)))).toISOString(),
  );
  return { statement, records };
}

const fast = { attempts: 4, baseDelayMs: 5, maxDelayMs: 50 };

describe("createTelemetryClient", () => {
  it("cuts a batch every maxRecords records, signs each, and numbers them one apart from firstSequence", async () => {
    const t = scripted();
    const client = createTelemetryClient({
      agent: "agent-17",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      maxRecords: 3,
      maxDelayMs: 60_000,
      firstSequence: 41,
    });
    for (let i = 0; i < 7; i++) client.record(mail(i));
    const stats = await client.close();
    expect(stats).toMatchObject({
      recorded: 7,
      batches: 3,
      delivered: 3,
      refused: 0,
      undelivered: 0,
      pending: 0,
    });
    const batches = t.calls.map((c) => check(c.upload));
    expect(batches.map((b) => b.statement.sequence)).toEqual([41, 42, 43]);
    expect(batches.map((b) => b.records.length)).toEqual([3, 3, 1]);
    expect(batches.every((b) => b.statement.agent === "agent-17" && b.statement.model === MODEL)).toBe(true);
    // Records in order, ids the client's counter, feedback kept, digests of the text as a sample's.
    expect(batches.flatMap((b) => b.records.map((r) => r.id))).toEqual(["0", "1", "2", "3", "4", "5", "6"]);
    expect(batches[0]?.records[0]?.feedback).toEqual({ label: "spam", kind: "human" });
    expect(batches[0]?.records[1]?.feedback).toBeUndefined();
    // Windows follow the records' times and do not overlap.
    expect(Date.parse(batches[1]!.statement.window.start)).toBeGreaterThan(
      Date.parse(batches[0]!.statement.window.end),
    );
    expect(client.nextSequence).toBe(44);
    expectUsage(() => client.record(mail(8)), /closed/);
  });

  it("sends a batch maxDelayMs after its first record without a flush", async () => {
    const t = scripted();
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      maxDelayMs: 40,
    });
    client.record(mail(1));
    client.record(mail(2));
    expect(t.calls).toHaveLength(0);
    const started = performance.now();
    while (t.calls.length === 0 && performance.now() - started < 5_000)
      await new Promise((r) => setTimeout(r, 10));
    expect(performance.now() - started).toBeGreaterThanOrEqual(30);
    expect(t.calls).toHaveLength(1);
    expect(check(t.calls[0]!.upload).records).toHaveLength(2);
    client.record(mail(3));
    expect(t.calls).toHaveLength(1); // a new timer for the next batch
    expect((await client.close()).batches).toBe(2);
  });

  it("also cuts by bytes, and by the window's longest span", async () => {
    const t = scripted();
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      maxBytes: 400,
    });
    for (let i = 0; i < 6; i++) client.record(mail(i));
    client.record({ ...mail(7), at: Date.UTC(2026, 11, 9) }); // two days later: a window may span one
    await client.close();
    const batches = t.calls.map((c) => check(c.upload));
    expect(batches.length).toBeGreaterThanOrEqual(3);
    expect(batches.every((b) => b.statement.records.bytes <= 400)).toBe(true);
    expect(batches.at(-1)?.records.map((r) => r.id)).toEqual(["6"]);
  });

  it("retries a 500 and a lost connection with a fresh request id each time, then delivers", async () => {
    const t = scripted([
      { status: 500, body: { error: { code: "INTERNAL", message: "boom" } } },
      new TypeError("fetch failed"),
      { status: 201, body: {} },
    ]);
    const delivered: unknown[] = [];
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      retry: fast,
      onDelivered: (d) => delivered.push(d),
    });
    client.record(mail(1));
    expect(await client.flush()).toMatchObject({ delivered: 1, refused: 0, undelivered: 0 });
    expect(t.calls).toHaveLength(3);
    expect(new Set(t.calls.map((c) => c.requestId)).size).toBe(3);
    expect(t.calls.every((c) => /^[A-Za-z0-9_-]{8,128}$/.test(c.requestId))).toBe(true);
    // The same signed bytes each time: a retry is the same batch.
    expect(new Set(t.calls.map((c) => JSON.stringify(c.upload))).size).toBe(1);
    expect(delivered).toEqual([{ sequence: 0, records: 1, status: 201, attempts: 3, duplicate: false }]);
  });

  it("counts a 409 after a lost answer as delivered; a 409 on a first attempt is a refusal", async () => {
    const t = scripted([
      new TypeError("socket hang up"),
      { status: 409, body: { error: { code: "REPLAYED", message: "sequence 0 was accepted before" } } },
      { status: 409, body: { error: { code: "REPLAYED", message: "sequence 1 is at or below 5" } } },
    ]);
    const refused: TelemetryBatchRefusal[] = [];
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      retry: fast,
      maxRecords: 1,
      onRefused: (r) => refused.push(r),
    });
    client.record(mail(1));
    client.record(mail(2));
    expect(await client.close()).toMatchObject({ batches: 2, delivered: 1, refused: 1 });
    expect(t.calls).toHaveLength(3);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      sequence: 1,
      status: 409,
      code: "REPLAYED",
      attempts: 1,
      retriable: false,
    });
  });

  it("does not retry a 4xx refusal, reports it with the server's code, and goes on with the next batch", async () => {
    const t = scripted([{ status: 400, body: { error: { code: "SIGNATURE_INVALID", message: "bad" } } }]);
    const refused: TelemetryBatchRefusal[] = [];
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      retry: fast,
      maxRecords: 2,
      onRefused: (r) => refused.push(r),
    });
    for (let i = 0; i < 4; i++) client.record(mail(i));
    expect(await client.close()).toMatchObject({ batches: 2, delivered: 1, refused: 1, undelivered: 0 });
    expect(t.calls).toHaveLength(2);
    expect(refused[0]).toMatchObject({
      sequence: 0,
      records: 2,
      status: 400,
      code: "SIGNATURE_INVALID",
      retriable: false,
    });
    // The refused batch comes back signed, to keep or ingest offline.
    expect(check(refused[0]!.upload).records).toHaveLength(2);
  });

  it("gives a batch up as retriable when every attempt fails", async () => {
    const t = scripted([503, 503, 503].map((status) => ({ status, body: null })));
    const refused: TelemetryBatchRefusal[] = [];
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: t.send,
      retry: { ...fast, attempts: 3 },
      onRefused: (r) => refused.push(r),
    });
    client.record(mail(1));
    expect(await client.close()).toMatchObject({ delivered: 0, refused: 0, undelivered: 1 });
    expect(refused[0]).toMatchObject({ status: 503, code: "HTTP_503", attempts: 3, retriable: true });
  });

  it("waits at least Retry-After before retrying a 429", async () => {
    const t = scripted([
      { status: 429, body: { error: { code: "RATE_LIMITED", message: "slow" } }, retryAfter: "1" },
    ]);
    const times: number[] = [];
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      send: (u, id) => {
        times.push(performance.now());
        return t.send(u, id);
      },
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5_000 },
    });
    client.record(mail(1));
    expect((await client.close()).delivered).toBe(1);
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(990);
    expect(times[1]! - times[0]!).toBeLessThan(5_000);
  });

  it("refuses a malformed record at record(), naming the field, and keeps the batch clean", async () => {
    const t = scripted();
    const client = createTelemetryClient({ agent: "a1", key, model: MODEL, classes: CLASSES, send: t.send });
    expectUsage(
      () => client.record({ ...mail(1), probs: [0.2, 0.3, 0.5] }),
      /"output.probs" has 3 values but the model has 2/,
    );
    expectUsage(() => client.record({ ...mail(1), probs: [Number.NaN, 1] }), /output\.probs/);
    expectUsage(() => client.record({ ...mail(1), probs: [0.5, 0.6] }), /sums to 1\.1000, not 1/);
    expectUsage(
      () => client.record({ ...mail(1), feedback: { label: "eggs" } }),
      /"feedback.label" is not one of/,
    );
    expectUsage(
      () => client.record({ ...mail(1), input: { text: "x", digest: "b".repeat(64) } }),
      /does not match/,
    );
    expectUsage(() => client.record({ ...mail(1), at: "yesterday" }), /"at" is not a valid time/);
    // A misconfigured agent fails at start-up, not at its first batch.
    expectUsage(
      () => createTelemetryClient({ agent: "a/b", key, model: MODEL, classes: CLASSES, send: t.send }),
      /"agent"/,
    );
    expectUsage(
      () => createTelemetryClient({ agent: "a1", key, model: "abc", classes: CLASSES, send: t.send }),
      /"model"/,
    );
    expectUsage(
      () => createTelemetryClient({ agent: "a1", key, model: MODEL, classes: ["x", "x"], send: t.send }),
      /twice/,
    );
    expectUsage(
      () => createTelemetryClient({ agent: "a1", key, model: MODEL, classes: CLASSES }),
      /send` or `server/,
    );
    client.record({ ...mail(1), id: "r1" });
    expectUsage(() => client.record({ ...mail(2), id: "r1" }), /repeats/);
    expect((await client.close()).recorded).toBe(1);
    expect(check(t.calls[0]!.upload).records.map((r) => r.id)).toEqual(["r1"]);
  });

  it.skipIf(!hasFashionMnist())(
    "sends images as 8-bit pixels whose digest is the sample's, or digests only",
    async () => {
      const [sample] = fashionMnistSamples(1, "t10k");
      const probs = new Float32Array(10).fill(0.02);
      probs[9] = 0.82;
      const t = scripted();
      const common = { agent: "a1", key, model: MODEL, classes: FASHION_MNIST_CLASSES, send: t.send };
      const full = createTelemetryClient(common);
      full.record({
        input: { image: sample!.image! },
        probs,
        feedback: { label: "Ankle boot", kind: "vote", by: "u1" },
      });
      await full.close();
      const lean = createTelemetryClient({ ...common, sendContent: false });
      lean.record({ input: { image: sample!.image! }, probs });
      await lean.close();
      const [a, b] = t.calls.map((c) => check(c.upload).records[0]!);
      expect(a!.input.digest).toBe(sample!.digest);
      const px = Buffer.from(a!.input.image!.pixels, "base64");
      expect(imageFromBytes(px, 28, 28, 1).data).toEqual(sample!.image!.data);
      // float32 probabilities travel as numbers that read back to the same float32
      expect(Float32Array.from(a!.output.probs)).toEqual(probs);
      expect(a!.feedback).toEqual({ label: "Ankle boot", kind: "vote", by: "u1" });
      expect(b!.input).toEqual({ digest: sample!.digest });
    },
  );
});

describe("signTelemetryBatch and the offline file pair", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "antidote-telemetry-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("writes batch.jsonl (the signed bytes) and batch.jsonl.dsse.json; an edit after signing is caught", async () => {
    const records = [1, 2, 3].map((i) => telemetryRecord({ ...mail(i), id: `r${i}` }, CLASSES));
    const upload = signTelemetryBatch(records, {
      agent: "agent-9",
      key,
      model: MODEL,
      classes: CLASSES,
      sequence: 7,
    });
    const { statement } = check(upload);
    expect(statement.sequence).toBe(7);
    const path = join(dir, "batch.jsonl");
    const written = await writeTelemetryBatch(upload, path);
    expect(written).toEqual({ records: path, envelope: `${path}.dsse.json` });
    expect(readFileSync(path, "utf8")).toBe(upload.records);
    const envelope = JSON.parse(readFileSync(`${path}.dsse.json`, "utf8")) as TelemetryUpload["envelope"];
    expect(check({ envelope, records: readFileSync(path, "utf8") }).records).toHaveLength(3);
    await expect(writeTelemetryBatch(upload, path)).rejects.toThrow(/exists/);
    // Altered after signing: the signature still verifies (it covers the statement) but the
    // statement's SHA-256 no longer matches the bytes.
    const altered = upload.records.replace('"label":"ham"', '"label":"spam"');
    expect(altered).not.toBe(upload.records);
    verifyEnvelope(upload.envelope, trusted);
    expect(createHash("sha256").update(altered).digest("hex")).not.toBe(statement.records.sha256);
    expect(() =>
      signTelemetryBatch([], { agent: "a", key, model: MODEL, classes: CLASSES, sequence: 0 }),
    ).toThrow(/at least one/);
  });
});

describe("antidote telemetry sign", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "antidote-telemetry-sign-"));
    writeFileSync(join(dir, "agent.key"), key.privateKey.export({ format: "pem", type: "pkcs8" }).toString());
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function sign(file: string, extra: string[] = []): Promise<string> {
    const program = new Command("antidote").exitOverride();
    registerTelemetrySign(program);
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    try {
      await program.parseAsync([
        ...[
          "node",
          "antidote",
          "telemetry",
          "sign",
          file,
          "--agent",
          "agent-3",
          "--key",
          join(dir, "agent.key"),
        ],
        ...["--model", MODEL, "--classes", "ham,spam", "--sequence", "12", ...extra],
      ]);
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it("signs the file's bytes as they are and writes the envelope beside them", async () => {
    const file = join(dir, "batch.jsonl");
    const lines = [1, 2, 3].map((i) => JSON.stringify(telemetryRecord({ ...mail(i), id: `r${i}` }, CLASSES)));
    writeFileSync(file, `${lines.join("\n")}\n`);
    expect(await sign(file)).toMatch(/signed agent-3#12: 3 records/);
    const envelope = JSON.parse(readFileSync(`${file}.dsse.json`, "utf8")) as TelemetryUpload["envelope"];
    const { statement } = check({ envelope, records: readFileSync(file, "utf8") });
    expect(statement).toMatchObject({ agent: "agent-3", sequence: 12, model: MODEL, classes: CLASSES });
  });

  it("refuses a file with a record the intake would refuse, naming the line and the field", async () => {
    const file = join(dir, "bad.jsonl");
    const good = JSON.stringify(telemetryRecord({ ...mail(1), id: "r1" }, CLASSES));
    const bad = good.replace('"id":"r1"', '"id":"r2"').replace("[0.8,0.2]", "[0.8,0.3]");
    writeFileSync(file, `${good}\n${bad}\n`);
    const failure = await antidoteFailure(sign(file));
    expect(failure.code).toBe("ROW_MALFORMED");
    expect(failure.message).toMatch(/bad\.jsonl:2: "output\.probs" sums to 1\.1000/);
    expect(existsSync(`${file}.dsse.json`)).toBe(false);
  });
});

describe("against a real HTTP server", () => {
  let server: Server;
  let url: string;
  const seen: {
    auth: string | undefined;
    type: string | undefined;
    id: string | undefined;
    sequence: number;
  }[] = [];
  let lastSequence = -1;
  let dropNextAnswer = false;

  // A minimal telemetry endpoint: checks the token and the signature, accepts each sequence
  // once (409 REPLAYED after), and can drop the connection after accepting, as a crash would.
  function handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (req.method !== "POST" || req.url !== "/v1/telemetry")
        return reply(404, { error: { code: "NOT_FOUND", message: "?" } });
      const upload = JSON.parse(Buffer.concat(chunks).toString("utf8")) as TelemetryUpload;
      const statement = readTelemetryStatement(upload);
      seen.push({
        auth: req.headers.authorization,
        type: req.headers["content-type"],
        id: req.headers["antidote-request-id"] as string | undefined,
        sequence: statement.sequence,
      });
      if (req.headers.authorization !== "Bearer s3cret")
        return reply(401, { error: { code: "UNAUTHENTICATED", message: "no" } });
      try {
        verifyEnvelope(upload.envelope, trusted);
        parseTelemetryRecords(upload.records, statement, "batch");
      } catch {
        return reply(400, { error: { code: "SIGNATURE_INVALID", message: "bad batch" } });
      }
      if (statement.sequence <= lastSequence)
        return reply(409, {
          error: { code: "REPLAYED", message: `sequence ${statement.sequence} was accepted before` },
        });
      lastSequence = statement.sequence;
      if (dropNextAnswer) {
        dropNextAnswer = false;
        res.socket?.destroy(); // accepted, but the answer is lost
        return;
      }
      reply(201, { batchId: `a1#${statement.sequence}` });
    });
  }

  beforeAll(async () => {
    const port = await freePort();
    server = createServer(handle);
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("POSTs JSON with the bearer token and a fresh request id; a batch whose answer was lost is delivered once", async () => {
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      server: { url, token: "s3cret" },
      maxRecords: 2,
      retry: fast,
    });
    client.record(mail(1));
    client.record(mail(2)); // batch 0
    await client.flush();
    dropNextAnswer = true;
    client.record(mail(3));
    client.record(mail(4)); // batch 1: accepted, answer lost, retried → 409 → delivered
    client.record(mail(5)); // batch 2
    expect(await client.close()).toMatchObject({ batches: 3, delivered: 3, refused: 0, undelivered: 0 });
    expect(seen.map((s) => s.sequence)).toEqual([0, 1, 1, 2]);
    expect(seen.every((s) => s.auth === "Bearer s3cret" && s.type === "application/json")).toBe(true);
    expect(new Set(seen.map((s) => s.id)).size).toBe(4);
    expect(lastSequence).toBe(2);
  });

  it("reports a refusal from the server (a wrong token) without retrying", async () => {
    const refused: TelemetryBatchRefusal[] = [];
    const before = seen.length;
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      server: { url, token: "wrong" },
      firstSequence: 10,
      retry: fast,
      onRefused: (r) => refused.push(r),
    });
    client.record(mail(1));
    expect(await client.close()).toMatchObject({ refused: 1 });
    expect(seen.length - before).toBe(1);
    expect(refused[0]).toMatchObject({ status: 401, code: "UNAUTHENTICATED", retriable: false });
  });

  it("retries while the server is down and gives the batch up as retriable", async () => {
    const port = await freePort(); // nothing listens here
    const refused: TelemetryBatchRefusal[] = [];
    const client = createTelemetryClient({
      agent: "a1",
      key,
      model: MODEL,
      classes: CLASSES,
      server: { url: `http://127.0.0.1:${port}`, token: "s3cret" },
      retry: { ...fast, attempts: 2 },
      onRefused: (r) => refused.push(r),
    });
    client.record(mail(1));
    expect(await client.close()).toMatchObject({ undelivered: 1 });
    expect(refused[0]).toMatchObject({ status: 0, code: "UNREACHABLE", attempts: 2, retriable: true });
  });
});
