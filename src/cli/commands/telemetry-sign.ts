// `antidote telemetry sign`: sign a JSONL file of telemetry records as one batch, for an agent
// that writes its records itself (or a test): the file's bytes are signed exactly as they are,
// after the same record checks the intake makes, and the envelope is written beside it
// (<records>.dsse.json), the pair `antidote telemetry ingest` reads.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { Command } from "commander";
import { z } from "zod";
import { writeOutputFile } from "../../data/atomic-output.js";
import { AntidoteError } from "../../errors.js";
import { readTelemetryStatement, signJsonl } from "../../monitor/agent-batch.js";
import { parseTelemetryRecords, TELEMETRY_LIMITS } from "../../monitor/schema.js";
import { readPrivateKey } from "../../provenance/keys.js";
import { parseFlags } from "../options.js";

const flags = z.object({
  agent: z.string().min(1),
  key: z.string().min(1),
  model: z.string().min(1),
  classes: z
    .string()
    .min(1)
    .transform((v) => v.split(",").map((c) => c.trim())),
  sequence: z.coerce.number({ error: "must be a whole number" }).int().min(0).max(Number.MAX_SAFE_INTEGER),
  envelope: z.string().min(1).optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

/**
 * Add `sign` to the `telemetry` command (made here when the program has none yet), e.g. in
 * main.ts after registerTelemetry(program): `registerTelemetrySign(program)`.
 */
export function registerTelemetrySign(program: Command): void {
  const telemetry =
    program.commands.find((c) => c.name() === "telemetry") ??
    program.command("telemetry").description("Deployed agents' signed telemetry");
  telemetry
    .command("sign")
    .argument("<records.jsonl>", "telemetry records, one per line (docs/telemetry.md)")
    .description("Sign a JSONL file of telemetry records as one batch (writes <records.jsonl>.dsse.json)")
    .requiredOption("--agent <name>", "the agent's source name")
    .requiredOption("--key <file.key>", "the agent's private key (antidote keygen)")
    .requiredOption("--model <digest|file.onnx>", "the model the agent runs: its SHA-256, or the file")
    .requiredOption("--classes <list>", "the model's class names in output order, comma-separated")
    .requiredOption("--sequence <n>", "the batch's sequence number (one above the agent's last)")
    .option("--envelope <file>", "where to write the envelope (default: <records.jsonl>.dsse.json)")
    .option("--force", "replace an existing envelope")
    .option("--json", "print the statement as JSON")
    .addHelpText(
      "after",
      `
Example:
  antidote telemetry sign batch-42.jsonl --agent agent-17 --key agent-17.key --model model.onnx \\
    --classes ham,spam --sequence 42
  antidote telemetry ingest batch-42.jsonl          # reads batch-42.jsonl.dsse.json`,
    )
    .action(async (file: string, raw: Record<string, unknown>) => {
      const f = parseFlags(flags, raw);
      const records = await readRecords(file);
      const upload = signJsonl(records, recordTimes(records, file), {
        agent: f.agent,
        key: await readPrivateKey(f.key),
        model: await modelDigest(f.model),
        classes: f.classes,
        sequence: f.sequence,
      });
      const statement = readTelemetryStatement(upload);
      // The intake's own record checks, against the statement just made: line and field named.
      parseTelemetryRecords(records, statement, file);
      const out = f.envelope ?? `${file}.dsse.json`;
      await writeOutputFile(out, `${JSON.stringify(upload.envelope, null, 2)}\n`, {
        overwrite: f.force === true,
        inputs: [file],
      });
      if (f.json) process.stdout.write(`${JSON.stringify(statement, null, 2)}\n`);
      else
        process.stdout.write(
          `signed ${f.agent}#${f.sequence}: ${statement.records.count} records, ${statement.window.start} – ${statement.window.end}\n` +
            `  envelope ${out}\n`,
        );
    });
}

async function readRecords(file: string): Promise<string> {
  const info = await stat(file).catch(() => undefined);
  if (info === undefined) throw new AntidoteError("FILE_NOT_FOUND", `${file}: no such file.`);
  if (info.size > TELEMETRY_LIMITS.maxBytes)
    throw new AntidoteError(
      "USAGE",
      `${file}: ${info.size} bytes, over a batch's ${TELEMETRY_LIMITS.maxBytes}.`,
    );
  const text = await readFile(file, "utf8");
  if (text.trim() === "") throw new AntidoteError("INPUT_FORMAT", `${file}: holds no records.`);
  return text;
}

/** Each line's `at`, for the window (the records are checked in full after signing). */
function recordTimes(text: string, file: string): number[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((line, i) => {
    let at: unknown;
    try {
      at = (JSON.parse(line) as { at?: unknown }).at;
    } catch {
      throw new AntidoteError("ROW_MALFORMED", `${file}:${i + 1}: not JSON.`);
    }
    const t = typeof at === "string" ? Date.parse(at) : Number.NaN;
    if (Number.isNaN(t))
      throw new AntidoteError("ROW_MALFORMED", `${file}:${i + 1}: "at" is not an ISO-8601 time.`);
    return t;
  });
}

async function modelDigest(model: string): Promise<string> {
  if (/^[0-9a-fA-F]{64}$/.test(model)) return model.toLowerCase();
  const bytes = await readFile(model).catch(() => {
    throw new AntidoteError("FILE_NOT_FOUND", `--model: ${model} is neither a SHA-256 nor a file.`);
  });
  return createHash("sha256").update(bytes).digest("hex");
}
