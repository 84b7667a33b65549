// `antidote model register`: tie a trained model's digest to the dataset versions it was
// trained on and the base model it was fine-tuned from, so `trace --source` can follow a
// compromised source all the way into deployed models. `model suspend`/`resume`/`status`:
// containment of a deployed model (monitor/containment.ts), read by deployments through
// GET /v1/models/{digest}/status.
import type { Command } from "commander";
import { basename } from "node:path";
import { z } from "zod";
import { resumeModel, suspendModel } from "../../monitor/containment.js";
import { registerModelFile } from "../../provenance/model.js";
import { AntidoteError } from "../../errors.js";
import { localUser } from "./telemetry.js";
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

const statusFlags = z.object({
  reason: z.string().min(1, "say why (it is recorded in the ledger)"),
  json: z.boolean().optional(),
});

export function registerModel(program: Command): void {
  const model = program
    .command("model")
    .description("Register trained models in the ledger; suspend and resume deployed ones");
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

  for (const action of ["suspend", "resume"] as const)
    addLedgerOption(
      model
        .command(action)
        .argument("<digest>", "the model's digest (a unique prefix will do)")
        .requiredOption("--reason <text>", "why (recorded in the ledger)")
        .option("--json", "print JSON")
        .description(
          action === "suspend"
            ? "Suspend a model: its status says suspended, so deployments polling it stop serving it"
            : "Make a suspended model active again",
        )
        .addHelpText(
          "after",
          `\nExample:\n  antidote model ${action} 9ac1e0d2 --reason "${action === "suspend" ? "trigger alarms from 3 agents" : "retrained on a clean version"}"`,
        ),
    ).action(async (digest: string, flags: Record<string, unknown>) => {
      const f = parseFlags(statusFlags, flags);
      const apply = action === "suspend" ? suspendModel : resumeModel;
      const { status, unchanged } = await withLedger(flags, (ledger) =>
        apply(ledger, digest, f.reason, localUser()),
      );
      if (f.json) return printJson({ ...status, unchanged });
      process.stdout.write(
        unchanged
          ? `model ${status.digest} is already ${status.status}; nothing written\n`
          : `model ${status.digest} is now ${status.status}\n`,
      );
    });

  addLedgerReadOption(
    model
      .command("status")
      .argument("<digest>", "the model's digest (a unique prefix will do)")
      .option("--json", "print JSON")
      .description("Whether a model is suspended, since when, why and by whom")
      .addHelpText("after", "\nExample:\n  antidote model status 9ac1e0d2 --json"),
  ).action(async (digest: string, flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (ledger) => {
      const prefix = digest.toLowerCase();
      const matches = (await ledger.listModels()).filter((m) => m.digest.startsWith(prefix));
      if (matches.length > 1)
        throw new AntidoteError(
          "USAGE",
          `<digest>: "${digest}" matches ${matches.length} models; give more digits.`,
        );
      const full = matches[0]?.digest ?? prefix;
      const status = await ledger.getModelStatus(full);
      if (status === undefined) throw new AntidoteError("NOT_FOUND", `model ${full} is not registered.`);
      if (flags.json === true) return printJson(status);
      process.stdout.write(
        `model ${status.digest}: ${status.status} since ${status.since}` +
          (status.reason === null ? "" : `\n  reason: ${status.reason} (${status.actor ?? "unknown"})`) +
          "\n",
      );
    });
  });
}
