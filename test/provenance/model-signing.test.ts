// OpenSSF model signing (sigstore/model-transparency v1.0, key-based): the project's own
// test vectors verify here, ours round-trip, and every way of lying about a model is refused.
import { createHash, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import {
  appendFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { preAuthEncoding } from "../../src/provenance/dsse.js";
import {
  modelKeyHint,
  readModelPublicKey,
  signModel,
  verifyModelSignature,
} from "../../src/provenance/model-signing.js";
import { antidoteFailure } from "../helpers/errors.js";

const VECTORS = fileURLToPath(new URL("../fixtures/model-signing/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "antidote-msign-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const officialKey = () => readModelPublicKey(join(VECTORS, "signing-key-pub.pem"));
const copyVector = (name: string) => {
  const to = join(dir, `${name}-${Math.random().toString(36).slice(2)}`);
  cpSync(join(VECTORS, name), to, { recursive: true });
  return to;
};

describe("model_signing's own test vectors", () => {
  it("verifies a single-file model signed by model_signing 1.0.0 (bundle with the raw public key)", async () => {
    const v = join(VECTORS, "v1.0.0-elliptic-key");
    const r = await verifyModelSignature(join(v, "signme-1"), join(v, "model.sig"), await officialKey());
    expect(r.files).toEqual([
      {
        name: ".",
        sha256: createHash("sha256")
          .update(readFileSync(join(v, "signme-1")))
          .digest("hex"),
      },
    ]);
  });

  it("verifies directories signed by 1.0.1 (ignored file named by the verifier) and 1.1.0 (key hint, ignored paths signed)", async () => {
    const key = await officialKey();
    const v101 = join(VECTORS, "v1.0.1-elliptic-key");
    const r1 = await verifyModelSignature(v101, join(v101, "model.sig"), key, {
      ignore: [join(v101, "ignore-me")],
    });
    expect(r1.files.map((f) => f.name)).toEqual(["signme-1", "signme-2"]);
    const v110 = join(VECTORS, "v1.1.0-elliptic-key");
    const r2 = await verifyModelSignature(v110, join(v110, "model.sig"), key);
    expect(r2.keyHint).toBe(modelKeyHint(key));
    expect(r2.rootDigest).toBe(
      createHash("sha256")
        .update(Buffer.concat(r2.files.map((f) => Buffer.from(f.sha256, "hex"))))
        .digest("hex"),
    );
  });

  it("refuses a file the signature does not cover, an edited file and a removed one, naming it", async () => {
    const key = await officialKey();
    const v101 = join(VECTORS, "v1.0.1-elliptic-key");
    const extra = await antidoteFailure(verifyModelSignature(v101, join(v101, "model.sig"), key));
    expect(extra.code).toBe("DIGEST_MISMATCH");
    expect(extra.message).toMatch(/ignore-me: not covered by the signature/);

    const edited = copyVector("v1.1.0-elliptic-key");
    appendFileSync(join(edited, "signme-2"), "x");
    const e1 = await antidoteFailure(verifyModelSignature(edited, join(edited, "model.sig"), key));
    expect(e1.code).toBe("DIGEST_MISMATCH");
    expect(e1.message).toMatch(/signme-2: SHA-256 .* differs from the signed/);

    const removed = copyVector("v1.1.0-elliptic-key");
    unlinkSync(join(removed, "signme-1"));
    const e2 = await antidoteFailure(verifyModelSignature(removed, join(removed, "model.sig"), key));
    expect(e2.message).toMatch(/"signme-1" is signed but missing/);
  });

  it("refuses another key, an edited statement and a certificate-signed bundle", async () => {
    const v110 = join(VECTORS, "v1.1.0-elliptic-key");
    const other = generateKeyPairSync("ec", { namedCurve: "secp384r1" }).publicKey;
    const wrongKey = await antidoteFailure(verifyModelSignature(v110, join(v110, "model.sig"), other));
    expect(wrongKey.code).toBe("SIGNATURE_INVALID");

    // Without the hint the key is not named: the signature itself must fail.
    const noHint = copyVector("v1.1.0-elliptic-key");
    const bundle = JSON.parse(readFileSync(join(noHint, "model.sig"), "utf8")) as {
      verificationMaterial: { publicKey: { hint?: string } };
      dsseEnvelope: { payload: string };
    };
    delete bundle.verificationMaterial.publicKey.hint;
    writeFileSync(join(noHint, "model.sig"), JSON.stringify(bundle));
    expect((await antidoteFailure(verifyModelSignature(noHint, join(noHint, "model.sig"), other))).code).toBe(
      "SIGNATURE_INVALID",
    );

    // A statement re-pointed at a different digest, signature kept.
    const edited = copyVector("v1.1.0-elliptic-key");
    const b2 = JSON.parse(readFileSync(join(edited, "model.sig"), "utf8")) as typeof bundle;
    const payload = Buffer.from(b2.dsseEnvelope.payload, "base64")
      .toString("utf8")
      .replace(/"bc9a7/, '"0c9a7');
    b2.dsseEnvelope.payload = Buffer.from(payload).toString("base64");
    writeFileSync(join(edited, "model.sig"), JSON.stringify(b2));
    const e = await antidoteFailure(
      verifyModelSignature(edited, join(edited, "model.sig"), await officialKey()),
    );
    expect(e.code).toBe("SIGNATURE_INVALID");

    // A signature file the size of a disk is refused before it is read.
    const huge = join(dir, "huge.sig");
    writeFileSync(huge, "");
    truncateSync(huge, 300 * 2 ** 20);
    const big = await antidoteFailure(verifyModelSignature(edited, huge, await officialKey()));
    expect([big.code, big.message]).toEqual(["PAYLOAD_TOO_LARGE", expect.stringMatching(/300 MiB/)]);

    const cert = join(VECTORS, "v1.1.0-certificate");
    const c = await antidoteFailure(verifyModelSignature(cert, join(cert, "model.sig"), await officialKey()));
    expect(c.code).toBe("INPUT_FORMAT");
    expect(c.message).toMatch(/certificate/);
  });
});

describe("antidote's own model signatures", () => {
  const ec = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" });

  function model(): string {
    const m = join(dir, `model-${Math.random().toString(36).slice(2)}`);
    mkdirSync(join(m, "weights"), { recursive: true });
    mkdirSync(join(m, ".git"));
    writeFileSync(
      join(m, "weights", "model.onnx"),
      Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251)),
    );
    writeFileSync(join(m, "config.json"), '{"classes":10}');
    writeFileSync(join(m, "weights.bin"), "w");
    writeFileSync(join(m, ".git", "HEAD"), "ref");
    return m;
  }

  it("signs in the official shape and verifies; path order is model_signing's (part by part)", async () => {
    const { privateKey, publicKey } = ec();
    const m = model();
    const sig = join(m, "model.sig");
    const { bundle } = await signModel(m, privateKey, { signaturePath: sig });
    writeFileSync(sig, JSON.stringify(bundle));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8")) as {
      predicateType: string;
      predicate: { resources: { name: string }[]; serialization: { method: string; ignore_paths: string[] } };
    };
    expect(statement.predicateType).toBe("https://model_signing/signature/v1.0");
    // "weights/model.onnx" before "weights.bin": ("weights", …) < ("weights.bin",), unlike a plain string sort.
    expect(statement.predicate.resources.map((r) => r.name)).toEqual([
      "config.json",
      "weights/model.onnx",
      "weights.bin",
    ]);
    expect(statement.predicate.serialization.ignore_paths).toContain("model.sig");
    expect(bundle.verificationMaterial.publicKey.hint).toBe(modelKeyHint(publicKey));
    const official = JSON.parse(
      readFileSync(join(VECTORS, "v1.1.0-elliptic-key", "model.sig"), "utf8"),
    ) as object;
    expect(Object.keys(bundle).sort()).toEqual(Object.keys(official).sort());

    const r = await verifyModelSignature(m, sig, publicKey);
    expect(r.files).toHaveLength(3);
    writeFileSync(join(m, "weights", "model.onnx"), "swapped");
    expect((await antidoteFailure(verifyModelSignature(m, sig, publicKey))).message).toMatch(
      /weights\/model\.onnx: SHA-256/,
    );
  });

  it("refuses an Ed25519 key, a symbolic link in the model, and a signed statement naming a path outside the model", async () => {
    const ed = generateKeyPairSync("ed25519").privateKey;
    expect((await antidoteFailure(signModel(model(), ed))).message).toMatch(
      /ECDSA keys on P-256, P-384 or P-521/,
    );

    const { privateKey, publicKey } = ec();
    const linked = model();
    symlinkSync("/etc/hostname", join(linked, "outside"));
    expect((await antidoteFailure(signModel(linked, privateKey))).message).toMatch(
      /outside: is a symbolic link/,
    );

    // A validly signed statement whose resource escapes the model: refused before any comparison.
    const m = model();
    const statement = {
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ name: "m", digest: { sha256: "0".repeat(64) } }],
      predicateType: "https://model_signing/signature/v1.0",
      predicate: {
        serialization: { method: "files", hash_type: "sha256", allow_symlinks: false },
        resources: [{ name: "../../etc/passwd", algorithm: "sha256", digest: "0".repeat(64) }],
      },
    };
    writeFileSync(join(m, "model.sig"), JSON.stringify(handSigned(statement, privateKey, publicKey)));
    const e = await antidoteFailure(verifyModelSignature(m, join(m, "model.sig"), publicKey));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(/resources\[0\]\.name: is not a relative POSIX path/);
  });
});

function handSigned(statement: object, privateKey: KeyObject, publicKey: KeyObject): object {
  const payload = Buffer.from(JSON.stringify(statement));
  const sig = sign("sha256", preAuthEncoding("application/vnd.in-toto+json", payload), {
    key: privateKey,
    dsaEncoding: "der",
  });
  return {
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: { publicKey: { hint: modelKeyHint(publicKey) }, tlogEntries: [] },
    dsseEnvelope: {
      payload: payload.toString("base64"),
      payloadType: "application/vnd.in-toto+json",
      signatures: [{ sig: sig.toString("base64"), keyid: "" }],
    },
  };
}
