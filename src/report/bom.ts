// The AI-BOM of one model: a CycloneDX 1.6 document that names the model by its digest,
// the dataset versions it was trained on (with their sources, signed deliveries, lineage
// and quarantine counts), and the base models it was derived from. The CycloneDX library
// builds, sorts and serializes what it models; the parts of 1.6 it does not model yet
// (component `modelCard`, `pedigree`, `data`) are added to its JSON output, and the whole
// document is then checked against the 1.6 schema, so a BOM we hand out always validates.
// Nothing in it is a fixed value: each data component's SHA-256 is the version's Merkle root
// from the ledger, and the model card's task is read off the training data's labels.
import { Enums, Models, Serialize, Spec, Validation } from "@cyclonedx/cyclonedx-library";
import canonicalize from "canonicalize";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { DatasetVersion, DeliveryRecord, ModelRecord, Source, Transform } from "../ledger/types.js";
import { deliverySigning, describeSigning } from "./delivery-signing.js";

/** Everything the ledger knows about one dataset version, as the reports need it. */
export interface DatasetProvenance {
  version: DatasetVersion;
  sources: { source: Source; sampleCount: number }[];
  deliveries: DeliveryRecord[];
  /** Transforms from the root version down to this one (lineage), oldest first. */
  lineage: (Transform & { version: string; at: string })[];
  findingsCount: number;
  quarantinedCount: number;
  /** The distinct labels of the members, sorted (from the ledger: when at most MAX_CLASSES). */
  classes?: string[];
  /** Files of an exported copy, when there is one. */
  files?: { path: string; sha256: string; size: number }[];
  /** Per-annotator labels among the members (`SampleRecord.annotations`), when they were counted. */
  annotations?: { annotatedSamples: number; labels: number; annotators: string[] };
  /** Members that carry a label, and how many distinct labels, when they were counted. */
  labelling?: { labelled: number; distinct: number };
}

export interface ModelBomInput {
  model: ModelRecord;
  datasets: DatasetProvenance[];
  /** The base-model chain, nearest first (each may itself have been registered with its datasets). */
  baseModels: ModelRecord[];
  tool: { name: string; version: string };
  /** Audit verdicts or scan summaries to surface in the model card's considerations. */
  findings?: { kind: string; subjectId: string; score: number; check: string }[];
}

export interface ModelBomOptions {
  /** `urn:uuid:…`; a fresh random one by default. */
  serialNumber?: string;
  /** Default: now. */
  timestamp?: Date;
}

export { deliverySigning, describeSigning, type DeliverySigning } from "./delivery-signing.js";

// Parts of CycloneDX 1.6 the library (v10) does not model, shaped as the 1.6 JSON schema has them.
type ComponentJson = Serialize.JSON.Types.Normalized.Component & {
  modelCard?: ModelCardJson;
  pedigree?: { ancestors: ComponentJson[] };
  data?: ComponentDataJson[];
  components?: ComponentJson[];
};
interface ModelCardJson {
  modelParameters: { task?: string; datasets?: { ref: string }[] };
  considerations?: { technicalLimitations: string[] };
  properties?: { name: string; value: string }[];
}
interface ComponentDataJson {
  type: "dataset";
  name: string;
  governance?: { custodians: { organization: { name: string } }[] };
}
type BomJson = Serialize.JSON.Types.Normalized.Bom & {
  metadata: { component: ComponentJson };
  components?: ComponentJson[];
};

const SPEC = Spec.Spec1dot6;
const NORMALIZE = { sortLists: true };
const SHA256 = Enums.HashAlgorithm["SHA-256"];
const DIGEST = /^(?:sha256:)?([0-9a-f]{64})$/i;
const SHA256_HEX = /^[0-9a-f]{64}$/i;
const SERIAL_NUMBER = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Build the model's AI-BOM (CycloneDX 1.6 JSON), validated against the 1.6 schema. */
export async function buildModelBom(input: ModelBomInput, options: ModelBomOptions = {}): Promise<object> {
  const datasets = indexDatasets(input);
  checkBaseChain(input.model, input.baseModels);

  const serialNumber = options.serialNumber ?? `urn:uuid:${randomUUID()}`;
  // The serializer would silently leave a malformed serial number out.
  if (!SERIAL_NUMBER.test(serialNumber))
    throw new AntidoteError(
      "USAGE",
      `serial number "${serialNumber}" is not a urn:uuid (lowercase hex, e.g. urn:uuid:${randomUUID()}).`,
    );
  const factory = new Serialize.JSON.Normalize.Factory(SPEC);
  const bom = new Models.Bom({ serialNumber });
  bom.metadata.timestamp = options.timestamp ?? new Date();
  bom.metadata.tools.components.add(
    new Models.Component(Enums.ComponentType.Application, input.tool.name, { version: input.tool.version }),
  );
  const model = modelComponent(input.model);
  bom.metadata.component = model;
  const dataComponents = new Map<string, Models.Component>();
  for (const [version, dataset] of datasets) {
    const component = dataComponent(dataset);
    dataComponents.set(version, component);
    bom.components.add(component);
  }
  // The library links dependencies by BomRef object, not by value.
  for (const version of input.model.trainedOn) {
    const component = dataComponents.get(version);
    if (component !== undefined) model.dependencies.add(component.bomRef);
  }

  const json = JSON.parse(new Serialize.JsonSerializer(factory).serialize(bom, NORMALIZE)) as BomJson;
  const subject = json.metadata.component;
  subject.modelCard = modelCard(input.model, datasets, input.findings ?? []);
  if (input.baseModels.length > 0) {
    const ancestors = input.baseModels.map((base) => {
      const normalized = factory.makeForComponent().normalize(modelComponent(base), NORMALIZE);
      if (normalized === undefined)
        throw new AntidoteError("INTERNAL", `base model ${base.digest} did not serialize.`);
      const ancestor: ComponentJson = normalized;
      ancestor.modelCard = modelCard(base, datasets, []);
      return ancestor;
    });
    subject.pedigree = { ancestors };
    // A base model's own training data is part of what this model inherits.
    json.dependencies ??= [];
    for (const base of input.baseModels) {
      const dependsOn = base.trainedOn.filter((v) => datasets.has(v)).map(dataRef);
      json.dependencies.push(
        dependsOn.length > 0 ? { ref: modelRef(base), dependsOn } : { ref: modelRef(base) },
      );
    }
    json.dependencies.sort((a, b) => compare(a.ref, b.ref));
  }
  for (const component of json.components ?? []) {
    const dataset = datasets.get(component.version ?? "");
    if (dataset !== undefined) addDataParts(component, dataset, datasets);
  }

  await validateCycloneDx(JSON.stringify(json));
  checkReferences(json);
  return json;
}

let validator: Validation.JsonStrictValidator | undefined;

/**
 * Check a CycloneDX document against the 1.6 JSON schema (strict: no unknown properties).
 * A failure is ours, not the user's (we built the document), so it is INTERNAL.
 */
export async function validateCycloneDx(json: string): Promise<void> {
  validator ??= new Validation.JsonStrictValidator(Spec.Version.v1dot6);
  let errors: unknown;
  try {
    errors = await validator.validate(json);
  } catch (e) {
    throw new AntidoteError("INTERNAL", `CycloneDX 1.6 validation could not run: ${String(e)}`, { cause: e });
  }
  if (errors === null) return;
  throw new AntidoteError(
    "INTERNAL",
    `the AI-BOM does not validate against the CycloneDX 1.6 JSON schema: ${describeSchemaErrors(errors)}`,
    { cause: errors },
  );
}

const ajvErrors = z.array(
  z.object({
    instancePath: z.string(),
    message: z.string().optional(),
    params: z.record(z.string(), z.unknown()),
  }),
);

function describeSchemaErrors(errors: unknown): string {
  const parsed = ajvErrors.safeParse(errors);
  if (!parsed.success) return JSON.stringify(errors);
  const shown = parsed.data.slice(0, 5).map((e) => {
    const extra = e.params.additionalProperty;
    const detail = typeof extra === "string" ? ` ("${extra}")` : "";
    return `${e.instancePath === "" ? "/" : e.instancePath} ${e.message ?? "is invalid"}${detail}`;
  });
  const more = parsed.data.length > shown.length ? `; and ${parsed.data.length - shown.length} more` : "";
  return shown.join("; ") + more;
}

function indexDatasets(input: ModelBomInput): Map<string, DatasetProvenance> {
  const datasets = new Map<string, DatasetProvenance>();
  for (const dataset of input.datasets) {
    if (datasets.has(dataset.version.version))
      throw new AntidoteError(
        "INTERNAL",
        `buildModelBom: dataset version ${dataset.version.version} is given twice.`,
      );
    datasets.set(dataset.version.version, dataset);
  }
  for (const version of input.model.trainedOn)
    if (!datasets.has(version))
      throw new AntidoteError(
        "INTERNAL",
        `buildModelBom: model ${input.model.digest} was trained on ${version}, but no provenance was given for it.`,
      );
  return datasets;
}

// The chain must be the one the ledger recorded: a BOM whose pedigree skips or reorders a
// base model would misstate where the weights came from. The last base model may itself
// name a base that was never registered; that digest is kept as a property.
function checkBaseChain(model: ModelRecord, baseModels: readonly ModelRecord[]): void {
  const chain = [model, ...baseModels];
  for (const record of chain)
    if (!DIGEST.test(record.digest))
      throw new AntidoteError(
        "INTERNAL",
        `model ${record.name}: digest "${record.digest}" is not a SHA-256.`,
      );
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i];
    const parent = chain[i + 1];
    if (child === undefined || parent === undefined) continue;
    if (child.baseModel !== parent.digest)
      throw new AntidoteError(
        "INTERNAL",
        `buildModelBom: model ${child.digest} has base model ${child.baseModel ?? "none"}, but the chain lists ${parent.digest} next.`,
      );
  }
  const seen = new Set<string>();
  for (const record of chain) {
    if (seen.has(hexDigest(record.digest)))
      throw new AntidoteError(
        "INTERNAL",
        `buildModelBom: model ${record.digest} appears twice in its own base-model chain.`,
      );
    seen.add(hexDigest(record.digest));
  }
}

function hexDigest(digest: string): string {
  return (DIGEST.exec(digest)?.[1] ?? digest).toLowerCase();
}

function modelRef(model: ModelRecord): string {
  return `model:${hexDigest(model.digest)}`;
}

function dataRef(version: string): string {
  return `data:${version}`;
}

function modelComponent(model: ModelRecord): Models.Component {
  const component = new Models.Component(Enums.ComponentType.MachineLearningModel, model.name, {
    bomRef: modelRef(model),
    description: `${model.format} model ${model.name}, registered ${model.registeredAt}.`,
  });
  component.hashes.set(SHA256, hexDigest(model.digest));
  addProperty(component, "antidote:format", model.format);
  addProperty(component, "antidote:registered-at", model.registeredAt);
  if (model.baseModel !== null) addProperty(component, "antidote:base-model", hexDigest(model.baseModel));
  for (const version of model.trainedOn) addProperty(component, "antidote:trained-on", version);
  return component;
}

function dataComponent(dataset: DatasetProvenance): Models.Component {
  const { version } = dataset;
  const component = new Models.Component(Enums.ComponentType.Data, version.name, {
    bomRef: dataRef(version.version),
    version: version.version,
    description: `Dataset version ${version.version} of ${version.name}: ${version.sampleCount} samples from ${plural(dataset.sources.length, "source")}, ${dataset.quarantinedCount} quarantined.`,
  });
  // The data's identity is the set of its samples: the SHA-256 Merkle root over their sorted
  // digests, as the ledger recorded it (files of an export are components with their own).
  if (!SHA256_HEX.test(version.merkleRoot))
    throw new AntidoteError(
      "INTERNAL",
      `buildModelBom: dataset version ${version.version} has Merkle root "${version.merkleRoot}", which is not a SHA-256.`,
    );
  component.hashes.set(SHA256, version.merkleRoot.toLowerCase());
  addProperty(component, "antidote:merkle-root", version.merkleRoot);
  addProperty(component, "antidote:sample-count", String(version.sampleCount));
  addProperty(component, "antidote:created-at", version.createdAt);
  addProperty(component, "antidote:findings-count", String(dataset.findingsCount));
  addProperty(component, "antidote:quarantined-count", String(dataset.quarantinedCount));
  if (version.parent !== null) addProperty(component, "antidote:parent", version.parent);
  if (dataset.classes !== undefined)
    addProperty(component, "antidote:classes", JSON.stringify(dataset.classes));

  const sources = dataset.sources.map((s) => s.source);
  for (const { source, sampleCount } of dataset.sources) {
    const at = `antidote:source:${source.name}`;
    addProperty(component, `${at}:kind`, source.kind);
    addProperty(component, `${at}:sample-count`, String(sampleCount));
    addProperty(component, `${at}:trust`, String(source.trust));
    addProperty(component, `${at}:signature-required`, String(source.requireSignature));
    for (const key of source.keys)
      addProperty(
        component,
        `${at}:key:${key.keyId}`,
        key.revokedAt === null ? `active since ${key.addedAt}` : `revoked at ${key.revokedAt}`,
      );
  }
  for (const delivery of dataset.deliveries) {
    const at = `antidote:delivery:${delivery.deliveryId}`;
    addProperty(component, `${at}:source`, delivery.source);
    addProperty(component, `${at}:at`, delivery.at);
    addProperty(component, `${at}:sample-count`, String(delivery.sampleCount));
    addProperty(component, `${at}:manifest-digest`, delivery.manifestDigest);
    addProperty(component, `${at}:merkle-root`, delivery.merkleRoot);
    addProperty(component, `${at}:dataset-version`, delivery.datasetVersion);
    addProperty(component, `${at}:signature`, describeSigning(deliverySigning(delivery, sources)));
  }
  // Zero-padded step numbers keep the lineage in order when the properties are sorted by name.
  const width = String(dataset.lineage.length).length;
  dataset.lineage.forEach((step, i) => {
    addProperty(
      component,
      `antidote:lineage:${String(i + 1).padStart(width, "0")}`,
      describeTransformJson(step),
    );
  });

  for (const file of dataset.files ?? []) {
    // The library drops a hash it finds malformed without a word; a file without its
    // digest would be a silent hole in the BOM, so refuse instead.
    if (!SHA256_HEX.test(file.sha256))
      throw new AntidoteError(
        "INTERNAL",
        `buildModelBom: file ${file.path} of ${version.version} has sha256 "${file.sha256}", which is not a SHA-256.`,
      );
    // An explicit bom-ref: without one the serializer invents a random one, and the BOM
    // would differ from run to run.
    const fileComponent = new Models.Component(Enums.ComponentType.File, file.path, {
      bomRef: `${dataRef(version.version)}:file:${file.path}`,
    });
    fileComponent.hashes.set(SHA256, file.sha256);
    addProperty(fileComponent, "antidote:size", String(file.size));
    component.components.add(fileComponent);
  }
  return component;
}

/** RFC 8785 JSON of one lineage step, so the property reads the same on every run. */
function describeTransformJson(step: Transform & { version: string; at: string }): string {
  const { version, at, kind, tool, toolVersion, parameters, inputDigests, outputDigests } = step;
  return (
    canonicalize({ version, at, kind, tool, toolVersion, parameters, inputDigests, outputDigests }) ?? ""
  );
}

function addDataParts(
  component: ComponentJson,
  dataset: DatasetProvenance,
  datasets: ReadonlyMap<string, DatasetProvenance>,
): void {
  const custodians = dataset.sources
    .map((s) => s.source.name)
    .sort(compare)
    .map((name) => ({ organization: { name } }));
  component.data = [
    {
      type: "dataset",
      name: dataset.version.name,
      ...(custodians.length > 0 ? { governance: { custodians } } : {}),
    },
  ];
  const ancestors = dataset.lineage
    .filter((step) => step.version !== dataset.version.version)
    .reverse()
    .map((step): ComponentJson => ({
      type: Enums.ComponentType.Data,
      // A lineage step knows its version id, not its name, unless that version is in the BOM too.
      name: datasets.get(step.version)?.version.name ?? step.version,
      version: step.version,
      properties: [{ name: "antidote:created-at", value: step.at }],
    }));
  if (ancestors.length > 0) component.pedigree = { ancestors };
}

/**
 * The model's task, as its training data shows it: "classification" when every sample of
 * every version it was trained on carries one of a finite set of labels. The ledger records
 * no task of its own, so anything else is left unstated, and the basis is said either way.
 */
export function taskFromTrainingData(
  model: ModelRecord,
  datasets: ReadonlyMap<string, DatasetProvenance>,
): { task?: string; basis: string } {
  const trainedOn = model.trainedOn.map((v) => datasets.get(v));
  if (trainedOn.length === 0) return { basis: "no training data recorded" };
  let samples = 0;
  let labelled = 0;
  const classes = new Set<string>();
  for (const dataset of trainedOn) {
    if (dataset?.labelling === undefined)
      return { basis: "the labels of its training data were not counted" };
    samples += dataset.version.sampleCount;
    labelled += dataset.labelling.labelled;
    if (dataset.classes === undefined)
      return { basis: `its training data holds ${dataset.labelling.distinct} or more distinct labels` };
    for (const c of dataset.classes) classes.add(c);
  }
  const counted = `${labelled} of ${samples} training samples labelled, ${plural(classes.size, "distinct label")}`;
  return labelled === samples && samples > 0 && classes.size > 1
    ? { task: "classification", basis: `from the training data: ${counted}` }
    : { basis: `not classification by its training data: ${counted}` };
}

function modelCard(
  model: ModelRecord,
  datasets: ReadonlyMap<string, DatasetProvenance>,
  findings: NonNullable<ModelBomInput["findings"]>,
): ModelCardJson {
  const trainedOn = model.trainedOn.filter((v) => datasets.has(v));
  const { task, basis } = taskFromTrainingData(model, datasets);
  const card: ModelCardJson = { modelParameters: task !== undefined ? { task } : {} };
  card.properties = [{ name: "antidote:task-basis", value: basis }];
  if (trainedOn.length > 0) card.modelParameters.datasets = trainedOn.map((v) => ({ ref: dataRef(v) }));
  const ranked = [...findings].sort(
    (a, b) =>
      b.score - a.score ||
      compare(a.kind, b.kind) ||
      compare(a.subjectId, b.subjectId) ||
      compare(a.check, b.check),
  );
  const limitations = ranked.map((f) => `${f.kind} on ${f.subjectId}: score ${f.score} (${f.check})`);
  for (const version of trainedOn) {
    const dataset = datasets.get(version);
    if (dataset === undefined) continue;
    if (dataset.quarantinedCount > 0)
      limitations.push(
        `Training data ${version} holds ${dataset.quarantinedCount} quarantined sample(s) of ${dataset.version.sampleCount}.`,
      );
    if (dataset.findingsCount > 0)
      limitations.push(`Training data ${version} has ${plural(dataset.findingsCount, "finding")} recorded.`);
    const sources = dataset.sources.map((s) => s.source);
    for (const delivery of dataset.deliveries) {
      const signing = deliverySigning(delivery, sources);
      if (signing.state === "revoked" || signing.state === "unregistered")
        limitations.push(
          `Training data ${version}: delivery ${delivery.deliveryId} from ${delivery.source} was ${describeSigning(signing)}.`,
        );
    }
  }
  if (limitations.length > 0) card.considerations = { technicalLimitations: limitations };
  for (const f of ranked)
    card.properties.push({
      name: "antidote:finding",
      value: canonicalize({ kind: f.kind, subjectId: f.subjectId, score: f.score, check: f.check }) ?? "",
    });
  return card;
}

// JSON schema cannot say that a `ref` names an existing `bom-ref`; a dangling one would
// silently break the model → data links, so check them here.
function checkReferences(json: BomJson): void {
  const defined = new Set<string>();
  const refs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== "object" || node === null) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "bom-ref" && typeof value === "string") {
        if (defined.has(value))
          throw new AntidoteError("INTERNAL", `AI-BOM: bom-ref "${value}" is defined twice.`);
        defined.add(value);
      } else if ((key === "ref" && typeof value === "string") || key === "dependsOn") {
        refs.push(...(Array.isArray(value) ? value.map(String) : [String(value)]));
      } else walk(value);
    }
  };
  walk(json);
  const dangling = refs.filter((ref) => !defined.has(ref));
  if (dangling.length > 0)
    throw new AntidoteError(
      "INTERNAL",
      `AI-BOM: reference(s) to missing bom-ref: ${[...new Set(dangling)].join(", ")}.`,
    );
}

function addProperty(component: Models.Component, name: string, value: string): void {
  component.properties.add(new Models.Property(name, value));
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
