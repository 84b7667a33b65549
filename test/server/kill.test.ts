// `antidote serve` killed with SIGKILL, mid-ingest and mid-job, and started again on the same
// ledger. Mid-ingest: the client sees the connection end; nothing of the delivery is in the
// ledger; the ledger verifies; the next server sweeps the dead one's upload directory and the
// next ingest its half-written store file; the delivery sent again is recorded once. Mid-job:
// the job's process outlives the server and finishes under its claim (a restarted server
// does not run it twice); the job ends done, its outcome recorded once; the ledger verifies.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/tokens.js";
import { createWriter } from "../../src/data/open.js";
import { FASHION_MNIST_CLASSES } from "../../src/data/builtin.js";
import { buildStatement, signStatement } from "../../src/provenance/index.js";
import { addSource } from "../../src/provenance/sources.js";
import { freshLedger, jobEvents, patchedVersion, waitFor, type TestLedger } from "../jobs/engines.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";
import { MULTIPART, multipart, supplierKey } from "./helpers.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");
/** Enough images that verifying them takes seconds: time to catch the server mid-ingest. */
const DELIVERY_IMAGES = 6000;

interface Serving {
  url: string;
  child: ChildProcessWithoutNullStreams;
  exited: Promise<unknown>;
}

describe.runIf(hasFashionMnist())("antidote serve killed with SIGKILL", () => {
  let t: TestLedger;
  let version: string;
  let admin: string;
  let supplier: string;
  let body: Buffer;
  let uploads: string;
  let storeDir: string;
  const running = new Set<Serving>();

  beforeAll(async () => {
    t = await freshLedger("antidote-serve-kill-");
    ({ version } = await patchedVersion(t, 1000));
    const key = supplierKey();
    await addSource(t.ledger, { name: "acme", kind: "supplier", publicKeysPem: [key.publicKeyPem] });
    admin = (await createToken(t.ledger, { role: "admin", principal: "root" })).token;
    supplier = (await createToken(t.ledger, { role: "supplier:acme", principal: "acme-bot" })).token;
    const data = join(t.dir, "acme.parquet");
    const writer = await createWriter(data, { classes: [...FASHION_MNIST_CLASSES] });
    for (const s of fashionMnistSamples(DELIVERY_IMAGES)) await writer.write(s);
    await writer.close();
    const bundle = JSON.stringify(signStatement(await buildStatement(data), key.key));
    body = multipart([
      { name: "source", value: "acme" },
      { name: "data", value: readFileSync(data), filename: "acme.parquet" },
      { name: "signature", value: bundle, filename: "acme.sigstore.json" },
    ]);
    storeDir = join(t.ledger.homeDir, "store");
    uploads = join(t.dir, "uploads");
    mkdirSync(uploads);
  });
  afterAll(async () => {
    for (const s of running) s.child.kill("SIGKILL");
    await t?.close();
  });

  async function serve(extra: string[] = []): Promise<Serving> {
    const child = spawn(
      process.execPath,
      [BIN, "serve", "--port", "0", "--ledger", t.location, "--ledger-key", t.keyPath, ...extra],
      { cwd: t.dir },
    );
    child.stdin.end();
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
        if (m?.[1] !== undefined) resolve(m[1]);
      });
      void exited.then(() => reject(new Error(`serve exited: ${stderr}`)));
    });
    const s = { url, child, exited };
    running.add(s);
    return s;
  }
  async function kill(s: Serving): Promise<void> {
    s.child.kill("SIGKILL");
    await s.exited;
    running.delete(s);
  }
  const get = async (s: Serving, path: string) =>
    (await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json() as Promise<
      Record<string, unknown>
    >;
  const deliver = (s: Serving) =>
    fetch(`${s.url}/v1/deliveries`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${supplier}`,
        "content-type": MULTIPART,
        "antidote-request-id": crypto.randomUUID(),
      },
      body,
    });
  const listing = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  const twoMinutesAgo = () => new Date(Date.now() - 120_000);

  it("mid-ingest: nothing recorded, leftovers swept, the delivery sent again is recorded once", async () => {
    const first = await serve(["--upload-dir", uploads]);
    const sending = deliver(first).then(
      (r) => r.status,
      () => "connection ended",
    );
    // The store file being written: the delivery is past upload and mid-verification.
    const temporary = await waitFor(
      "the store file to be mid-write",
      () => listing(storeDir).find((n) => n.startsWith(".") && n.includes(".tmp-")),
      60_000,
    );
    await kill(first);
    expect(await sending).toBe("connection ended");

    const leftUpload = listing(uploads).filter((n) => n.startsWith(`antidote-upload-${first.child.pid}-`));
    expect(leftUpload).toHaveLength(1);
    // Old enough that the sweeps take them (fresh ones may belong to a live process elsewhere).
    for (const path of [join(uploads, leftUpload[0] as string), join(storeDir, temporary)])
      utimesSync(path, twoMinutesAgo(), twoMinutesAgo());

    const second = await serve(["--upload-dir", uploads]);
    expect(listing(uploads)).toEqual([]);
    expect((await get(second, "/v1/deliveries?source=acme")).items).toEqual([]);
    expect(await get(second, "/v1/ledger/verify")).toMatchObject({ ok: true });

    const again = await deliver(second);
    expect(again.status, await again.clone().text()).toBe(201);
    expect(listing(storeDir).filter((n) => n.startsWith("."))).toEqual([]);
    // The patched version's store file, and one of acme's.
    expect(listing(storeDir).filter((n) => n.endsWith(".parquet"))).toHaveLength(2);
    const delivered = (await get(second, "/v1/deliveries?source=acme")).items as { sampleCount: number }[];
    expect(delivered.map((d) => d.sampleCount)).toEqual([DELIVERY_IMAGES]);
    expect(await get(second, "/v1/ledger/verify")).toMatchObject({ ok: true });
    await kill(second);
  });

  it("mid-job: the job finishes once, done, and the ledger verifies", async () => {
    const first = await serve();
    const submitted = await fetch(`${first.url}/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${admin}`,
        "content-type": "application/json",
        "antidote-request-id": crypto.randomUUID(),
      },
      body: JSON.stringify({
        kind: "scan",
        parameters: { version, detectors: ["trigger-patches"], imageProxy: "mlp", seed: 0 },
      }),
    });
    expect(submitted.status).toBe(202);
    const { jobId } = (await submitted.json()) as { jobId: string };
    await waitFor(
      "the scan to be running",
      async () => {
        const job = await get(first, `/v1/jobs/${jobId}`);
        return job.state === "running" && job.progress !== null ? job : undefined;
      },
      60_000,
    );
    await kill(first);

    const second = await serve();
    const done = await waitFor(
      "the scan to end",
      async () => {
        const job = await get(second, `/v1/jobs/${jobId}`);
        return ["done", "failed", "cancelled"].includes(job.state as string) ? job : undefined;
      },
      120_000,
    );
    expect(done.state, JSON.stringify(done.error)).toBe("done");
    await kill(second);

    const events = await jobEvents(t.ledger, jobId);
    expect(events.filter((e) => e.kind === "job.finished")).toHaveLength(1);
    expect((await t.ledger.verify()).ok).toBe(true);
  });
});
