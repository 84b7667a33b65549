// The ledger's aggregate reads behind the dashboard (ledger/insights.ts, provenance/overview.ts),
// on SQLite and PostgreSQL, over real Fashion-MNIST digests: sources ranked by risk with their
// flag rate per scan, findings by kind with what is still open, quarantine size, keyset pages
// of a source's samples and of a version's members, a version's composition, and a source's
// blast radius as a graph with counts — before and after the source is quarantined.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger, LedgerEventInput, SampleRecord } from "../../src/ledger/index.js";
import { ledgerOverview } from "../../src/provenance/overview.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type Backend } from "../ledger/backends.js";
import {
  decision,
  deliveryEvents,
  finding,
  model,
  realSamples,
  sourceAdded,
  versionEvents,
} from "../ledger/events.js";

const samples = realSamples(1206);
const vendorA = samples.slice(0, 600);
const vendorB = samples.slice(600, 1000);
const crawl = samples.slice(900, 1200); // re-delivers 100 of vendor B's images
const annotated = samples.slice(1200, 1206).map((s, i) => ({
  ...s,
  annotations:
    i < 2
      ? [
          { annotator: "x", label: "Bag" },
          { annotator: "y", label: "Coat" },
        ]
      : [{ annotator: "x", label: "Bag" }],
}));
const digests = (list: readonly SampleRecord[]) => [...new Set(list.map((s) => s.digest))].sort();
const all = digests(samples);
const bDigests = new Set(digests(vendorB));
const clean = all.filter((d) => !bDigests.has(d));
// Flagged samples come from the part of B's delivery the crawl did not re-deliver.
const bSorted = digests(vendorB.slice(0, 100));
const aSorted = digests(vendorA);
const M1 = "1".repeat(64);
const M2 = "2".repeat(64);

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const tick = () => new Promise((r) => setTimeout(r, 5)); // scans are told apart by their append time

const sourceFinding: LedgerEventInput = {
  kind: "finding.recorded",
  payload: {
    subjectType: "source",
    subjectId: "vendor-b",
    kind: "source-risk",
    score: 5,
    evidence: {},
    check: "source-risk",
    checkVersion: "1",
  },
};

async function populate(backend: Backend): Promise<Ledger> {
  const ledger = await (await backend.fresh()).open("tester");
  await ledger.append([
    sourceAdded("vendor-a"),
    sourceAdded("vendor-b", "contractor"),
    sourceAdded("crawl", "web"),
    sourceAdded("annot", "contractor"),
  ]);
  await ledger.append(
    deliveryEvents({ deliveryId: "d-a", source: "vendor-a", samples: vendorA, version: "a@1", batch: 200 }),
  );
  await ledger.append(
    deliveryEvents({ deliveryId: "d-b", source: "vendor-b", samples: vendorB, version: "b@1", batch: 200 }),
  );
  await ledger.append(
    deliveryEvents({ deliveryId: "d-c", source: "crawl", samples: crawl, version: "c@1", batch: 200 }),
  );
  await ledger.append(
    deliveryEvents({ deliveryId: "d-n", source: "annot", samples: annotated, version: "n@1" }),
  );
  await ledger.append(versionEvents("train@1", all, null, 500, "merge"));
  await ledger.append(versionEvents("clean@1", clean, "train@1", 500));
  await ledger.append([model(M1, ["train@1"]), model(M2, [], M1)]);
  // Scan 1 flags 10 of vendor B's samples and 2 of vendor A's; scan 2 (later) 40 of B's and B itself.
  await tick();
  await ledger.append([...bSorted.slice(0, 10), ...aSorted.slice(0, 2)].map((d) => finding(d, 0.9)));
  await tick();
  await ledger.append([...bSorted.slice(0, 40).map((d) => finding(d, 0.95, "backdoor")), sourceFinding]);
  await ledger.append([decision("quarantine", "sample", [aSorted[0] ?? ""])]);
  return ledger;
}

describe.each(BACKENDS)("dashboard insights on $name", (backend) => {
  let ready: Promise<Ledger>;
  beforeAll(async () => {
    await backend.setup();
    ready = populate(backend);
    ready.catch(() => undefined);
  });
  afterAll(async () => {
    await (await ready.catch(() => undefined))?.close();
    await backend.teardown();
  });

  it("ranks sources by their latest flag rate, with one trend point per scan", async () => {
    const ledger = await ready;
    const risks = await ledger.sourceRisks();
    expect(risks.map((r) => r.name)).toEqual(["vendor-b", "vendor-a", "annot", "crawl"]);
    const b = risks[0];
    expect(b).toMatchObject({
      samples: 400,
      deliveries: 1,
      flaggedSamples: 40,
      sourceScore: 5,
      quarantined: false,
      kind: "contractor",
    });
    expect(b?.flagRate).toBeCloseTo(0.1);
    expect(b?.trend.map((t) => t.flagged)).toEqual([10, 40]);
    expect(b?.trend.map((t) => t.rate)).toEqual([0.025, 0.1]);
    expect(b?.latestFlagRate).toBe(0.1);
    expect(risks[1]).toMatchObject({ name: "vendor-a", flaggedSamples: 2, sourceScore: null });
    expect(risks[1]?.trend).toHaveLength(1);
    // The crawl shares 100 images with vendor B but none of the flagged ones.
    expect(risks[3]).toMatchObject({ name: "crawl", samples: 300, flaggedSamples: 0, trend: [] });
    expect(await ledger.sourceRisks({ source: "crawl" })).toEqual([risks[3]]);
    expect(await ledger.sourceRisks({ source: "nobody" })).toEqual([]);
  });

  it("counts findings by kind with the subjects still open, and the quarantine", async () => {
    const ledger = await ready;
    const counts = await ledger.findingCounts();
    expect(counts).toContainEqual({
      kind: "label-issue",
      subjectType: "sample",
      findings: 12,
      subjects: 12,
      open: 11,
    });
    expect(counts).toContainEqual({
      kind: "backdoor",
      subjectType: "sample",
      findings: 40,
      subjects: 40,
      open: 40,
    });
    expect(counts).toContainEqual({
      kind: "source-risk",
      subjectType: "source",
      findings: 1,
      subjects: 1,
      open: 1,
    });
    expect(await ledger.quarantineSize()).toEqual({ sources: 0, samples: 1 });
  });

  it("pages a source's samples and a version's members by key", async () => {
    const ledger = await ready;
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await ledger.sourceSamples("vendor-a", {
        limit: 250,
        ...(cursor !== undefined ? { after: cursor } : {}),
      });
      seen.push(...page.items.map((s) => s.digest));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual(aSorted);
    const first = await ledger.sourceSamples("vendor-a", { limit: 2 });
    expect(first.items.map((s) => [s.findings, s.quarantined, s.topScore])).toEqual([
      [1, true, 0.9],
      [1, false, 0.9],
    ]);
    const members = await collect(ledger.datasetMembers("train@1", { after: all[99], limit: 50 }));
    expect(members.map((m) => m.digest)).toEqual(all.slice(100, 150));
    expect(await collect(ledger.datasetMembers("train@1", { after: all[all.length - 1] }))).toEqual([]);
    expect((await collect(ledger.datasetMembers("train@1"))).length).toBe(all.length);
  });

  it("summarises a version and lists a source's annotators", async () => {
    const ledger = await ready;
    const summary = await ledger.versionSummary("train@1");
    expect(summary.bySource).toContainEqual({ source: "vendor-b", samples: 400 });
    expect(summary.byLabel.reduce((n, l) => n + l.samples, 0)).toBe(all.length);
    expect(summary).toMatchObject({ flagged: 42, quarantined: 1, children: ["clean@1"], models: [M1] });
    expect(await ledger.sourceAnnotators("annot")).toEqual([
      { annotator: "x", samples: 6 },
      { annotator: "y", samples: 2 },
    ]);
    expect(await ledger.sourceAnnotators("vendor-a")).toEqual([]);
  });

  it("draws a source's blast radius with counts, and updates them when it is quarantined", async () => {
    const ledger = await ready;
    const before = await ledger.blastRadius("vendor-b");
    const node = (g: typeof before, id: string) => g.nodes.find((n) => n.id === id);
    expect(before.nodes.map((n) => n.id).sort()).toEqual(
      // c@1 holds the 100 images the crawl re-delivered: the same content reached it too.
      [
        "source:vendor-b",
        "delivery:d-b",
        "version:b@1",
        "version:c@1",
        "version:train@1",
        "version:clean@1",
        `model:${M1}`,
        `model:${M2}`,
      ].sort(),
    );
    expect(before.edges).toEqual(
      expect.arrayContaining([
        { from: "source:vendor-b", to: "delivery:d-b", samples: 400 },
        { from: "delivery:d-b", to: "version:b@1", samples: 400 },
        { from: "version:train@1", to: "version:clean@1", samples: 0 },
        // merged outside a delivery, and re-delivered by the crawl: edges from the source itself
        { from: "source:vendor-b", to: "version:train@1", samples: 400 },
        { from: "source:vendor-b", to: "version:c@1", samples: 100 },
        { from: "version:train@1", to: `model:${M1}`, samples: 400 },
        { from: `model:${M1}`, to: `model:${M2}`, samples: 400 },
      ]),
    );
    expect(node(before, "version:train@1")).toMatchObject({
      fromSource: 400,
      total: all.length,
      quarantined: 0,
    });

    await ledger.append([decision("quarantine", "source", ["vendor-b"])]);
    const after = await ledger.blastRadius("vendor-b");
    expect(after.quarantined).toBe(true);
    expect(node(after, "source:vendor-b")?.quarantined).toBe(400);
    expect(node(after, "version:train@1")?.quarantined).toBe(400);
    expect(node(after, "version:clean@1")?.quarantined).toBe(0);
    expect(await ledger.quarantineSize()).toEqual({ sources: 1, samples: 401 });
    const counts = await ledger.findingCounts();
    expect(counts).toContainEqual(expect.objectContaining({ kind: "backdoor", open: 0 }));
    expect(counts).toContainEqual(expect.objectContaining({ kind: "source-risk", open: 0 }));

    const overview = await ledgerOverview(ledger, { top: 2, latest: 2 });
    expect(overview.sources).toMatchObject({ total: 4, flagged: 2 });
    expect(overview.sources.riskiest.map((r) => r.name)).toEqual(["vendor-b", "vendor-a"]);
    expect(overview.deliveries.latest.map((d) => d.deliveryId)).toEqual(["d-n", "d-c"]);
    expect(overview.quarantine).toEqual({ sources: 1, samples: 401 });
    expect(overview.ledger.head?.seq).toBe(overview.ledger.events);
    expect(overview).toMatchObject({ versions: 6, models: 2 });
  });
});
