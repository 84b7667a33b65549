// Containment, when monitoring finds something: suspend a model (recorded; deployments poll
// `GET /v1/models/{digest}/status` and stop serving it), resume it, and quarantine or release
// telemetry batches (decisions, like sources' and samples': the batches stay in the ledger as
// evidence, and the closed-loop gate leaves quarantined ones out). The third lever, revoking
// a compromised agent's key, is `revokeSourceKey` (provenance/sources.ts): the intake verifies
// every batch against the agent's current keys only, so a revoked key's batches are refused
// from the moment the revocation is recorded.
import { AntidoteError } from "../errors.js";
import type { Ledger, ModelStatus } from "../ledger/types.js";
import { resolveModel } from "../provenance/model.js";

export interface ModelStatusChange {
  status: ModelStatus;
  /** True when the model already had that status: nothing was written. */
  unchanged: boolean;
}

/** Suspend a registered model (by digest or unique prefix), saying why and who decided. */
export function suspendModel(
  ledger: Ledger,
  digest: string,
  reason: string,
  actor: string,
): Promise<ModelStatusChange> {
  return changeStatus(ledger, digest, "suspended", reason, actor);
}

/** Make a suspended model active again. */
export function resumeModel(
  ledger: Ledger,
  digest: string,
  reason: string,
  actor: string,
): Promise<ModelStatusChange> {
  return changeStatus(ledger, digest, "active", reason, actor);
}

async function changeStatus(
  ledger: Ledger,
  digestOrPrefix: string,
  status: ModelStatus["status"],
  reason: string,
  actor: string,
): Promise<ModelStatusChange> {
  requireWhoAndWhy(reason, actor);
  const digest = await resolveModel(ledger, digestOrPrefix);
  const current = await requireStatus(ledger, digest);
  if (current.status === status) return { status: current, unchanged: true };
  await ledger.append([{ kind: "model.status-changed", payload: { digest, status, reason } }], { actor });
  return { status: await requireStatus(ledger, digest), unchanged: false };
}

async function requireStatus(ledger: Ledger, digest: string): Promise<ModelStatus> {
  const status = await ledger.getModelStatus(digest);
  if (status === undefined) throw new AntidoteError("NOT_FOUND", `model ${digest} is not registered.`);
  return status;
}

export interface TelemetryDecision {
  action: "quarantine" | "release";
  batchIds: string[];
  actor: string;
  reason: string;
}

/** Quarantine accepted telemetry batches ("<agent>#<sequence>"); NOT_FOUND names one never accepted. */
export function quarantineTelemetry(
  ledger: Ledger,
  batchIds: readonly string[],
  reason: string,
  actor: string,
): Promise<TelemetryDecision> {
  return decide(ledger, "quarantine", batchIds, reason, actor);
}

/** Release quarantined telemetry batches. */
export function releaseTelemetry(
  ledger: Ledger,
  batchIds: readonly string[],
  reason: string,
  actor: string,
): Promise<TelemetryDecision> {
  return decide(ledger, "release", batchIds, reason, actor);
}

async function decide(
  ledger: Ledger,
  action: "quarantine" | "release",
  ids: readonly string[],
  reason: string,
  actor: string,
): Promise<TelemetryDecision> {
  requireWhoAndWhy(reason, actor);
  const batchIds = [...new Set(ids)];
  if (batchIds.length === 0) throw new AntidoteError("USAGE", `say which telemetry batches to ${action}.`);
  for (const id of batchIds)
    if ((await ledger.getTelemetryBatch(id)) === undefined)
      throw new AntidoteError("NOT_FOUND", `telemetry batch "${id}" is not in the ledger.`);
  await ledger.append(
    [
      {
        kind: "decision.recorded",
        payload: { action, subjectType: "telemetry-batch", subjectIds: batchIds, actor, reason },
      },
    ],
    { actor },
  );
  return { action, batchIds, actor, reason };
}

function requireWhoAndWhy(reason: string, actor: string): void {
  if (reason.trim() === "") throw new AntidoteError("USAGE", "say why: containment records its reason.");
  if (actor.trim() === "")
    throw new AntidoteError("USAGE", "say who decides: containment records its actor.");
}
