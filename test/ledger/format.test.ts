// The ledger's public formats and its boundary: the hash formula's fast path, event
// validation messages, locations, the witness and the checkpoint key.
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { withoutPassword } from "../../src/ledger/backend.js";
import { canonicalJson, eventHash, eventHashOfCanonical } from "../../src/ledger/chain.js";
import { openLedger } from "../../src/ledger/index.js";
import { createLedgerKeyFile, readLedgerKey, signCheckpoint } from "../../src/ledger/keys.js";
import { parseEvents } from "../../src/ledger/schemas.js";
import { readWitness, writeWitness } from "../../src/ledger/witness.js";
import { sha256 } from "./events.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-ledger-format-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function thrown(f: () => unknown): AntidoteError {
  try {
    f();
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

describe("event hash", () => {
  it("hashes a stored (canonical) payload exactly as the documented formula does", () => {
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
          at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          actor: fc.string({ unit: "binary" }),
          kind: fc.string(),
          payload: fc.jsonValue(),
        }),
        fc.stringMatching(/^[0-9a-f]{64}$/),
        (event, prev) => {
          const payloadJson = canonicalJson(event.payload);
          expect(eventHashOfCanonical(prev, { ...event, payloadJson })).toBe(eventHash(prev, event));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("event validation", () => {
  it("names the event, its kind and the field", () => {
    const e = thrown(() =>
      parseEvents([
        {
          kind: "finding.recorded",
          payload: {
            subjectType: "sample",
            subjectId: "x",
            kind: "k",
            score: 1,
            evidence: {},
            check: "c",
            checkVersion: "1",
          },
        },
        {
          kind: "model.registered",
          payload: { digest: "d", name: "m", trainedOn: ["v"], baseModel: null, format: 3 },
        },
      ]),
    );
    expect(e.code).toBe("ROW_MALFORMED");
    expect(e.message).toMatch(/^ledger event #1 \(model\.registered\): payload\.format: .*string/);
    expect(thrown(() => parseEvents([{ kind: "bogus", payload: {} }])).message).toMatch(
      /^ledger event #0 \(bogus\): kind: /,
    );
    expect(
      thrown(() =>
        parseEvents([
          {
            kind: "decision.recorded",
            payload: {
              action: "quarantine",
              subjectType: "sample",
              subjectIds: ["train:3"],
              actor: "a",
              reason: "r",
            },
          },
        ]),
      ).message,
    ).toMatch(/payload\.subjectIds\[0\]: a sample is named by its digest/);
    expect(
      thrown(() =>
        parseEvents([
          {
            kind: "source.key-added",
            payload: {
              source: "s",
              publicKeyPem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            },
          },
        ]),
      ).message,
    ).toMatch(/payload\.publicKeyPem: expected an Ed25519 public key/);
    // An RSA key is a valid key, but not the kind deliveries are signed with.
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    expect(
      thrown(() => parseEvents([{ kind: "source.key-added", payload: { source: "s", publicKeyPem: rsa } }]))
        .message,
    ).toMatch(/Ed25519/);
    expect(
      thrown(() =>
        parseEvents([
          {
            kind: "finding.recorded",
            payload: {
              subjectType: "sample",
              subjectId: "x",
              kind: "k",
              score: Number.NaN,
              evidence: {},
              check: "c",
              checkVersion: "1",
            },
          },
        ]),
      ).message,
    ).toMatch(/payload\.score/);
  });
});

describe("locations", () => {
  it("never shows a PostgreSQL password", () => {
    expect(withoutPassword("postgres://alice:s3cret@db.example:5432/ledger?sslmode=require")).toBe(
      "postgres://alice@db.example:5432/ledger?sslmode=require",
    );
    expect(withoutPassword("postgresql://db/ledger")).toBe("postgresql://db/ledger");
  });

  it("fails with LEDGER_UNAVAILABLE naming the location when the database cannot be opened", async () => {
    const notAFile = join(dir, "a-directory");
    mkdirSync(notAFile);
    const e1 = await openLedger({ location: notAFile, keyPath: join(dir, "k1.pem") }).catch(
      (e: unknown) => e,
    );
    expect((e1 as AntidoteError).code).toBe("LEDGER_UNAVAILABLE");
    expect((e1 as AntidoteError).message).toContain(`sqlite:${notAFile}`);

    const garbage = join(dir, "garbage.db");
    writeFileSync(
      garbage,
      "this is not a SQLite database, just text long enough to be read as a header".repeat(20),
    );
    const e2 = await openLedger({ location: garbage, keyPath: join(dir, "k2.pem") }).catch((e: unknown) => e);
    expect((e2 as AntidoteError).code).toBe("LEDGER_UNAVAILABLE");
    expect((e2 as AntidoteError).message).toMatch(
      new RegExp(`^ledger sqlite:${garbage} cannot be opened.*not a database`),
    );

    // Port 1 on localhost: nothing listens there.
    const e3 = await openLedger({
      location: "postgres://alice:s3cret@127.0.0.1:1/ledger",
      keyPath: join(dir, "k3.pem"),
    }).catch((e: unknown) => e);
    expect((e3 as AntidoteError).code).toBe("LEDGER_UNAVAILABLE");
    expect((e3 as AntidoteError).message).toMatch(
      /^ledger postgres:\/\/alice@127\.0\.0\.1:1\/ledger cannot be opened: .*ECONNREFUSED/,
    );
    expect((e3 as AntidoteError).message).not.toContain("s3cret");
  });
});

describe("witness and key", () => {
  it("keeps the latest head: an older checkpoint never replaces a newer one", async () => {
    const key = createLedgerKeyFile(join(dir, "witness-key.pem"));
    const path = join(dir, "w", "ledger.db.head.json");
    const root = sha256("root");
    writeWitness(
      path,
      await signCheckpoint(key, { seq: 5, hash: sha256("5"), at: "2025-01-01T00:00:00.000Z", root }),
    );
    writeWitness(
      path,
      await signCheckpoint(key, { seq: 3, hash: sha256("3"), at: "2025-01-01T00:00:01.000Z", root }),
    );
    expect(readWitness(path)).toMatchObject({
      state: "ok",
      checkpoint: { seq: 5, hash: sha256("5"), keyId: key.keyId },
    });
    writeFileSync(path, "{");
    expect(readWitness(path).state).toBe("unreadable");
    expect(readWitness(join(dir, "none.json")).state).toBe("absent");
  });

  it("creates the ledger key once, 0600, and refuses a key that is not Ed25519", () => {
    const path = join(dir, "keys", "ledger-key.pem");
    const first = createLedgerKeyFile(path);
    expect(createLedgerKeyFile(path).keyId).toBe(first.keyId);
    expect(readLedgerKey(path)?.signer.keyId).toBe(first.keyId);
    expect(readFileSync(path, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const rsa = join(dir, "rsa.pem");
    writeFileSync(
      rsa,
      generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }),
    );
    const e = thrown(() => readLedgerKey(rsa));
    expect(e.code).toBe("LEDGER_UNAVAILABLE");
    expect(e.message).toMatch(/rsa\.pem: the ledger key must be Ed25519, found rsa/);
  });
});
