// `antidote telemetry …`: take a deployed agent's signed batch offline (the same checks and
// the same refusal record as POST /v1/telemetry), list what was accepted and refused, and
// quarantine or release batches. A shell over monitor/intake.ts, refusals.ts, containment.ts.
import type { Command } from "commander";
import { open, readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { z } from "zod";
import { AntidoteError, jsonSyntaxReason } from "../../errors.js";
import { quarantineTelemetry, releaseTelemetry } from "../../monitor/containment.js";
import { ingestTelemetry } from "../../monitor/intake.js";
import { telemetryRefusalCounts, telemetryRefusals } from "../../monitor/refusals.js";
import { TELEMETRY_LIMITS } from "../../monitor/schema.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const listFlags = z.object({
  agent: z.string().min(1).optional(),
  model: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "a model's full digest")
    .optional(),
  since: z.iso.datetime({ offset: true, message: "an ISO-8601 time, e.g. 2026-12-01T00:00:00Z" }).optional(),
  after: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  json: z.boolean().optional(),
});

const refusalFlags = z.object({
  agent: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(20),
  json: z.boolean().optional(),
});

const decideFlags = z.object({
  reason: z.string().min(1, "say why (it is recorded)"),
  json: z.boolean().optional(),
});

export function registerTelemetry(program: Command): void {
  const telemetry = program
    .command("telemetry")
    .description(
      "Deployed agents' signed telemetry: take batches offline, list accepted and refused ones, quarantine",
    );

  addLedgerOption(
    telemetry
      .command("ingest")
      .argument("<batch.jsonl>", "the batch's records (JSONL), as the agent wrote them")
      .option(
        "--envelope <file>",
        "the agent's DSSE envelope over the batch (default: <batch.jsonl>.dsse.json)",
      )
      .option("--json", "print the accepted batch as JSON")
      .description("Verify a telemetry batch and record it, exactly as POST /v1/telemetry does")
      .addHelpText(
        "after",
        `
The batch is accepted only when the envelope's signature verifies with a current key of the
agent it names (a registered source of kind agent, not quarantined), the records are the
bytes the statement signs, the attested model is registered, the window is plausible, the
sequence number is above the agent's last (a skipped number is recorded as a gap) and every
record keeps the schema (docs/telemetry.md). A refused batch writes nothing but a refusal
(\`antidote telemetry refusals\`), and the command exits 6 (verification) or 3 (format).

Example:
  antidote source add agent-17 --kind agent --key agent-17.pub
  antidote telemetry ingest agent-17-000042.jsonl        # reads agent-17-000042.jsonl.dsse.json`,
      ),
  ).action(async (file: string, flags: Record<string, unknown>) => {
    const envelopeFile = typeof flags.envelope === "string" ? flags.envelope : `${file}.dsse.json`;
    const upload = { envelope: await readEnvelope(envelopeFile), records: await readRecords(file) };
    const batch = await withLedger(flags, (ledger) =>
      ingestTelemetry(ledger, upload, { principal: localUser(), label: file }),
    );
    if (flags.json === true) return printJson(batch);
    process.stdout.write(
      `accepted ${batch.batchId}: ${batch.count} records (${batch.feedbackCount} with feedback) from agent "${batch.agent}", model ${batch.model.slice(0, 16)}…` +
        (batch.gap === null ? "" : `\n  gap: expected sequence ${batch.gap.expected}, got ${batch.gap.got}`) +
        "\n",
    );
  });

  addLedgerReadOption(
    telemetry
      .command("batches")
      .description("List accepted telemetry batches, in the order accepted")
      .option("--agent <name>", "only this agent's")
      .option("--model <digest>", "only batches attesting this model")
      .option("--since <time>", "only batches accepted at or after this ISO-8601 time")
      .option("--after <batch-id>", "the page after this batch (the last one of the previous page)")
      .option("--limit <n>", "at most this many (default 100)")
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        "\nExample:\n  antidote telemetry batches --agent agent-17 --since 2026-12-01T00:00:00Z",
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(listFlags, flags);
    await withLedgerReader(flags, async (ledger) => {
      const batches = await ledger.listTelemetryBatches({
        limit: f.limit,
        ...(f.agent !== undefined ? { agent: f.agent } : {}),
        ...(f.model !== undefined ? { model: f.model } : {}),
        ...(f.since !== undefined ? { since: f.since } : {}),
        ...(f.after !== undefined ? { after: f.after } : {}),
      });
      if (f.json) return printJson(batches);
      if (batches.length === 0) return void process.stdout.write("no telemetry batches\n");
      printTable(
        ["batch", "model", "window end", "records", "feedback", "gap", "quarantined", "accepted"],
        batches.map((b) => [
          b.batchId,
          b.model.slice(0, 16),
          b.window.end,
          b.count,
          b.feedbackCount,
          b.gap === null ? "—" : `${b.gap.expected}→${b.gap.got}`,
          b.quarantined ? "yes" : "no",
          b.at,
        ]),
      );
    });
  });

  addLedgerReadOption(
    telemetry
      .command("refusals")
      .description("Refused telemetry batches: counts per agent and reason, then the newest refusals")
      .option("--agent <name>", "only this agent's")
      .option("--limit <n>", "newest refusals shown (default 20)")
      .option("--json", "print JSON: { counts, refusals }")
      .addHelpText("after", "\nExample:\n  antidote telemetry refusals --agent agent-17 --json"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(refusalFlags, flags);
    await withLedgerReader(flags, async (ledger) => {
      const agent = f.agent !== undefined ? { agent: f.agent } : {};
      const counts = await telemetryRefusalCounts(ledger, agent);
      const refusals = await telemetryRefusals(ledger, { limit: f.limit, ...agent });
      if (f.json) return printJson({ counts, refusals });
      if (counts.length === 0) return void process.stdout.write("no telemetry batch was refused\n");
      printTable(
        ["agent", "reason", "refused", "last"],
        counts.map((c) => [c.agent === "" ? "(unregistered)" : c.agent, c.code, c.refusals, c.lastAt]),
      );
      process.stdout.write("\n");
      printTable(
        ["at", "agent", "by", "reason", "message"],
        refusals.map((r) => [r.at, r.agent || "—", r.principal, r.code, r.message]),
      );
    });
  });

  for (const action of ["quarantine", "release"] as const)
    addLedgerOption(
      telemetry
        .command(action)
        .argument("<batch-id...>", 'accepted batches, as "<agent>#<sequence>"')
        .requiredOption("--reason <text>", "why (recorded in the ledger)")
        .option("--json", "print JSON")
        .description(
          action === "quarantine"
            ? "Quarantine telemetry batches: they stay as evidence, and the closed-loop gate leaves them out"
            : "Release quarantined telemetry batches",
        )
        .addHelpText(
          "after",
          `\nExample:\n  antidote telemetry ${action} 'agent-17#41' 'agent-17#42' --reason "trigger alarm"`,
        ),
    ).action(async (ids: string[], flags: Record<string, unknown>) => {
      const f = parseFlags(decideFlags, flags);
      const decide = action === "quarantine" ? quarantineTelemetry : releaseTelemetry;
      const result = await withLedger(flags, (ledger) => decide(ledger, ids, f.reason, localUser()));
      if (f.json) return printJson(result);
      process.stdout.write(
        `${action === "quarantine" ? "quarantined" : "released"} ${result.batchIds.length} telemetry batch(es)\n`,
      );
    });
}

async function readEnvelope(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw notReadable(file, e, "the batch's envelope (--envelope)");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${file}: the envelope is not JSON (${jsonSyntaxReason(e)}).`);
  }
}

// At most one byte over the limit is read: the intake refuses the batch as too large (and
// records the refusal) without this command holding a file of any size in memory.
async function readRecords(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (e) {
    throw notReadable(file, e, "the batch");
  }
  try {
    const buffer = Buffer.alloc(Math.min((await handle.stat()).size, TELEMETRY_LIMITS.maxBytes + 1));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

function notReadable(file: string, e: unknown, what: string): AntidoteError {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT"
    ? new AntidoteError("FILE_NOT_FOUND", `${file}: no such file (${what}).`)
    : new AntidoteError("INPUT_FORMAT", `${file}: cannot be read (${code ?? String(e)}).`);
}

export function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? "local";
  }
}
