import { Option, type Command } from "commander";
import { z } from "zod";
import { convertDataset } from "../../data/convert.js";
import { WRITABLE_FORMATS, openDataset } from "../../data/open.js";
import type { DatasetFormat } from "../../data/sample.js";
import type { AntidoteError } from "../../errors.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar } from "../progress.js";

const convertFlags = z.object({
  to: z.enum(WRITABLE_FORMATS as [string, ...string[]]).optional(),
  gzip: z.boolean().optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerConvert(program: Command): void {
  addReadOptions(
    program
      .command("convert")
      .argument("<input>", "a file, directory or bundled dataset name")
      .argument(
        "<output>",
        "output path: .jsonl, .csv, .parquet, *-images-idx3-ubyte[.gz], or a directory (ImageFolder)",
      )
      .description(
        "Stream a dataset from one format to another, keeping ids, digests, labels, sources and annotations",
      )
      .addOption(
        new Option("--to <format>", "output format (default: from the output path)").choices(
          WRITABLE_FORMATS,
        ),
      )
      .option("--gzip", "gzip the output (jsonl, csv, idx)")
      .option("--force", "replace an existing output (it is replaced only once the new one is complete)")
      .option("--json", "print the result as JSON")
      .addHelpText(
        "after",
        "\nThe output is written beside its final name and renamed into place when complete: a failed\n" +
          "convert leaves no partial output and an existing one as it was. The output may not be the input.",
      ),
  ).action(async (input: string, output: string, flags: Record<string, unknown>) => {
    const f = parseFlags(convertFlags, flags);
    const skipped: AntidoteError[] = [];
    const dataset = await openDataset(input, { ...readOptionsFrom(flags), onSkip: (e) => skipped.push(e) });
    const bar = progressBar({
      label: "converting",
      total: dataset.info.count,
      unit: "samples",
      enabled: !f.json,
    });
    const result = await convertDataset(dataset, output, {
      format: f.to as DatasetFormat | undefined,
      gzip: f.gzip,
      overwrite: f.force,
      onSample: (n) => n % 500 === 0 && bar.update(n),
    });
    bar.stop();
    const summary = {
      input,
      output,
      written: result.written,
      skipped: skipped.length,
      seconds: result.seconds,
    };
    if (f.json) process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
    else {
      process.stdout.write(
        `wrote ${result.written.toLocaleString("en-US")} samples to ${output} in ${result.seconds.toFixed(1)} s`,
      );
      process.stdout.write(skipped.length ? ` (${skipped.length} malformed rows skipped)\n` : "\n");
    }
  });
}
