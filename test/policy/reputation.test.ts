// Source reputation on a ledger of real deliveries, on both engines: the compromised supplier
// ranks lowest because of what the ledger holds (its samples' findings, the quarantine of its
// samples), the explanation lists those events by seq, and evidence fades with its half-life.
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { recordRefusal } from "../../src/provenance/refusals.js";
import { reputationOf, sourceReputations } from "../../src/policy/index.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { POISONED, buildWorld, ingestAll, recordScanFindings, type World } from "./fixture.js";

let world: World;
let dir: string;
beforeAll(async () => {
  dir = enterScratchDir();
  world = await buildWorld(mkdtempSync(join(dir, "world-")));
}, 60_000);
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("source reputation on $name", (backend) => {
  beforeAll(() => backend.setup(), 60_000);
  afterAll(() => backend.teardown());

  it("ranks the poisoned supplier lowest from its findings and quarantines, and explains it", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open("analyst");
    try {
      await ingestAll(ledger, world);
      // Before any finding, every supplier has a verified delivery on top of its prior 0.8.
      const clean = await sourceReputations(ledger);
      expect(clean.map((r) => r.score)).toEqual([0.866667, 0.866667, 0.866667]);
      expect(clean[0]?.events[0]).toMatchObject({ kind: "delivery.ingested", evidence: 1 });

      await recordScanFindings(ledger, world);
      const [quarantine] = await ledger.append([
        {
          kind: "decision.recorded",
          payload: {
            action: "quarantine",
            subjectType: "sample",
            subjectIds: world.poisoned.slice(0, 5),
            actor: "analyst",
            reason: "patched images",
          },
        },
      ]);
      const ranked = await sourceReputations(ledger);
      expect(ranked[0]?.source).toBe(POISONED);
      expect(ranked[0]?.score).toBeLessThan(0.5);
      for (const honest of ranked.slice(1)) expect(honest.score).toBeGreaterThan(0.8);

      const why = await reputationOf(ledger, POISONED);
      const kinds = why.events.map((e) => e.kind);
      expect(kinds).toContain("finding.recorded");
      expect(why.events.find((e) => e.kind === "decision.recorded")).toMatchObject({
        seq: quarantine?.seq,
        evidence: -1,
      });
      const findingEvent = why.events.find((e) => e.kind === "finding.recorded");
      expect(findingEvent?.detail).toMatch(/24 of its 200 samples flagged/);
      expect(findingEvent?.effect).toBeLessThan(0);
      // The events that moved it recompute the score: (K·prior + good) / (K + good + bad).
      expect(why.score).toBeCloseTo((2 * 0.8 + why.good) / (2 + why.good + why.bad), 5);
      expect(why.lastIncidentAt).not.toBeNull();

      await expect(reputationOf(ledger, "nobody")).rejects.toMatchObject({ code: "SOURCE_UNKNOWN" });
    } finally {
      await ledger.close();
    }
  }, 60_000);

  it("lets incidents fade with the half-life, and counts refused deliveries", async () => {
    const fresh = await backend.fresh();
    const ledger = await fresh.open("analyst");
    try {
      await ingestAll(ledger, world);
      await recordScanFindings(ledger, world);
      const now = Date.now();
      const today = await reputationOf(ledger, POISONED, { now: new Date(now) });
      const later = await reputationOf(ledger, POISONED, { now: new Date(now + 90 * 86_400_000) });
      const muchLater = await reputationOf(ledger, POISONED, { now: new Date(now + 3650 * 86_400_000) });
      // After one half-life every weight halves; after ten years only the prior is left.
      expect(later.bad).toBeCloseTo(today.bad / 2, 3);
      expect(later.score).toBeGreaterThan(today.score);
      expect(muchLater.score).toBeCloseTo(0.8, 3);
      const shortMemory = await reputationOf(ledger, POISONED, {
        now: new Date(now + 90 * 86_400_000),
        halfLifeDays: 30,
      });
      expect(shortMemory.bad).toBeCloseTo(today.bad / 8, 3);

      // An FL client whose updates robust aggregation rejected (robust/round.ts findings).
      await ledger.append([
        {
          kind: "source.added",
          payload: { name: "client-7", kind: "fl-client", trust: 0.6, requireSignature: false, keys: [] },
        },
        {
          kind: "finding.recorded",
          payload: {
            subjectType: "client",
            subjectId: "client-7",
            kind: "fl-update-rejected",
            score: 1,
            evidence: { round: 3 },
            check: "robust-aggregate",
            checkVersion: "test",
          },
        },
      ]);
      const client = await reputationOf(ledger, "client-7");
      expect(client.score).toBeCloseTo((2 * 0.6) / (2 + 1), 5);
      expect(client.events).toEqual([
        expect.objectContaining({
          kind: "finding.recorded",
          evidence: -1,
          detail: "finding fl-update-rejected (score 1) on its update",
        }),
      ]);

      const before = await reputationOf(ledger, "acme");
      await recordRefusal(ledger, {
        source: "acme",
        principal: "gateway",
        code: "DIGEST_MISMATCH",
        message: "a file changed",
      });
      const after = await reputationOf(ledger, "acme");
      expect(after.score).toBeLessThan(before.score);
      expect(after.events.find((e) => e.kind === "delivery.refused")).toMatchObject({
        seq: null,
        evidence: -1,
      });
    } finally {
      await ledger.close();
    }
  }, 60_000);
});

it("refuses bad options by name", async () => {
  const ledger = { listSources: () => Promise.resolve([]) } as never;
  await expect(sourceReputations(ledger, { halfLifeDays: -1 })).rejects.toBeInstanceOf(AntidoteError);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));
