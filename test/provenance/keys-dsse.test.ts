// Keys and DSSE envelopes: key ids computed independently from the raw Ed25519 key, PAE
// against the byte layout and worked example of the DSSE v1 spec, and each failure mode of
// verification with its error code.
import { createHash, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { preAuthEncoding, signEnvelope, verifyEnvelope } from "../../src/provenance/dsse.js";
import {
  generateSigningKey,
  keyIdOf,
  readPrivateKey,
  readPublicKey,
  type SigningKey,
  type TrustedKey,
} from "../../src/provenance/keys.js";

let dir: string;
let signer: SigningKey;
let trusted: TrustedKey;
let other: TrustedKey;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-keys-"));
  const k = generateSigningKey();
  writeFileSync(join(dir, "a.key"), k.privateKeyPem);
  writeFileSync(join(dir, "a.pub"), k.publicKeyPem);
  signer = await readPrivateKey(join(dir, "a.key"));
  trusted = await readPublicKey(join(dir, "a.pub"));
  const o = generateSigningKey();
  other = { keyId: o.keyId, publicKeyPem: o.publicKeyPem };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function rejection(p: () => unknown): Promise<AntidoteError> {
  try {
    await p();
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

describe("keys", () => {
  it("key id = SHA-256 of the SPKI DER, i.e. the fixed Ed25519 SPKI prefix + the 32-byte raw key", () => {
    const k = generateSigningKey();
    // The raw key from the JWK form, independent of the DER export keys.ts hashes.
    const jwk = createPublicKey(k.publicKeyPem).export({ format: "jwk" });
    const spki = Buffer.concat([
      Buffer.from("302a300506032b6570032100", "hex"),
      Buffer.from(jwk.x ?? "", "base64url"),
    ]);
    expect(k.keyId).toBe(createHash("sha256").update(spki).digest("hex"));
    expect(keyIdOf(k.publicKeyPem)).toBe(k.keyId);
    expect(k.keyId).toMatch(/^[0-9a-f]{64}$/);
  });

  it("reads back the same key id from the private and the public file", () => {
    expect(signer.keyId).toBe(trusted.keyId);
    expect(signer.publicKeyPem).toBe(trusted.publicKeyPem);
  });

  it("fails with FILE_NOT_FOUND / INPUT_FORMAT naming the file", async () => {
    const missing = await rejection(() => readPrivateKey(join(dir, "nope.key")));
    expect([missing.code, missing.message]).toEqual([
      "FILE_NOT_FOUND",
      `${join(dir, "nope.key")}: no such key file.`,
    ]);

    writeFileSync(join(dir, "junk.pub"), "hello\n");
    const junk = await rejection(() => readPublicKey(join(dir, "junk.pub")));
    expect(junk.code).toBe("INPUT_FORMAT");
    expect(junk.message).toContain(join(dir, "junk.pub"));

    // A private key where a public key belongs is refused rather than silently converted.
    const priv = await rejection(() => readPublicKey(join(dir, "a.key")));
    expect(priv.code).toBe("INPUT_FORMAT");
    expect(priv.message).toMatch(/a\.key: is a private key/);
    const pub = await rejection(() => readPrivateKey(join(dir, "a.pub")));
    expect(pub.message).toMatch(/a\.pub: not a private key/);

    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    writeFileSync(join(dir, "rsa.pub"), rsa.publicKey.export({ format: "pem", type: "spki" }));
    writeFileSync(join(dir, "rsa.key"), rsa.privateKey.export({ format: "pem", type: "pkcs8" }));
    expect((await rejection(() => readPublicKey(join(dir, "rsa.pub")))).message).toMatch(
      /rsa\.pub: a rsa public key/,
    );
    expect((await rejection(() => readPrivateKey(join(dir, "rsa.key")))).message).toMatch(
      /rsa\.key: a rsa key/,
    );
    expect(() => keyIdOf(rsa.publicKey.export({ format: "pem", type: "spki" }).toString())).toThrow(
      /Ed25519/,
    );
  });
});

describe("DSSE", () => {
  it("PAE matches the spec's worked example byte for byte", () => {
    // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    expect(
      preAuthEncoding("http://example.com/HelloWorld", Buffer.from("hello world")).toString("latin1"),
    ).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  });

  it("PAE lengths count bytes, not characters, and the body is binary-safe", () => {
    const body = Buffer.from([0x00, 0xff, 0x20, 0x0a]);
    const pae = preAuthEncoding("tÿpe", body);
    expect(pae).toEqual(
      Buffer.concat([Buffer.from("DSSEv1 5 "), Buffer.from("tÿpe", "utf8"), Buffer.from(" 4 "), body]),
    );
    expect(preAuthEncoding("", Buffer.alloc(0)).toString()).toBe("DSSEv1 0  0 ");
  });

  it("signs and verifies an envelope, returning the signer and the exact payload", () => {
    const payload = Buffer.from('{"hello":"world"}');
    const env = signEnvelope(payload, "application/vnd.in-toto+json", signer);
    expect(env.signatures).toHaveLength(1);
    expect(env.signatures[0]?.keyid).toBe(signer.keyId);
    expect(Buffer.from(env.payload, "base64")).toEqual(payload);
    const r = verifyEnvelope(env, [other, trusted]);
    expect(r.keyId).toBe(trusted.keyId);
    expect(r.payload).toEqual(payload);
  });

  it("KEY_UNTRUSTED names the signing key id when no trusted key signed", async () => {
    const env = signEnvelope(Buffer.from("x"), "text/plain", signer);
    const e = await rejection(() => verifyEnvelope(env, [other]));
    expect(e.code).toBe("KEY_UNTRUSTED");
    expect(e.message).toContain(signer.keyId);
    expect(e.message).toContain(other.keyId);
  });

  it("SIGNATURE_INVALID when the payload, the payload type or the signature was altered", async () => {
    const env = signEnvelope(Buffer.from('{"n":1}'), "application/vnd.in-toto+json", signer);
    const alteredPayload = { ...env, payload: Buffer.from('{"n":2}').toString("base64") };
    expect((await rejection(() => verifyEnvelope(alteredPayload, [trusted]))).code).toBe("SIGNATURE_INVALID");
    const alteredType = { ...env, payloadType: "application/json" };
    expect((await rejection(() => verifyEnvelope(alteredType, [trusted]))).code).toBe("SIGNATURE_INVALID");
    const sig = Buffer.from(env.signatures[0]!.sig, "base64");
    sig[5]! ^= 1;
    const alteredSig = { ...env, signatures: [{ keyid: signer.keyId, sig: sig.toString("base64") }] };
    expect((await rejection(() => verifyEnvelope(alteredSig, [trusted]))).code).toBe("SIGNATURE_INVALID");
    // A trusted key id on someone else's signature is still a failed signature, not trust.
    const forged = signEnvelope(Buffer.from('{"n":1}'), "application/vnd.in-toto+json", {
      ...signer,
      privateKey: generateKeyPairSync("ed25519").privateKey,
    });
    expect((await rejection(() => verifyEnvelope(forged, [trusted]))).code).toBe("SIGNATURE_INVALID");
  });

  it("tries a signature without keyid against every trusted key; accepts URL-safe base64", () => {
    const env = signEnvelope(Buffer.from("payload?>>"), "text/plain", signer);
    const anonymous = {
      payload: env.payload.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
      payloadType: env.payloadType,
      signatures: [{ keyid: "", sig: env.signatures[0]!.sig }],
    };
    expect(verifyEnvelope(anonymous, [other, trusted]).keyId).toBe(trusted.keyId);
  });
});
