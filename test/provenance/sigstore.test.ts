// Interop: a standard Sigstore verifier (@sigstore/verify, the library behind `sigstore`
// and npm provenance) accepts our delivery bundles when its trust material holds our public
// key under the bundle's key hint, with no transparency log or timestamp required — and
// rejects a bundle whose statement was altered or that names a key it does not trust.
import { createHash, createPublicKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleFromJSON } from "@sigstore/bundle";
import { toSignedEntity, Verifier, VerificationError, type TrustMaterial } from "@sigstore/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter } from "../../src/data/open.js";
import { signStatement, readSignature, openStatement } from "../../src/provenance/bundle.js";
import { generateSigningKey, readPrivateKey, type SigningKey } from "../../src/provenance/keys.js";
import { buildStatement, statementDigest, type DeliveryStatement } from "../../src/provenance/manifest.js";
import { spamAssassinSamples } from "../helpers/real-data.js";

let dir: string;
let key: SigningKey;
let statement: DeliveryStatement;

/** Trust material with only our key, found by its hint; no CAs, logs or timestamp authorities. */
function trustMaterial(keys: Record<string, string>): TrustMaterial {
  return {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: (hint) => {
      const pem = keys[hint];
      if (pem === undefined)
        throw new VerificationError({ code: "PUBLIC_KEY_ERROR", message: `key not found: ${hint}` });
      return { publicKey: createPublicKey(pem), validFor: () => true };
    },
  };
}

function sigstoreVerify(bundleJson: unknown, keys: Record<string, string>): void {
  const bundle = bundleFromJSON(bundleJson);
  const verifier = new Verifier(trustMaterial(keys), {
    tlogThreshold: 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  verifier.verify(toSignedEntity(bundle));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-sigstore-"));
  const k = generateSigningKey();
  writeFileSync(join(dir, "s.key"), k.privateKeyPem);
  key = await readPrivateKey(join(dir, "s.key"));
  const writer = await createWriter(join(dir, "spam.jsonl"));
  for (const s of spamAssassinSamples(50)) await writer.write(s);
  await writer.close();
  statement = await buildStatement(join(dir, "spam.jsonl"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("Sigstore bundle interop", () => {
  it("has the v0.3 media type, the key id as hint, and an in-toto DSSE envelope", () => {
    const b = signStatement(statement, key);
    expect(b.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
    expect(b.verificationMaterial.publicKey.hint).toBe(key.keyId);
    expect(b.dsseEnvelope.payloadType).toBe("application/vnd.in-toto+json");
    // The payload is the statement's canonical JSON, so its SHA-256 is the statement digest.
    const payload = Buffer.from(b.dsseEnvelope.payload, "base64");
    expect(JSON.parse(payload.toString("utf8"))).toEqual(statement);
    expect(createHash("sha256").update(payload).digest("hex")).toBe(statementDigest(statement));
  });

  it("is accepted by @sigstore/verify with our public key and tlog/timestamp thresholds 0", () => {
    const b = signStatement(statement, key);
    expect(() =>
      sigstoreVerify(JSON.parse(JSON.stringify(b)), { [key.keyId]: key.publicKeyPem }),
    ).not.toThrow();
  });

  it("is rejected by @sigstore/verify when the payload was altered", () => {
    const b = signStatement(statement, key);
    const altered = { ...statement, predicate: { ...statement.predicate, sampleCount: 49 } };
    b.dsseEnvelope.payload = Buffer.from(JSON.stringify(altered)).toString("base64");
    expect(() => sigstoreVerify(b, { [key.keyId]: key.publicKeyPem })).toThrow(
      /signature verification failed/,
    );
  });

  it("is rejected by @sigstore/verify when the hinted key is not in its trust material", () => {
    const b = signStatement(statement, key);
    const stranger = generateSigningKey();
    expect(() => sigstoreVerify(b, { [stranger.keyId]: stranger.publicKeyPem })).toThrow(/key not found/);
    // …and when a different key is filed under our hint.
    expect(() => sigstoreVerify(b, { [key.keyId]: stranger.publicKeyPem })).toThrow(
      /signature verification failed/,
    );
  });

  it("round-trips through a file: readSignature + openStatement give back the statement", async () => {
    const path = join(dir, "spam.sigstore.json");
    writeFileSync(path, JSON.stringify(signStatement(statement, key), null, 2));
    const opened = openStatement(await readSignature(path), [
      { keyId: key.keyId, publicKeyPem: key.publicKeyPem },
    ]);
    expect(opened.statement).toEqual(statement);
    expect(opened.keyId).toBe(key.keyId);
    expect(opened.statementDigest).toBe(statementDigest(statement));
  });
});
