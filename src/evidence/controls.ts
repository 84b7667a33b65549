// Judging the nine controls from what the ledger records. Each judgement says what was done
// (a claim, with the events that prove it) and what was not (a gap, stated on its own line),
// and never more than the events show: a scan that flagged nothing leaves no event, so "no
// findings" is reported as "no scan recorded", not as "clean". The status is mechanical:
// "done" with claims and no gaps, "partial" with both, "gap" with no claim, and
// "not-applicable" only where the subject cannot have the control (a model with no base
// model has no foundation model to audit), with the reason.
import type { SourceReputation } from "../policy/index.js";
import type { DeliveryRefusal } from "../provenance/refusals.js";
import {
  checkClaims,
  countBy,
  isAudit,
  isBackdoorFinding,
  jobClaims,
  parseObject,
  str,
  summarizeScores,
  transformKind,
} from "./claims.js";
import { controlDefinition } from "./frameworks.js";
import type * as q from "./queries.js";
import type { ControlId, ControlStatus } from "./schema.js";

/** Everything the judgement reads, gathered by build.ts. */
export interface Facts {
  subjectKind: "model" | "dataset";
  model: q.ModelRow | undefined;
  baseModels: q.ModelRow[];
  versions: q.VersionRow[];
  samples: number;
  sources: q.SourceRow[];
  deliveries: q.DeliveryRow[];
  keys: q.SourceKeyRow[];
  findings: {
    samples: q.FindingRow[];
    sources: q.FindingRow[];
    deliveries: q.FindingRow[];
    datasets: q.FindingRow[];
    model: q.FindingRow[];
    baseModels: q.FindingRow[];
  };
  telemetry: q.TelemetryRow[];
  decisions: q.DecisionRow[];
  transforms: q.TransformRow[];
  /** source.*, job.*, policy.adopted and model.status-changed events (filtered here). */
  others: q.RawEvent[];
  refusals: { source: string; refusals: DeliveryRefusal[] }[];
  /** Reputation of the lineage's sources (policy/reputation.ts), or why it could not be computed. */
  reputations: { scores: SourceReputation[]; failed?: string };
}

export interface DraftClaim {
  statement: string;
  result: string;
  seqs: number[];
  outsideLog?: string;
}

export interface DraftControl {
  id: ControlId;
  title: string;
  status: ControlStatus;
  claims: DraftClaim[];
  gaps: string[];
  notApplicable?: string;
}

/** Events linked per reputation claim: those that moved the score most. */
const MAX_REPUTATION_EVENTS = 50;
/** Transform kinds that are curation steps. */
const CURATION_TRANSFORMS = /^(dedup|filter|export|relabel|curate|policy)/;
/** Transform kinds / tools that bound a sample's or client's influence on training. */
const ROBUST_TRANSFORMS = /(robust|aggregat|dpa|partition|fl-round|trimmed|median|krum)/i;
/** Transform kinds that are attack simulations (red-team runs of the defences). */
const ATTACK_TRANSFORMS = /^attack[:/]/;

export function assessControls(f: Facts): DraftControl[] {
  return [
    provenance(f),
    curation(f),
    supplierSecurity(f),
    anomalyDetection(f),
    robustTraining(f),
    backdoorDetection(f),
    adversarialValidation(f),
    foundationModelAudit(f),
    continuousMonitoring(f),
  ];
}

function draft(id: ControlId, claims: DraftClaim[], gaps: string[]): DraftControl {
  const status: ControlStatus = claims.length === 0 ? "gap" : gaps.length === 0 ? "done" : "partial";
  return { id, title: controlDefinition(id).title, status, claims, gaps };
}

function notApplicable(id: ControlId, why: string, claims: DraftClaim[] = []): DraftControl {
  return {
    id,
    title: controlDefinition(id).title,
    status: "not-applicable",
    claims,
    gaps: [],
    notApplicable: why,
  };
}

function provenance(f: Facts): DraftControl {
  const claims: DraftClaim[] = [];
  const gaps: string[] = [];
  const signed = f.deliveries.filter((d) => d.keyId !== null);
  for (const d of f.deliveries)
    claims.push({
      statement: `Delivery ${d.deliveryId} from source ${d.source} ingested into version ${d.datasetVersion}: its files and ${d.sampleCount} sample digests checked against the manifest.`,
      result:
        d.keyId === null ? "unsigned (allowed by the source's policy)" : `signature verified, key ${d.keyId}`,
      seqs: [d.seq],
    });
  for (const v of f.versions)
    claims.push({
      statement: `Dataset version ${v.version} (${v.name}) recorded with its Merkle root${v.parent === null ? "" : `, derived from ${v.parent}`}.`,
      result: `${v.sampleCount} samples, Merkle root ${v.merkleRoot}`,
      seqs: [v.seq],
    });
  if (f.model !== undefined)
    claims.push({
      statement: `Model ${f.model.name} registered with the versions it was trained on.`,
      result: `trained on ${f.model.trainedOn.join(", ") || "no recorded version"}`,
      seqs: [f.model.seq],
    });
  if (f.deliveries.length === 0)
    gaps.push("No delivery is recorded for this lineage: the samples' origin is not attested.");
  const unsigned = f.deliveries.length - signed.length;
  if (unsigned > 0)
    gaps.push(
      `${unsigned} of ${f.deliveries.length} deliveries were unsigned: their origin rests on the ingesting user's word.`,
    );
  if (f.model !== undefined && f.model.trainedOn.length === 0)
    gaps.push("The model was registered without the dataset versions it was trained on.");
  return draft("provenance", claims, gaps);
}

function curation(f: Facts): DraftControl {
  const claims: DraftClaim[] = [];
  const gaps: string[] = [];
  const curating = f.transforms.filter((t) => CURATION_TRANSFORMS.test(t.kind));
  for (const t of curating)
    claims.push({
      statement: `Transform ${t.kind} (${t.tool} ${t.toolVersion}) applied to ${t.subject}.`,
      result: `parameters ${t.parameters}`,
      seqs: [t.seq],
    });
  for (const v of f.versions) {
    const kind = transformKind(v.transform);
    if (v.parent !== null && kind !== undefined && CURATION_TRANSFORMS.test(kind))
      claims.push({
        statement: `Version ${v.version} was derived from ${v.parent} by ${kind}.`,
        result: `${v.sampleCount} samples kept`,
        seqs: [v.seq],
      });
  }
  const quarantines = f.decisions.filter((d) => d.action === "quarantine");
  const byPolicy = f.decisions.filter((d) => d.actor.startsWith("policy:"));
  for (const d of f.decisions)
    claims.push({
      statement: `Decision: ${d.action} of ${d.subjects} ${d.subjectType} subject(s) in this lineage, by ${d.actor}.`,
      result: d.reason,
      seqs: [d.seq],
    });
  const policies = f.others.filter((e) => e.kind === "policy.adopted");
  for (const p of policies) {
    const doc = parseObject(p.payload);
    claims.push({
      statement: `Curation policy ${str(doc.name)} ${str(doc.version)} adopted.`,
      result: `policy digest ${str(doc.digest)}`,
      seqs: [p.seq],
    });
  }
  if (curating.length === 0 && f.versions.every((v) => v.parent === null))
    gaps.push("No deduplication, filtering or clean export is recorded for this lineage.");
  if (quarantines.length === 0)
    gaps.push("No quarantine decision is recorded on this lineage's samples or sources.");
  if (policies.length === 0) gaps.push("No curation policy (policy.adopted) is recorded in the ledger.");
  else if (byPolicy.length === 0)
    gaps.push("A curation policy is adopted, but no decision on this lineage was made by it.");
  return draft("curation", claims, gaps);
}

function supplierSecurity(f: Facts): DraftControl {
  const claims: DraftClaim[] = [];
  const gaps: string[] = [];
  const names = new Set(f.sources.map((s) => s.name));
  for (const s of f.sources) {
    const keys = f.keys.filter((k) => k.source === s.name);
    claims.push({
      statement: `Source ${s.name} (${s.kind}) registered with trust ${s.trust}; signatures ${s.requireSignature ? "required" : "not required"}.`,
      result: `${keys.length} key(s) registered, ${keys.filter((k) => k.revokedAt !== null).length} revoked; ${s.samples} samples in this lineage`,
      seqs: [s.seq],
    });
    if (!s.requireSignature && (s.kind === "supplier" || s.kind === "contractor"))
      gaps.push(`Source ${s.name} is a ${s.kind} whose deliveries need not be signed.`);
    if (keys.length === 0 && s.kind !== "web") gaps.push(`Source ${s.name} has no registered key.`);
  }
  for (const e of f.others) {
    if (e.kind !== "source.key-added" && e.kind !== "source.key-revoked") continue;
    const p = parseObject(e.payload);
    if (!names.has(str(p.source))) continue;
    claims.push({
      statement:
        e.kind === "source.key-added"
          ? `A key was registered for source ${str(p.source)}.`
          : `Key ${str(p.keyId)} of source ${str(p.source)} was revoked.`,
      result: e.kind === "source.key-revoked" ? str(p.reason) : "key added",
      seqs: [e.seq],
    });
  }
  const sourceFindings = f.findings.sources;
  if (sourceFindings.length > 0)
    claims.push({
      statement: `Per-source risk checks produced ${sourceFindings.length} finding(s) on this lineage's sources.`,
      result: summarizeScores(sourceFindings),
      seqs: sourceFindings.map((x) => x.seq),
    });
  for (const r of f.refusals)
    if (r.refusals.length > 0)
      claims.push({
        statement: `${r.refusals.length} deliveries claiming to be from ${r.source} were refused.`,
        result: countBy(r.refusals.map((x) => x.code)),
        seqs: [],
        outsideLog: "delivery_refusals (operational table; refusals are deliberately not ledger events)",
      });
  for (const r of f.reputations.scores)
    claims.push({
      statement: `Source ${r.source} has reputation ${r.score.toFixed(3)} (prior trust ${r.prior}), computed from its history in the ledger.`,
      result: `${r.good.toFixed(2)} good and ${r.bad.toFixed(2)} bad decayed evidence; last incident ${r.lastIncidentAt ?? "none"}`,
      seqs: r.events.flatMap((e) => (e.seq === null ? [] : [e.seq])).slice(0, MAX_REPUTATION_EVENTS),
    });
  if (f.reputations.failed !== undefined)
    gaps.push(`Source reputation could not be computed: ${f.reputations.failed}`);
  if (f.sources.length === 0) gaps.push("No registered source is recorded for this lineage.");
  return draft("supplier-security", claims, gaps);
}

function anomalyDetection(f: Facts): DraftControl {
  const stats = f.findings.samples.filter((x) => !isBackdoorFinding(x));
  const claims = checkClaims(stats, "sample(s) of this lineage");
  const data = [...f.findings.datasets, ...f.findings.deliveries].filter((x) => !isBackdoorFinding(x));
  claims.push(...checkClaims(data, "dataset version(s) or deliveries of this lineage"));
  claims.push(...jobClaims(f, "scan"));
  const gaps: string[] = [];
  if (claims.length === 0)
    gaps.push(
      "No scan is recorded on this lineage (a scan that flags nothing records no finding; run scans as jobs so the run itself is recorded).",
    );
  const scanned = new Set(stats.map((x) => x.subjectId));
  if (claims.length > 0 && scanned.size > 0 && f.samples > 0)
    claims.push({
      statement: `Flagged samples in the lineage: ${scanned.size} of ${f.samples}.`,
      result: `flag rate ${(scanned.size / f.samples).toFixed(4)}`,
      seqs: stats.map((x) => x.seq),
    });
  return draft("anomaly-detection", claims, gaps);
}

function robustTraining(f: Facts): DraftControl {
  const robust = f.transforms.filter((t) => ROBUST_TRANSFORMS.test(t.kind) || ROBUST_TRANSFORMS.test(t.tool));
  const claims = robust.map((t) => ({
    statement: `Robust training step ${t.kind} (${t.tool} ${t.toolVersion}) recorded on ${t.subject}.`,
    result: `parameters ${t.parameters}`,
    seqs: [t.seq],
  }));
  const gaps =
    claims.length === 0
      ? [
          f.subjectKind === "model"
            ? "No robust training (partitioned training, robust aggregation) is recorded for this model."
            : "No robust training is recorded on this dataset version.",
        ]
      : [];
  return draft("robust-training", claims, gaps);
}

function backdoorDetection(f: Facts): DraftControl {
  const data = f.findings.samples.filter(isBackdoorFinding);
  const other = [...f.findings.datasets, ...f.findings.deliveries].filter(isBackdoorFinding);
  const claims = [
    ...checkClaims(data, "sample(s) of this lineage"),
    ...checkClaims(other, "versions or deliveries"),
  ];
  const audits = f.findings.model.filter(isAudit);
  claims.push(...checkClaims(audits, "the model"));
  claims.push(...jobClaims(f, "audit"));
  const gaps: string[] = [];
  if (data.length === 0 && other.length === 0)
    gaps.push(
      "No backdoor detector (spectral signatures, activation clustering, trigger search) flagged or is recorded on the data.",
    );
  if (f.subjectKind === "model" && audits.length === 0)
    gaps.push("No model audit (trigger inversion, STRIP, reference diff) is recorded on this model.");
  return draft("backdoor-detection", claims, gaps);
}

function adversarialValidation(f: Facts): DraftControl {
  const attacks = f.transforms.filter((t) => ATTACK_TRANSFORMS.test(t.kind));
  const versionsAttacked = f.versions.filter((v) => ATTACK_TRANSFORMS.test(transformKind(v.transform) ?? ""));
  const claims: DraftClaim[] = [
    ...attacks.map((t) => ({
      statement: `Attack simulation ${t.kind} (${t.tool} ${t.toolVersion}) run on ${t.subject}.`,
      result: `parameters ${t.parameters}`,
      seqs: [t.seq],
    })),
    ...versionsAttacked.map((v) => ({
      statement: `Version ${v.version} is an attack simulation (${transformKind(v.transform) ?? ""}) of ${v.parent ?? "its input"}.`,
      result: `${v.sampleCount} samples`,
      seqs: [v.seq],
    })),
  ];
  const gaps =
    claims.length === 0
      ? [
          "No adversarial validation (a simulated poisoning attack run against this pipeline's defences) is recorded.",
        ]
      : [];
  return draft("adversarial-validation", claims, gaps);
}

function foundationModelAudit(f: Facts): DraftControl {
  if (f.model === undefined)
    return notApplicable(
      "foundation-model-audit",
      "The pack is for a dataset version: there is no model, so no base model to audit.",
    );
  if (f.model.baseModel === null)
    return notApplicable(
      "foundation-model-audit",
      `Model ${f.model.name} was registered with no base model (trained from scratch), so there is no foundation model to audit.`,
      [
        {
          statement: "Model registered without a base model.",
          result: "baseModel: null",
          seqs: [f.model.seq],
        },
      ],
    );
  const claims: DraftClaim[] = f.baseModels.map((b) => ({
    statement: `Base model ${b.name} (${b.digest}) is registered in the ledger.`,
    result: `format ${b.format}`,
    seqs: [b.seq],
  }));
  const audits = f.findings.baseModels.filter(isAudit);
  claims.push(...checkClaims(audits, "the base model"));
  const gaps: string[] = [];
  if (f.baseModels.length === 0)
    gaps.push(`Base model ${f.model.baseModel} is not registered in the ledger.`);
  if (audits.length === 0) gaps.push(`No audit finding is recorded on base model ${f.model.baseModel}.`);
  return draft("foundation-model-audit", claims, gaps);
}

function continuousMonitoring(f: Facts): DraftControl {
  if (f.model === undefined)
    return notApplicable(
      "continuous-monitoring",
      "The pack is for a dataset version: monitoring applies to a deployed model (build the pack for the model).",
    );
  const digest = f.model.digest;
  const claims: DraftClaim[] = [];
  if (f.telemetry.length > 0) {
    const agents = [...new Set(f.telemetry.map((t) => t.agent))].sort();
    claims.push({
      statement: `Signed telemetry accepted from ${agents.length} agent(s) running this model: ${agents.join(", ")}.`,
      result: `${f.telemetry.length} batches, ${f.telemetry.reduce((a, t) => a + t.count, 0)} records`,
      seqs: f.telemetry.map((t) => t.seq),
    });
  }
  const monitors = f.findings.model.filter((x) => x.check.startsWith("monitor/"));
  claims.push(...checkClaims(monitors, "the deployed model"));
  for (const e of f.others) {
    if (e.kind !== "model.status-changed") continue;
    const p = parseObject(e.payload);
    if (p.digest !== digest) continue;
    claims.push({
      statement: `Model status changed to ${str(p.status)}.`,
      result: str(p.reason),
      seqs: [e.seq],
    });
  }
  const gaps: string[] = [];
  if (f.telemetry.length === 0) gaps.push("No telemetry from a deployment of this model is recorded.");
  if (monitors.length === 0)
    gaps.push("No monitor finding (drift, trigger alarms) is recorded on this model.");
  return draft("continuous-monitoring", claims, gaps);
}
