// Quarantine and release: decisions, recorded with who and why. A quarantined sample stays
// in the ledger (its history is evidence); exports leave it out. The subjects are named by
// the caller (sources, samples by id or digest) or selected by score (every sample with a
// finding scored over a threshold); the CLI and the server both decide through here.
import { AntidoteError } from "../errors.js";
import type { Decision, Ledger } from "../ledger/types.js";
import { appendOptions, type ActorOptions } from "./sources.js";

export interface DecisionInput {
  action: Decision["action"];
  /** Source names. */
  sources?: string[];
  /** Sample ids or digests. */
  samples?: string[];
  /** Every sample with a finding scored above this. */
  findingsOver?: number;
  reason: string;
  /** Who decides, as the decision records it (default: the actor). */
  by?: string;
}

export interface DecisionResult {
  action: Decision["action"];
  sources: string[];
  /** How many distinct samples the decision names. */
  samples: number;
  actor: string;
  reason: string;
}

/** Record a quarantine or release; NOT_FOUND when it names nothing at all. */
export async function recordDecision(
  ledger: Ledger,
  input: DecisionInput,
  options: ActorOptions = {},
): Promise<DecisionResult> {
  const { action, reason } = input;
  const sources = input.sources ?? [];
  const samples = input.samples ?? [];
  const actor = input.by ?? options.actor;
  if (actor === undefined || actor === "")
    throw new AntidoteError("USAGE", "say who decides: a decision records its actor.");
  if (sources.length + samples.length === 0 && input.findingsOver === undefined)
    throw new AntidoteError(
      "USAGE",
      "say what to decide on: a source, a sample, or every sample with a finding over a score.",
    );
  for (const name of sources)
    if ((await ledger.getSource(name)) === undefined)
      throw new AntidoteError("SOURCE_UNKNOWN", `source "${name}" is not registered.`);
  const decisions: Decision[] = [];
  if (sources.length > 0)
    decisions.push({ action, subjectType: "source", subjectIds: sources, actor, reason });
  const digests = [
    ...new Set([
      ...(await sampleDigests(ledger, samples)),
      ...(await findingSubjects(ledger, input.findingsOver)),
    ]),
  ];
  if (digests.length > 0)
    decisions.push({ action, subjectType: "sample", subjectIds: digests, actor, reason });
  if (decisions.length === 0)
    throw new AntidoteError(
      "NOT_FOUND",
      `no sample has a finding scored over ${input.findingsOver}; nothing ${action}d.`,
    );
  await ledger.append(
    decisions.map((payload) => ({ kind: "decision.recorded" as const, payload })),
    appendOptions(options),
  );
  return { action, sources, samples: digests.length, actor, reason };
}

async function sampleDigests(ledger: Ledger, ids: string[]): Promise<string[]> {
  const digests: string[] = [];
  for (const id of ids) {
    const trace = await ledger.traceSample(id);
    if (trace === undefined) throw new AntidoteError("NOT_FOUND", `sample "${id}" is not in the ledger.`);
    digests.push(trace.sample.digest);
  }
  return digests;
}

async function findingSubjects(ledger: Ledger, over: number | undefined): Promise<string[]> {
  if (over === undefined) return [];
  const digests: string[] = [];
  for await (const finding of ledger.findings({ subjectType: "sample", minScore: over }))
    if (finding.score > over) digests.push(finding.subjectId);
  return digests;
}
