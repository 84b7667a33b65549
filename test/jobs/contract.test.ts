// The JobQueue contract, the same tests on both engines: a job goes queued → running → done
// with its progress visible through `watch`, its result, artifacts and events stored, and its
// request and outcome in the ledger with the principal as actor; bad parameters are refused
// naming the field, with nothing written; a queued job is cancelled at once and a running one
// at its next progress report; a failing runner's message is kept; each outcome is recorded
// once; and the ledger verifies after all of it.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/ledger/chain.js";
import type { JobQueue, JobRecord } from "../../src/jobs/types.js";
import type { AntidoteErrorCode } from "../../src/errors.js";
import { antidoteFailure } from "../helpers/errors.js";
import { ENGINES, freshLedger, jobEvents, waitFor, waitForState, type TestLedger } from "./engines.js";
import { countRunner } from "./fixtures/count-runner.js";

describe.each(ENGINES)("job queue: $name", (engine) => {
  let t: TestLedger;
  let queue: JobQueue;

  beforeAll(async () => {
    await engine.setup();
    t = await freshLedger();
    queue = await engine.open(t.ledger, t.location, [countRunner]);
  });
  afterAll(async () => {
    await queue?.close();
    await t?.close();
    await engine.teardown();
  });

  it("runs a job to done: progress through watch, result, artifacts and events recorded once", async () => {
    const submitted = await queue.submit("count", { steps: 8, stepMs: 60, findings: 2 }, "alice");
    expect(submitted).toMatchObject({ state: "queued", kind: "count", principal: "alice", attempts: 0 });
    expect(submitted.parameters).toEqual({ steps: 8, stepMs: 60, findings: 2 });
    expect(submitted.jobId).toMatch(/^job-[0-9a-f]{16}$/);

    const seen: JobRecord[] = [];
    for await (const record of queue.watch(submitted.jobId)) seen.push(record);
    const states = seen.map((r) => r.state);
    expect(states.at(-1)).toBe("done");
    expect(states).toContain("running");
    expect(states.indexOf("running")).toBeLessThan(states.indexOf("done"));
    const progress = seen.filter((r) => r.state === "running" && r.progress !== null);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]?.progress).toMatchObject({ stage: "count", total: 8 });

    const done = seen.at(-1) as JobRecord;
    expect(done).toMatchObject({
      result: { count: 8, inputs: {} },
      error: null,
      attempts: 1,
      artifacts: ["out.txt"],
    });
    const artifact = await queue.artifact(done.jobId, "out.txt");
    expect(new TextDecoder().decode(artifact?.bytes)).toBe("counted to 8\n");
    expect(artifact?.sha256).toBe(
      createHash("sha256")
        .update(artifact?.bytes ?? "")
        .digest("hex"),
    );
    expect(await queue.artifact(done.jobId, "missing.txt")).toBeUndefined();

    const events = await jobEvents(t.ledger, done.jobId);
    expect(events.map((e) => [e.kind, e.actor])).toEqual([
      ["job.submitted", "alice"],
      ["finding.recorded", "alice"],
      ["finding.recorded", "alice"],
      ["job.finished", "alice"],
    ]);
    expect(events[0]?.payload).toEqual({
      jobId: done.jobId,
      kind: "count",
      parameters: { steps: 8, stepMs: 60, findings: 2 },
    });
    expect(events[3]?.payload).toEqual({
      jobId: done.jobId,
      state: "done",
      resultDigest: createHash("sha256").update(canonicalJson(done.result)).digest("hex"),
      error: null,
    });
  });

  it("refuses bad parameters, kinds and inputs, naming what is wrong, and writes nothing", async () => {
    const before = await countEvents(t);
    await expectCode(queue.submit("count", { steps: "many" }, "alice"), "USAGE", /steps/);
    await expectCode(queue.submit("count", { steps: 1, unknown: true }, "alice"), "USAGE", /unknown/);
    await expectCode(queue.submit("nothing", {}, "alice"), "USAGE", /"nothing" is not known; known: count/);
    await expectCode(queue.submit("count", {}, ""), "USAGE", /principal/);
    await expectCode(
      queue.submit("count", {}, "alice", [{ name: "../etc/passwd", bytes: new Uint8Array(1) }]),
      "USAGE",
      /no directories/,
    );
    expect(await countEvents(t)).toBe(before);
    expect(await queue.list({ kind: "nothing" })).toEqual([]);
  });

  it("hands inputs to the runner and keeps them out of the artifact list", async () => {
    const bytes = new Uint8Array([1, 2, 3, 4, 5]);
    const job = await queue.submit("count", { steps: 1, stepMs: 0 }, "alice", [{ name: "data.bin", bytes }]);
    const done = await waitForState(queue, job.jobId, "done");
    expect(done.result).toEqual({ count: 1, inputs: { "data.bin": 5 } });
    expect(done.artifacts).toEqual(["out.txt"]);
    expect((await queue.artifact(job.jobId, "input/data.bin"))?.bytes).toEqual(bytes);
  });

  it("keeps a failing runner's message, recorded once as failed", async () => {
    const job = await queue.submit("count", { steps: 4, stepMs: 10, fail: "the data ran out" }, "carol");
    const failed = await waitForState(queue, job.jobId, "failed");
    expect(failed).toMatchObject({ error: "the data ran out", result: null, artifacts: [] });
    const finished = (await jobEvents(t.ledger, job.jobId)).filter((e) => e.kind === "job.finished");
    expect(finished.map((e) => [e.payload, e.actor])).toEqual([
      [{ jobId: job.jobId, state: "failed", resultDigest: null, error: "the data ran out" }, "carol"],
    ]);
  });

  it("cancels a queued job at once and a running one at its next progress report", async () => {
    const running = await queue.submit("count", { steps: 400, stepMs: 25 }, "alice");
    await waitFor(
      "the long job to report progress",
      async () => (await queue.get(running.jobId))?.progress ?? undefined,
    );
    // One job at a time on both engines: this one waits behind the first.
    const queued = await queue.submit("count", { steps: 1 }, "alice");
    const cancelledAtOnce = await queue.cancel(queued.jobId, "bob");
    expect(cancelledAtOnce.state).toBe("cancelled");

    const asked = await queue.cancel(running.jobId, "bob");
    expect(asked.state).toBe("running");
    const stopped = await waitForState(queue, running.jobId, "cancelled", 10_000);
    expect(stopped.result).toBeNull();
    expect((stopped.progress?.done ?? 0) < 400).toBe(true);
    // Cancelling a finished job changes nothing.
    expect((await queue.cancel(running.jobId, "bob")).state).toBe("cancelled");
    await expectCode(queue.cancel("job-0000000000000000", "bob"), "NOT_FOUND", /does not exist/);

    const finishedOf = async (jobId: string) =>
      (await jobEvents(t.ledger, jobId)).filter((e) => e.kind === "job.finished");
    // The queued job's cancel is recorded by whoever cancelled it; the running one's by its runner.
    expect(
      (await finishedOf(queued.jobId)).map((e) => [(e.payload as { state: string }).state, e.actor]),
    ).toEqual([["cancelled", "bob"]]);
    expect((await finishedOf(running.jobId)).map((e) => (e.payload as { state: string }).state)).toEqual([
      "cancelled",
    ]);
    // A cancelled job is not run later (BullMQ may still hold it): it stays cancelled.
    await new Promise((r) => setTimeout(r, 500));
    expect((await queue.get(queued.jobId))?.state).toBe("cancelled");
  });

  it("lists and reads jobs, and leaves a ledger that verifies", async () => {
    const all = await queue.list();
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.map((r) => r.createdAt)).toEqual([...all.map((r) => r.createdAt)].sort().reverse());
    const done = await queue.list({ state: "done" });
    expect(done.every((r) => r.state === "done")).toBe(true);
    expect(await queue.list({ state: "done", limit: 1 })).toHaveLength(1);
    expect(await queue.get("job-ffffffffffffffff")).toBeUndefined();
    const report = await t.ledger.verify();
    expect(report.ok).toBe(true);
    expect(report.tableMismatches).toEqual([]);
  });
});

async function countEvents(t: TestLedger): Promise<number> {
  let n = 0;
  for await (const _ of t.ledger.events()) n++;
  return n;
}

async function expectCode(p: Promise<unknown>, code: AntidoteErrorCode, message: RegExp): Promise<void> {
  const failure = await antidoteFailure(p);
  expect(failure.code).toBe(code);
  expect(failure.message).toMatch(message);
}
