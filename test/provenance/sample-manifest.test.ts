// Delivery attestations at scale: the per-sample digest manifest file (v2 statements). On a
// real 500-image Fashion-MNIST Parquet delivery: `sign`'s v2 bundle stays small, names the
// manifest as a subject and verifies and ingests like the v1 form (which still verifies and
// ingests). Every attack on the manifest is performed and refused with the file and line
// named — changed bytes, reordered / duplicated / dropped / extra lines re-signed with the old
// root, a consistent manifest that does not match the data, an absurd count, an over-long
// line, path-like and control-character ids, a missing manifest file, an ambiguous statement
// — and leaves the ledger as it was. The Merkle builder and the block root are checked
// against an independent RFC 6962 oracle.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter } from "../../src/data/open.js";
import type { Sample } from "../../src/data/sample.js";
import { AntidoteError } from "../../src/errors.js";
import { openLedger } from "../../src/ledger/index.js";
import type { Ledger } from "../../src/ledger/types.js";
import { signStatement } from "../../src/provenance/bundle.js";
import { verifyDelivery, verifySignedDelivery } from "../../src/provenance/delivery.js";
import { ingestDelivery } from "../../src/provenance/ingest.js";
import {
  generateSigningKey,
  readPrivateKey,
  type SigningKey,
  type TrustedKey,
} from "../../src/provenance/keys.js";
import {
  DELIVERY_PREDICATE_TYPE,
  DELIVERY_PREDICATE_TYPE_V2,
  buildStatement,
  type DeliveryStatement,
} from "../../src/provenance/manifest.js";
import { MerkleBuilder, merkleRoot } from "../../src/provenance/merkle.js";
import {
  SAMPLE_MANIFEST_SUBJECT,
  SampleManifestWriter,
  readSampleManifest,
  sampleManifestPathFor,
  verifySampleManifest,
} from "../../src/provenance/sample-manifest.js";
import { addSource } from "../../src/provenance/sources.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { BACKENDS, enterScratchDir, leaveScratchDir, type FreshLedger } from "../ledger/backends.js";

let dir: string;
let key: SigningKey;
let trusted: TrustedKey[];
let fm: Sample[];
let v2: DeliveryStatement;
let manifestText: string;
let ledger: Ledger;
const FM = () => join(dir, "fm.parquet");
const BUNDLE = () => join(dir, "fm.sigstore.json");
const sha256 = (b: string | Buffer) => createHash("sha256").update(b).digest("hex");

// ── an independent RFC 6962 oracle (recursive split at the largest power of two) ───────
function oracleTree(leaves: Buffer[]): string {
  const h = (...parts: Buffer[]) => {
    const x = createHash("sha256");
    for (const p of parts) x.update(p);
    return x.digest();
  };
  const mth = (d: Buffer[]): Buffer => {
    if (d.length === 1) return h(Buffer.from([0]), d[0]!);
    let k = 1;
    while (k * 2 < d.length) k *= 2;
    return h(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)));
  };
  return leaves.length === 0 ? sha256("") : mth(leaves).toString("hex");
}
function oracleBlockRoot(digests: string[], block: number): string {
  const leaves: Buffer[] = [];
  for (let i = 0; i < digests.length; i += block)
    leaves.push(Buffer.concat(digests.slice(i, i + block).map((d) => Buffer.from(d, "hex"))));
  return oracleTree(leaves);
}

async function failure(p: Promise<unknown>): Promise<AntidoteError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof AntidoteError) return e;
  throw new Error(`expected an AntidoteError, got ${String(e)}`);
}

/**
 * What a dishonest signer holding a trusted key can make: the given manifest bytes written
 * beside a bundle whose subject digest matches them, with the statement's count and sample
 * root as given (default: unchanged, i.e. the old root).
 */
function resigned(
  name: string,
  manifest: string | Buffer,
  predicate: Partial<DeliveryStatement["predicate"]> = {},
): { bundle: string; samples: string } {
  const subject = v2.subject.map((s) =>
    s.name === SAMPLE_MANIFEST_SUBJECT ? { name: s.name, digest: { sha256: sha256(manifest) } } : s,
  );
  const statement: DeliveryStatement = {
    ...v2,
    subject,
    predicate: { ...v2.predicate, merkleRoot: merkleRoot(subject.map((s) => s.digest.sha256)), ...predicate },
  };
  const bundle = join(dir, `${name}.sigstore.json`);
  writeFileSync(bundle, JSON.stringify(signStatement(statement, key)));
  const samples = sampleManifestPathFor(bundle);
  writeFileSync(samples, manifest);
  return { bundle, samples };
}

async function eventCount(): Promise<number> {
  let n = 0;
  for await (const _ of ledger.events()) n++;
  return n;
}

/** Ingest must refuse it exactly as verify does, and write nothing. */
async function refusedByIngest(bundle: string, code: string, message: RegExp): Promise<void> {
  const before = await eventCount();
  const deliveries = (await ledger.listDeliveries()).length;
  const e = await failure(ingestDelivery(ledger, { target: FM(), source: "acme", signaturePath: bundle }));
  expect(e.code).toBe(code);
  expect(e.message).toMatch(message);
  expect(await eventCount()).toBe(before);
  expect((await ledger.listDeliveries()).length).toBe(deliveries);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-sample-manifest-"));
  const k = generateSigningKey();
  writeFileSync(join(dir, "acme.key"), k.privateKeyPem);
  key = await readPrivateKey(join(dir, "acme.key"));
  trusted = [{ keyId: key.keyId, publicKeyPem: key.publicKeyPem }];
  fm = fashionMnistSamples(500);
  const w = await createWriter(FM(), { classes: FASHION_MNIST_CLASSES });
  for (const s of fm) await w.write(s);
  await w.close();
  v2 = await buildStatement(FM(), { sampleManifest: { path: sampleManifestPathFor(BUNDLE()) } });
  writeFileSync(BUNDLE(), JSON.stringify(signStatement(v2, key)));
  manifestText = readFileSync(sampleManifestPathFor(BUNDLE()), "utf8");
  ledger = await openLedger({ location: join(dir, "ledger", "ledger.db"), actor: "test" });
  await addSource(ledger, { name: "acme", kind: "supplier", publicKeysPem: [key.publicKeyPem] });
});
afterAll(async () => {
  await ledger?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the incremental Merkle builder", () => {
  it("gives merkleRoot's root and the RFC 6962 oracle's for every size 0–70", () => {
    for (let n = 0; n <= 70; n++) {
      const digests = Array.from({ length: n }, (_, i) => sha256(`leaf ${i}`));
      const b = new MerkleBuilder();
      for (const d of digests) b.add(Buffer.from(d, "hex"));
      expect(b.root()).toBe(merkleRoot(digests));
      expect(b.root()).toBe(oracleTree(digests.map((d) => Buffer.from(d, "hex"))));
    }
  });
});

describe("the manifest file", () => {
  it("lists every sample as `<digest> <id>` in read order; its root is the oracle's block root", () => {
    const lines = manifestText.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toEqual(fm.map((s) => `${s.digest} ${s.id}`));
    expect(v2.predicateType).toBe(DELIVERY_PREDICATE_TYPE_V2);
    expect(v2.predicate.samples).toBeNull();
    expect(v2.predicate.sampleCount).toBe(500);
    expect(v2.predicate.sampleManifest).toEqual({
      subject: SAMPLE_MANIFEST_SUBJECT,
      format: "antidote-samples/v1",
      blockSize: 1024,
    });
    expect(v2.predicate.sampleMerkleRoot).toBe(
      oracleBlockRoot(
        fm.map((s) => s.digest),
        1024,
      ),
    );
    expect(v2.subject.at(-1)).toEqual({
      name: SAMPLE_MANIFEST_SUBJECT,
      digest: { sha256: sha256(manifestText) },
    });
    // The bundle no longer grows with the samples.
    expect(statSync(BUNDLE()).size).toBeLessThan(3000);
  });

  it("with blockSize 1 the root is merkleRoot over the digests in order; entries read back, bounded chunks", async () => {
    const path = join(dir, "block1.samples");
    const w = await SampleManifestWriter.open(path, { blockSize: 1 });
    for (const s of fm) await w.add(s.id, s.digest);
    const summary = await w.close();
    expect(summary.merkleRoot).toBe(merkleRoot(fm.map((s) => s.digest)));
    expect(summary.merkleRoot).toBe(
      oracleBlockRoot(
        fm.map((s) => s.digest),
        1,
      ),
    );
    const read = [];
    for await (const e of readSampleManifest(path, summary)) read.push(e);
    expect(read).toEqual(fm.map((s) => ({ id: s.id, digest: s.digest })));
    // Blocks of 7: a last partial block, on the thread pool.
    const w7 = await SampleManifestWriter.open(join(dir, "block7.samples"), { blockSize: 7 });
    for (const s of fm) await w7.add(s.id, s.digest);
    const s7 = await w7.close();
    expect(s7.merkleRoot).toBe(
      oracleBlockRoot(
        fm.map((s) => s.digest),
        7,
      ),
    );
    expect((await verifySampleManifest(join(dir, "block7.samples"), s7)).count).toBe(500);
  });

  it("the writer refuses an id it cannot list, naming the sample, and leaves no file", async () => {
    const path = join(dir, "refused.samples");
    const w = await SampleManifestWriter.open(path);
    await w.add("ok", fm[0]!.digest);
    const e = await failure(w.add("../../etc/passwd", fm[1]!.digest));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(/sample 2 \("\.\.\/\.\.\/etc\/passwd"\): the id has a "\.\." path segment/);
    await w.abort();
    expect(existsSync(path)).toBe(false);
  });
});

describe("a v2 delivery verifies and ingests; v1 still does", () => {
  it("verifies, finding the manifest beside the bundle, handing samples on in read order", async () => {
    const seen: string[] = [];
    const v = await verifySignedDelivery(FM(), BUNDLE(), trusted, {
      onSample: (s) => {
        seen.push(s.id);
        return Promise.resolve();
      },
    });
    expect(v.statement.predicateType).toBe(DELIVERY_PREDICATE_TYPE_V2);
    expect(v.files.map((f) => f.path)).toEqual(["fm.parquet"]);
    expect(seen).toEqual(fm.map((s) => s.id));
    // Without keeping the matched samples: only their count comes back.
    const lean = await verifySignedDelivery(FM(), BUNDLE(), trusted, { keepSamples: false });
    expect([lean.samples, lean.sampleCount]).toEqual([[], 500]);
  });

  it("a v1 bundle with inlined samples verifies and ingests; the v2 bundle of the same data ingests too", async () => {
    const v1 = await buildStatement(FM());
    expect(v1.predicateType).toBe(DELIVERY_PREDICATE_TYPE);
    expect(v1.predicate.samples).toHaveLength(500);
    const v1Bundle = join(dir, "v1.sigstore.json");
    writeFileSync(v1Bundle, JSON.stringify(signStatement(v1, key)));
    expect((await verifySignedDelivery(FM(), v1Bundle, trusted)).samples).toHaveLength(500);
    const r1 = await ingestDelivery(ledger, {
      target: FM(),
      source: "acme",
      signaturePath: v1Bundle,
      name: "fm-v1",
    });
    expect(r1.sampleCount).toBe(500);
    const r2 = await ingestDelivery(ledger, {
      target: FM(),
      source: "acme",
      signaturePath: BUNDLE(),
      name: "fm-v2",
    });
    expect(r2.sampleCount).toBe(500);
    expect(r2.alreadyIngested).toBe(false);
    // Same samples: the same content root for both versions.
    const versions = await ledger.listDeliveries();
    expect(versions.map((d) => d.sampleCount)).toEqual([500, 500]);
    const again = await ingestDelivery(ledger, { target: FM(), source: "acme", signaturePath: BUNDLE() });
    expect(again.alreadyIngested).toBe(true);
  });
});

describe("attacks on the manifest are refused, and nothing is written", () => {
  it("a manifest whose bytes differ from the signed subject digest", async () => {
    const samples = join(dir, "swapped.samples");
    const lines = manifestText.split("\n");
    const other = fm[3]!.digest;
    lines[2] = `${other} ${fm[2]!.id}`; // well-formed, another digest
    writeFileSync(samples, lines.join("\n"));
    const e = await failure(verifySignedDelivery(FM(), BUNDLE(), trusted, { sampleManifest: samples }));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toBe(
      `${samples}: sha256 ${sha256(lines.join("\n")).slice(0, 16)}… but the statement's subject ".antidote-samples" says ${sha256(manifestText).slice(0, 16)}….`,
    );
    const before = await eventCount();
    const i = await failure(
      ingestDelivery(ledger, { target: FM(), source: "acme", signaturePath: BUNDLE(), samplesPath: samples }),
    );
    expect(i.code).toBe("DIGEST_MISMATCH");
    expect(await eventCount()).toBe(before);
  });

  const lines = () => manifestText.trimEnd().split("\n");
  const text = (l: string[]) => l.join("\n") + "\n";
  it.each([
    ["reordered", (l: string[]) => [l[1]!, l[0]!, ...l.slice(2)]],
    ["duplicated", (l: string[]) => [...l.slice(0, 10), l[9]!, ...l.slice(10)]],
    ["dropped", (l: string[]) => [...l.slice(0, 10), ...l.slice(11)]],
    ["extra", (l: string[]) => [...l, `${fm[0]!.digest} extra-sample`]],
  ])("a %s line, re-signed with the old root (count adjusted to the lines)", async (name, edit) => {
    const edited = edit(lines());
    const { bundle } = resigned(name, text(edited), { sampleCount: edited.length });
    const e = await failure(verifySignedDelivery(FM(), bundle, trusted));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toMatch(
      /\.sigstore\.samples: its sample Merkle root [0-9a-f]{16}… does not match the statement's sampleMerkleRoot/,
    );
    await refusedByIngest(bundle, "DIGEST_MISMATCH", /sample Merkle root/);
  });

  it("a re-signed manifest with the old count and one line dropped is refused on the count", async () => {
    const edited = lines().slice(1);
    const { bundle } = resigned("short", text(edited));
    const e = await failure(verifySignedDelivery(FM(), bundle, trusted));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toMatch(/short\.sigstore\.samples: 499 lines but the statement's sampleCount is 500\./);
  });

  it("a manifest consistent with its root and count whose samples do not match the data", async () => {
    const edited = lines();
    edited[41] = `${fm[40]!.digest} ${fm[41]!.id}`;
    const digests = edited.map((l) => l.slice(0, 64));
    const { bundle } = resigned("inconsistent", text(edited), {
      sampleMerkleRoot: oracleBlockRoot(digests, 1024),
    });
    const e = await failure(verifySignedDelivery(FM(), bundle, trusted));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toBe(
      `sample "${fm[41]!.id}": digest ${fm[41]!.digest.slice(0, 16)}… but the manifest says ${fm[40]!.digest.slice(0, 16)}….`,
    );
    await refusedByIngest(bundle, "DIGEST_MISMATCH", /sample "train:41": digest/);

    // Ids swapped: the first sample read out of place is named.
    const swapped = lines();
    [swapped[5], swapped[6]] = [swapped[6]!, swapped[5]!];
    const s2 = resigned("swapped-ids", text(swapped), {
      sampleMerkleRoot: oracleBlockRoot(
        swapped.map((l) => l.slice(0, 64)),
        1024,
      ),
    });
    const e2 = await failure(verifySignedDelivery(FM(), s2.bundle, trusted));
    expect(e2.message).toBe(
      `sample "train:5": sample 6 read from ${FM()}, but the manifest lists "train:6" there.`,
    );

    // One sample fewer in the manifest than in the data, consistently signed.
    const fewer = lines().slice(0, 499);
    const s3 = resigned("fewer", text(fewer), {
      sampleCount: 499,
      sampleMerkleRoot: oracleBlockRoot(
        fewer.map((l) => l.slice(0, 64)),
        1024,
      ),
    });
    const e3 = await failure(verifySignedDelivery(FM(), s3.bundle, trusted));
    expect(e3.message).toBe(`sample "train:499": present in ${FM()} but not in the manifest.`);
    // One more in the manifest than the data holds.
    const more = [...lines(), `${fm[0]!.digest} train:500`];
    const s4 = resigned("more", text(more), {
      sampleCount: 501,
      sampleMerkleRoot: oracleBlockRoot(
        more.map((l) => l.slice(0, 64)),
        1024,
      ),
    });
    const e4 = await failure(verifySignedDelivery(FM(), s4.bundle, trusted));
    expect(e4.message).toBe(`sample "train:500": listed in the manifest but missing from ${FM()}.`);
  });

  it("an absurd count: refused by the schema past 10^12, and before reading when the file cannot hold it", async () => {
    const huge = resigned("huge", manifestText, { sampleCount: 1e15 });
    const e = await failure(verifySignedDelivery(FM(), huge.bundle, trusted));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(/statement\.predicate\.sampleCount: is absurdly large/);
    const big = resigned("big", manifestText, { sampleCount: 10_000_000 });
    const e2 = await failure(verifySignedDelivery(FM(), big.bundle, trusted));
    expect(e2.code).toBe("DIGEST_MISMATCH");
    expect(e2.message).toMatch(
      /big\.sigstore\.samples: the statement's sampleCount 10000000 cannot fit a manifest of \d+ bytes/,
    );
    await refusedByIngest(big.bundle, "DIGEST_MISMATCH", /cannot fit a manifest/);
  });

  it.each([
    [
      "an over-long line",
      () => `${fm[0]!.digest} ${"x".repeat(2000)}`,
      /line 1: the line is over 1089 bytes/,
    ],
    ["a path-like id", () => `${fm[0]!.digest} ../../etc/passwd`, /line 1: the id has a "\.\." path segment/],
    ["an absolute-path id", () => `${fm[0]!.digest} /etc/passwd`, /line 1: the id is an absolute path/],
    [
      "a control-character id",
      () => `${fm[0]!.digest} train:\u00000`,
      /line 1: the id holds a control character at byte 7/,
    ],
    ["a carriage return", () => `${fm[0]!.digest} train:0\r`, /line 1: the id holds a control character/],
    [
      "an uppercase digest",
      () => `${fm[0]!.digest.toUpperCase()} train:0`,
      /line 1: the digest is not 64 lowercase hex/,
    ],
    ["no separator", () => fm[0]!.digest, /line 1: expected "<64 hex digits> <id>"/],
  ])("%s is refused naming the file and line", async (name, first, message) => {
    const edited = lines();
    edited[0] = first();
    const { bundle } = resigned(name.replace(/\W+/g, "-"), text(edited));
    const e = await failure(verifySignedDelivery(FM(), bundle, trusted));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(/\.sigstore\.samples: /);
    expect(e.message).toMatch(message);
    expect(e.message).not.toMatch(/etc\/passwd|xxxx/); // names the line, never its contents
    await refusedByIngest(bundle, "INPUT_FORMAT", message);
  });

  it("a bundle that names the manifest when the file is missing", async () => {
    const { bundle, samples } = resigned("missing", manifestText);
    rmSync(samples);
    const e = await failure(verifySignedDelivery(FM(), bundle, trusted));
    expect(e.code).toBe("FILE_NOT_FOUND");
    expect(e.message).toBe(
      `${samples}: the statement lists its samples in a manifest file (subject ".antidote-samples"), and it is missing; send it with the bundle (verify/ingest --samples FILE, the "samples" upload part).`,
    );
    await refusedByIngest(bundle, "FILE_NOT_FOUND", /manifest file/);
    // Given no path at all (verifyDelivery on a bare statement).
    const bare = await failure(verifyDelivery(FM(), v2));
    expect(bare.code).toBe("FILE_NOT_FOUND");
  });

  it("a v2 statement listing samples inline AND naming a manifest is ambiguous and refused", async () => {
    const { bundle } = resigned("ambiguous", manifestText, {
      samples: fm.map((s) => ({ id: s.id, digest: s.digest })),
    });
    const e = await failure(verifySignedDelivery(FM(), bundle, trusted));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(
      /ambiguous\.sigstore\.json: the signed payload: statement\.predicate: lists samples inline AND names a sample manifest/,
    );
    await refusedByIngest(bundle, "INPUT_FORMAT", /ambiguous/);
  });
});

// The same v2 ingest and refusal on both ledger engines: the manifest path changes nothing in
// how a delivery is recorded, and a refused one leaves either engine's events untouched.
describe.each(BACKENDS)("v2 ingest on the $name ledger", (backend) => {
  let fresh: FreshLedger;
  let db: Ledger;
  beforeAll(async () => {
    enterScratchDir(); // a PostgreSQL ledger keeps its witness under ./.antidote
    await backend.setup();
    fresh = await backend.fresh();
    db = await fresh.open("test");
    await addSource(db, { name: "acme", kind: "supplier", publicKeysPem: [key.publicKeyPem] });
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    await backend.teardown();
    leaveScratchDir();
  });

  it("records the delivery; a changed manifest is refused writing no event", async () => {
    const lines = manifestText.split("\n");
    lines[0] = `${fm[1]!.digest} ${fm[0]!.id}`;
    const bad = join(dir, `bad-${backend.name}.samples`);
    writeFileSync(bad, lines.join("\n"));
    const count = async () => {
      let n = 0;
      for await (const _ of db.events()) n++;
      return n;
    };
    const before = await count();
    const e = await failure(
      ingestDelivery(db, { target: FM(), source: "acme", signaturePath: BUNDLE(), samplesPath: bad }),
    );
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(await count()).toBe(before);
    expect(await db.listDeliveries()).toHaveLength(0);
    const r = await ingestDelivery(db, { target: FM(), source: "acme", signaturePath: BUNDLE() });
    expect(r.sampleCount).toBe(500);
    expect((await db.listDeliveries()).map((d) => d.sampleCount)).toEqual([500]);
  });
});
