// Gathers, from the ledger, what the AI-BOM and the Croissant record say about a model or
// a dataset version: sources and deliveries behind it, its lineage back to the ingest,
// findings and quarantines, the labels its members carry, and per sample the delivery it
// came in. The BOM and Croissant builders stay pure functions of this.
import type { DatasetVersion, LedgerReader, ModelRecord, Source } from "../ledger/types.js";
import { AntidoteError } from "../errors.js";
import { unknownVersion } from "../provenance/export.js";
import { VERSION } from "../version.js";
import type { DatasetProvenance, ModelBomInput } from "./bom.js";
import type { SampleProvenanceRow } from "./croissant.js";
import { resolveModel } from "../provenance/model.js";

/** Up to this many distinct labels are listed as the version's classes. */
export const MAX_CLASSES = 1000;

export async function datasetProvenance(ledger: LedgerReader, versionId: string): Promise<DatasetProvenance> {
  const version = await ledger.getDatasetVersion(versionId);
  if (version === undefined) throw unknownVersion(versionId, await ledger.listDatasetVersions());

  const lineage: DatasetProvenance["lineage"] = [];
  const chain: DatasetVersion[] = [];
  for (let v: DatasetVersion | undefined = version; v !== undefined;) {
    chain.unshift(v);
    if (chain.length > 10_000)
      throw new AntidoteError("LEDGER_TAMPERED", `dataset version ${versionId}: parent chain loops.`);
    v = v.parent === null ? undefined : await ledger.getDatasetVersion(v.parent);
  }
  for (const v of chain) lineage.push({ ...v.transform, version: v.version, at: v.createdAt });

  const perSource = new Map<string, number>();
  const members = new Set<string>();
  let quarantinedCount = 0;
  let annotatedSamples = 0;
  let labels = 0;
  const annotators = new Set<string>();
  let labelled = 0;
  const distinct = new Set<string>();
  for await (const m of ledger.datasetMembers(version.version)) {
    members.add(m.digest);
    if (m.label !== null) {
      labelled++;
      if (distinct.size <= MAX_CLASSES) distinct.add(m.label);
    }
    if (m.quarantined) quarantinedCount++;
    if (m.annotations.length > 0) annotatedSamples++;
    labels += m.annotations.length;
    for (const a of m.annotations) annotators.add(a.annotator);
    if (m.source !== null) perSource.set(m.source, (perSource.get(m.source) ?? 0) + 1);
  }
  const sources: { source: Source; sampleCount: number }[] = [];
  for (const [name, sampleCount] of perSource) {
    const source = await ledger.getSource(name);
    if (source !== undefined) sources.push({ source, sampleCount });
  }
  const rootVersions = new Set(chain.map((v) => v.version));
  // The deliveries this version descends from: the ingests at the root of its lineage.
  const deliveries = (await ledger.listDeliveries()).filter((d) => rootVersions.has(d.datasetVersion));
  let findingsCount = 0;
  for await (const f of ledger.findings({ subjectType: "sample" }))
    if (members.has(f.subjectId)) findingsCount++;
  return {
    version,
    sources,
    deliveries,
    lineage,
    findingsCount,
    quarantinedCount,
    labelling: { labelled, distinct: distinct.size },
    ...(labelled > 0 && distinct.size <= MAX_CLASSES ? { classes: [...distinct].sort(compare) } : {}),
    ...(annotatedSamples > 0
      ? { annotations: { annotatedSamples, labels, annotators: [...annotators].sort() } }
      : {}),
  };
}

export async function modelBomInput(ledger: LedgerReader, digestOrPrefix: string): Promise<ModelBomInput> {
  const digest = await resolveModel(ledger, digestOrPrefix);
  const model = await ledger.getModel(digest);
  if (model === undefined) throw new AntidoteError("NOT_FOUND", `model ${digest} is not registered.`);
  const datasets = await Promise.all(model.trainedOn.map((v) => datasetProvenance(ledger, v)));
  const baseModels: ModelRecord[] = [];
  for (let base = model.baseModel; base !== null;) {
    const record = await ledger.getModel(base);
    if (record === undefined || baseModels.some((m) => m.digest === record.digest)) break;
    baseModels.push(record);
    base = record.baseModel;
  }
  const findings: NonNullable<ModelBomInput["findings"]> = [];
  for await (const f of ledger.findings({ subjectType: "model" }))
    if (f.subjectId === digest || baseModels.some((m) => m.digest === f.subjectId))
      findings.push({ kind: f.kind, subjectId: f.subjectId, score: f.score, check: f.check });
  return { model, datasets, baseModels, tool: { name: "antidote", version: VERSION }, findings };
}

/**
 * One row per member of the version: its digest, id, label, source, the delivery it came
 * in (the first recorded delivery at the root of its lineage that holds it) and whether it
 * is quarantined now. Streamed in the ledger's member order.
 */
export async function* sampleProvenanceRows(
  ledger: LedgerReader,
  provenance: DatasetProvenance,
): AsyncGenerator<SampleProvenanceRow> {
  const deliveryOf = new Map<string, string>();
  for (const delivery of provenance.deliveries)
    for await (const m of ledger.datasetMembers(delivery.datasetVersion))
      if (!deliveryOf.has(m.digest)) deliveryOf.set(m.digest, delivery.deliveryId);
  for await (const m of ledger.datasetMembers(provenance.version.version))
    yield {
      digest: m.digest,
      id: m.id,
      label: m.label,
      source: m.source,
      delivery: deliveryOf.get(m.digest) ?? null,
      quarantined: m.quarantined,
    };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
