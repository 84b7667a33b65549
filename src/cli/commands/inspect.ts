import type { Command } from "commander";
import { openDataset } from "../../data/open.js";
import { summarizeDataset } from "../../data/summary.js";
import type { AntidoteError } from "../../errors.js";
import { addReadOptions, readOptionsFrom } from "../options.js";
import { progressBar } from "../progress.js";
import { printTable } from "../table.js";

export function registerInspect(program: Command): void {
  addReadOptions(
    program
      .command("inspect")
      .argument("<dataset>", "a file, directory or bundled dataset name (see `antidote datasets`)")
      .description(
        "Stream a dataset once and summarise it: format, columns, classes, sources, annotators, shapes",
      )
      .option("--json", "print JSON instead of tables"),
  ).action(async (spec: string, flags: Record<string, unknown>) => {
    const json = flags.json === true;
    const skipped: AntidoteError[] = [];
    const options = readOptionsFrom(flags);
    const dataset = await openDataset(spec, { ...options, onSkip: (e) => skipped.push(e) });
    const bar = progressBar({ label: "reading", total: dataset.info.count, unit: "samples", enabled: !json });
    const started = performance.now();
    const summary = await summarizeDataset(dataset, { onSample: (n) => n % 500 === 0 && bar.update(n) });
    bar.stop();
    const seconds = (performance.now() - started) / 1000;
    const info = dataset.info;
    if (json) {
      const out = { info, summary, skipped: skipped.length, seconds };
      process.stdout.write(JSON.stringify(out, null, 2) + "\n");
      return;
    }
    const o = process.stdout;
    o.write(`${info.path}  (${info.format})\n`);
    o.write(`${summary.count.toLocaleString("en-US")} samples in ${seconds.toFixed(1)} s`);
    o.write(
      skipped.length ? `, ${skipped.length} malformed rows skipped (first: ${skipped[0]?.message})\n` : "\n",
    );
    if (info.columns && Object.keys(info.columns).length) {
      o.write(
        `columns: ${Object.entries(info.columns)
          .map(([role, c]) => `${role}=${c}`)
          .join(", ")}\n`,
      );
    }
    const m = summary.modalities;
    o.write(
      `content: ${[m.text && `${m.text} text`, m.image && `${m.image} image`, m.tabular && `${m.tabular} tabular`].filter(Boolean).join(", ") || "none"}\n`,
    );
    if (Object.keys(summary.imageShapes).length)
      o.write(`image shapes (H×W×C): ${fmtCounts(summary.imageShapes)}\n`);
    if (summary.text)
      o.write(
        `text length: ${summary.text.minChars}–${summary.text.maxChars} chars, mean ${summary.text.meanChars.toFixed(0)}\n`,
      );
    if (summary.featureCount !== null) o.write(`tabular features: ${summary.featureCount}\n`);
    const dups = summary.count - summary.distinctDigests;
    o.write(`exact duplicates: ${dups}\n\n`);
    // In class-list order when the format knows it (IDX, HF ClassLabel), else most frequent first.
    const order = info.classes ?? [];
    const rank = (l: string) => (order.includes(l) ? order.indexOf(l) : order.length);
    const labels = Object.entries(summary.labels).sort((a, b) => rank(a[0]) - rank(b[0]) || b[1] - a[1]);
    if (labels.length)
      printTable(
        ["label", "samples", "share"],
        labels.map(([l, n]) => [l, n, pct(n, summary.count)]),
      );
    if (summary.unlabeled) o.write(`unlabeled: ${summary.unlabeled}\n`);
    for (const [title, counts] of [
      ["source", summary.sources],
      ["annotator", summary.annotators],
    ] as const) {
      const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]);
      if (rows.length === 0) continue;
      o.write("\n");
      printTable(
        [title, "samples", "share"],
        rows.map(([l, n]) => [l, n, pct(n, summary.count)]),
      );
    }
  });
}

function pct(n: number, total: number): string {
  return `${((100 * n) / Math.max(1, total)).toFixed(1)}%`;
}

function fmtCounts(c: Record<string, number>): string {
  return Object.entries(c)
    .map(([k, n]) => `${k} (${n})`)
    .join(", ");
}
