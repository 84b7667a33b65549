// `antidote model sign` / `model verify` and `keygen --algorithm` as a user runs them: the
// official model_signing vectors verify, a signed model round-trips, and a swapped file or the
// wrong kind of key is a one-line error with the documented exit code.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { antidote, expectUserError } from "../helpers/cli.js";

const VECTORS = fileURLToPath(new URL("../fixtures/model-signing/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "antidote-msign-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote model sign / verify", () => {
  it("verifies model_signing's own v1.1.0 vector, and refuses it once a file is edited", async () => {
    const v = join(dir, "v110");
    cpSync(join(VECTORS, "v1.1.0-elliptic-key"), v, { recursive: true });
    const ok = await antidote([
      "model",
      "verify",
      v,
      "--key",
      join(VECTORS, "signing-key-pub.pem"),
      "--json",
    ]);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { files: unknown[] }).files).toHaveLength(2);
    writeFileSync(join(v, "signme-1"), "changed");
    expectUserError(
      await antidote(["model", "verify", v, "--key", join(VECTORS, "signing-key-pub.pem")]),
      6,
      /signme-1: SHA-256 .* differs from the signed/,
    );
  });

  it("keygen --algorithm ecdsa-p256, sign, verify; an Ed25519 key is refused with what to use", async () => {
    const model = join(dir, "base-model");
    mkdirSync(model);
    writeFileSync(join(model, "model.onnx"), Buffer.alloc(2048, 7));
    writeFileSync(join(model, "tokenizer.json"), "{}");
    expect((await antidote(["keygen", "--out", join(dir, "pub"), "--algorithm", "ecdsa-p256"])).code).toBe(0);
    expect((await antidote(["keygen", "--out", join(dir, "ed")])).code).toBe(0);

    const signed = await antidote(["model", "sign", model, "--key", join(dir, "pub.key")]);
    expect(signed.code).toBe(0);
    expect(signed.stdout).toMatch(/signed base-model: 2 files/);
    expect(JSON.parse(readFileSync(join(model, "model.sig"), "utf8"))).toHaveProperty("dsseEnvelope");
    expect((await antidote(["model", "verify", model, "--key", join(dir, "pub.pub")])).code).toBe(0);

    expectUserError(
      await antidote(["model", "sign", model, "--key", join(dir, "ed.key"), "--out", join(dir, "x.sig")]),
      3,
      /ECDSA keys on P-256, P-384 or P-521/,
    );
    expectUserError(
      await antidote(["model", "sign", model, "--key", join(dir, "pub.key")]),
      2,
      /model\.sig.*already exists|exists/,
    );
    expectUserError(
      await antidote(["keygen", "--out", join(dir, "k"), "--algorithm", "rsa"]),
      2,
      /--algorithm/,
    );
  });
});
