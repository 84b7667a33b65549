// The AI-BOM: a CycloneDX 1.6 document that validates against the 1.6 schema (and a
// validator that does reject broken ones), whose model, data components, pedigree and
// dependencies say what the ledger records say.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AntidoteError } from "../../src/errors.js";
import { buildModelBom, validateCycloneDx } from "../../src/report/bom.js";
import {
  bomInput,
  cleanAProvenance,
  crawlProvenance,
  firstTune,
  foundation,
  model,
  rootAProvenance,
  sha256,
} from "./fixtures.js";

const property = z.object({ name: z.string(), value: z.string() });
const hash = z.object({ alg: z.string(), content: z.string() });
interface Component {
  type: string;
  name: string;
  version?: string;
  "bom-ref"?: string;
  hashes?: z.infer<typeof hash>[];
  properties?: z.infer<typeof property>[];
  components?: Component[];
  modelCard?: {
    modelParameters: { task?: string; datasets?: { ref: string }[] };
    considerations?: { technicalLimitations: string[] };
    properties?: z.infer<typeof property>[];
  };
  pedigree?: { ancestors: Component[] };
  data?: { type: string; name: string; governance?: { custodians: { organization: { name: string } }[] } }[];
}
const component: z.ZodType<Component> = z.lazy(() =>
  z.object({
    type: z.string(),
    name: z.string(),
    version: z.string().optional(),
    "bom-ref": z.string().optional(),
    hashes: z.array(hash).optional(),
    properties: z.array(property).optional(),
    components: z.array(component).optional(),
    modelCard: z
      .object({
        modelParameters: z.object({
          task: z.string().optional(),
          datasets: z.array(z.object({ ref: z.string() })).optional(),
        }),
        considerations: z.object({ technicalLimitations: z.array(z.string()) }).optional(),
        properties: z.array(property).optional(),
      })
      .optional(),
    pedigree: z.object({ ancestors: z.array(component) }).optional(),
    data: z
      .array(
        z.object({
          type: z.string(),
          name: z.string(),
          governance: z
            .object({ custodians: z.array(z.object({ organization: z.object({ name: z.string() }) })) })
            .optional(),
        }),
      )
      .optional(),
  }),
);
const bomSchema = z.object({
  bomFormat: z.literal("CycloneDX"),
  specVersion: z.literal("1.6"),
  serialNumber: z.string(),
  metadata: z.object({
    timestamp: z.string(),
    tools: z.object({ components: z.array(component) }),
    component,
  }),
  components: z.array(component),
  dependencies: z.array(z.object({ ref: z.string(), dependsOn: z.array(z.string()).optional() })),
});

const SERIAL = "urn:uuid:0b8e6b7e-4f1c-4d5a-9c8e-2a1f3b4c5d6e";
const WHEN = new Date("2025-03-02T00:00:00.000Z");

async function build(): Promise<{ raw: object; bom: z.infer<typeof bomSchema> }> {
  const raw = await buildModelBom(bomInput(), { serialNumber: SERIAL, timestamp: WHEN });
  return { raw, bom: bomSchema.parse(raw) };
}

function props(c: Component, name: string): string[] {
  return (c.properties ?? []).filter((p) => p.name === name).map((p) => p.value);
}

function byRef(bom: z.infer<typeof bomSchema>, ref: string): Component {
  const found = bom.components.find((c) => c["bom-ref"] === ref);
  if (found === undefined) throw new Error(`no component with bom-ref ${ref}`);
  return found;
}

async function rejection(json: string): Promise<AntidoteError> {
  const error: unknown = await validateCycloneDx(json).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AntidoteError);
  return error as AntidoteError;
}

describe("buildModelBom", () => {
  it("produces a CycloneDX 1.6 document that the 1.6 schema validator accepts", async () => {
    const { raw, bom } = await build();
    await expect(validateCycloneDx(JSON.stringify(raw))).resolves.toBeUndefined();
    expect(bom.serialNumber).toBe(SERIAL);
    expect(bom.metadata.timestamp).toBe(WHEN.toISOString());
    expect(bom.metadata.tools.components.map((t) => [t.type, t.name, t.version])).toEqual([
      ["application", "antidote", "0.1.0"],
    ]);
  });

  it("has a validator that rejects broken documents, naming the place at fault", async () => {
    const { raw } = await build();
    const good = JSON.stringify(raw);

    // An unknown field inside the model card (the part we add by hand): strict schema refuses it.
    const extra = JSON.parse(good) as { metadata: { component: { modelCard: Record<string, unknown> } } };
    extra.metadata.component.modelCard.trainingLoss = 0.1;
    const e1 = await rejection(JSON.stringify(extra));
    expect(e1.code).toBe("INTERNAL");
    expect(e1.message).toContain("/metadata/component/modelCard");
    expect(e1.message).toContain("trainingLoss");

    // A hash that is not a digest.
    const badHash = JSON.parse(good) as { metadata: { component: { hashes: { content: string }[] } } };
    const first = badHash.metadata.component.hashes[0];
    if (first === undefined) throw new Error("model has no hash");
    first.content = "not-a-digest";
    expect((await rejection(JSON.stringify(badHash))).message).toContain(
      "/metadata/component/hashes/0/content",
    );

    // A component type the spec does not have.
    const badType = JSON.parse(good) as { components: { type: string }[] };
    const data = badType.components[0];
    if (data === undefined) throw new Error("no components");
    data.type = "dataset";
    expect((await rejection(JSON.stringify(badType))).message).toContain("/components/0/type");
  });

  it("refuses what the serializer would silently drop: a malformed file digest or serial number", async () => {
    // The CycloneDX library leaves out a hash or serial number it finds malformed, and the
    // result still validates; the BOM must fail instead of losing them.
    const input = bomInput();
    input.datasets = [
      { ...cleanAProvenance, files: [{ path: "spam-clean.parquet", sha256: "truncated-digest", size: 10 }] },
      crawlProvenance,
      rootAProvenance,
    ];
    const error: unknown = await buildModelBom(input, { serialNumber: SERIAL, timestamp: WHEN }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(AntidoteError);
    expect((error as AntidoteError).code).toBe("INTERNAL");
    expect((error as AntidoteError).message).toContain(
      `file spam-clean.parquet of ${cleanAProvenance.version.version} has sha256 "truncated-digest"`,
    );

    const serial: unknown = await buildModelBom(bomInput(), {
      serialNumber: "urn:uuid:ABC",
      timestamp: WHEN,
    }).catch((e: unknown) => e);
    expect(serial).toBeInstanceOf(AntidoteError);
    expect((serial as AntidoteError).code).toBe("USAGE");
    expect((serial as AntidoteError).message).toContain('serial number "urn:uuid:ABC" is not a urn:uuid');
  });

  it("describes the model as a machine-learning-model with its SHA-256 and a model card whose datasets resolve", async () => {
    const { bom } = await build();
    const subject = bom.metadata.component;
    expect(subject.type).toBe("machine-learning-model");
    expect(subject.name).toBe(model.name);
    expect(subject.hashes).toEqual([{ alg: "SHA-256", content: model.digest }]);
    // The task is read off the training data: every one of its 488 samples carries ham or spam.
    expect(subject.modelCard?.modelParameters.task).toBe("classification");
    expect(
      subject.modelCard?.properties?.filter((p) => p.name === "antidote:task-basis").map((p) => p.value),
    ).toEqual(["from the training data: 488 of 488 training samples labelled, 2 distinct labels"]);

    const refs = subject.modelCard?.modelParameters.datasets?.map((d) => d.ref) ?? [];
    expect(refs).toHaveLength(model.trainedOn.length);
    const resolved = refs.map((ref) => byRef(bom, ref));
    expect(resolved.map((c) => c.type)).toEqual(["data", "data"]);
    expect(resolved.map((c) => c.version)).toEqual(model.trainedOn);

    const dependency = bom.dependencies.find((d) => d.ref === subject["bom-ref"]);
    expect(dependency?.dependsOn?.slice().sort()).toEqual(refs.slice().sort());
  });

  it("surfaces the findings, quarantine counts and the revoked key in the model card's considerations", async () => {
    const { bom } = await build();
    const card = bom.metadata.component.modelCard;
    const lines = card?.considerations?.technicalLimitations ?? [];
    // Highest score first.
    expect(lines[0]).toBe(`backdoor-trigger on ${model.digest}: score 4.1 (trigger-inversion)`);
    expect(lines[1]).toBe(
      `label-issue-rate on ${crawlProvenance.version.version}: score 0.035 (confident-learning)`,
    );
    expect(lines).toContain(
      `Training data ${crawlProvenance.version.version} holds 7 quarantined sample(s) of 200.`,
    );
    const revoked = lines.filter((l) => l.includes("revoked at 2025-03-01T12:00:00.000Z"));
    expect(revoked).toHaveLength(1);
    expect(revoked[0]).toContain(cleanAProvenance.version.version);
    expect(revoked[0]).toContain(cleanAProvenance.deliveries[0]?.keyId ?? "?");
    const findings = (card?.properties ?? [])
      .filter((p) => p.name === "antidote:finding")
      .map((p) => JSON.parse(p.value) as { kind: string; score: number });
    expect(findings.map((f) => [f.kind, f.score])).toEqual([
      ["backdoor-trigger", 4.1],
      ["label-issue-rate", 0.035],
    ]);
  });

  it("names the base-model chain in the pedigree, nearest first, with digests and their own training data", async () => {
    const { bom } = await build();
    const ancestors = bom.metadata.component.pedigree?.ancestors ?? [];
    expect(ancestors.map((a) => [a.type, a.name, a.hashes?.[0]?.content])).toEqual([
      ["machine-learning-model", firstTune.name, firstTune.digest],
      ["machine-learning-model", foundation.name, foundation.digest],
    ]);
    expect(props(bom.metadata.component, "antidote:base-model")).toEqual([firstTune.digest]);
    expect(props(ancestors[0] as Component, "antidote:base-model")).toEqual([foundation.digest]);
    // The first fine-tune was trained on vendor-a's raw version, which is in the BOM as data.
    const baseRefs = ancestors[0]?.modelCard?.modelParameters.datasets?.map((d) => d.ref) ?? [];
    expect(baseRefs.map((ref) => byRef(bom, ref).version)).toEqual([rootAProvenance.version.version]);
    expect(bom.dependencies.find((d) => d.ref === ancestors[0]?.["bom-ref"])?.dependsOn).toEqual(baseRefs);
    expect(ancestors[1]?.modelCard?.modelParameters.datasets).toBeUndefined();
  });

  it("gives each dataset version a data component carrying its Merkle root, sources, deliveries and lineage", async () => {
    const { bom } = await build();
    for (const provenance of [cleanAProvenance, crawlProvenance, rootAProvenance]) {
      const data = byRef(bom, `data:${provenance.version.version}`);
      expect(data.type).toBe("data");
      expect(data.version).toBe(provenance.version.version);
      expect(props(data, "antidote:merkle-root")).toEqual([provenance.version.merkleRoot]);
      expect(props(data, "antidote:quarantined-count")).toEqual([String(provenance.quarantinedCount)]);
      expect(data.data?.[0]?.governance?.custodians.map((c) => c.organization.name)).toEqual(
        provenance.sources.map((s) => s.source.name),
      );
    }
    const clean = byRef(bom, `data:${cleanAProvenance.version.version}`);
    const file = cleanAProvenance.files?.[0];
    // The data component's SHA-256 is the version's Merkle root; the exported file is listed with its own.
    expect(clean.hashes).toEqual([{ alg: "SHA-256", content: cleanAProvenance.version.merkleRoot }]);
    expect(
      clean.components?.map((c) => [c.type, c.name, c.hashes?.[0]?.content, props(c, "antidote:size")[0]]),
    ).toEqual([["file", file?.path, file?.sha256, String(file?.size)]]);
    const keyId = cleanAProvenance.deliveries[0]?.keyId ?? "?";
    expect(props(clean, "antidote:source:vendor-a:kind")).toEqual(["supplier"]);
    expect(props(clean, "antidote:source:vendor-a:sample-count")).toEqual(["288"]);
    expect(props(clean, `antidote:source:vendor-a:key:${keyId}`)).toEqual([
      "revoked at 2025-03-01T12:00:00.000Z",
    ]);
    expect(props(clean, "antidote:delivery:vendor-a-2025-02-10:signature")).toEqual([
      `signed by key ${keyId}, revoked at 2025-03-01T12:00:00.000Z`,
    ]);
    expect(
      props(
        byRef(bom, `data:${crawlProvenance.version.version}`),
        "antidote:delivery:crawl-2025-02-12:signature",
      ),
    ).toEqual(["unsigned"]);
    // Lineage in order (ingest, then export), as RFC 8785 JSON.
    const lineage = (clean.properties ?? []).filter((p) => p.name.startsWith("antidote:lineage:"));
    expect(lineage.map((p) => p.name)).toEqual(["antidote:lineage:1", "antidote:lineage:2"]);
    expect(lineage.map((p) => (JSON.parse(p.value) as { kind: string; version: string }).kind)).toEqual([
      "ingest",
      "export",
    ]);
    expect(clean.pedigree?.ancestors.map((a) => [a.type, a.name, a.version])).toEqual([
      ["data", rootAProvenance.version.name, rootAProvenance.version.version],
    ]);
    // Every data component is hashed by its own Merkle root, export or not.
    expect(byRef(bom, `data:${crawlProvenance.version.version}`).hashes).toEqual([
      { alg: "SHA-256", content: crawlProvenance.version.merkleRoot },
    ]);
  });

  it("states no task when the training data does not show one, and says why", async () => {
    const partly = { ...crawlProvenance, labelling: { labelled: 150, distinct: 2 } };
    const input = bomInput();
    const bom = bomSchema.parse(
      await buildModelBom(
        {
          ...input,
          datasets: input.datasets.map((d) => (d.version === crawlProvenance.version ? partly : d)),
        },
        { serialNumber: SERIAL, timestamp: WHEN },
      ),
    );
    const card = bom.metadata.component.modelCard;
    expect(card?.modelParameters.task).toBeUndefined();
    expect(card?.properties?.find((p) => p.name === "antidote:task-basis")?.value).toBe(
      "not classification by its training data: 438 of 488 training samples labelled, 2 distinct labels",
    );
    const uncounted = { ...crawlProvenance, labelling: undefined };
    const bom2 = bomSchema.parse(
      await buildModelBom(
        {
          ...input,
          datasets: input.datasets.map((d) => (d.version === crawlProvenance.version ? uncounted : d)),
        },
        { serialNumber: SERIAL, timestamp: WHEN },
      ),
    );
    expect(bom2.metadata.component.modelCard?.modelParameters.task).toBeUndefined();
    expect(bom2.metadata.component.modelCard?.properties?.[0]?.value).toBe(
      "the labels of its training data were not counted",
    );
  });

  it("is byte-for-byte deterministic given a serial number and timestamp", async () => {
    const a = await buildModelBom(bomInput(), { serialNumber: SERIAL, timestamp: WHEN });
    const b = await buildModelBom(bomInput(), { serialNumber: SERIAL, timestamp: WHEN });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    // Without them, a fresh serial number each time.
    const c = bomSchema.parse(await buildModelBom(bomInput()));
    const d = bomSchema.parse(await buildModelBom(bomInput()));
    expect(c.serialNumber).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
    expect(c.serialNumber).not.toBe(d.serialNumber);
  });

  it("refuses inputs that would misstate the model's provenance", async () => {
    const missing = bomInput();
    missing.datasets = [cleanAProvenance, rootAProvenance];
    await expect(buildModelBom(missing)).rejects.toThrow(
      /trained on spam-crawl@\w+, but no provenance was given/,
    );

    const skipped = bomInput();
    skipped.baseModels = [foundation];
    await expect(buildModelBom(skipped)).rejects.toThrow(
      new RegExp(
        `model ${model.digest} has base model ${firstTune.digest}, but the chain lists ${foundation.digest}`,
      ),
    );

    const badDigest = bomInput();
    badDigest.model = { ...model, digest: sha256("x").slice(0, 40) };
    await expect(buildModelBom(badDigest)).rejects.toThrow(/is not a SHA-256/);
  });
});
