// Telemetry intake throughput, on SQLite and PostgreSQL:
//   npx tsx bench/telemetry-intake.ts [--batches 40] [--records 1000] [--agents 4]
//   (ANTIDOTE_SKIP_POSTGRES=1 for SQLite only; --skip-http or --skip-library for one path)
// Each batch is --records Fashion-MNIST test images (28×28, sent as pixels with their content
// digests), class probabilities and every 4th record a feedback label, signed by its agent's
// Ed25519 key — about 1.3 KB a record. --agents agents send --batches batches in all,
// each agent sending its own in sequence order (as createTelemetryClient does), all agents at
// once. Everything is built and signed before the clock starts.
//   1. library: `ingestTelemetry` in this process (what `antidote telemetry ingest` runs);
//   2. HTTP: POST /v1/telemetry to `antidote serve` in a process of its own (started from the
//      sources through tsx, so no build is needed), with agent tokens, from this process.
// Every batch must be accepted (201), the accepted batches counted in the ledger, and the
// ledger must verify. BENCH_SERVER_PROF=<dir> writes the server's CPU profile there. Prints records/s and per-batch latency. The load generator shares the
// machine's cores with the server.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createToken } from "../src/auth/tokens.js";
import { openLedger, type Ledger } from "../src/ledger/index.js";
import { ingestTelemetry } from "../src/monitor/intake.js";
import type { TelemetryUpload } from "../src/monitor/schema.js";
import { registerModelDigest } from "../src/provenance/model-digest.js";
import { addSource } from "../src/provenance/sources.js";
import { startPostgres, skipPostgres, type PostgresServer } from "../test/helpers/postgres.js";
import {
  jsonl,
  makeAgent,
  recordsFor,
  signedBatch,
  testImages,
  windowEnding,
  type TestAgent,
} from "../test/monitor/telemetry-batches.js";

const { values: args } = parseArgs({
  options: {
    batches: { type: "string", default: "40" },
    records: { type: "string", default: "1000" },
    agents: { type: "string", default: "4" },
    "skip-http": { type: "boolean", default: false },
    "skip-library": { type: "boolean", default: false },
  },
});
const BATCHES = Number(args.batches);
const RECORDS = Number(args.records);
const AGENTS = Number(args.agents);
const MODEL = "3c".repeat(32);

interface Result {
  path: string;
  engine: string;
  records: number;
  seconds: number;
  latencies: number[];
  verified: boolean;
}

const work = mkdtempSync(join(tmpdir(), "antidote-bench-telemetry-"));
let pg: PostgresServer | undefined;
try {
  const agents = Array.from({ length: AGENTS }, (_, i) => makeAgent(`agent-${i}`));
  process.stdout.write(
    `\n${BATCHES} batches of ${RECORDS} Fashion-MNIST records (28×28 pixels) from ${AGENTS} agents at once\n` +
      "| path | ledger | records | seconds | records/s | batch p50 / p99 ms | all accepted, verify |\n" +
      "|---|---|---|---|---|---|---|\n",
  );
  const engines: [string, () => Promise<string>][] = [["SQLite", () => Promise.resolve(join(work, "x"))]];
  if (!skipPostgres())
    engines.push(["PostgreSQL", async () => (pg ??= await startPostgres()).createDatabase()]);
  for (const [engine, location] of engines) {
    if (!args["skip-library"])
      process.stdout.write(row(await run("library (in process)", engine, await location(), agents, false)));
    if (!args["skip-http"])
      process.stdout.write(row(await run("HTTP (antidote serve)", engine, await location(), agents, true)));
  }
} finally {
  await pg?.stop();
  rmSync(work, { recursive: true, force: true, maxRetries: 5 });
}

async function run(
  path: string,
  engine: string,
  where: string,
  agents: TestAgent[],
  http: boolean,
): Promise<Result> {
  const home = mkdtempSync(join(work, `${engine}-`));
  const location = engine === "SQLite" ? join(home, "ledger.db") : where;
  const keyPath = join(home, "ledger-key.pem");
  const setup = await openLedger({ location, keyPath });
  const tokens = new Map<string, string>();
  for (const a of agents) {
    await addSource(setup, { name: a.name, kind: "agent", publicKeysPem: [a.publicKeyPem] });
    tokens.set(
      a.name,
      (await createToken(setup, { principal: `${a.name}-deploy`, role: `agent:${a.name}` })).token,
    );
  }
  await registerModelDigest(setup, { digest: MODEL, name: "fm-classifier", trainedOn: [] });
  const uploads = build(agents);
  const bodies = uploads.map((u) => ({ agent: agentOf(u), body: JSON.stringify(u) }));

  let send: (i: number) => Promise<void>;
  let server: { url: string; close(): Promise<void> } | undefined;
  if (http) {
    await setup.close();
    server = await serveProcess(location, keyPath, home);
    const url = `${server.url}/v1/telemetry`;
    send = async (i) => {
      const { agent, body } = bodies[i] as { agent: string; body: string };
      const response = await fetch(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${tokens.get(agent) ?? ""}`,
          "content-type": "application/json",
          "antidote-request-id": randomUUID(),
        },
        body,
      });
      if (response.status !== 201)
        throw new Error(`batch ${i}: HTTP ${response.status} ${await response.text()}`);
      await response.arrayBuffer().catch(() => undefined);
    };
  } else send = async (i) => void (await ingestTelemetry(setup, uploads[i], { principal: "bench" }));

  const latencies: number[] = [];
  const start = performance.now();
  try {
    // Each agent sends its batches one after another, in sequence order; the agents at once.
    await Promise.all(
      agents.map(async (_, a) => {
        for (let i = a; i < uploads.length; i += agents.length) {
          const t = performance.now();
          await send(i);
          latencies.push(performance.now() - t);
        }
      }),
    );
  } finally {
    await server?.close();
  }
  const seconds = (performance.now() - start) / 1000;
  const ledger: Ledger = http ? await openLedger({ location, keyPath }) : setup;
  const accepted = (await ledger.listTelemetryBatches({ limit: 10_000 })).length;
  const verified = accepted === uploads.length && (await ledger.verify()).ok;
  await ledger.close();
  return { path, engine, records: uploads.length * RECORDS, seconds, latencies, verified };
}

/** The batches, agents taking turns, each agent's sequence counting up from 0. */
function build(agents: TestAgent[]): TelemetryUpload[] {
  const now = new Date();
  const window = windowEnding(now);
  const made = new Date(now.getTime() - 60_000);
  return Array.from({ length: BATCHES }, (_, i) => {
    const agent = agents[i % agents.length] as TestAgent;
    const text = jsonl(recordsFor(testImages(i * RECORDS, RECORDS), made));
    return signedBatch(agent, { sequence: Math.floor(i / agents.length), model: MODEL, text, window });
  });
}

function agentOf(upload: TelemetryUpload): string {
  return (JSON.parse(Buffer.from(upload.envelope.payload, "base64").toString()) as { agent: string }).agent;
}

function row(r: Result): string {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const at = (q: number) =>
    (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(0);
  return (
    `| ${r.path} | ${r.engine} | ${r.records} | ${r.seconds.toFixed(2)} | ${Math.round(r.records / r.seconds)} | ` +
    `${at(0.5)} / ${at(0.99)} | ${r.verified ? "yes" : "NO"} |\n`
  );
}

/** `antidote serve` from the sources on a free port; resolves once it prints its URL. */
async function serveProcess(
  location: string,
  keyPath: string,
  home: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const uploads = join(home, "uploads");
  mkdirSync(uploads, { recursive: true });
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_SERVER_PROF !== undefined
        ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_SERVER_PROF}`]
        : []),
      "--import",
      import.meta.resolve("tsx"),
      join(import.meta.dirname, "..", "src", "cli", "bin.ts"),
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
      "--upload-dir",
      uploads,
    ],
    { stdio: ["ignore", "pipe", "ignore"], cwd: home },
  );
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
    close: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
