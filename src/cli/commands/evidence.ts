// `antidote evidence`: the signed evidence pack for auditors (src/evidence/), and
// `antidote evidence verify DIR`, which proves a pack matches the ledger. A thin shell: flags
// in, library calls, one line per file on stderr.
import type { Command } from "commander";
import { z } from "zod";
import { checkOutput } from "../../data/atomic-output.js";
import { AntidoteError } from "../../errors.js";
import { buildEvidencePack, verifyEvidencePack, writeEvidencePack } from "../../evidence/index.js";
import { addLedgerOption, printJson, withLedger, withLedgerReader } from "../ledger-options.js";
import { parseFlags } from "../options.js";

const buildFlags = z.object({
  model: z.string().min(1).optional(),
  dataset: z.string().min(1).optional(),
  out: z.string().min(1),
  pdf: z.boolean().optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});
const verifyFlags = z.object({ json: z.boolean().optional() });

export function registerEvidence(program: Command): void {
  const evidence = addLedgerOption(
    program
      .command("evidence")
      .description(
        "A signed evidence pack for one model or dataset version: the nine poisoning controls, what was done, " +
          "when, by whom and with which result, each claim linked to ledger events, the gaps, and the mapping to " +
          "EU AI Act, NIST AI RMF / AI 100-2, ISO/IEC 42001, MITRE ATLAS and OWASP LLM04 (JSON, HTML, OSCAL, PDF)",
      )
      .option("--model <digest>", "the model's digest (a unique prefix of at least 4 hex digits will do)")
      .option("--dataset <version>", "a dataset version instead of a model")
      .option("--out <dir>", "the pack's directory (written atomically; required)")
      .option(
        "--pdf",
        "also render evidence.pdf with headless Chromium ($ANTIDOTE_CHROMIUM or /usr/bin/chromium)",
      )
      .option("--force", "replace an existing --out directory")
      .option("--json", "print the written files as JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(buildFlags, flags);
    if ((f.model === undefined) === (f.dataset === undefined))
      throw new AntidoteError("USAGE", "give exactly one of --model <digest> or --dataset <version>.");
    checkOutput(f.out, { kind: "directory", overwrite: f.force === true });
    const written = await withLedger(flags, async (ledger) => {
      const target = f.model !== undefined ? { model: f.model } : { dataset: f.dataset as string };
      const pack = await buildEvidencePack(ledger, target, {
        onProgress: (message) => process.stderr.write(`evidence: ${message}\n`),
      });
      if (f.pdf === true) process.stderr.write("evidence: rendering the PDF\n");
      return writeEvidencePack(pack, f.out, ledger.signer, {
        pdf: f.pdf === true,
        overwrite: f.force === true,
      });
    });
    if (f.json === true) printJson(written);
    else {
      for (const file of written.files)
        process.stderr.write(`wrote ${f.out}/${file.name} (sha256 ${file.sha256.slice(0, 16)}…)\n`);
      process.stderr.write(
        `signed with ledger key ${written.keyId.slice(0, 16)}…; check with: antidote evidence verify ${f.out}\n`,
      );
    }
  });

  // `evidence verify DIR --ledger X`: --ledger is the parent's option (commander hands it to
  // `evidence`), read here with the subcommand's own flags; the ledger is opened read-only.
  evidence
    .command("verify")
    .description(
      "Check an evidence pack against the ledger: its signature (the ledger's key), its files' digests, that the " +
        "ledger extends its checkpoint, and that every linked event is in the ledger with that hash",
    )
    .argument("<dir>", "the pack's directory")
    .option("--json", "print the result as JSON")
    .action(async (dir: string, own: Record<string, unknown>, cmd: Command) => {
      const flags = cmd.optsWithGlobals<Record<string, unknown>>();
      const f = parseFlags(verifyFlags, { json: own.json ?? flags.json });
      const result = await withLedgerReader(flags, (ledger) => verifyEvidencePack(dir, ledger));
      if (f.json === true) printJson(result);
      else
        process.stdout.write(
          `ok: ${dir} is signed by ledger key ${result.keyId.slice(0, 16)}…, its ${result.files.length} files match, ` +
            `the ledger extends its checkpoint #${result.checkpoint.seq}, and all ${result.events} linked events are in the ledger.\n`,
        );
    });
}
