// Building an evidence pack: pin the ledger's signed head first, gather what the ledger
// records about one model's lineage (or one dataset version's) with set queries
// (queries.ts), judge each of the nine controls from those facts (controls.ts), and link every
// claim to the events behind it by seq and hash. Events appended while the pack is built are
// after the pinned head and are left out, so the pack describes exactly the ledger at its
// checkpoint.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerReader } from "../ledger/types.js";
import { sourceReputations } from "../policy/index.js";
import { latestRefusals } from "../provenance/refusals.js";
import { VERSION } from "../version.js";
import { assessControls, type Facts } from "./controls.js";
import * as q from "./queries.js";
import {
  EVIDENCE_FORMAT,
  evidencePackSchema,
  type EventLink,
  type EvidencePack,
  type PackSubject,
} from "./schema.js";

const optionsSchema = z
  .object({
    /** Progress for long work (the CLI prints it on stderr). */
    onProgress: z
      .custom<(message: string) => void>((v) => typeof v === "function", "must be a function")
      .optional(),
    /** The pack's generatedAt (tests pin it). Default: now. */
    now: z.date().optional(),
  })
  .strict();
export type EvidenceOptions = z.input<typeof optionsSchema>;

export type EvidenceTarget = { model: string } | { dataset: string };

/** The evidence pack for one model (by digest or unique prefix) or one dataset version. */
export async function buildEvidencePack(
  ledger: LedgerReader,
  target: EvidenceTarget,
  options: EvidenceOptions = {},
): Promise<EvidencePack> {
  const o = parseOptions(optionsSchema, options, "evidence options");
  const progress = o.onProgress ?? (() => undefined);
  const db = ledgerConnection(ledger);
  const head = await ledger.signedHead();
  if (head === undefined)
    throw new AntidoteError(
      "NOT_FOUND",
      `ledger ${ledger.location} has no signed checkpoint yet: nothing to attest.`,
    );
  const upTo = head.seq;

  progress("reading the lineage");
  let modelSeqs: number[] = [];
  let versionsWanted: string[];
  let model: q.ModelRow | undefined;
  const baseModels: q.ModelRow[] = [];
  if ("model" in target) {
    model = await resolveModel(db, target.model);
    versionsWanted = model.trainedOn;
    modelSeqs = [model.seq];
    for (let base = model.baseModel; base !== null && !baseModels.some((b) => b.digest === base);) {
      const row = await q.modelRow(db, base);
      if (row === undefined) break;
      baseModels.push(row);
      base = row.baseModel;
    }
  } else {
    versionsWanted = [target.dataset];
  }
  const versions = await q.versionsWithAncestors(db, versionsWanted);
  if ("dataset" in target && !versions.some((v) => v.version === target.dataset))
    throw new AntidoteError(
      "NOT_FOUND",
      `dataset version ${target.dataset} is not in ledger ${ledger.location}.`,
    );
  const versionIds = versions.map((v) => v.version);
  const [samples, sources, deliveries] = await Promise.all([
    q.memberCount(db, versionIds),
    q.lineageSources(db, versionIds),
    q.lineageDeliveries(db, versionIds),
  ]);
  const sourceNames = sources.map((s) => s.name);
  const modelDigests = model === undefined ? [] : [model.digest];

  progress(`reading findings on ${samples} samples`);
  const [sampleFindings, sourceFindings, deliveryFindings, datasetFindings, modelFindings, baseFindings] =
    await Promise.all([
      q.sampleFindings(db, versionIds),
      q.subjectFindings(db, "source", sourceNames),
      q.subjectFindings(
        db,
        "delivery",
        deliveries.map((d) => d.deliveryId),
      ),
      q.subjectFindings(db, "dataset", versionIds),
      q.subjectFindings(db, "model", modelDigests),
      q.subjectFindings(
        db,
        "model",
        baseModels.map((b) => b.digest),
      ),
    ]);
  const telemetry = model === undefined ? [] : await q.modelTelemetry(db, model.digest);
  const [decisions, transforms, keys, others] = await Promise.all([
    q.lineageDecisions(
      db,
      versionIds,
      sourceNames,
      telemetry.map((t) => t.batchId),
    ),
    q.transformsOn(db, [...versionIds, ...modelDigests]),
    q.sourceKeys(db, sourceNames),
    q.eventsOfKinds(
      db,
      [
        "source.added",
        "source.key-added",
        "source.key-revoked",
        "job.submitted",
        "job.finished",
        "policy.adopted",
        "model.status-changed",
      ],
      upTo,
    ),
  ]);
  progress("scoring the sources' reputation");
  const reputations = await reputationsAt(ledger, sourceNames, head.at);
  const refusals = await Promise.all(
    sourceNames.map(async (name) => ({
      source: name,
      refusals: await latestRefusals(ledger, { source: name, limit: 10_000 }),
    })),
  );

  const facts: Facts = {
    subjectKind: model === undefined ? "dataset" : "model",
    model,
    baseModels,
    versions,
    samples,
    sources,
    deliveries,
    keys,
    findings: {
      samples: sampleFindings,
      sources: sourceFindings,
      deliveries: deliveryFindings,
      datasets: datasetFindings,
      model: modelFindings,
      baseModels: baseFindings,
    },
    telemetry,
    decisions,
    transforms,
    others,
    refusals,
    reputations,
  };

  progress("judging the nine controls");
  const drafts = assessControls(facts);
  const wanted = new Set<number>([...modelSeqs, ...versions.map((v) => v.seq), ...sources.map((s) => s.seq)]);
  for (const c of drafts) for (const claim of c.claims) for (const s of claim.seqs) wanted.add(s);
  const refs = await q.eventRefs(db, wanted, upTo);
  const link = (seq: number): EventLink | undefined => {
    const r = refs.get(seq);
    return r === undefined ? undefined : { seq: r.seq, hash: r.hash };
  };
  const mustLink = (seq: number, what: string): EventLink => {
    const l = link(seq);
    if (l === undefined)
      throw new AntidoteError(
        "NOT_FOUND",
        `${what} was recorded after the ledger's signed head #${upTo}; run again once the ledger has a checkpoint covering it.`,
      );
    return l;
  };

  const subject: PackSubject =
    model !== undefined
      ? {
          type: "model",
          digest: model.digest,
          name: model.name,
          format: model.format,
          baseModel: model.baseModel,
          trainedOn: model.trainedOn,
          registeredAt: model.registeredAt,
          event: mustLink(model.seq, `model ${model.digest.slice(0, 16)}…`),
        }
      : datasetSubject(versions, versionsWanted[0] as string, mustLink);

  const controls = drafts.map((c) => ({
    id: c.id,
    title: c.title,
    status: c.status,
    gaps: c.gaps,
    ...(c.notApplicable !== undefined && { notApplicable: c.notApplicable }),
    claims: c.claims
      .map((claim) => {
        const events = claim.seqs.flatMap((s) => link(s) ?? []);
        const used = claim.seqs.flatMap((s) => refs.get(s) ?? []);
        const times = used.map((r) => r.at).sort();
        return {
          statement: claim.statement,
          result: claim.result,
          from: times[0] ?? null,
          to: times[times.length - 1] ?? null,
          by: [...new Set(used.map((r) => r.actor))].sort(),
          events,
          ...(claim.outsideLog !== undefined && { outsideLog: claim.outsideLog }),
        };
      })
      // A claim whose every event is after the pinned head says nothing about this checkpoint.
      .filter((claim) => claim.events.length > 0 || claim.outsideLog !== undefined),
  }));

  const pack: EvidencePack = {
    format: EVIDENCE_FORMAT,
    generatedAt: (o.now ?? new Date()).toISOString(),
    tool: { name: "antidote", version: VERSION },
    subject,
    checkpoint: {
      seq: head.seq,
      hash: head.hash,
      root: head.root,
      at: head.at,
      keyId: head.keyId,
      signature: head.signature,
      publicKeyPem: head.publicKeyPem,
    },
    lineage: {
      versions: versions.map((v) => ({
        version: v.version,
        name: v.name,
        parent: v.parent,
        sampleCount: v.sampleCount,
        event: mustLink(v.seq, `dataset version ${v.version}`),
      })),
      samples,
      sources: sources.map((s) => ({
        name: s.name,
        kind: s.kind,
        trust: s.trust,
        requireSignature: s.requireSignature,
        samples: s.samples,
        event: mustLink(s.seq, `source ${s.name}`),
      })),
      deliveries: deliveries.length,
      baseModels: baseModels.map((b) => b.digest),
    },
    controls,
  };
  const checked = evidencePackSchema.safeParse(pack);
  if (!checked.success)
    throw new AntidoteError(
      "INTERNAL",
      `buildEvidencePack: the pack does not match its schema (${checked.error.issues[0]?.path.join(".") ?? ""}: ${checked.error.issues[0]?.message ?? ""}).`,
    );
  return checked.data;
}

// Source reputation (src/policy/reputation.ts), decayed to the checkpoint's time so the same
// ledger gives the same pack. A failure is reported as a gap, not as a failed pack.
async function reputationsAt(
  ledger: LedgerReader,
  sources: readonly string[],
  at: string,
): Promise<Facts["reputations"]> {
  if (sources.length === 0) return { scores: [] };
  try {
    const all = await sourceReputations(ledger, { now: new Date(at) });
    return { scores: all.filter((r) => sources.includes(r.source)) };
  } catch (e) {
    return { scores: [], failed: e instanceof AntidoteError ? e.message : "an internal error" };
  }
}

async function resolveModel(
  db: ReturnType<typeof ledgerConnection>,
  digestOrPrefix: string,
): Promise<q.ModelRow> {
  const wanted = digestOrPrefix.toLowerCase();
  if (!/^[0-9a-f]{4,64}$/.test(wanted))
    throw new AntidoteError(
      "USAGE",
      `model ${digestOrPrefix}: give its SHA-256 digest or a prefix of at least 4 hex digits.`,
    );
  const matches = await q.modelsByPrefix(db, wanted);
  if (matches.length === 0)
    throw new AntidoteError("NOT_FOUND", `no registered model has a digest starting ${wanted}.`);
  if (matches.length > 1)
    throw new AntidoteError("USAGE", `model prefix ${wanted} is ambiguous: give more digits of the digest.`);
  const row = await q.modelRow(db, matches[0] as string);
  if (row === undefined) throw new AntidoteError("NOT_FOUND", `model ${wanted} is not registered.`);
  return row;
}

function datasetSubject(
  versions: readonly q.VersionRow[],
  version: string,
  mustLink: (seq: number, what: string) => EventLink,
): PackSubject {
  const v = versions.find((x) => x.version === version);
  if (v === undefined)
    throw new AntidoteError("NOT_FOUND", `dataset version ${version} is not in the ledger.`);
  return {
    type: "dataset",
    version: v.version,
    name: v.name,
    sampleCount: v.sampleCount,
    event: mustLink(v.seq, `dataset version ${v.version}`),
  };
}
