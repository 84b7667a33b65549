// `antidote bom` and `antidote croissant`: governance metadata straight from the ledger.
import type { Command } from "commander";
import { z } from "zod";
import { checkOutput, writeOutputFile } from "../../data/atomic-output.js";
import { croissantFromLedger, samplesCsvPath, writeCroissant } from "../../report/ledger-documents.js";
import { modelBomInput } from "../../report/from-ledger.js";
import { addLedgerOption, withLedgerReader } from "../ledger-options.js";
import { parseFlags } from "../options.js";

const bomFlags = z.object({
  model: z.string().min(1),
  out: z.string().min(1).optional(),
  force: z.boolean().optional(),
});
const croissantFlags = z.object({
  dataset: z.string().min(1),
  out: z.string().min(1).optional(),
  force: z.boolean().optional(),
  description: z.string().min(1).optional(),
  license: z.string().min(1).optional(),
  creator: z.string().min(1).optional(),
  citeAs: z.string().min(1).optional(),
  url: z.url().optional(),
  data: z.array(z.string().min(1)).optional(),
});

async function emit(json: object, out: string | undefined, what: string, force = false): Promise<void> {
  const text = JSON.stringify(json, null, 2) + "\n";
  if (out === undefined) process.stdout.write(text);
  else {
    await writeOutputFile(out, text, { overwrite: force });
    process.stderr.write(`wrote ${what} to ${out}\n`);
  }
}

export function registerBom(program: Command): void {
  addLedgerOption(
    program
      .command("bom")
      .description(
        "CycloneDX 1.6 AI-BOM for a registered model: the model with its model card, each dataset version it\n" +
          "was trained on with sources, deliveries and lineage, and its base models as pedigree (schema-validated)",
      )
      .requiredOption("--model <digest>", "the model's digest (a unique prefix will do)")
      .option("--out <file.cdx.json>", "write to a file instead of stdout")
      .option("--force", "replace an existing --out file"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(bomFlags, flags);
    if (f.out !== undefined) checkOutput(f.out, { overwrite: f.force === true });
    // The CycloneDX library is loaded here, not by every command at start-up.
    const { buildModelBom } = await import("../../report/bom.js");
    const bom = await withLedgerReader(flags, async (ledger) =>
      buildModelBom(await modelBomInput(ledger, f.model)),
    );
    await emit(bom, f.out, "CycloneDX AI-BOM", f.force);
  });

  addLedgerOption(
    program
      .command("croissant")
      .description(
        "Croissant 1.0 JSON-LD for a dataset version: files with SHA-256, per-sample provenance\n" +
          "(written beside --out as CSV, else inline), and the RAI fields filled from the ledger",
      )
      .requiredOption("--dataset <version>", "the dataset version")
      .option("--out <file.json>", "write to a file (and FILE.samples.csv beside it) instead of stdout")
      .option("--force", "replace an existing --out file")
      .option("--data <path...>", "exported files or folders of this version to list (checked to hold it)")
      .option("--description <text>", "dataset description")
      .option("--license <spdx-or-url>", 'dataset license (default: "not recorded")')
      .option("--creator <name>", 'who made the dataset (default: "not recorded")')
      .option("--cite-as <citation>", "how to cite it (default: the version id and Merkle root)")
      .option("--url <url>", "where the dataset is published"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(croissantFlags, flags);
    const { out, force, dataset, ...options } = f;
    if (out !== undefined)
      checkOutput(out, {
        overwrite: force === true,
        inputs: options.data ?? [],
        companions: [samplesCsvPath(out)],
      });
    await withLedgerReader(flags, async (ledger) => {
      if (out === undefined) {
        const { document } = await croissantFromLedger(ledger, dataset, options);
        process.stdout.write(JSON.stringify(document, null, 2) + "\n");
        return;
      }
      const written = await writeCroissant(ledger, dataset, out, { ...options, overwrite: force === true });
      process.stderr.write(`wrote Croissant metadata to ${written.out} and ${written.samplesCsv}\n`);
    });
  });
}
