// Signed deliveries end to end on real data: a 500-image Fashion-MNIST Parquet, a SpamAssassin
// JSONL, directories of files and an ImageFolder. Signing lists exactly the files and samples
// an independent oracle computes; verification passes on the untouched delivery and names
// the first file or sample that was changed, removed or added, and the key or signature at fault.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  unlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter } from "../../src/data/open.js";
import type { Sample } from "../../src/data/sample.js";
import { AntidoteError } from "../../src/errors.js";
import { readSignature, signStatement } from "../../src/provenance/bundle.js";
import { verifyDelivery, verifySignedDelivery } from "../../src/provenance/delivery.js";
import {
  generateSigningKey,
  readPrivateKey,
  type SigningKey,
  type TrustedKey,
} from "../../src/provenance/keys.js";
import { buildStatement, type DeliveryStatement } from "../../src/provenance/manifest.js";
import { merkleRoot } from "../../src/provenance/merkle.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, spamAssassinSamples } from "../helpers/real-data.js";

let dir: string;
let key: SigningKey;
let trusted: TrustedKey[];
let fm: Sample[];
let spam: Sample[];
const FM = () => join(dir, "fm.parquet");
const SPAM = () => join(dir, "spam.jsonl");

const sha256File = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

async function write(path: string, samples: Sample[], classes?: string[]): Promise<void> {
  const w = await createWriter(path, classes ? { classes } : {});
  for (const s of samples) await w.write(s);
  await w.close();
}

async function signTo(
  target: string,
  name: string,
  signer = key,
): Promise<{ statement: DeliveryStatement; path: string }> {
  const statement = await buildStatement(target);
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(signStatement(statement, signer), null, 2));
  return { statement, path };
}

async function failure(p: Promise<unknown>): Promise<AntidoteError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof AntidoteError) return e;
  throw new Error(`expected an AntidoteError, got ${String(e)}`);
}

/** A copy of the statement as a (dishonest or buggy) signer could make it, with consistent roots. */
function resealed(
  statement: DeliveryStatement,
  samples: { id: string; digest: string }[],
): DeliveryStatement {
  return {
    ...statement,
    predicate: {
      ...statement.predicate,
      samples,
      sampleCount: samples.length,
      sampleMerkleRoot: merkleRoot(samples.map((s) => s.digest).sort()),
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-delivery-"));
  const k = generateSigningKey();
  writeFileSync(join(dir, "acme.key"), k.privateKeyPem);
  key = await readPrivateKey(join(dir, "acme.key"));
  trusted = [{ keyId: key.keyId, publicKeyPem: key.publicKeyPem }];
  fm = fashionMnistSamples(500);
  spam = spamAssassinSamples(300);
  await write(FM(), fm, FASHION_MNIST_CLASSES);
  await write(SPAM(), spam);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a signed Fashion-MNIST Parquet delivery", () => {
  it("lists the file and all 500 samples with the digests an independent reader computes", async () => {
    const { statement } = await signTo(FM(), "fm.sigstore.json");
    expect(statement.subject).toEqual([{ name: "fm.parquet", digest: { sha256: sha256File(FM()) } }]);
    expect(statement.predicate.samples).toEqual(fm.map((s) => ({ id: s.id, digest: s.digest })));
    expect(statement.predicate.sampleCount).toBe(500);
    expect(statement.predicate.sampleMerkleRoot).toBe(merkleRoot(fm.map((s) => s.digest).sort()));
    expect(statement.predicate.merkleRoot).toBe(merkleRoot([sha256File(FM())]));
    expect(statement.predicate.tool.name).toBe("antidote");
  });

  it("verifies intact, handing every sample on in read order", async () => {
    const seen: string[] = [];
    const v = await verifySignedDelivery(FM(), join(dir, "fm.sigstore.json"), trusted, {
      onSample: (s) => {
        seen.push(s.id);
        return Promise.resolve();
      },
    });
    expect(v.keyId).toBe(key.keyId);
    expect(v.files).toEqual([
      { path: "fm.parquet", sha256: sha256File(FM()), size: readFileSync(FM()).length },
    ]);
    expect(v.samples).toHaveLength(500);
    expect(seen).toEqual(fm.map((s) => s.id));
  });

  it("DIGEST_MISMATCH naming the file when one byte of it changed", async () => {
    const copy = join(dir, "tampered", "fm.parquet");
    mkdirSync(join(dir, "tampered"), { recursive: true });
    const bytes = readFileSync(FM());
    bytes[bytes.length >> 1]! ^= 0x01;
    writeFileSync(copy, bytes);
    const e = await failure(verifySignedDelivery(copy, join(dir, "fm.sigstore.json"), trusted));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toBe(
      `${copy}: sha256 ${sha256File(copy).slice(0, 16)}… but the manifest says ${sha256File(FM()).slice(0, 16)}… (for "fm.parquet").`,
    );
  });

  it("accepts the same file saved under another name (content is what is signed)", async () => {
    const renamed = join(dir, "download-1234.parquet");
    copyFileSync(FM(), renamed);
    const v = await verifySignedDelivery(renamed, join(dir, "fm.sigstore.json"), trusted);
    expect(v.files[0]?.path).toBe("fm.parquet");
  });

  it("KEY_UNTRUSTED when signed by a key the receiver does not trust", async () => {
    const stranger = generateSigningKey();
    const e = await failure(
      verifySignedDelivery(FM(), join(dir, "fm.sigstore.json"), [
        { keyId: stranger.keyId, publicKeyPem: stranger.publicKeyPem },
      ]),
    );
    expect(e.code).toBe("KEY_UNTRUSTED");
    expect(e.message).toContain(join(dir, "fm.sigstore.json"));
    expect(e.message).toContain(key.keyId);
  });

  it("SIGNATURE_INVALID when the signed statement was altered in the bundle", async () => {
    const bundle = JSON.parse(readFileSync(join(dir, "fm.sigstore.json"), "utf8")) as {
      dsseEnvelope: { payload: string };
    };
    const statement = JSON.parse(
      Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"),
    ) as DeliveryStatement;
    // The attacker swaps in the digest of their own file.
    statement.subject[0]!.digest.sha256 = "0".repeat(64);
    bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
    writeFileSync(join(dir, "altered.sigstore.json"), JSON.stringify(bundle));
    const e = await failure(verifySignedDelivery(FM(), join(dir, "altered.sigstore.json"), trusted));
    expect(e.code).toBe("SIGNATURE_INVALID");
    expect(e.message).toContain("altered.sigstore.json");
  });
});

describe("a signed SpamAssassin JSONL delivery", () => {
  it("verifies intact with every sample's digest matching the oracle", async () => {
    await signTo(SPAM(), "spam.sigstore.json");
    const v = await verifySignedDelivery(SPAM(), join(dir, "spam.sigstore.json"), trusted);
    expect(v.samples).toEqual(spam.map((s) => ({ id: s.id, digest: s.digest })));
    expect(v.statement.predicate.sampleMerkleRoot).toBe(merkleRoot(spam.map((s) => s.digest).sort()));
  });

  it("names the first sample whose digest differs, and hands on only the samples before it", async () => {
    const statement = await buildStatement(SPAM());
    const listed = statement.predicate.samples!.map((s) => ({ ...s }));
    listed[120]!.digest = createHash("sha256").update("something else").digest("hex");
    const handed: string[] = [];
    const e = await failure(
      verifyDelivery(SPAM(), resealed(statement, listed), {
        onSample: (s) => {
          handed.push(s.id);
          return Promise.resolve();
        },
      }),
    );
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toBe(
      `sample "${spam[120]!.id}": digest ${spam[120]!.digest.slice(0, 16)}… but the manifest says ${listed[120]!.digest.slice(0, 16)}….`,
    );
    expect(handed).toEqual(spam.slice(0, 120).map((s) => s.id));
  });

  it("names a sample the manifest lists but the data lacks, and one the data has but the manifest lacks", async () => {
    const statement = await buildStatement(SPAM());
    const listed = statement.predicate.samples!;
    const ghost = { id: "spam/not-delivered", digest: createHash("sha256").update("ghost").digest("hex") };
    const missing = await failure(verifyDelivery(SPAM(), resealed(statement, [...listed, ghost])));
    expect([missing.code, missing.message]).toEqual([
      "DIGEST_MISMATCH",
      `sample "spam/not-delivered": listed in the manifest but missing from ${SPAM()}.`,
    ]);
    const extra = await failure(
      verifyDelivery(
        SPAM(),
        resealed(
          statement,
          listed.filter((_, i) => i !== 7),
        ),
      ),
    );
    expect([extra.code, extra.message]).toEqual([
      "DIGEST_MISMATCH",
      `sample "${spam[7]!.id}": present in ${SPAM()} but not in the manifest.`,
    ]);
  });

  it("refuses a statement whose Merkle roots do not match its own lists", async () => {
    const statement = await buildStatement(SPAM());
    const bad = { ...statement, predicate: { ...statement.predicate, merkleRoot: "a".repeat(64) } };
    expect((await failure(verifyDelivery(SPAM(), bad))).message).toMatch(
      /merkleRoot aaaaaaaaaaaaaaaa… does not match its own 1 subjects/,
    );
    const badSamples = {
      ...statement,
      predicate: { ...statement.predicate, sampleMerkleRoot: "b".repeat(64) },
    };
    expect((await failure(verifyDelivery(SPAM(), badSamples))).code).toBe("DIGEST_MISMATCH");
  });
});

describe("a directory delivery", () => {
  let root: string;
  beforeAll(async () => {
    root = join(dir, "delivery");
    mkdirSync(join(root, "data"), { recursive: true });
    await write(join(root, "data", "part-1.parquet"), fm.slice(0, 250), FASHION_MNIST_CLASSES);
    await write(join(root, "data", "part-2.parquet"), fm.slice(250), FASHION_MNIST_CLASSES);
    writeFileSync(join(root, "README.txt"), "Fashion-MNIST, first 500 training images, in two parts.\n");
  });

  it("lists every file by relative path, sorted, and no samples (a directory of shards is not one dataset)", async () => {
    const notes: string[] = [];
    const statement = await buildStatement(root, { onNotDataset: (e) => notes.push(e.message) });
    expect(statement.subject.map((s) => s.name)).toEqual([
      "README.txt",
      "data/part-1.parquet",
      "data/part-2.parquet",
    ]);
    expect(statement.subject[2]?.digest.sha256).toBe(sha256File(join(root, "data", "part-2.parquet")));
    expect(statement.predicate.samples).toBeNull();
    expect(statement.predicate.sampleMerkleRoot).toBeNull();
    expect(notes).toHaveLength(1);
    await signTo(root, "dir.sigstore.json");
    const v = await verifySignedDelivery(root, join(dir, "dir.sigstore.json"), trusted);
    expect(v.files.map((f) => f.path)).toEqual(["README.txt", "data/part-1.parquet", "data/part-2.parquet"]);
  });

  it("DIGEST_MISMATCH naming an extra file, a missing file, and a changed file", async () => {
    const sig = join(dir, "dir.sigstore.json");
    writeFileSync(join(root, "data", "extra.bin"), "slipped in");
    expect((await failure(verifySignedDelivery(root, sig, trusted))).message).toBe(
      `data/extra.bin: present in ${root} but not in the manifest.`,
    );
    unlinkSync(join(root, "data", "extra.bin"));

    const part1 = readFileSync(join(root, "data", "part-1.parquet"));
    unlinkSync(join(root, "data", "part-1.parquet"));
    expect((await failure(verifySignedDelivery(root, sig, trusted))).message).toBe(
      `data/part-1.parquet: listed in the manifest but missing from ${root}.`,
    );
    writeFileSync(join(root, "data", "part-1.parquet"), part1);

    const part2 = join(root, "data", "part-2.parquet");
    const original = readFileSync(part2);
    const changed = Buffer.from(original);
    changed[100]! ^= 0x80;
    writeFileSync(part2, changed);
    const e = await failure(verifySignedDelivery(root, sig, trusted));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toBe(
      `data/part-2.parquet: sha256 ${sha256File(part2).slice(0, 16)}… but the manifest says ${createHash("sha256").update(original).digest("hex").slice(0, 16)}….`,
    );
    writeFileSync(part2, original);
    await expect(verifySignedDelivery(root, sig, trusted)).resolves.toBeDefined();
  });

  it("an ImageFolder directory lists its samples; an added image is caught as an extra file", async () => {
    const images = join(dir, "fm-images");
    await write(images, fm.slice(0, 60));
    const { statement, path } = await signTo(images, "images.sigstore.json");
    expect(statement.predicate.sampleCount).toBe(60);
    expect(new Set(statement.predicate.samples!.map((s) => s.digest))).toEqual(
      new Set(fm.slice(0, 60).map((s) => s.digest)),
    );
    expect(statement.subject.map((s) => s.name)).toContain("metadata.jsonl");
    await expect(verifySignedDelivery(images, path, trusted)).resolves.toMatchObject({
      samples: { length: 60 },
    });
    const someClass = statement.subject.find((s) => s.name.endsWith(".png"))!.name.split("/")[0]!;
    writeFileSync(
      join(images, someClass, "zz-poison.png"),
      readFileSync(join(images, statement.subject[0]!.name)),
    );
    expect((await failure(verifySignedDelivery(images, path, trusted))).message).toBe(
      `${someClass}/zz-poison.png: present in ${images} but not in the manifest.`,
    );
  });
});

describe("other targets", () => {
  it("signs a bundled dataset by name (fashion-mnist:test, 10,000 samples) and verifies it", async () => {
    const statement = await buildStatement("fashion-mnist:test");
    expect(statement.predicate.sampleCount).toBe(10_000);
    expect(statement.subject.map((s) => s.name)).toEqual([
      "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz",
      "train-images-idx3-ubyte.gz",
      "train-labels-idx1-ubyte.gz",
    ]);
    const v = await verifyDelivery("fashion-mnist:test", statement);
    expect(v.samples).toHaveLength(10_000);
  });

  it("signs files that are not a dataset (no sample list), with the reason reported", async () => {
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify({ layers: 3, names: ["a", "b"] }, null, 2));
    const reasons: string[] = [];
    const statement = await buildStatement(config, { onNotDataset: (e) => reasons.push(e.message) });
    expect(statement.predicate.samples).toBeNull();
    expect(reasons[0]).toContain("config.json");
    await expect(verifyDelivery(config, statement)).resolves.toEqual({
      files: [{ path: "config.json", sha256: sha256File(config), size: readFileSync(config).length }],
      samples: [],
      sampleCount: 0,
    });
  });

  it("an explicit --format makes an unreadable dataset an error instead of a files-only delivery", async () => {
    const config = join(dir, "config.json");
    const e = await failure(buildStatement(config, { readOptions: { format: "jsonl" } }));
    expect(e.code).toBe("ROW_MALFORMED");
  });

  it("FILE_NOT_FOUND for a target that does not exist", async () => {
    const e = await failure(buildStatement(join(dir, "nope.parquet")));
    expect(e.code).toBe("FILE_NOT_FOUND");
    expect(e.message).toContain("nope.parquet");
  });
});

describe("readSignature", () => {
  it("accepts a bare DSSE envelope as well as a bundle", async () => {
    const bundle = JSON.parse(readFileSync(join(dir, "fm.sigstore.json"), "utf8")) as {
      dsseEnvelope: unknown;
    };
    writeFileSync(join(dir, "bare.dsse.json"), JSON.stringify(bundle.dsseEnvelope));
    expect(await readSignature(join(dir, "bare.dsse.json"))).toEqual(bundle.dsseEnvelope);
    await expect(verifySignedDelivery(FM(), join(dir, "bare.dsse.json"), trusted)).resolves.toBeDefined();
  });

  it("INPUT_FORMAT naming the file and the field", async () => {
    const p = join(dir, "broken.json");
    const cases: [unknown, RegExp][] = [
      [
        {
          mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
          dsseEnvelope: { payload: "eA==", payloadType: "t", signatures: [{ keyid: "k", sig: 5 }] },
        },
        /broken\.json: dsseEnvelope\.signatures\[0\]\.sig: .*Sigstore bundle/,
      ],
      [
        { mediaType: "text/plain", dsseEnvelope: {} },
        /broken\.json: mediaType: is not a Sigstore bundle media type/,
      ],
      [
        { payload: "eA==", payloadType: "t", signatures: [] },
        /broken\.json: signatures: holds no signature \(reading it as a DSSE envelope\)/,
      ],
      [
        { mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", messageSignature: {} },
        /broken\.json: the bundle holds a message signature/,
      ],
      [[1, 2], /broken\.json: expected a JSON object/],
    ];
    for (const [value, message] of cases) {
      writeFileSync(p, JSON.stringify(value));
      const e = await failure(readSignature(p));
      expect(e.code).toBe("INPUT_FORMAT");
      expect(e.message).toMatch(message);
    }
    writeFileSync(p, "{not json");
    expect((await failure(readSignature(p))).message).toMatch(/broken\.json: not JSON/);
    expect((await failure(readSignature(join(dir, "missing.json")))).code).toBe("FILE_NOT_FOUND");
  });
});
