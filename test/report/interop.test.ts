// Croissant and the AI-BOM checked by their formats' own validators, on a real ledger: a
// signed Fashion-MNIST delivery ingested, exported and trained on, on every ledger backend.
// The Croissant metadata goes through mlcroissant (vendored in test/fixtures/schemas/croissant,
// run as `mlcroissant validate`); the AI-BOM through the official CycloneDX 1.6 JSON schema
// (vendored in test/fixtures/schemas/cyclonedx) with ajv. Each validator is also shown a
// broken document, so a validator that accepts anything would fail these tests.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import addFormatsModule from "ajv-formats";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerBom } from "../../src/cli/commands/bom.js";
import { createWriter } from "../../src/data/open.js";
import { AntidoteError } from "../../src/errors.js";
import type { Ledger } from "../../src/ledger/types.js";
import { exportVersion } from "../../src/provenance/export.js";
import { ingestDelivery } from "../../src/provenance/ingest.js";
import { registerModelFile } from "../../src/provenance/model.js";
import { addSource } from "../../src/provenance/sources.js";
import { bomFromLedger, writeCroissant } from "../../src/report/ledger-documents.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { signedStatement, supplierKey } from "./interop-helpers.js";

const SCHEMAS = join(import.meta.dirname, "..", "fixtures", "schemas");
const MLCROISSANT = join(SCHEMAS, "croissant");
// What mlcroissant imports (pyproject.toml), less etils (stood in for) and the optional extras.
const PY_MODULES = [
  "absl",
  "jsonpath_rw",
  "networkx",
  "pandas",
  "rdflib",
  "requests",
  "tqdm",
  "typing_extensions",
  "dateutil",
];
const SEMVER_WARNING = /Version doesn't follow MAJOR\.MINOR\.PATCH/;

/** A Python that can import mlcroissant's dependencies, or the modules it lacks. */
function findPython(): { python: string; env: NodeJS.ProcessEnv } | { missing: string } {
  const extra = process.env["ANTIDOTE_PYTHONPATH"];
  const env = { ...process.env, PYTHONPATH: [MLCROISSANT, ...(extra ? [extra] : [])].join(":") };
  const candidates = [process.env["ANTIDOTE_PYTHON"], "/usr/bin/python3", "python3"].filter(
    (p): p is string => p !== undefined && p !== "",
  );
  let best: string[] | undefined;
  for (const python of candidates) {
    const imports = (modules: string[]): boolean =>
      spawnSync(python, ["-c", `import ${modules.join(", ")}`], { env, stdio: "ignore" }).status === 0;
    const missing = imports(PY_MODULES) ? [] : PY_MODULES.filter((m) => !imports([m]));
    if (missing.length === 0) return { python, env };
    if (best === undefined || missing.length < best.length) best = missing;
  }
  return { missing: `python modules missing: ${(best ?? PY_MODULES).join(", ")}` };
}

const py = findPython();
const skipReason =
  "missing" in py ? ` (skipped: ${py.missing}; see test/fixtures/schemas/croissant/README.md)` : "";
if (skipReason !== "") console.warn(`mlcroissant validation${skipReason}`);

/** `mlcroissant validate --jsonld FILE` (the console script's entry point), for each file at once. */
async function mlcroissantValidate(...files: string[]): Promise<{ status: number | null; output: string }[]> {
  if ("missing" in py) throw new Error(py.missing);
  const { python, env } = py;
  const entry =
    "import sys; from mlcroissant.scripts.cli import main; sys.argv = ['mlcroissant'] + sys.argv[1:]; main()";
  return Promise.all(
    files.map(
      (file) =>
        new Promise<{ status: number | null; output: string }>((done, fail) => {
          const child = spawn(python, ["-c", entry, "validate", "--jsonld", file], { env, timeout: 120_000 });
          let output = "";
          child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
          child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
          child.on("error", fail);
          child.on("close", (status) => done({ status, output }));
        }),
    ),
  );
}

// ajv-formats is CommonJS: its plugin is both module.exports and module.exports.default.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default;
// Untyped CommonJS: what the CycloneDX library itself adds for `idn-email` and `iri-reference`.
const addDraft2019Formats = createRequire(import.meta.url)("ajv-formats-draft2019") as (
  ajv: Ajv,
  options: { formats: string[] },
) => Ajv;

function cycloneDxValidator(): (bom: unknown) => { instancePath: string; message?: string }[] {
  const read = (name: string): object =>
    JSON.parse(readFileSync(join(SCHEMAS, "cyclonedx", name), "utf8")) as object;
  const ajv = new Ajv({
    strict: false,
    allErrors: true,
    schemas: {
      "spdx.schema.json": read("spdx.schema.json"),
      "jsf-0.82.schema.json": read("jsf-0.82.schema.json"),
    },
    loadSchema: (uri: string) => Promise.reject(new Error(`remote schema ${uri}`)),
  });
  addFormats(ajv);
  addDraft2019Formats(ajv, { formats: ["idn-email", "iri-reference"] });
  const validate = ajv.compile(read("bom-1.6.schema.json"));
  return (bom) => (validate(bom) ? [] : (validate.errors ?? []));
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("Croissant and AI-BOM of a Fashion-MNIST ledger on $name", (backend) => {
  let dir: string;
  let location: string;
  let ledger: Ledger;
  let deliveryId: string;
  let clean: string;
  let exported: string;
  let modelDigest: string;
  const WHEN = new Date("2026-12-08T00:00:00.000Z");

  beforeAll(async () => {
    await backend.setup();
    const fresh = await backend.fresh();
    dir = mkdtempSync(join(fresh.dir, "interop-"));
    ledger = await fresh.open("h2-interop");
    location = fresh.location;
    const zalando = supplierKey();
    const delivery = join(dir, "fm.parquet");
    const w = await createWriter(delivery, { classes: FASHION_MNIST_CLASSES });
    for (const s of fashionMnistSamples(300)) await w.write(s);
    await w.close();
    writeFileSync(join(dir, "fm.sigstore.json"), await signedStatement(delivery, zalando));
    await addSource(ledger, { name: "zalando", kind: "supplier", publicKeysPem: [zalando.publicKeyPem] });
    const ingested = await ingestDelivery(ledger, {
      source: "zalando",
      target: delivery,
      signaturePath: join(dir, "fm.sigstore.json"),
      name: "fashion-mnist",
    });
    deliveryId = ingested.deliveryId;
    exported = join(dir, "fm-clean.parquet");
    clean = (
      await exportVersion(ledger, {
        version: ingested.datasetVersion,
        out: exported,
        excludeQuarantined: true,
      })
    ).version;
    // registerModelFile checks the ONNX framing only; the BOM names the file by its digest.
    const onnx = join(dir, "fm-classifier.onnx");
    writeFileSync(onnx, Buffer.from([0x08, 0x08, 0x12, 0x07, ...Buffer.from("antidote")]));
    modelDigest = (await registerModelFile(ledger, { file: onnx, trainedOn: [clean], name: "fm-classifier" }))
      .digest;
  }, 120_000);
  afterAll(async () => {
    await ledger?.close();
    await backend.teardown();
  });

  it(`writes Croissant metadata and per-sample provenance that mlcroissant validate accepts${skipReason}`, async () => {
    const out = join(dir, "fm-clean.croissant.json");
    const written = await writeCroissant(ledger, clean, out, {
      data: [exported],
      license: "https://spdx.org/licenses/MIT",
      creator: "Zalando Research",
      timestamp: WHEN,
    });
    expect(written.samplesCsv).toBe(join(dir, "fm-clean.croissant.samples.csv"));
    const doc = JSON.parse(readFileSync(out, "utf8")) as {
      distribution: { "@id": string; sha256: string }[];
      "rai:annotationsPerItem": string;
      "rai:dataManipulationProtocol": string[];
      "rai:dataCollectionType": string[];
    };
    const csv = readFileSync(written.samplesCsv);
    expect(doc.distribution).toEqual([
      expect.objectContaining({ "@id": "fm-clean.croissant.samples.csv", sha256: sha256(csv) }),
      expect.objectContaining({ "@id": "fm-clean.parquet", sha256: sha256(readFileSync(exported)) }),
    ]);
    // One row per member, with the delivery it came in and its recorded label.
    const rows = csv.toString("utf8").trim().split("\r\n");
    expect(rows[0]).toBe("digest,id,label,source,delivery,quarantined");
    expect(rows).toHaveLength(301);
    const first = fashionMnistSamples(1)[0];
    expect(rows.slice(1).find((r) => r.startsWith(`${first?.digest},`))).toBe(
      `${first?.digest},train:0,${first?.label},zalando,${deliveryId},false`,
    );
    expect(doc["rai:annotationsPerItem"]).toBe(
      "1 (the delivered label; 300 of 300 samples labelled, no per-annotator labels recorded)",
    );
    expect(doc["rai:dataCollectionType"]).toEqual(["Others (third-party supplier delivery)"]);
    expect(doc["rai:dataManipulationProtocol"]).toHaveLength(1);
    expect(doc["rai:dataManipulationProtocol"][0]).toMatch(
      /^export → fashion-mnist@\w+ at .* \(excludeQuarantined=true/,
    );

    if ("missing" in py) return;
    const [ours] = await mlcroissantValidate(out);
    expect(ours?.output).not.toMatch(/error\(s\)/);
    expect(ours?.status).toBe(0);
    // The one warning: Antidote's version ids are content-addressed, not semantic versions.
    const warnings = (ours?.output ?? "").split("\n").filter((l) => l.trimStart().startsWith("-  ["));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(SEMVER_WARNING);
  }, 120_000);

  // The validator sees the same document on every backend; showing it broken ones once is enough.
  it.skipIf("missing" in py || backend.name !== "SQLite")(
    `mlcroissant rejects the metadata once no field reads from a file, or a file has no digest${skipReason}`,
    async () => {
      const out = join(dir, "fm-clean.croissant.json");
      const withoutSources = JSON.parse(readFileSync(out, "utf8")) as {
        recordSet: { field: Record<string, unknown>[] }[];
        distribution: Record<string, unknown>[];
      };
      // The bug this replaced: no field said where its values come from.
      for (const set of withoutSources.recordSet) for (const f of set.field) delete f["source"];
      const withoutDigest = JSON.parse(readFileSync(out, "utf8")) as typeof withoutSources;
      delete withoutDigest.distribution[1]?.["sha256"];
      writeFileSync(join(dir, "no-sources.json"), JSON.stringify(withoutSources));
      writeFileSync(join(dir, "no-digest.json"), JSON.stringify(withoutDigest));
      const [noSources, noDigest] = await mlcroissantValidate(
        join(dir, "no-sources.json"),
        join(dir, "no-digest.json"),
      );
      expect(noSources?.status).toBe(1);
      expect(noSources?.output).toContain("Field samples/digest does not define `source` or `value`");
      expect(noDigest?.status).toBe(1);
      expect(noDigest?.output).toContain(
        "FileObject(fm-clean.parquet)] At least one of these properties should be defined: ['md5', 'sha256']",
      );
    },
    120_000,
  );

  it("refuses data that does not hold the version's samples, naming it, and writes nothing", async () => {
    const other = join(dir, "other.parquet");
    const w = await createWriter(other, { classes: FASHION_MNIST_CLASSES });
    for (const s of fashionMnistSamples(301).slice(1)) await w.write(s);
    await w.close();
    const out = join(dir, "other.croissant.json");
    const e = await writeCroissant(ledger, clean, out, { data: [other] }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(AntidoteError);
    expect((e as AntidoteError).code).toBe("DIGEST_MISMATCH");
    expect((e as AntidoteError).message).toContain(`${other}: the 300 samples read have Merkle root`);
    expect((e as AntidoteError).message).toContain(`of dataset version ${clean}`);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(dir, "other.croissant.samples.csv"))).toBe(false);
  }, 60_000);

  it("builds an AI-BOM from the ledger that the official CycloneDX 1.6 schema accepts, and one it rejects", async () => {
    const validate = cycloneDxValidator();
    const bom = (await bomFromLedger(ledger, modelDigest.slice(0, 12), { timestamp: WHEN })) as {
      metadata: {
        component: { modelCard: { modelParameters: { task?: string; datasets: { ref: string }[] } } };
      };
      components: { "bom-ref": string; hashes?: { alg: string; content: string }[] }[];
    };
    expect(validate(bom)).toEqual([]);
    const version = await ledger.getDatasetVersion(clean);
    const params = bom.metadata.component.modelCard.modelParameters;
    expect(params.task).toBe("classification");
    expect(params.datasets).toEqual([{ ref: `data:${clean}` }]);
    const data = bom.components.find((c) => c["bom-ref"] === `data:${clean}`);
    expect(data?.hashes).toEqual([{ alg: "SHA-256", content: version?.merkleRoot }]);

    const broken = structuredClone(bom) as unknown as { components: { hashes: { content: string }[] }[] };
    const hash = broken.components.find((c) => c.hashes !== undefined)?.hashes[0];
    if (hash === undefined) throw new Error("no hashed component");
    hash.content = "not-a-sha256";
    const errors = validate(broken);
    expect(errors.some((err) => /^\/components\/\d+\/hashes\/0\/content$/.test(err.instancePath))).toBe(true);
  }, 60_000);

  it("runs as `antidote croissant` and `antidote bom`, refusing a bad flag or an existing file with nothing written", async () => {
    const run = async (...args: string[]): Promise<{ stdout: string; error?: unknown }> => {
      const program = new Command("antidote").exitOverride();
      registerBom(program);
      let stdout = "";
      const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
        stdout += String(chunk);
        return true;
      });
      const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
      try {
        await program.parseAsync([...args, "--ledger", location], { from: "user" });
        return { stdout };
      } catch (error) {
        return { stdout, error };
      } finally {
        spy.mockRestore();
        stderr.mockRestore();
      }
    };
    const out = join(dir, "cli", "fm.json");
    expect(
      (await run("croissant", "--dataset", clean, "--out", out, "--data", exported)).error,
    ).toBeUndefined();
    const doc = readFileSync(out, "utf8");
    expect(JSON.parse(doc)).toMatchObject({ license: "not recorded", creator: { name: "not recorded" } });
    expect(readFileSync(join(dir, "cli", "fm.samples.csv"), "utf8").split("\r\n")).toHaveLength(302);

    const again = await run("croissant", "--dataset", clean, "--out", out, "--license", "MIT");
    expect(again.error).toBeInstanceOf(AntidoteError);
    expect((again.error as AntidoteError).message).toContain(out);
    expect(readFileSync(out, "utf8")).toBe(doc);

    const badUrl = await run(
      "croissant",
      "--dataset",
      clean,
      "--out",
      join(dir, "cli", "x.json"),
      "--url",
      "nope",
    );
    expect((badUrl.error as AntidoteError).message).toMatch(/^--url: /);
    expect(existsSync(join(dir, "cli", "x.json"))).toBe(false);
    expect(existsSync(join(dir, "cli", "x.samples.csv"))).toBe(false);

    // Without --out the per-sample rows travel inline.
    const inline = JSON.parse((await run("croissant", "--dataset", clean)).stdout) as {
      recordSet: { "@id": string; data?: unknown[] }[];
    };
    expect(inline.recordSet.find((r) => r["@id"] === "samples")?.data).toHaveLength(300);

    const bom = JSON.parse((await run("bom", "--model", modelDigest.slice(0, 10))).stdout) as object;
    expect(cycloneDxValidator()(bom)).toEqual([]);
  }, 60_000);
});
