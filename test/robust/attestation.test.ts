// Attested client updates: what a client signs, and each reason the server refuses an
// update — unsigned, unknown client, untrusted key, revoked key, bad signature, another
// round, another federation, changed bytes — checked with real Ed25519 keys, a real keys
// directory and a real SQLite ledger.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrivateKey } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openLedger } from "../../src/ledger/index.js";
import type { DsseEnvelope } from "../../src/provenance/dsse.js";
import { generateSigningKey, type SigningKey } from "../../src/provenance/keys.js";
import {
  attestationPathFor,
  attestUpdate,
  checkAttestation,
  clientIdFromPath,
  FL_UPDATE_PAYLOAD_TYPE,
  readAttestation,
  trustFromKeysDir,
  trustFromLedger,
  type ClientTrust,
  type UpdateAttestation,
} from "../../src/robust/attestation.js";
import { encodeNpyHeader } from "../../src/robust/npy.js";
import { encodeValues, scanUpdate, type UpdateScan } from "../../src/robust/tensor-file.js";

let dir: string;
let scan: UpdateScan;
const keys: Record<string, { key: SigningKey; pem: string }> = {};

function makeKey(): { key: SigningKey; pem: string } {
  const k = generateSigningKey();
  return {
    key: { keyId: k.keyId, privateKey: createPrivateKey(k.privateKeyPem), publicKeyPem: k.publicKeyPem },
    pem: k.publicKeyPem,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-attest-"));
  for (const name of ["c1", "c2", "mallory"]) keys[name] = makeKey();
  const path = join(dir, "c1.npy");
  writeFileSync(path, Buffer.concat([encodeNpyHeader("F32", [3]), encodeValues("F32", [0.5, -1, 2])]));
  scan = await scanUpdate(path);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = (name: string) => keys[name]?.key as SigningKey;

function trust(
  overrides: Partial<Record<string, { requireSignature?: boolean; revokedAt?: string }>> = {},
): ClientTrust {
  const clients = new Map(
    ["c1", "c2"].map((id) => [
      id,
      {
        id,
        requireSignature: overrides[id]?.requireSignature ?? true,
        keys: [
          {
            keyId: key(id).keyId,
            publicKeyPem: key(id).publicKeyPem,
            revokedAt: overrides[id]?.revokedAt ?? null,
          },
        ],
      },
    ]),
  );
  return { origin: "--keys keys", clients, acceptUnknownUnsigned: false, notes: new Map() };
}

function check(
  envelope: DsseEnvelope | null,
  t: ClientTrust = trust(),
  over: { round?: number; federation?: string } = {},
) {
  return checkAttestation({
    update: scan.path,
    attestationPath: attestationPathFor(scan.path),
    envelope,
    scan,
    round: over.round ?? 7,
    federation: over.federation ?? "default",
    trust: t,
  });
}

const sign = (
  signer: string,
  binding: Partial<{ clientId: string; round: number; federation: string }> = {},
) =>
  attestUpdate(scan, { clientId: "c1", round: 7, federation: "default", ...binding }, key(signer)).envelope;

/** Re-sign an edited payload with a given key (an attestation that is validly signed but says something else). */
function signPayload(attestation: UpdateAttestation, signer: string): DsseEnvelope {
  return attestUpdate(
    {
      digest: attestation.digest,
      layout: { ...scan.layout, dimension: attestation.parameters },
    } as UpdateScan,
    attestation,
    key(signer),
  ).envelope;
}

describe("a client's attestation", () => {
  it("binds client, round, federation, digest, parameters and layout; the server accepts it", () => {
    const { attestation, envelope } = attestUpdate(
      scan,
      { clientId: "c1", round: 7, federation: "default" },
      key("c1"),
    );
    expect(envelope.payloadType).toBe(FL_UPDATE_PAYLOAD_TYPE);
    expect(JSON.parse(Buffer.from(envelope.payload, "base64").toString("utf8"))).toEqual({
      clientId: "c1",
      round: 7,
      federation: "default",
      digest: scan.digest,
      parameters: 3,
      layoutDigest: scan.layout.digest,
    });
    expect(attestation.digest).toMatch(/^[0-9a-f]{64}$/);
    const r = check(envelope);
    expect(r).toMatchObject({ clientId: "c1", keyId: key("c1").keyId, rejections: [] });
  });

  it("lives at <update>.dsse.json or in --attestations DIR; the file name names an unattested client", () => {
    expect(attestationPathFor("u/c7.safetensors")).toBe("u/c7.safetensors.dsse.json");
    expect(attestationPathFor("u/c7/")).toBe("u/c7.dsse.json");
    expect(attestationPathFor("u/c7.npy", "att")).toBe(join("att", "c7.npy.dsse.json"));
    expect(clientIdFromPath("u/c7.safetensors")).toBe("c7");
    expect(clientIdFromPath("u/c8.npy")).toBe("c8");
    expect(clientIdFromPath("u/c9/")).toBe("c9");
  });

  it("reads an envelope from disk, and says null when there is none", async () => {
    const path = join(dir, "c1.npy.dsse.json");
    writeFileSync(path, JSON.stringify(sign("c1")));
    expect((await readAttestation(path))?.payloadType).toBe(FL_UPDATE_PAYLOAD_TYPE);
    expect(await readAttestation(join(dir, "none.dsse.json"))).toBeNull();
    writeFileSync(join(dir, "bad.dsse.json"), "{ nope");
    await expect(readAttestation(join(dir, "bad.dsse.json"))).rejects.toMatchObject({ code: "INPUT_FORMAT" });
  });
});

describe("each refusal has its own reason", () => {
  it("unsigned where the client must sign; accepted where its policy allows", () => {
    const r = check(null);
    expect(r.rejections.map((x) => x.reason)).toEqual(["unsigned"]);
    expect(r.rejections[0]?.message).toMatch(
      /c1\.npy: unsigned — client c1 must sign its updates, and there is no .*c1\.npy\.dsse\.json/,
    );
    expect(check(null, trust({ c1: { requireSignature: false } })).rejections).toEqual([]);
  });

  it("unknown client", () => {
    const r = check(sign("mallory", { clientId: "c9" }));
    expect(r.clientId).toBe("c9");
    expect(r.rejections.map((x) => x.reason)).toEqual(["unknown-client"]);
    expect(r.rejections[0]?.message).toMatch(/client c9 is unknown: --keys keys holds no c9\.pub/);
  });

  it("untrusted key: a valid signature by a key that is not the client's", () => {
    const r = check(sign("mallory"));
    expect(r.rejections.map((x) => x.reason)).toEqual(["untrusted-key"]);
    expect(r.rejections[0]?.message).toContain(
      `not signed by a current key of client c1 (signed by ${key("mallory").keyId.slice(0, 16)}…`,
    );
  });

  it("revoked key", () => {
    const r = check(sign("c1"), trust({ c1: { revokedAt: "2026-01-02T03:04:05.000Z" } }));
    expect(r.rejections.map((x) => x.reason)).toEqual(["revoked-key"]);
    expect(r.rejections[0]?.message).toMatch(
      /signed by key [0-9a-f]{16}… of client c1, which was revoked at 2026-01-02T03:04:05\.000Z/,
    );
  });

  it("invalid signature: the payload was edited after signing", () => {
    const envelope = sign("c1", { round: 6 });
    const payload = JSON.parse(Buffer.from(envelope.payload, "base64").toString("utf8")) as UpdateAttestation;
    const edited = {
      ...envelope,
      payload: Buffer.from(JSON.stringify({ ...payload, round: 7 })).toString("base64"),
    };
    const r = check(edited);
    expect(r.rejections.map((x) => x.reason)).toEqual(["signature-invalid"]);
    expect(r.keyId).toBeNull();
  });

  it("replayed: attested for another round, naming it", () => {
    const r = check(sign("c1", { round: 6 }));
    expect(r.rejections.map((x) => x.reason)).toEqual(["replayed"]);
    expect(r.rejections[0]?.message).toMatch(/attested for round 6, this is round 7/);
  });

  it("wrong federation", () => {
    const r = check(sign("c1", { federation: "hospital-b" }), trust(), { federation: "hospital-a" });
    expect(r.rejections.map((x) => x.reason)).toEqual(["wrong-federation"]);
    expect(r.rejections[0]?.message).toMatch(
      /attested for federation "hospital-b", this round is federation "hospital-a"/,
    );
  });

  it("tampered: the bytes received are not the bytes signed", () => {
    const other = { ...scan, digest: "ab".repeat(32) };
    const r = checkAttestation({
      update: scan.path,
      attestationPath: "x.dsse.json",
      envelope: sign("c1"),
      scan: other,
      round: 7,
      federation: "default",
      trust: trust(),
    });
    expect(r.rejections.map((x) => x.reason)).toEqual(["tampered"]);
    expect(r.rejections[0]?.message).toMatch(
      /c1\.npy: sha256 abababababababab… is not the attested [0-9a-f]{16}…: the update changed after it was signed/,
    );
    // A signed attestation whose digest matches but whose parameter count lies is refused too.
    const lying = signPayload(
      {
        clientId: "c1",
        round: 7,
        federation: "default",
        digest: scan.digest,
        parameters: 4,
        layoutDigest: scan.layout.digest,
      },
      "c1",
    );
    expect(check(lying).rejections.map((x) => x.reason)).toEqual(["tampered"]);
  });

  it("reports every binding failure at once once the signature holds", () => {
    const r = check(sign("c1", { round: 3, federation: "other" }));
    expect(r.rejections.map((x) => x.reason).sort()).toEqual(["replayed", "wrong-federation"]);
  });

  it("malformed attestations: another payload type, a payload that is not an fl-update", () => {
    const envelope = sign("c1");
    expect(
      check({ ...envelope, payloadType: "application/vnd.in-toto+json" }).rejections[0]?.message,
    ).toMatch(/payloadType is "application\/vnd\.in-toto\+json"/);
    const junk = {
      ...envelope,
      payload: Buffer.from(JSON.stringify({ clientId: "c1", round: "7" })).toString("base64"),
    };
    const r = check(junk);
    expect(r.rejections.map((x) => x.reason)).toEqual(["malformed"]);
    expect(r.rejections[0]?.message).toMatch(/payload field round /);
  });
});

describe("trusted keys", () => {
  it("from a directory of CLIENT.pub files", async () => {
    const keysDir = join(dir, "keys");
    mkdirSync(keysDir, { recursive: true });
    writeFileSync(join(keysDir, "c1.pub"), keys.c1?.pem ?? "");
    writeFileSync(join(keysDir, "c2.pub"), keys.c2?.pem ?? "");
    writeFileSync(join(keysDir, "notes.txt"), "ignored");
    const t = await trustFromKeysDir(keysDir, { allowUnsigned: false });
    expect([...t.clients.keys()]).toEqual(["c1", "c2"]);
    expect(t.clients.get("c1")?.keys[0]?.keyId).toBe(key("c1").keyId);
    expect(check(sign("c1"), t).rejections).toEqual([]);
    const lax = await trustFromKeysDir(keysDir, { allowUnsigned: true });
    expect(check(null, lax).rejections).toEqual([]);
    await expect(trustFromKeysDir(join(dir, "nope"), { allowUnsigned: false })).rejects.toMatchObject({
      code: "FILE_NOT_FOUND",
      message: expect.stringMatching(/--keys .*nope: no such directory/) as unknown,
    });
  });

  it("from the ledger's fl-client sources, their policies and revocations", async () => {
    const ledger = await openLedger({ location: join(dir, "ledger", "ledger.db") });
    try {
      await ledger.append([
        {
          kind: "source.added",
          payload: {
            name: "c1",
            kind: "fl-client",
            trust: 0.5,
            requireSignature: true,
            keys: [{ publicKeyPem: keys.c1?.pem ?? "" }],
          },
        },
        {
          kind: "source.added",
          payload: {
            name: "c2",
            kind: "fl-client",
            trust: 0.5,
            requireSignature: false,
            keys: [{ publicKeyPem: keys.c2?.pem ?? "" }],
          },
        },
        {
          kind: "source.added",
          payload: {
            name: "acme",
            kind: "supplier",
            trust: 0.5,
            requireSignature: true,
            keys: [{ publicKeyPem: keys.mallory?.pem ?? "" }],
          },
        },
        {
          kind: "source.key-revoked",
          payload: { source: "c1", keyId: key("c1").keyId, reason: "laptop stolen" },
        },
      ]);
      const t = await trustFromLedger(ledger);
      expect([...t.clients.keys()].sort()).toEqual(["c1", "c2"]);
      expect(check(sign("c1"), t).rejections.map((x) => x.reason)).toEqual(["revoked-key"]);
      expect(t.clients.get("c2")?.requireSignature).toBe(false);
      const supplier = check(sign("mallory", { clientId: "acme" }), t);
      expect(supplier.rejections[0]?.message).toMatch(
        /source "acme" is a supplier, not an fl-client in the ledger sqlite:/,
      );
      const nobody = check(sign("mallory", { clientId: "c5" }), t);
      expect(nobody.rejections[0]?.message).toMatch(
        /has no fl-client source named "c5" \(`antidote source add c5 --kind fl-client --key c5\.pub`\)/,
      );
    } finally {
      await ledger.close();
    }
  });
});
