// Where the policy in force acts: one function per enforcement point, each called from one
// place (ingest, export, model register, the telemetry gate), plus adoption itself. The policy
// in force is the latest `policy.adopted` event; with none, every hook returns at once and
// Antidote behaves as it did before policies existed. Refusals are FORBIDDEN errors naming the
// policy, the rule and what is missing, raised before anything is written.
//
// A policy's decisions are `decision.recorded` events with actor `policy:<name>@<digest[0:12]>`,
// the rule in the reason and `policy: { digest, rule }`. Adopting a policy never rewrites what
// an earlier one decided: it records its own decisions after its adoption event, and never
// releases anything.
import type { z } from "zod";
import { AntidoteError } from "../errors.js";
import { ledgerConnection } from "../ledger/index.js";
import type { Ledger, LedgerEvent, LedgerEventInput, LedgerReader, Source } from "../ledger/types.js";
import { VERSION } from "../version.js";
import { missingScans, planDecisions, policyActor, ruleFor, type PolicyRef } from "./evaluate.js";
import { loadPolicyFile } from "./load.js";
import { reputationOf, sourceReputations } from "./reputation.js";
import { policySchema } from "./schema.js";

/** The policy in force, with the event that adopted it. */
export interface ActivePolicy extends PolicyRef {
  seq: number;
  at: string;
  actor: string;
}

/** The latest adopted policy, or undefined when none was ever adopted. */
export async function activePolicy(ledger: LedgerReader): Promise<ActivePolicy | undefined> {
  const [event] = await ledger.eventsOfKind("policy.adopted", { newestFirst: true, limit: 1 });
  if (event === undefined) return undefined;
  const parsed = policySchema.safeParse(event.payload.document);
  if (!parsed.success)
    throw new AntidoteError(
      "LEDGER_TAMPERED",
      `ledger event #${event.seq} (policy.adopted): its document is not a valid policy.`,
    );
  return {
    policy: parsed.data,
    digest: event.payload.digest,
    origin: `policy "${event.payload.name}" (ledger event #${event.seq})`,
    seq: event.seq,
    at: event.at,
    actor: event.actor,
  };
}

// ── enforcement points ───────────────────────────────────────────────────────────────────
/** ingest: before anything is read or written — signature requirement and minReputation. */
export async function enforceIngest(ledger: LedgerReader, source: Source, signed: boolean): Promise<void> {
  const active = await activePolicy(ledger);
  if (active === undefined) return;
  const rule = ruleFor(active, source);
  if (rule.requireSignature?.value === true && !signed)
    throw refused(
      active,
      `${rule.requireSignature.rule}.requireSignature`,
      `source "${source.name}" must send signed deliveries; this one is unsigned. Nothing was written.`,
      "SIGNATURE_INVALID",
    );
  const min = rule.minReputation;
  if (min !== undefined) {
    const rep = await reputationOf(ledger, source.name);
    if (rep.score < min.value)
      throw refused(
        active,
        `${min.rule}.minReputation`,
        `source "${source.name}" has reputation ${rep.score.toFixed(3)}, under ${min.value} (\`antidote source show ${source.name} --why\`). Nothing was written.`,
      );
  }
}

/** export: every scan the version's sources require has run on it, and export is an allowed transform. */
export async function enforceExport(ledger: LedgerReader, version: string): Promise<void> {
  const active = await activePolicy(ledger);
  if (active === undefined) return;
  await requireScans(ledger, active, [version], "exported");
  const reach = await ledgerConnection(ledger)
    .selectFrom("version_sources")
    .select("source")
    .where("version", "=", version)
    .where("samples", ">", 0)
    .execute();
  const sources = new Map((await ledger.listSources()).map((s) => [s.name, s]));
  for (const { source } of reach) {
    const s = sources.get(source);
    const allowed = s === undefined ? undefined : ruleFor(active, s).allowedTransforms;
    if (allowed !== undefined && !allowed.value.includes("export"))
      throw refused(
        active,
        `${allowed.rule}.allowedTransforms`,
        `version ${version} holds samples from "${source}", whose allowed transforms (${allowed.value.join(", ") || "none"}) do not include export. Nothing was written.`,
      );
  }
}

/** model register: the versions a model was trained on have had every required scan. */
export async function enforceTraining(ledger: LedgerReader, versions: readonly string[]): Promise<void> {
  const active = await activePolicy(ledger);
  if (active === undefined) return;
  await requireScans(ledger, active, versions, "used to train a registered model");
}

/** The telemetry gate: agents under their rule's minReputation (their batches stay out). */
export async function agentsBelowPolicy(
  ledger: LedgerReader,
  agents: Iterable<string>,
): Promise<Set<string>> {
  const out = new Set<string>();
  const active = await activePolicy(ledger);
  if (active === undefined) return out;
  const wanted = new Set(agents);
  const sources = (await ledger.listSources()).filter((s) => wanted.has(s.name));
  const mins = new Map(
    sources.flatMap((s) => {
      const min = ruleFor(active, s).minReputation;
      return min === undefined ? [] : [[s.name, min.value] as const];
    }),
  );
  if (mins.size === 0) return out;
  for (const r of await sourceReputations(ledger))
    if (mins.has(r.source) && r.score < (mins.get(r.source) ?? 0)) out.add(r.source);
  return out;
}

async function requireScans(
  ledger: LedgerReader,
  active: ActivePolicy,
  versions: readonly string[],
  what: string,
): Promise<void> {
  const missing = await missingScans(ledger, active, versions);
  const first = missing[0]?.missing[0];
  if (missing[0] === undefined || first === undefined) return;
  throw refused(
    active,
    first.rule,
    `version ${missing[0].version} may not be ${what}: detector "${first.detector}" (required for samples from "${first.source}") has not run on it${
      missing[0].missing.length > 1
        ? `, nor ${missing[0].missing
            .slice(1)
            .map((m) => `"${m.detector}"`)
            .join(", ")}`
        : ""
    }. Nothing was written.`,
  );
}

function refused(
  active: ActivePolicy,
  rule: string,
  message: string,
  code: "FORBIDDEN" | "SIGNATURE_INVALID" = "FORBIDDEN",
): AntidoteError {
  return new AntidoteError(
    code,
    `policy "${active.policy.name}" ${active.policy.version} (rule ${rule}): ${message}`,
  );
}

// ── adoption and recorded decisions ──────────────────────────────────────────────────────
export interface ApplyResult {
  /** The adoption event, or null when this exact policy was already in force. */
  adopted: { seq: number; digest: string } | null;
  /** Decisions recorded (each a decision.recorded event). */
  decisions: { seq: number; subjectType: string; subjects: number; rule: string }[];
}

/**
 * Adopt a policy file and record what it decides now, in one append: the `policy.adopted`
 * event first, its decisions after it. Refused (INPUT_FORMAT, file:line) before anything is
 * written when the file is invalid or two of its patterns disagree on a registered source.
 */
export async function applyPolicy(
  ledger: Ledger,
  file: string,
  options: { actor?: string } = {},
): Promise<ApplyResult> {
  const loaded = await loadPolicyFile(file);
  const ref: PolicyRef = {
    policy: loaded.policy,
    digest: loaded.digest,
    origin: file,
    positions: loaded.positions,
  };
  for (const s of await ledger.listSources()) ruleFor(ref, s);
  const current = await activePolicy(ledger);
  const events: LedgerEventInput[] = [];
  if (current?.digest !== loaded.digest)
    events.push({
      kind: "policy.adopted",
      payload: {
        name: loaded.policy.name,
        version: loaded.policy.version,
        digest: loaded.digest,
        document: JSON.parse(JSON.stringify(loaded.policy)) as Record<string, z.core.util.JSONType>,
      },
    });
  const planned = await planDecisions(ledger, ref);
  events.push(...planned.map((p): LedgerEventInput => ({ kind: "decision.recorded", payload: p.decision })));
  const appended =
    events.length === 0
      ? []
      : await ledger.append(events, options.actor !== undefined ? { actor: options.actor } : {});
  return summarize(appended);
}

/** Record the decisions the policy in force makes now (after a scan recorded findings). */
export async function enforcePolicy(ledger: Ledger, options: { actor?: string } = {}): Promise<ApplyResult> {
  const active = await activePolicy(ledger);
  if (active === undefined) return { adopted: null, decisions: [] };
  const planned = await planDecisions(ledger, active);
  const appended =
    planned.length === 0
      ? []
      : await ledger.append(
          planned.map((p): LedgerEventInput => ({ kind: "decision.recorded", payload: p.decision })),
          options.actor !== undefined ? { actor: options.actor } : {},
        );
  return summarize(appended);
}

function summarize(appended: LedgerEvent[]): ApplyResult {
  const adopted = appended.find((e) => e.kind === "policy.adopted");
  return {
    adopted: adopted?.kind === "policy.adopted" ? { seq: adopted.seq, digest: adopted.payload.digest } : null,
    decisions: appended.flatMap((e) =>
      e.kind === "decision.recorded"
        ? [
            {
              seq: e.seq,
              subjectType: e.payload.subjectType,
              subjects: e.payload.subjectIds.length,
              rule: e.payload.policy?.rule ?? "",
            },
          ]
        : [],
    ),
  };
}

/**
 * Record that `detectors` ran on `version` (a `transform.recorded` of kind "scan"): the
 * evidence `requiredScans` is checked against. A scan that records its findings should call it.
 */
export async function recordScanCoverage(
  ledger: Ledger,
  version: string,
  detectors: readonly string[],
  options: { actor?: string } = {},
): Promise<LedgerEvent[]> {
  const known = await ledger.getDatasetVersion(version);
  if (known === undefined)
    throw new AntidoteError("NOT_FOUND", `dataset version "${version}" is not in the ledger.`);
  return ledger.append(
    [scanCoverageEvent(version, known.merkleRoot, detectors)],
    options.actor !== undefined ? { actor: options.actor } : {},
  );
}

/** The event that says which detectors scanned a version (what `requiredScans` reads). */
export function scanCoverageEvent(
  version: string,
  merkleRoot: string,
  detectors: readonly string[],
): LedgerEventInput {
  return {
    kind: "transform.recorded",
    payload: {
      subject: version,
      transform: {
        kind: "scan",
        tool: "antidote",
        toolVersion: VERSION,
        parameters: { detectors: [...new Set(detectors)].sort() },
        inputDigests: [merkleRoot],
        outputDigests: [],
      },
    },
  };
}

export { policyActor };
