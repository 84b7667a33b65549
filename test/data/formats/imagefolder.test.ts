import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import jpeg from "jpeg-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../../src/errors.js";
import {
  createImageFolderWriter,
  directoryToLabel,
  imagefolderFormat,
  labelToDirectory,
  openImageFolder,
} from "../../../src/data/formats/imagefolder.js";
import { encodePng } from "../../../src/data/image-codec.js";
import { collect } from "../../../src/data/memory.js";
import {
  canonicalParts,
  digestParts,
  imageBytesDigest,
  imageToBytes,
  type JsonValue,
  type Sample,
} from "../../../src/data/sample.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, hasFashionMnist } from "../../helpers/real-data.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-imagefolder-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!hasFashionMnist())("ImageFolder round trip", () => {
  it("restores Fashion-MNIST ids, images, labels with slashes, sources, annotations and metadata", async () => {
    const original = withProvenance(fashion(500));
    const root = join(dir, "fashion");
    expect(await writeAll(root, original, FASHION_MNIST_CLASSES)).toBe(500);

    const entries = (await readdir(root)).sort();
    expect(entries).toContain("T-shirt%2Ftop");
    expect(entries).toContain("metadata.jsonl");
    expect(entries).toHaveLength(11);
    const firstLine = JSON.parse((await readFile(join(root, "metadata.jsonl"), "utf8")).split("\n")[0]!) as {
      file_name: string;
    };
    expect(firstLine.file_name).toBe(`${labelToDirectory(original[0]!.label!)}/train_0.png`);

    const dataset = await openImageFolder(root);
    expect(dataset.info).toMatchObject({ format: "imagefolder", count: 500, labelKind: "string" });
    expect(dataset.info.classes).toEqual([...FASHION_MNIST_CLASSES].sort());
    const read = await collect(dataset);
    expect(read.map(identity)).toEqual(original.map(identity));
    expect(imageToBytes(read[42]!.image!)).toEqual(imageToBytes(original[42]!.image!));
  });

  it("recovers exact labels from the escaped directory names alone, in sorted path order", async () => {
    const original = fashion(60);
    const root = join(dir, "fashion-bare");
    await writeAll(root, original);
    await rm(join(root, "metadata.jsonl"));

    const dataset = await openImageFolder(root);
    expect(dataset.info.count).toBe(60);
    const read = await collect(dataset);
    const ids = read.map((s) => s.id);
    expect(ids).toEqual([...ids].sort());
    const expected = new Map(
      original.map((s) => [`${labelToDirectory(s.label!)}/${s.id.replace(":", "_")}.png`, s]),
    );
    expect(new Set(ids)).toEqual(new Set(expected.keys()));
    for (const s of read) {
      expect(s.label).toBe(expected.get(s.id)?.label);
      expect(s.digest).toBe(expected.get(s.id)?.digest);
    }
    expect(read.some((s) => s.label === "T-shirt/top")).toBe(true);
  });
});

describe("reading a hand-made ImageFolder", () => {
  it("lists class directories recursively, skips non-images and hidden entries, sniffs content not extension", async () => {
    const root = join(dir, "pets");
    const grey = greyPixels(5);
    await put(root, "cat/a.PNG", encodePng(grey, 5, 5, 1));
    await put(root, "cat/sub/b.png", encodePng(grey, 5, 5, 1));
    await put(root, "dog/c.jpg", colourJpeg());
    await put(root, "dog/d.jpeg", encodePng(grey, 5, 5, 1)); // a PNG with the wrong extension
    await put(root, "e.png", encodePng(grey, 5, 5, 1));
    await put(root, "README.md", Buffer.from("# pets\n"));
    await put(root, ".cache/x.png", Buffer.from("not read"));
    await mkdir(join(root, "bird"));

    const progress: number[] = [];
    const dataset = await openImageFolder(root, { onProgress: (b) => progress.push(b) });
    expect(dataset.info).toMatchObject({ count: 5, classes: ["bird", "cat", "dog"] });
    const read = await collect(dataset);
    expect(read.map((s) => [s.id, s.label])).toEqual([
      ["cat/a.PNG", "cat"],
      ["cat/sub/b.png", "cat"],
      ["dog/c.jpg", "dog"],
      ["dog/d.jpeg", "dog"],
      ["e.png", null],
    ]);
    expect(read[3]?.digest).toBe(imageBytesDigest(grey, 5, 5, 1));
    expect(read[2]?.image).toMatchObject({ height: 8, width: 12, channels: 3 });
    expect(progress.at(-1)).toBe(dataset.info.bytes);
  });

  it("names a corrupt PNG, and with onError skip reads the rest and counts the skip", async () => {
    const root = join(dir, "corrupt");
    const png = encodePng(greyPixels(4), 4, 4, 1);
    await put(root, "a/1.png", png);
    await put(root, "a/2.png", png.subarray(0, 30));
    await put(root, "b/3.png", png);
    const bad = join(root, "a", "2.png");

    expectFailure(await failure(collect(await openImageFolder(root))), "IMAGE_UNDECODABLE", bad);
    const skipped: AntidoteError[] = [];
    const read = await collect(
      await openImageFolder(root, { onError: "skip", onSkip: (e) => skipped.push(e) }),
    );
    expect(read.map((s) => s.id)).toEqual(["a/1.png", "b/3.png"]);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]?.message).toContain(bad);
  });

  it("reports a missing directory and a file given as a directory", async () => {
    const missing = join(dir, "no-such-folder");
    expectFailure(await failure(openImageFolder(missing)), "FILE_NOT_FOUND", missing);
    const file = join(dir, "plain-file");
    await writeFile(file, "x");
    expectFailure(await failure(openImageFolder(file)), "INPUT_FORMAT", file);
  });
});

describe("Hugging Face metadata files", () => {
  it("reads metadata.csv: ids, sources, JSON annotations, extra columns as metadata, labels from directories", async () => {
    const root = join(dir, "hf-csv");
    const png = encodePng(greyPixels(6), 6, 6, 1);
    await put(root, "cat/0.png", png);
    await put(root, "dog/1.png", png);
    await put(
      root,
      "metadata.csv",
      Buffer.from(
        [
          "file_name,id,source,caption,annotations",
          'cat/0.png,c0,crawl-7,"a cat, sitting","[{""annotator"":""w1"",""label"":""cat""}]"',
          "dog/1.png,,,a dog,",
        ].join("\n"),
      ),
    );
    const dataset = await openImageFolder(root);
    expect(dataset.info.count).toBe(2);
    const [a, b] = await collect(dataset);
    expect(a).toMatchObject({
      id: "c0",
      label: "cat",
      source: "crawl-7",
      annotations: [{ annotator: "w1", label: "cat" }],
      metadata: { caption: "a cat, sitting" },
    });
    expect(b).toMatchObject({
      id: "dog/1.png",
      label: "dog",
      source: null,
      annotations: [],
      metadata: { caption: "a dog" },
    });
    expect(b?.digest).toBe(imageBytesDigest(greyPixels(6), 6, 6, 1));
  });

  it("names metadata.jsonl and the line of a bad record, a missing image and a path outside the folder", async () => {
    const root = join(dir, "hf-jsonl");
    await put(root, "x/0.png", encodePng(greyPixels(3), 3, 3, 1));
    const lines = [
      { file_name: "x/0.png", label: "zero" },
      "{not json",
      { file_name: "x/0.png", annotations: [{ label: "no annotator" }] },
      { file_name: "x/missing.png" },
      { file_name: "../outside.png" },
      { file_name: "x/0.png", label: 3, flagged: true },
    ];
    const meta = join(root, "metadata.jsonl");
    await writeFile(
      meta,
      lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n",
    );

    expectFailure(await failure(collect(await openImageFolder(root))), "ROW_MALFORMED", `${meta}:2`);
    const skipped: AntidoteError[] = [];
    const dataset = await openImageFolder(root, { onError: "skip", onSkip: (e) => skipped.push(e) });
    expect(dataset.info.count).toBe(6);
    const read = await collect(dataset);
    expect(read.map((s) => [s.label, s.metadata])).toEqual([
      ["zero", {}],
      ["3", { flagged: true }],
    ]);
    expect(skipped.map((e) => [e.code, e.message.slice(0, meta.length + 2)])).toEqual([
      ["ROW_MALFORMED", `${meta}:2`],
      ["ROW_MALFORMED", `${meta}:3`],
      ["FILE_NOT_FOUND", `${meta}:4`],
      ["PATH_OUTSIDE_ROOT", `${meta}:5`],
    ]);
    expect(skipped[1]?.message).toContain("annotations.0.annotator");
  });
});

describe("ImageFolder writer", () => {
  it("refuses a non-empty directory and samples without an image", async () => {
    const busy = join(dir, "busy");
    await put(busy, "keep.txt", Buffer.from("x"));
    expectFailure(await failure(imagefolderFormat.create!(busy, {})), "USAGE", busy);

    const writer = await createImageFolderWriter(join(dir, "text-only"));
    const textOnly: Sample = {
      id: "t1",
      digest: "",
      label: null,
      text: "hi",
      source: null,
      annotations: [],
      metadata: {},
    };
    expectFailure(await failure(writer.write(textOnly)), "USAGE", '"t1"');
    await writer.close();
  });

  it("keeps ids that sanitise to the same file name apart, and round-trips image captions", async () => {
    const root = join(dir, "collide");
    const px = greyPixels(4);
    const image = { height: 4, width: 4, channels: 1, data: Float32Array.from(px, (v) => v / 255) };
    const samples: Sample[] = ["a:b", "a/b", "a?b"].map((id, i) => ({
      id,
      digest: imageBytesDigest(px, 4, 4, 1),
      label: i === 2 ? null : ".hidden class",
      image,
      source: null,
      annotations: [],
      metadata: {},
    }));
    samples[1]!.text = "a caption";
    samples[1]!.digest = digestParts(
      canonicalParts({ text: "a caption", imageBytes: { bytes: px, height: 4, width: 4, channels: 1 } }),
    );
    await writeAll(root, samples);
    expect((await readdir(join(root, "%2Ehidden class"))).sort()).toEqual(["a_b-2.png", "a_b.png"]);
    expect(await stat(join(root, "a_b.png"))).toBeTruthy();

    const read = await collect(await openImageFolder(root));
    expect(read.map(identity)).toEqual(samples.map(identity));
    expect(read[1]?.text).toBe("a caption");
  });
});

describe("class directory names", () => {
  it("escape every label to a safe single path segment and back", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 1 }), (label) => {
        const name = labelToDirectory(label);
        const unsafe = [...name].filter((c) => '/\\:*?"<>|'.includes(c) || c < " " || c === "\u007f");
        expect(unsafe).toEqual([]);
        expect(name.startsWith(".")).toBe(false);
        expect(name.endsWith(" ") || name.endsWith(".")).toBe(false);
        expect(directoryToLabel(name)).toBe(label);
      }),
      { numRuns: 200 },
    );
    expect(labelToDirectory("T-shirt/top")).toBe("T-shirt%2Ftop");
    expect(labelToDirectory("Ankle boot")).toBe("Ankle boot");
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

async function writeAll(root: string, samples: Sample[], classes?: string[]): Promise<number> {
  const writer = await createImageFolderWriter(root, classes === undefined ? {} : { classes });
  for (const s of samples) await writer.write(s);
  return writer.close();
}

async function put(root: string, rel: string, bytes: Uint8Array): Promise<void> {
  const path = join(root, rel);
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, bytes);
}

function greyPixels(side: number): Uint8Array {
  return Uint8Array.from({ length: side * side }, (_, i) => (i * 53 + 7) % 256);
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
