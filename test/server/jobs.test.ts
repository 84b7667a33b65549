// The job routes against the JobQueue contract (a fake queue: the engines have their own
// tests), in process with app.request, where a socket adds nothing: submit as JSON and as
// multipart with a model to audit, list, read, cancel, follow a job live over Server-Sent
// Events, and download what it produced; a reader may watch but not submit or cancel.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { createApp, openRequestIdStore, type RequestIdStore } from "../../src/server/index.js";
import { MULTIPART, caller, fakeQueue, multipart, type FakeQueue } from "./helpers.js";

let dir: string;
let ledger: Ledger;
let requestIds: RequestIdStore;
let jobs: FakeQueue;
let call: ReturnType<typeof caller>;
let analyst: string;
let reader: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-jobs-api-"));
  ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "test" });
  requestIds = openRequestIdStore(ledger);
  jobs = fakeQueue(ledger);
  const app = createApp({ ledger, jobs, requestIds, uploadDir: dir, log: () => undefined });
  call = caller((path, init) => Promise.resolve(app.request(path, init)));
  analyst = (await createToken(ledger, { principal: "ana", role: "analyst" })).token;
  reader = (await createToken(ledger, { principal: "rita", role: "reader" })).token;
});

afterAll(async () => {
  expect((await ledger.verify()).ok).toBe(true);
  await requestIds.close();
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("job routes", () => {
  it("submits a job as JSON under the token's principal; a reader may not; an unknown kind is a 400", async () => {
    const r = await call("POST", "/v1/jobs", {
      token: analyst,
      json: { kind: "scan", parameters: { version: "v@1" } },
    });
    expect([r.status, r.body.state, r.body.principal]).toEqual([202, "queued", "ana"]);
    let submitted;
    for await (const e of ledger.events()) if (e.kind === "job.submitted") submitted = e;
    expect(submitted).toMatchObject({ actor: "ana", payload: { jobId: r.body.jobId, kind: "scan" } });
    expect((await call("POST", "/v1/jobs", { token: reader, json: { kind: "scan" } })).status).toBe(403);
    const unknown = await call("POST", "/v1/jobs", { token: analyst, json: { kind: "mine-bitcoin" } });
    expect([unknown.status, unknown.body.error.code]).toEqual([400, "USAGE"]);
    expect((await call("POST", "/v1/jobs", { token: analyst, json: "{oops" })).status).toBe(400);
  });

  it("submits an audit with its model as multipart: the model becomes input model.onnx", async () => {
    const model = Buffer.from([0x08, 0x08, 0x12, 0x01, 0x61]);
    const body = multipart([
      { name: "kind", value: "audit" },
      { name: "parameters", value: JSON.stringify({ version: "v@1", references: ["clean.onnx"] }) },
      { name: "model", filename: "classifier.onnx", value: model },
      { name: "reference", filename: "clean.onnx", value: Buffer.from([0x08, 0x01]) },
    ]);
    const r = await call("POST", "/v1/jobs", { token: analyst, body, type: MULTIPART });
    expect(r.status, r.text).toBe(202);
    expect(jobs.inputs.get(r.body.jobId as string)?.map((i) => i.name)).toEqual(["model.onnx", "clean.onnx"]);
    expect(Buffer.from(jobs.inputs.get(r.body.jobId as string)?.[0]?.bytes ?? []).equals(model)).toBe(true);
    const sneaky = multipart([
      { name: "kind", value: "audit" },
      { name: "model", filename: "../../model.onnx", value: model },
    ]);
    expect((await call("POST", "/v1/jobs", { token: analyst, body: sneaky, type: MULTIPART })).status).toBe(
      400,
    );
    const badJson = multipart([
      { name: "kind", value: "audit" },
      { name: "parameters", value: "{nope" },
    ]);
    expect(
      (await call("POST", "/v1/jobs", { token: analyst, body: badJson, type: MULTIPART })).body.error.code,
    ).toBe("INPUT_FORMAT");
  });

  it("lists, reads and cancels jobs", async () => {
    const first = await call("GET", "/v1/jobs?limit=1", { token: reader });
    expect([first.body.items.length, first.body.nextCursor]).toEqual([1, "1"]);
    const second = await call("GET", `/v1/jobs?limit=1&cursor=${first.body.nextCursor}`, { token: reader });
    const id = first.body.items[0]?.jobId as string;
    expect(second.body.items[0]?.jobId).not.toBe(id);
    expect((await call("GET", `/v1/jobs/${id}`, { token: reader })).body.jobId).toBe(id);
    expect((await call("GET", "/v1/jobs/job-ffffffffffffffff", { token: reader })).status).toBe(404);
    expect((await call("GET", "/v1/jobs/../../etc", { token: reader })).status).toBe(404);
    expect((await call("GET", "/v1/jobs/nope", { token: reader })).body.error.message).toMatch(
      /^path\.jobId:/,
    );
    expect((await call("POST", `/v1/jobs/${id}/cancel`, { token: reader })).status).toBe(403);
    const cancelled = await call("POST", `/v1/jobs/${id}/cancel`, { token: analyst });
    expect([cancelled.status, cancelled.body.state]).toEqual([200, "cancelled"]);
  });

  it("streams a job's changes as Server-Sent Events until it ends", async () => {
    const { body: job } = await call("POST", "/v1/jobs", {
      token: analyst,
      json: { kind: "export", parameters: {} },
    });
    const id = job.jobId as string;
    const app = createApp({ ledger, jobs, requestIds, log: () => undefined });
    const response = await app.request(`/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    setTimeout(() => {
      jobs.advance(id, "running", { progress: { stage: "writing", done: 1, total: 2 } });
      setTimeout(() => jobs.advance(id, "done", { result: { written: 2 }, artifacts: ["report.json"] }), 20);
    }, 20);
    const text = await response.text();
    const events = text
      .split("\n\n")
      .filter((block) => block.includes("event: job"))
      .map(
        (block) =>
          JSON.parse(
            block
              .split("\n")
              .find((l) => l.startsWith("data: "))
              ?.slice(6) ?? "{}",
          ) as { state: string },
      );
    expect(events.map((e) => e.state)).toEqual(["queued", "running", "done"]);
  });

  it("downloads what a job produced, by a name that may hold a slash", async () => {
    const list = await call("GET", "/v1/jobs?state=done", { token: reader });
    const done = list.body.items[0]?.jobId as string;
    const report = await call("GET", `/v1/jobs/${done}/artifacts/report.json`, { token: reader });
    expect([report.status, report.body]).toEqual([200, { name: "report.json" }]);
    expect(report.headers.get("content-disposition")).toBe('attachment; filename="report.json"');
    const audit = (await call("GET", "/v1/jobs?kind=audit", { token: reader })).body.items[0]
      ?.jobId as string;
    for (const path of ["input/model.onnx", "input%2Fmodel.onnx"]) {
      const model = await call("GET", `/v1/jobs/${audit}/artifacts/${path}`, { token: reader });
      expect([path, model.status]).toEqual([path, 200]);
    }
    expect((await call("GET", `/v1/jobs/${done}/artifacts/nothing.txt`, { token: reader })).status).toBe(404);
    expect((await call("GET", `/v1/jobs/${done}/artifacts/report.json`)).status).toBe(401);
  });
});
