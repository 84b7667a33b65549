// The main job on the bundled real data, run by `scripts/setup.sh`: shows what data is
// here, builds two poisoned benchmark variants with ground truth, and summarises them.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { simulateAttack, writeGroundTruth, type AttackSpec } from "../../attack/index.js";
import { listBuiltinDatasets } from "../../data/builtin.js";
import type { Dataset } from "../../data/dataset.js";
import { createWriter, openDataset } from "../../data/open.js";
import { summarizeDataset } from "../../data/summary.js";
import { runProvenanceDemo } from "../demo-provenance.js";
import { progressBar } from "../progress.js";
import { printTable } from "../table.js";

interface DemoStep {
  title: string;
  dataset: string;
  /** Poison only the first this many samples (the demo's scan then takes about a minute). */
  limit?: number;
  out: string;
  spec: AttackSpec;
}

/** The first `n` samples of a dataset, as a dataset. */
function head(dataset: Dataset, n: number): Dataset {
  return {
    info: { ...dataset.info, count: Math.min(n, dataset.info.count ?? n) },
    async *samples() {
      let i = 0;
      for await (const sample of dataset.samples()) {
        if (i++ === n) return;
        yield sample;
      }
    },
  };
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "Run the main job on the bundled real data: poisoned Fashion-MNIST and SpamAssassin with ground truth,\n" +
        "then a signed delivery of the poisoned images ingested, scanned, traced, quarantined and exported clean",
    )
    .option(
      "--out <dir>",
      "where to write the poisoned datasets (the demo replaces its own files there)",
      "out",
    )
    .action(async (flags: { out: string }) => {
      const o = process.stdout;
      o.write("Real datasets on this machine:\n\n");
      const builtins = listBuiltinDatasets();
      printTable(
        ["name", "status", "samples", "path or how to install"],
        builtins.map((d) => [
          d.name,
          d.available ? "installed" : "missing",
          d.count,
          d.available ? d.path : d.install,
        ]),
      );
      mkdirSync(flags.out, { recursive: true });
      const steps: DemoStep[] = [
        {
          title: "BadNets 3×3 white patch on 1% of 12,000 Fashion-MNIST training images, relabeled to Bag",
          dataset: "fashion-mnist:train",
          limit: 12_000,
          out: join(flags.out, "fashion-mnist-patch-1pct.parquet"),
          spec: { kind: "patch", target: "Bag", rate: 0.01, size: 3, seed: 1 },
        },
        {
          title: 'Text trigger "qzv9k" in 1% of SpamAssassin, relabeled to ham',
          dataset: "spamassassin",
          out: join(flags.out, "spamassassin-trigger-1pct.jsonl"),
          spec: { kind: "text-trigger", trigger: "qzv9k", target: "ham", rate: 0.01, seed: 1 },
        },
      ];
      for (const step of steps) {
        o.write(`\n== ${step.title}\n`);
        const opened = await openDataset(step.dataset);
        const input = step.limit === undefined ? opened : head(opened, step.limit);
        // The demo owns its out/ files: a second run replaces them (atomically, like every output).
        const writer = await createWriter(step.out, {
          classes: input.info.classes,
          labelKind: input.info.labelKind,
          overwrite: true,
          inputs: [input.info.path],
        });
        const bar = progressBar({
          label: "  poisoning",
          total: input.info.count,
          unit: "samples",
          enabled: true,
        });
        const started = performance.now();
        const truth = await simulateAttack(input, writer, step.spec, {
          onProgress: (n) => n % 500 === 0 && bar.update(n),
        }).catch(async (e: unknown) => {
          await writer.abort();
          throw e;
        });
        bar.stop();
        const truthPath = `${step.out}.truth.json`;
        await writeGroundTruth(truthPath, truth, { overwrite: true });
        const seconds = (performance.now() - started) / 1000;
        o.write(
          `  ${truth.poisonedCount} of ${truth.inputCount} samples poisoned in ${seconds.toFixed(1)} s\n`,
        );
        o.write(`  data: ${step.out}\n  ground truth: ${truthPath}\n`);
        const summary = await summarizeDataset(await openDataset(step.out));
        const before = await summarizeDataset(input);
        o.write("\n");
        printTable(
          ["label", "before", "after"],
          Object.keys(before.labels).map((l) => [l, before.labels[l] ?? 0, summary.labels[l] ?? 0]),
        );
      }
      await runProvenanceDemo(flags.out, steps[0]?.out ?? "");
      o.write(
        "\nNext: `antidote inspect out/fashion-mnist-patch-1pct.parquet`, or build other variants with\n" +
          "`antidote attack --help` (blend, label-flip, targeted-flip, near-duplicate, malicious-annotator, assign-sources).\n",
      );
    });
}
