// `antidote model register`: tie a trained model's digest to the dataset versions it was
// trained on and the base model it was fine-tuned from, so `trace --source` can follow a
// compromised source all the way into deployed models. `model suspend`/`resume`/`status`:
// containment of a deployed model (monitor/containment.ts), read by deployments through
// GET /v1/models/{digest}/status. `model sign`/`verify`: OpenSSF model signing
// (provenance/model-signing.ts), so a base model's publisher can be checked before anyone
// fine-tunes it.
import type { Command } from "commander";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { z } from "zod";
import { resumeModel, suspendModel } from "../../monitor/containment.js";
import { registerModelFile, resolveModel } from "../../provenance/model.js";
import {
  modelReputations,
  setModelReputation,
  trustSignedModel,
  type SetModelReputationResult,
} from "../../provenance/model-reputation.js";
import {
  readModelPublicKey,
  readModelSigningKey,
  signModel,
  verifyModelSignature,
} from "../../provenance/model-signing.js";
import { checkOutput, writeOutputFile } from "../../data/atomic-output.js";
import { progressBar } from "../progress.js";
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
  requireTrustedBase: z.boolean().optional(),
  json: z.boolean().optional(),
});

const reputationFlags = z
  .object({
    reason: z.string().min(1, "say why (it is recorded in the ledger)"),
    signature: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    json: z.boolean().optional(),
  })
  .refine((f) => (f.signature === undefined) === (f.key === undefined), {
    message: "give --signature and --key together (the publisher's model signature and public key)",
    path: ["signature"],
  });

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const signFlags = z.object({
  key: z.string().min(1),
  out: z.string().min(1).optional(),
  ignore: z.array(z.string().min(1)).default([]),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

const verifyFlags = z.object({
  key: z.string().min(1),
  signature: z.string().min(1).optional(),
  ignore: z.array(z.string().min(1)).default([]),
  json: z.boolean().optional(),
});

/** model_signing's convention for a directory; a single file gets its own `.sig` beside it. */
async function defaultSignaturePath(model: string): Promise<string> {
  const info = await stat(model).catch(() => undefined);
  return info?.isDirectory() === true ? `${model.replace(/\/+$/, "")}/model.sig` : `${model}.sig`;
}

const statusFlags = z.object({
  reason: z.string().min(1, "say why (it is recorded in the ledger)"),
  json: z.boolean().optional(),
});

export function registerModel(program: Command): void {
  const model = program
    .command("model")
    .description(
      "Register trained models in the ledger; sign and verify them (OpenSSF model signing); keep the " +
        "foundation-model trust list; suspend and resume deployed ones",
    );
  addLedgerOption(
    model
      .command("register")
      .argument("<model.onnx>", "the model file (ONNX)")
      .description("Record a model's SHA-256, the dataset versions it was trained on and its base model")
      .requiredOption("--trained-on <version>", "a dataset version (repeatable)", collect)
      .option("--base <digest>", "the base model's digest, when fine-tuned from a registered model")
      .option("--name <name>", "a name for people (default: the file name)")
      .option("--require-trusted-base", "refuse unless the base model is on the trusted list (`model trust`)")
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
        ...(f.requireTrustedBase === true && { requireTrustedBase: true }),
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

  model
    .command("sign")
    .argument("<model>", "the model file or directory")
    .description(
      "Sign a model in the OpenSSF model signing format (sigstore/model-transparency v1.0, key-based)",
    )
    .requiredOption(
      "--key <file>",
      "an ECDSA private key (P-256/P-384: `antidote keygen --algorithm ecdsa-p256`)",
    )
    .option("--out <file>", "where to write the signature (default MODEL_DIR/model.sig, or MODEL_FILE.sig)")
    .option("--ignore <path>", "leave a file or directory out (repeatable)", collect)
    .option("--force", "replace an existing signature file")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      `
Every file is hashed (SHA-256); the statement lists them and signs a digest over all of them.
.git, .github, .gitattributes, .gitignore and the signature itself are left out; links are refused.
The result verifies with \`antidote model verify\` and with \`model_signing verify key\`.

Example:
  antidote keygen --out publisher --algorithm ecdsa-p256
  antidote model sign base-model/ --key publisher.key          # writes base-model/model.sig`,
    )
    .action(async (target: string, flags: Record<string, unknown>) => {
      const f = parseFlags(signFlags, flags);
      const out = f.out ?? (await defaultSignaturePath(target));
      checkOutput(out, { overwrite: f.force === true });
      const key = await readModelSigningKey(f.key);
      const bar = progressBar({ label: "hashing", unit: "bytes", enabled: f.json !== true });
      const { bundle, manifest } = await signModel(target, key, {
        ignore: f.ignore,
        signaturePath: out,
        onProgress: (done) => bar.update(done),
      }).finally(() => bar.stop());
      await writeOutputFile(out, JSON.stringify(bundle, null, 2) + "\n", { overwrite: f.force === true });
      if (f.json)
        return printJson({
          signature: out,
          modelName: manifest.modelName,
          rootDigest: manifest.rootDigest,
          files: manifest.files,
        });
      process.stdout.write(
        `signed ${manifest.modelName}: ${manifest.files.length} file${manifest.files.length === 1 ? "" : "s"}, digest ${manifest.rootDigest}\n  signature ${out}\n`,
      );
    });

  model
    .command("verify")
    .argument("<model>", "the model file or directory")
    .description("Verify an OpenSSF model signature (key-based) and that the model is exactly what it signs")
    .requiredOption("--key <file>", "the publisher's ECDSA public key (PEM)")
    .option("--signature <file>", "the signature (default MODEL_DIR/model.sig, or MODEL_FILE.sig)")
    .option("--ignore <path>", "leave a file or directory out (repeatable)", collect)
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      `
Exit 0 when the signature verifies and every file matches; 6 when a file differs, is missing or
is not covered (named), or the signature does not verify with the key.
Bundles from \`model_signing sign key\` (v1.0 and later) verify; certificate and Sigstore keyless
bundles are refused by name.

Example:
  antidote model verify base-model/ --key publisher.pub`,
    )
    .action(async (target: string, flags: Record<string, unknown>) => {
      const f = parseFlags(verifyFlags, flags);
      const signature = f.signature ?? (await defaultSignaturePath(target));
      const key = await readModelPublicKey(f.key);
      const r = await verifyModelSignature(target, signature, key, { ignore: f.ignore });
      if (f.json) return printJson({ verified: true, ...r });
      process.stdout.write(
        `verified ${r.modelName}: ${r.files.length} file${r.files.length === 1 ? "" : "s"} match the signature (digest ${r.rootDigest}, key ${r.keyHint.slice(0, 16)}…)\n`,
      );
    });

  for (const verdict of ["trust", "distrust"] as const)
    addLedgerOption(
      withSignatureOptions(verdict, model.command(verdict))
        .argument(
          verdict === "trust" ? "<digest-or-file>" : "<digest>",
          verdict === "trust"
            ? "a model's SHA-256 (or a registered model's prefix), or with --signature the model file itself"
            : "a model's SHA-256, or a registered model's unique prefix",
        )
        .requiredOption("--reason <text>", "why (recorded in the ledger)")
        .option("--json", "print JSON")
        .description(
          verdict === "trust"
            ? "Put a model (usually a foundation model) on the trusted list, on your word or on its publisher's verified signature"
            : "Put a model on the distrusted list: models built on it are refused at registration, and the ones already built are listed",
        )
        .addHelpText(
          "after",
          verdict === "trust"
            ? `
Examples:
  antidote model trust base.onnx --signature base.onnx.sig --key publisher.pub --reason "signed by the vendor"
  antidote model trust 3f2a9c1b0d4e… --reason "internal foundation model, audited 2026-11"
  antidote model register tuned.onnx --trained-on fm@3f2a9c1b0d4e --base 3f2a9c1b --require-trusted-base`
            : `
Example:
  antidote model distrust 3f2a9c1b --reason "backdoor found by antidote audit (finding #812)"`,
        ),
    ).action(async (target: string, flags: Record<string, unknown>) => {
      const f = parseFlags(reputationFlags, flags);
      const result = await withLedger(flags, (ledger) =>
        f.signature !== undefined && f.key !== undefined
          ? trustSignedModel(ledger, {
              file: target,
              signature: f.signature,
              publicKey: f.key,
              reason: f.reason,
            })
          : setModelReputation(ledger, {
              digest: target,
              verdict: verdict === "trust" ? "trusted" : "distrusted",
              reason: f.reason,
            }),
      );
      if (f.json) return printJson(result);
      printReputation(result);
    });

  addLedgerReadOption(
    model
      .command("reputation")
      .description(
        "The foundation-model reputation list: trusted and distrusted models, with why and who said so",
      )
      .option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (ledger) => {
      const list = [...(await modelReputations(ledger)).values()];
      if (flags.json === true) return printJson(list);
      printTable(
        ["digest", "verdict", "publisher", "reason", "by", "event"],
        list.map((r) => [
          r.digest.slice(0, 16),
          r.verdict,
          r.publisher?.slice(0, 12) ?? "—",
          r.reason,
          r.actor,
          r.seq,
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
      const full = await resolveModel(ledger, digest);
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

function printReputation(r: SetModelReputationResult): void {
  const out = process.stdout;
  out.write(
    `model ${r.reputation.digest} is now ${r.reputation.verdict}` +
      (r.reputation.publisher === null
        ? ""
        : ` (publisher key ${r.reputation.publisher.slice(0, 16)}…, signature verified)`) +
      ` — ledger event #${r.reputation.seq}\n`,
  );
  if (r.reputation.verdict !== "distrusted" || r.lineage === null) return;
  const built = r.lineage.descendants;
  out.write(`registered models built on it: ${built.length}\n`);
  if (built.length > 0) {
    printTable(
      ["depth", "model", "name", "status"],
      built.map((m) => [m.depth, m.digest.slice(0, 16), m.name, m.status]),
    );
    out.write(
      `Next: audit or suspend them (\`antidote model suspend DIGEST --reason …\`); \`antidote trace --model ${r.reputation.digest.slice(0, 12)}\` shows the lineage.\n`,
    );
  }
}

function withSignatureOptions(verdict: "trust" | "distrust", command: Command): Command {
  if (verdict === "distrust") return command;
  return command
    .option("--signature <file>", "the publisher's OpenSSF model signature of the file (then give the file)")
    .option("--key <file>", "the publisher's ECDSA public key");
}
