// Flags shared by every command that reads a dataset, validated with zod at the boundary
// so a wrong flag is one clear line, not a stack trace.
import { Option, type Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { OpenOptions } from "../data/open.js";
import { READABLE_FORMATS } from "../data/open.js";
import { DEFAULT_MAX_IMAGE_PIXELS } from "../data/dataset.js";

export function addReadOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--format <format>", "input format (default: detected from name and content)").choices(
        READABLE_FORMATS,
      ),
    )
    .option("--id-column <name>", "column holding a stable sample id (default: id, sample_id, uid, …)")
    .option("--text-column <name>", "column holding text (default: text, content, body, …)")
    .option(
      "--image-column <name>",
      "column holding images: bytes, {bytes,path}, data URI or path (default: image, img, …)",
    )
    .option("--label-column <name>", "column holding the class label (default: label, class, target, …)")
    .option(
      "--source-column <name>",
      "column naming where the sample came from (default: source, origin, supplier, …)",
    )
    .option("--annotations-column <name>", "column holding [{annotator, label}] (default: annotations)")
    .option("--feature-columns <names>", "comma-separated numeric columns to read as tabular features")
    .option("--split <name>", "IDX directories: which split to read (train, t10k)")
    .addOption(
      new Option("--on-error <mode>", "on a malformed row: fail, or skip it and count it")
        .choices(["fail", "skip"])
        .default("fail"),
    )
    .option(
      "--allow-outside-root",
      "read image files that rows or metadata name outside the dataset's directory (after following links); " +
        "risky: whoever wrote the dataset can then make Antidote read, store and export any file you can read",
    )
    .option(
      "--max-image-pixels <n>",
      `refuse images whose header declares more pixels than this, before decoding (default ${DEFAULT_MAX_IMAGE_PIXELS}); ` +
        "raising it lets a small file claim gigabytes of memory",
    );
}

const readFlags = z.object({
  format: z.enum(READABLE_FORMATS as [string, ...string[]]).optional(),
  idColumn: z.string().min(1).optional(),
  textColumn: z.string().min(1).optional(),
  imageColumn: z.string().min(1).optional(),
  labelColumn: z.string().min(1).optional(),
  sourceColumn: z.string().min(1).optional(),
  annotationsColumn: z.string().min(1).optional(),
  featureColumns: z.string().min(1).optional(),
  split: z.string().min(1).optional(),
  onError: z.enum(["fail", "skip"]).default("fail"),
  allowOutsideRoot: z.boolean().optional(),
  maxImagePixels: z.coerce
    .number({ error: "must be a whole number of pixels" })
    .int({ error: "must be a whole number of pixels" })
    .positive({ error: "must be a positive number of pixels" })
    .optional(),
});

export function readOptionsFrom(flags: unknown): OpenOptions {
  const f = parseFlags(readFlags, flags);
  const columns = {
    id: f.idColumn,
    text: f.textColumn,
    image: f.imageColumn,
    label: f.labelColumn,
    source: f.sourceColumn,
    annotations: f.annotationsColumn,
  };
  const options: OpenOptions = {
    columns: Object.fromEntries(Object.entries(columns).filter(([, v]) => v !== undefined)),
    onError: f.onError,
  };
  if (f.format !== undefined) options.format = f.format as OpenOptions["format"];
  if (f.featureColumns !== undefined)
    options.featureColumns = f.featureColumns.split(",").map((c) => c.trim());
  if (f.split !== undefined) options.split = f.split;
  if (f.allowOutsideRoot === true) options.allowPathsOutsideRoot = true;
  if (f.maxImagePixels !== undefined) options.maxImagePixels = f.maxImagePixels;
  return options;
}

/** Validate parsed flags; the message names the flag as the user typed it. */
export function parseFlags<T extends z.ZodType>(schema: T, flags: unknown): z.output<T> {
  const r = schema.safeParse(flags);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = String(issue?.path[0] ?? "");
  const flag = key ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : "arguments";
  throw new AntidoteError("USAGE", `${flag}: ${issue?.message ?? "invalid value"}.`);
}
