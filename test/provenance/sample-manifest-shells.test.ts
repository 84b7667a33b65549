// The sample manifest through the shells: `antidote sign` writes it beside the bundle
// atomically (and refuses to overwrite it without --force), `verify` finds it there or takes
// --samples, --inline-samples still writes the v1 form; a manifest large enough to be hashed
// on a thread of its own verifies and is caught when changed; and a delivery uploaded to
// `antidote serve` through the typed client sends the manifest as the `samples` part — without
// it the upload is refused and nothing is recorded.
import {
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
  statSync,
  appendFileSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { AntidoteClient, ServiceError } from "../../src/client/index.js";
import { runKeygen } from "../../src/cli/commands/keygen.js";
import { runSign } from "../../src/cli/commands/sign.js";
import { runVerify } from "../../src/cli/commands/verify.js";
import { createWriter } from "../../src/data/open.js";
import { AntidoteError } from "../../src/errors.js";
import { createInProcessQueue } from "../../src/jobs/index.js";
import { openLedger } from "../../src/ledger/index.js";
import { addSource } from "../../src/provenance/index.js";
import { DELIVERY_PREDICATE_TYPE, DELIVERY_PREDICATE_TYPE_V2 } from "../../src/provenance/manifest.js";
import { SampleManifestWriter, verifySampleManifest } from "../../src/provenance/sample-manifest.js";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

let dir: string;
let data: string;
const lines: string[] = [];
const capture = (t: string) => void lines.push(t);
const printed = () => lines.splice(0).join("");
const key = () => join(dir, "acme.key");
const pub = () => join(dir, "acme.pub");

async function failure(p: Promise<unknown>): Promise<AntidoteError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof AntidoteError) return e;
  throw new Error(`expected an AntidoteError, got ${String(e)}`);
}

function payloadType(bundle: string): string {
  const b = JSON.parse(readFileSync(bundle, "utf8")) as { dsseEnvelope: { payload: string } };
  return (
    JSON.parse(Buffer.from(b.dsseEnvelope.payload, "base64").toString("utf8")) as { predicateType: string }
  ).predicateType;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-sample-manifest-shells-"));
  data = join(dir, "fm.parquet");
  const w = await createWriter(data, { classes: FASHION_MNIST_CLASSES });
  for (const s of fashionMnistSamples(300)) await w.write(s);
  await w.close();
  await runKeygen({ out: join(dir, "acme") }, capture);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote sign / verify with a sample manifest", () => {
  const sig = () => join(dir, "fm.sigstore.json");
  const samples = () => join(dir, "fm.sigstore.samples");

  it("sign writes the bundle and the manifest beside it, and says so", async () => {
    const r = await runSign({ target: data, key: key(), out: sig() }, capture);
    expect(r.files).toBe(1);
    expect(r.samples).toBe(300);
    expect(r.sampleManifest).toBe(samples());
    expect(printed()).toContain(`wrote ${samples()} (the sample manifest: send it with the bundle)`);
    expect(readFileSync(samples(), "utf8").split("\n")).toHaveLength(301);
    expect(payloadType(sig())).toBe(DELIVERY_PREDICATE_TYPE_V2);
    expect(statSync(sig()).size).toBeLessThan(3000);
  });

  it("verify finds it beside the bundle, or where --samples says", async () => {
    const r = await runVerify({ target: data, signature: sig(), keys: [pub()] }, capture);
    expect(r.samples).toBe(300);
    expect(r.files).toBe(1);
    const moved = join(dir, "elsewhere.samples");
    writeFileSync(moved, readFileSync(samples()));
    rmSync(samples());
    const e = await failure(runVerify({ target: data, signature: sig(), keys: [pub()] }, capture));
    expect(e.code).toBe("FILE_NOT_FOUND");
    expect(e.message).toMatch(/fm\.sigstore\.samples: the statement lists its samples in a manifest file/);
    expect(
      (await runVerify({ target: data, signature: sig(), keys: [pub()], samples: moved }, capture)).samples,
    ).toBe(300);
    writeFileSync(samples(), readFileSync(moved));
  });

  it("refuses to replace an existing manifest without --force, before hashing anything", async () => {
    const before = readFileSync(samples(), "utf8");
    rmSync(sig());
    const e = await failure(runSign({ target: data, key: key(), out: sig() }, capture));
    expect(e.code).toBe("USAGE");
    expect(e.message).toMatch(/fm\.sigstore\.samples already exists; pass --force/);
    expect(existsSync(sig())).toBe(false);
    expect(readFileSync(samples(), "utf8")).toBe(before);
    await runSign({ target: data, key: key(), out: sig(), force: true }, capture);
    expect(readFileSync(samples(), "utf8")).toBe(before);
  });

  it("refuses a dataset whose first id the manifest cannot hold (not read as files only); writes nothing", async () => {
    const csv = join(dir, "evil.csv");
    writeFileSync(csv, "id,text,label\n../../etc/passwd,hello,ham\nok,bye,spam\n");
    const out = join(dir, "evil.sigstore.json");
    const e = await failure(runSign({ target: csv, key: key(), out }, capture));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toBe(
      'sample 1 ("../../etc/passwd"): the id has a ".." path segment, so it cannot be listed in a sample manifest; sign with --inline-samples.',
    );
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(dir, "evil.sigstore.samples"))).toBe(false);
  });

  it("--inline-samples writes the v1 form, with no manifest, and it verifies", async () => {
    const out = join(dir, "v1.sigstore.json");
    const r = await runSign({ target: data, key: key(), out, inlineSamples: true }, capture);
    expect(r.sampleManifest).toBeNull();
    expect(existsSync(join(dir, "v1.sigstore.samples"))).toBe(false);
    expect(payloadType(out)).toBe(DELIVERY_PREDICATE_TYPE);
    expect((await runVerify({ target: data, signature: out, keys: [pub()] }, capture)).samples).toBe(300);
  });
});

describe("a manifest hashed on a thread of its own (≥ 16 MB)", () => {
  it("verifies, and a changed last byte is a DIGEST_MISMATCH", async () => {
    const path = join(dir, "big.samples");
    const w = await SampleManifestWriter.open(path);
    const n = 220_000;
    const digests = randomBytes(32 * n).toString("hex");
    for (let i = 0; i < n; i++) await w.add(`shard/${i}.png`, digests.slice(64 * i, 64 * i + 64));
    const summary = await w.close();
    expect(summary.bytes).toBeGreaterThan(16 << 20);
    expect(await verifySampleManifest(path, summary)).toEqual(summary);
    appendFileSync(path, `${digests.slice(0, 64)} extra\n`);
    const e = await failure(verifySampleManifest(path, { ...summary, count: n + 1 }));
    expect(e.code).toBe("DIGEST_MISMATCH");
    expect(e.message).toMatch(
      /big\.samples: sha256 [0-9a-f]{16}… but the statement's subject ".antidote-samples" says/,
    );
  });
});

describe("uploading a v2 delivery to antidote serve", () => {
  let server: RunningServer;
  let token: string;
  let admin: string;
  beforeAll(async () => {
    const location = join(dir, "server", "ledger.db");
    const setup = await openLedger({ location, actor: "setup" });
    try {
      await addSource(setup, {
        name: "acme",
        kind: "supplier",
        publicKeysPem: [readFileSync(pub(), "utf8")],
      });
      token = (await createToken(setup, { principal: "acme-ci", role: "supplier:acme" })).token;
      admin = (await createToken(setup, { principal: "root", role: "admin" })).token;
    } finally {
      await setup.close();
    }
    server = await startServer({
      location,
      port: 0,
      log: () => undefined,
      ingestThreads: 1,
      queue: (ledger) => createInProcessQueue({ ledger, pollMs: 200 }),
    });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it("without the manifest part it is refused, recorded as a refusal, and nothing is ingested", async () => {
    const client = new AntidoteClient({ url: server.url, token });
    const e = await client
      .deliver({
        source: "acme",
        data,
        signature: join(dir, "fm.sigstore.json"),
        samples: join(dir, "nowhere.samples"),
      })
      .then(
        () => undefined,
        (x: unknown) => x,
      );
    // The client itself cannot open a manifest that does not exist.
    expect(e).toBeInstanceOf(Error);
    // A raw upload with no samples part: the server refuses it.
    const form = new FormData();
    form.append("source", "acme");
    form.append("data", new Blob([readFileSync(data)]), "fm.parquet");
    form.append("signature", new Blob([readFileSync(join(dir, "fm.sigstore.json"))]), "fm.sigstore.json");
    const res = await fetch(`${server.url}/v1/deliveries`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "antidote-request-id": crypto.randomUUID() },
      body: form,
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(400);
    expect(body.error.code).toBe("FILE_NOT_FOUND");
    expect(body.error.message).toMatch(
      /^samples\/missing-samples-part: the statement lists its samples in a manifest file/,
    );
    expect(body.error.message).not.toContain(tmpdir());
    const adminClient = new AntidoteClient({ url: server.url, token: admin });
    expect((await adminClient.deliveries()).items).toHaveLength(0);
    expect((await adminClient.refusedDeliveries()).items[0]).toMatchObject({
      source: "acme",
      code: "FILE_NOT_FOUND",
    });
  });

  it("the client sends the manifest beside the signature; the server verifies and records it", async () => {
    const client = new AntidoteClient({ url: server.url, token });
    const r = await client.deliver({ source: "acme", data, signature: join(dir, "fm.sigstore.json") });
    expect(r).toMatchObject({ alreadyIngested: false, sampleCount: 300, files: 1 });
    const again = await client.deliver({ source: "acme", data, signature: join(dir, "fm.sigstore.json") });
    expect(again.alreadyIngested).toBe(true);
  });

  it("a tampered manifest part is refused with DIGEST_MISMATCH", async () => {
    const bad = join(dir, "bad.samples");
    const text = readFileSync(join(dir, "fm.sigstore.samples"), "utf8");
    writeFileSync(
      bad,
      text.replace(/^[0-9a-f]/, (c) => (c === "0" ? "1" : "0")),
    );
    const client = new AntidoteClient({ url: server.url, token });
    const e = await client
      .deliver({
        source: "acme",
        data,
        signature: join(dir, "fm.sigstore.json"),
        samples: bad,
        name: "other",
      })
      .then(
        () => undefined,
        (x: unknown) => x,
      );
    expect(e).toBeInstanceOf(ServiceError);
    expect((e as ServiceError).code).toBe("DIGEST_MISMATCH");
    expect((e as ServiceError).message).toMatch(
      /bad\.samples: sha256 [0-9a-f]{16}… but the statement's subject/,
    );
  });
});
