// The integrity holes of the issue "Integrity", attacked through the CLI as written there: a
// store whose labels were flipped after ingest, a replaced or missing ledger key, a mistyped
// --ledger, a published head, a key revoked twice. Each attack runs on its own copy of one
// ingested ledger (a signed 200-image Fashion-MNIST delivery).
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter, openDataset } from "../../src/data/open.js";
import type { Sample } from "../../src/data/sample.js";
import { antidote, expectUserError, type CliResult } from "../helpers/cli.js";

let root: string;
let template: string;

function ok(r: CliResult): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh working directory holding a copy of the ingested ledger. */
function copyOfLedger(name: string): string {
  const dir = join(root, name);
  cpSync(template, dir, { recursive: true });
  return dir;
}

async function eventCount(cwd: string): Promise<number> {
  return ok(await antidote(["ledger", "log", "--json", "--limit", "100000"], { cwd }))
    .trim()
    .split("\n").length;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "antidote-integrity-"));
  template = join(root, "template");
  const source = await openDataset("fashion-mnist");
  const writer = await createWriter(join(template, "delivery.parquet"), { classes: source.info.classes });
  let i = 0;
  for await (const sample of source.samples()) {
    if (i++ === 200) break;
    await writer.write(sample);
  }
  await writer.close();
  const run = async (args: string[]) => ok(await antidote(args, { cwd: template }));
  await run(["keygen", "--out", "acme"]);
  await run(["sign", "delivery.parquet", "--key", "acme.key", "--out", "delivery.sigstore.json"]);
  await run(["source", "add", "acme", "--kind", "supplier", "--key", "acme.pub"]);
  await run(["ingest", "delivery.parquet", "--source", "acme", "--signature", "delivery.sigstore.json"]);
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the sample store is checked against the ledger", () => {
  it("labels flipped in a store file after ingest: verify fails, --deep names the sample, export refuses and writes nothing", async () => {
    const cwd = copyOfLedger("flipped");
    const store = join(cwd, ".antidote", "store");
    const file = join(store, readdirSync(store).find((f) => f.endsWith(".parquet")) ?? "");
    // The attack: convert out, flip 50 labels, convert back over the store file.
    const dataset = await openDataset(file);
    const samples: Sample[] = [];
    for await (const s of dataset.samples()) samples.push(s);
    const writer = await createWriter(file, {
      format: "parquet",
      classes: dataset.info.classes,
      overwrite: true,
    });
    for (const [i, s] of samples.entries())
      await writer.write(i < 50 ? { ...s, label: s.label === "Bag" ? "Coat" : "Bag" } : s);
    await writer.close();
    const version = ok(await antidote(["ledger", "versions", "--json"], { cwd }));
    const id = (JSON.parse(version) as { version: string }[])[0]?.version ?? "";

    expectUserError(
      await antidote(["ledger", "verify"], { cwd }),
      6,
      /store file\(s\) do not match: .*SHA-256 is not the/,
    );
    expectUserError(
      await antidote(["ledger", "verify", "--deep"], { cwd }),
      6,
      /row 0 \(sample "[^"]+"\): its label differs from the record ingested/,
    );
    // --json: stdout is the one report, saying what failed.
    const json = await antidote(["ledger", "verify", "--json"], { cwd });
    expect(json.code).toBe(6);
    const report = JSON.parse(json.stdout) as { ok: boolean; store: { problems: { reason: string }[] } };
    expect(report.ok).toBe(false);
    expect(report.store.problems).toHaveLength(1);
    const before = await eventCount(cwd);
    expectUserError(
      await antidote(["export", "--dataset", id, "--out", "clean.parquet"], { cwd }),
      6,
      /sample store .* the store was modified after ingest; nothing from it is used/,
    );
    expect(existsSync(join(cwd, "clean.parquet"))).toBe(false);
    expect(existsSync(join(cwd, "clean.parquet.sigstore.json"))).toBe(false);
    expect(readdirSync(cwd).filter((f) => f.startsWith(".clean"))).toEqual([]);
    expect(await eventCount(cwd)).toBe(before);
  });

  it("an untouched store exports, and its version covers the labels (recordsRoot)", async () => {
    const cwd = copyOfLedger("clean");
    const versions = JSON.parse(ok(await antidote(["ledger", "versions", "--json"], { cwd }))) as {
      version: string;
    }[];
    ok(await antidote(["export", "--dataset", versions[0]?.version ?? "", "--out", "clean.jsonl"], { cwd }));
    expect(ok(await antidote(["ledger", "verify", "--deep"], { cwd }))).toMatch(
      /OK — .*1 file\(s\) match record by record/,
    );
    const log = ok(await antidote(["ledger", "log", "--json", "--limit", "1000"], { cwd }));
    const created = log
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { kind: string; payload: { recordsRoot?: string } })
      .filter((e) => e.kind === "dataset.version-created");
    expect(created).toHaveLength(2);
    for (const e of created) expect(e.payload.recordsRoot).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("the ledger key", () => {
  it("a replaced key file: verify reads without writing and says OK, a mutating command is refused (exit 6)", async () => {
    const cwd = copyOfLedger("replaced-key");
    const before = await eventCount(cwd);
    const keyPath = join(cwd, ".antidote", "ledger-key.pem");
    const forged = generateKeyPairSync("ed25519")
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    writeFileSync(keyPath, forged);
    expect(ok(await antidote(["ledger", "verify"], { cwd }))).toMatch(/OK — /);
    const r = await antidote(["source", "add", "mallory", "--kind", "web"], { cwd });
    expectUserError(r, 6, /holds key [0-9a-f]{16}…, but ledger .* is signed by key/);
    expect(r.stderr).not.toContain(forged.split("\n")[1] ?? "PRIVATE");
    expect(await eventCount(cwd)).toBe(before);
  });

  it("a missing key: log and verify work and create nothing; a mutating command is exit 7 and makes no key", async () => {
    const cwd = copyOfLedger("missing-key");
    const keyPath = join(cwd, ".antidote", "ledger-key.pem");
    rmSync(keyPath);
    const before = await eventCount(cwd);
    ok(await antidote(["ledger", "verify"], { cwd }));
    expect(existsSync(keyPath)).toBe(false);
    expectUserError(
      await antidote(["source", "add", "x", "--kind", "web"], { cwd }),
      7,
      /key of ledger .* is missing/,
    );
    expect(existsSync(keyPath)).toBe(false);
    expect(await eventCount(cwd)).toBe(before);
  });

  it("a mistyped --ledger is exit 7 for a read, and nothing is created", async () => {
    const cwd = copyOfLedger("mistyped");
    for (const cmd of [
      ["ledger", "verify"],
      ["ledger", "log"],
      ["trace", "--source", "acme"],
    ]) {
      expectUserError(
        await antidote([...cmd, "--ledger", "ledgr/ledger.db"], { cwd }),
        7,
        /no ledger at sqlite:.*ledgr\/ledger\.db \(nothing was created\)/,
      );
    }
    expect(existsSync(join(cwd, "ledgr"))).toBe(false);
  });

  it("rotate-key is endorsed by the old key; the old key is refused afterwards", async () => {
    const cwd = copyOfLedger("rotate");
    ok(await antidote(["keygen", "--out", "next"], { cwd }));
    // A public key, or a file that is no key at all, is refused as the input it is; nothing is written.
    const before = await eventCount(cwd);
    for (const bad of ["next.pub", "delivery.sigstore.json"])
      expectUserError(
        await antidote(["ledger", "rotate-key", "--new-key", bad], { cwd }),
        3,
        /--new-key .*: not a readable PEM private key/,
      );
    expect(await eventCount(cwd)).toBe(before);
    expect(
      ok(await antidote(["ledger", "rotate-key", "--new-key", "next.key", "--install"], { cwd })),
    ).toMatch(/key [0-9a-f]{16}… → [0-9a-f]{16}…/);
    ok(await antidote(["source", "add", "after", "--kind", "web"], { cwd }));
    expect(ok(await antidote(["ledger", "verify"], { cwd }))).toMatch(/OK/);
    expectUserError(
      await antidote(
        [
          "source",
          "add",
          "old",
          "--kind",
          "web",
          "--ledger-key",
          join(template, ".antidote", "ledger-key.pem"),
        ],
        { cwd },
      ),
      6,
      /is signed by key/,
    );
  });
});

describe("published heads", () => {
  it("checkpoint --out, then verify --witness proves the ledger extends it; a forged head is refused", async () => {
    const cwd = copyOfLedger("witness");
    expect(ok(await antidote(["ledger", "checkpoint", "--out", "head.json"], { cwd }))).toMatch(
      /head #\d+ \(root [0-9a-f]{16}…/,
    );
    expectUserError(
      await antidote(["ledger", "checkpoint", "--out", "head.json"], { cwd }),
      2,
      /exists; pass --force/,
    );
    ok(await antidote(["source", "add", "later", "--kind", "web"], { cwd }));
    expect(ok(await antidote(["ledger", "verify", "--witness", "head.json"], { cwd }))).toMatch(
      /extends the witnessed head #\d+/,
    );
    const head = JSON.parse(readFileSync(join(cwd, "head.json"), "utf8")) as { root: string };
    writeFileSync(join(cwd, "forged.json"), JSON.stringify({ ...head, root: "0".repeat(64) }));
    expectUserError(
      await antidote(["ledger", "verify", "--witness", "forged.json"], { cwd }),
      6,
      /its signature does not verify/,
    );
    writeFileSync(join(cwd, "junk.json"), "{");
    expectUserError(
      await antidote(["ledger", "verify", "--witness", "junk.json"], { cwd }),
      3,
      /junk\.json: not JSON/,
    );
  });

  it("revoking a revoked key writes nothing the second time", async () => {
    const cwd = copyOfLedger("revoke");
    const list = JSON.parse(ok(await antidote(["source", "list", "--json"], { cwd }))) as {
      keys: { keyId: string }[];
    }[];
    const keyId = list[0]?.keys[0]?.keyId ?? "";
    ok(await antidote(["source", "revoke-key", "acme", keyId, "--reason", "leak"], { cwd }));
    const before = await eventCount(cwd);
    expect(ok(await antidote(["source", "revoke-key", "acme", keyId, "--reason", "again"], { cwd }))).toMatch(
      /already revoked .*nothing written/,
    );
    expect(await eventCount(cwd)).toBe(before);
  });
});
