// `antidote serve` under load, on SQLite and PostgreSQL:
//   npx tsx bench/serve.ts [--seconds 60] [--clients 32] [--ingest-samples 60000]
//   (ANTIDOTE_SKIP_POSTGRES=1 for SQLite only)
// 1. Load: --clients concurrent clients for --seconds, each a loop of requests drawn at random —
//    86 % reads (sources, versions, a version's members, findings, a source's blast radius, the
//    signed head, the job list), 13 % signed deliveries of 200 Fashion-MNIST images (each a new
//    delivery, signed by the supplier's key; every client its own supplier token), 1 % scan jobs
//    of a delivered version. Afterwards: every 5xx counted, every accepted delivery recorded
//    exactly once (deliveries in the ledger = 201 answers), every scan job's submission recorded,
//    and the ledger verifies. Reports requests/s and p50/p99 latency per kind.
// 2. Ingest: one signed delivery of --ingest-samples images, by the CLI (`antidote ingest`, a
//    fresh process) and over HTTP (the library's client uploading to a running server), on the
//    same machine; the ratio HTTP / CLI throughput.
// The server is `antidote serve` in a process of its own (built CLI: run `npm run build` first),
// with the in-process job queue; the deliveries are built and signed before the clock starts;
// rate limits are raised so the figures measure the service, not the limiter (which has its
// own tests). The load generator shares the machine's 2 cores with the server.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createToken } from "../src/auth/tokens.js";
import { AntidoteClient } from "../src/client/index.js";
import { openDataset, createWriter } from "../src/data/open.js";
import type { Sample } from "../src/data/sample.js";
import { createInProcessQueue } from "../src/jobs/index.js";
import { openLedger } from "../src/ledger/index.js";
import { buildStatement, generateSigningKey, signStatement } from "../src/provenance/index.js";
import { readPrivateKey } from "../src/provenance/keys.js";
import { addSource } from "../src/provenance/sources.js";
import { startServer } from "../src/server/serve.js";
import { startPostgres, skipPostgres, type PostgresServer } from "../test/helpers/postgres.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    clients: { type: "string", default: "32" },
    "ingest-samples": { type: "string", default: "60000" },
    "skip-ingest": { type: "boolean", default: false },
    "skip-sqlite": { type: "boolean", default: false },
    "skip-load": { type: "boolean", default: false },
    "scan-share": { type: "string", default: "0.01" },
    "deliveries-per-client": { type: "string", default: "12" },
  },
});
const SECONDS = Number(args.seconds);
const CLIENTS = Number(args.clients);
const INGEST_SAMPLES = Number(args["ingest-samples"]);
const DELIVERY_SAMPLES = 200;
const SCAN_SHARE = Number(args["scan-share"]);
/** Enough that no client runs out at the share of deliveries and the rates measured here. */
const DELIVERIES_PER_CLIENT = Number(args["deliveries-per-client"]);
const BIN = join(process.cwd(), "dist", "cli", "bin.js");
let nextImage = 0;

type Kind = "read" | "deliver" | "scan";
interface Sampled {
  kind: Kind;
  ms: number;
  status: number;
}

const work = mkdtempSync(join(tmpdir(), "antidote-bench-serve-"));
let pg: PostgresServer | undefined;
try {
  const images = await fashionImages(
    CLIENTS * 400 * DELIVERY_SAMPLES > 60_000 ? 60_000 : CLIENTS * 400 * DELIVERY_SAMPLES,
  );
  // Each row is printed as soon as it is measured.
  process.stdout.write(
    `\n${CLIENTS} clients, ${SECONDS} s each backend (${Math.round((0.87 - SCAN_SHARE) * 100)} % reads, 13 % deliveries of ${DELIVERY_SAMPLES} images, ${SCAN_SHARE * 100} % scan jobs)\n` +
      "| ledger | requests | req/s | 5xx | read p50 / p99 ms (client) | read p50 / p99 ms (in server) | delivery p50 / p99 ms | client's event-loop delay p99 ms | scan submit p50 ms | deliveries 201 = recorded | verify |\n" +
      "|---|---|---|---|---|---|---|---|---|---|---|\n",
  );
  if (!args["skip-sqlite"])
    process.stdout.write(await load("SQLite", join(work, "sqlite", "ledger.db"), images));
  if (!skipPostgres()) {
    pg = await startPostgres();
    process.stdout.write(await load("PostgreSQL", await pg.createDatabase(), images));
  }
  if (!args["skip-ingest"]) process.stdout.write(await ingestComparison(images));
} finally {
  await pg?.stop();
  rmSync(work, { recursive: true, force: true });
}

async function load(engine: string, location: string, images: Sample[]): Promise<string> {
  const home = join(work, engine);
  mkdirSync(home, { recursive: true });
  const keyPath = join(home, "ledger-key.pem");
  // Setup through the library: sources (one supplier per client) and tokens.
  const setup = await openLedger({ location, keyPath });
  const suppliers: { name: string; keyFile: string; token: string }[] = [];
  let admin: string;
  try {
    admin = (await createToken(setup, { principal: "bench-admin", role: "admin" })).token;
    for (let i = 0; i < CLIENTS; i++) {
      const key = generateSigningKey();
      const name = `supplier-${i}`;
      const keyFile = join(home, `${name}.key`);
      writeFileSync(keyFile, key.privateKeyPem, { mode: 0o600 });
      await addSource(setup, { name, kind: "supplier", publicKeysPem: [key.publicKeyPem] });
      suppliers.push({
        name,
        keyFile,
        token: (await createToken(setup, { principal: `client-${i}`, role: `supplier:${name}` })).token,
      });
    }
  } finally {
    await setup.close();
  }
  // Each client's deliveries, built and signed now: the clock measures the service only.
  const pools = await Promise.all(
    suppliers.map(async (supplier, c) => {
      const pool: { source: string; data: string; signature: string }[] = [];
      for (let n = 0; n < DELIVERIES_PER_CLIENT; n++)
        pool.push(
          await signedDelivery(
            home,
            supplier,
            take(images, () => nextImage++),
            `${c}-${n}`,
          ),
        );
      return pool;
    }),
  );
  const server = await serveProcess(location, keyPath);
  const adminClient = new AntidoteClient({ url: server.url, token: admin });
  const samples: Sampled[] = [];
  let accepted = 0;
  let scans = 0;
  let deadline = 0;
  try {
    // One delivered version first, so reads and scans have something to look at.
    const first = await signedDelivery(
      home,
      suppliers[0] as (typeof suppliers)[number],
      take(images, () => nextImage++),
    );
    const seed = await new AntidoteClient({
      url: server.url,
      token: (suppliers[0] as { token: string }).token,
    }).deliver(first);
    accepted++;
    const version = seed.datasetVersion;
    deadline = Date.now() + SECONDS * 1000;
    // The load generator's own event loop: a response it reads late counts in the client's
    // latency without being the server's doing (32 clients share this process and 2 cores).
    const clientLoop = monitorEventLoopDelay({ resolution: 10 });
    clientLoop.enable();
    await Promise.all(
      suppliers.map(async (supplier, c) => {
        const mine = new AntidoteClient({ url: server.url, token: supplier.token });
        let n = 0;
        while (Date.now() < deadline) {
          const roll = Math.random();
          const kind: Kind = roll < SCAN_SHARE ? "scan" : roll < SCAN_SHARE + 0.13 ? "deliver" : "read";
          const t = performance.now();
          let status = 200;
          try {
            if (kind === "deliver") {
              const delivery = pools[c]?.[n++];
              if (delivery === undefined) continue; // this client's pool is spent
              const result = await mine.deliver(delivery);
              if (!result.alreadyIngested) accepted++;
            }
            if (kind === "scan") {
              await adminClient.submitJob("scan", {
                version,
                detectors: ["confident-learning"],
                imageProxy: "mlp",
              });
              scans++;
            } else if (kind === "read") await read(adminClient, version, supplier.name);
          } catch (e) {
            status = (e as { status?: number }).status ?? 599;
          }
          samples.push({ kind, ms: performance.now() - t, status });
        }
      }),
    );
    clientLoop.disable();
    // Let queued scans finish so the ledger is checked at rest.
    for (;;) {
      const { items } = await adminClient.jobs({ limit: 1000 });
      if (items.every((j) => j.state === "done" || j.state === "failed" || j.state === "cancelled")) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const recorded = (await adminClient.deliveries({ limit: 1000 })).items.length;
    const submitted = (await adminClient.jobs({ limit: 1000 })).items.length;
    const report = await adminClient.verifyLedger();
    const by = (k: Kind) => samples.filter((s) => s.kind === k && s.status < 500).map((s) => s.ms);
    const errors5xx = samples.filter((s) => s.status >= 500).length;
    return (
      `| ${engine} | ${samples.length} | ${(samples.length / SECONDS).toFixed(0)} | ${errors5xx} | ` +
      `${q(by("read"), 0.5)} / ${q(by("read"), 0.99)} | ${q(server.readMs, 0.5)} / ${q(server.readMs, 0.99)} | ` +
      `${q(by("deliver"), 0.5)} / ${q(by("deliver"), 0.99)} | ` +
      `${(clientLoop.percentile(99) / 1e6).toFixed(0)} | ` +
      `${q(by("scan"), 0.5)} | ${accepted} = ${recorded} ${accepted === recorded ? "✓" : "✗"} (scans ${scans} = ${submitted} ${scans === submitted ? "✓" : "✗"}) | ${report.ok ? "ok" : "FAILED"} |\n`
    );
  } finally {
    await server.close();
  }
}

/** `antidote serve` on a free port, in its own process; resolves once it prints its URL. */
async function serveProcess(
  location: string,
  keyPath: string,
): Promise<{ url: string; readMs: number[]; close(): Promise<void> }> {
  const child = spawn(
    "node",
    [
      BIN,
      "serve",
      "--ledger",
      location,
      "--ledger-key",
      keyPath,
      "--port",
      "0",
      "--rate",
      "100000/s",
      "--burst",
      "100000",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  // The server's request log (one JSON line per request): how long each read took inside the
  // server, from routing to response — without the client's side or the wait for a socket.
  const readMs: number[] = [];
  let log = "";
  child.stderr.on("data", (chunk: Buffer) => {
    log += chunk.toString();
    const lines = log.split("\n");
    log = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      const entry = JSON.parse(line) as { method: string; path: string; ms: number };
      if (entry.method === "GET" && !entry.path.endsWith("/events")) readMs.push(entry.ms);
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m !== null) resolve(m[1] as string);
    });
    child.once("exit", (code) => reject(new Error(`antidote serve exited (${code}) before listening`)));
  });
  return {
    url,
    readMs,
    close: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function read(client: AntidoteClient, version: string, source: string): Promise<void> {
  switch (Math.floor(Math.random() * 7)) {
    case 0:
      return void (await client.sources());
    case 1:
      return void (await client.versions({ limit: 50 }));
    case 2:
      return void (await client.members(version, { limit: 100 }));
    case 3:
      return void (await client.findings({ limit: 100 }));
    case 4:
      return void (await client.traceSource(source));
    case 5:
      return void (await client.signedHead());
    default:
      return void (await client.jobs({ limit: 20 }));
  }
}

/** A JSONL delivery of `samples`, signed by the supplier's key. */
async function signedDelivery(
  home: string,
  supplier: { name: string; keyFile: string },
  samples: Sample[],
  tag = "seed",
): Promise<{ source: string; data: string; signature: string }> {
  const dir = join(home, "deliveries", `${supplier.name}-${tag}`);
  mkdirSync(dir, { recursive: true });
  const data = join(dir, "delivery.parquet");
  const writer = await createWriter(data, { format: "parquet" });
  for (const s of samples) await writer.write(s);
  await writer.close();
  const signature = join(dir, "delivery.sigstore.json");
  writeFileSync(
    signature,
    JSON.stringify(signStatement(await buildStatement(data), await readPrivateKey(supplier.keyFile))),
  );
  return { source: supplier.name, data, signature };
}

/** The next DELIVERY_SAMPLES images, cycling; each delivery gets distinct ids so it is a new manifest. */
function take(images: Sample[], next: () => number): Sample[] {
  const start = next();
  return Array.from({ length: DELIVERY_SAMPLES }, (_, i) => {
    const s = images[(start * DELIVERY_SAMPLES + i) % images.length] as Sample;
    return { ...s, id: `${start}-${i}` };
  });
}

async function fashionImages(n: number): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of (await openDataset("fashion-mnist")).samples()) {
    out.push(s);
    if (out.length >= n) break;
  }
  return out;
}

function q(values: number[], p: number): string {
  if (values.length === 0) return "—";
  const sorted = [...values].sort((a, b) => a - b);
  return (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number).toFixed(
    p === 0.5 ? 1 : 0,
  );
}

/** The same signed delivery of INGEST_SAMPLES images, ingested by the CLI and over HTTP. */
async function ingestComparison(images: Sample[]): Promise<string> {
  const home = join(work, "ingest");
  mkdirSync(home, { recursive: true });
  const all: Sample[] = [];
  for await (const s of (await openDataset("fashion-mnist")).samples()) {
    all.push(s);
    if (all.length >= INGEST_SAMPLES) break;
  }
  void images;
  const key = generateSigningKey();
  const keyFile = join(home, "acme.key");
  const pubFile = join(home, "acme.pub");
  writeFileSync(keyFile, key.privateKeyPem, { mode: 0o600 });
  writeFileSync(pubFile, key.publicKeyPem);
  const delivery = await signedDelivery(home, { name: "acme", keyFile }, all, "big");
  const bin = join(process.cwd(), "dist", "cli", "bin.js");
  const cli = (ledger: string, ...rest: string[]) =>
    execFileSync("node", [bin, ...rest, "--ledger", ledger], { cwd: home, stdio: "pipe" });

  // CLI: a fresh ledger, the source registered, then the timed ingest (process start included).
  const cliLedger = join(home, "cli", "ledger.db");
  cli(cliLedger, "source", "add", "acme", "--kind", "supplier", "--key", pubFile);
  let t = performance.now();
  cli(cliLedger, "ingest", delivery.data, "--source", "acme", "--signature", delivery.signature);
  const cliSeconds = (performance.now() - t) / 1000;

  // HTTP: a fresh ledger and server; the timed upload + verification + recording.
  const httpLedger = join(home, "http", "ledger.db");
  const keyPath = join(home, "http", "ledger-key.pem");
  mkdirSync(join(home, "http"), { recursive: true });
  const setup = await openLedger({ location: httpLedger, keyPath });
  await addSource(setup, { name: "acme", kind: "supplier", publicKeysPem: [key.publicKeyPem] });
  const token = (await createToken(setup, { principal: "acme-uploader", role: "supplier:acme" })).token;
  await setup.close();
  const server = await startServer({
    location: httpLedger,
    keyPath,
    port: 0,
    log: () => undefined,
    queue: (ledger) => createInProcessQueue({ ledger }),
  });
  try {
    t = performance.now();
    await new AntidoteClient({ url: server.url, token }).deliver(delivery);
  } finally {
    await server.close();
  }
  const httpSeconds = (performance.now() - t) / 1000;
  const rate = (s: number) => Math.round(INGEST_SAMPLES / s).toLocaleString("en-US");
  return (
    `\nSigned delivery of ${INGEST_SAMPLES.toLocaleString("en-US")} Fashion-MNIST images (Parquet), SQLite ledger\n` +
    "| path | seconds | samples/s |\n|---|---|---|\n" +
    `| CLI \`antidote ingest\` (process start included) | ${cliSeconds.toFixed(1)} | ${rate(cliSeconds)} |\n` +
    `| HTTP upload to \`antidote serve\` | ${httpSeconds.toFixed(1)} | ${rate(httpSeconds)} |\n` +
    `| HTTP / CLI throughput | ${(cliSeconds / httpSeconds).toFixed(2)}× | |\n`
  );
}
