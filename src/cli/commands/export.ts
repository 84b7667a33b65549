// `antidote export`: a clean dataset version, rebuilt from the ledger and its sample store.
import { Option, type Command } from "commander";
import { z } from "zod";
import { WRITABLE_FORMATS } from "../../data/open.js";
import type { DatasetFormat } from "../../data/sample.js";
import { exportVersion } from "../../provenance/export.js";
import { addLedgerOption, printJson, withLedger } from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { progressBar } from "../progress.js";

const exportFlags = z.object({
  dataset: z.string().min(1),
  out: z.string().min(1),
  format: z.enum(WRITABLE_FORMATS as [string, ...string[]]).optional(),
  excludeQuarantined: z.boolean().optional(),
  excludeSource: z.array(z.string().min(1)).default([]),
  name: z.string().min(1).optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerExport(program: Command): void {
  addLedgerOption(
    program
      .command("export")
      .description(
        "Write a dataset version from the ledger, leaving out quarantined samples or whole sources;\n" +
          "records the result as a new version (parent: the one exported) and signs its manifest with the ledger key",
      )
      .requiredOption(
        "--dataset <version>",
        "the dataset version to export (`antidote ledger versions` lists them)",
      )
      .requiredOption("--out <path>", "output file or directory")
      .addOption(
        new Option("--format <format>", "output format (default: from --out)").choices(WRITABLE_FORMATS),
      )
      .option("--exclude-quarantined", "leave out quarantined samples and samples of quarantined sources")
      .option("--exclude-source <name>", "leave out everything a source delivered (repeatable)", collect)
      .option("--name <dataset>", "name of the new version (default: the parent's)")
      .option(
        "--force",
        "replace an existing output and its .sigstore.json (only once the new ones are complete)",
      )
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
Examples:
  antidote export --dataset fm@3f2a9c1b0d4e --exclude-quarantined --out clean.parquet
  antidote export --dataset fm@3f2a9c1b0d4e --exclude-source acme --format jsonl --out clean.jsonl

Writes <out>.sigstore.json beside the output: a signed in-toto manifest verifiable with
\`antidote verify <out> --signature <out>.sigstore.json --key <ledger public key>\`.`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(exportFlags, flags);
    const bar = progressBar({ label: "exporting", unit: "samples", enabled: !f.json });
    const result = await withLedger(flags, (ledger) =>
      exportVersion(ledger, {
        version: f.dataset,
        out: f.out,
        format: f.format as DatasetFormat | undefined,
        excludeQuarantined: f.excludeQuarantined,
        excludeSources: f.excludeSource,
        name: f.name,
        overwrite: f.force,
        onProgress: (done) => done % 500 === 0 && bar.update(done),
      }).finally(() => bar.stop()),
    );
    if (f.json) return printJson(result);
    process.stdout.write(
      `exported ${result.written.toLocaleString("en-US")} samples of ${result.parent} to ${result.out}` +
        ` (left out: ${result.excluded.quarantined} quarantined, ${result.excluded.bySource} from excluded sources)\n` +
        `  new dataset version ${result.version}${result.alreadyRecorded ? " (already recorded)" : ""}\n` +
        `  signed manifest ${result.signature}\n`,
    );
  });
}
