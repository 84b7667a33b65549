// `antidote derive`: record processing done with the team's own tools as a new version.
import { Option, type Command } from "commander";
import { z } from "zod";
import { DERIVE_KINDS, deriveVersion, type DeriveKind } from "../../provenance/derive.js";
import { addLedgerOption, printJson, withLedger } from "../ledger-options.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar } from "../progress.js";

const deriveFlags = z.object({
  from: z.string().min(1),
  kind: z.enum(DERIVE_KINDS as unknown as [DeriveKind, ...DeriveKind[]]),
  tool: z.string().min(1),
  toolVersion: z.string().min(1),
  param: z.array(z.string().regex(/^[^=]+=.*$/, "expected key=value")).default([]),
  name: z.string().min(1).optional(),
  json: z.boolean().optional(),
});

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerDerive(program: Command): void {
  addLedgerOption(
    addReadOptions(
      program
        .command("derive")
        .argument("<data>", "the dataset your tool produced from the parent version")
        .description(
          "Record dedup, filtering, splitting or sampling done with your own tools as a new\n" +
            "dataset version: parent, tool, tool version, parameters, input and output digests",
        )
        .requiredOption("--from <version>", "the parent dataset version")
        .addOption(
          new Option("--kind <kind>", "what the step did").choices(DERIVE_KINDS).makeOptionMandatory(),
        )
        .requiredOption("--tool <name>", "the tool that did it")
        .requiredOption("--tool-version <version>", "its version")
        .option("--param <key=value>", "a parameter of the step (repeatable)", collect)
        .option("--name <dataset>", "name of the new version (default: the parent's)")
        .option("--json", "print JSON")
        .addHelpText(
          "after",
          `
Example:
  antidote derive dedup.parquet --from fm@3f2a9c1b0d4e --kind dedup --tool text-dedup --tool-version 0.4 \\
    --param threshold=0.9

Every sample must already be in the parent version with the same content and label; new
or changed content and new labels must arrive through \`antidote ingest\` so they have an origin.`,
        ),
    ),
  ).action(async (data: string, flags: Record<string, unknown>) => {
    const f = parseFlags(deriveFlags, flags);
    const bar = progressBar({ label: "reading", unit: "samples", enabled: !f.json });
    const parameters = Object.fromEntries(
      f.param.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)] as const),
    );
    const result = await withLedger(flags, (ledger) =>
      deriveVersion(ledger, {
        data,
        parent: f.from,
        kind: f.kind,
        tool: f.tool,
        toolVersion: f.toolVersion,
        parameters,
        name: f.name,
        readOptions: readOptionsFrom(flags),
        onProgress: (n) => bar.update(n),
      }).finally(() => bar.stop()),
    );
    if (f.json) return printJson(result);
    process.stdout.write(
      `recorded ${f.kind} of ${result.parent} as ${result.version}${result.alreadyRecorded ? " (already recorded)" : ""}: ` +
        `${result.samples} samples, ${result.removed} removed\n`,
    );
  });
}
