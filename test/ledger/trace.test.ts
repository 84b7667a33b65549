// trace and quarantine on real Fashion-MNIST digests, on SQLite and PostgreSQL: how far a
// source reached (versions, models, models fine-tuned from those), and one sample's story.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import type { Ledger, SampleRecord } from "../../src/ledger/index.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type Backend } from "./backends.js";
import {
  decision,
  deliveryEvents,
  finding,
  model,
  realSamples,
  sourceAdded,
  versionEvents,
} from "./events.js";

const samples = realSamples(1200);
const vendorA = samples.slice(0, 600);
const vendorB = samples.slice(600, 1000);
// The crawl re-delivers 100 of vendor B's images: same content, a second origin.
const crawl = samples.slice(900, 1200);
const digests = (list: readonly SampleRecord[]) => [...new Set(list.map((s) => s.digest))].sort();
const all = digests(samples);
const bDigests = new Set(digests(vendorB));
const clean = all.filter((d) => !bDigests.has(d));
const M = {
  m1: "1".repeat(64),
  m2: "2".repeat(64),
  m3: "3".repeat(64),
  m4: "4".repeat(64),
  m5: "5".repeat(64),
};
const s950 = samples[950] as SampleRecord;
const s100 = samples[100] as SampleRecord;

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe.each(BACKENDS)("trace on $name", (backend) => {
  // Built once, awaited by each test, so a backend that cannot start fails every test.
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

  it("traces a source to its deliveries, samples, versions, models and fine-tuned descendants", async () => {
    const ledger = await ready;
    const trace = await ledger.traceSource("vendor-b", { limit: 5 });
    expect(trace.source).toMatchObject({ name: "vendor-b", kind: "contractor", keys: [] });
    expect(trace.deliveries).toEqual([
      { deliveryId: "d-b", at: expect.any(String) as string, sampleCount: 400, keyId: null },
    ]);
    expect(trace.sampleCount).toBe(bDigests.size);
    expect(trace.samples.map((s) => s.digest)).toEqual([...bDigests].sort().slice(0, 5));
    expect(trace.samples.every((s) => !s.quarantined)).toBe(true);
    const crawlDigests = new Set(digests(crawl));
    expect(trace.datasetVersions).toEqual([
      { version: "b@1", name: "b", samplesFromSource: bDigests.size, sampleCount: bDigests.size },
      {
        version: "c@1",
        name: "c",
        samplesFromSource: [...bDigests].filter((d) => crawlDigests.has(d)).length,
        sampleCount: crawlDigests.size,
      },
      { version: "train@1", name: "train", samplesFromSource: bDigests.size, sampleCount: all.length },
    ]);
    expect(trace.models.map((m) => [m.digest, m.trainedOn])).toEqual([[M.m1, ["train@1"]]]);
    expect(trace.descendantModels.map((m) => [m.digest, m.via])).toEqual([
      [M.m2, [M.m1]],
      [M.m3, [M.m1, M.m2]],
    ]);
    // The crawl re-delivered content already in b@1: by content, the crawl reaches b@1 too,
    // although b@1 was recorded before the crawl's delivery.
    const c = await ledger.traceSource("crawl", { limit: 0 });
    const fromCrawl = (version: readonly string[]) => version.filter((d) => crawlDigests.has(d)).length;
    expect(c.datasetVersions).toEqual([
      { version: "b@1", name: "b", samplesFromSource: fromCrawl([...bDigests]), sampleCount: bDigests.size },
      { version: "c@1", name: "c", samplesFromSource: crawlDigests.size, sampleCount: crawlDigests.size },
      { version: "train@1", name: "train", samplesFromSource: crawlDigests.size, sampleCount: all.length },
      { version: "clean@1", name: "clean", samplesFromSource: fromCrawl(clean), sampleCount: clean.length },
    ]);
    expect(fromCrawl([...bDigests])).toBeGreaterThan(0);
    expect(c.models.map((m) => m.digest)).toEqual([M.m1, M.m3, M.m4]);
    // vendor-a's samples are in clean@1 too, so they reached every model.
    const a = await ledger.traceSource("vendor-a", { limit: 0 });
    expect(a.samples).toEqual([]);
    expect(a.datasetVersions.map((v) => v.version)).toEqual(["a@1", "train@1", "clean@1"]);
    expect(a.models.map((m) => m.digest)).toEqual([M.m1, M.m3, M.m4]);
    expect(a.descendantModels.map((m) => [m.digest, m.via])).toEqual([
      [M.m2, [M.m1]],
      [M.m5, [M.m4]],
    ]);
  });

  it("quarantines through a source and releases, sample decisions standing on their own", async () => {
    const ledger = await ready;
    expect(await ledger.isQuarantined(s950.digest)).toBe(false);
    await ledger.append([decision("quarantine", "source", ["crawl"])]);
    // Sample 950 came from vendor-b and from the crawl: quarantined through the crawl.
    expect(await ledger.isQuarantined(s950.digest)).toBe(true);
    expect(await ledger.isQuarantined((samples[1100] as SampleRecord).digest)).toBe(true);
    expect(await ledger.isQuarantined(s100.digest)).toBe(false);
    const members = await collect(ledger.datasetMembers("train@1"));
    expect(members.map((m) => m.digest)).toEqual(all);
    const crawlDigests = new Set(digests(crawl));
    expect(members.filter((m) => m.quarantined).map((m) => m.digest)).toEqual(
      all.filter((d) => crawlDigests.has(d)),
    );
    expect(members.find((m) => m.digest === s950.digest)).toMatchObject({
      id: s950.id,
      label: s950.label,
      source: "vendor-b",
    });

    await ledger.append([decision("quarantine", "sample", [s100.digest])]);
    await ledger.append([decision("release", "source", ["crawl"])]);
    expect(await ledger.isQuarantined(s950.digest)).toBe(false);
    expect(await ledger.isQuarantined(s100.digest)).toBe(true);
    await ledger.append([decision("release", "sample", [s100.digest])]);
    expect(await ledger.isQuarantined(s100.digest)).toBe(false);
    const unknown = await ledger
      .append([decision("quarantine", "source", ["nobody"])])
      .catch((e: unknown) => e);
    expect((unknown as AntidoteError).code).toBe("SOURCE_UNKNOWN");
  });

  it("tells one sample's story by id or digest", async () => {
    const ledger = await ready;
    await ledger.append([
      finding(s950.digest, 0.93),
      finding(s100.digest, 0.2),
      {
        kind: "transform.recorded",
        payload: {
          subject: s950.digest,
          transform: {
            kind: "relabel",
            tool: "annotator-ui",
            toolVersion: "2",
            parameters: { from: s950.label, to: "Bag" },
            inputDigests: [s950.digest],
            outputDigests: [s950.digest],
          },
        },
      },
    ]);
    const byId = await ledger.traceSample(s950.id);
    const byDigest = await ledger.traceSample(s950.digest);
    expect(byDigest).toEqual(byId);
    expect(byId?.sample).toEqual(s950);
    expect(byId?.origins.map((o) => [o.deliveryId, o.source, o.sourceKind])).toEqual([
      ["d-b", "vendor-b", "contractor"],
      ["d-c", "crawl", "web"],
    ]);
    expect(byId?.datasetVersions).toEqual(["b@1", "c@1", "train@1"]);
    expect(byId?.transforms.map((t) => [t.kind, t.tool])).toEqual([
      ["ingest", "antidote"],
      ["ingest", "antidote"],
      ["merge", "antidote"],
      ["relabel", "annotator-ui"],
    ]);
    expect(byId?.findings.map((f) => [f.kind, f.score])).toEqual([["label-issue", 0.93]]);
    expect(byId?.decisions.map((d) => [d.action, d.subjectType])).toEqual([
      ["quarantine", "source"],
      ["release", "source"],
    ]);
    expect(byId?.quarantined).toBe(false);
    expect(await ledger.traceSample("no-such-sample")).toBeUndefined();
  });

  it("filters findings, lists models, and refuses to trace an unknown source", async () => {
    const ledger = await ready;
    const high = await collect(ledger.findings({ minScore: 0.5 }));
    expect(high.map((f) => [f.subjectId, f.score])).toEqual([[s950.digest, 0.93]]);
    expect(await collect(ledger.findings({ subjectType: "model" }))).toEqual([]);
    expect((await ledger.listModels()).map((m) => m.digest)).toEqual([M.m1, M.m2, M.m3, M.m4, M.m5]);
    expect(await ledger.getModel(M.m3)).toMatchObject({ trainedOn: ["clean@1"], baseModel: M.m2 });
    const error = await ledger.traceSource("nobody").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AntidoteError);
    expect((error as AntidoteError).code).toBe("SOURCE_UNKNOWN");
    expect((error as AntidoteError).message).toMatch(/known: crawl, vendor-a, vendor-b/);
    expect(await ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
  });
});

/** Three sources, their deliveries, a merged and a cleaned version, and a family of models. */
async function populate(backend: Backend): Promise<Ledger> {
  const ledger = await (await backend.fresh()).open("tester");
  await ledger.append([
    sourceAdded("vendor-a"),
    sourceAdded("vendor-b", "contractor"),
    sourceAdded("crawl", "web"),
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
  await ledger.append(versionEvents("train@1", all, null, 500, "merge"));
  await ledger.append(versionEvents("clean@1", clean, "train@1", 500));
  // m1 trained on everything; m2 fine-tuned from m1; m3 from m2 on clean data only;
  // m4 trained on clean data from scratch; m5 fine-tuned from m4.
  await ledger.append([
    model(M.m1, ["train@1"]),
    model(M.m2, [], M.m1),
    model(M.m3, ["clean@1"], M.m2),
    model(M.m4, ["clean@1"]),
    model(M.m5, [], M.m4),
  ]);
  return ledger;
}
