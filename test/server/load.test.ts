// 32 concurrent clients against a real `antidote serve` (the in-process job queue, a loopback
// port) on SQLite and on PostgreSQL, mixing signed deliveries, reads and scan jobs for a few
// seconds: no 5xx, every accepted delivery recorded exactly once, every submitted job recorded
// once and finished, and the ledger verifies afterwards. Speed is measured by `npm run
// bench:serve` (60 s per backend), never asserted here.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { AntidoteClient } from "../../src/client/index.js";
import { createInProcessQueue } from "../../src/jobs/index.js";
import { addSource, buildStatement, signStatement } from "../../src/provenance/index.js";
import { startServer } from "../../src/server/serve.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { supplierKey } from "./helpers.js";

const CLIENTS = 32;
const SECONDS = 6;
const DELIVERIES_PER_CLIENT = 4;

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("the service under load on $name", (backend) => {
  beforeAll(() => backend.setup(), 120_000);
  afterAll(() => backend.teardown());

  it(`serves ${CLIENTS} clients mixing deliveries, reads and scans: no 5xx, nothing lost or doubled`, async () => {
    const fresh = await backend.fresh();
    const setup = await fresh.open("setup");
    const clients: { token: string; deliveries: { source: string; data: string; signature: string }[] }[] =
      [];
    let admin: string;
    try {
      admin = (await createToken(setup, { principal: "root", role: "admin" })).token;
      for (let c = 0; c < CLIENTS; c++) {
        const key = supplierKey();
        const source = `supplier-${c}`;
        await addSource(setup, { name: source, kind: "supplier", publicKeysPem: [key.publicKeyPem] });
        const deliveries = [];
        for (let d = 0; d < DELIVERIES_PER_CLIENT; d++) {
          const data = join(fresh.dir, `${source}-${d}.csv`);
          const rows = Array.from(
            { length: 30 },
            (_, i) =>
              `${c}-${d}-${i},note ${c} ${d} ${i} ${i % 3 === 0 ? "win cash now" : "see you at lunch"},${i % 3 === 0 ? "spam" : "ham"}`,
          );
          writeFileSync(data, ["id,text,label", ...rows].join("\n") + "\n");
          const signature = `${data}.sigstore.json`;
          writeFileSync(signature, JSON.stringify(signStatement(await buildStatement(data), key.key)));
          deliveries.push({ source, data, signature });
        }
        const token = (await createToken(setup, { principal: `ci-${c}`, role: `supplier:${source}` })).token;
        clients.push({ token, deliveries });
      }
    } finally {
      await setup.close();
    }
    const server = await startServer({
      location: fresh.location,
      keyPath: fresh.keyPath,
      port: 0,
      limits: { ratePerSecond: 10_000, rateBurst: 10_000 },
      log: () => undefined,
      queue: (ledger) => createInProcessQueue({ ledger, pollMs: 200 }),
    });
    try {
      const root = new AntidoteClient({ url: server.url, token: admin });
      const statuses: number[] = [];
      let accepted = 0;
      let submitted = 0;
      const first = clients[0] as (typeof clients)[number];
      const seed = await new AntidoteClient({ url: server.url, token: first.token }).deliver(
        first.deliveries.shift() as (typeof first.deliveries)[number],
      );
      accepted++;
      const deadline = Date.now() + SECONDS * 1000;
      await Promise.all(
        clients.map(async (client, c) => {
          const mine = new AntidoteClient({ url: server.url, token: client.token });
          for (let i = 0; Date.now() < deadline; i++) {
            try {
              const turn = (i + c) % 10;
              if (turn === 0 && client.deliveries.length > 0) {
                const result = await mine.deliver(
                  client.deliveries.shift() as (typeof client.deliveries)[number],
                );
                if (!result.alreadyIngested) accepted++;
              } else if (turn === 5 && c % 8 === 0) {
                await root.submitJob("scan", {
                  version: seed.datasetVersion,
                  detectors: ["near-duplicates"],
                });
                submitted++;
              } else if (turn % 3 === 0) await root.findings({ limit: 50 });
              else if (turn % 3 === 1) await root.members(seed.datasetVersion, { limit: 20 });
              else await root.traceSource(`supplier-${c}`);
              statuses.push(200);
            } catch (e) {
              statuses.push((e as { status?: number }).status ?? 599);
            }
          }
        }),
      );
      expect(statuses.length).toBeGreaterThan(CLIENTS);
      expect(statuses.filter((s) => s >= 500)).toEqual([]);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);

      // Every job ends; each one's submission and outcome are in the log exactly once.
      let jobs = (await root.jobs({ limit: 1000 })).items;
      for (let wait = 0; jobs.some((j) => j.state === "queued" || j.state === "running"); wait++) {
        expect(wait).toBeLessThan(600);
        await new Promise((r) => setTimeout(r, 200));
        jobs = (await root.jobs({ limit: 1000 })).items;
      }
      expect(jobs).toHaveLength(submitted);
      expect(jobs.every((j) => j.state === "done")).toBe(true);
      const kinds = new Map<string, string[]>();
      for await (const event of server.ledger.events())
        if (event.kind === "job.submitted" || event.kind === "job.finished")
          kinds.set(event.payload.jobId, [...(kinds.get(event.payload.jobId) ?? []), event.kind]);
      expect(kinds.size).toBe(submitted);
      for (const seen of kinds.values()) expect(seen).toEqual(["job.submitted", "job.finished"]);

      const deliveries = await server.ledger.listDeliveries();
      expect(deliveries).toHaveLength(accepted);
      expect(new Set(deliveries.map((d) => d.deliveryId)).size).toBe(accepted);
      const report = await server.ledger.verify();
      expect(report.ok).toBe(true);
      expect(report.tableMismatches).toEqual([]);
    } finally {
      await server.close();
    }
  }, 180_000);
});
