// `antidote bom` and `antidote croissant`: governance metadata straight from the ledger.
import type { Command } from "commander";
import { z } from "zod";
import { checkOutput, writeOutputFile } from "../../data/atomic-output.js";
import { buildCroissant } from "../../report/croissant.js";
import { datasetProvenance, modelBomInput } from "../../report/from-ledger.js";
import { addLedgerOption, withLedger } from "../ledger-options.js";
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
  description: z.string().optional(),
  license: z.string().optional(),
  url: z.string().optional(),
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
    const bom = await withLedger(flags, async (ledger) =>
      buildModelBom(await modelBomInput(ledger, f.model)),
    );
    await emit(bom, f.out, "CycloneDX AI-BOM", f.force);
  });

  addLedgerOption(
    program
      .command("croissant")
      .description(
        "Croissant 1.0 JSON-LD for a dataset version, with its RAI collection and annotation fields",
      )
      .requiredOption("--dataset <version>", "the dataset version")
      .option("--out <file.json>", "write to a file instead of stdout")
      .option("--force", "replace an existing --out file")
      .option("--description <text>", "dataset description")
      .option("--license <spdx-or-url>", "dataset license")
      .option("--url <url>", "where the dataset is published"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(croissantFlags, flags);
    if (f.out !== undefined) checkOutput(f.out, { overwrite: f.force === true });
    const doc = await withLedger(flags, async (ledger) => {
      const provenance = await datasetProvenance(ledger, f.dataset);
      return buildCroissant({
        ...provenance,
        name: provenance.version.name,
        ...(f.description !== undefined ? { description: f.description } : {}),
        ...(f.license !== undefined ? { license: f.license } : {}),
        ...(f.url !== undefined ? { url: f.url } : {}),
      });
    });
    await emit(doc, f.out, "Croissant metadata", f.force);
  });
}
