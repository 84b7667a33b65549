// `antidote model register`: tie a trained model's digest to the dataset versions it was
// trained on and the base model it was fine-tuned from, so `trace --source` can follow a
// compromised source all the way into deployed models.
import type { Command } from "commander";
import { basename } from "node:path";
import { z } from "zod";
import { registerModelFile } from "../../provenance/model.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const registerFlags = z.object({
  trainedOn: z.array(z.string().min(1)).min(1),
  base: z
    .string()
    .regex(/^[0-9a-f]{8,64}$/i, "a model digest (hex; a unique prefix will do)")
    .optional(),
  name: z.string().min(1).optional(),
  json: z.boolean().optional(),
});

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerModel(program: Command): void {
  const model = program.command("model").description("Register trained models in the ledger");
  addLedgerOption(
    model
      .command("register")
      .argument("<model.onnx>", "the model file (ONNX)")
      .description("Record a model's SHA-256, the dataset versions it was trained on and its base model")
      .requiredOption("--trained-on <version>", "a dataset version (repeatable)", collect)
      .option("--base <digest>", "the base model's digest, when fine-tuned from a registered model")
      .option("--name <name>", "a name for people (default: the file name)")
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
Example:
  antidote model register classifier.onnx --trained-on fm@3f2a9c1b0d4e --base 9ac1e0…`,
      ),
  ).action(async (file: string, flags: Record<string, unknown>) => {
    const f = parseFlags(registerFlags, flags);
    const record = await withLedger(flags, (ledger) =>
      registerModelFile(ledger, {
        file,
        trainedOn: f.trainedOn,
        base: f.base,
        name: f.name ?? basename(file),
      }),
    );
    if (f.json) return printJson(record);
    process.stdout.write(
      `registered model ${record.name}\n  digest ${record.digest}\n  trained on ${record.trainedOn.join(", ")}` +
        `${record.baseModel ? `\n  base model ${record.baseModel}` : ""}\n`,
    );
  });

  addLedgerReadOption(
    model.command("list").description("List registered models").option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (ledger) => {
      const models = await ledger.listModels();
      if (flags.json === true) return printJson(models);
      printTable(
        ["digest", "name", "trained on", "base"],
        models.map((m) => [
          m.digest.slice(0, 16),
          m.name,
          m.trainedOn.join(", "),
          m.baseModel?.slice(0, 16) ?? "—",
        ]),
      );
    });
  });
}
