// The keygen / sign / verify commands as a user meets them, through their run… functions and
// their commander registration (without main.ts): files written, what is printed, JSON
// output, exit codes for failures, and help with examples.
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerKeygen, runKeygen } from "../../src/cli/commands/keygen.js";
import { registerSign, runSign } from "../../src/cli/commands/sign.js";
import { registerVerify, runVerify } from "../../src/cli/commands/verify.js";
import { exitCodeFor } from "../../src/cli/exit-codes.js";
import { createWriter } from "../../src/data/open.js";
import { AntidoteError } from "../../src/errors.js";
import { keyIdOf } from "../../src/provenance/keys.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

let dir: string;
let data: string;
const lines: string[] = [];
const capture = (t: string) => void lines.push(t);
const printed = () => lines.splice(0).join("");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-sign-cli-"));
  data = join(dir, "fm.parquet");
  const w = await createWriter(data, { classes: FASHION_MNIST_CLASSES });
  for (const s of fashionMnistSamples(200)) await w.write(s);
  await w.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<AntidoteError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof AntidoteError) return e;
  throw new Error(`expected an AntidoteError, got ${String(e)}`);
}

describe("antidote keygen", () => {
  it("writes NAME.key (0600) and NAME.pub and prints the key id", async () => {
    const r = await runKeygen({ out: join(dir, "keys", "acme") }, capture);
    expect(r.privateKeyPath).toBe(join(dir, "keys", "acme.key"));
    expect(statSync(r.privateKeyPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(r.privateKeyPath, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(keyIdOf(readFileSync(r.publicKeyPath, "utf8"))).toBe(r.keyId);
    expect(printed()).toContain(`key id ${r.keyId}`);
  });

  it("refuses to overwrite unless --force, which replaces the pair and keeps the key private", async () => {
    const base = join(dir, "keys", "acme");
    const before = readFileSync(`${base}.key`, "utf8");
    const e = await failure(runKeygen({ out: `${base}.key` }, capture));
    expect([e.code, e.message]).toEqual([
      "USAGE",
      `${base}.key already exists; pass --force to replace the key pair.`,
    ]);
    expect(readFileSync(`${base}.key`, "utf8")).toBe(before);

    writeFileSync(join(dir, "loose.key"), "old");
    chmodSync(join(dir, "loose.key"), 0o644);
    const r = await runKeygen({ out: join(dir, "loose"), force: true, json: true }, capture);
    expect(statSync(join(dir, "loose.key")).mode & 0o777).toBe(0o600);
    expect(JSON.parse(printed())).toEqual(r);
  });
});

describe("antidote sign / verify", () => {
  const key = () => join(dir, "keys", "acme.key");
  const pub = () => join(dir, "keys", "acme.pub");
  const sig = () => join(dir, "fm.sigstore.json");

  it("sign prints the subject count, sample count and Merkle root and writes the bundle", async () => {
    const r = await runSign({ target: data, key: key(), out: sig() }, capture);
    const text = printed();
    expect(r.files).toBe(1);
    expect(r.samples).toBe(200);
    expect(text).toContain("signed 1 file(s)");
    expect(text).toContain("200 samples");
    expect(text).toContain(`Merkle root ${r.merkleRoot}`);
    const bundle = JSON.parse(readFileSync(sig(), "utf8")) as {
      verificationMaterial: { publicKey: { hint: string } };
    };
    expect(bundle.verificationMaterial.publicKey.hint).toBe(r.keyId);
  });

  it("verify passes on the intact delivery (text and --json)", async () => {
    const r = await runVerify({ target: data, signature: sig(), keys: [pub()] }, capture);
    expect(printed()).toMatch(/^OK: .*fm\.parquet is intact — 1 file\(s\), [\d.]+ MB, 200 samples/);
    await runVerify({ target: data, signature: sig(), keys: [pub()], json: true }, capture);
    const json = JSON.parse(printed()) as typeof r;
    expect(json).toEqual({ ...r, ok: true });
    expect(json.samples).toBe(200);
  });

  it("verify fails with exit code 6 and, with --json, prints the failure", async () => {
    const tampered = join(dir, "t", "fm.parquet");
    mkdirSync(join(dir, "t"));
    const bytes = readFileSync(data);
    bytes[bytes.length - 100]! ^= 4;
    writeFileSync(tampered, bytes);
    const e = await failure(
      runVerify({ target: tampered, signature: sig(), keys: [pub()], json: true }, capture),
    );
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(exitCodeFor(e.code)).toBe(6);
    expect(JSON.parse(printed())).toMatchObject({
      ok: false,
      code: "DIGEST_MISMATCH",
      exitCode: 6,
      message: e.message,
    });

    const other = await runKeygen({ out: join(dir, "keys", "other") }, capture);
    printed();
    const untrusted = await failure(
      runVerify({ target: data, signature: sig(), keys: [other.publicKeyPath] }, capture),
    );
    expect([untrusted.code, exitCodeFor(untrusted.code)]).toEqual(["KEY_UNTRUSTED", 6]);
    // Any one of several trusted keys may have signed.
    await expect(
      runVerify({ target: data, signature: sig(), keys: [other.publicKeyPath, pub()] }, capture),
    ).resolves.toMatchObject({ ok: true });
    printed();
  });

  it("sign refuses to write the bundle inside the directory it signs", async () => {
    const d = join(dir, "deliv");
    mkdirSync(d);
    copyFileSync(data, join(d, "fm.parquet"));
    const e = await failure(runSign({ target: d, key: key(), out: join(d, "sig.json") }, capture));
    expect(e.code).toBe("USAGE");
    expect(e.message).toMatch(/inside the delivered directory/);
  });
});

describe("commander registration", () => {
  function program(): { cmd: Command; out: string[] } {
    const out: string[] = [];
    const cmd = new Command("antidote").exitOverride().configureOutput({
      writeOut: (s) => void out.push(s),
      writeErr: (s) => void out.push(s),
    });
    registerKeygen(cmd);
    registerSign(cmd);
    registerVerify(cmd);
    return { cmd, out };
  }

  it("each command's --help shows its flags and examples", async () => {
    for (const [name, flag] of [
      ["keygen", "--out <name>"],
      ["sign", "--key <NAME.key>"],
      ["verify", "--signature <bundle.json>"],
    ] as const) {
      const { cmd, out } = program();
      const e = await cmd.parseAsync([name, "--help"], { from: "user" }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(CommanderError);
      const help = out.join("");
      expect(help).toContain(flag);
      expect(help).toContain("Examples:");
    }
  });

  it("validates flags at the boundary: --threads must be a positive integer", async () => {
    const { cmd } = program();
    const e = await cmd
      .parseAsync(["sign", data, "--key", "k", "--out", "o.json", "--threads", "zero"], { from: "user" })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AntidoteError);
    expect((e as AntidoteError).code).toBe("USAGE");
    expect((e as AntidoteError).message).toMatch(/^--threads: /);
  });
});
