// `antidote telemetry export --for-training`: the closed-loop gate (monitor/gate.ts) as a
// command — a candidate training version built only from attested agents' accepted batches,
// leaving out agents and batches under finding, scanned before admission, with its lineage
// recorded. Attached to `antidote telemetry` (main.ts, after registerTelemetry).
import type { Command } from "commander";
import { z } from "zod";
import { buildTrainingCandidate, type GateResult } from "../../monitor/gate.js";
import { addLedgerOption, printJson, withLedger } from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const exportFlags = z.object({
  since: z.iso.datetime({ offset: true, message: "an ISO-8601 time, e.g. 2026-12-01T00:00:00Z" }),
  until: z.iso.datetime({ offset: true, message: "an ISO-8601 time" }).optional(),
  forTraining: z.literal(true, { message: "is required: the export is a candidate training version" }),
  model: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "a model's full digest")
    .optional(),
  scanModel: z.string().min(1).optional(),
  name: z.string().min(1).max(200).optional(),
  scan: z.boolean().default(true),
  dryRun: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerTelemetryExport(program: Command): void {
  const telemetry =
    program.commands.find((c) => c.name() === "telemetry") ??
    program.command("telemetry").description("Deployed agents' signed telemetry");
  addLedgerOption(
    telemetry
      .command("export")
      .description(
        "Build the next training set from telemetry: attested agents' accepted batches only, without\n" +
          "agents or batches under finding, scanned before admission; records the version and its lineage",
      )
      .requiredOption("--since <time>", "batches accepted at or after this ISO-8601 time")
      .option("--until <time>", "…and before this one (default: now)")
      .option("--for-training", "build a candidate training version (required: says what the export is for)")
      .option(
        "--model <digest>",
        "only telemetry attesting this model (needed when agents run models with other classes)",
      )
      .option(
        "--scan-model <model.onnx>",
        "scan with this model's outputs and features (default: the built-in proxies)",
      )
      .option("--name <dataset>", "name of the version (default telemetry)")
      .option("--no-scan", "admit without scanning (not recommended: the scan is the last cut)")
      .option("--dry-run", "say what would be admitted; record nothing")
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
A record becomes a sample only when it carries its input and a feedback label (the label the
next model would learn). Batches stay out when their agent is not a current agent source
(unknown, quarantined, or the signing key revoked), the attested model is not active, or the
agent or the batch has a finding (monitors, scans, analysts) or the batch is quarantined.

Example:
  antidote monitor run --setup monitor.json
  antidote telemetry export --since 2026-12-01T00:00:00Z --for-training --scan-model model.onnx
  antidote trace --source agent-17          # what an agent's telemetry reached`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(exportFlags, flags);
    const result = await withLedger(flags, (ledger) =>
      buildTrainingCandidate(ledger, {
        since: f.since,
        ...(f.until ? { until: f.until } : {}),
        ...(f.model ? { model: f.model } : {}),
        ...(f.name ? { name: f.name } : {}),
        scan: f.scan,
        dryRun: f.dryRun ?? false,
        ...(f.scanModel ? { scanOptions: { model: f.scanModel } } : {}),
        onProgress: (phase, done, total) =>
          !f.json && done === total && process.stderr.write(`telemetry export: ${phase} done (${total})\n`),
      }),
    );
    if (f.json) return printJson(result);
    printResult(result, f.dryRun === true);
  });
}

function printResult(r: GateResult, dryRun: boolean): void {
  const excluded = Object.entries(r.batches.excluded).filter(([, n]) => n > 0);
  process.stdout.write(
    `${dryRun ? "would admit" : "admitted"} ${r.records.admitted.toLocaleString("en-US")} records from ` +
      `${r.batches.admitted} of ${r.batches.considered} batches` +
      (r.version === null ? (dryRun ? "" : " (nothing to record)") : ` as dataset version ${r.version}`) +
      "\n" +
      `  batches left out: ${excluded.length === 0 ? "none" : excluded.map(([k, n]) => `${n} ${k}`).join(", ")}\n` +
      `  records left out: ${r.records.withoutInput} without input, ${r.records.withoutFeedback} without feedback` +
      (r.scan === null ? ", not scanned" : `, ${r.records.scanFlagged} flagged by the scan`) +
      "\n",
  );
  if (r.excludedAgents.length > 0)
    printTable(
      ["agent left out", "why", "batches"],
      r.excludedAgents.map((a) => [a.agent, a.reason, String(a.batches)]),
    );
}
