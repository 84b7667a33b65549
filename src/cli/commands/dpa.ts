// `antidote dpa partition|certify`: Deep Partition Aggregation (Levine & Feizi, ICLR 2021).
// Partition a training set by content hash into K parts (train one model per part with
// your own framework), then certify the K models' plurality vote on a test set.
import { Option, type Command } from "commander";
import { z } from "zod";
import { checkOutput, refuseInputAsOutput, writeOutputFile } from "../../data/atomic-output.js";
import { openDataset, WRITABLE_FORMATS } from "../../data/open.js";
import type { DatasetFormat } from "../../data/sample.js";
import type { AntidoteError } from "../../errors.js";
import { radiiToShow, type Certification, type CertifiedPoint } from "../../robust/dpa-certify.js";
import { DPA_MAX_K, DPA_MIN_K, partitionDataset, type PartitionSummary } from "../../robust/dpa-partition.js";
import { certifyVoteTable, openVoteTable } from "../../robust/dpa-predictions.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar } from "../progress.js";
import { printTable } from "../table.js";

const num = (v: unknown): unknown => (typeof v === "string" ? (v.trim() === "" ? Number.NaN : Number(v)) : v);
const list = (v: unknown): unknown =>
  typeof v === "string"
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : v;

const partitionFlags = z.object({
  k: z.preprocess(num, z.number().int().min(DPA_MIN_K).max(DPA_MAX_K)),
  out: z.string().min(1),
  to: z.enum(WRITABLE_FORMATS as [string, ...string[]]).default("parquet"),
  gzip: z.boolean().optional(),
  maxOpenWriters: z.preprocess(num, z.number().int().min(1).max(DPA_MAX_K)),
  minPerClass: z.preprocess(num, z.number().int().min(0)),
  overwrite: z.boolean().optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

const certifyFlags = z.object({
  labels: z.string().min(1).optional(),
  labelColumn: z.string().min(1).default("label"),
  idColumn: z.string().min(1).optional(),
  predictionColumns: z.string().min(1).optional(),
  classes: z.preprocess(list, z.array(z.string().min(1)).min(2)).optional(),
  numClasses: z.preprocess(num, z.number().int().min(2)).optional(),
  k: z.preprocess(num, z.number().int().min(1).max(DPA_MAX_K)).optional(),
  out: z.string().min(1).optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerDpa(program: Command): void {
  const dpa = program
    .command("dpa")
    .description(
      "Deep Partition Aggregation (Levine & Feizi, ICLR 2021): a certified defence against poisoning. " +
        "Split the training set into K partitions by a hash of each sample's content, train one model per " +
        "partition, predict by plurality vote; a point whose vote margin is large enough is certifiably " +
        "unaffected by any poisoning that inserts or deletes up to ρ training samples.",
    )
    .addHelpText(
      "after",
      `
Examples:
  antidote dpa partition train.parquet --k 50 --out parts/      parts/part-000.parquet … part-049.parquet
  (train model m on parts/part-0mm.parquet only; predict the test set with all 50 models)
  antidote dpa certify predictions.csv --k 50 --out certify.json  columns: id, label, model_0 … model_49
  antidote dpa certify preds.npy --labels labels.npy --classes cat,dog`,
    );

  addReadOptions(
    dpa
      .command("partition")
      .argument("<dataset>", "a file, directory or bundled dataset name (see `antidote datasets`)")
      .description(
        "Stream a dataset once and write K disjoint partitions, DIR/part-000.<ext> … DIR/part-(K−1).<ext>, " +
          "plus DIR/partitions.csv (id, digest, partition).\n\n" +
          'A sample\'s partition is SHA-256("antidote-dpa:" + content digest), first 8 bytes as an unsigned ' +
          "integer, mod K. It depends on that sample's content only, so adding or removing samples never moves " +
          "the others, and one poisoned sample changes one partition. Identical content always lands in the " +
          "same partition.",
      )
      .requiredOption(
        "--k <K>",
        `number of partitions (= models), ${DPA_MIN_K} to ${DPA_MAX_K.toLocaleString("en-US")}`,
      )
      .requiredOption("--out <dir>", "output directory")
      .addOption(
        new Option("--to <format>", "format of the partition files")
          .choices(WRITABLE_FORMATS)
          .default("parquet"),
      )
      .option("--gzip", "gzip the partition files (jsonl, csv, idx)")
      .option(
        "--max-open-writers <n>",
        "partition files open at once; above it samples are spooled to temporary files first, " +
          "so memory and file handles stay bounded for large K",
        "32",
      )
      .option("--min-per-class <n>", "warn about partitions with fewer samples than this of some class", "10")
      .option(
        "--overwrite",
        "replace part-* files and partitions.csv left in the directory by an earlier run",
      )
      .option("--force", "the same as --overwrite (the flag every other command uses)")
      .option("--json", "print the summary as JSON"),
  ).action(async (spec: string, flags: Record<string, unknown>) => {
    const f = parseFlags(partitionFlags, flags);
    const skipped: AntidoteError[] = [];
    const dataset = await openDataset(spec, { ...readOptionsFrom(flags), onSkip: (e) => skipped.push(e) });
    // --overwrite removes part-* files there before reading: the input must not be one of them.
    refuseInputAsOutput(f.out, [dataset.info.path]);
    const bar = progressBar({
      label: "partitioning",
      total: dataset.info.count,
      unit: "samples",
      enabled: !f.json,
    });
    const summary = await partitionDataset(dataset, {
      k: f.k,
      outDir: f.out,
      format: f.to as DatasetFormat,
      gzip: f.gzip,
      maxOpenWriters: f.maxOpenWriters,
      minPerClass: f.minPerClass,
      overwrite: f.overwrite === true || f.force === true,
      onSample: (n) => n % 500 === 0 && bar.update(n),
    });
    bar.stop();
    if (f.json) {
      process.stdout.write(
        JSON.stringify({ input: spec, skipped: skipped.length, ...summary }, null, 2) + "\n",
      );
      return;
    }
    printPartitionSummary(summary, skipped.length);
  });

  dpa
    .command("certify")
    .argument(
      "<predictions>",
      "the K models' predictions: a CSV/TSV with a header (optional id column, a label column, " +
        "K prediction columns), or an N × K integer .npy matrix with --labels",
    )
    .description(
      "Certify the K partition models' plurality vote on each test point; ties go to the smaller class index.\n\n" +
        "The certified radius is ρ = ⌊(n_top − max_{c≠top}(n_c + 1[c < top])) / 2⌋ in inserted or deleted " +
        "training samples: no poisoning that inserts or deletes at most ρ samples changes the prediction. " +
        "A substitution (one sample replaced by another) counts as 2, since it can change two partitions; " +
        "relabelling a sample in place counts as 1 (same content, same partition). The certificate assumes " +
        "model m was trained on partition m only, deterministically.\n\n" +
        "Prints the certified accuracy curve: for each r, the share of points predicted correctly with ρ ≥ r.",
    )
    .option("--labels <file>", ".npy predictions: the true labels (N or N × 1 integers)")
    .option("--label-column <name>", "CSV: column of true labels", "label")
    .option("--id-column <name>", "CSV: column of point ids (default: id when present, else the row index)")
    .option(
      "--prediction-columns <spec>",
      'CSV: a comma-separated list of columns, or a prefix such as "model_" (default: every other column)',
    )
    .option(
      "--classes <names>",
      "comma-separated class names in index order; cells may hold names or indices. Default: inferred — " +
        "all-integer cells are indices, other names are sorted. The order decides ties",
    )
    .option("--num-classes <n>", "number of classes, when labels are indices and --classes is not given")
    .option("--k <K>", "expected number of models: refuse a table with another number of prediction columns")
    .option("--out <file>", "write the per-point certificates and the whole curve as JSON")
    .option("--force", "replace an existing --out file")
    .option("--json", "print the summary and curve as JSON")
    .action(async (input: string, flags: Record<string, unknown>) => {
      const f = parseFlags(certifyFlags, flags);
      const guard = { overwrite: f.force === true, inputs: [input, f.labels] };
      if (f.out !== undefined) checkOutput(f.out, guard);
      const table = await openVoteTable(input, {
        labelColumn: f.labelColumn,
        idColumn: f.idColumn,
        predictionColumns: f.predictionColumns,
        classes: f.classes,
        numClasses: f.numClasses,
        labelsPath: f.labels,
        k: f.k,
      });
      const points: CertifiedPoint[] = [];
      const certification = await certifyVoteTable(
        table,
        f.out === undefined ? undefined : (p) => points.push(p),
      );
      const summary = { input, predictionColumns: table.predictionColumns, ...certification };
      if (f.out !== undefined) {
        await writeOutputFile(f.out, JSON.stringify({ ...summary, certificates: points }) + "\n", guard);
      }
      if (f.json) process.stdout.write(JSON.stringify({ ...summary, out: f.out ?? null }, null, 2) + "\n");
      else printCertification(certification, f.out);
    });
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const int = (x: number) => x.toLocaleString("en-US");

function printPartitionSummary(s: PartitionSummary, skipped: number): void {
  const o = process.stdout;
  o.write(
    `wrote ${int(s.samples)} samples into ${int(s.k)} partitions in ${s.outDir} (${s.format}) in ${s.seconds.toFixed(1)} s`,
  );
  o.write(skipped ? ` (${skipped} malformed rows skipped)\n` : "\n");
  // Each size is Binomial(N, 1/K) under a good hash: show what to expect next to what we got.
  const mean = s.samples / s.k;
  const sd = Math.sqrt(s.samples * (1 / s.k) * (1 - 1 / s.k));
  o.write(
    `partition sizes: min ${int(s.min)}, median ${int(s.median)}, max ${int(s.max)} ` +
      `(expected ${mean.toFixed(1)} ± ${sd.toFixed(1)})\n`,
  );
  if (s.thinnest !== null)
    o.write(
      `fewest of one class: ${int(s.thinnest.count)} "${s.thinnest.label}" in partition ${s.thinnest.partition}` +
        ` (${s.classes.length} classes)\n`,
    );
  if (s.unlabeled > 0) o.write(`${int(s.unlabeled)} samples have no label\n`);
  o.write(`files: ${s.files[0]} … ${s.files.at(-1)}\nindex: ${s.partitionsCsv}\n`);
  for (const w of s.warnings) process.stderr.write(`warning: ${w}\n`);
  o.write(
    `next: train model m on partition m only (deterministically), predict the test set with each model,\n` +
      `      then: antidote dpa certify predictions.csv --k ${s.k}\n`,
  );
}

function printCertification(c: Certification, out: string | undefined): void {
  const o = process.stdout;
  o.write(
    `DPA vote of K = ${int(c.k)} models on ${int(c.points)} points, ${c.classes.length} classes: accuracy ${pct(c.accuracy)}` +
      ` (single models: mean ${pct(c.modelAccuracy.mean)}, ${pct(c.modelAccuracy.min)}–${pct(c.modelAccuracy.max)})\n`,
  );
  o.write(
    c.medianRadius === null
      ? `median certified radius: none (fewer than half the points are predicted correctly)\n\n`
      : `median certified radius: ${c.medianRadius} inserted or deleted training samples\n\n`,
  );
  const rows = radiiToShow(c).map((r) => {
    const p = c.curve[r];
    return [r, pct(p?.certifiedAccuracy ?? 0), int(p?.certified ?? 0)];
  });
  printTable(["r", "certified accuracy", "points"], rows);
  if (out !== undefined) o.write(`\nwrote the per-point certificates and the whole curve to ${out}\n`);
}
