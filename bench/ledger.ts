// Ledger throughput and trace latency, on SQLite and PostgreSQL:
//   npx tsx bench/ledger.ts            (about 5 minutes on 2 cores; ANTIDOTE_SKIP_POSTGRES=1 for SQLite only)
// 1. Ingest the 60,000 Fashion-MNIST training samples (real digests) as one delivery —
//    delivery.ingested, samples.added batches, dataset.version-created, members — in one append.
// 2. traceSource latency on a ledger of 1,000,000 samples (synthetic digests): 20 sources of
//    50,000 samples, a version per delivery, two merged versions and a chain of models.
// 3. What integrity costs on that ledger: a one-event append (which first checks the head
//    against its signed checkpoint and extends the Merkle frontier), and reading one 50k-sample
//    delivery's records as evidence (its events re-hashed, every link up to the signed head).
// PostgreSQL is a throwaway server started by test/helpers/postgres.ts (fsync off);
// SQLite runs as shipped (WAL, synchronous=FULL).
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDataset } from "../src/data/open.js";
import { openLedger, type Ledger, type LedgerEventInput, type SampleRecord } from "../src/ledger/index.js";
import { startPostgres, skipPostgres, type PostgresServer } from "../test/helpers/postgres.js";

const BATCH = 1000;
const SOURCES = 20;
const PER_SOURCE = 50_000;
const TRACE_RUNS = 7;

interface Row {
  engine: string;
  ingestSeconds: number;
  ingestRate: number;
  verify60kSeconds: number;
  build1MSeconds: number;
  traceMs: number;
  traceSampleMs: number;
  appendMs: number;
  evidenceSeconds: number;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const work = mkdtempSync(join(tmpdir(), "antidote-bench-ledger-"));
process.chdir(work);
let server: PostgresServer | undefined;
try {
  const fm = await fashionMnist();
  const rows: Row[] = [];
  rows.push(await run("SQLite", () => join(work, `ledger-${rows.length}-${Date.now()}.db`), fm));
  if (!skipPostgres()) {
    server = await startPostgres();
    const pg = server;
    rows.push(await run("PostgreSQL 15", () => pg.createDatabase(), fm));
  }
  process.stdout.write(table(rows));
} finally {
  await server?.stop();
  process.chdir(tmpdir());
  rmSync(work, { recursive: true, force: true });
}

async function fashionMnist(): Promise<SampleRecord[]> {
  const data = await openDataset("fashion-mnist");
  const out: SampleRecord[] = [];
  for await (const s of data.samples())
    out.push({ id: s.id, digest: s.digest, label: s.label, annotations: [] });
  return out;
}

async function run(
  engine: string,
  location: () => string | Promise<string>,
  fm: SampleRecord[],
): Promise<Row> {
  log(`${engine}: ingesting ${fm.length} Fashion-MNIST samples`);
  const small = await openLedger({ location: await location(), keyPath: join(work, "ledger-key.pem") });
  await small.append([source("fashion-mnist")]);
  let t = performance.now();
  await small.append(delivery("fm-train", "fashion-mnist", fm, "fashion-mnist@1"));
  const ingestSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const report = await small.verify();
  const verify60kSeconds = (performance.now() - t) / 1000;
  if (!report.ok) throw new Error(`verify failed: ${JSON.stringify(report)}`);
  await small.close();

  log(`${engine}: building a ledger of ${SOURCES * PER_SOURCE} samples`);
  const big = await openLedger({ location: await location(), keyPath: join(work, "ledger-key.pem") });
  t = performance.now();
  await build1M(big);
  const build1MSeconds = (performance.now() - t) / 1000;
  log(`${engine}: built in ${build1MSeconds.toFixed(0)} s; tracing`);
  const traceMs = await median(async () => {
    const trace = await big.traceSource("source-07", { limit: 100 });
    if (trace.sampleCount !== PER_SOURCE || trace.descendantModels.length !== 2)
      throw new Error("unexpected trace");
  });
  const traceSampleMs = await median(async () => {
    if ((await big.traceSample(digestOf(7, 123))) === undefined) throw new Error("sample not found");
  });
  let findings = 0;
  const appendMs = await median(async () => {
    await big.append([finding(digestOf(1, findings++))]);
  });
  t = performance.now();
  const evidence = await big.deliveryEvidence("d-7");
  const evidenceSeconds = (performance.now() - t) / 1000;
  if (evidence.samples.length !== PER_SOURCE) throw new Error("unexpected evidence");
  await big.close();
  return {
    engine,
    ingestSeconds,
    ingestRate: fm.length / ingestSeconds,
    verify60kSeconds,
    build1MSeconds,
    traceMs,
    traceSampleMs,
    appendMs,
    evidenceSeconds,
  };
}

function finding(digest: string): LedgerEventInput {
  return {
    kind: "finding.recorded",
    payload: {
      subjectType: "sample",
      subjectId: digest,
      kind: "bench",
      score: 0.5,
      evidence: {},
      check: "bench",
      checkVersion: "1",
    },
  };
}

async function build1M(ledger: Ledger): Promise<void> {
  await ledger.append(Array.from({ length: SOURCES }, (_, s) => source(sourceName(s))));
  const everything: string[] = [];
  for (let s = 0; s < SOURCES; s++) {
    const samples = Array.from({ length: PER_SOURCE }, (_, i) => ({
      id: `${sourceName(s)}:${i}`,
      digest: digestOf(s, i),
      label: String(i % 10),
      annotations: [],
    }));
    await ledger.append(delivery(`d-${s}`, sourceName(s), samples, `${sourceName(s)}@1`));
    for (const x of samples) everything.push(x.digest);
  }
  everything.sort();
  await ledger.append(version("all@1", everything, null));
  const dropped = new Set(Array.from({ length: PER_SOURCE }, (_, i) => digestOf(3, i)));
  await ledger.append(
    version(
      "all@2",
      everything.filter((d) => !dropped.has(d)),
      "all@1",
    ),
  );
  const m = (n: number) => sha256(`model ${n}`);
  await ledger.append([
    model(m(1), ["all@1"], null),
    model(m(2), [], m(1)),
    model(m(3), [], m(2)),
    model(m(4), ["all@2"], null),
  ]);
}

function delivery(
  deliveryId: string,
  name: string,
  samples: SampleRecord[],
  datasetVersion: string,
): LedgerEventInput[] {
  const digests = [...new Set(samples.map((s) => s.digest))].sort();
  const events: LedgerEventInput[] = [
    {
      kind: "delivery.ingested",
      payload: {
        deliveryId,
        source: name,
        manifestDigest: sha256(`manifest ${deliveryId}`),
        merkleRoot: sha256(digests.join("")),
        keyId: null,
        files: [{ path: `${deliveryId}.parquet`, sha256: sha256(deliveryId), size: samples.length * 800 }],
        sampleCount: samples.length,
        datasetVersion,
        store: null,
      },
    },
  ];
  for (let i = 0; i < samples.length; i += BATCH)
    events.push({
      kind: "samples.added",
      payload: { deliveryId, source: name, samples: samples.slice(i, i + BATCH) },
    });
  return [...events, ...version(datasetVersion, digests, null)];
}

function version(name: string, sortedDigests: string[], parent: string | null): LedgerEventInput[] {
  const events: LedgerEventInput[] = [
    {
      kind: "dataset.version-created",
      payload: {
        version: name,
        name: name.split("@")[0] ?? name,
        merkleRoot: sha256(sortedDigests.join("")),
        parent,
        sampleCount: sortedDigests.length,
        transform: {
          kind: parent === null ? "ingest" : "export",
          tool: "bench",
          toolVersion: "1",
          parameters: {},
          inputDigests: [],
          outputDigests: [],
        },
      },
    },
  ];
  for (let i = 0; i < sortedDigests.length; i += BATCH)
    events.push({
      kind: "dataset.members-added",
      payload: { version: name, digests: sortedDigests.slice(i, i + BATCH) },
    });
  return events;
}

function source(name: string): LedgerEventInput {
  return {
    kind: "source.added",
    payload: { name, kind: "supplier", trust: 0.5, requireSignature: false, keys: [] },
  };
}

function model(digest: string, trainedOn: string[], baseModel: string | null): LedgerEventInput {
  return {
    kind: "model.registered",
    payload: { digest, name: digest.slice(0, 8), trainedOn, baseModel, format: "onnx" },
  };
}

function sourceName(s: number): string {
  return `source-${String(s).padStart(2, "0")}`;
}

function digestOf(s: number, i: number): string {
  return sha256(`source ${s} sample ${i}`);
}

async function median(f: () => Promise<void>): Promise<number> {
  await f(); // warm-up: caches, prepared plans
  const times: number[] = [];
  for (let i = 0; i < TRACE_RUNS; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)] ?? Number.NaN;
}

function table(rows: Row[]): string {
  const lines = [
    "| engine | ingest 60k Fashion-MNIST | samples/s | verify 60k ledger | build 1M-sample ledger | traceSource on 1M (p50) | traceSample on 1M (p50) | one-event append on 1M (p50) | a 50k delivery's evidence on 1M |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.engine} | ${r.ingestSeconds.toFixed(2)} s | ${Math.round(r.ingestRate).toLocaleString("en-US")} | ${r.verify60kSeconds.toFixed(2)} s | ${r.build1MSeconds.toFixed(0)} s | ${r.traceMs.toFixed(0)} ms | ${r.traceSampleMs.toFixed(1)} ms | ${r.appendMs.toFixed(1)} ms | ${r.evidenceSeconds.toFixed(2)} s |`,
    ),
  ];
  return lines.join("\n") + "\n";
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}
