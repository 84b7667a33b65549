// Evidence pack latency for a model with a 60,000-sample lineage (issue 27 target: ≤ 10 s):
//   npx tsx bench/evidence.ts          (ANTIDOTE_SKIP_POSTGRES=1 for SQLite only)
// The ledger: three sources of 20,000 samples each (synthetic digests), a version per delivery,
// 2 % of the samples with a scan finding (1,200 finding events), a quarantine, a robust
// training transform, an audit finding, and the model registered as trained on the three
// versions. Times: buildEvidencePack (median of 3), writing the signed pack (JSON, HTML, OSCAL;
// no PDF), and verifyEvidencePack against the ledger.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildEvidencePack, verifyEvidencePack, writeEvidencePack } from "../src/evidence/index.js";
import { openLedger, type Ledger, type LedgerEventInput } from "../src/ledger/index.js";
import { skipPostgres, startPostgres, type PostgresServer } from "../test/helpers/postgres.js";

const SOURCES = 3;
const PER_SOURCE = 20_000;
const BATCH = 1000;
const FLAG_RATE = 0.02;
const RUNS = 3;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const digestOf = (s: number, i: number) => sha256(`source ${s} sample ${i}`);

interface Row {
  engine: string;
  samples: number;
  events: number;
  buildSeconds: number;
  writeSeconds: number;
  verifySeconds: number;
  linkedEvents: number;
}

const work = mkdtempSync(join(tmpdir(), "antidote-bench-evidence-"));
process.chdir(work);
let server: PostgresServer | undefined;
try {
  const rows: Row[] = [await run("SQLite", join(work, "ledger.db"))];
  if (!skipPostgres()) {
    server = await startPostgres();
    rows.push(await run("PostgreSQL", await server.createDatabase()));
  }
  process.stdout.write(table(rows));
} finally {
  await server?.stop();
  process.chdir(tmpdir());
  rmSync(work, { recursive: true, force: true });
}

async function run(engine: string, location: string): Promise<Row> {
  const ledger = await openLedger({ location, keyPath: join(work, `key-${engine}.pem`) });
  try {
    log(`${engine}: building a ${SOURCES * PER_SOURCE}-sample lineage`);
    const model = await seed(ledger);
    const events = (await ledger.status()).events;
    const times: number[] = [];
    let linked = 0;
    let pack: Awaited<ReturnType<typeof buildEvidencePack>> | undefined;
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now();
      pack = await buildEvidencePack(ledger, { model });
      times.push((performance.now() - t) / 1000);
    }
    if (pack === undefined || pack.lineage.samples !== SOURCES * PER_SOURCE)
      throw new Error("unexpected lineage");
    linked = new Set(pack.controls.flatMap((c) => c.claims.flatMap((cl) => cl.events.map((e) => e.seq))))
      .size;
    const out = join(work, `pack-${engine}`);
    let t = performance.now();
    await writeEvidencePack(pack, out, ledger.signer);
    const writeSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    await verifyEvidencePack(out, ledger);
    const verifySeconds = (performance.now() - t) / 1000;
    return {
      engine,
      samples: pack.lineage.samples,
      events,
      buildSeconds: times.sort((a, b) => a - b)[Math.floor(RUNS / 2)] as number,
      writeSeconds,
      verifySeconds,
      linkedEvents: linked,
    };
  } finally {
    await ledger.close();
  }
}

async function seed(ledger: Ledger): Promise<string> {
  const versions: string[] = [];
  for (let s = 0; s < SOURCES; s++) {
    const name = `source-${s}`;
    const version = `${name}@1`;
    versions.push(version);
    const samples = Array.from({ length: PER_SOURCE }, (_, i) => ({
      id: `${name}:${i}`,
      digest: digestOf(s, i),
      label: String(i % 10),
      annotations: [],
    }));
    const digests = samples.map((x) => x.digest).sort();
    const events: LedgerEventInput[] = [
      {
        kind: "source.added",
        payload: { name, kind: "supplier", trust: 0.5, requireSignature: false, keys: [] },
      },
      {
        kind: "delivery.ingested",
        payload: {
          deliveryId: `d-${s}`,
          source: name,
          manifestDigest: sha256(`manifest ${s}`),
          merkleRoot: sha256(digests.join("")),
          keyId: null,
          files: [{ path: `d-${s}.parquet`, sha256: sha256(`file ${s}`), size: PER_SOURCE * 800 }],
          sampleCount: PER_SOURCE,
          datasetVersion: version,
          store: null,
        },
      },
    ];
    for (let i = 0; i < samples.length; i += BATCH)
      events.push({
        kind: "samples.added",
        payload: { deliveryId: `d-${s}`, source: name, samples: samples.slice(i, i + BATCH) },
      });
    events.push({
      kind: "dataset.version-created",
      payload: {
        version,
        name,
        merkleRoot: sha256(digests.join("")),
        parent: null,
        sampleCount: digests.length,
        transform: {
          kind: "ingest",
          tool: "bench",
          toolVersion: "1",
          parameters: {},
          inputDigests: [],
          outputDigests: [],
        },
      },
    });
    for (let i = 0; i < digests.length; i += BATCH)
      events.push({
        kind: "dataset.members-added",
        payload: { version, digests: digests.slice(i, i + BATCH) },
      });
    await ledger.append(events);
  }
  const flagged: string[] = [];
  for (let s = 0; s < SOURCES; s++)
    for (let i = 0; i < PER_SOURCE * FLAG_RATE; i++) flagged.push(digestOf(s, i * Math.floor(1 / FLAG_RATE)));
  await ledger.append(
    flagged.map((digest, i) => ({
      kind: "finding.recorded" as const,
      payload: {
        subjectType: "sample" as const,
        subjectId: digest,
        kind: "poisoning-risk",
        score: 0.6 + (i % 40) / 100,
        evidence: { detectors: [i % 2 === 0 ? "confident-learning" : "spectral-signature"] },
        check: "scan",
        checkVersion: "1.0.0",
      },
    })),
  );
  const model = sha256("bench model");
  await ledger.append([
    {
      kind: "decision.recorded",
      payload: {
        action: "quarantine",
        subjectType: "sample",
        subjectIds: flagged,
        actor: "bench",
        reason: "scan",
      },
    },
    {
      kind: "model.registered",
      payload: { digest: model, name: "bench-model", trainedOn: versions, baseModel: null, format: "onnx" },
    },
    {
      kind: "transform.recorded",
      payload: {
        subject: model,
        transform: {
          kind: "dpa-partition",
          tool: "antidote dpa",
          toolVersion: "1",
          parameters: { k: 50 },
          inputDigests: [],
          outputDigests: [],
        },
      },
    },
    {
      kind: "finding.recorded",
      payload: {
        subjectType: "model",
        subjectId: model,
        kind: "backdoor-audit-clean",
        score: 0.3,
        evidence: {},
        check: "audit",
        checkVersion: "1.0.0",
      },
    },
  ]);
  return model;
}

function table(rows: Row[]): string {
  const head =
    "| engine | lineage samples | ledger events | build pack (s, median of 3) | write signed pack (s) | verify (s) | linked events |";
  const sep = "|---|---:|---:|---:|---:|---:|---:|";
  const body = rows.map(
    (r) =>
      `| ${r.engine} | ${r.samples} | ${r.events} | ${r.buildSeconds.toFixed(2)} | ${r.writeSeconds.toFixed(2)} | ${r.verifySeconds.toFixed(2)} | ${r.linkedEvents} |`,
  );
  return [head, sep, ...body, ""].join("\n");
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}
