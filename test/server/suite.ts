// A running server per backend for the API tests: `useServer(backend)` registers the hooks
// that start it (SQLite or PostgreSQL ledger, a fake job queue, small limits so the limits can
// be hit), make the tokens and a supplier's signed delivery, and — after the file's tests —
// check that the ledger verifies and that no token ever reached the log.
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { createToken } from "../../src/auth/index.js";
import type { Ledger } from "../../src/ledger/index.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import type { Backend } from "../ledger/backends.js";
import {
  MULTIPART,
  caller,
  countEvents,
  fakeQueue,
  isErrorBody,
  multipart,
  signedDelivery,
  supplierKey,
  type Part,
  type Reply,
} from "./helpers.js";

export interface Suite {
  server: RunningServer;
  ledger: Ledger;
  call: ReturnType<typeof caller>;
  /** Where the server stages uploads: empty whenever no request is running. */
  uploads: string;
  acme: ReturnType<typeof supplierKey>;
  delivery: Awaited<ReturnType<typeof signedDelivery>>;
  /** Tokens: root (admin), rita (reader), ana (analyst), acme-ci (supplier:acme). */
  admin: string;
  reader: string;
  analyst: string;
  supplier: string;
  token(principal: string, role: string, expires?: string, now?: Date): Promise<string>;
  /** Remember a secret made elsewhere, so the log check covers it. */
  secret(token: string): void;
  storeFiles(): string[];
  /** Runs `attempt` and checks it wrote nothing: no event, no store file, no upload left. */
  nothingWritten(attempt: () => Promise<Reply>): Promise<Reply>;
  upload(parts: Part[], as?: string): Promise<Reply>;
  /** The signed delivery's parts, as `source`, with other data or bundle bytes if given. */
  deliveryParts(source: string, data?: Uint8Array, bundle?: string): Part[];
}

/** The secret part of a token (it may itself hold "_": base64url). */
export const secretOf = (token: string): string => token.slice("adt_".length + 17);

export function useServer(backend: Backend): Suite {
  const logs: string[] = [];
  const secrets: string[] = [];
  const s = { acme: supplierKey() } as Suite;
  s.secret = (token) => void secrets.push(token);
  s.token = async (principal, role, expires, now) => {
    const made = await createToken(s.ledger, { principal, role, expires }, { actor: "test", now });
    secrets.push(made.token);
    return made.token;
  };
  s.storeFiles = () => {
    const store = join(s.ledger.homeDir, "store");
    return existsSync(store) ? readdirSync(store) : [];
  };
  s.nothingWritten = async (attempt) => {
    const [events, files] = [await countEvents(s.ledger), s.storeFiles()];
    const reply = await attempt();
    expect(isErrorBody(reply.body), reply.text).toBe(true);
    expect(await countEvents(s.ledger)).toBe(events);
    expect(s.storeFiles()).toEqual(files);
    expect(readdirSync(s.uploads)).toEqual([]);
    return reply;
  };
  s.upload = (parts, as = s.supplier) =>
    s.call("POST", "/v1/deliveries", { token: as, body: multipart(parts), type: MULTIPART });
  s.deliveryParts = (source, data = s.delivery.bytes, bundle = s.delivery.bundle) => [
    { name: "source", value: source },
    { name: "data", filename: s.delivery.file, value: data },
    { name: "signature", filename: "delivery.sigstore.json", value: bundle },
  ];

  beforeAll(async () => {
    await backend.setup();
    const fresh = await backend.fresh();
    s.uploads = mkdtempSync(join(fresh.dir, "uploads-"));
    s.server = await startServer({
      location: fresh.location,
      keyPath: fresh.keyPath,
      port: 0,
      limits: { maxJsonBytes: 64 * 1024, maxUploadBytes: 256 * 1024, ratePerSecond: 1000, rateBurst: 1000 },
      uploadDir: s.uploads,
      log: (line) => logs.push(line),
      queue: (l) => Promise.resolve(fakeQueue(l)),
      graceMs: 200,
    });
    s.ledger = s.server.ledger;
    s.call = caller((path, init) => fetch(`${s.server.url}${path}`, init));
    await s.ledger.append(
      [
        {
          kind: "source.added",
          payload: {
            name: "acme",
            kind: "supplier",
            trust: 0.5,
            requireSignature: true,
            keys: [{ publicKeyPem: s.acme.publicKeyPem }],
          },
        },
        {
          kind: "source.added",
          payload: { name: "crawl", kind: "web", trust: 0.2, requireSignature: false, keys: [] },
        },
      ],
      { actor: "test" },
    );
    s.admin = await s.token("root", "admin");
    s.reader = await s.token("rita", "reader");
    s.analyst = await s.token("ana", "analyst");
    s.supplier = await s.token("acme-ci", "supplier:acme");
    s.delivery = await signedDelivery(mkdtempSync(join(fresh.dir, "supplier-")), s.acme);
  });

  afterAll(async () => {
    if (s.ledger !== undefined) {
      expect(await s.ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
      const log = logs.join("\n");
      expect(logs.length).toBeGreaterThan(10);
      for (const secret of secrets) {
        expect(log).not.toContain(secret);
        expect(log).not.toContain(secretOf(secret));
      }
      await s.server.close();
    }
    await backend.teardown();
  });
  return s;
}
