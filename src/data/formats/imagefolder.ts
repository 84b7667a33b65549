// ImageFolder, as torchvision and Hugging Face `datasets` read it: root/<class>/<image>,
// images directly in root unlabeled. Class directory names escape the characters a file
// name cannot hold (see `labelToDirectory`), so a label such as "T-shirt/top" survives.
// An optional Hugging Face metadata file in root (metadata.jsonl or metadata.csv, one
// record per image, keyed by `file_name`) supplies ids, labels, sources, annotations and
// metadata; when it is there it lists the dataset, in its own order.
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, stat, writeFile, type FileHandle } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";
import { createInterface } from "node:readline";
import { parse as parseCsv } from "csv-parse";
import { z } from "zod";
import { AntidoteError, isAntidoteError } from "../../errors.js";
import {
  skipOrThrow,
  type Dataset,
  type DatasetWriter,
  type FormatModule,
  type ReadOptions,
  type WriteOptions,
} from "../dataset.js";
import { decodeImage, encodePng } from "../image-codec.js";
import { DatasetRoot } from "../paths.js";
import { malformed } from "../rows.js";
import {
  annotationSchema,
  imageBytesDigest,
  imageFromBytes,
  imageToBytes,
  canonicalParts,
  digestParts,
  type DatasetInfo,
  type JsonValue,
  type Sample,
} from "../sample.js";

export const imagefolderFormat: FormatModule = {
  format: "imagefolder",
  open: openImageFolder,
  create: createImageFolderWriter,
};

/**
 * Open an ImageFolder. Without a metadata file the images are listed up front (count and
 * classes known), sorted by relative path, and read one file at a time.
 */
export async function openImageFolder(root: string, options: ReadOptions = {}): Promise<Dataset> {
  await requireDirectory(root);
  const confined = new DatasetRoot(root, options.allowPathsOutsideRoot === true);
  const [images, classes, metadataFile] = await Promise.all([
    listImages(root),
    listClasses(root),
    findMetadataFile(root, confined),
  ]);
  const imageBytes = images.reduce((sum, f) => sum + f.size, 0);
  const info: DatasetInfo = {
    format: "imagefolder",
    path: root,
    classes,
    labelKind: "string",
    bytes: imageBytes,
    count: images.length,
  };
  if (metadataFile === undefined) return { info, samples: () => readListed(root, confined, images, options) };

  info.count = await countRecords(metadataFile);
  info.bytes = imageBytes + (await stat(metadataFile)).size;
  return { info, samples: () => readWithMetadata(confined, metadataFile, options) };
}

/**
 * Write root/<class directory>/<sanitised id>.png (unlabeled samples in root) and
 * root/metadata.jsonl with each image's file_name, id, source, annotations and metadata
 * (and text, when samples carry it), so that a round trip restores the samples exactly.
 */
export async function createImageFolderWriter(
  root: string,
  options: WriteOptions = {},
): Promise<DatasetWriter> {
  const existing = await readdir(root).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return [];
    throw new AntidoteError("USAGE", `${root}: cannot write an ImageFolder here: ${reason(e)}.`, {
      cause: e,
    });
  });
  if (existing.length > 0) {
    throw new AntidoteError(
      "USAGE",
      `${root}: directory is not empty; write an ImageFolder into a new or empty directory.`,
    );
  }
  await mkdir(root, { recursive: true });
  for (const label of options.classes ?? [])
    await mkdir(join(root, labelToDirectory(label)), { recursive: true });
  const metadata = await open(join(root, METADATA_JSONL), "w");
  return new ImageFolderWriter(root, metadata);
}

/**
 * The directory name for a label: `%`, path separators, characters Windows forbids, control
 * characters, a leading dot and a trailing dot or space are written as %XX (like URL
 * percent-encoding), so "T-shirt/top" is stored as "T-shirt%2Ftop". Exactly reversed by
 * `directoryToLabel`.
 */
export function labelToDirectory(label: string): string {
  if (label === "") throw new AntidoteError("USAGE", "an empty label cannot name a class directory.");
  let out = Array.from(label, (c) => (mustEscape(c) ? percent(c) : c)).join("");
  if (out.startsWith(".")) out = "%2E" + out.slice(1);
  if (out.endsWith(".") || out.endsWith(" ")) out = out.slice(0, -1) + percent(out.slice(-1));
  return out;
}

/** The label a class directory stands for (inverse of `labelToDirectory`; other names are kept as they are). */
export function directoryToLabel(name: string): string {
  return name.replace(/%([0-7][0-9A-Fa-f])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

// ── reading ────────────────────────────────────────────────────────────────────────

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg"]);
const METADATA_JSONL = "metadata.jsonl";
const METADATA_CSV = "metadata.csv";

interface ListedImage {
  /** Path relative to root, with forward slashes: the sample id. */
  rel: string;
  size: number;
  /** A symbolic link: where it leads is checked (inside root) when it is read. */
  link: boolean;
}

async function* readListed(
  root: string,
  confined: DatasetRoot,
  images: ListedImage[],
  options: ReadOptions,
): AsyncGenerator<Sample> {
  let bytesRead = 0;
  for (const { rel, size, link } of images) {
    const file = join(root, rel);
    try {
      const slash = rel.indexOf("/");
      const label = slash < 0 ? null : directoryToLabel(rel.slice(0, slash));
      // The walk follows no directory link, so only a link entry itself can lead outside.
      const target = link ? confined.resolveFile(rel, file) : file;
      const pixels = await readImage(target, file, options);
      yield { id: rel, label, source: null, annotations: [], metadata: {}, ...pixels };
    } catch (e) {
      skipOrThrow(e, options);
    }
    bytesRead += size;
    options.onProgress?.(bytesRead);
  }
}

// file_name is relative to root and may not leave it, by `..`, an absolute path or a link:
// a metadata file must not make us read arbitrary files on the machine (paths.ts).
async function* readWithMetadata(
  confined: DatasetRoot,
  metadataFile: string,
  options: ReadOptions,
): AsyncGenerator<Sample> {
  let bytesRead = 0;
  for await (const { raw, at } of metadataRecords(metadataFile)) {
    try {
      if (raw instanceof AntidoteError) throw raw;
      const record = parseRecord(raw, at, metadataFile.endsWith(".csv"));
      const named = join(confined.root, record.file_name);
      const file = confined.resolveFile(record.file_name, `${at} field "file_name"`);
      bytesRead += (await stat(file)).size;
      yield {
        ...sampleFields(record),
        ...(await readImage(file, `${named} (${at})`, options, record.text ?? undefined)),
      };
    } catch (e) {
      skipOrThrow(e, options);
    }
    options.onProgress?.(bytesRead);
  }
}

/** Decode one image file; content is sniffed, so a PNG named .jpg still reads. */
async function readImage(
  file: string,
  where: string,
  options: ReadOptions,
  text?: string,
): Promise<Pick<Sample, "digest" | "image" | "text">> {
  const bytes = await readFile(file).catch((e: unknown) => {
    throw new AntidoteError("FILE_NOT_FOUND", `${where}: cannot read image: ${reason(e)}.`, { cause: e });
  });
  const px = decodeImage(bytes, where, { maxPixels: options.maxImagePixels });
  const image = imageFromBytes(px.bytes, px.height, px.width, px.channels);
  if (text === undefined)
    return { digest: imageBytesDigest(px.bytes, px.height, px.width, px.channels), image };
  return { digest: digestParts(canonicalParts({ text, imageBytes: px })), image, text };
}

// A metadata record, validated at the boundary. CSV cells are all text, so JSON-valued
// columns (annotations, metadata) arrive as strings and blanks mean "absent".
const KNOWN_FIELDS = ["file_name", "id", "label", "text", "source", "annotations", "metadata"];
const recordSchema = z
  .object({
    file_name: z.string().min(1),
    id: z.union([z.string(), z.number()]).nullish(),
    label: z.union([z.string(), z.number(), z.boolean()]).nullish(),
    text: z.string().nullish(),
    source: z.string().nullish(),
    annotations: z.array(annotationSchema).nullish(),
    metadata: z.record(z.string(), z.json()).nullish(),
  })
  .catchall(z.json());
type MetadataRecord = z.output<typeof recordSchema>;

function parseRecord(raw: unknown, at: string, csv: boolean): MetadataRecord & { hasLabel: boolean } {
  let value = raw;
  if (csv && isObject(raw)) {
    value = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== ""));
    for (const field of ["annotations", "metadata"]) {
      const cell = (value as Record<string, unknown>)[field];
      if (typeof cell === "string") (value as Record<string, unknown>)[field] = parseJson(cell, at, field);
    }
  }
  const parsed = recordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(at, issue?.path.join(".") ?? "", issue?.message ?? "invalid metadata record");
  }
  return { ...parsed.data, hasLabel: isObject(value) && "label" in value };
}

// A `label` field wins; otherwise the class is the first directory of file_name, as in
// Hugging Face's ImageFolder. Fields we do not know become metadata, next to (and
// overridden by) a nested `metadata` object.
function sampleFields(record: MetadataRecord & { hasLabel: boolean }): Omit<Sample, "digest"> {
  const fileName = record.file_name.replaceAll("\\", "/").replace(/^\.\//, "");
  const slash = fileName.indexOf("/");
  const fromDirectory = slash < 0 ? null : directoryToLabel(fileName.slice(0, slash));
  const label = record.hasLabel
    ? record.label === null || record.label === undefined
      ? null
      : String(record.label)
    : fromDirectory;
  const extra: Record<string, JsonValue> = {};
  for (const [key, v] of Object.entries(record)) {
    if (!KNOWN_FIELDS.includes(key) && key !== "hasLabel" && v !== undefined) extra[key] = v;
  }
  return {
    id: record.id === null || record.id === undefined ? fileName : String(record.id),
    label,
    source: record.source ?? null,
    annotations: record.annotations ?? [],
    metadata: { ...extra, ...(record.metadata ?? {}) },
  };
}

async function* metadataRecords(file: string): AsyncGenerator<{ raw: unknown; at: string }> {
  if (file.endsWith(".csv")) {
    const parser = createReadStream(file).pipe(
      parseCsv({ columns: true, info: true, bom: true, skip_empty_lines: true }),
    );
    try {
      for await (const { record, info } of parser as AsyncIterable<{
        record: unknown;
        info: { lines: number };
      }>) {
        yield { raw: record, at: `${file}:${info.lines}` };
      }
    } catch (e) {
      if (isAntidoteError(e)) throw e;
      throw new AntidoteError("INPUT_FORMAT", `${file}: ${reason(e)}.`, { cause: e });
    }
    return;
  }
  let line = 0;
  for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    line++;
    if (text.trim() === "") continue;
    const at = `${file}:${line}`;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      raw = new AntidoteError("ROW_MALFORMED", `${at}: not valid JSON.`);
    }
    yield { raw, at };
  }
}

async function countRecords(file: string): Promise<number> {
  let n = 0;
  try {
    for await (const _ of metadataRecords(file)) n++;
  } catch {
    // A broken file is reported, with its line, when the samples are streamed.
  }
  return n;
}

async function requireDirectory(root: string): Promise<void> {
  const info = await stat(root).catch(() => undefined);
  if (info === undefined) throw new AntidoteError("FILE_NOT_FOUND", `${root}: no such directory.`);
  if (!info.isDirectory())
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${root}: not a directory; an ImageFolder is a directory of class directories.`,
    );
}

/**
 * Every image under root (hidden entries skipped), sorted by relative path. Links to image
 * files are listed (torchvision follows them) and checked when read; links to directories
 * are not walked, so the walk stays inside root and cannot loop.
 */
async function listImages(root: string): Promise<ListedImage[]> {
  const out: ListedImage[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith("."));
    const images = entries.filter(
      (e) => (e.isFile() || e.isSymbolicLink()) && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase()),
    );
    const sizes = await Promise.all(
      images.map((e) =>
        stat(join(dir, e.name)).then(
          (s) => s.size,
          () => 0, // a dangling link: reported when read
        ),
      ),
    );
    images.forEach((e, i) =>
      out.push({
        rel: relative(root, join(dir, e.name)).split(sep).join("/"),
        size: sizes[i] ?? 0,
        link: e.isSymbolicLink(),
      }),
    );
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
  };
  await walk(root);
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

async function listClasses(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  const labels = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .map((e) => directoryToLabel(e.name));
  return labels.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// A metadata file that is a link must lead inside root too: its records become samples' metadata.
async function findMetadataFile(root: string, confined: DatasetRoot): Promise<string | undefined> {
  const present = await Promise.all(
    [METADATA_JSONL, METADATA_CSV].map((name) =>
      stat(join(root, name)).then(
        (s) => (s.isFile() ? join(root, name) : undefined),
        () => undefined,
      ),
    ),
  );
  const files = present.filter((f): f is string => f !== undefined);
  if (files.length > 1) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${root}: has both ${METADATA_JSONL} and ${METADATA_CSV}; keep one.`,
    );
  }
  const found = files[0];
  return found === undefined ? undefined : confined.resolveFile(relative(root, found), found);
}

// ── writing ────────────────────────────────────────────────────────────────────────

const FLUSH_BYTES = 256 * 1024;

class ImageFolderWriter implements DatasetWriter {
  private lines: string[] = [];
  private lineBytes = 0;
  private written = 0;
  private readonly directories = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly metadata: FileHandle,
  ) {}

  async write(sample: Sample): Promise<void> {
    const img = sample.image;
    if (img === undefined) {
      throw new AntidoteError(
        "USAGE",
        `${this.root}: sample "${sample.id}" has no image; ImageFolder stores images only.`,
      );
    }
    const dir = sample.label === null ? "" : labelToDirectory(sample.label);
    if (dir !== "" && !this.directories.has(dir)) {
      await mkdir(join(this.root, dir), { recursive: true });
      this.directories.add(dir);
    }
    const png = encodePng(imageToBytes(img), img.height, img.width, img.channels);
    const name = await this.writeUnique(dir, fileStem(sample.id), png);
    const record: Record<string, unknown> = {
      file_name: dir === "" ? name : `${dir}/${name}`,
      id: sample.id,
    };
    if (sample.text !== undefined) record.text = sample.text;
    Object.assign(record, {
      source: sample.source,
      annotations: sample.annotations,
      metadata: sample.metadata,
    });
    const line = JSON.stringify(record) + "\n";
    this.lines.push(line);
    this.lineBytes += line.length;
    if (this.lineBytes >= FLUSH_BYTES) await this.flush();
    this.written++;
  }

  async close(): Promise<number> {
    await this.flush();
    await this.metadata.close();
    return this.written;
  }

  /** Give up: release the metadata file (the directory's removal is the caller's). */
  async abort(): Promise<void> {
    await this.metadata.close().catch(() => undefined);
  }

  // The file system is the record of names taken: "wx" fails when the name exists
  // (whatever its case, on case-insensitive disks), and we try the next suffix.
  private async writeUnique(dir: string, stem: string, png: Uint8Array): Promise<string> {
    for (let k = 1; ; k++) {
      const name = k === 1 ? `${stem}.png` : `${stem}-${k}.png`;
      try {
        await writeFile(join(this.root, dir, name), png, { flag: "wx" });
        return name;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new AntidoteError(
            "USAGE",
            `${join(this.root, dir, name)}: cannot write image: ${reason(e)}.`,
            { cause: e },
          );
        }
      }
    }
  }

  private async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    await this.metadata.write(this.lines.join(""));
    this.lines = [];
    this.lineBytes = 0;
  }
}

/** A file-name-safe stem for a sample id: ids such as "train:12" or "spam-1/0042" become "train_12", "spam-1_0042". */
function fileStem(id: string): string {
  const safe = id
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^\.+/, "")
    .slice(0, 100);
  return safe === "" ? "image" : safe;
}

const UNSAFE_IN_NAMES = new Set('%/\\:*?"<>|');

// Characters that cannot stand in a file name on some system: separators, Windows's
// reserved set, control characters; and % itself, so escaping stays reversible.
function mustEscape(c: string): boolean {
  const code = c.charCodeAt(0);
  return UNSAFE_IN_NAMES.has(c) || code < 0x20 || code === 0x7f;
}

function percent(c: string): string {
  return "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
}

function parseJson(text: string, at: string, field: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw malformed(at, field, "not valid JSON");
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
