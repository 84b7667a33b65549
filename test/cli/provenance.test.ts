// The provenance loop end to end through the CLI, as a data team runs it, on SQLite and on
// a real PostgreSQL server: a supplier signs a Fashion-MNIST delivery, we register the
// supplier and ingest it; tampered, unsigned, wrongly signed and revoked-key deliveries are
// refused without writing anything; models are registered on top; `trace` finds everything
// a source reached; quarantine + export rebuild a clean, signed version; the AI-BOM and
// Croissant record come out of the ledger; and `ledger verify` catches an edited event.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWriter, openDataset } from "../../src/data/open.js";
import type { Sample } from "../../src/data/sample.js";
import type { SourceTrace } from "../../src/ledger/types.js";
import { antidote, expectUserError, type CliResult } from "../helpers/cli.js";
import { startPostgres } from "../helpers/postgres.js";

const SAMPLES = 300;
let root: string;
let data: string;

/** The first `n` samples of a real dataset, written as one file. */
async function writeSubset(
  spec: string,
  out: string,
  n: number,
  edit: (sample: Sample, index: number) => Sample = (s) => s,
): Promise<void> {
  const source = await openDataset(spec);
  const writer = await createWriter(out, { classes: source.info.classes });
  let i = 0;
  for await (const sample of source.samples()) {
    if (i === n) break;
    await writer.write(edit(sample, i++));
  }
  await writer.close();
}

// A minimal ONNX ModelProto (ir_version 8, then a producer name that makes each file
// distinct): enough for registration, which identifies a model by its bytes.
function fakeOnnx(path: string, producer: string): void {
  const name = Buffer.from(producer);
  writeFileSync(path, Buffer.concat([Buffer.from([0x08, 0x08, 0x12, name.length]), name]));
}

function ok(r: CliResult): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "antidote-prov-"));
  data = join(root, "data");
  mkdirSync(join(data, "acme"), { recursive: true });
  mkdirSync(join(data, "tampered"), { recursive: true });
  await writeSubset("fashion-mnist", join(data, "acme", "delivery.parquet"), SAMPLES);
  await writeSubset("spamassassin", join(data, "crawl.jsonl"), 120);
  const run = (args: string[]) => antidote(args, { cwd: data }).then(ok);
  await run(["keygen", "--out", "acme"]);
  await run(["keygen", "--out", "mallory"]);
  await run(["sign", "acme/delivery.parquet", "--key", "acme.key", "--out", "acme.sigstore.json"]);
  await run(["sign", "acme/delivery.parquet", "--key", "mallory.key", "--out", "mallory.sigstore.json"]);
  // The same file, one byte changed after signing.
  cpSync(join(data, "acme", "delivery.parquet"), join(data, "tampered", "delivery.parquet"));
  const bytes = readFileSync(join(data, "tampered", "delivery.parquet"));
  const middle = Math.floor(bytes.length / 2);
  bytes[middle] = (bytes[middle] ?? 0) ^ 0x01;
  writeFileSync(join(data, "tampered", "delivery.parquet"), bytes);
  await writeSubset(join(data, "acme", "delivery.parquet"), join(data, "filtered.parquet"), 200);
  await writeSubset(join(data, "acme", "delivery.parquet"), join(data, "relabeled.parquet"), 10, (s, i) =>
    i === 3 ? { ...s, label: s.label === "Bag" ? "Coat" : "Bag" } : s,
  );
  fakeOnnx(join(data, "base.onnx"), "base");
  fakeOnnx(join(data, "finetuned.onnx"), "finetuned");
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const backends: { name: string; ledger: () => Promise<{ flag: string[]; stop: () => Promise<void> }> }[] = [
  { name: "SQLite", ledger: () => Promise.resolve({ flag: [], stop: () => Promise.resolve() }) },
  {
    name: "PostgreSQL",
    ledger: async () => {
      const pg = await startPostgres();
      return { flag: ["--ledger", pg.url], stop: () => pg.stop() };
    },
  },
];

describe.each(backends)("provenance loop on $name", ({ name, ledger }) => {
  let work: string;
  let flag: string[];
  let stop: () => Promise<void>;
  const cli = (args: string[]) => antidote([...args, ...flag], { cwd: work });

  beforeAll(async () => {
    work = mkdtempSync(join(root, `${name}-`));
    ({ flag, stop } = await ledger());
  }, 120_000);
  afterAll(async () => stop());

  let version = "";
  let crawlVersion = "";

  it("registers sources and ingests a signed delivery, once", async () => {
    ok(await cli(["source", "add", "acme", "--kind", "supplier", "--key", join(data, "acme.pub")]));
    ok(await cli(["source", "add", "crawl", "--kind", "web"]));
    expectUserError(
      await cli(["source", "add", "acme", "--kind", "supplier", "--key", join(data, "acme.pub")]),
      7,
      /acme/,
    );
    const first = JSON.parse(
      ok(
        await cli([
          "ingest",
          join(data, "acme", "delivery.parquet"),
          "--source",
          "acme",
          "--signature",
          join(data, "acme.sigstore.json"),
          "--name",
          "fm-acme",
          "--json",
        ]),
      ),
    ) as { sampleCount: number; datasetVersion: string; alreadyIngested: boolean; keyId: string };
    expect(first.sampleCount).toBe(SAMPLES);
    expect(first.alreadyIngested).toBe(false);
    expect(first.keyId).toMatch(/^[0-9a-f]{64}$/);
    version = first.datasetVersion;
    const again = JSON.parse(
      ok(
        await cli([
          "ingest",
          join(data, "acme", "delivery.parquet"),
          "--source",
          "acme",
          "--signature",
          join(data, "acme.sigstore.json"),
          "--json",
        ]),
      ),
    ) as { alreadyIngested: boolean; datasetVersion: string };
    expect(again).toMatchObject({ alreadyIngested: true, datasetVersion: version });
    const crawl = JSON.parse(
      ok(await cli(["ingest", join(data, "crawl.jsonl"), "--source", "crawl", "--json"])),
    ) as {
      sampleCount: number;
      keyId: string | null;
      datasetVersion: string;
    };
    expect(crawl).toMatchObject({ sampleCount: 120, keyId: null });
    crawlVersion = crawl.datasetVersion;
  }, 120_000);

  it("refuses tampered, unsigned, wrongly signed, revoked-key and unknown-source deliveries, writing nothing", async () => {
    const eventsBefore = ok(await cli(["ledger", "log", "--json", "--limit", "100000"]))
      .trim()
      .split("\n").length;
    const storeBefore = readdirSync(join(work, ".antidote", "store")).sort();
    const delivery = join(data, "acme", "delivery.parquet");
    expectUserError(
      await cli([
        "ingest",
        join(data, "tampered", "delivery.parquet"),
        "--source",
        "acme",
        "--signature",
        join(data, "acme.sigstore.json"),
      ]),
      6,
      /delivery\.parquet.*sha256/,
    );
    expectUserError(await cli(["ingest", delivery, "--source", "acme"]), 6, /requires signed deliveries/);
    expectUserError(
      await cli(["ingest", delivery, "--source", "acme", "--signature", join(data, "mallory.sigstore.json")]),
      6,
      /not signed by any current key of source "acme"/,
    );
    expectUserError(
      await cli(["ingest", delivery, "--source", "nobody", "--signature", join(data, "acme.sigstore.json")]),
      7,
      /source "nobody" is not registered/,
    );
    // Revoke acme's key: its own (previously good) signature is now refused.
    const sources = JSON.parse(ok(await cli(["source", "list", "--json"]))) as {
      name: string;
      keys: { keyId: string }[];
    }[];
    const acmeKey = sources.find((s) => s.name === "acme")?.keys[0]?.keyId ?? "";
    ok(await cli(["source", "revoke-key", "acme", acmeKey.slice(0, 12), "--reason", "laptop stolen"]));
    const fresh = join(data, "acme-copy");
    mkdirSync(fresh, { recursive: true });
    expectUserError(
      await cli([
        "ingest",
        delivery,
        "--source",
        "acme",
        "--signature",
        join(data, "acme.sigstore.json"),
        "--name",
        "again",
      ]),
      6,
      /revoked/,
    );
    const eventsAfter = ok(await cli(["ledger", "log", "--json", "--limit", "100000"]))
      .trim()
      .split("\n").length;
    expect(eventsAfter).toBe(eventsBefore + 1); // only the revocation
    expect(readdirSync(join(work, ".antidote", "store")).sort()).toEqual(storeBefore);
  }, 180_000);

  it("traces a source into dataset versions, models and models fine-tuned from them", async () => {
    const base = JSON.parse(
      ok(await cli(["model", "register", join(data, "base.onnx"), "--trained-on", version, "--json"])),
    ) as { digest: string };
    const tuned = JSON.parse(
      ok(
        await cli([
          "model",
          "register",
          join(data, "finetuned.onnx"),
          "--trained-on",
          crawlVersion,
          "--base",
          base.digest.slice(0, 12),
          "--json",
        ]),
      ),
    ) as { digest: string };
    expectUserError(
      await cli(["model", "register", join(data, "crawl.jsonl"), "--trained-on", version]),
      3,
      /not an ONNX model/,
    );
    expectUserError(
      await cli(["model", "register", join(data, "base.onnx"), "--trained-on", "nope@1"]),
      7,
      /nope@1/,
    );

    const trace = JSON.parse(ok(await cli(["trace", "--source", "acme", "--json"]))) as SourceTrace;
    expect(trace.sampleCount).toBe(SAMPLES);
    expect(trace.samples).toHaveLength(SAMPLES);
    expect(trace.datasetVersions.map((v) => v.version)).toEqual([version]);
    expect(trace.models.map((m) => m.digest)).toEqual([base.digest]);
    expect(trace.descendantModels.map((m) => m.digest)).toEqual([tuned.digest]);
    const crawlTrace = JSON.parse(ok(await cli(["trace", "--source", "crawl", "--json"]))) as SourceTrace;
    expect(crawlTrace.models.map((m) => m.digest)).toEqual([tuned.digest]);
    expect(crawlTrace.descendantModels).toEqual([]);

    const human = ok(await cli(["trace", "--source", "acme"]));
    expect(human).toContain(version);
    expect(human).toContain("finetuned.onnx");
    const sample = JSON.parse(ok(await cli(["trace", "--sample", trace.samples[0]?.id ?? "", "--json"]))) as {
      origins: { source: string }[];
    };
    expect(sample.origins.map((o) => o.source)).toEqual(["acme"]);
  }, 120_000);

  it("records a selection made with the user's own tool as a child version, and refuses new labels or content", async () => {
    const derived = JSON.parse(
      ok(
        await cli([
          "derive",
          join(data, "filtered.parquet"),
          "--from",
          version,
          "--kind",
          "filter",
          "--tool",
          "my-filter",
          "--tool-version",
          "2.1",
          "--param",
          "max_entropy=0.7",
          "--json",
        ]),
      ),
    ) as { version: string; samples: number; removed: number };
    expect(derived).toMatchObject({ samples: 200, removed: SAMPLES - 200 });
    const versions = JSON.parse(ok(await cli(["ledger", "versions", "--json"]))) as {
      version: string;
      parent: string | null;
      transform: { kind: string; tool: string; toolVersion: string; parameters: Record<string, unknown> };
    }[];
    expect(versions.find((v) => v.version === derived.version)).toMatchObject({
      parent: version,
      transform: {
        kind: "filter",
        tool: "my-filter",
        toolVersion: "2.1",
        parameters: { max_entropy: "0.7" },
      },
    });
    const common = ["--from", version, "--kind", "filter", "--tool", "t", "--tool-version", "1"];
    expectUserError(
      await cli(["derive", join(data, "relabeled.parquet"), ...common]),
      6,
      /1 sample\(s\) carry a different label/,
    );
    expectUserError(await cli(["derive", join(data, "crawl.jsonl"), ...common]), 6, /is not in /);
  }, 120_000);

  it("quarantines samples and exports a clean, signed version with lineage", async () => {
    const trace = JSON.parse(ok(await cli(["trace", "--source", "acme", "--json"]))) as SourceTrace;
    const bad = trace.samples.slice(0, 3).map((s) => s.id);
    ok(
      await cli([
        "quarantine",
        ...bad.flatMap((id) => ["--sample", id]),
        "--reason",
        "scan finding",
        "--by",
        "tester",
      ]),
    );
    const out = join(work, "clean.parquet");
    const result = JSON.parse(
      ok(await cli(["export", "--dataset", version, "--exclude-quarantined", "--out", out, "--json"])),
    ) as {
      written: number;
      version: string;
      parent: string;
      signature: string;
      excluded: { quarantined: number };
    };
    expect(result).toMatchObject({ written: SAMPLES - 3, parent: version, excluded: { quarantined: 3 } });
    const exported = await openDataset(out);
    const ids: string[] = [];
    for await (const s of exported.samples()) ids.push(s.id);
    expect(ids).toHaveLength(SAMPLES - 3);
    expect(ids.filter((id) => bad.includes(id))).toEqual([]);
    // The manifest is signed with the ledger's key and verifies against the file.
    const pub = createPublicKey(createPrivateKey(readFileSync(join(work, ".antidote", "ledger-key.pem"))))
      .export({ type: "spki", format: "pem" })
      .toString();
    writeFileSync(join(work, "ledger.pub"), pub);
    ok(await antidote(["verify", out, "--signature", result.signature, "--key", join(work, "ledger.pub")]));
    const versions = JSON.parse(ok(await cli(["ledger", "versions", "--json"]))) as {
      version: string;
      parent: string | null;
    }[];
    expect(versions.find((v) => v.version === result.version)?.parent).toBe(version);
    // Quarantining the whole source leaves nothing of it to export.
    ok(await cli(["quarantine", "--source", "acme", "--reason", "supplier breach"]));
    const none = JSON.parse(
      ok(
        await cli([
          "export",
          "--dataset",
          version,
          "--exclude-quarantined",
          "--out",
          join(work, "none.jsonl"),
          "--json",
        ]),
      ),
    ) as { written: number };
    expect(none.written).toBe(0);
  }, 120_000);

  it("emits a schema-valid CycloneDX AI-BOM and Croissant record from the ledger", async () => {
    const models = JSON.parse(ok(await cli(["model", "list", "--json"]))) as {
      digest: string;
      name: string;
    }[];
    const tuned = models.find((m) => m.name === "finetuned.onnx")?.digest ?? "";
    const bom = JSON.parse(ok(await cli(["bom", "--model", tuned.slice(0, 16)]))) as {
      bomFormat: string;
      specVersion: string;
      components?: { type: string; name: string }[];
      metadata?: { component?: { type: string; hashes?: { content: string }[] } };
    };
    expect(bom).toMatchObject({ bomFormat: "CycloneDX", specVersion: "1.6" });
    expect(JSON.stringify(bom)).toContain(tuned);
    expect(JSON.stringify(bom)).toContain(crawlVersion);
    const croissant = JSON.parse(ok(await cli(["croissant", "--dataset", version]))) as Record<
      string,
      unknown
    >;
    expect(croissant["conformsTo"]).toContain("http://mlcommons.org/croissant/1.0");
    expect(JSON.stringify(croissant)).toContain("rai:dataCollection");
  }, 60_000);

  it("verifies the ledger, and names the first edited event", async () => {
    const report = JSON.parse(ok(await cli(["ledger", "verify", "--json"]))) as {
      ok: boolean;
      events: number;
    };
    expect(report.ok).toBe(true);
    if (name !== "SQLite") return; // editing PostgreSQL rows by hand is covered by the ledger's own tests
    const db = new Database(join(work, ".antidote", "ledger.db"));
    const target = db
      .prepare("SELECT seq FROM events WHERE kind = 'source.added' ORDER BY seq LIMIT 1")
      .get() as {
      seq: number;
    };
    db.prepare(
      "UPDATE events SET payload = replace(payload, '\"trust\":0.5', '\"trust\":1') WHERE seq = ?",
    ).run(target.seq);
    db.close();
    expectUserError(await cli(["ledger", "verify"]), 6, new RegExp(`first bad event #${target.seq}`));
  }, 60_000);
});
