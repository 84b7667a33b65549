// Ingest stages on worker threads (what `antidote serve` verifies deliveries with) against the
// same stages in the calling thread: the same delivery gives the same record; a tampered
// delivery and an untrusted signature fail with the same code and message, as AntidoteErrors
// (an Error crossing threads loses its class); a re-delivery is recognised; callbacks that
// cannot cross a thread are refused, not dropped.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Ledger } from "../../src/ledger/types.js";
import { ingestDelivery, inThreadStages, type IngestStages } from "../../src/provenance/ingest.js";
import { createIngestThreads, type IngestThreads } from "../../src/provenance/ingest-threads.js";
import { addSource } from "../../src/provenance/sources.js";
import { signedDelivery, supplierKey, type Supplier } from "../server/helpers.js";

let dir: string;
let threads: IngestThreads;
let acme: Supplier;
let data: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-ingest-threads-"));
  threads = createIngestThreads({ threads: 2 });
  acme = supplierKey();
  const made = await signedDelivery(dir, acme, 300);
  data = join(dir, made.file);
  bundle = join(dir, "delivery.sigstore.json");
  writeFileSync(bundle, made.bundle);
});
afterAll(async () => {
  await threads?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function ledgerWithAcme(name: string): Promise<Ledger> {
  const ledger = await openLedger({ location: join(dir, name, "ledger.db"), actor: "test" });
  await addSource(ledger, { name: "acme", kind: "supplier", publicKeysPem: [acme.publicKeyPem] });
  return ledger;
}

async function failure(run: () => Promise<unknown>): Promise<AntidoteError> {
  const e = await run().then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AntidoteError);
  return e as AntidoteError;
}

describe("ingest on worker threads", () => {
  it("records the same delivery as the in-thread stages, and recognises it when sent again", async () => {
    const results = [];
    for (const [name, stages] of [
      ["here", inThreadStages],
      ["threads", threads],
    ] as [string, IngestStages][]) {
      const ledger = await ledgerWithAcme(name);
      const first = await ingestDelivery(
        ledger,
        { target: data, source: "acme", signaturePath: bundle },
        stages,
      );
      const again = await ingestDelivery(
        ledger,
        { target: data, source: "acme", signaturePath: bundle },
        stages,
      );
      expect(again).toEqual({ ...first, alreadyIngested: true });
      expect((await ledger.verify()).ok).toBe(true);
      expect((await ledger.getDatasetVersion(first.datasetVersion))?.sampleCount).toBe(300);
      results.push(first);
      await ledger.close();
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[1]).toMatchObject({ sampleCount: 300, alreadyIngested: false, source: "acme" });
  });

  it("fails a tampered delivery and a stranger's signature with the same error as in-thread", async () => {
    const tampered = join(dir, "tampered.csv");
    writeFileSync(tampered, "id,text,label\ns0,an altered message,ham\n");
    const stranger = supplierKey();
    const strangers = await signedDelivery(dir, stranger, 10, "stranger.csv");
    const strangerBundle = join(dir, "stranger.sigstore.json");
    writeFileSync(strangerBundle, strangers.bundle);
    const cases = [
      { target: tampered, source: "acme", signaturePath: bundle },
      { target: join(dir, strangers.file), source: "acme", signaturePath: strangerBundle },
    ];
    for (const [i, options] of cases.entries()) {
      const ledger = await ledgerWithAcme(`bad-${i}`);
      const before = (await ledger.verify()).events;
      const here = await failure(() => ingestDelivery(ledger, options, inThreadStages));
      const there = await failure(() => ingestDelivery(ledger, options, threads));
      expect([there.code, there.message]).toEqual([here.code, here.message]);
      expect((await ledger.verify()).events).toBe(before);
      await ledger.close();
    }
  });

  it("refuses a row-skipping callback (it cannot run on a thread) and a thread count below 1", async () => {
    const ledger = await ledgerWithAcme("callbacks");
    const e = await failure(() =>
      ingestDelivery(
        ledger,
        { target: data, source: "acme", signaturePath: bundle, readOptions: { onSkip: () => undefined } },
        threads,
      ),
    );
    expect([e.code, e.message]).toEqual(["USAGE", expect.stringMatching(/onSkip/)]);
    await ledger.close();
    expect(() => createIngestThreads({ threads: 0 })).toThrow(/whole number ≥ 1/);
  });
});
