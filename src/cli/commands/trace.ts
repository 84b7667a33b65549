// `antidote trace`: the blast radius of a source, or the whole story of one sample.
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import type { SampleTrace, SourceTrace } from "../../ledger/types.js";
import { addLedgerReadOption, printJson, withLedgerReader } from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const traceFlags = z
  .object({
    source: z.string().min(1).optional(),
    sample: z.string().min(1).optional(),
    limit: z.coerce.number().int().positive().default(20),
    json: z.boolean().optional(),
  })
  .refine((f) => (f.source === undefined) !== (f.sample === undefined), {
    message: "give exactly one of --source NAME or --sample ID",
    path: ["source"],
  });

export function registerTrace(program: Command): void {
  addLedgerReadOption(
    program
      .command("trace")
      .description(
        "What a source reached (samples, dataset versions, models trained on them and models built on those),\n" +
          "or where one sample came from and everything done to it",
      )
      .option("--source <name>", "blast radius of a source")
      .option("--sample <id-or-digest>", "origin, handlers, transforms, findings and decisions of a sample")
      .option("--limit <n>", "samples to list in the table (--json lists all)", "20")
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
Examples:
  antidote trace --source acme
  antidote trace --sample fashion-mnist:123 --json`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(traceFlags, flags);
    await withLedgerReader(flags, async (ledger) => {
      if (f.source !== undefined) {
        const source = await ledger.getSource(f.source);
        if (source === undefined)
          throw new AntidoteError(
            "SOURCE_UNKNOWN",
            `source "${f.source}" is not registered (\`antidote source list\` shows the sources).`,
          );
        // --json is for machines: every sample, not a page.
        const trace = await ledger.traceSource(f.source, { limit: f.json ? 2 ** 31 - 1 : f.limit });
        if (f.json) printJson(trace);
        else printSourceTrace(trace, f.limit);
      } else {
        const trace = await ledger.traceSample(f.sample ?? "");
        if (trace === undefined)
          throw new AntidoteError(
            "NOT_FOUND",
            `sample "${f.sample}" is not in the ledger (give its id or digest).`,
          );
        if (f.json) printJson(trace);
        else printSampleTrace(trace);
      }
    });
  });
}

function printSourceTrace(t: SourceTrace, limit: number): void {
  const out = process.stdout;
  out.write(
    `source "${t.source.name}" (${t.source.kind}) — ${t.deliveries.length} deliveries, ${t.sampleCount.toLocaleString("en-US")} samples\n\n`,
  );
  if (t.deliveries.length > 0) {
    printTable(
      ["delivery", "at", "samples", "signed by"],
      t.deliveries.map((d) => [d.deliveryId, d.at, d.sampleCount, d.keyId?.slice(0, 16) ?? "unsigned"]),
    );
    out.write("\n");
  }
  out.write(`dataset versions containing its samples: ${t.datasetVersions.length}\n`);
  if (t.datasetVersions.length > 0)
    printTable(
      ["version", "name", "from this source", "of"],
      t.datasetVersions.map((v) => [v.version, v.name, v.samplesFromSource, v.sampleCount]),
    );
  out.write(`\nmodels trained on them: ${t.models.length}\n`);
  if (t.models.length > 0)
    printTable(
      ["model", "name", "trained on"],
      t.models.map((m) => [m.digest.slice(0, 16), m.name, m.trainedOn.join(", ")]),
    );
  out.write(`models built on those (base-model chain): ${t.descendantModels.length}\n`);
  if (t.descendantModels.length > 0)
    printTable(
      ["model", "name", "via"],
      t.descendantModels.map((m) => [
        m.digest.slice(0, 16),
        m.name,
        m.via.map((v) => v.slice(0, 12)).join(" → "),
      ]),
    );
  if (t.samples.length > 0) {
    out.write(`\nsamples (first ${Math.min(limit, t.samples.length)} of ${t.sampleCount}):\n`);
    printTable(
      ["id", "digest", "label", "quarantined"],
      t.samples
        .slice(0, limit)
        .map((s) => [s.id, s.digest.slice(0, 16), s.label ?? "—", s.quarantined ? "yes" : ""]),
    );
  }
  out.write(
    `\nNext: \`antidote quarantine --source ${t.source.name} --reason "…"\`, then ` +
      `\`antidote export --dataset VERSION --exclude-quarantined --out clean.parquet\`\n`,
  );
}

function printSampleTrace(t: SampleTrace): void {
  const out = process.stdout;
  out.write(
    `sample ${t.sample.id}  digest ${t.sample.digest}\nlabel ${t.sample.label ?? "—"}${t.quarantined ? "  (QUARANTINED)" : ""}\n\n`,
  );
  out.write("origins:\n");
  printTable(
    ["delivery", "source", "kind", "at", "signed by"],
    t.origins.map((o) => [o.deliveryId, o.source, o.sourceKind, o.at, o.keyId?.slice(0, 16) ?? "unsigned"]),
  );
  if (t.sample.annotations.length > 0)
    out.write(`\nannotations: ${t.sample.annotations.map((a) => `${a.annotator}=${a.label}`).join(", ")}\n`);
  out.write(`\ndataset versions: ${t.datasetVersions.join(", ") || "—"}\n`);
  if (t.transforms.length > 0) {
    out.write("\ntransforms:\n");
    printTable(
      ["seq", "at", "kind", "tool"],
      t.transforms.map((x) => [x.seq, x.at, x.kind, `${x.tool} ${x.toolVersion}`]),
    );
  }
  if (t.findings.length > 0) {
    out.write("\nfindings:\n");
    printTable(
      ["seq", "kind", "score", "check"],
      t.findings.map((x) => [x.seq, x.kind, x.score.toFixed(3), `${x.check} ${x.checkVersion}`]),
    );
  }
  if (t.decisions.length > 0) {
    out.write("\ndecisions:\n");
    printTable(
      ["seq", "at", "action", "by", "reason"],
      t.decisions.map((x) => [x.seq, x.at, x.action, x.actor, x.reason]),
    );
  }
}
