// Croissant 1.0 metadata of a dataset version: the required Croissant fields, a FileObject
// per exported file, the samples record set, and RAI fields that say what the ledger
// recorded (and "not recorded" where it recorded nothing).
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AntidoteError } from "../../src/errors.js";
import {
  buildCroissant,
  CROISSANT_1_0,
  CROISSANT_RAI_1_0,
  NOT_RECORDED,
  type CroissantInput,
} from "../../src/report/croissant.js";
import type { DatasetProvenance } from "../../src/report/bom.js";
import {
  cleanAProvenance,
  crawl,
  crawlProvenance,
  deliveryA,
  deliveryC,
  sha256,
  vendorA,
} from "./fixtures.js";

const text = z.string().min(1);
const texts = z.array(text).min(1);
const field = z.object({
  "@type": z.literal("cr:Field"),
  "@id": text,
  name: text,
  description: text.optional(),
  dataType: z.union([text, texts]),
  source: z.object({ fileObject: z.object({ "@id": text }), extract: z.object({ column: text }) }).optional(),
});
const SAMPLES_FILE = { path: "spam.samples.csv", sha256: sha256("rows"), size: 1234 };
const recordSet = z.object({
  "@type": z.literal("cr:RecordSet"),
  "@id": text,
  name: text,
  key: z.object({ "@id": text }).optional(),
  field: z.array(field).min(1),
  data: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))).optional(),
});
/** The fields Croissant 1.0 (and its RAI extension) requires or we promise to fill. */
const croissantSchema = z.object({
  "@context": z.looseObject({
    "@vocab": z.literal("https://schema.org/"),
    sc: z.literal("https://schema.org/"),
    cr: z.literal("http://mlcommons.org/croissant/"),
    rai: z.literal("http://mlcommons.org/croissant/RAI/"),
    dct: z.literal("http://purl.org/dc/terms/"),
    prov: z.literal("http://www.w3.org/ns/prov#"),
    conformsTo: z.literal("dct:conformsTo"),
    recordSet: z.literal("cr:recordSet"),
    field: z.literal("cr:field"),
  }),
  "@type": z.literal("sc:Dataset"),
  conformsTo: z.tuple([z.literal(CROISSANT_1_0), z.literal(CROISSANT_RAI_1_0)]),
  name: text,
  description: text,
  license: text,
  creator: z.object({ "@type": z.literal("sc:Organization"), name: text }),
  citeAs: text,
  version: text,
  datePublished: z.iso.datetime(),
  dateCreated: z.iso.datetime(),
  "prov:wasDerivedFrom": z.object({ "@id": text }).optional(),
  "rai:dataCollection": text,
  "rai:dataCollectionType": texts,
  "rai:dataCollectionTimeframe": texts,
  "rai:dataCollectionRawData": text,
  "rai:dataAnnotationProtocol": text,
  "rai:dataAnnotationPlatform": texts,
  "rai:annotationsPerItem": text,
  "rai:machineAnnotationTools": texts,
  "rai:dataManipulationProtocol": texts,
  "rai:dataPreprocessingProtocol": texts,
  "rai:dataBiases": texts,
  "rai:dataLimitations": texts,
  distribution: z.array(
    z.union([
      z.object({
        "@type": z.literal("cr:FileObject"),
        "@id": text,
        name: text,
        contentUrl: text,
        contentSize: z.string().regex(/^\d+ B$/),
        encodingFormat: text,
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
      }),
      z.object({
        "@type": z.literal("cr:FileSet"),
        "@id": text,
        name: text,
        description: text,
        encodingFormat: text,
        includes: text,
      }),
    ]),
  ),
  recordSet: z.array(recordSet).min(1),
});
type Croissant = z.infer<typeof croissantSchema>;

const WHEN = new Date("2025-03-02T00:00:00.000Z");

function build(
  input: DatasetProvenance,
  extra: Partial<CroissantInput> = {},
): { raw: object; doc: Croissant } {
  const raw = buildCroissant(
    { ...input, name: "spam-filter-training", samples: { file: SAMPLES_FILE }, ...extra },
    { timestamp: WHEN },
  );
  return { raw, doc: croissantSchema.parse(raw) };
}

function samples(doc: Croissant, id = "samples"): z.infer<typeof recordSet> {
  const set = doc.recordSet.find((r) => r["@id"] === id);
  if (set === undefined) throw new Error(`no ${id} record set`);
  return set;
}

// Every `{"@id": x}` reference inside the document must name a node the document defines.
function danglingReferences(doc: unknown): string[] {
  const defined = new Set<string>();
  const referenced: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== "object" || node === null) return;
    const entries = Object.entries(node);
    const id = (node as Record<string, unknown>)["@id"];
    if (typeof id === "string") {
      if (entries.length === 1) referenced.push(id);
      else defined.add(id);
    }
    for (const [key, value] of entries) if (key !== "@context") walk(value);
  };
  walk(doc);
  return referenced.filter((id) => !defined.has(id) && !id.startsWith("urn:"));
}

describe("buildCroissant", () => {
  it("emits Croissant 1.0 JSON-LD with the required fields for an exported version", () => {
    const { raw, doc } = build(cleanAProvenance, { license: "https://spdx.org/licenses/CC-BY-4.0" });
    expect(doc.version).toBe(cleanAProvenance.version.version);
    expect(doc.dateCreated).toBe(cleanAProvenance.version.createdAt);
    expect(doc.datePublished).toBe(WHEN.toISOString());
    expect(doc.license).toBe("https://spdx.org/licenses/CC-BY-4.0");
    expect(doc.description).toContain("288 samples from vendor-a");
    expect(danglingReferences(raw)).toEqual([]);
    // The Merkle root identifies the version's sample set.
    expect(JSON.stringify(raw)).toContain(cleanAProvenance.version.merkleRoot);
  });

  it("lists the per-sample CSV and each exported file as a cr:FileObject with SHA-256, and reads every field from one", () => {
    const { doc } = build(cleanAProvenance);
    const file = cleanAProvenance.files?.[0];
    expect(doc.distribution).toEqual([
      {
        "@type": "cr:FileObject",
        "@id": SAMPLES_FILE.path,
        name: SAMPLES_FILE.path,
        contentUrl: SAMPLES_FILE.path,
        contentSize: `${SAMPLES_FILE.size} B`,
        encodingFormat: "text/csv",
        sha256: SAMPLES_FILE.sha256,
      },
      {
        "@type": "cr:FileObject",
        "@id": file?.path,
        name: file?.path,
        contentUrl: file?.path,
        contentSize: `${file?.size} B`,
        encodingFormat: "application/x-parquet",
        sha256: file?.sha256,
      },
    ]);
    const perSample = samples(doc).field;
    expect(perSample.map((f) => f.name)).toEqual([
      "digest",
      "id",
      "label",
      "source",
      "delivery",
      "quarantined",
    ]);
    expect(perSample.every((f) => f.source?.fileObject["@id"] === SAMPLES_FILE.path)).toBe(true);
    expect(perSample.map((f) => f.source?.extract.column)).toEqual(perSample.map((f) => f.name));
    expect(samples(doc).key).toEqual({ "@id": "samples/digest" });
    const records = samples(doc, "records").field;
    expect(records.map((f) => [f.name, f.source?.fileObject["@id"], f.source?.extract.column])).toEqual([
      ["id", file?.path, "id"],
      ["label", file?.path, "label"],
      ["source", file?.path, "source"],
    ]);
  });

  it("describes many exported files as one FileSet per format, and carries rows inline when asked", () => {
    const many = Array.from({ length: 70 }, (_, i) => ({
      path: `images/${i % 10}/${i}.png`,
      sha256: sha256(`image ${i}`),
      size: 100 + i,
    }));
    const row = {
      digest: sha256("s0"),
      id: "s0",
      label: "ham, with a comma",
      source: "vendor-a",
      delivery: deliveryA.deliveryId,
      quarantined: false,
    };
    const { doc } = build({ ...cleanAProvenance, files: many }, { samples: { rows: [row] } });
    expect(doc.distribution).toEqual([
      {
        "@type": "cr:FileSet",
        "@id": "files-png",
        name: "files.png",
        description: `70 exported files, ${many.reduce((n, f) => n + f.size, 0)} B in all; each file's SHA-256 is in the export's signed statement.`,
        encodingFormat: "image/png",
        includes: "**/*.png",
      },
    ]);
    expect(samples(doc).data).toEqual([
      {
        "samples/digest": row.digest,
        "samples/id": "s0",
        "samples/label": "ham, with a comma",
        "samples/source": "vendor-a",
        "samples/delivery": deliveryA.deliveryId,
        "samples/quarantined": false,
      },
    ]);
    expect(samples(doc).field.every((f) => f.source === undefined)).toBe(true);
    expect(doc.recordSet.map((r) => r["@id"])).toEqual(["samples", "classes"]);
  });

  it("refuses a file whose digest is not a SHA-256", () => {
    expect(() => build({ ...cleanAProvenance, files: [{ path: "x.csv", sha256: "abc", size: 1 }] })).toThrow(
      /file x\.csv of .* has sha256 "abc", which is not a SHA-256/,
    );
  });

  it("carries the class list on the label field and as an enumeration", () => {
    const { doc } = build(cleanAProvenance);
    const label = samples(doc).field.find((f) => f.name === "label");
    expect(label?.dataType).toEqual(["sc:Text", "cr:Label"]);
    expect(label?.description).toContain("ham, spam");
    const classes = doc.recordSet.find((r) => r["@id"] === "classes");
    expect(classes?.data).toEqual([
      { "classes/name": "ham", "classes/index": 0 },
      { "classes/name": "spam", "classes/index": 1 },
    ]);
  });

  it("fills the collection fields from sources and deliveries, naming the revoked key", () => {
    const { doc } = build(cleanAProvenance);
    expect(doc["rai:dataCollectionType"]).toEqual(["Others (third-party supplier delivery)"]);
    expect(doc["rai:dataCollectionTimeframe"]).toEqual([deliveryA.at]);
    expect(doc["rai:dataCollection"]).toContain(
      "vendor-a (supplier, trust 0.8, signatures required): 288 samples",
    );
    expect(doc["rai:dataCollection"]).toContain(
      `signed by key ${deliveryA.keyId}, revoked at 2025-03-01T12:00:00.000Z`,
    );
    expect(doc["rai:dataCollectionRawData"]).toContain(`manifest sha256 ${deliveryA.manifestDigest}`);
    expect(doc["rai:dataCollectionRawData"]).toContain(`kept as ${deliveryA.store}`);
    expect(doc["rai:dataLimitations"].some((l) => l.includes(`${deliveryA.keyId}, revoked at`))).toBe(true);
  });

  it("describes annotations from the counted per-annotator labels", () => {
    const { doc } = build(cleanAProvenance);
    expect(doc["rai:annotationsPerItem"]).toBe("3");
    expect(doc["rai:dataAnnotationProtocol"]).toContain("864 labels from 3 annotators: ann-1, ann-2, ann-3");
    // No contractor source: who ran the labeling is not in the ledger.
    expect(doc["rai:dataAnnotationPlatform"]).toEqual([NOT_RECORDED]);
  });

  it("records the lineage as the preprocessing protocol and the parent as prov:wasDerivedFrom", () => {
    const { doc } = build(cleanAProvenance);
    const steps = doc["rai:dataPreprocessingProtocol"];
    expect(steps).toHaveLength(2);
    expect(steps[0]).toMatch(
      /^1\. ingest → spam-vendor-a@\w+ at 2025-02-10T08:30:00\.000Z by antidote 0\.1\.0/,
    );
    expect(steps[1]).toMatch(/^2\. export → spam-vendor-a@\w+ at 2025-02-20T10:00:00\.000Z/);
    expect(steps[1]).toContain('"excludeQuarantined":true');
    expect(doc["prov:wasDerivedFrom"]).toEqual({
      "@id": `urn:antidote:dataset-version:${cleanAProvenance.version.parent ?? "?"}`,
    });
  });

  it("states quarantined counts in the biases and limitations", () => {
    const { doc } = build(cleanAProvenance);
    expect(doc["rai:dataBiases"]).toContain(
      "Composition by source (the data reflects these sources' selection): vendor-a (supplier) 288 samples, 100.0%.",
    );
    expect(doc["rai:dataBiases"].some((b) => b.startsWith("3 of 288 samples (1.0%) are quarantined"))).toBe(
      true,
    );
    expect(doc["rai:dataLimitations"][0]).toMatch(/^3 of 288 samples are quarantined/);
    expect(doc["rai:dataLimitations"]).toContain(
      "2 findings recorded against this version's samples and sources by Antidote scans.",
    );
  });

  it("says 'not recorded' for what a raw, unsigned, unexported version lacks instead of inventing it", () => {
    const { raw, doc } = build({ ...crawlProvenance, classes: undefined });
    expect(doc.distribution.map((d) => d["@id"])).toEqual([SAMPLES_FILE.path]);
    expect(doc.license).toBe(NOT_RECORDED);
    expect(doc.creator).toEqual({ "@type": "sc:Organization", name: NOT_RECORDED });
    expect(doc.citeAs).toContain(`dataset version ${crawlProvenance.version.version}`);
    expect(doc.citeAs).toContain(crawlProvenance.version.merkleRoot);
    expect(doc.citeAs).toContain(`Authors ${NOT_RECORDED}.`);
    expect(doc["prov:wasDerivedFrom"]).toBeUndefined();
    // One delivered label per sample, measured; no per-annotator labels.
    expect(doc["rai:annotationsPerItem"]).toBe(
      "1 (the delivered label; 200 of 200 samples labelled, no per-annotator labels recorded)",
    );
    expect(doc["rai:machineAnnotationTools"]).toEqual([
      "none recorded: no labelling transform or foundation-model source in the lineage",
    ]);
    expect(doc["rai:dataManipulationProtocol"]).toEqual([
      "None: this version holds the ingested deliveries as received.",
    ]);
    expect(doc["rai:dataAnnotationPlatform"]).toEqual([NOT_RECORDED]);
    expect(doc["rai:dataAnnotationProtocol"]).toBe(
      "Labels as delivered by the sources (classes not recorded); 200 of 200 samples carry a label; per-annotator labels not recorded.",
    );
    expect(doc["rai:dataCollectionType"]).toEqual(["Web Scraping"]);
    expect(doc["rai:dataLimitations"]).toContain(
      `Delivery ${deliveryC.deliveryId} from crawl was unsigned; its origin is asserted, not verified.`,
    );
    expect(doc["rai:dataLimitations"][0]).toMatch(/^7 of 200 samples are quarantined/);
    expect(doc.recordSet.map((r) => r["@id"])).toEqual(["samples"]);
    expect(danglingReferences(raw)).toEqual([]);

    const bare = build({
      ...crawlProvenance,
      sources: [],
      deliveries: [],
      lineage: [],
      quarantinedCount: 0,
      labelling: undefined,
    }).doc;
    expect(bare["rai:annotationsPerItem"]).toBe(NOT_RECORDED);
    expect(bare["rai:dataManipulationProtocol"]).toEqual([NOT_RECORDED]);
    expect(bare["rai:dataCollection"]).toBe(NOT_RECORDED);
    expect(bare["rai:dataCollectionTimeframe"]).toEqual([NOT_RECORDED]);
    expect(bare["rai:dataCollectionRawData"]).toBe(NOT_RECORDED);
    expect(bare["rai:dataPreprocessingProtocol"]).toEqual([NOT_RECORDED]);
    expect(bare["rai:dataLimitations"][0]).toBe(
      "None of the 200 samples was quarantined when this metadata was written.",
    );
  });

  it("spans the collection timeframe over all deliveries and names contractor sources as annotation platforms", () => {
    const labeler = { ...crawl, name: "label-co", kind: "contractor" as const, keys: [] };
    const relabel: DatasetProvenance["lineage"][number] = {
      kind: "relabel",
      tool: "antidote",
      toolVersion: "0.1.0",
      parameters: { annotators: ["a", "b"], method: "dawid-skene" },
      inputDigests: [crawlProvenance.version.merkleRoot],
      outputDigests: [sha256("relabelled members")],
      version: "spam-mixed@abcdef012345",
      at: "2025-02-15T00:00:00.000Z",
    };
    const mixed: DatasetProvenance = {
      ...crawlProvenance,
      version: { ...crawlProvenance.version, sampleCount: 500 },
      // Deliveries out of date order: the timeframe must still run first → last.
      sources: [
        { source: vendorA, sampleCount: 250 },
        { source: crawl, sampleCount: 150 },
        { source: labeler, sampleCount: 100 },
      ],
      deliveries: [deliveryC, deliveryA],
      lineage: [...crawlProvenance.lineage, relabel],
      annotations: { annotatedSamples: 4, labels: 10, annotators: ["a", "b"] },
    };
    const { doc } = build(mixed);
    expect(doc["rai:dataCollectionTimeframe"]).toEqual([deliveryA.at, deliveryC.at]);
    expect(doc["rai:dataCollectionType"]).toEqual([
      "Manual Human Curator",
      "Others (third-party supplier delivery)",
      "Web Scraping",
    ]);
    expect(doc["rai:dataAnnotationPlatform"]).toEqual([
      `label-co (labeling contractor; platform ${NOT_RECORDED})`,
    ]);
    expect(doc["rai:annotationsPerItem"]).toBe("2.50 (mean over 4 annotated samples)");
    expect(doc["rai:dataAnnotationProtocol"]).toContain("relabelled in version(s) spam-mixed@abcdef012345");
    expect(doc["rai:machineAnnotationTools"]).toEqual([
      "antidote 0.1.0 (relabel, dawid-skene) → spam-mixed@abcdef012345",
    ]);
    expect(doc["rai:dataManipulationProtocol"]).toEqual([
      'relabel → spam-mixed@abcdef012345 at 2025-02-15T00:00:00.000Z (annotators=["a","b"], method="dawid-skene")',
    ]);
    expect(doc["rai:dataBiases"][0]).toBe(
      "Composition by source (the data reflects these sources' selection): vendor-a (supplier) 250 samples, 50.0%; crawl (web) 150 samples, 30.0%; label-co (contractor) 100 samples, 20.0%.",
    );
  });

  it("is deterministic given a timestamp, and rejects an empty name", () => {
    const a = buildCroissant({ ...cleanAProvenance, name: "x" }, { timestamp: WHEN });
    const b = buildCroissant({ ...cleanAProvenance, name: "x" }, { timestamp: WHEN });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    // Different data, different metadata: the file digest is carried through.
    const other = buildCroissant(
      {
        ...cleanAProvenance,
        name: "x",
        files: [{ path: "spam-clean.parquet", sha256: sha256("other"), size: 1 }],
      },
      { timestamp: WHEN },
    );
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(a));
    expect(() => buildCroissant({ ...cleanAProvenance, name: " " })).toThrow(AntidoteError);
  });
});
