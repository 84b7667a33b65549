// `antidote ledger …`: check the ledger's integrity and read its history.
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { addLedgerOption, printJson, withLedger } from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const logFlags = z.object({
  from: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().positive().default(50),
  json: z.boolean().optional(),
});

export function registerLedger(program: Command): void {
  const ledger = program.command("ledger").description("Verify the ledger's hash chain and read its history");

  addLedgerOption(
    ledger
      .command("verify")
      .description(
        "Recompute every event hash and link, check every signed checkpoint, and replay the events\n" +
          "to check the derived tables; names the first bad event. Exit 6 when anything fails.",
      )
      .option("--json", "print the report as JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedger(flags, async (l) => {
      const report = await l.verify();
      if (flags.json === true) printJson({ location: l.location, ...report });
      else if (report.ok)
        process.stdout.write(
          `ledger ${l.location}: OK — ${report.events} events, ${report.checkpoints} signed checkpoints, derived tables match\n`,
        );
      if (!report.ok) {
        const first = report.firstBad
          ? `first bad event #${report.firstBad.seq}: ${report.firstBad.reason}`
          : "";
        const tables = report.tableMismatches.length
          ? `derived tables disagree: ${report.tableMismatches.join(", ")}`
          : "";
        throw new AntidoteError(
          "LEDGER_TAMPERED",
          `ledger ${l.location} does not verify — ${[first, tables].filter(Boolean).join("; ")}.`,
        );
      }
    });
  });

  addLedgerOption(
    ledger
      .command("log")
      .description("Print events in order")
      .option("--from <seq>", "first event", "1")
      .option("--limit <n>", "events to print", "50")
      .option("--json", "print JSON lines, one event each"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(logFlags, flags);
    await withLedger(flags, async (l) => {
      const rows: (string | number)[][] = [];
      for await (const event of l.events(f.from)) {
        if (f.json) process.stdout.write(JSON.stringify(event) + "\n");
        else rows.push([event.seq, event.at, event.actor, event.kind, event.hash.slice(0, 16)]);
        if (event.seq >= f.from + f.limit - 1) break;
      }
      if (!f.json) printTable(["seq", "at", "actor", "kind", "hash"], rows);
    });
  });

  addLedgerOption(
    ledger.command("versions").description("List dataset versions").option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedger(flags, async (l) => {
      const versions = await l.listDatasetVersions();
      if (flags.json === true) return printJson(versions);
      printTable(
        ["version", "name", "samples", "parent", "made by", "at"],
        versions.map((v) => [
          v.version,
          v.name,
          v.sampleCount,
          v.parent ?? "—",
          v.transform.kind,
          v.createdAt,
        ]),
      );
    });
  });
}
