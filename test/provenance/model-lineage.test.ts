// `trace --model`: a base model's descendants (every fine-tune, however far removed, with its
// status) and a fine-tune's bases, from a ledger holding a real delivery and a model tree.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { suspendModel } from "../../src/monitor/containment.js";
import { traceModel } from "../../src/provenance/model-lineage.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { deliveryEvents, finding, model, realSamples, sha256, sourceAdded } from "../ledger/events.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

const sqlite = BACKENDS.find((b) => b.name === "SQLite")!;
const [foundation, tuneA, tuneB, tuneA2, unrelated] = [
  "foundation",
  "tune-a",
  "tune-b",
  "tune-a2",
  "other",
].map(sha256) as [string, string, string, string, string];

describe("trace --model", () => {
  it("lists every model built on a base, and a fine-tune's chain of bases with the findings on them", async () => {
    const ledger = await (await sqlite.fresh()).open("tester");
    try {
      await ledger.append([sourceAdded("acme")]);
      await ledger.append(
        deliveryEvents({ deliveryId: "d1", source: "acme", samples: realSamples(300), version: "fm@1" }),
      );
      await ledger.append([
        model(foundation, ["fm@1"]),
        model(tuneA, ["fm@1"], foundation),
        model(tuneB, ["fm@1"], foundation),
        model(tuneA2, ["fm@1"], tuneA),
        model(unrelated, ["fm@1"]),
      ]);
      await ledger.append([
        {
          kind: "finding.recorded",
          payload: {
            subjectType: "model",
            subjectId: foundation,
            kind: "backdoor",
            score: 4.2,
            evidence: { target: "Bag" },
            check: "audit",
            checkVersion: "1",
          },
        },
        finding(tuneA, 9), // a sample-level finding whose id happens to be a model digest: not the model's
      ]);
      await suspendModel(ledger, tuneB, "base poisoned", "alice");

      const down = await traceModel(ledger, foundation.slice(0, 10));
      expect(down.model.digest).toBe(foundation);
      expect(down.descendants.map((d) => [d.digest, d.depth, d.base])).toEqual([
        [tuneA, 1, foundation],
        [tuneB, 1, foundation],
        [tuneA2, 2, tuneA],
      ]);
      expect(down.descendants.find((d) => d.digest === tuneB)?.status).toBe("suspended");
      expect(down.descendants.map((d) => d.digest)).not.toContain(unrelated);

      const up = await traceModel(ledger, tuneA2);
      expect(up.ancestors.map((a) => [a.digest, a.depth])).toEqual([
        [tuneA, 1],
        [foundation, 2],
      ]);
      expect(up.descendants).toEqual([]);
      // The base's finding is the fine-tune's concern too.
      expect(up.findings.map((f) => [f.subjectId, f.kind])).toEqual([[foundation, "backdoor"]]);

      await expect(traceModel(ledger, "ffffffff")).rejects.toThrow(/not registered/);
    } finally {
      await ledger.close();
    }
  });
});
