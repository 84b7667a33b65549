// Several processes on one ledger, and one killed mid-append, on SQLite and PostgreSQL.
// Each writer is a real child process (`node --import tsx`), so the lock under test is the
// database's, not a mutex inside one Node process.
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_WRITE_LOCK } from "../../src/ledger/backend.js";
import type { Ledger, LedgerEvent } from "../../src/ledger/index.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type Backend, type FreshLedger } from "./backends.js";
import { sha256, sourceAdded } from "./events.js";
import type { WorkerArgs, WorkerJob } from "./fixtures/worker.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "..", "..");
const WORKER = join(HERE, "fixtures", "worker.ts");

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

interface Worker {
  child: ChildProcess;
  /** Resolves with the first stdout line whose status is `status`. */
  next(status: string): Promise<Record<string, unknown>>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function startWorker(fresh: FreshLedger, job: WorkerJob): Worker {
  const full: WorkerArgs = { ...job, location: fresh.location, keyPath: fresh.keyPath, cwd: process.cwd() };
  const child = spawn(process.execPath, ["--import", "tsx", WORKER, JSON.stringify(full)], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines: Record<string, unknown>[] = [];
  const waiters: { status: string; resolve: (v: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    const message = JSON.parse(line) as Record<string, unknown>;
    lines.push(message);
    for (const w of waiters.filter((w) => w.status === message.status)) w.resolve(message);
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) =>
    child.on("exit", (code, signal) => done({ code, signal, stderr })),
  );
  return {
    child,
    exit,
    next: (status) =>
      new Promise((resolveLine, reject) => {
        const seen = lines.find((l) => l.status === status);
        if (seen !== undefined) return resolveLine(seen);
        waiters.push({ status, resolve: resolveLine });
        void exit.then((e) =>
          reject(new Error(`worker exited (${e.code ?? e.signal}) before "${status}": ${e.stderr}`)),
        );
      }),
  };
}

/** Whether another process holds the ledger's write lock right now. */
async function lockProbe(
  backend: Backend,
  fresh: FreshLedger,
): Promise<{ held(): Promise<boolean>; close(): Promise<void> }> {
  if (backend.name === "SQLite") {
    const db = new BetterSqlite3(fresh.location, { timeout: 0 });
    return {
      held: () => {
        try {
          db.exec("BEGIN IMMEDIATE");
          db.exec("ROLLBACK");
          return Promise.resolve(false);
        } catch (e) {
          if ((e as { code?: string }).code === "SQLITE_BUSY") return Promise.resolve(true);
          throw e;
        }
      },
      close: () => Promise.resolve(void db.close()),
    };
  }
  const client = new pg.Client({ connectionString: fresh.location });
  await client.connect();
  return {
    held: async () => {
      const { rows } = await client.query<{ got: boolean }>("select pg_try_advisory_lock($1) as got", [
        PG_WRITE_LOCK,
      ]);
      if (rows[0]?.got === true) await client.query("select pg_advisory_unlock($1)", [PG_WRITE_LOCK]);
      return rows[0]?.got === false;
    },
    close: () => client.end(),
  };
}

async function allEvents(ledger: Ledger): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  for await (const e of ledger.events()) out.push(e);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)("ledger writers on $name", (backend) => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it("serializes two processes appending at once: every event present, chain valid", async () => {
    const fresh = await backend.fresh();
    const setup = await fresh.open();
    await setup.append([sourceAdded("shared")]);
    await setup.close();

    const count = 25;
    const workers = ["alpha", "beta"].map((actor) => startWorker(fresh, { mode: "appends", actor, count }));
    const exits = await Promise.all(workers.map((w) => w.exit));
    for (const e of exits) expect(e, e.stderr).toMatchObject({ code: 0 });

    const ledger = await fresh.open();
    const events = await allEvents(ledger);
    expect(events).toHaveLength(2 + 2 * count);
    for (const actor of ["alpha", "beta"]) {
      const mine = events.filter((e) => e.actor === actor);
      expect(mine.map((e) => (e.kind === "finding.recorded" ? e.payload.subjectId : ""))).toEqual(
        Array.from({ length: count }, (_, i) => sha256(`${actor}:${i}`)),
      );
    }
    expect(await ledger.verify()).toMatchObject({
      ok: true,
      events: events.length,
      checkpoints: 2 + 2 * count,
      tableMismatches: [],
    });
    await ledger.close();
  });

  it("records a delivery once when two processes ingest it at the same time", async () => {
    const fresh = await backend.fresh();
    const setup = await fresh.open();
    await setup.append([sourceAdded("shared")]);
    await setup.close();

    const workers = ["one", "two"].map((actor) =>
      startWorker(fresh, { mode: "ingest", actor, samples: 1000 }),
    );
    const results = await Promise.all(workers.map((w) => w.next("finished")));
    for (const e of await Promise.all(workers.map((w) => w.exit)))
      expect(e, e.stderr).toMatchObject({ code: 0 });
    const appended = results.map((r) => r.appended as number).sort((a, b) => a - b);
    expect(appended).toEqual([0, 1 + 4 + 1 + 4]); // delivery, 4 sample batches, version, 4 member batches

    const ledger = await fresh.open();
    expect(await ledger.listDeliveries()).toHaveLength(1);
    expect(await ledger.listDatasetVersions()).toHaveLength(1);
    expect((await ledger.traceSource("shared")).sampleCount).toBe(1000);
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
  });

  it("survives kill -9 in the middle of a 200k-sample append: the ledger stays at its last complete event", async () => {
    const fresh = await backend.fresh();
    const setup = await fresh.open();
    await setup.append([sourceAdded("bulk")]);
    const before = await allEvents(setup);
    await setup.close();

    const worker = startWorker(fresh, { mode: "big", actor: "bulk", samples: 200_000, source: "bulk" });
    await worker.next("started");
    // Kill only once the append holds the write lock, i.e. its transaction is under way.
    const probe = await lockProbe(backend, fresh);
    let held = false;
    for (
      const deadline = Date.now() + 60_000;
      !held && Date.now() < deadline && worker.child.exitCode === null;
    ) {
      held = await probe.held();
      if (!held) await sleep(5);
    }
    await probe.close();
    expect(held).toBe(true);
    worker.child.kill("SIGKILL");
    expect((await worker.exit).signal).toBe("SIGKILL");

    const ledger = await fresh.open();
    const after = await allEvents(ledger);
    expect(after).toEqual(before);
    expect(await ledger.listDeliveries()).toEqual([]);
    expect((await ledger.traceSource("bulk")).sampleCount).toBe(0);
    expect(await ledger.verify()).toMatchObject({
      ok: true,
      events: before.length,
      checkpoints: 2,
      tableMismatches: [],
    });
    // And it goes on from there.
    await ledger.append([sourceAdded("after-crash")]);
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
  });
});
