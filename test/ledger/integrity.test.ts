// The ledger attacked by someone with write access to its files but not its key, on SQLite
// and PostgreSQL (issue "Integrity", holes 2 and 3): each attack is performed as written in
// the issue, then the assertion is that it is detected or refused — and that nothing is
// written on the way.
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import {
  openLedger,
  openLedgerReader,
  signerFromPrivateKey,
  type Ledger,
  type LedgerEventInput,
} from "../../src/ledger/index.js";
import { eventHashOfCanonical, GENESIS_HASH } from "../../src/ledger/chain.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type FreshLedger, type RawSql } from "./backends.js";
import { deliveryEvents, finding, realSamples, sourceAdded } from "./events.js";

const samples = realSamples(300);

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

async function populated(fresh: FreshLedger): Promise<Ledger> {
  const ledger = await fresh.open("tester");
  await ledger.append([sourceAdded("acme")]);
  await ledger.append(
    deliveryEvents({ deliveryId: "d1", source: "acme", samples, version: "fm@1", batch: 100 }),
  );
  for (let i = 0; i < 5; i++) await ledger.append([finding((samples[i] as { digest: string }).digest, 0.9)]);
  return ledger;
}

/** What an attacker with the chain code but not the key does: rewrite one payload, re-hash everything after it. */
async function rewriteHistory(raw: RawSql, seq: number, edit: (payload: string) => string): Promise<void> {
  const rows = await raw.query<{
    seq: number;
    at: string;
    actor: string;
    kind: string;
    payload: string;
    prev_hash: string;
    hash: string;
  }>("select * from events order by seq");
  let prev = GENESIS_HASH;
  for (const row of rows) {
    const payload = row.seq === seq ? edit(row.payload) : row.payload;
    const hash = eventHashOfCanonical(prev, {
      seq: Number(row.seq),
      at: row.at,
      actor: row.actor,
      kind: row.kind,
      payloadJson: payload,
    });
    await raw.query("update events set payload = ?, prev_hash = ?, hash = ? where seq = ?", [
      payload,
      prev,
      hash,
      row.seq,
    ]);
    prev = hash;
  }
}

async function eventCount(raw: RawSql): Promise<number> {
  return Number((await raw.query<{ n: number | string }>("select count(*) as n from events"))[0]?.n);
}

async function caught(p: Promise<unknown>): Promise<AntidoteError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AntidoteError);
  return e as AntidoteError;
}

describe.each(BACKENDS)("ledger integrity on $name", (backend) => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it("history rewritten without the key, checkpoints and witness deleted: verify fails and no append signs it", async () => {
    const fresh = await backend.fresh();
    const ledger = await populated(fresh);
    const head = await ledger.signedHead();
    await ledger.close();
    const raw = await fresh.raw();
    // The finding at the head now scores 0.01; every hash after it recomputes.
    const target = Number((await raw.query<{ seq: number }>("select max(seq) as seq from events"))[0]?.seq);
    await rewriteHistory(raw, target, (p) => p.replace('"score":0.9', '"score":0.01'));
    await raw.query("delete from checkpoints");
    const witness = backend.name === "SQLite" ? `${fresh.location}.head.json` : undefined;
    if (witness !== undefined) rmSync(witness);

    const reader = await openLedgerReader({ location: fresh.location });
    const report = await reader.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad?.reason).toMatch(/no signed checkpoint|witness .* is missing/);
    // A head published before the attack proves it even to a verifier who trusts nothing local.
    const withWitness = await reader.verify({ witness: head ?? expect.fail("no head") });
    expect(withWitness.ok).toBe(false);
    expect(withWitness.witness).toMatchObject({ seq: head?.seq, ok: false });
    await reader.close();

    const before = await eventCount(raw);
    const writer = await fresh.open("tester");
    const e = await caught(writer.append([finding((samples[9] as { digest: string }).digest, 0.5)]));
    expect(e.code).toBe("LEDGER_TAMPERED");
    expect(e.message).toMatch(/has no signed checkpoint.*Nothing was written/);
    expect(await eventCount(raw)).toBe(before);
    expect(Number((await raw.query<{ n: number }>("select count(*) as n from checkpoints"))[0]?.n)).toBe(0);
    await writer.close();
    await raw.close();
  });

  it("a rewrite that keeps the old checkpoints is named at the rewritten event, and the head check refuses appends", async () => {
    const fresh = await backend.fresh();
    await (await populated(fresh)).close();
    const raw = await fresh.raw();
    // Relabel a sample in the first samples.added event, as a poisoner would.
    const seq = Number(
      (await raw.query<{ seq: number }>("select min(seq) as seq from events where kind = 'samples.added'"))[0]
        ?.seq,
    );
    await rewriteHistory(raw, seq, (p) => p.replace(/"label":"[^"]*"/, '"label":"Bag"'));
    const reader = await openLedgerReader({ location: fresh.location });
    const report = await reader.verify();
    // Without the key the re-hashed chain is consistent with itself: the first checkpoint
    // after the edit (the end of its append batch) is where it shows.
    expect(report.firstBad?.seq).toBeGreaterThanOrEqual(seq);
    expect(report.firstBad?.seq).toBeLessThanOrEqual(seq + 6);
    expect(report.tableMismatches.join()).toMatch(/samples: row contents differ/);
    expect(report.firstBad?.reason).toMatch(/signed a different (hash|Merkle root)/);
    await reader.close();
    const writer = await fresh.open();
    expect((await caught(writer.append([sourceAdded("late")]))).code).toBe("LEDGER_TAMPERED");
    await writer.close();
    await raw.close();
  });

  it("a replaced key file is refused, not recorded: verify and reads never write, appends do not re-key", async () => {
    const fresh = await backend.fresh();
    await (await populated(fresh)).close();
    const raw = await fresh.raw();
    const before = await eventCount(raw);
    const original = readFileSync(fresh.keyPath, "utf8");
    writeFileSync(
      fresh.keyPath,
      generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }),
    );

    const e = await caught(fresh.open());
    expect(e.code).toBe("KEY_UNTRUSTED");
    expect(e.message).toMatch(
      /holds key [0-9a-f]{16}…, but ledger .* is signed by key [0-9a-f]{16}….*rotate-key/,
    );
    expect(e.message).not.toContain("PRIVATE KEY");
    const reader = await openLedgerReader({ location: fresh.location });
    expect((await reader.verify()).ok).toBe(true);
    await reader.close();
    expect(await eventCount(raw)).toBe(before);

    // The key missing altogether: refused, and no new key is made.
    rmSync(fresh.keyPath);
    const missing = await caught(fresh.open());
    expect(missing.code).toBe("LEDGER_UNAVAILABLE");
    expect(missing.message).toMatch(/key of ledger .* is missing.*no new key was made/);
    expect(existsSync(fresh.keyPath)).toBe(false);
    expect(await eventCount(raw)).toBe(before);

    writeFileSync(fresh.keyPath, original);
    const restored = await fresh.open();
    await restored.append([sourceAdded("after-restore")]);
    expect((await restored.verify()).ok).toBe(true);
    await restored.close();
    await raw.close();
  });

  it("a key-rotation event forged into the log (not endorsed by the current key) is refused and flagged", async () => {
    const fresh = await backend.fresh();
    const ledger = await populated(fresh);
    const attacker = generateKeyPairSync("ed25519")
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    const { keyIdOf } = await import("../../src/ledger/keys.js");
    const forged: LedgerEventInput = {
      kind: "ledger.key-rotated",
      payload: { keyId: keyIdOf(attacker), publicKeyPem: attacker },
    };
    expect((await caught(ledger.append([forged]))).message).toMatch(
      /not endorsed by the ledger's current key/,
    );

    // An explicit rotation is endorsed, verifies, and the old key is refused from then on.
    const next = signerFromPrivateKey(generateKeyPairSync("ed25519").privateKey);
    await ledger.rotateKey(next);
    await ledger.append([sourceAdded("after-rotation")]);
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
    expect((await caught(fresh.open())).code).toBe("KEY_UNTRUSTED");
    const rotated = await openLedger({ location: fresh.location, signer: next });
    await rotated.append([sourceAdded("with-new-key")]);
    expect((await rotated.verify()).ok).toBe(true);
    await rotated.close();
  });

  it("a published head is extended by later appends: verify --witness proves it with an RFC 9162 consistency proof", async () => {
    const fresh = await backend.fresh();
    const ledger = await populated(fresh);
    const head = await ledger.signedHead();
    if (head === undefined) throw new Error("no head");
    for (let i = 10; i < 17; i++)
      await ledger.append([finding((samples[i] as { digest: string }).digest, 0.2)]);
    const report = await ledger.verify({ witness: head });
    expect(report.ok).toBe(true);
    expect(report.witness).toMatchObject({ seq: head.seq, ok: true });
    expect(report.witness?.consistencyProof.length).toBeGreaterThan(0);
    // Cutting the log back below the witnessed head is caught by the witness, whatever else was cut.
    await ledger.close();
    const raw = await fresh.raw();
    await raw.query("delete from events where seq > ?", [head.seq - 2]);
    await raw.query("delete from checkpoints where seq > ?", [head.seq - 2]);
    const reader = await openLedgerReader({ location: fresh.location });
    expect((await reader.verify({ witness: head })).witness).toMatchObject({ ok: false });
    await reader.close();
    await raw.close();
  });
});

describe("opening for reading", () => {
  it("a mistyped SQLite path is exit-7 LEDGER_UNAVAILABLE and creates nothing", async () => {
    const dir = enterScratchless();
    const location = join(dir, "nope", "ledger.db");
    const e = await caught(openLedgerReader({ location }));
    expect(e.code).toBe("LEDGER_UNAVAILABLE");
    expect(e.message).toMatch(/no ledger at sqlite:.*nothing was created/);
    expect(existsSync(join(dir, "nope"))).toBe(false);
  });

  it("an encrypted key file works with its passphrase from the environment, and names the variable without it", async () => {
    const dir = enterScratchless();
    const location = join(dir, "ledger.db");
    const keyPath = join(dir, "k.pem");
    process.env.ANTIDOTE_LEDGER_KEY_PASSPHRASE = "correct horse";
    try {
      const ledger = await openLedger({ location, keyPath });
      await ledger.append([sourceAdded("acme")]);
      await ledger.close();
      expect(readFileSync(keyPath, "utf8")).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    } finally {
      delete process.env.ANTIDOTE_LEDGER_KEY_PASSPHRASE;
    }
    const e = await caught(openLedger({ location, keyPath }));
    expect(e.message).toMatch(/encrypted; set \$ANTIDOTE_LEDGER_KEY_PASSPHRASE/);
    // The key may also come whole from the environment, with no file at all.
    const { privateKey } = generateKeyPairSync("ed25519");
    process.env.ANTIDOTE_LEDGER_KEY = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    try {
      const other = join(dir, "env-ledger.db");
      const ledger = await openLedger({ location: other, keyPath: join(dir, "never.pem") });
      await ledger.append([sourceAdded("acme")]);
      expect(ledger.signer.keyId).toBe(signerFromPrivateKey(privateKey).keyId);
      await ledger.close();
      expect(existsSync(join(dir, "never.pem"))).toBe(false);
    } finally {
      delete process.env.ANTIDOTE_LEDGER_KEY;
    }
  });
});

let scratchCount = 0;
function enterScratchless(): string {
  const dir = join(process.cwd(), `plain-${scratchCount++}`);
  return dir;
}
