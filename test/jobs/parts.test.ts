// The inputs of a sharded scan, attacked: `shards` out of range or without the model it needs is
// refused at submit, before anything is recorded; a part's name comes from Redis (anyone who can
// write to the queue can write one), so a name the job does not have is refused before anything
// runs or is kept, and a part of a job that has ended is skipped, not computed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runnerMap } from "../../src/jobs/core.js";
import { executePart } from "../../src/jobs/execute.js";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import { JOB_RUNNERS } from "../../src/jobs/runners/index.js";
import { JobStore } from "../../src/jobs/store.js";
import type { JobQueue } from "../../src/jobs/types.js";
import { antidoteFailure } from "../helpers/errors.js";
import { freshLedger, type TestLedger } from "./engines.js";

describe("a sharded scan's inputs", () => {
  let t: TestLedger;
  let queue: JobQueue;
  let store: JobStore;

  beforeAll(async () => {
    t = await freshLedger("antidote-parts-");
    queue = await createInProcessQueue({ ledger: t.ledger, pollMs: 60_000 });
    store = new JobStore(t.ledger);
  });
  afterAll(async () => {
    await queue?.close();
    await t?.close();
  });

  const events = async () => (await t.ledger.verify()).events;

  it("refuses shards out of range, and shards without the model, recording nothing", async () => {
    const before = await events();
    const model = [{ name: "model.onnx", bytes: new Uint8Array([1, 2, 3]) }];
    for (const shards of [1, 65, 2.5, "2"]) {
      const e = await antidoteFailure(queue.submit("scan", { version: "v@1", shards }, "ana", model));
      expect([e.code, e.message]).toEqual(["USAGE", expect.stringMatching(/shards/)]);
    }
    const missing = await antidoteFailure(queue.submit("scan", { version: "v@1", shards: 2 }, "ana"));
    expect([missing.code, missing.message]).toEqual(["USAGE", 'scan job: input "model.onnx" is missing.']);
    expect(await events()).toBe(before);
  });

  it("refuses a part name the job does not have, and skips the parts of a job that has ended", async () => {
    const ctx = { store, ledger: t.ledger, runners: runnerMap(JOB_RUNNERS) };
    const jobId = "job-00000000000000aa";
    await store.insert({
      jobId,
      kind: "scan",
      parameters: { version: "v@1", shards: 2 },
      principal: "ana",
      inputs: [],
    });
    const signal = new AbortController().signal;
    for (const part of ["shard-2-of-2", "shard-0-of-3", "../../etc/passwd", "part/shard-0-of-2"]) {
      const e = await antidoteFailure(executePart(ctx, jobId, part, signal));
      expect([e.code, e.message]).toEqual(["INTERNAL", expect.stringMatching(/has no part/)]);
    }
    expect(await store.partNames(jobId)).toEqual([]);
    await store.finish(jobId, { state: "cancelled" });
    expect(await executePart(ctx, jobId, "shard-0-of-2", signal)).toBe("skipped");
    expect(await store.partNames(jobId)).toEqual([]);
  });
});
