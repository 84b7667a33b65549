// The in-process engine with `isolate` (what `antidote serve` uses): each job runs in a child
// process on the same ledger. A scan of 1,000 real images (2 % BadNets-patched) runs there and
// records its findings once; its process killed with SIGKILL mid-scan leaves the job to be
// run again once the claim lapses, recorded once; the server's process never runs a job.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import type { JobQueue } from "../../src/jobs/types.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import { freshLedger, patchedVersion, jobEvents, waitFor, waitForState, type TestLedger } from "./engines.js";

/** Pids of this test's job processes (child.ts, told apart by the ledger's location). */
function jobProcesses(location: string): number[] {
  let out = "";
  try {
    out = execFileSync("pgrep", ["-f", "in-process/child"]).toString();
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
  return out
    .trim()
    .split("\n")
    .map(Number)
    .filter((pid) => {
      try {
        return execFileSync("cat", [`/proc/${pid}/environ`])
          .toString()
          .includes(location);
      } catch {
        return false;
      }
    });
}

describe.runIf(hasFashionMnist())("in-process jobs isolated in child processes", () => {
  let t: TestLedger;
  let queue: JobQueue;
  let version: string;
  let victims: Set<string>;

  beforeAll(async () => {
    t = await freshLedger("antidote-isolate-");
    ({ version, victims } = await patchedVersion(t, 1000));
    queue = await createInProcessQueue({
      ledger: t.ledger,
      pollMs: 200,
      leaseMs: 3000,
      isolate: { location: t.location, keyPath: t.keyPath },
    });
  });
  afterAll(async () => {
    await queue?.close();
    await t?.close();
  });

  const scan = () =>
    queue.submit("scan", { version, detectors: ["trigger-patches"], imageProxy: "mlp", seed: 0 }, "ana");

  it("runs a scan in a child process and records its findings once", async () => {
    const job = await scan();
    await waitFor("the job's process", () => jobProcesses(t.location).length === 1, 60_000);
    const done = await waitForState(queue, job.jobId, "done", 120_000);
    expect(done.attempts).toBe(1);
    expect((await jobEvents(t.ledger, job.jobId)).map((e) => e.kind)).toEqual([
      "job.submitted",
      "job.finished",
    ]);
    let flagged = 0;
    let hits = 0;
    for await (const f of t.ledger.findings({ subjectType: "sample" })) {
      flagged++;
      if (victims.has((f.evidence as { id: string }).id)) hits++;
    }
    expect(hits / flagged).toBeGreaterThanOrEqual(0.9);
    expect(hits / victims.size).toBeGreaterThanOrEqual(0.9);
    await waitFor("the job's process to exit", () => jobProcesses(t.location).length === 0);
  }, 180_000);

  it("runs again a job whose process was killed with SIGKILL, and records it once", async () => {
    const before = await countFindings();
    const job = await scan();
    const [pid] = await waitFor(
      "the job's process",
      () => {
        const pids = jobProcesses(t.location);
        return pids.length === 1 ? pids : undefined;
      },
      60_000,
    );
    await waitFor("the scan to start", async () => (await queue.get(job.jobId))?.progress !== null, 60_000);
    process.kill(pid as number, "SIGKILL");
    const done = await waitForState(queue, job.jobId, "done", 180_000);
    expect(done.attempts).toBe(2);
    const kinds = (await jobEvents(t.ledger, job.jobId)).map((e) => e.kind);
    expect(kinds).toEqual(["job.submitted", "job.finished"]);
    // The same findings as the first scan's, once more — not twice.
    expect((await countFindings()) - before).toBe(before);
    expect((await t.ledger.verify()).ok).toBe(true);
  }, 240_000);

  async function countFindings(): Promise<number> {
    let n = 0;
    for await (const _ of t.ledger.findings({ subjectType: "sample" })) n++;
    return n;
  }
});
