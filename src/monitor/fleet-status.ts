// The deployed fleet at a glance, for the people watching it (the dashboard's Telemetry page,
// GET /v1/telemetry/fleet): per agent, its keys, whether it is quarantined, what it sent
// (batches, records, the last batch, sequence gaps), what was refused from it and why, and
// what the monitors found on it and on its batches; per model, whether it is suspended and
// how much telemetry attests it; and the monitors' latest alerts, newest first.
//
// Everything is read through the LedgerReader contract, so both engines answer alike: one
// pass over the accepted batches in keyset pages (the ledger's order), one pass over the
// findings on sources, models and telemetry batches (a monitor's findings have check
// "monitor/<name>"; scan findings on samples are never read), the refusal counts, and one
// status read per model. Nothing here writes. The agents come riskiest first: most monitor
// findings, then most refusals, then by name.
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import type { Finding, LedgerReader, ModelStatus } from "../ledger/types.js";
import { telemetryRefusalCounts, type TelemetryRefusalCode } from "./refusals.js";

export const fleetStatusOptionsSchema = z
  .object({
    /** Monitor alerts listed, newest first. */
    alerts: z.number().int().min(0).max(1000).default(20),
    /** Accepted batches read per query (keyset pages). */
    pageSize: z.number().int().min(1).max(10_000).default(10_000),
  })
  .strict();
export type FleetStatusOptions = z.input<typeof fleetStatusOptionsSchema>;

/** The check name prefix of every monitor's findings (monitors/types.ts `toFinding`). */
export const MONITOR_CHECK_PREFIX = "monitor/";

export interface RefusalsByCode {
  code: TelemetryRefusalCode;
  refusals: number;
  lastAt: string;
}

/** A monitor's finding as an alert: what it is about, how strong, and the batch that raised it. */
export interface FleetAlert {
  seq: number;
  /** When the ledger recorded it. */
  at: string;
  /** "monitor/<name>". */
  check: string;
  kind: string;
  subjectType: Finding["subjectType"];
  subjectId: string;
  score: number;
  /** The batch whose arrival raised it ("<agent>#<sequence>"), when the finding names one. */
  batchId: string | null;
  /** The agent it concerns: the subject itself, or the sender of the subject batch; null for a model. */
  agent: string | null;
}

export interface AgentStatus {
  name: string;
  trust: number;
  addedAt: string;
  keys: { current: number; revoked: number };
  /** The agent (a source) is quarantined: its telemetry is refused and the gate leaves it out. */
  quarantined: boolean;
  /** Accepted batches, those quarantined (directly or through the agent), records, feedback labels. */
  batches: number;
  quarantinedBatches: number;
  records: number;
  feedback: number;
  lastBatch: { batchId: string; sequence: number; at: string; model: string } | null;
  /** Batches that skipped sequence numbers, and how many numbers were skipped in all. */
  gaps: { batches: number; missing: number };
  /** Digests of the models its batches attest, in first-seen order. */
  models: string[];
  refusals: { total: number; byCode: RefusalsByCode[] };
  /** Monitor findings on the agent and on its batches. */
  findings: {
    count: number;
    onAgent: number;
    onBatches: number;
    maxScore: number | null;
    latest: { seq: number; check: string; kind: string; score: number; subjectId: string } | null;
  };
}

export interface FleetModelStatus extends ModelStatus {
  name: string;
  batches: number;
  records: number;
  /** Distinct agents whose batches attest it. */
  agents: number;
  lastBatchAt: string | null;
  /** Monitor findings on the model itself (drift, fleet-wide confusion). */
  findings: number;
}

export interface FleetStatus {
  totals: {
    agents: number;
    batches: number;
    records: number;
    refusals: number;
    monitorFindings: number;
    suspendedModels: number;
  };
  /** Riskiest first: most monitor findings, then most refusals, then by name. */
  agents: AgentStatus[];
  /** Models that telemetry attests first (most batches first), then the other registered ones. */
  models: FleetModelStatus[];
  /** Refusals under a name that is not a registered agent ("" for unregistered names). */
  unattributedRefusals: (RefusalsByCode & { agent: string })[];
  /** The latest monitor findings, newest first. */
  alerts: FleetAlert[];
}

const SUBJECTS = ["source", "telemetry-batch", "model"] as const;

export async function fleetStatus(
  ledger: LedgerReader,
  options: FleetStatusOptions = {},
): Promise<FleetStatus> {
  const o = parseOptions(fleetStatusOptionsSchema, options, "fleet status");
  const agents = await agentsOf(ledger);
  const models = await modelsOf(ledger);
  await tallyBatches(ledger, agents, models, o.pageSize);
  const unattributedRefusals = await tallyRefusals(ledger, agents);
  const { alerts, total } = await tallyFindings(ledger, agents, models, o.alerts);

  const agentList = [...agents.values()].sort(
    (a, b) =>
      b.findings.count - a.findings.count ||
      b.refusals.total - a.refusals.total ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const modelList = [...models.values()]
    .map(({ agentSet: _, ...m }) => m)
    .sort((a, b) => b.batches - a.batches || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    totals: {
      agents: agentList.length,
      batches: sum(agentList.map((a) => a.batches)),
      records: sum(agentList.map((a) => a.records)),
      refusals:
        sum(agentList.map((a) => a.refusals.total)) + sum(unattributedRefusals.map((r) => r.refusals)),
      monitorFindings: total,
      suspendedModels: modelList.filter((m) => m.status === "suspended").length,
    },
    agents: agentList,
    models: modelList,
    unattributedRefusals,
    alerts: await Promise.all(
      alerts.map(async (a) => ({ ...a, at: (await ledger.getEvent(a.seq))?.at ?? "" })),
    ),
  };
}

// Registered agents, with their keys and quarantine, nothing counted yet.
async function agentsOf(ledger: LedgerReader): Promise<Map<string, AgentStatus>> {
  const out = new Map<string, AgentStatus>();
  for (const s of await ledger.listSources()) {
    if (s.kind !== "agent") continue;
    const revoked = s.keys.filter((k) => k.revokedAt !== null).length;
    out.set(s.name, {
      name: s.name,
      trust: s.trust,
      addedAt: s.addedAt,
      keys: { current: s.keys.length - revoked, revoked },
      quarantined: await ledger.isSourceQuarantined(s.name),
      batches: 0,
      quarantinedBatches: 0,
      records: 0,
      feedback: 0,
      lastBatch: null,
      gaps: { batches: 0, missing: 0 },
      models: [],
      refusals: { total: 0, byCode: [] },
      findings: { count: 0, onAgent: 0, onBatches: 0, maxScore: null, latest: null },
    });
  }
  return out;
}

type ModelTally = FleetModelStatus & { agentSet: Set<string> };

async function modelsOf(ledger: LedgerReader): Promise<Map<string, ModelTally>> {
  const out = new Map<string, ModelTally>();
  for (const m of await ledger.listModels()) {
    const status = await ledger.getModelStatus(m.digest);
    if (status === undefined) continue; // removed between the two reads: nothing to show
    out.set(m.digest, {
      ...status,
      name: m.name,
      batches: 0,
      records: 0,
      agents: 0,
      lastBatchAt: null,
      findings: 0,
      agentSet: new Set(),
    });
  }
  return out;
}

// One pass over every accepted batch, in the order accepted (so the last one seen is the latest).
async function tallyBatches(
  ledger: LedgerReader,
  agents: Map<string, AgentStatus>,
  models: Map<string, ModelTally>,
  pageSize: number,
): Promise<void> {
  for (let after: string | undefined; ;) {
    const page = await ledger.listTelemetryBatches({
      limit: pageSize,
      ...(after !== undefined ? { after } : {}),
    });
    for (const b of page) {
      const agent = agents.get(b.agent);
      if (agent !== undefined) {
        agent.batches++;
        if (b.quarantined) agent.quarantinedBatches++;
        agent.records += b.count;
        agent.feedback += b.feedbackCount;
        agent.lastBatch = { batchId: b.batchId, sequence: b.sequence, at: b.at, model: b.model };
        if (b.gap !== null) {
          agent.gaps.batches++;
          agent.gaps.missing += b.gap.got - b.gap.expected;
        }
        if (!agent.models.includes(b.model)) agent.models.push(b.model);
      }
      const model = models.get(b.model);
      if (model !== undefined) {
        model.batches++;
        model.records += b.count;
        model.agentSet.add(b.agent);
        model.agents = model.agentSet.size;
        model.lastBatchAt = b.at;
      }
    }
    const last = page[page.length - 1];
    if (page.length < pageSize || last === undefined) return;
    after = last.batchId;
  }
}

async function tallyRefusals(
  ledger: LedgerReader,
  agents: Map<string, AgentStatus>,
): Promise<FleetStatus["unattributedRefusals"]> {
  const unattributed: FleetStatus["unattributedRefusals"] = [];
  for (const { agent: name, code, refusals, lastAt } of await telemetryRefusalCounts(ledger)) {
    const agent = agents.get(name);
    if (agent === undefined) {
      unattributed.push({ agent: name, code, refusals, lastAt });
      continue;
    }
    agent.refusals.total += refusals;
    agent.refusals.byCode.push({ code, refusals, lastAt }); // most first, as the counts come
  }
  return unattributed;
}

// Monitor findings on agents, their batches and models; the newest `keep` become alerts.
async function tallyFindings(
  ledger: LedgerReader,
  agents: Map<string, AgentStatus>,
  models: Map<string, ModelTally>,
  keep: number,
): Promise<{ alerts: Omit<FleetAlert, "at">[]; total: number }> {
  let newest: Omit<FleetAlert, "at">[] = [];
  let total = 0;
  for (const subjectType of SUBJECTS)
    for await (const f of ledger.findings({ subjectType })) {
      if (!f.check.startsWith(MONITOR_CHECK_PREFIX)) continue;
      total++;
      const agentName =
        subjectType === "source"
          ? f.subjectId
          : subjectType === "telemetry-batch"
            ? agentOf(f.subjectId)
            : null;
      const agent = agentName === null ? undefined : agents.get(agentName);
      if (agent !== undefined) {
        const tally = agent.findings;
        tally.count++;
        if (subjectType === "source") tally.onAgent++;
        else tally.onBatches++;
        tally.maxScore = Math.max(tally.maxScore ?? -Infinity, f.score);
        if (tally.latest === null || f.seq > tally.latest.seq)
          tally.latest = { seq: f.seq, check: f.check, kind: f.kind, score: f.score, subjectId: f.subjectId };
      }
      if (subjectType === "model") {
        const model = models.get(f.subjectId);
        if (model !== undefined) model.findings++;
      }
      if (keep === 0) continue;
      newest.push({
        seq: f.seq,
        check: f.check,
        kind: f.kind,
        subjectType: f.subjectType,
        subjectId: f.subjectId,
        score: f.score,
        batchId: batchIdOf(f),
        agent: agentName,
      });
      // Each subject type comes in ledger order: keeping its last `keep` keeps its newest.
      if (newest.length > 4 * keep) newest = newestOf(newest, keep);
    }
  return { alerts: newestOf(newest, keep), total };
}

function newestOf<T extends { seq: number }>(items: T[], keep: number): T[] {
  return [...items].sort((a, b) => b.seq - a.seq).slice(0, keep);
}

/** "<agent>#<sequence>" → agent (an agent's name may itself hold "#"; the sequence never does). */
function agentOf(batchId: string): string | null {
  const at = batchId.lastIndexOf("#");
  return at <= 0 ? null : batchId.slice(0, at);
}

function batchIdOf(f: Finding): string | null {
  if (f.subjectType === "telemetry-batch") return f.subjectId;
  const id = f.evidence.batchId;
  return typeof id === "string" ? id : null;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
