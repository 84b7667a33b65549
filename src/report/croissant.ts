// Croissant 1.0 metadata (JSON-LD) for one dataset version, in the shape the official
// validator (mlcroissant) accepts: every file it names is a FileObject with its SHA-256
// (or a FileSet when an export is many files), every field reads from a file or carries
// its data inline, and creator, license and citation are stated — as given, or as "not
// recorded" when nobody said. The per-sample provenance (digest, source, delivery, label,
// quarantine) is a record set of its own, read from a CSV written beside the metadata (or
// carried inline), so a user of the data can trace any record back to the delivery it came
// in. The Responsible-AI fields come from the ledger (croissant-rai.ts); the ledger-level
// entry points are in ledger-documents.ts.
import { AntidoteError } from "../errors.js";
import type { DatasetProvenance } from "./bom.js";
import { NOT_RECORDED, plural, raiFields } from "./croissant-rai.js";

export { NOT_RECORDED } from "./croissant-rai.js";

/** One sample as the per-sample provenance record set describes it. */
export interface SampleProvenanceRow {
  digest: string;
  id: string;
  label: string | null;
  source: string | null;
  /** The delivery the sample came in; null when no recorded delivery holds it. */
  delivery: string | null;
  quarantined: boolean;
}

/** A file the metadata describes: its name relative to the metadata file, digest and size. */
export interface CroissantFile {
  path: string;
  sha256: string;
  size: number;
}

export interface CroissantInput extends DatasetProvenance {
  name: string;
  description?: string;
  /** A license URL or SPDX id; "not recorded" when not given. */
  license?: string;
  /** Who made the dataset (an organization or person); "not recorded" when not given. */
  creator?: string;
  /** How to cite it; by default a citation of the version id and Merkle root. */
  citeAs?: string;
  url?: string;
  /**
   * The per-sample provenance: a CSV file (`SAMPLE_COLUMNS`, written beside the metadata),
   * or the rows themselves, carried inline in the record set.
   */
  samples?: { file: CroissantFile } | { rows: readonly SampleProvenanceRow[] };
}

export interface CroissantOptions {
  /** datePublished; default now. */
  timestamp?: Date;
}

export const CROISSANT_1_0 = "http://mlcommons.org/croissant/1.0";
export const CROISSANT_RAI_1_0 = "http://mlcommons.org/croissant/RAI/1.0";

/** Columns of the per-sample provenance CSV, in order. */
export const SAMPLE_COLUMNS = ["digest", "id", "label", "source", "delivery", "quarantined"] as const;

/** More exported files than this are described as FileSets (one per format), not one by one. */
export const MAX_FILE_OBJECTS = 64;

/** The Croissant 1.0 context as mlcroissant writes it (rdf.py `make_context`), plus PROV. */
export const CROISSANT_CONTEXT = {
  "@language": "en",
  "@vocab": "https://schema.org/",
  sc: "https://schema.org/",
  cr: "http://mlcommons.org/croissant/",
  rai: "http://mlcommons.org/croissant/RAI/",
  dct: "http://purl.org/dc/terms/",
  prov: "http://www.w3.org/ns/prov#",
  citeAs: "cr:citeAs",
  column: "cr:column",
  conformsTo: "dct:conformsTo",
  data: { "@id": "cr:data", "@type": "@json" },
  dataType: { "@id": "cr:dataType", "@type": "@vocab" },
  equivalentProperty: "cr:equivalentProperty",
  examples: { "@id": "cr:examples", "@type": "@json" },
  extract: "cr:extract",
  field: "cr:field",
  fileProperty: "cr:fileProperty",
  fileObject: "cr:fileObject",
  fileSet: "cr:fileSet",
  format: "cr:format",
  includes: "cr:includes",
  isLiveDataset: "cr:isLiveDataset",
  jsonPath: "cr:jsonPath",
  key: "cr:key",
  md5: "cr:md5",
  parentField: "cr:parentField",
  path: "cr:path",
  recordSet: "cr:recordSet",
  references: "cr:references",
  regex: "cr:regex",
  repeated: "cr:repeated",
  replace: "cr:replace",
  samplingRate: "cr:samplingRate",
  separator: "cr:separator",
  source: "cr:source",
  subField: "cr:subField",
  transform: "cr:transform",
} as const;

// Formats whose export writes one table with `id`, `label` and `source` columns.
const TABULAR = /\.(jsonl|ndjson|csv|tsv|parquet)(\.gz)?$/i;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Build Croissant 1.0 JSON-LD for one dataset version. */
export function buildCroissant(input: CroissantInput, options: CroissantOptions = {}): object {
  const { version } = input;
  if (input.name.trim() === "")
    throw new AntidoteError("USAGE", `croissant: dataset version ${version.version} needs a non-empty name.`);
  const files = input.files ?? [];
  const samplesFile = input.samples !== undefined && "file" in input.samples ? input.samples.file : undefined;
  for (const file of samplesFile === undefined ? files : [...files, samplesFile])
    if (!SHA256_HEX.test(file.sha256))
      throw new AntidoteError(
        "INTERNAL",
        `croissant: file ${file.path} of ${version.version} has sha256 "${file.sha256}", which is not a SHA-256.`,
      );
  const table =
    files.length === 1 && files[0] !== undefined && TABULAR.test(files[0].path) ? files[0] : undefined;

  return {
    "@context": CROISSANT_CONTEXT,
    "@type": "sc:Dataset",
    "@id": versionUrn(version.version),
    name: input.name,
    description: input.description ?? defaultDescription(input),
    conformsTo: [CROISSANT_1_0, CROISSANT_RAI_1_0],
    creator: { "@type": "sc:Organization", name: input.creator ?? NOT_RECORDED },
    license: input.license ?? NOT_RECORDED,
    citeAs: input.citeAs ?? defaultCitation(input),
    ...(input.url !== undefined ? { url: input.url } : {}),
    // Antidote's version id is content-addressed, not semantic: mlcroissant warns that it is
    // not MAJOR.MINOR.PATCH, and that is the truth about it.
    version: version.version,
    dateCreated: version.createdAt,
    datePublished: (options.timestamp ?? new Date()).toISOString(),
    identifier: [
      { "@type": "sc:PropertyValue", propertyID: "antidote:dataset-version", value: version.version },
      { "@type": "sc:PropertyValue", propertyID: "antidote:merkle-root", value: version.merkleRoot },
    ],
    ...(version.parent !== null ? { "prov:wasDerivedFrom": { "@id": versionUrn(version.parent) } } : {}),
    ...(input.sources.length > 0
      ? {
          contributor: input.sources.map(({ source }) => ({
            "@type": "sc:Organization",
            name: source.name,
            description: `Antidote ${source.kind} source`,
          })),
        }
      : {}),
    ...raiFields(input),
    distribution: [...(samplesFile !== undefined ? [fileObject(samplesFile)] : []), ...distribution(files)],
    recordSet: [
      ...(input.samples !== undefined ? [samplesRecordSet(input, input.samples)] : []),
      ...(table !== undefined ? [recordsRecordSet(input, table.path)] : []),
      ...(input.classes !== undefined ? [classesRecordSet(input.classes)] : []),
    ],
  };
}

/** The per-sample provenance rows as CSV (RFC 4180), `SAMPLE_COLUMNS` as the header. */
export function sampleProvenanceCsvLine(row: SampleProvenanceRow): string {
  return (
    [row.digest, row.id, row.label ?? "", row.source ?? "", row.delivery ?? "", String(row.quarantined)]
      .map(csvCell)
      .join(",") + "\r\n"
  );
}

export const SAMPLE_PROVENANCE_HEADER = SAMPLE_COLUMNS.join(",") + "\r\n";

function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function defaultDescription(input: CroissantInput): string {
  const { version } = input;
  const sources = input.sources.map((s) => s.source.name).join(", ");
  return `Dataset version ${version.version} of ${version.name}: ${version.sampleCount} samples from ${input.sources.length === 0 ? "no recorded source" : sources}, as recorded in the Antidote provenance ledger.`;
}

function defaultCitation(input: CroissantInput): string {
  const { version } = input;
  return `${input.name}, dataset version ${version.version} (${version.sampleCount} samples, Merkle root ${version.merkleRoot}), created ${version.createdAt}; recorded in an Antidote provenance ledger. Authors ${NOT_RECORDED}.`;
}

function fileObject(file: CroissantFile): object {
  return {
    "@type": "cr:FileObject",
    "@id": file.path,
    name: file.path,
    contentUrl: file.path,
    contentSize: `${file.size} B`,
    encodingFormat: encodingFormat(file.path),
    sha256: file.sha256,
  };
}

// A few files are listed one by one with their digests; many (an image folder) become one
// FileSet per format, since a FileObject per image would make the metadata as long as the data.
function distribution(files: readonly CroissantFile[]): object[] {
  if (files.length <= MAX_FILE_OBJECTS) return files.map(fileObject);
  const byFormat = new Map<string, { extension: string; count: number; bytes: number }>();
  for (const file of files) {
    const extension = /\.[A-Za-z0-9]+$/.exec(file.path)?.[0].toLowerCase() ?? "";
    const format = encodingFormat(file.path);
    const entry = byFormat.get(format) ?? { extension, count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += file.size;
    byFormat.set(format, entry);
  }
  return [...byFormat].map(([format, { extension, count, bytes }]) => ({
    "@type": "cr:FileSet",
    "@id": `files${extension === "" ? "" : `-${extension.slice(1)}`}`,
    name: `files${extension}`,
    description: `${count} exported files, ${bytes} B in all; each file's SHA-256 is in the export's signed statement.`,
    encodingFormat: format,
    includes: `**/*${extension}`,
  }));
}

function field(
  set: string,
  name: string,
  dataType: string | string[],
  description: string,
  from?: object,
): object {
  return {
    "@type": "cr:Field",
    "@id": `${set}/${name}`,
    name,
    description,
    dataType,
    ...(from !== undefined ? { source: from } : {}),
  };
}

function samplesRecordSet(input: CroissantInput, samples: NonNullable<CroissantInput["samples"]>): object {
  const inFile = "file" in samples ? samples.file.path : undefined;
  const from = (column: string): object | undefined =>
    inFile === undefined ? undefined : { fileObject: { "@id": inFile }, extract: { column } };
  const sourceNames = input.sources.map((s) => s.source.name).join(", ");
  const deliveries = input.deliveries.map((d) => d.deliveryId).join(", ");
  const fields = [
    field(
      "samples",
      "digest",
      "sc:Text",
      "Hex SHA-256 over the sample's canonical content bytes (text as NFC UTF-8, images as shape and 8-bit pixels, features as float32). The version's Merkle root is taken over the sorted digests.",
      from("digest"),
    ),
    field(
      "samples",
      "id",
      "sc:Text",
      "The dataset's own id for the sample, stable across re-reads of the same file.",
      from("id"),
    ),
    field(
      "samples",
      "label",
      ["sc:Text", "cr:Label"],
      input.classes === undefined
        ? `The label as recorded in the ledger (empty when the sample has none); class list ${NOT_RECORDED}.`
        : `The label as recorded in the ledger (empty when the sample has none), one of: ${input.classes.join(", ")}.`,
      from("label"),
    ),
    field(
      "samples",
      "source",
      "sc:Text",
      `The registered source the sample came from (${sourceNames === "" ? NOT_RECORDED : sourceNames}).`,
      from("source"),
    ),
    field(
      "samples",
      "delivery",
      "sc:Text",
      `The signed delivery the sample arrived in (${deliveries === "" ? NOT_RECORDED : deliveries}); empty when no recorded delivery holds it.`,
      from("delivery"),
    ),
    field(
      "samples",
      "quarantined",
      "sc:Boolean",
      "Whether the sample, or its source, is quarantined in the ledger when this metadata was written.",
      from("quarantined"),
    ),
  ];
  return {
    "@type": "cr:RecordSet",
    "@id": "samples",
    name: "samples",
    description: `Per-sample provenance of ${input.version.version}: one record per member (${input.version.sampleCount}), from the Antidote ledger.`,
    key: { "@id": "samples/digest" },
    field: fields,
    ...("rows" in samples
      ? {
          data: samples.rows.map((row) => ({
            "samples/digest": row.digest,
            "samples/id": row.id,
            "samples/label": row.label ?? "",
            "samples/source": row.source ?? "",
            "samples/delivery": row.delivery ?? "",
            "samples/quarantined": row.quarantined,
          })),
        }
      : {}),
  };
}

// The exported table itself: `id`, `label` and `source` are columns every tabular export writes.
function recordsRecordSet(input: CroissantInput, table: string): object {
  const from = (column: string): object => ({ fileObject: { "@id": table }, extract: { column } });
  return {
    "@type": "cr:RecordSet",
    "@id": "records",
    name: "records",
    description: `The records of the exported file ${table}.`,
    field: [
      field("records", "id", "sc:Text", "The sample's id (joins samples/id).", from("id")),
      field(
        "records",
        "label",
        ["sc:Text", "cr:Label"],
        // No `references` to the class list: a Parquet export stores a class index where
        // JSONL and CSV store the name, so the values are not always the enumeration's keys.
        input.classes === undefined
          ? `The class; class list ${NOT_RECORDED}.`
          : `The class, one of: ${input.classes.join(", ")}, as the file stores it (a Parquet export may store an index into its own class list instead).`,
        from("label"),
      ),
      field("records", "source", "sc:Text", "The registered source the sample came from.", from("source")),
    ],
  };
}

function classesRecordSet(classes: readonly string[]): object {
  return {
    "@type": "cr:RecordSet",
    "@id": "classes",
    name: "classes",
    description: `The ${plural(classes.length, "class", "classes")} the members' labels take, as recorded in the ledger.`,
    dataType: "sc:Enumeration",
    key: { "@id": "classes/name" },
    field: [
      field("classes", "name", "sc:Text", "The class name."),
      field(
        "classes",
        "index",
        "sc:Integer",
        "Its position in this list, sorted by name (not necessarily the index a file stores).",
      ),
    ],
    data: classes.map((name, index) => ({ "classes/name": name, "classes/index": index })),
  };
}

function encodingFormat(path: string): string {
  const lower = path.toLowerCase();
  if (lower.endsWith(".gz")) return "application/gzip";
  if (lower.endsWith(".parquet")) return "application/x-parquet";
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "application/jsonlines";
  if (lower.endsWith(".csv")) return "text/csv";
  if (lower.endsWith(".tsv")) return "text/tab-separated-values";
  if (lower.endsWith(".png")) return "image/png";
  if (lower.endsWith(".jpg") || lower.endsWith(".jpeg")) return "image/jpeg";
  if (lower.endsWith(".json")) return "application/json";
  return "application/octet-stream";
}

// Version ids are `slug@hex`; anything outside RFC 8141's NSS characters is percent-encoded.
function versionUrn(version: string): string {
  return `urn:antidote:dataset-version:${version.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/g, (c) => encodeURIComponent(c))}`;
}
