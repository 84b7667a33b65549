// Deep Partition Aggregation (Levine & Feizi, ICLR 2021), step 1: split a training set
// into K disjoint partitions, one model to be trained on each.
//
// A sample's partition is a hash of its content digest, never of its position or of any
// other sample: adding or removing samples never moves the others, so an attacker who
// inserts or deletes one training sample changes exactly one partition, hence at most one
// of the K models — the premise of the certificate in dpa-certify.ts. Because only content
// is hashed (labels are not content), identical content always lands in one partition:
// duplicates cannot be spread over several models, and relabelling a sample in place
// changes only the partition that already held it. The hash is public and fixed; the
// certificate assumes the worst case (the attacker chooses which partition they hit), so
// it does not rely on the hash being secret.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, rm, type FileHandle } from "node:fs/promises";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { stringify } from "csv-stringify/sync";
import { z } from "zod";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import type { ParquetWriteOptions } from "../data/formats/parquet.js";
import { OutputFile } from "../data/formats/row-layout.js";
import { createWriter } from "../data/open.js";
import { imageFromBytes, imageToBytes, type DatasetFormat, type Sample } from "../data/sample.js";
import { AntidoteError } from "../errors.js";

/** Domain separation, so DPA partitions are unrelated to any other use of the sample digest. */
export const DPA_HASH_PREFIX = "antidote-dpa:";
export const DPA_MIN_K = 2;
export const DPA_MAX_K = 10_000;

/**
 * The partition of a sample with content digest `digest`: the first 8 bytes of
 * SHA-256("antidote-dpa:" + digest), read as a big-endian unsigned 64-bit integer, mod K.
 * (2^64 mod K is at most K/2^64 away from uniform: negligible.) Any language can recompute it.
 */
export function partitionOf(digest: string, k: number): number {
  if (!Number.isInteger(k) || k < 1)
    throw new AntidoteError("USAGE", `K must be a positive integer; got ${k}.`);
  const hash = createHash("sha256")
    .update(DPA_HASH_PREFIX + digest, "utf8")
    .digest();
  return Number(hash.readBigUInt64BE(0) % BigInt(k));
}

export interface PartitionOptions {
  /** Number of partitions (= models), 2 to 10,000. */
  k: number;
  /** Directory that receives part-000.<ext> … and partitions.csv. */
  outDir: string;
  /** Output format of the partition files (default parquet). */
  format?: DatasetFormat;
  gzip?: boolean;
  /**
   * At most this many partition writers are open at once (default 32). With K above it the
   * samples are first spooled into ⌈K / maxOpenWriters⌉ temporary files, each then fanned out
   * to its partitions, so memory and file handles stay bounded whatever K is. Measured here:
   * every open writer holds its partition's pending rows, so 20,000 random 64×64×3 images
   * (240 MB) into K = 200 Parquet files peaked at 492 MiB RSS written directly and 233 MiB
   * spooled; Fashion-MNIST train into K = 10,000 took 51 s / 384 MB spooled, 74 s / 407 MB
   * with 10,000 writers (and as many file handles) open.
   */
  maxOpenWriters?: number;
  /** Warn about partitions holding fewer samples than this of some class (default 10). */
  minPerClass?: number;
  /** Remove part-* files and partitions.csv left in outDir by an earlier run. */
  overwrite?: boolean;
  /** Called with the number of samples read so far. */
  onSample?: (n: number) => void;
}

const optionsSchema = z.object({
  k: z.number().int().min(DPA_MIN_K).max(DPA_MAX_K),
  outDir: z.string().min(1),
  maxOpenWriters: z.number().int().min(1).max(DPA_MAX_K).default(32),
  minPerClass: z.number().int().min(0).default(10),
});

/** A class that some partition holds too few samples of. */
export interface ThinClass {
  partition: number;
  label: string;
  count: number;
}

export interface PartitionSummary {
  k: number;
  samples: number;
  /** Samples without a label (not counted per class). */
  unlabeled: number;
  format: DatasetFormat;
  outDir: string;
  /** Partition files, index = partition. */
  files: string[];
  partitionsCsv: string;
  sizes: number[];
  min: number;
  median: number;
  max: number;
  /** Labels seen, in the dataset's class order when it has one. */
  classes: string[];
  minPerClass: number;
  /** Partitions holding fewer than minPerClass samples of at least one class. */
  thinPartitions: number;
  /** The partition and class with the fewest samples, among all (partition, class) pairs. */
  thinnest: ThinClass | null;
  warnings: string[];
  /** Whether samples went through temporary spool files (K above maxOpenWriters). */
  spooled: boolean;
  seconds: number;
}

const EXTENSIONS: Record<DatasetFormat, string> = {
  parquet: ".parquet",
  jsonl: ".jsonl",
  csv: ".csv",
  idx: "-images-idx3-ubyte", // idx4 for multi-channel images: see partitionPath
  imagefolder: "",
  spamassassin: "",
};

/**
 * File (or directory, for ImageFolder) of partition `p` in `outDir`: part-007.parquet,
 * part-007-images-idx3-ubyte(.gz) (idx4 for images with several channels), part-007/ … —
 * zero-padded so they sort in order.
 */
export function partitionPath(
  outDir: string,
  p: number,
  k: number,
  format: DatasetFormat,
  options: { gzip?: boolean | undefined; imageChannels?: number | undefined } = {},
): string {
  const width = Math.max(3, String(k - 1).length);
  const gz =
    options.gzip === true && (format === "jsonl" || format === "csv" || format === "idx") ? ".gz" : "";
  const ext =
    format === "idx" && (options.imageChannels ?? 1) > 1 ? "-images-idx4-ubyte" : EXTENSIONS[format];
  return join(outDir, `part-${String(p).padStart(width, "0")}${ext}${gz}`);
}

// Parquet buffers one row group per open writer; smaller groups than the 64 MiB default keep
// maxOpenWriters × this bounded (32 × 16 MiB) while staying a sensible Parquet row group.
const PARTITION_ROW_GROUP_BYTES = 16 * 1024 * 1024;

/**
 * Stream `dataset` once and write its K partitions to `options.outDir` with the project's
 * writers, plus partitions.csv (id, digest, partition) in input order. Within a partition,
 * samples keep their input order.
 */
export async function partitionDataset(
  dataset: Dataset,
  options: PartitionOptions,
): Promise<PartitionSummary> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AntidoteError(
      "USAGE",
      `${String(issue?.path[0] ?? "options")}: ${issue?.message ?? "invalid"}.`,
    );
  }
  const { k, outDir, maxOpenWriters, minPerClass } = parsed.data;
  const format = options.format ?? "parquet";
  if (format === "spamassassin") throw new AntidoteError("USAGE", `cannot write spamassassin partitions.`);
  const started = performance.now();
  await prepareOutDir(outDir, options.overwrite === true);

  // IDX names 1-channel images idx3 and colour images idx4: fixed by the first sample.
  let imageChannels: number | undefined;
  const fileOf = (p: number) => partitionPath(outDir, p, k, format, { gzip: options.gzip, imageChannels });
  const info = dataset.info;
  const writeOptions: ParquetWriteOptions & { format: DatasetFormat } = {
    format,
    gzip: options.gzip,
    classes: info.classes,
    labelKind: info.labelKind,
    featureNames: info.featureNames,
    rowGroupBytes: PARTITION_ROW_GROUP_BYTES, // read by the Parquet writer only
  };
  const openPartition = (p: number): Promise<DatasetWriter> => createWriter(fileOf(p), writeOptions);

  const groups = Math.ceil(k / maxOpenWriters);
  const groupOf = (p: number) => Math.floor(p / maxOpenWriters);
  const sizes = new Array<number>(k).fill(0);
  const perClass = new Map<string, Uint32Array>();
  let samples = 0;
  let unlabeled = 0;

  const csvPath = join(outDir, "partitions.csv");
  const csv = await OutputFile.create(csvPath, false);
  await csv.write(stringify([["id", "digest", "partition"]]));

  const spoolDir = groups > 1 ? await mkdtemp(join(outDir, ".dpa-spool-")) : undefined;
  try {
    // One group: write straight to the K writers. Several: spool by group, then fan out.
    let direct: DatasetWriter[] | undefined;
    const spools =
      spoolDir === undefined
        ? []
        : await Promise.all(
            Array.from({ length: groups }, (_, g) => SpoolFile.create(join(spoolDir, `${g}`))),
          );
    let rows: string[][] = [];
    for await (const sample of dataset.samples()) {
      if (samples === 0) {
        imageChannels = sample.image?.channels;
        if (groups === 1) direct = await openAll(0, k, openPartition);
      }
      const p = partitionOf(sample.digest, k);
      sizes[p] = (sizes[p] ?? 0) + 1;
      if (sample.label === null) unlabeled++;
      else countClass(perClass, sample.label, p, k);
      rows.push([sample.id, sample.digest, String(p)]);
      if (rows.length >= 1024) {
        await csv.write(stringify(rows));
        rows = [];
      }
      if (direct !== undefined) await direct[p]?.write(sample);
      else await spools[groupOf(p)]?.append(p, sample);
      samples++;
      options.onSample?.(samples);
    }
    if (rows.length > 0) await csv.write(stringify(rows));
    await csv.close();
    if (groups === 1) await closeAll(direct ?? (await openAll(0, k, openPartition)));
    for (const [g, spool] of spools.entries()) {
      await spool.finish();
      const first = g * maxOpenWriters;
      const writers = await openAll(first, Math.min(k, first + maxOpenWriters), openPartition);
      for await (const { partition, sample } of spool.records())
        await writers[partition - first]?.write(sample);
      await closeAll(writers);
      await spool.remove();
    }
  } finally {
    if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
  }

  const classes = orderedClasses([...perClass.keys()], info.classes);
  const thin = thinness(perClass, classes, k, minPerClass);
  const sorted = [...sizes].sort((a, b) => a - b);
  const summary: PartitionSummary = {
    k,
    samples,
    unlabeled,
    format,
    outDir,
    files: Array.from({ length: k }, (_, p) => fileOf(p)),
    partitionsCsv: csvPath,
    sizes,
    min: sorted[0] ?? 0,
    median: median(sorted),
    max: sorted.at(-1) ?? 0,
    classes,
    minPerClass,
    thinPartitions: thin.partitions,
    thinnest: thin.thinnest,
    warnings: [],
    spooled: groups > 1,
    seconds: (performance.now() - started) / 1000,
  };
  summary.warnings = warningsFor(summary);
  return summary;
}

async function prepareOutDir(outDir: string, overwrite: boolean): Promise<void> {
  if (existsSync(outDir) && !statSync(outDir).isDirectory())
    throw new AntidoteError("USAGE", `${outDir}: exists and is not a directory.`);
  await mkdir(outDir, { recursive: true });
  const ours = (await readdir(outDir)).filter((n) => /^part-\d+/.test(n) || n === "partitions.csv");
  if (ours.length === 0) return;
  if (!overwrite) {
    throw new AntidoteError(
      "USAGE",
      `${outDir}: already holds partitions (${ours[0]}${ours.length > 1 ? `, … ${ours.length} entries` : ""}); ` +
        `pass --overwrite to replace them or choose an empty directory.`,
    );
  }
  // Only what an earlier run wrote: a stale part-0123 from a larger K would mislead training.
  await Promise.all(ours.map((n) => rm(join(outDir, n), { recursive: true, force: true })));
}

async function openAll(
  from: number,
  to: number,
  openPartition: (p: number) => Promise<DatasetWriter>,
): Promise<DatasetWriter[]> {
  const writers: DatasetWriter[] = [];
  for (let p = from; p < to; p++) writers.push(await openPartition(p));
  return writers;
}

async function closeAll(writers: DatasetWriter[]): Promise<void> {
  for (const w of writers) await w.close();
}

function countClass(perClass: Map<string, Uint32Array>, label: string, p: number, k: number): void {
  let counts = perClass.get(label);
  if (counts === undefined) {
    counts = new Uint32Array(k);
    perClass.set(label, counts);
  }
  counts[p] = (counts[p] ?? 0) + 1;
}

function orderedClasses(seen: string[], known: string[] | undefined): string[] {
  if (known === undefined) return seen.sort();
  const rest = seen.filter((c) => !known.includes(c)).sort();
  return [...known.filter((c) => seen.includes(c)), ...rest];
}

function thinness(
  perClass: Map<string, Uint32Array>,
  classes: string[],
  k: number,
  minPerClass: number,
): { partitions: number; thinnest: ThinClass | null } {
  let partitions = 0;
  let thinnest: ThinClass | null = null;
  for (let p = 0; p < k; p++) {
    let thin = false;
    for (const label of classes) {
      const count = perClass.get(label)?.[p] ?? 0;
      if (count < minPerClass) thin = true;
      if (thinnest === null || count < thinnest.count) thinnest = { partition: p, label, count };
    }
    if (thin) partitions++;
  }
  return { partitions, thinnest };
}

function warningsFor(s: PartitionSummary): string[] {
  const warnings: string[] = [];
  if (s.min === 0) {
    const empty = s.sizes.filter((n) => n === 0).length;
    warnings.push(
      `${empty} of ${s.k} partitions are empty: their models cannot vote usefully; use a smaller K.`,
    );
  }
  if (s.thinPartitions > 0 && s.thinnest !== null) {
    const t = s.thinnest;
    warnings.push(
      `${s.thinPartitions} of ${s.k} partitions hold fewer than ${s.minPerClass} samples of some class ` +
        `(fewest: partition ${t.partition} has ${t.count} of "${t.label}"); models trained on them will ` +
        `barely learn those classes — a smaller K trades certified radius for accuracy.`,
    );
  }
  return warnings;
}

function median(sorted: number[]): number {
  if (sorted.length === 0) return 0;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

// ── spool ──────────────────────────────────────────────────────────────────────────────

/** A sample as spooled: images as their 8-bit pixels (what every writer stores anyway). */
interface SpooledSample {
  partition: number;
  sample: Omit<Sample, "image">;
  image?: { bytes: Uint8Array; height: number; width: number; channels: number };
}

// Small, because all ⌈K / maxOpenWriters⌉ spools fill at once (313 × 64 KiB for K = 10,000).
const SPOOL_BUFFER_BYTES = 64 * 1024;

/**
 * A temporary file of length-prefixed, V8-serialized samples (structured clone keeps typed
 * arrays, metadata and nulls exactly). Images are stored as 8-bit pixels: 4× smaller than
 * the decoded floats, and re-decoding them gives back bytes every writer stores unchanged.
 */
class SpoolFile {
  private buffer = Buffer.allocUnsafe(SPOOL_BUFFER_BYTES);
  private used = 0;

  private constructor(
    private readonly path: string,
    private handle: FileHandle | undefined,
  ) {}

  static async create(path: string): Promise<SpoolFile> {
    return new SpoolFile(path, await open(path, "w"));
  }

  async append(partition: number, sample: Sample): Promise<void> {
    const { image, ...rest } = sample;
    const record: SpooledSample = { partition, sample: rest };
    if (image !== undefined) {
      record.image = {
        bytes: imageToBytes(image),
        height: image.height,
        width: image.width,
        channels: image.channels,
      };
    }
    const body = serialize(record);
    const needed = 4 + body.length;
    if (this.used + needed > this.buffer.length) await this.flush();
    if (needed > this.buffer.length) this.buffer = Buffer.allocUnsafe(needed);
    this.buffer.writeUInt32LE(body.length, this.used);
    body.copy(this.buffer, this.used + 4);
    this.used += needed;
  }

  async finish(): Promise<void> {
    await this.flush();
    await this.handle?.close();
    this.handle = undefined;
  }

  async *records(): AsyncGenerator<{ partition: number; sample: Sample }> {
    const handle = await open(this.path, "r");
    try {
      let pending: Buffer = Buffer.alloc(0);
      for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
        pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
        let at = 0;
        while (pending.length - at >= 4) {
          const length = pending.readUInt32LE(at);
          if (pending.length - at - 4 < length) break;
          // A copy: deserialized typed arrays are views over the buffer they came from.
          const record = deserialize(Buffer.from(pending.subarray(at + 4, at + 4 + length))) as SpooledSample;
          at += 4 + length;
          const sample: Sample = { ...record.sample };
          if (record.image !== undefined) {
            const { bytes, height, width, channels } = record.image;
            sample.image = imageFromBytes(bytes, height, width, channels);
          }
          yield { partition: record.partition, sample };
        }
        pending = pending.subarray(at);
      }
      if (pending.length > 0)
        throw new AntidoteError("INTERNAL", `${this.path}: spool file ends inside a record.`);
    } finally {
      await handle.close();
    }
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }

  private async flush(): Promise<void> {
    if (this.used === 0 || this.handle === undefined) return;
    await this.handle.write(this.buffer, 0, this.used);
    this.used = 0;
  }
}
