// `antidote monitor init|run`: watch deployed models through the telemetry their agents send.
// `init` prepares what the monitors compare production with (a baseline on clean validation
// data, a STRIP screen, the triggers earlier scans found); `run` reads every batch accepted
// since the last run through the monitors, records their findings and sends their alerts.
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { DEFAULT_LOCATION } from "../../ledger/backend.js";
import type { LedgerReader } from "../../ledger/types.js";
import { prepareMonitoring } from "../../monitor/setup.js";
import { createMonitorRunner } from "../../monitor/runner.js";
import { readMonitorSetup } from "../../monitor/setup.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { parseFlags } from "../options.js";

const positiveInt = z.coerce.number().int().min(1);

const initFlags = z.object({
  model: z.string().min(1),
  data: z.string().min(1),
  out: z.string().min(1),
  validation: positiveInt.optional(),
  frr: z.coerce.number().gt(0).lt(1).optional(),
  arl: z.coerce.number().gt(1).optional(),
  webhook: z.string().url().optional(),
  webhookSecretEnv: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/, "must be an environment variable name")
    .default("ANTIDOTE_WEBHOOK_SECRET"),
  json: z.boolean().optional(),
});

const runFlags = z.object({
  setup: z.string().min(1),
  json: z.boolean().optional(),
});

export function registerMonitor(program: Command): void {
  const monitor = program
    .command("monitor")
    .description(
      "Watch deployed models: drift, trigger alarms, targeted confusion, per-agent anomalies, attestation",
    );

  addLedgerReadOption(
    monitor
      .command("init")
      .description(
        "Prepare monitoring for a deployed model: its validation baseline, a STRIP screen (image models)\n" +
          "and the triggers earlier scans recorded in the ledger; writes a setup file for `monitor run` and `serve --monitor`",
      )
      .requiredOption(
        "--model <model.onnx>",
        "the model the agents run (register it with `antidote model register`)",
      )
      .requiredOption("--data <path>", "clean, labeled validation data the model was not trained on")
      .requiredOption("--out <setup.json>", "where to write the setup")
      .option("--validation <n>", "validation records for the baseline (default 2000)")
      .option("--frr <rate>", "STRIP's false-rejection rate on clean inputs (default 0.01)")
      .option("--arl <batches>", "at most one false alarm per this many batches, per monitor (default 10000)")
      .option("--webhook <url>", "POST alerts here, signed with HMAC-SHA256 (header Antidote-Signature)")
      .option(
        "--webhook-secret-env <NAME>",
        "environment variable holding the webhook secret",
        "ANTIDOTE_WEBHOOK_SECRET",
      )
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
Example:
  antidote monitor init --model model.onnx --data fashion-mnist:test --out monitor.json
  antidote serve --monitor monitor.json        # monitors run on every accepted batch
  antidote monitor run --setup monitor.json    # or read new batches now (e.g. from cron)

The setup holds no secret: the webhook's HMAC key is read from the named environment variable.`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(initFlags, flags);
    const prepare = (ledger: LedgerReader | undefined) =>
      prepareMonitoring({
        model: f.model,
        data: f.data,
        out: f.out,
        ...(f.validation ? { validation: f.validation } : {}),
        ...(f.frr ? { frr: f.frr } : {}),
        ...(f.arl ? { arl0: f.arl } : {}),
        ...(f.webhook ? { webhook: { url: f.webhook, secretEnv: f.webhookSecretEnv } } : {}),
        ...(ledger !== undefined ? { ledger } : {}),
        onProgress: (phase) => !f.json && process.stderr.write(`monitor init: ${phase}…\n`),
      });
    // The ledger only contributes the triggers earlier scans found: a model deployed before any
    // ledger exists is prepared without them (a ledger named on purpose must exist).
    const named = typeof flags.ledger === "string" || (process.env.ANTIDOTE_LEDGER ?? "") !== "";
    const prepared =
      named || existsSync(DEFAULT_LOCATION)
        ? await withLedgerReader(flags, prepare)
        : await prepare(undefined);
    if (f.json) return printJson({ ...prepared, setup: undefined, out: f.out });
    process.stdout.write(
      `monitor setup for model ${prepared.model.slice(0, 12)}… written to ${f.out}\n` +
        `  baseline: ${prepared.validation} validation records` +
        (prepared.accuracy === null ? "" : `, accuracy ${(prepared.accuracy * 100).toFixed(1)} %`) +
        `\n  known triggers from the ledger: ${prepared.triggers}\n` +
        (prepared.strip === null
          ? "  STRIP: not used (not an image model)\n"
          : `  STRIP: threshold ${prepared.strip.threshold.toFixed(3)} bits, clean false rejections ${(prepared.strip.observedFrr * 100).toFixed(1)} %\n`),
    );
  });

  addLedgerOption(
    monitor
      .command("run")
      .description(
        "Read every telemetry batch accepted since the last run through the monitors; record findings, send alerts",
      )
      .requiredOption("--setup <setup.json>", "the setup `monitor init` wrote")
      .option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(runFlags, flags);
    const setup = await readMonitorSetup(f.setup);
    const result = await withLedger(flags, async (ledger) => {
      const runner = await createMonitorRunner(ledger, setup, { setupFile: f.setup });
      try {
        return await runner.run({
          onBatch: (done) =>
            !f.json && done % 100 === 0 && process.stderr.write(`monitor run: ${done} batches…\n`),
        });
      } finally {
        await runner.close();
      }
    });
    if (f.json) return printJson(result);
    process.stdout.write(
      `read ${result.batches} batches${result.restarted ? " (the setup changed: charts started afresh)" : ""}; ` +
        `${result.alerts.length} alerts, ${result.findings} new findings\n`,
    );
    for (const a of result.alerts)
      process.stdout.write(
        `  ${a.monitor.padEnd(16)} ${a.kind.padEnd(22)} ${a.subjectType}:${a.subjectId.slice(0, 40)}  score ${a.score.toFixed(2)}  (batch ${a.batchId})\n`,
      );
    const failed = result.deliveries.filter((d) => !d.delivered);
    if (failed.length > 0)
      process.stderr.write(
        `warning: ${failed.length} webhook deliveries failed (${failed[0]?.error ?? ""})\n`,
      );
  });
}
