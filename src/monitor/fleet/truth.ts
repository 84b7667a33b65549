// Ground truth of a simulated fleet, so monitors are measured like the scan's detectors:
// which agents were compromised and how, every upload in send order (what it was — an honest
// batch, a wrong-model batch, a forgery, a replay — and what the transport answered), and
// every record that was not clean (poisoned: a trigger, a flipped feedback label, a forged
// batch's altered label; or honest label noise). Clean records are counted, not listed.
import { writeOutputFile, type OutputOptions } from "../../data/atomic-output.js";
import type { FleetOutcome, FleetUploadKind } from "./transport.js";

export const FLEET_BEHAVIOURS = ["trigger", "flip", "replay", "forge", "wrong-model"] as const;
export type FleetBehaviour = (typeof FLEET_BEHAVIOURS)[number];

export type ForgeryKind = "unregistered-key" | "altered-records";

export interface FleetAgentTruth {
  name: string;
  keyId: string;
  compromised: boolean;
  behaviours: FleetBehaviour[];
  /** Samples of the dataset this agent draws from. */
  sliceSize: number;
  /** Records in its own batches (forgeries and replays not counted). */
  records: number;
  /** Of those, poisoned by trigger or flip. */
  poisonedRecords: number;
}

export interface FleetUploadTruth {
  index: number;
  round: number;
  agent: string;
  sequence: number;
  /** "<agent>#<sequence>" as the statement claims it. */
  batchId: string;
  kind: FleetUploadKind;
  forgery?: ForgeryKind;
  /** For a replay: the index of the upload it repeats. */
  replayOf?: number;
  records: number;
  /** Records listed as poisoned in `records` of the truth for this upload. */
  poisoned: number;
  /** The SHA-256 of the JSONL as sent. */
  sha256: string;
  /** What the transport answered; null when nothing was sent. */
  outcome: FleetOutcome | null;
}

export type RecordHow = "trigger" | "flip" | "forge" | "noise";

export interface FleetRecordTruth {
  upload: number;
  agent: string;
  batchId: string;
  id: string;
  digest: string;
  how: RecordHow;
  /** False only for honest label noise. */
  poisoned: boolean;
  trueLabel: string;
  feedback: string | null;
  /** The class the served model's output ranks first. */
  predicted: string;
}

export interface FleetTruth {
  version: 1;
  settings: Record<string, unknown>;
  model: string;
  classes: string[];
  target: string;
  agents: FleetAgentTruth[];
  uploads: FleetUploadTruth[];
  records: FleetRecordTruth[];
}

export interface FleetSummaryRow {
  sent: number;
  accepted: number;
  refused: number;
  /** Refusals by reason code. */
  reasons: Record<string, number>;
}

export interface FleetSummary {
  total: FleetSummaryRow;
  byKind: Record<FleetUploadKind, FleetSummaryRow>;
  /** Per compromised agent: its uploads, and its poisoned records sent and accepted. */
  compromised: (FleetSummaryRow & { agent: string; poisonedSent: number; poisonedAccepted: number })[];
}

/** Counts of the truth's uploads by outcome: all, per kind, per compromised agent. */
export function summarizeFleet(truth: FleetTruth): FleetSummary {
  const empty = (): FleetSummaryRow => ({ sent: 0, accepted: 0, refused: 0, reasons: {} });
  const add = (row: FleetSummaryRow, u: FleetUploadTruth): void => {
    if (u.outcome === null) return;
    row.sent++;
    if (u.outcome.accepted) row.accepted++;
    else {
      row.refused++;
      const reason = u.outcome.reason ?? "UNKNOWN";
      row.reasons[reason] = (row.reasons[reason] ?? 0) + 1;
    }
  };
  const total = empty();
  const byKind = { batch: empty(), "wrong-model": empty(), forge: empty(), replay: empty() };
  const perAgent = new Map(
    truth.agents
      .filter((a) => a.compromised)
      .map((a) => [a.name, { agent: a.name, ...empty(), poisonedSent: 0, poisonedAccepted: 0 }]),
  );
  for (const u of truth.uploads) {
    add(total, u);
    add(byKind[u.kind], u);
    const row = perAgent.get(u.agent);
    if (row === undefined) continue;
    add(row, u);
    row.poisonedSent += u.poisoned;
    if (u.outcome?.accepted === true) row.poisonedAccepted += u.poisoned;
  }
  return { total, byKind, compromised: [...perAgent.values()] };
}

/** Write the truth as JSON (atomically; an existing file only with `overwrite`). */
export async function writeFleetTruth(
  truth: FleetTruth,
  path: string,
  options: OutputOptions = {},
): Promise<void> {
  await writeOutputFile(path, `${JSON.stringify(truth, null, 2)}\n`, options);
}
