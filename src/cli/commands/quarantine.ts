// `antidote quarantine` / `antidote release`: decisions, recorded with who and why. A
// quarantined sample stays in the ledger (its history is evidence); exports leave it out.
// A shell over provenance/decisions.ts, which the server shares.
import type { Command } from "commander";
import { userInfo } from "node:os";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { recordDecision } from "../../provenance/decisions.js";
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
      const summary = await withLedger(flags, (ledger) =>
        recordDecision(ledger, {
          action,
          sources: f.source,
          samples: f.sample,
          findingsOver: f.findingsOver,
          reason: f.reason,
          by: f.by ?? userInfo().username,
        }).catch((e: unknown) => {
          throw flagTerms(e);
        }),
      );
      if (f.json) printJson(summary);
      else
        process.stdout.write(
          `${action}d ${[
            f.source.length ? `${f.source.length} source(s) (${f.source.join(", ")})` : "",
            summary.samples ? `${summary.samples} sample(s)` : "",
          ]
            .filter(Boolean)
            .join(" and ")} — by ${summary.actor}: ${f.reason}\n`,
        );
    });
  }
}

// The library names a source or sample; the CLI points at the flag that named it.
function flagTerms(e: unknown): unknown {
  if (!(e instanceof AntidoteError)) return e;
  if (e.code === "SOURCE_UNKNOWN") return new AntidoteError(e.code, `--source: ${e.message}`, { cause: e });
  if (e.code === "NOT_FOUND" && e.message.startsWith("sample "))
    return new AntidoteError(e.code, `--sample: ${e.message}`, { cause: e });
  return e;
}
