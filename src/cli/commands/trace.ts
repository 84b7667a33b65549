// `antidote trace`: the blast radius of a source, the whole story of one sample, or a model's
// lineage both ways (its bases, and every model built on it).
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import type { SampleTrace, SourceTrace } from "../../ledger/types.js";
import { traceModel, type ModelLineage } from "../../provenance/model-lineage.js";
import { addLedgerReadOption, printJson, withLedgerReader } from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const traceFlags = z
  .object({
    source: z.string().min(1).optional(),
    sample: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    limit: z.coerce.number().int().positive().default(20),
    json: z.boolean().optional(),
  })
  .refine((f) => [f.source, f.sample, f.model].filter((v) => v !== undefined).length === 1, {
    message: "give exactly one of --source NAME, --sample ID or --model DIGEST",
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
      .option("--model <digest>", "a model's bases and every model built on it (a unique prefix will do)")
      .option("--limit <n>", "samples to list in the table (--json lists all)", "20")
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
Examples:
  antidote trace --source acme
  antidote trace --sample fashion-mnist:123 --json
  antidote trace --model 9ac1e0d2          # a base found poisoned: which fine-tunes inherit it`,
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
      } else if (f.model !== undefined) {
        const lineage = await traceModel(ledger, f.model);
        if (f.json) printJson(lineage);
        else printModelLineage(lineage);
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

function printModelLineage(t: ModelLineage): void {
  const out = process.stdout;
  out.write(
    `model ${t.model.name}  digest ${t.model.digest}  (${t.model.status})\ntrained on ${t.model.trainedOn.join(", ") || "—"}\n\n`,
  );
  out.write(
    `bases: ${t.ancestors.length}${t.unregisteredBase ? ` (then ${t.unregisteredBase.slice(0, 16)}, not registered)` : ""}\n`,
  );
  if (t.ancestors.length > 0)
    printTable(
      ["depth", "model", "name", "status"],
      t.ancestors.map((m) => [m.depth, m.digest.slice(0, 16), m.name, m.status]),
    );
  out.write(`\nmodels built on it: ${t.descendants.length}\n`);
  if (t.descendants.length > 0)
    printTable(
      ["depth", "model", "name", "base", "status"],
      t.descendants.map((m) => [m.depth, m.digest.slice(0, 16), m.name, m.base.slice(0, 12), m.status]),
    );
  if (t.findings.length > 0) {
    out.write("\nfindings on it or its bases:\n");
    printTable(
      ["seq", "model", "kind", "score", "check"],
      t.findings.map((f) => [f.seq, f.subjectId.slice(0, 12), f.kind, f.score.toFixed(2), f.check]),
    );
  }
  const active = t.descendants.filter((d) => d.status === "active");
  if (active.length > 0)
    out.write(
      `\nNext: audit them (\`antidote audit MODEL.onnx --reference …\`), or contain them: \`antidote model suspend ${active[0]!.digest.slice(0, 12)} --reason "base ${t.model.digest.slice(0, 12)} poisoned"\`\n`,
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
