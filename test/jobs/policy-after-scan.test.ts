// A scan job under a curation policy: the job records which detectors ran on the version
// (what `requiredScans` reads) and, once its findings are in the ledger, the policy's
// autoQuarantine quarantines the flagged samples — decisions that name the policy and rule.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInProcessQueue } from "../../src/jobs/in-process/queue.js";
import type { JobQueue } from "../../src/jobs/types.js";
import { applyPolicy } from "../../src/policy/index.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import { freshLedger, patchedVersion, waitForState, type TestLedger } from "./engines.js";

describe.runIf(hasFashionMnist())("a scan job under a curation policy", () => {
  let t: TestLedger;
  let queue: JobQueue;
  let version: string;
  let victims: Set<string>;

  beforeAll(async () => {
    t = await freshLedger();
    ({ version, victims } = await patchedVersion(t, 1000));
    const policy = join(t.dir, "policy.yaml");
    writeFileSync(
      policy,
      [
        "apiVersion: antidote.dev/policy/v1",
        "name: crawl-rules",
        "version: 1",
        "kinds:",
        "  web:",
        "    requiredScans: [trigger-patches]",
        "    autoQuarantine:",
        "      - findings: [poisoning-risk]",
        "        minScore: 0.5",
        "",
      ].join("\n"),
    );
    await applyPolicy(t.ledger, policy);
    queue = await createInProcessQueue({ ledger: t.ledger, pollMs: 200 });
  });
  afterAll(async () => {
    await queue?.close();
    await t?.close();
  });

  it("records the scan's coverage and applies autoQuarantine to what it flagged", async () => {
    const job = await queue.submit(
      "scan",
      { version, detectors: ["trigger-patches"], imageProxy: "mlp", seed: 0 },
      "analyst",
    );
    await waitForState(queue, job.jobId, "done", 180_000);
    const coverage = (await t.ledger.eventsOfKind("transform.recorded")).filter(
      (e) => e.payload.subject === version && e.payload.transform.kind === "scan",
    );
    expect(coverage.map((e) => e.payload.transform.parameters)).toEqual([{ detectors: ["trigger-patches"] }]);

    const decisions = (await t.ledger.eventsOfKind("decision.recorded")).filter(
      (e) => e.payload.action === "quarantine",
    );
    expect(decisions.length).toBeGreaterThan(0);
    expect(decisions.every((e) => e.payload.actor.startsWith("policy:crawl-rules@"))).toBe(true);
    expect(decisions.every((e) => e.payload.policy?.rule === "kinds.web.autoQuarantine[0]")).toBe(true);
    // What was quarantined is what the scan flagged: the patched images, nearly all of them.
    const quarantined = new Set(decisions.flatMap((e) => e.payload.subjectIds));
    let caught = 0;
    for await (const m of t.ledger.datasetMembers(version)) {
      const trace = await t.ledger.traceSample(m.digest);
      if (trace !== undefined && victims.has(trace.sample.id) && quarantined.has(m.digest)) caught++;
    }
    expect(caught / victims.size).toBeGreaterThanOrEqual(0.9);
    expect(quarantined.size).toBeLessThanOrEqual(Math.ceil(victims.size / 0.9));
  }, 240_000);
});
