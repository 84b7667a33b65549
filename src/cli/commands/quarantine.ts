// `antidote quarantine` / `antidote release`: decisions, recorded with who and why. A
// quarantined sample stays in the ledger (its history is evidence); exports leave it out.
import type { Command } from "commander";
import { userInfo } from "node:os";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import type { Decision, Ledger } from "../../ledger/types.js";
import { addLedgerOption, printJson, withLedger } from "../ledger-options.js";
import { parseFlags } from "../options.js";

const decisionFlags = z
  .object({
    source: z.array(z.string().min(1)).default([]),
    sample: z.array(z.string().min(1)).default([]),
    findingsOver: z.coerce.number().optional(),
    reason: z.string().min(1),
    by: z.string().min(1).optional(),
    json: z.boolean().optional(),
  })
  .refine((f) => f.source.length + f.sample.length + (f.findingsOver === undefined ? 0 : 1) > 0, {
    message: "say what to decide on: --source NAME, --sample ID (repeatable) or --findings-over SCORE",
    path: ["source"],
  });

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerQuarantine(program: Command): void {
  for (const action of ["quarantine", "release"] as const) {
    addLedgerOption(
      program
        .command(action)
        .description(
          action === "quarantine"
            ? "Quarantine a source, samples, or every sample with a finding over a score; exports then leave them out"
            : "Release a quarantined source or samples (the earlier decision stays in the ledger)",
        )
        .option("--source <name>", "a source (repeatable)", collect)
        .option("--sample <id-or-digest>", "a sample (repeatable)", collect)
        .option("--findings-over <score>", "every sample with a finding scored above this")
        .requiredOption("--reason <text>", "why (recorded in the ledger)")
        .option("--by <name>", "who decides (default: your user name)")
        .option("--json", "print JSON")
        .addHelpText(
          "after",
          action === "quarantine"
            ? `
Examples:
  antidote quarantine --source acme --reason "supplier breach 2026-11-20"
  antidote quarantine --findings-over 0.9 --reason "scan 2026-11-24"`
            : "",
        ),
    ).action(async (flags: Record<string, unknown>) => {
      const f = parseFlags(decisionFlags, flags);
      const actor = f.by ?? userInfo().username;
      await withLedger(flags, async (ledger) => {
        const decisions: Decision[] = [];
        for (const name of f.source)
          if ((await ledger.getSource(name)) === undefined)
            throw new AntidoteError("SOURCE_UNKNOWN", `--source: "${name}" is not registered.`);
        if (f.source.length > 0)
          decisions.push({ action, subjectType: "source", subjectIds: f.source, actor, reason: f.reason });
        const digests = [
          ...(await sampleDigests(ledger, f.sample)),
          ...(await findingSubjects(ledger, f.findingsOver)),
        ];
        const unique = [...new Set(digests)];
        if (unique.length > 0)
          decisions.push({ action, subjectType: "sample", subjectIds: unique, actor, reason: f.reason });
        if (decisions.length === 0)
          throw new AntidoteError(
            "NOT_FOUND",
            `no sample has a finding scored over ${f.findingsOver}; nothing ${action}d.`,
          );
        await ledger.append(decisions.map((payload) => ({ kind: "decision.recorded" as const, payload })));
        const summary = { action, sources: f.source, samples: unique.length, actor, reason: f.reason };
        if (f.json) printJson(summary);
        else
          process.stdout.write(
            `${action}d ${[
              f.source.length ? `${f.source.length} source(s) (${f.source.join(", ")})` : "",
              unique.length ? `${unique.length} sample(s)` : "",
            ]
              .filter(Boolean)
              .join(" and ")} — by ${actor}: ${f.reason}\n`,
          );
      });
    });
  }
}

async function sampleDigests(ledger: Ledger, ids: string[]): Promise<string[]> {
  const digests: string[] = [];
  for (const id of ids) {
    const trace = await ledger.traceSample(id);
    if (trace === undefined) throw new AntidoteError("NOT_FOUND", `--sample: "${id}" is not in the ledger.`);
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
