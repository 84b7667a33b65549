// The closed-loop gate: deployed agents' telemetry becomes a candidate training set only
// through here. The attack this stops is the loop itself — a compromised agent that feeds the
// next training cycle trigger-carrying inputs or flipped feedback labels — so the gate admits
// less than everything it is offered, in four cuts, each counted in the result:
//
//   1. attestation: only batches the intake accepted, from sources of kind "agent" that are not
//      quarantined, signed by a key the agent still holds (a revoked key withdraws its batches),
//      attesting a model that is registered and not suspended;
//   2. findings: nothing from an agent or a batch under a finding (the monitors', a scan's, an
//      analyst's), nothing from a quarantined batch;
//   3. content: a record becomes a sample only when it carries its input and a feedback label;
//   4. the scan: the candidate set is scanned like any delivery, and what the scan flags stays out.
//
// Then one append records the lineage: per agent, a delivery of its admitted records (the batches
// it came from are its files, with their SHA-256), the samples, the scan's findings, and the new
// dataset version with exactly the admitted members — so `trace --source agent-17` lists what an
// agent's telemetry reached, and an export or a training run reads the version like any other.
import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { sweepStaleTemporaries } from "../data/atomic-output.js";
import { memoryDataset } from "../data/memory.js";
import { createWriter } from "../data/open.js";
import type { Sample } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { canonicalJson, recordDigest, sha256Hex } from "../ledger/chain.js";
import type {
  Finding,
  Ledger,
  LedgerEventInput,
  SampleRecord,
  TelemetryBatchRecord,
} from "../ledger/types.js";
import { merkleRoot } from "../provenance/merkle.js";
import { sha256File } from "../provenance/model.js";
import { storeDir } from "../provenance/store.js";
import { EVENT_BATCH, memberEvents, versionId } from "../provenance/versions.js";
import { scanDataset, scanFindings, type ScanOptions } from "../scan/scan.js";
import { VERSION } from "../version.js";
import { recordContent, type TelemetryRecord } from "./schema.js";
import { readTelemetryBatch } from "./store.js";
import { agentsBelowPolicy } from "../policy/enforce.js";

export const GATE_CHECK = "telemetry-gate";

export const gateOptionsSchema = z.object({
  /** Batches accepted at or after this time (ISO-8601). */
  since: z.string().datetime({ offset: true, message: "must be an ISO-8601 time" }),
  /** …and before this one (default: now). */
  until: z.string().datetime({ offset: true, message: "must be an ISO-8601 time" }).optional(),
  /** Only telemetry of this model (digest). */
  model: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "must be a model digest")
    .optional(),
  /** Name of the candidate dataset version (default "telemetry"). */
  name: z.string().min(1).max(200).default("telemetry"),
  /** Scan the candidate set and leave out what the scan flags (default true). */
  scan: z.boolean().default(true),
  /** Report what would be admitted without recording anything. */
  dryRun: z.boolean().default(false),
});
export type GateOptions = z.input<typeof gateOptionsSchema> & {
  /** Passed to the scan (e.g. `model`, `detectors`); the gate sets nothing else. */
  scanOptions?: Omit<ScanOptions, "ledger">;
  onProgress?: (phase: "batches" | "scan" | "record", done: number, total: number) => void;
};

/** Why a batch stayed out. */
export type BatchExclusion =
  | "agent-not-attested" // not an agent, unknown, or quarantined
  | "key-revoked"
  | "model-not-active" // unregistered or suspended
  | "agent-under-finding"
  | "batch-under-finding"
  | "batch-quarantined";

export interface GateResult {
  /** The admitted version, or null on a dry run or when nothing was admitted. */
  version: string | null;
  batches: { considered: number; admitted: number; excluded: Record<BatchExclusion, number> };
  records: {
    /** In admitted batches. */
    considered: number;
    withoutInput: number;
    withoutFeedback: number;
    scanFlagged: number;
    admitted: number;
  };
  agents: { agent: string; batches: number; records: number; admitted: number; deliveryId: string | null }[];
  /** Agents with batches left out, and why (first reason met). */
  excludedAgents: { agent: string; reason: BatchExclusion; batches: number }[];
  scan: { flagged: number; findings: number } | null;
}

/** Build (and, unless dry-run, record) a candidate training version from attested telemetry. */
export async function buildTrainingCandidate(ledger: Ledger, options: GateOptions): Promise<GateResult> {
  const o = parseOptions(gateOptionsSchema, options, "telemetry export");
  const until = o.until ?? new Date().toISOString();
  const batches = await acceptedBatches(ledger, o.since, until, o.model);
  const verdicts = await judgeBatches(ledger, batches);
  const admitted = batches.filter((b) => verdicts.get(b.batchId) === null);

  // 3. content: records with an input and a feedback label become samples, per agent.
  const result = resultWithExclusions(batches.length, admitted.length, verdicts, batches);
  const perAgent = new Map<string, { samples: Sample[]; batches: TelemetryBatchRecord[] }>();
  let classes: string[] | null = null;
  for (const [i, batch] of admitted.entries()) {
    const { statement, records } = await readTelemetryBatch(ledger, batch.batchId);
    classes ??= statement.classes;
    if (canonicalJson(classes) !== canonicalJson(statement.classes))
      throw new AntidoteError(
        "USAGE",
        `telemetry export: batch ${batch.batchId} has other classes than earlier batches; export one model's telemetry at a time (--model).`,
      );
    const entry = perAgent.get(batch.agent) ?? { samples: [], batches: [] };
    perAgent.set(batch.agent, entry);
    entry.batches.push(batch);
    for (const r of records) {
      result.records.considered++;
      const { text, image, features } = r.input;
      if (text === undefined && image === undefined && features === undefined) {
        result.records.withoutInput++;
        continue;
      }
      if (r.feedback === undefined) {
        result.records.withoutFeedback++;
        continue;
      }
      entry.samples.push(toSample(batch, r, statement.classes));
    }
    options.onProgress?.("batches", i + 1, admitted.length);
  }

  // 4. the scan, over every agent's candidate samples together.
  const all = [...perAgent.values()].flatMap((e) => e.samples);
  let flagged = new Set<string>();
  let findings: Finding[] = [];
  if (o.scan && all.length > 0) {
    options.onProgress?.("scan", 0, all.length);
    const report = await scanDataset(
      memoryDataset(all, { classes: classes ?? [] }),
      options.scanOptions ?? {},
    );
    findings = scanFindings(report);
    flagged = new Set(findings.filter((f) => f.subjectType === "sample").map((f) => f.subjectId));
    result.scan = { flagged: flagged.size, findings: findings.length };
    options.onProgress?.("scan", all.length, all.length);
  }
  const keep = all.filter((s) => !flagged.has(s.digest));
  result.records.scanFlagged = all.length - keep.length;
  result.records.admitted = keep.length;
  for (const [agent, entry] of perAgent)
    result.agents.push({
      agent,
      batches: entry.batches.length,
      records: entry.samples.length,
      admitted: entry.samples.filter((s) => !flagged.has(s.digest)).length,
      deliveryId: null,
    });
  if (o.dryRun || keep.length === 0) return result;

  // The lineage, in one append: deliveries (batch → samples), findings, the version.
  options.onProgress?.("record", 0, 1);
  const members = [...new Set(keep.map((s) => s.digest))].sort();
  const root = merkleRoot(members);
  const inputs = admitted.map((b) => b.recordsSha256);
  const version = versionId(o.name, {
    gate: GATE_CHECK,
    since: o.since,
    until,
    model: o.model ?? null,
    root,
    inputs,
  });
  const events: LedgerEventInput[] = [];
  const written: string[] = [];
  try {
    for (const [agent, entry] of perAgent) {
      if (entry.samples.length === 0) continue;
      const staged = await agentDelivery(ledger, agent, entry, version, classes ?? []);
      written.push(staged.storeFile);
      events.push(...staged.events);
      const row = result.agents.find((a) => a.agent === agent);
      if (row !== undefined) row.deliveryId = staged.deliveryId;
    }
    events.push(...findings.map((payload): LedgerEventInput => ({ kind: "finding.recorded", payload })));
    events.push({
      kind: "dataset.version-created",
      payload: {
        version,
        name: o.name,
        merkleRoot: root,
        recordsRoot: merkleRoot([...new Set(keep.map(sampleRecordDigest))].sort()),
        parent: null,
        sampleCount: members.length,
        transform: {
          kind: GATE_CHECK,
          tool: "antidote",
          toolVersion: VERSION,
          parameters: {
            since: o.since,
            until,
            model: o.model ?? null,
            scanned: o.scan,
            batches: admitted.map((b) => b.batchId),
            excludedBatches: result.batches.excluded,
            scanFlagged: result.records.scanFlagged,
          },
          inputDigests: inputs,
          outputDigests: [root],
        },
      },
    });
    events.push(...memberEvents(version, members));
    await ledger.append(events);
  } catch (e) {
    await Promise.all(written.map((f) => rm(f, { force: true })));
    throw e;
  }
  options.onProgress?.("record", 1, 1);
  result.version = version;
  return result;
}

async function acceptedBatches(
  ledger: Ledger,
  since: string,
  until: string,
  model: string | undefined,
): Promise<TelemetryBatchRecord[]> {
  const out: TelemetryBatchRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await ledger.listTelemetryBatches({
      since,
      after,
      limit: 1000,
      ...(model ? { model } : {}),
    });
    for (const b of page) if (b.at < until) out.push(b);
    if (page.length < 1000) return out;
    after = page[page.length - 1]?.batchId;
  }
}

/** 1–2: each batch's first reason to stay out, or null when it may be admitted. */
async function judgeBatches(
  ledger: Ledger,
  batches: readonly TelemetryBatchRecord[],
): Promise<Map<string, BatchExclusion | null>> {
  const sources = new Map((await ledger.listSources()).map((s) => [s.name, s]));
  const sourcesUnder = new Set<string>();
  for await (const f of ledger.findings({ subjectType: "source" })) sourcesUnder.add(f.subjectId);
  const batchesUnder = new Set<string>();
  for await (const f of ledger.findings({ subjectType: "telemetry-batch" })) batchesUnder.add(f.subjectId);
  const quarantinedAgents = new Map<string, boolean>();
  // Agents under the curation policy's minimum reputation (src/policy/) are not attested.
  const belowPolicy = await agentsBelowPolicy(ledger, new Set(batches.map((b) => b.agent)));
  const modelActive = new Map<string, boolean>();
  const out = new Map<string, BatchExclusion | null>();
  for (const b of batches) {
    const source = sources.get(b.agent);
    if (!quarantinedAgents.has(b.agent))
      quarantinedAgents.set(b.agent, await ledger.isSourceQuarantined(b.agent));
    if (!modelActive.has(b.model))
      modelActive.set(b.model, (await ledger.getModelStatus(b.model))?.status === "active");
    let reason: BatchExclusion | null = null;
    if (
      source === undefined ||
      source.kind !== "agent" ||
      quarantinedAgents.get(b.agent) === true ||
      belowPolicy.has(b.agent)
    )
      reason = "agent-not-attested";
    else if (!source.keys.some((k) => k.keyId === b.keyId && k.revokedAt === null)) reason = "key-revoked";
    else if (modelActive.get(b.model) !== true) reason = "model-not-active";
    else if (sourcesUnder.has(b.agent)) reason = "agent-under-finding";
    else if (batchesUnder.has(b.batchId)) reason = "batch-under-finding";
    else if (b.quarantined) reason = "batch-quarantined";
    out.set(b.batchId, reason);
  }
  return out;
}

/** The result so far: the batches considered and admitted, each exclusion counted, per agent. */
function resultWithExclusions(
  considered: number,
  admitted: number,
  verdicts: Map<string, BatchExclusion | null>,
  batches: readonly TelemetryBatchRecord[],
): GateResult {
  const excluded: Record<BatchExclusion, number> = {
    "agent-not-attested": 0,
    "key-revoked": 0,
    "model-not-active": 0,
    "agent-under-finding": 0,
    "batch-under-finding": 0,
    "batch-quarantined": 0,
  };
  const byAgent = new Map<string, { reason: BatchExclusion; batches: number }>();
  for (const b of batches) {
    const reason = verdicts.get(b.batchId) ?? null;
    if (reason === null) continue;
    excluded[reason]++;
    const entry = byAgent.get(b.agent) ?? { reason, batches: 0 };
    entry.batches++;
    byAgent.set(b.agent, entry);
  }
  return {
    version: null,
    batches: { considered, admitted, excluded },
    records: { considered: 0, withoutInput: 0, withoutFeedback: 0, scanFlagged: 0, admitted: 0 },
    agents: [],
    excludedAgents: [...byAgent].map(([agent, e]) => ({ agent, ...e })),
    scan: null,
  };
}

/** A record as a training sample: its input, its feedback label, and where it came from. */
function toSample(batch: TelemetryBatchRecord, r: TelemetryRecord, classes: readonly string[]): Sample {
  const decoded = recordContent(r) ?? {};
  return {
    id: `${batch.batchId}/${r.id}`,
    digest: r.input.digest,
    label: r.feedback?.label ?? null,
    ...decoded,
    source: batch.agent,
    annotations: [],
    metadata: {
      batch: batch.batchId,
      model: batch.model,
      feedback: r.feedback?.kind ?? null,
      classes: classes.length,
    },
  };
}

/** One agent's admitted records as a delivery: a store file and the events naming its batches. */
async function agentDelivery(
  ledger: Ledger,
  agent: string,
  entry: { samples: Sample[]; batches: TelemetryBatchRecord[] },
  version: string,
  classes: string[],
): Promise<{ deliveryId: string; storeFile: string; events: LedgerEventInput[] }> {
  const files = entry.batches.map((b) => ({
    path: `telemetry/${b.store}`,
    sha256: b.recordsSha256,
    size: b.bytes,
  }));
  const manifestDigest = sha256Hex(canonicalJson({ gate: GATE_CHECK, agent, version, files }));
  const deliveryId = `tlm-${manifestDigest.slice(0, 16)}`;
  const dir = storeDir(ledger);
  await mkdir(dir, { recursive: true });
  await sweepStaleTemporaries(dir);
  const storeName = `${deliveryId}-${randomUUID().slice(0, 8)}.parquet`;
  const storeFile = join(dir, storeName);
  const writer = await createWriter(storeFile, { format: "parquet", classes });
  try {
    for (const s of entry.samples) await writer.write(s);
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  const samples: SampleRecord[] = entry.samples.map(({ id, digest, label, annotations }) => ({
    id,
    digest,
    label,
    annotations,
  }));
  const last = entry.batches[entry.batches.length - 1];
  const events: LedgerEventInput[] = [
    {
      kind: "delivery.ingested",
      payload: {
        deliveryId,
        source: agent,
        manifestDigest,
        merkleRoot: merkleRoot([...new Set(samples.map((s) => s.digest))].sort()),
        keyId: last?.keyId ?? null,
        files,
        sampleCount: samples.length,
        datasetVersion: version,
        store: storeName,
        storeSha256: await sha256File(storeFile),
      },
    },
  ];
  for (let i = 0; i < samples.length; i += EVENT_BATCH)
    events.push({
      kind: "samples.added",
      payload: { deliveryId, source: agent, samples: samples.slice(i, i + EVENT_BATCH) },
    });
  return { deliveryId, storeFile, events };
}

function sampleRecordDigest(s: Sample): string {
  return recordDigest({ digest: s.digest, label: s.label, annotations: s.annotations });
}
