// IDX, the MNIST file family (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):
// magic 0x00 0x00 <type code> <ndim>, then ndim big-endian uint32 sizes, then the data in
// row-major order. Antidote reads and writes type 0x08 (unsigned byte) only: images as
// (N,H,W) or (N,H,W,C), labels as (N), in a pair of files that share a prefix:
//   <prefix>-images-idx3-ubyte[.gz]   <prefix>-labels-idx1-ubyte[.gz]
// (the Kaggle spelling `<prefix>-images.idx3-ubyte` is read too). Files are streamed: the
// reader holds one image plus one decompressed chunk; the writer spills to a temp file
// because the count must go in the header before the data.
import { createReadStream, createWriteStream, existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, open, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { randomBytes } from "node:crypto";
import { createGunzip, createGzip } from "node:zlib";
import { AntidoteError } from "../../errors.js";
import {
  DEFAULT_MAX_IMAGE_PIXELS,
  skipOrThrow,
  type Dataset,
  type DatasetWriter,
  type FormatModule,
  type ReadOptions,
  type WriteOptions,
} from "../dataset.js";
import { requireSeekable } from "../paths.js";
import { malformed } from "../rows.js";
import { imageBytesDigest, imageFromBytes, imageToBytes, type DatasetInfo, type Sample } from "../sample.js";

export const idxFormat: FormatModule = { format: "idx", open: openIdx, create: createIdxWriter };

/**
 * Open an IDX images file (its labels file is found by name; without one the samples are
 * unlabeled) or a directory of such pairs, where `options.split` picks the prefix
 * ("train" by default, or the only split when there is just one).
 */
export async function openIdx(path: string, options: ReadOptions = {}): Promise<Dataset> {
  const pair = locatePair(path, options.split);
  const images = await readHeaderOf(pair.images, "images");
  checkPixels(pair.images, images.dims, options.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS);
  const labels = pair.labels === undefined ? undefined : await readHeaderOf(pair.labels, "labels");
  if (labels !== undefined && labels.dims[0] !== images.dims[0]) {
    throw new AntidoteError(
      "IDX_HEADER",
      `${pair.images} holds ${images.dims[0]} images but ${pair.labels} holds ${labels.dims[0]} labels; the counts must match.`,
    );
  }
  const info: DatasetInfo = {
    format: "idx",
    path,
    count: images.dims[0] ?? 0,
    bytes: (await stat(pair.images)).size + (pair.labels === undefined ? 0 : (await stat(pair.labels)).size),
  };
  if (options.classes !== undefined) info.classes = options.classes;
  if (labels !== undefined) info.labelKind = "integer";
  return { info, samples: () => streamSamples(pair, images, labels !== undefined, options) };
}

/**
 * Create an IDX writer. `path` names the images file and must end in
 * `images-idx3-ubyte` (1-channel images) or `images-idx4-ubyte` (C channels), optionally
 * `.gz`; the labels file is written beside it with `images-idxN` replaced by `labels-idx1`
 * (e.g. out/train-images-idx3-ubyte.gz → out/train-labels-idx1-ubyte.gz). Both files are
 * gzipped when the name ends in .gz or `options.gzip` is set. Labels are stored as class
 * indices: the position in `options.classes`, or the label itself when it is an integer
 * 0–255. Unlabeled samples (label null for all) write no labels file and remove a stale one.
 */
export async function createIdxWriter(path: string, options: WriteOptions = {}): Promise<DatasetWriter> {
  const target = writerTarget(path, options);
  if (options.classes !== undefined && options.classes.length > 256) {
    throw new AntidoteError(
      "USAGE",
      `${path}: IDX stores labels as bytes, so at most 256 classes; got ${options.classes.length}.`,
    );
  }
  await mkdir(dirname(path), { recursive: true });
  return new IdxWriter(target, options.classes);
}

// ---------------------------------------------------------------------------------------
// Reading

const IMAGES_NAME = /^(?:(.*)-)?images([-.])idx([34])-ubyte(\.gz)?$/;
const LABELS_NAME = /^(?:(.*)-)?labels([-.])idx1-ubyte(\.gz)?$/;
const UBYTE = 0x08;
// Beyond any IDX image in use; keeps a garbage header from making us buffer the whole file.
const MAX_IMAGE_BYTES = 1 << 28;
const TYPE_NAMES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "short",
  0x0c: "int",
  0x0d: "float",
  0x0e: "double",
};

interface IdxPair {
  images: string;
  labels: string | undefined;
  /** The file prefix before "-images" ("train", "t10k"); ids are `<split>:<index>`. */
  split: string;
}

interface IdxHeader {
  file: string;
  /** dims[0] is the record count. */
  dims: number[];
  /** Bytes of header before the data (4 + 4·ndim). */
  length: number;
}

function locatePair(path: string, split: string | undefined): IdxPair {
  if (!existsSync(path)) throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such file or directory.`);
  const stats = statSync(path);
  if (stats.isDirectory()) return pairInDirectory(path, split);
  requireSeekable(path, stats); // the header is read twice: once to open, once per pass
  const name = basename(path);
  const labelsMatch = LABELS_NAME.exec(name);
  if (labelsMatch !== null) {
    throw new AntidoteError(
      "USAGE",
      `${path} is an IDX labels file; open its images file (${name.replace(/labels([-.])idx1/, "images$1idx3")}) or the directory.`,
    );
  }
  const m = IMAGES_NAME.exec(name);
  if (m === null)
    return { images: path, labels: undefined, split: name.replace(/\.gz$/, "").replace(/\.[^.]*$/, "") };
  return { images: path, labels: labelsFileFor(path), split: m[1] ?? "images" };
}

function pairInDirectory(dir: string, split: string | undefined): IdxPair {
  const found = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const m = IMAGES_NAME.exec(name);
    if (m !== null && !found.has(m[1] ?? "images")) found.set(m[1] ?? "images", join(dir, name));
  }
  if (found.size === 0) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${dir}: no IDX images file (<split>-images-idx3-ubyte[.gz]) in this directory.`,
    );
  }
  const only = found.size === 1 ? [...found.keys()][0] : undefined;
  const wanted = split ?? (found.has("train") ? "train" : (only ?? "train"));
  const images = found.get(wanted);
  if (images === undefined) {
    throw new AntidoteError(
      "USAGE",
      `${dir}: no IDX split "${wanted}"; the splits here are ${[...found.keys()].map((s) => `"${s}"`).join(", ")}.`,
    );
  }
  return { images, labels: labelsFileFor(images), split: wanted };
}

// The labels file shares the prefix and spelling; it may be gzipped independently of the images.
function labelsFileFor(imagesPath: string): string | undefined {
  const stem = basename(imagesPath)
    .replace(/\.gz$/, "")
    .replace(/images([-.])idx[34]-ubyte$/, "labels$1idx1-ubyte");
  const gz = imagesPath.endsWith(".gz");
  const candidates = gz ? [`${stem}.gz`, stem] : [stem, `${stem}.gz`];
  return candidates.map((c) => join(dirname(imagesPath), c)).find((p) => existsSync(p));
}

async function readHeaderOf(file: string, role: "images" | "labels"): Promise<IdxHeader> {
  const source = await openSource(file);
  try {
    return await readHeader(source.reader, file, role);
  } finally {
    source.close();
  }
}

async function* streamSamples(
  pair: IdxPair,
  header: IdxHeader,
  labeled: boolean,
  options: ReadOptions,
): AsyncGenerator<Sample> {
  const { classes, onProgress } = options;
  let bytesRead = 0;
  const progress = (n: number): void => {
    bytesRead += n;
    onProgress?.(bytesRead);
  };
  const images = await openSource(pair.images, progress);
  const labels = labeled && pair.labels !== undefined ? await openSource(pair.labels, progress) : undefined;
  try {
    const again = await readHeader(images.reader, pair.images, "images");
    const labelsAgain =
      labels !== undefined && pair.labels !== undefined
        ? await readHeader(labels.reader, pair.labels, "labels")
        : undefined;
    if (
      again.dims.join() !== header.dims.join() ||
      (labelsAgain !== undefined && labelsAgain.dims[0] !== header.dims[0])
    ) {
      throw headerError(pair.images, "the IDX files changed since the dataset was opened");
    }
    const [count = 0, height = 0, width = 0, channels = 1] = header.dims;
    const size = height * width * channels;
    for (let i = 0; i < count; i++) {
      const pixels = await readRecord(images.reader, header, size, i, "image");
      const sample: Sample = {
        id: `${pair.split}:${i}`,
        digest: imageBytesDigest(pixels, height, width, channels),
        label: null,
        image: imageFromBytes(pixels, height, width, channels),
        source: null,
        annotations: [],
        metadata: {},
      };
      if (labels !== undefined && pair.labels !== undefined) {
        const index =
          (
            await readRecord(labels.reader, { file: pair.labels, dims: [count], length: 8 }, 1, i, "label")
          )[0] ?? 0;
        const name = classes === undefined ? String(index) : classes[index];
        if (name === undefined) {
          const error = malformed(
            `${pair.labels} row ${i}`,
            "",
            `label index ${index} is outside the ${classes?.length ?? 0} classes given (0–${(classes?.length ?? 0) - 1})`,
          );
          skipOrThrow(error, options);
          continue;
        }
        sample.label = name;
      }
      yield sample;
    }
    await expectEnd(images.reader, header, size);
    if (labels !== undefined && pair.labels !== undefined) {
      await expectEnd(labels.reader, { file: pair.labels, dims: [count], length: 8 }, 1);
    }
  } finally {
    images.close();
    labels?.close();
  }
}

// Header per the IDX spec: two zero bytes, the type code, ndim, then ndim uint32 BE sizes.
async function readHeader(reader: ChunkReader, file: string, role: "images" | "labels"): Promise<IdxHeader> {
  const magic = await guard(file, "the header", reader.read(4));
  if (magic.length < 4)
    throw headerError(file, `file is too short for an IDX header (${magic.length} bytes)`);
  const [z0, z1, type = 0, ndim = 0] = magic;
  if (z0 !== 0 || z1 !== 0) {
    throw headerError(file, `not an IDX file: bad magic number (an IDX file starts with 00 00 08 <ndim>)`);
  }
  if (type !== UBYTE) {
    const name = TYPE_NAMES[type];
    throw headerError(
      file,
      `type code 0x${type.toString(16).padStart(2, "0")}${name ? ` (${name})` : " (unknown)"} is not supported; only 0x08 (unsigned byte)`,
    );
  }
  const allowed = role === "images" ? [3, 4] : [1];
  if (!allowed.includes(ndim)) {
    const want = role === "images" ? "3 (N,H,W) or 4 (N,H,W,C)" : "1 (N)";
    throw headerError(file, `an IDX ${role} file must have ${want} dimensions, but the header says ${ndim}`);
  }
  const sizes = await guard(file, "the header", reader.read(4 * ndim));
  if (sizes.length < 4 * ndim) {
    throw headerError(
      file,
      `header is truncated: ${ndim} dimension sizes need ${4 * ndim} bytes, found ${sizes.length}`,
    );
  }
  const dims = Array.from({ length: ndim }, (_, i) => sizes.readUInt32BE(4 * i));
  if (role === "images") checkImageDims(file, dims);
  return { file, dims, length: 4 + 4 * ndim };
}

function checkImageDims(file: string, dims: number[]): void {
  const [count = 0, ...shape] = dims;
  const size = shape.reduce((a, b) => a * b, 1);
  if (count > 0 && size === 0) {
    throw headerError(
      file,
      `image shape ${shape.join("x")} has a zero dimension but the header declares ${count} images`,
    );
  }
  if (size > MAX_IMAGE_BYTES) {
    throw headerError(file, `image shape ${shape.join("x")} (${size} bytes per image) is implausibly large`);
  }
}

async function readRecord(
  reader: ChunkReader,
  header: IdxHeader,
  size: number,
  index: number,
  what: string,
): Promise<Buffer> {
  const bytes = await guard(header.file, `${what} ${index}`, reader.read(size));
  if (bytes.length < size) {
    const count = header.dims[0] ?? 0;
    const shape = header.dims.slice(1).join("x");
    const at = bytes.length === 0 ? `before ${what} ${index}` : `inside ${what} ${index}`;
    throw headerError(
      header.file,
      `file is truncated: the header declares ${count} ${what}s${shape ? ` of ${shape}` : ""} but the data ends ${at} ` +
        `(byte ${header.length + index * size + bytes.length} of ${header.length + count * size})`,
    );
  }
  return bytes;
}

async function expectEnd(reader: ChunkReader, header: IdxHeader, size: number): Promise<void> {
  if (await guard(header.file, "the end of the data", reader.atEnd())) return;
  const count = header.dims[0] ?? 0;
  throw headerError(
    header.file,
    `trailing bytes after the ${count} records the header declares (data should end at byte ${header.length + count * size})`,
  );
}

// A failure of the stream itself: corrupt gzip is the file's fault, anything else is I/O.
async function guard<T>(file: string, at: string, pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (e) {
    if (e instanceof AntidoteError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === "string" && err.code.startsWith("Z_")) {
      throw new AntidoteError(
        "IDX_HEADER",
        `${file}: gzip data is corrupt or truncated while reading ${at} (${err.message}).`,
        {
          cause: e,
        },
      );
    }
    if (err.code === "ENOENT")
      throw new AntidoteError("FILE_NOT_FOUND", `${file}: no such file.`, { cause: e });
    throw new AntidoteError("INPUT_FORMAT", `${file}: cannot read ${at} (${err.message}).`, { cause: e });
  }
}

function headerError(file: string, detail: string): AntidoteError {
  return new AntidoteError("IDX_HEADER", `${file}: ${detail}.`);
}

// A header is 16 bytes; the images it declares can be any size. Checked when the dataset is
// opened, so an oversized declaration is refused before any pass allocates a record.
function checkPixels(file: string, dims: number[], maxPixels: number): void {
  const [, height = 0, width = 0] = dims;
  if (height * width > maxPixels)
    throw headerError(
      file,
      `image shape ${height}x${width} (${height * width} pixels) is over the ${maxPixels}-pixel limit (raise it with --max-image-pixels for a dataset you trust)`,
    );
}

interface Source {
  reader: ChunkReader;
  close(): void;
}

// Decompressed bytes of a file, gunzipped when it starts with the gzip magic 1f 8b.
// `onRaw` sees the bytes read from disk (compressed), which is what progress is measured in.
async function openSource(file: string, onRaw?: (n: number) => void): Promise<Source> {
  const gzip = await guard(file, "the header", startsWithGzipMagic(file));
  const raw = rawChunks(file, onRaw);
  if (!gzip) return { reader: new ChunkReader(raw), close: () => void raw.return(undefined) };
  const gunzip = createGunzip();
  const input = Readable.from(raw);
  input.on("error", (e) => gunzip.destroy(e));
  input.pipe(gunzip);
  return {
    reader: new ChunkReader(gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>),
    close: () => {
      input.destroy();
      gunzip.destroy();
    },
  };
}

async function* rawChunks(
  file: string,
  onRaw?: (n: number) => void,
): AsyncGenerator<Buffer, void, undefined> {
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 16 })) {
    const buf = chunk as Buffer;
    onRaw?.(buf.length);
    yield buf;
  }
}

async function startsWithGzipMagic(file: string): Promise<boolean> {
  const handle = await open(file, "r");
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** Exact-size reads over a stream of chunks, keeping only the unread tail (a carry-over). */
class ChunkReader {
  private readonly chunks: Buffer[] = [];
  private offset = 0; // read position inside chunks[0]
  private available = 0;
  private ended = false;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** `n` bytes, or fewer only when the stream ends first. */
  async read(n: number): Promise<Buffer> {
    while (this.available < n && !this.ended) await this.pull();
    return this.take(Math.min(n, this.available));
  }

  async atEnd(): Promise<boolean> {
    while (this.available === 0 && !this.ended) await this.pull();
    return this.available === 0;
  }

  private async pull(): Promise<void> {
    const next = await this.source.next();
    if (next.done === true) {
      this.ended = true;
    } else if (next.value.length > 0) {
      this.chunks.push(next.value);
      this.available += next.value.length;
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    // Common case: the record lies inside one chunk, so a view suffices.
    if (first !== undefined && first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.advance(first, n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      if (chunk === undefined) break;
      const k = Math.min(n - filled, chunk.length - this.offset);
      chunk.copy(out, filled, this.offset, this.offset + k);
      filled += k;
      this.advance(chunk, k);
    }
    return out;
  }

  private advance(chunk: Buffer, n: number): void {
    this.offset += n;
    this.available -= n;
    if (this.offset === chunk.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Writing

interface WriterTarget {
  images: string;
  labels: string;
  /** 3 for `images-idx3` (1 channel), 4 for `images-idx4`. */
  ndim: 3 | 4;
  gzip: boolean;
}

function writerTarget(path: string, options: WriteOptions): WriterTarget {
  const name = basename(path);
  const m = /images([-.])idx([34])-ubyte(\.gz)?$/.exec(name);
  if (m === null) {
    throw new AntidoteError(
      "USAGE",
      `${path}: an IDX output must be named <prefix>-images-idx3-ubyte[.gz] (1-channel images) or ` +
        `<prefix>-images-idx4-ubyte[.gz] (multi-channel); the labels file <prefix>-labels-idx1-ubyte[.gz] is written beside it.`,
    );
  }
  const labelsName = name.replace(/images([-.])idx[34]-ubyte/, "labels$1idx1-ubyte");
  return {
    images: path,
    labels: join(dirname(path), labelsName),
    ndim: m[2] === "4" ? 4 : 3,
    gzip: options.gzip === true || m[3] !== undefined,
  };
}

class IdxWriter implements DatasetWriter {
  private readonly tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
  private images: SpillFile | undefined;
  private labels: SpillFile | undefined;
  private shape: { height: number; width: number; channels: number; firstId: string } | undefined;
  private labeled: boolean | undefined;
  private count = 0;
  private failure: Error | undefined;

  constructor(
    private readonly target: WriterTarget,
    private readonly classes: string[] | undefined,
  ) {}

  async write(sample: Sample): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    try {
      const pixels = this.pixels(sample);
      const label = this.labelIndex(sample);
      this.images ??= await SpillFile.open(this.tempPath("images"));
      await this.images.append(pixels);
      if (label !== undefined) {
        this.labels ??= await SpillFile.open(this.tempPath("labels"));
        await this.labels.append(Uint8Array.of(label));
      }
      this.count++;
    } catch (e) {
      // convert and other callers stop at the first error without calling close.
      this.failure = e instanceof Error ? e : new AntidoteError("INTERNAL", String(e));
      await this.discard();
      throw e;
    }
  }

  async close(): Promise<number> {
    if (this.failure !== undefined) throw this.failure;
    try {
      const { height = 0, width = 0, channels = 1 } = this.shape ?? {};
      const dims =
        this.target.ndim === 3 ? [this.count, height, width] : [this.count, height, width, channels];
      await this.images?.finish();
      await assemble(this.target.images, idxHeader(dims), this.images?.path, this.target.gzip);
      if (this.labeled ?? this.classes !== undefined) {
        await this.labels?.finish();
        await assemble(this.target.labels, idxHeader([this.count]), this.labels?.path, this.target.gzip);
      } else {
        // An unlabeled images file must not be paired with labels left from an earlier run.
        await rm(this.target.labels, { force: true });
      }
      return this.count;
    } finally {
      await this.discard();
    }
  }

  /** Give up: remove the spill files. */
  async abort(): Promise<void> {
    this.failure ??= new AntidoteError("INTERNAL", `${this.target.images}: write after abort.`);
    await this.discard();
  }

  private pixels(sample: Sample): Uint8Array {
    const image = sample.image;
    if (image === undefined) {
      throw new AntidoteError(
        "USAGE",
        `${this.target.images}: sample "${sample.id}" has no image; IDX holds images only.`,
      );
    }
    if (this.shape === undefined) {
      this.checkNdim(sample.id, image.channels);
      this.shape = { height: image.height, width: image.width, channels: image.channels, firstId: sample.id };
    } else if (
      image.height !== this.shape.height ||
      image.width !== this.shape.width ||
      image.channels !== this.shape.channels
    ) {
      const s = this.shape;
      throw new AntidoteError(
        "USAGE",
        `${this.target.images}: sample "${sample.id}" is ${image.height}x${image.width}x${image.channels} but ` +
          `"${s.firstId}" was ${s.height}x${s.width}x${s.channels}; all images in an IDX file must have the same shape.`,
      );
    }
    if (image.data.length !== image.height * image.width * image.channels) {
      throw new AntidoteError(
        "USAGE",
        `${this.target.images}: sample "${sample.id}" has ${image.data.length} pixel values for a ` +
          `${image.height}x${image.width}x${image.channels} image.`,
      );
    }
    return imageToBytes(image);
  }

  private checkNdim(id: string, channels: number): void {
    const wants = channels === 1 ? 3 : 4;
    if (wants === this.target.ndim) return;
    const fixed = basename(this.target.images).replace(/idx[34]-ubyte/, `idx${wants}-ubyte`);
    throw new AntidoteError(
      "USAGE",
      `${this.target.images}: sample "${id}" has ${channels} channel(s), which IDX stores as idx${wants}; name the output ${fixed}.`,
    );
  }

  private labelIndex(sample: Sample): number | undefined {
    const labeled = sample.label !== null;
    if (this.labeled === undefined) this.labeled = labeled;
    if (labeled !== this.labeled) {
      throw new AntidoteError(
        "USAGE",
        `${this.target.images}: sample "${sample.id}" is ${labeled ? "labeled" : "unlabeled"} but earlier samples are ` +
          `${labeled ? "not" : "labeled"}; an IDX labels file needs a label for every image or none.`,
      );
    }
    if (sample.label === null) return undefined;
    if (this.classes !== undefined) {
      const index = this.classes.indexOf(sample.label);
      if (index < 0) {
        throw new AntidoteError(
          "USAGE",
          `${this.target.images}: sample "${sample.id}" has label "${sample.label}", which is not one of the classes ` +
            `(${this.classes.join(", ")}).`,
        );
      }
      return index;
    }
    if (!/^\d{1,3}$/.test(sample.label) || Number(sample.label) > 255) {
      throw new AntidoteError(
        "USAGE",
        `${this.target.images}: sample "${sample.id}" has label "${sample.label}"; IDX stores labels as integers 0–255, ` +
          `so pass the class list to map names to indices.`,
      );
    }
    return Number(sample.label);
  }

  private tempPath(role: string): string {
    return join(dirname(this.target.images), `.${basename(this.target.images)}.${role}.${this.tag}.partial`);
  }

  private async discard(): Promise<void> {
    for (const spill of [this.images, this.labels]) await spill?.discard();
    this.images = undefined;
    this.labels = undefined;
  }
}

// Magic 00 00 08 <ndim>, then each size as a big-endian uint32.
function idxHeader(dims: number[]): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = UBYTE;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return header;
}

// Header + spilled data → the final file, streamed (and gzipped) without holding the data.
async function assemble(out: string, header: Buffer, body: string | undefined, gzip: boolean): Promise<void> {
  async function* content(): AsyncGenerator<Buffer> {
    yield header;
    if (body !== undefined) for await (const chunk of createReadStream(body)) yield chunk as Buffer;
  }
  if (gzip) await pipeline(content, createGzip(), createWriteStream(out));
  else await pipeline(content, createWriteStream(out));
}

/** An append-only temp file with a write buffer, so each sample is not its own syscall. */
class SpillFile {
  private readonly buffer = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<SpillFile> {
    return new SpillFile(path, await open(path, "w"));
  }

  async append(bytes: Uint8Array): Promise<void> {
    if (this.used + bytes.length > this.buffer.length) await this.flush();
    if (bytes.length > this.buffer.length) {
      await this.handle.write(bytes);
      return;
    }
    this.buffer.set(bytes, this.used);
    this.used += bytes.length;
  }

  async finish(): Promise<void> {
    await this.flush();
    await this.close();
  }

  async discard(): Promise<void> {
    await this.close();
    await rm(this.path, { force: true });
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    await this.handle.write(this.buffer, 0, this.used);
    this.used = 0;
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
