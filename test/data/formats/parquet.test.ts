import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asyncBufferFromFile, parquetMetadataAsync, parquetSchema, type FileMetaData } from "hyparquet";
import { ByteWriter, parquetWrite } from "hyparquet-writer";
import jpeg from "jpeg-js";
import { AntidoteError } from "../../../src/errors.js";
import { openParquet, createParquetWriter, parquetFormat } from "../../../src/data/formats/parquet.js";
import { encodePng } from "../../../src/data/image-codec.js";
import { collect } from "../../../src/data/memory.js";
import {
  digestParts,
  canonicalParts,
  imageToBytes,
  type JsonValue,
  type Sample,
} from "../../../src/data/sample.js";
import type { ReadOptions } from "../../../src/data/dataset.js";
import {
  FASHION_MNIST_CLASSES,
  fashionMnistSamples,
  hasFashionMnist,
  spamAssassinSamples,
} from "../../helpers/real-data.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-parquet-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!hasFashionMnist())("Parquet round trip", () => {
  it("restores Fashion-MNIST images, class labels and provenance, and writes the Hugging Face layout", async () => {
    const original = withProvenance(fashion(500));
    const file = join(dir, "fashion.parquet");
    expect(await writeAll(file, original, { classes: FASHION_MNIST_CLASSES })).toBe(500);

    const dataset = await openParquet(file);
    expect(dataset.info).toMatchObject({
      format: "parquet",
      count: 500,
      classes: FASHION_MNIST_CLASSES,
      labelKind: "integer",
    });
    expect(dataset.info.bytes).toBe((await stat(file)).size);
    const read = await collect(dataset);
    expect(read.map(identity)).toEqual(original.map(identity));
    expect(read[7]?.image?.channels).toBe(1);
    expect(imageToBytes(read[7]!.image!)).toEqual(imageToBytes(original[7]!.image!));

    // What `datasets` sees, read with hyparquet alone: Image struct, int64 ClassLabel.
    const metadata = await footer(file);
    const schema = parquetSchema(metadata).children;
    const image = schema.find((c) => c.element.name === "image");
    expect(image?.children.map((c) => [c.element.name, c.element.type])).toEqual([
      ["bytes", "BYTE_ARRAY"],
      ["path", "BYTE_ARRAY"],
    ]);
    expect(schema.find((c) => c.element.name === "label")?.element.type).toBe("INT64");
    const hf = JSON.parse(kv(metadata, "huggingface") ?? "{}") as {
      info: { features: Record<string, unknown> };
    };
    expect(hf.info.features.label).toEqual({ names: FASHION_MNIST_CLASSES, _type: "ClassLabel" });
    expect(hf.info.features.image).toEqual({ _type: "Image" });
  });

  it("streams across row groups in order, reporting progress once per group, and flushes groups before close", async () => {
    const original = fashion(500);
    const file = join(dir, "groups.parquet");
    const writer = await createParquetWriter(file, { rowGroupSize: 64 });
    for (const s of original.slice(0, 200)) await writer.write(s);
    // Three full groups are on disk already, in a hidden partial file: the writer does not
    // hold the dataset, and the output name appears only when the file is complete.
    const partial = (await readdir(dir)).filter(
      (f) => f.startsWith(".groups.parquet.") && f.endsWith(".partial"),
    );
    expect(partial).toHaveLength(1);
    expect((await stat(join(dir, partial[0]!))).size).toBeGreaterThan(3 * 64 * 200);
    await expect(stat(file)).rejects.toThrow();
    for (const s of original.slice(200)) await writer.write(s);
    await writer.close();
    expect((await readdir(dir)).filter((f) => f.endsWith(".partial"))).toEqual([]);

    expect((await footer(file)).row_groups.map((g) => Number(g.num_rows))).toEqual([
      64, 64, 64, 64, 64, 64, 64, 52,
    ]);
    const progress: number[] = [];
    const dataset = await openParquet(file, { onProgress: (b) => progress.push(b) });
    expect(dataset.info.count).toBe(500);
    const read = await collect(dataset);
    expect(read.map((s) => s.id)).toEqual(original.map((s) => s.id));
    expect(read.map((s) => s.digest)).toEqual(original.map((s) => s.digest));
    expect(progress).toHaveLength(8);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe((await stat(file)).size);
    expect(progress[0]).toBeLessThan(progress.at(-1)! / 4);
  });

  it("reads tabular features, by name, and restores them bit for bit", async () => {
    const original = fashion(300).map(blockMeans);
    const names = Array.from({ length: 16 }, (_, i) => `block_${Math.floor(i / 4)}_${i % 4}`);
    const file = join(dir, "tabular.parquet");
    await writeAll(file, original, { featureNames: names });
    const dataset = await openParquet(file);
    expect(dataset.info.featureNames).toEqual(names);
    expect(dataset.info.labelKind).toBe("string");
    const read = await collect(dataset);
    expect(read.map(identity)).toEqual(original.map(identity));
    expect(read.map((s) => Array.from(s.features ?? []))).toEqual(
      original.map((s) => Array.from(s.features ?? [])),
    );
  });
});

describe("Parquet with text", () => {
  it("restores SpamAssassin emails, labels and metadata", async () => {
    const original = spamAssassinSamples(200);
    const file = join(dir, "spam.parquet");
    await writeAll(file, original, {});
    const dataset = await openParquet(file);
    expect(dataset.info).toMatchObject({
      count: 200,
      labelKind: "string",
      columns: { id: "id", text: "text", label: "label" },
    });
    expect(dataset.info.classes).toBeUndefined();
    const read = await collect(dataset);
    expect(read.map((s) => s.text)).toEqual(original.map((s) => s.text));
    expect(read.map(identity)).toEqual(original.map(identity));
    expect(new Set(read.map((s) => s.label))).toEqual(new Set(["ham", "spam"]));
  });
});

describe("Hugging Face Parquet files", () => {
  it("maps ClassLabel indices to names, decodes PNG, JPEG and path images, and reads -1 as unlabeled", async () => {
    const png = greyPng();
    const jpg = colourJpeg();
    await writeFile(join(dir, "beside.png"), png.bytes);
    const file = join(dir, "hf.parquet");
    await writeHfFile(file, [
      { image: { bytes: png.bytes, path: "a.png" }, label: 2n },
      { image: { bytes: jpg, path: null }, label: 0n },
      { image: { bytes: null, path: "beside.png" }, label: -1n },
    ]);

    const dataset = await openParquet(file);
    expect(dataset.info).toMatchObject({
      classes: ["cat", "dog", "bird"],
      labelKind: "integer",
      count: 3,
      columns: { image: "image", label: "label" },
    });
    const [a, b, c] = await collect(dataset);
    expect([a?.label, b?.label, c?.label]).toEqual(["bird", "cat", null]);
    expect([a?.id, b?.id, c?.id]).toEqual(["hf:0", "hf:1", "hf:2"]);
    expect(a?.digest).toBe(png.digest);
    expect(c?.digest).toBe(png.digest);
    expect(b?.image).toMatchObject({ height: 8, width: 12, channels: 3 });
    // JPEG is lossy: the decoded gradient is close to what was encoded, not equal.
    const red = b!.image!.data[3 * (4 * 12 + 11)]!;
    expect(red).toBeGreaterThan(0.8);
    expect(a?.metadata).toEqual({});
  });

  it("auto-detects unmapped numeric columns as features when there is no text or image", async () => {
    const file = join(dir, "plain.parquet");
    const writer = new ByteWriter();
    await parquetWrite({
      writer,
      columnData: [
        { name: "x", data: [1.5, 2.5, 3.5], type: "DOUBLE" },
        { name: "n", data: [1, 2, 3], type: "INT32" },
        { name: "when", data: [new Date(0), new Date(1), new Date(2)], type: "TIMESTAMP" },
        { name: "note", data: ["a", "b", "c"], type: "STRING" },
        { name: "target", data: ["yes", "no", "yes"], type: "STRING" },
      ],
    });
    await writeFile(file, writer.getBytes());
    const dataset = await openParquet(file);
    expect(dataset.info.featureNames).toEqual(["x", "n"]);
    expect(dataset.info.columns?.label).toBe("target");
    const rows = await collect(dataset);
    expect(rows.map((s) => Array.from(s.features ?? []))).toEqual([
      [1.5, 1],
      [2.5, 2],
      [3.5, 3],
    ]);
    expect(rows[1]).toMatchObject({ label: "no", metadata: { note: "b", when: new Date(1).toISOString() } });
  });
});

describe("bad Parquet input", () => {
  it("rejects a file that is not Parquet, naming it", async () => {
    const file = join(dir, "not.parquet");
    await writeFile(file, '{"id": 1, "text": "hello"}\n');
    expectFailure(await failure(openParquet(file)), "INPUT_FORMAT", file);
  });

  it("rejects a truncated Parquet file", async () => {
    const whole = join(dir, "whole.parquet");
    await writeAll(whole, spamAssassinSamples(20), {});
    const bytes = await readFile(whole);
    const cut = join(dir, "cut.parquet");
    await writeFile(cut, bytes.subarray(0, bytes.length - 10));
    expectFailure(await failure(openParquet(cut)), "INPUT_FORMAT", cut);
  });

  it("reads GZIP- and Brotli-compressed columns, and names a column in a codec it cannot read", async () => {
    const emails = spamAssassinSamples(30).map((s) => s.text ?? "");
    const codecs = {
      GZIP: (input: Uint8Array) => gzipSync(input),
      BROTLI: (input: Uint8Array) => brotliCompressSync(input),
      LZO: (input: Uint8Array) => input, // claims LZO, which no reader here decodes
    };
    for (const codec of ["GZIP", "BROTLI", "LZO"] as const) {
      const file = join(dir, `${codec}.parquet`);
      const writer = new ByteWriter();
      await parquetWrite({
        writer,
        codec,
        compressors: codecs,
        columnData: [{ name: "text", data: emails, type: "STRING" }],
      });
      await writeFile(file, writer.getBytes());
      if (codec === "LZO") {
        expectFailure(
          await failure(openParquet(file)),
          "INPUT_FORMAT",
          'column "text" is compressed with LZO',
        );
      } else {
        const read = await collect(await openParquet(file));
        expect(read.map((s) => s.text)).toEqual(emails);
      }
    }
  });

  it("says which file is missing", async () => {
    const file = join(dir, "nope.parquet");
    expectFailure(await failure(openParquet(file)), "FILE_NOT_FOUND", file);
  });

  it("suggests the closest column for a misspelled --image-column", async () => {
    const file = join(dir, "hf-typo.parquet");
    await writeHfFile(file, [{ image: { bytes: greyPng().bytes, path: null }, label: 1n }]);
    expectFailure(
      await failure(openParquet(file, { columns: { image: "imgae" } })),
      "COLUMN_MISSING",
      'Did you mean "image"?',
    );
  });

  it("fails on an undecodable image naming the row, or skips and counts it", async () => {
    const file = join(dir, "hf-corrupt.parquet");
    const good = greyPng().bytes;
    await writeHfFile(file, [
      { image: { bytes: good, path: null }, label: 0n },
      { image: { bytes: good.subarray(0, 40), path: null }, label: 1n },
      { image: { bytes: good, path: null }, label: 7n },
      { image: { bytes: good, path: null }, label: 2n },
    ]);
    expectFailure(await failure(collect(await openParquet(file))), "IMAGE_UNDECODABLE", `${file} row 1`);
    const skipped: AntidoteError[] = [];
    const options: ReadOptions = { onError: "skip", onSkip: (e) => skipped.push(e) };
    const read = await collect(await openParquet(file, options));
    expect(read.map((s) => s.id)).toEqual(["hf-corrupt:0", "hf-corrupt:3"]);
    expect(skipped.map((e) => e.code)).toEqual(["IMAGE_UNDECODABLE", "ROW_MALFORMED"]);
    expect(skipped[1]?.message).toContain("class index 7");
  });
});

describe("Parquet writer", () => {
  it("is the module's writer and rejects a label outside the class list", async () => {
    const file = join(dir, "bad-label.parquet");
    const [first, second] = spamAssassinSamples(200).filter(
      (s, i, all) => s.label !== all[0]?.label || i === 0,
    );
    const writer = await parquetFormat.create!(file, { classes: [first!.label!] });
    await writer.write(first!);
    await writer.write(second!);
    expectFailure(
      await failure(writer.close()),
      "USAGE",
      `sample "${second!.id}" has label "${second!.label}", which is not one of the classes`,
    );
    // A failed writer leaves neither the output nor its partial file behind.
    expect((await readdir(dir)).filter((f) => f.includes("bad-label"))).toEqual([]);
  });

  it("refuses feature names that clash with its own columns", async () => {
    expect(
      (await failure(createParquetWriter(join(dir, "clash.parquet"), { featureNames: ["width", "label"] })))
        .code,
    ).toBe("USAGE");
  });

  it("writes a valid empty file", async () => {
    const file = join(dir, "empty.parquet");
    expect(await writeAll(file, [], {})).toBe(0);
    const dataset = await openParquet(file);
    expect(dataset.info.count).toBe(0);
    expect(await collect(dataset)).toEqual([]);
  });
});

// ── helpers ──────────────────────────────────────────────────────────────────────────

/** The AntidoteError a promise rejects with (fails the test if it resolves or throws something else). */
async function failure(p: Promise<unknown>): Promise<AntidoteError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

function expectFailure(e: AntidoteError, code: AntidoteError["code"], inMessage: string): void {
  expect(e.code).toBe(code);
  expect(e.message).toContain(inMessage);
}

/** Everything a round trip must keep, apart from pixels (the digest stands for those). */
// The helper decodes the whole training file on each call; decode it once per test file.
let fashionCache: Sample[] | undefined;
function fashion(n: number): Sample[] {
  fashionCache ??= fashionMnistSamples(500);
  return fashionCache.slice(0, n);
}

function identity(s: Sample) {
  return {
    id: s.id,
    digest: s.digest,
    label: s.label,
    source: s.source,
    annotations: s.annotations,
    metadata: s.metadata,
  };
}

/** Real samples with the provenance fields a supplier pipeline adds. */
function withProvenance(samples: Sample[]): Sample[] {
  return samples.map((s, i): Sample => ({
    ...s,
    source: i % 7 === 0 ? null : `supplier-${i % 3}`,
    annotations:
      i % 5 === 0
        ? [
            { annotator: "ann-a", label: s.label ?? "" },
            { annotator: "ann-b", label: "Bag" },
          ]
        : [],
    metadata:
      i % 4 === 0
        ? {}
        : ({
            row: i,
            batch: `b${i % 2}`,
            checked: i % 2 === 0,
            tags: ["x", i],
            nested: { score: i / 8, note: null },
          } satisfies Record<string, JsonValue>),
  }));
}

/** A tabular view of a Fashion-MNIST image: the mean of each 7×7 block. */
function blockMeans(s: Sample): Sample {
  const px = s.image!.data;
  const features = new Float32Array(16);
  for (let y = 0; y < 28; y++)
    for (let x = 0; x < 28; x++) features[Math.floor(y / 7) * 4 + Math.floor(x / 7)]! += px[y * 28 + x]! / 49;
  const { image: _image, ...rest } = s;
  return { ...rest, features, digest: digestParts(canonicalParts({ features })) };
}

async function writeAll(
  file: string,
  samples: Sample[],
  options: Parameters<typeof createParquetWriter>[1],
): Promise<number> {
  const writer = await createParquetWriter(file, options);
  for (const s of samples) await writer.write(s);
  return writer.close();
}

async function footer(file: string): Promise<FileMetaData> {
  return parquetMetadataAsync(await asyncBufferFromFile(file));
}

function kv(metadata: FileMetaData, key: string): string | undefined {
  return metadata.key_value_metadata?.find((e) => e.key === key)?.value;
}

/** A file laid out as `datasets` writes an image classification split. */
async function writeHfFile(
  file: string,
  rows: { image: { bytes: Uint8Array | null; path: string | null }; label: bigint }[],
): Promise<void> {
  const writer = new ByteWriter();
  await parquetWrite({
    writer,
    columnData: [
      { name: "image", data: rows.map((r) => r.image) },
      { name: "label", data: rows.map((r) => r.label) },
    ],
    schema: [
      { name: "schema", num_children: 2 },
      { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
      { name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" },
      { name: "path", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "label", type: "INT64", repetition_type: "OPTIONAL" },
    ],
    kvMetadata: [
      {
        key: "huggingface",
        value: JSON.stringify({
          info: {
            features: {
              image: { _type: "Image" },
              label: { names: ["cat", "dog", "bird"], _type: "ClassLabel" },
            },
          },
        }),
      },
    ],
  });
  await writeFile(file, writer.getBytes());
}

function greyPng(): { bytes: Uint8Array; digest: string } {
  const [s] = hasFashionMnist() ? fashion(1) : [];
  const px = s ? imageToBytes(s.image!) : Uint8Array.from({ length: 784 }, (_, i) => (i * 37) % 256);
  return {
    bytes: encodePng(px, 28, 28, 1),
    digest: digestParts(canonicalParts({ imageBytes: { bytes: px, height: 28, width: 28, channels: 1 } })),
  };
}

/** A 12×8 red-to-blue gradient, so the decoder must return three channels. */
function colourJpeg(): Uint8Array {
  const width = 12;
  const height = 8;
  const data = Buffer.alloc(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const x = p % width;
    data[4 * p] = Math.round((255 * x) / (width - 1));
    data[4 * p + 1] = 40;
    data[4 * p + 2] = 255 - Math.round((255 * x) / (width - 1));
    data[4 * p + 3] = 255;
  }
  return jpeg.encode({ data, width, height }, 95).data;
}
