// The `antidote` command: a thin shell over the library. Each command parses and validates
// its flags, calls the library, and prints a table (or JSON with --json). Errors that are
// the user's to fix print one line and exit with a documented code; only bugs show a stack.
import { Command, CommanderError } from "commander";
import { isAntidoteError } from "../errors.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { jsonWritten } from "./ledger-options.js";
import { registerDatasets } from "./commands/datasets.js";
import { registerInspect } from "./commands/inspect.js";
import { registerConvert } from "./commands/convert.js";
import { registerAttack } from "./commands/attack.js";
import { registerDemo } from "./commands/demo.js";
import { registerKeygen } from "./commands/keygen.js";
import { registerSign } from "./commands/sign.js";
import { registerVerify } from "./commands/verify.js";
import { registerSource } from "./commands/source.js";
import { registerPolicy } from "./commands/policy.js";
import { registerEvidence } from "./commands/evidence.js";
import { registerIngest } from "./commands/ingest.js";
import { registerTrace } from "./commands/trace.js";
import { registerQuarantine } from "./commands/quarantine.js";
import { registerExport } from "./commands/export.js";
import { registerDerive } from "./commands/derive.js";
import { registerModel } from "./commands/model.js";
import { registerLedger } from "./commands/ledger.js";
import { registerBom } from "./commands/bom.js";
import { registerWeb } from "./commands/web.js";
import { registerAggregate, registerSignUpdate } from "./commands/aggregate.js";
import { registerFlSim } from "./commands/fl-sim.js";
import { registerDpa } from "./commands/dpa.js";
import { registerScan } from "./commands/scan.js";
import { registerAudit } from "./commands/audit.js";
import { registerServe } from "./commands/serve.js";
import { registerWorker } from "./commands/worker.js";
import { registerToken } from "./commands/token.js";
import { registerTelemetry } from "./commands/telemetry.js";
import { registerTelemetrySign } from "./commands/telemetry-sign.js";
import { registerTelemetryExport } from "./commands/telemetry-export.js";
import { registerMonitor } from "./commands/monitor.js";
import { registerFleetSim } from "./commands/fleet-sim.js";
import { VERSION } from "../version.js";

export function buildProgram(): Command {
  const program = new Command("antidote")
    .description(
      "Defend ML training pipelines against training-data poisoning.\n\n" +
        "Read datasets in JSONL, CSV, Parquet (incl. Hugging Face image datasets), ImageFolder and IDX;\n" +
        "build poisoned variants with attack simulators to test your defences; accept supplier data only\n" +
        "when signed and intact, record its provenance in a tamper-evident ledger, trace what a compromised\n" +
        "source reached, and export clean versions with an AI-BOM.",
    )
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerDatasets(program);
  registerInspect(program);
  registerConvert(program);
  registerAttack(program);
  registerDemo(program);
  registerKeygen(program);
  registerSign(program);
  registerVerify(program);
  registerSource(program);
  registerPolicy(program);
  registerIngest(program);
  registerTrace(program);
  registerQuarantine(program);
  registerExport(program);
  registerDerive(program);
  registerScan(program);
  registerAudit(program);
  registerModel(program);
  registerEvidence(program);
  registerLedger(program);
  registerBom(program);
  registerWeb(program);
  registerSignUpdate(program);
  registerAggregate(program);
  registerFlSim(program);
  registerDpa(program);
  registerServe(program);
  registerWorker(program);
  registerToken(program);
  registerTelemetry(program);
  registerTelemetrySign(program);
  registerTelemetryExport(program);
  registerMonitor(program);
  registerFleetSim(program);
  program.addHelpText(
    "after",
    `
Examples:
  antidote datasets                                   what real data is installed here
  antidote inspect fashion-mnist                      classes, shapes and counts of a dataset
  antidote convert spamassassin out/spam.jsonl        any readable format to jsonl/csv/parquet/imagefolder/idx
  antidote attack patch fashion-mnist --target Bag --rate 0.01 --out out/fm-patch.parquet
                                                      BadNets patch on 1% of the samples, with ground truth
  antidote source add acme --kind supplier --key acme.pub
  antidote ingest delivery.parquet --source acme --signature delivery.sigstore.json
  antidote trace --source acme                        blast radius: samples, versions, models

Exit codes: 0 ok, 1 internal error (a bug: please report), 2 bad flags, 3 bad input file,
            4 bundled dataset not installed, 5 attack cannot poison as many samples as asked,
            6 verification failed (signature, digest or ledger chain), 7 unknown source/version/model
            or ledger unreachable.`,
  );
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // A script that asked for JSON reads stdout: a failure is JSON there too (and one line on stderr).
  const json = wantsJson(argv);
  try {
    await program.parseAsync(argv, { from: "user" });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has already printed its message (and help for --help/--version).
      if (e.exitCode === 0) return EXIT.ok;
      if (json) printJsonError("USAGE", EXIT.usage, e.message.replace(/^error: /, ""));
      return EXIT.usage;
    }
    // The reader of an output we stream (`convert x /dev/stdout | head`) went away: like
    // other Unix tools, stop quietly.
    if (brokenPipe(e)) return EXIT.ok;
    if (isAntidoteError(e)) {
      process.stderr.write(`antidote: ${e.message}\n`);
      if (json && !jsonWritten()) printJsonError(e.code, exitCodeFor(e.code), e.message);
      return exitCodeFor(e.code);
    }
    process.stderr.write(`antidote: internal error — please report it with the command you ran.\n`);
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    if (json) printJsonError("INTERNAL", EXIT.internal, e instanceof Error ? e.message : String(e));
    return EXIT.internal;
  }
}

function brokenPipe(e: unknown): boolean {
  for (let c: unknown = e; c instanceof Error; c = c.cause)
    if ((c as NodeJS.ErrnoException).code === "EPIPE") return true;
  return false;
}

/** `--json` among the options (before a `--` that ends them). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).includes("--json");
}

function printJsonError(code: string, exitCode: number, message: string): void {
  process.stdout.write(JSON.stringify({ error: { code, exitCode, message } }) + "\n");
}
