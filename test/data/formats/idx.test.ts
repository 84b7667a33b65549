import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { idxFormat } from "../../../src/data/formats/idx.js";
import { collect } from "../../../src/data/memory.js";
import { AntidoteError } from "../../../src/errors.js";
import { imageBytesDigest, imageFromBytes, imageToBytes, type Sample } from "../../../src/data/sample.js";
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  fashionMnistSamples,
  hasFashionMnist,
} from "../../helpers/real-data.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-idx-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// One directory per case, so file names can repeat across cases.
let caseCounter = 0;
function caseDir(): string {
  const d = join(dir, `case-${++caseCounter}`);
  mkdirSync(d);
  return d;
}

/** A path for the writer to create, in a fresh directory. */
function fresh(name: string): string {
  return join(caseDir(), name);
}

// An independent IDX encoder, straight from the spec: 00 00 08 ndim, sizes as uint32 BE, data.
function encodeIdx(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

function writeFiles(files: Record<string, Uint8Array>): string {
  const d = caseDir();
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(d, name), bytes);
  return d;
}

async function idxError(p: Promise<unknown>): Promise<AntidoteError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

async function readAll(path: string, options: Parameters<typeof idxFormat.open>[1] = {}): Promise<Sample[]> {
  return collect(await idxFormat.open(path, options));
}

function greySample(
  id: string,
  bytes: Uint8Array,
  h: number,
  w: number,
  label: string | null,
  c = 1,
): Sample {
  return {
    id,
    digest: imageBytesDigest(bytes, h, w, c),
    label,
    image: imageFromBytes(bytes, h, w, c),
    source: null,
    annotations: [],
    metadata: {},
  };
}

async function writeAll(
  path: string,
  samples: Sample[],
  options: Parameters<NonNullable<typeof idxFormat.create>>[1] = {},
) {
  const create = idxFormat.create;
  if (create === undefined) throw new Error("idx has a writer");
  const writer = await create(path, options);
  for (const s of samples) await writer.write(s);
  return writer.close();
}

describe.runIf(hasFashionMnist())("IDX reader on real Fashion-MNIST", () => {
  it("reads the train split: 60,000 samples, the first 200 equal the oracle, 6,000 per class", async () => {
    const expected = fashionMnistSamples(200);
    const progress: number[] = [];
    const ds = await idxFormat.open(FASHION_MNIST_DIR, {
      split: "train",
      classes: FASHION_MNIST_CLASSES,
      onProgress: (n) => progress.push(n),
    });
    const sizes =
      statSync(join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")).size +
      statSync(join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz")).size;
    expect(ds.info).toMatchObject({
      format: "idx",
      count: 60_000,
      labelKind: "integer",
      bytes: sizes,
      classes: FASHION_MNIST_CLASSES,
    });

    const histogram = new Map<string | null, number>();
    let n = 0;
    for await (const s of ds.samples()) {
      const want = expected[n];
      if (want !== undefined) {
        expect(s.id).toBe(want.id);
        expect(s.digest).toBe(want.digest);
        expect(s.label).toBe(want.label);
        expect(s.image?.data).toEqual(want.image?.data);
        expect([s.image?.height, s.image?.width, s.image?.channels]).toEqual([28, 28, 1]);
      }
      histogram.set(s.label, (histogram.get(s.label) ?? 0) + 1);
      n++;
    }
    expect(n).toBe(60_000);
    expect(new Map([...histogram].sort())).toEqual(
      new Map(FASHION_MNIST_CLASSES.map((c) => [c, 6_000] as const).sort()),
    );
    // Streamed: many progress reports, increasing, ending at the compressed size of both files.
    expect(progress.length).toBeGreaterThan(100);
    expect(progress.every((v, i) => i === 0 || v > (progress[i - 1] ?? 0))).toBe(true);
    expect(progress.at(-1)).toBe(sizes);
  });

  it("reads the t10k split from its images file, with ids t10k:<index>", async () => {
    const expected = fashionMnistSamples(50, "t10k");
    const ds = await idxFormat.open(join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"), {
      classes: FASHION_MNIST_CLASSES,
    });
    expect(ds.info.count).toBe(10_000);
    const all = await collect(ds);
    expect(all).toHaveLength(10_000);
    expect(all.at(-1)?.id).toBe("t10k:9999");
    expect(all.slice(0, 50).map((s) => [s.id, s.digest, s.label])).toEqual(
      expected.map((s) => [s.id, s.digest, s.label]),
    );
  });

  it("gives integer labels as strings without classes, and re-streams from the start after an early break", async () => {
    const ds = await idxFormat.open(FASHION_MNIST_DIR, { split: "t10k" });
    expect(ds.info.classes).toBeUndefined();
    const first: Sample[] = [];
    for await (const s of ds.samples()) {
      first.push(s);
      if (first.length === 5) break;
    }
    const oracle = fashionMnistSamples(5, "t10k");
    expect(first.map((s) => s.label)).toEqual(
      oracle.map((s) => String(FASHION_MNIST_CLASSES.indexOf(s.label ?? ""))),
    );
    const again: IteratorResult<Sample, unknown> = await ds.samples()[Symbol.asyncIterator]().next();
    expect(again.done === true ? undefined : again.value.digest).toBe(oracle[0]?.digest);
  });

  it("reads an images file with no labels file beside it as unlabeled samples", async () => {
    const d = writeFiles({});
    copyFileSync(join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"), join(d, "t10k-images-idx3-ubyte.gz"));
    const ds = await idxFormat.open(d, { split: "t10k" });
    expect(ds.info.labelKind).toBeUndefined();
    const all = await collect(ds);
    expect(all).toHaveLength(10_000);
    expect(all.every((s) => s.label === null)).toBe(true);
    expect(all[3]?.digest).toBe(fashionMnistSamples(4, "t10k")[3]?.digest);
  });

  it("round-trips 300 real images through the writer, gzipped and raw", async () => {
    const samples = fashionMnistSamples(300);
    for (const name of ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]) {
      const path = fresh(name);
      expect(await writeAll(path, samples, { classes: FASHION_MNIST_CLASSES })).toBe(300);
      const gz = readFileSync(path)[0] === 0x1f;
      expect(gz).toBe(name.endsWith(".gz"));
      const back = await readAll(path, { classes: FASHION_MNIST_CLASSES });
      expect(back.map((s) => [s.id, s.digest, s.label])).toEqual(
        samples.map((s) => [s.id, s.digest, s.label]),
      );
      // The files are exactly the spec's layout, checked with an independent decoder.
      const raw = gz ? gunzipSync(readFileSync(path)) : readFileSync(path);
      expect(raw.subarray(0, 16)).toEqual(encodeIdx([300, 28, 28], new Uint8Array()));
      expect(raw.length).toBe(16 + 300 * 784);
      const labelsPath = path.replace("images-idx3", "labels-idx1");
      const labels = gz ? gunzipSync(readFileSync(labelsPath)) : readFileSync(labelsPath);
      expect([...labels.subarray(8)]).toEqual(
        samples.map((s) => FASHION_MNIST_CLASSES.indexOf(s.label ?? "")),
      );
      expect(readdirSync(join(path, "..")).filter((f) => f.endsWith(".partial"))).toEqual([]);
    }
  });

  it("round-trips 3-channel images as idx4, with the gzip option on a name without .gz", async () => {
    const grey = fashionMnistSamples(40);
    const rgb = grey.map((s, i) => {
      const g = imageToBytes(s.image ?? { height: 0, width: 0, channels: 1, data: new Float32Array() });
      const px = new Uint8Array(g.length * 3);
      for (let k = 0; k < g.length; k++) {
        px[3 * k] = g[k] ?? 0;
        px[3 * k + 1] = 255 - (g[k] ?? 0);
        px[3 * k + 2] = (k + i) % 256;
      }
      return greySample(`rgb-${i}`, px, 28, 28, String(i % 7), 3);
    });
    const path = fresh("colour-images-idx4-ubyte");
    await writeAll(path, rgb, { gzip: true });
    expect(readFileSync(path).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const back = await readAll(path);
    expect(back.map((s) => [s.id, s.digest, s.label, s.image?.channels])).toEqual(
      rgb.map((s, i) => [`colour:${i}`, s.digest, s.label, 3]),
    );
    expect(back[7]?.image?.data).toEqual(rgb[7]?.image?.data);
  });
});

describe("IDX writer errors", () => {
  const px = (n: number, v = 1) => new Uint8Array(n).fill(v);

  it("names the first sample whose shape differs, and leaves no temp files", async () => {
    const path = fresh("x-images-idx3-ubyte");
    const e = await idxError(
      writeAll(path, [
        greySample("a", px(4), 2, 2, "0"),
        greySample("b", px(4), 2, 2, "1"),
        greySample("c", px(6), 2, 3, "1"),
      ]),
    );
    expect(e.code).toBe("USAGE");
    expect(e.message).toContain('sample "c" is 2x3x1 but "a" was 2x2x1');
    expect(readdirSync(join(path, "..")).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });

  it("rejects a label that is not one of the classes, naming the sample", async () => {
    const e = await idxError(
      writeAll(fresh("x-images-idx3-ubyte"), [greySample("img-1", px(4), 2, 2, "Cat")], {
        classes: ["Dog", "Bird"],
      }),
    );
    expect(e.code).toBe("USAGE");
    expect(e.message).toContain(
      'sample "img-1" has label "Cat", which is not one of the classes (Dog, Bird)',
    );
  });

  it("rejects a non-integer label without classes, and labels above 255", async () => {
    for (const label of ["cat", "256", "-1", "1.5"]) {
      const e = await idxError(writeAll(fresh("x-images-idx3-ubyte"), [greySample("s", px(1), 1, 1, label)]));
      expect(e.code).toBe("USAGE");
      expect(e.message).toContain(`has label "${label}"; IDX stores labels as integers 0–255`);
    }
  });

  it("rejects text samples, mixed labeled/unlabeled samples, the wrong idx3/idx4 name and a bad output name", async () => {
    const text: Sample = {
      id: "t1",
      digest: "",
      label: "0",
      text: "hi",
      source: null,
      annotations: [],
      metadata: {},
    };
    expect((await idxError(writeAll(fresh("x-images-idx3-ubyte"), [text]))).message).toContain(
      'sample "t1" has no image',
    );
    const mixed = await idxError(
      writeAll(fresh("x-images-idx3-ubyte"), [
        greySample("a", px(1), 1, 1, "0"),
        greySample("b", px(1), 1, 1, null),
      ]),
    );
    expect(mixed.message).toContain('sample "b" is unlabeled but earlier samples are labeled');
    const rgb = await idxError(
      writeAll(fresh("x-images-idx3-ubyte"), [greySample("c", px(3), 1, 1, "0", 3)]),
    );
    expect(rgb.message).toContain(
      'sample "c" has 3 channel(s), which IDX stores as idx4; name the output x-images-idx4-ubyte',
    );
    const named = await idxError(writeAll(fresh("out.idx"), []));
    expect(named.code).toBe("USAGE");
    expect(named.message).toContain("<prefix>-images-idx3-ubyte[.gz]");
  });

  it("writes unlabeled images without a labels file and removes a stale one", async () => {
    const path = fresh("u-images-idx3-ubyte");
    await writeAll(path, [greySample("a", px(4, 9), 2, 2, "3")]);
    const labels = path.replace("images-idx3", "labels-idx1");
    expect(existsSync(labels)).toBe(true);
    await writeAll(path, [greySample("a", px(4, 9), 2, 2, null), greySample("b", px(4, 7), 2, 2, null)]);
    expect(existsSync(labels)).toBe(false);
    const back = await readAll(path);
    expect(back.map((s) => [s.id, s.label, s.digest])).toEqual([
      ["u:0", null, imageBytesDigest(px(4, 9), 2, 2, 1)],
      ["u:1", null, imageBytesDigest(px(4, 7), 2, 2, 1)],
    ]);
  });
});

describe("IDX reader errors", () => {
  const images = (n: number, h = 2, w = 2) =>
    encodeIdx(
      [n, h, w],
      new Uint8Array(n * h * w).map((_, i) => i % 256),
    );
  const labels = (values: number[]) => encodeIdx([values.length], Uint8Array.from(values));

  it("rejects a bad magic number", async () => {
    const d = writeFiles({ "a-images-idx3-ubyte": Buffer.from("PK\x03\x04 not idx at all") });
    const e = await idxError(idxFormat.open(join(d, "a-images-idx3-ubyte"), {}));
    expect(e.code).toBe("IDX_HEADER");
    expect(e.message).toBe(
      `${join(d, "a-images-idx3-ubyte")}: not an IDX file: bad magic number (an IDX file starts with 00 00 08 <ndim>).`,
    );
  });

  it("rejects a type code other than unsigned byte", async () => {
    const file = images(1);
    file[2] = 0x0d;
    const d = writeFiles({ "a-images-idx3-ubyte": file });
    const e = await idxError(idxFormat.open(d, { split: "a" }));
    expect(e.message).toContain("type code 0x0d (float) is not supported; only 0x08 (unsigned byte)");
  });

  it("rejects images with 2 dimensions and labels with 2 dimensions", async () => {
    const d1 = writeFiles({ "a-images-idx3-ubyte": encodeIdx([1, 4], new Uint8Array(4)) });
    const e1 = await idxError(idxFormat.open(d1, { split: "a" }));
    expect(e1.code).toBe("IDX_HEADER");
    expect(e1.message).toContain(
      "an IDX images file must have 3 (N,H,W) or 4 (N,H,W,C) dimensions, but the header says 2",
    );
    const d2 = writeFiles({
      "a-images-idx3-ubyte": images(2),
      "a-labels-idx1-ubyte": encodeIdx([2, 1], new Uint8Array(2)),
    });
    const e2 = await idxError(idxFormat.open(d2, { split: "a" }));
    expect(e2.message).toBe(
      `${join(d2, "a-labels-idx1-ubyte")}: an IDX labels file must have 1 (N) dimensions, but the header says 2.`,
    );
  });

  it("rejects an image count that differs from the label count", async () => {
    const d = writeFiles({
      "a-images-idx3-ubyte": images(3),
      "a-labels-idx1-ubyte.gz": gzipSync(labels([1, 2])),
    });
    const e = await idxError(idxFormat.open(d, { split: "a" }));
    expect(e.code).toBe("IDX_HEADER");
    expect(e.message).toBe(
      `${join(d, "a-images-idx3-ubyte")} holds 3 images but ${join(d, "a-labels-idx1-ubyte.gz")} holds 2 labels; the counts must match.`,
    );
  });

  it("names the image where a truncated file runs out, raw and gzipped", async () => {
    const full = images(5);
    const cut = full.subarray(0, 16 + 2 * 4 + 1); // header + 2 images + 1 byte of image 2
    for (const [name, bytes] of [
      ["a-images-idx3-ubyte", cut],
      ["a-images-idx3-ubyte.gz", gzipSync(cut)],
    ] as const) {
      const d = writeFiles({ [name]: bytes });
      const e = await idxError(readAll(join(d, name)));
      expect(e.code).toBe("IDX_HEADER");
      expect(e.message).toContain(
        "file is truncated: the header declares 5 images of 2x2 but the data ends inside image 2 (byte 25 of 36)",
      );
    }
    const d = writeFiles({
      "a-images-idx3-ubyte": images(3),
      "a-labels-idx1-ubyte": labels([1, 2, 3]).subarray(0, 10),
    });
    const e = await idxError(readAll(d, { split: "a" }));
    expect(e.message).toBe(
      `${join(d, "a-labels-idx1-ubyte")}: file is truncated: the header declares 3 labels but the data ends before label 2 (byte 10 of 11).`,
    );
  });

  it("rejects a gzip stream cut short, and trailing garbage after the declared images", async () => {
    const gz = gzipSync(images(50, 8, 8));
    const d1 = writeFiles({ "a-images-idx3-ubyte.gz": gz.subarray(0, gz.length - 12) });
    const e1 = await idxError(readAll(d1, { split: "a" }));
    expect(e1.code).toBe("IDX_HEADER");
    expect(e1.message).toMatch(/gzip data is corrupt or truncated while reading image \d+|file is truncated/);
    const d2 = writeFiles({ "a-images-idx3-ubyte": Buffer.concat([images(2), Buffer.from([1, 2, 3])]) });
    const e2 = await idxError(readAll(d2, { split: "a" }));
    expect(e2.message).toContain(
      "trailing bytes after the 2 records the header declares (data should end at byte 24)",
    );
  });

  it("lists the splits when the requested one is missing, and says so for a missing path", async () => {
    const d = writeFiles({ "train-images-idx3-ubyte": images(1), "t10k-images.idx3-ubyte": images(1) });
    const e = await idxError(idxFormat.open(d, { split: "valid" }));
    expect(e.code).toBe("USAGE");
    expect(e.message).toBe(`${d}: no IDX split "valid"; the splits here are "t10k", "train".`);
    expect((await idxFormat.open(d, { split: "t10k" })).info.count).toBe(1);
    const missing = await idxError(idxFormat.open(join(d, "nope-images-idx3-ubyte.gz"), {}));
    expect(missing.code).toBe("FILE_NOT_FOUND");
  });

  it("flags a label index outside the classes with its sample index, or skips it when asked", async () => {
    const d = writeFiles({ "a-images-idx3-ubyte": images(4), "a-labels-idx1-ubyte": labels([0, 1, 7, 1]) });
    const e = await idxError(readAll(d, { split: "a", classes: ["x", "y"] }));
    expect(e.code).toBe("ROW_MALFORMED");
    expect(e.message).toBe(
      `${join(d, "a-labels-idx1-ubyte")} row 2: label index 7 is outside the 2 classes given (0–1).`,
    );
    const skipped: AntidoteError[] = [];
    const kept = await readAll(d, {
      split: "a",
      classes: ["x", "y"],
      onError: "skip",
      onSkip: (err) => skipped.push(err),
    });
    expect(kept.map((s) => [s.id, s.label])).toEqual([
      ["a:0", "x"],
      ["a:1", "y"],
      ["a:3", "y"],
    ]);
    expect(skipped.map((err) => err.code)).toEqual(["ROW_MALFORMED"]);
  });
});

describe("IDX properties", () => {
  const shape = fc.record({
    n: fc.integer({ min: 0, max: 6 }),
    h: fc.integer({ min: 1, max: 5 }),
    w: fc.integer({ min: 1, max: 5 }),
    c: fc.constantFrom(1, 2, 3, 4),
    gzip: fc.boolean(),
    labeled: fc.boolean(),
  });
  const dataset = shape.chain(
    (s) =>
      fc.record({
        ...Object.fromEntries(Object.entries(s).map(([k, v]) => [k, fc.constant(v)])),
        pixels: fc.uint8Array({ minLength: s.n * s.h * s.w * s.c, maxLength: s.n * s.h * s.w * s.c }),
        labels: fc.uint8Array({ minLength: s.n, maxLength: s.n }),
      }) as fc.Arbitrary<typeof s & { pixels: Uint8Array; labels: Uint8Array }>,
  );

  it("parses hand-encoded files back to their images and labels", async () => {
    await fc.assert(
      fc.asyncProperty(dataset, async ({ n, h, w, c, gzip, labeled, pixels, labels }) => {
        const dims = c === 1 ? [n, h, w] : [n, h, w, c];
        const enc = (b: Buffer) => (gzip ? gzipSync(b) : b);
        const files: Record<string, Uint8Array> = {
          [`p-images-idx${dims.length}-ubyte`]: enc(encodeIdx(dims, pixels)),
        };
        if (labeled) files["p-labels-idx1-ubyte"] = enc(encodeIdx([n], labels));
        const back = await readAll(writeFiles(files), { split: "p" });
        const size = h * w * c;
        expect(back.map((s) => s.id)).toEqual(Array.from({ length: n }, (_, i) => `p:${i}`));
        back.forEach((s, i) => {
          const want = pixels.subarray(i * size, (i + 1) * size);
          expect(s.digest).toBe(imageBytesDigest(want, h, w, c));
          expect(
            imageToBytes(s.image ?? { height: 0, width: 0, channels: 0, data: new Float32Array() }),
          ).toEqual(want);
          expect(s.label).toBe(labeled ? String(labels[i]) : null);
        });
      }),
      { numRuns: 60 },
    );
  });

  it("writer then reader returns the input, and the writer's bytes are the spec's encoding", async () => {
    await fc.assert(
      fc.asyncProperty(dataset, async ({ n, h, w, c, gzip, labeled, pixels, labels }) => {
        const size = h * w * c;
        const samples = Array.from({ length: n }, (_, i) =>
          greySample(
            `s${i}`,
            pixels.subarray(i * size, (i + 1) * size),
            h,
            w,
            labeled ? String(labels[i]) : null,
            c,
          ),
        );
        const path = fresh(`q-images-idx${c === 1 ? 3 : 4}-ubyte${gzip ? ".gz" : ""}`);
        expect(await writeAll(path, samples)).toBe(n);
        const raw = readFileSync(path);
        expect(gzip ? gunzipSync(raw) : raw).toEqual(
          encodeIdx(c === 1 ? [n, n ? h : 0, n ? w : 0] : [n, n ? h : 0, n ? w : 0, n ? c : 1], pixels),
        );
        const back = await readAll(path);
        expect(back.map((s) => [s.digest, s.label])).toEqual(samples.map((s) => [s.digest, s.label]));
      }),
      { numRuns: 60 },
    );
  });

  // Whatever bytes an IDX file holds, the reader either fails with IDX_HEADER (never another
  // error, never a crash) or, when `original` is a raw images file that may be valid, returns
  // samples that re-encode to exactly those bytes.
  async function onlyIdxHeader(
    files: Record<string, Uint8Array>,
    split: string,
    original?: Buffer,
  ): Promise<void> {
    let samples: Sample[];
    try {
      samples = await readAll(writeFiles(files), { split });
    } catch (e) {
      expect(e).toBeInstanceOf(AntidoteError);
      expect((e as AntidoteError).code).toBe("IDX_HEADER");
      return;
    }
    if (original === undefined) throw new Error("read succeeded on input that cannot be a valid IDX file");
    const header = original.subarray(0, 4 + 4 * (original[3] ?? 0));
    const dims = Array.from({ length: original[3] ?? 0 }, (_, i) => header.readUInt32BE(4 + 4 * i));
    expect(dims[0]).toBe(samples.length);
    const pixels = samples.map((s) => {
      expect([s.image?.height, s.image?.width, s.image?.channels ?? 0]).toEqual([
        dims[1],
        dims[2],
        dims[3] ?? 1,
      ]);
      return imageToBytes(s.image ?? { height: 0, width: 0, channels: 0, data: new Float32Array() });
    });
    expect(Buffer.concat([header, ...pixels])).toEqual(original);
  }

  it("arbitrary bytes as an images file give IDX_HEADER or a faithful parse", async () => {
    const plausible = fc
      .tuple(fc.constantFrom(0, 1, 2, 3, 4, 5), fc.uint8Array({ maxLength: 40 }))
      .map(([ndim, tail]) => Buffer.concat([Buffer.from([0, 0, 8, ndim]), tail]));
    const gzipGarbage = fc
      .uint8Array({ maxLength: 60 })
      .map((tail) => Buffer.concat([Buffer.from([0x1f, 0x8b]), tail]));
    const anyBytes = fc.oneof(
      fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)),
      plausible,
      gzipGarbage,
    );
    await fc.assert(
      fc.asyncProperty(anyBytes, async (bytes) => {
        const gz = bytes[0] === 0x1f && bytes[1] === 0x8b;
        await onlyIdxHeader({ "g-images-idx3-ubyte": bytes }, "g", gz ? undefined : bytes);
      }),
      { numRuns: 150 },
    );
  });

  it("valid files cut short, or with bytes appended, always give IDX_HEADER", async () => {
    const damage = (file: Buffer) =>
      fc.oneof(
        fc.integer({ min: 0, max: file.length - 1 }).map((k) => file.subarray(0, k)),
        fc.uint8Array({ minLength: 1, maxLength: 8 }).map((extra) => Buffer.concat([file, extra])),
      );
    const cases = dataset
      .filter((d) => d.n > 0)
      .chain((d) => {
        const images = encodeIdx(d.c === 1 ? [d.n, d.h, d.w] : [d.n, d.h, d.w, d.c], d.pixels);
        const labels = encodeIdx([d.n], d.labels);
        return fc
          .record({
            d: fc.constant(d),
            images: fc.oneof(fc.constant(images), damage(images)),
            labels: fc.oneof(fc.constant(labels), damage(labels)),
          })
          .filter((x) => x.images !== images || x.labels !== labels);
      });
    await fc.assert(
      fc.asyncProperty(cases, async ({ d, images, labels }) => {
        const enc = (b: Buffer) => (d.gzip ? gzipSync(b) : b);
        await onlyIdxHeader(
          { [`t-images-idx${d.c === 1 ? 3 : 4}-ubyte`]: enc(images), "t-labels-idx1-ubyte": enc(labels) },
          "t",
        );
      }),
      { numRuns: 100 },
    );
  });

  it("a gzip stream cut anywhere gives IDX_HEADER", async () => {
    const gz = gzipSync(encodeIdx([3, 4, 4], new Uint8Array(48).fill(200)));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: gz.length - 1 }), async (k) => {
        await onlyIdxHeader({ "z-images-idx3-ubyte.gz": gz.subarray(0, k) }, "z");
      }),
      { numRuns: 40 },
    );
  });
});
