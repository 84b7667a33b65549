import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../../src/errors.js";
import type { WriteOptions } from "../../../src/data/dataset.js";
import { jsonlFormat } from "../../../src/data/formats/jsonl.js";
import { encodePng } from "../../../src/data/image-codec.js";
import { collect } from "../../../src/data/memory.js";
import { imageToBytes, sampleDigest, type JsonValue, type Sample } from "../../../src/data/sample.js";
import { fashionMnistSamples, hasFashionMnist, spamAssassinSamples } from "../../helpers/real-data.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-jsonl-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("JSONL round trip on real data", () => {
  it("keeps 300 SpamAssassin emails (quotes, newlines, non-ASCII) intact, plain and gzipped", async () => {
    const original = spamAssassinSamples(300);
    expect(original.some((s) => /[^\p{ASCII}]/u.test(s.text ?? ""))).toBe(true);
    for (const name of ["spam.jsonl", "spam.jsonl.gz"]) {
      const file = join(dir, name);
      expect(await writeAll(file, original)).toBe(300);
      const dataset = await jsonlFormat.open(file, {});
      expect(dataset.info).toMatchObject({
        format: "jsonl",
        path: file,
        columns: { id: "id", text: "text", label: "label" },
      });
      expect(dataset.info.bytes).toBe((await stat(file)).size);
      expect((await collect(dataset)).map(view)).toEqual(original.map(view));
      expect(dataset.info.labelKind).toBe("string");
    }
    const gz = await readFile(join(dir, "spam.jsonl.gz"));
    expect([gz[0], gz[1]]).toEqual([0x1f, 0x8b]);
    expect(gunzipSync(gz).toString("utf8").split("\n").filter(Boolean)).toHaveLength(300);
  });

  it("detects gzip by its magic bytes, not by the file name", async () => {
    const original = spamAssassinSamples(20);
    const file = join(dir, "compressed-but-named.jsonl");
    await writeAll(file, original, { gzip: true });
    expect((await readFile(file))[0]).toBe(0x1f);
    expect((await collect(await jsonlFormat.open(file, {}))).map(view)).toEqual(original.map(view));
  });

  it.skipIf(!hasFashionMnist())(
    "stores Fashion-MNIST images as PNG data URIs with the original digests",
    async () => {
      const original = fashionMnistSamples(100);
      const file = join(dir, "fashion.jsonl");
      await writeAll(file, original);
      const first = JSON.parse((await readFile(file, "utf8")).split("\n")[0] ?? "") as Record<
        string,
        unknown
      >;
      expect(first.image).toMatch(/^data:image\/png;base64,iVBORw0KGgo/);
      const read = await collect(await jsonlFormat.open(file, {}));
      expect(read.map((s) => s.digest)).toEqual(original.map((s) => s.digest));
      expect(read.map(view)).toEqual(original.map(view));
      expect(read[3]?.image).toMatchObject({ height: 28, width: 28, channels: 1 });
    },
  );

  it("keeps tabular features bit for bit (-0, NaN, ±Infinity) under their names, and infers them on read", async () => {
    const values = [
      [1.5, -0, Number.NaN, 3],
      [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-30, -7.25],
      [0.1, 2 ** 20, -3.4e38, 1 / 3],
    ];
    const original = values.map((v, i) => tabular(`row${i}`, v, i % 2 === 0 ? "0" : "1"));
    const file = join(dir, "tabular.jsonl");
    await writeAll(file, original, {
      featureNames: ["age", "income", "score", "ratio"],
      labelKind: "integer",
    });
    const first = JSON.parse((await readFile(file, "utf8")).split("\n")[0] ?? "") as Record<string, unknown>;
    expect(first).toMatchObject({ id: "row0", age: 1.5, income: -0, score: "NaN", ratio: 3, label: 0 });

    const dataset = await jsonlFormat.open(file, {});
    expect(dataset.info.featureNames).toEqual(["age", "income", "score", "ratio"]);
    expect(dataset.info.labelKind).toBe("integer"); // known from the first row, before any pass
    const read = await collect(dataset);
    expect(read.map(view)).toEqual(original.map(view));

    const only = await collect(await jsonlFormat.open(file, { featureColumns: ["ratio", "age"] }));
    expect(Array.from(only[0]?.features ?? [])).toEqual([3, 1.5]);
    expect(only[0]?.metadata).toMatchObject({ income: -0, score: "NaN" });
  });

  it("keeps sources, annotations and metadata, and never lets metadata overwrite a reserved key", async () => {
    const original: Sample[] = spamAssassinSamples(12).map((s, i) => ({
      ...s,
      source: i % 3 === 0 ? null : `vendor-${i % 3}`,
      annotations: Array.from({ length: i % 4 }, (_, k) => ({
        annotator: `ann${k}`,
        label: k % 2 ? "spam" : "ham",
      })),
      metadata: {
        ...s.metadata,
        batch: i,
        checked: i % 2 === 0,
        note: null,
        tags: ["a", i],
        nested: { depth: 1 },
      },
    }));
    const file = join(dir, "provenance.jsonl");
    await writeAll(file, original);
    expect((await collect(await jsonlFormat.open(file, {}))).map(view)).toEqual(original.map(view));

    const clash = { ...original[0]!, metadata: { label: "evil", id: "other", text: "swapped", keep: "yes" } };
    const clashFile = join(dir, "clash.jsonl");
    await writeAll(clashFile, [clash]);
    const [back] = await collect(await jsonlFormat.open(clashFile, {}));
    expect(back).toMatchObject({
      id: clash.id,
      label: clash.label,
      text: clash.text,
      metadata: { keep: "yes" },
    });
    expect(Object.keys(back?.metadata ?? {})).toEqual(["keep"]);
  });
});

describe("JSONL reader", () => {
  it("numbers generated ids by data row, counting skipped rows but not blank lines, and restarts on every pass", async () => {
    const file = join(dir, "ids.v2.jsonl");
    await writeFile(
      file,
      [
        '{"text":"a","label":"x"}',
        "",
        '{"text":"b",',
        '{"text":"c","label":"y"}',
        "   ",
        '{"text":"d"}',
      ].join("\n"),
    );
    const skipped: AntidoteError[] = [];
    const dataset = await jsonlFormat.open(file, { onError: "skip", onSkip: (e) => skipped.push(e) });
    const first = await collect(dataset);
    expect(first.map((s) => [s.id, s.text, s.label])).toEqual([
      ["ids.v2:0", "a", "x"],
      ["ids.v2:2", "c", "y"],
      ["ids.v2:3", "d", null],
    ]);
    expect(skipped.map((e) => e.message.slice(0, file.length + 3))).toEqual([`${file}:3:`]);
    expect((await collect(dataset)).map((s) => s.id)).toEqual(first.map((s) => s.id));
    expect(skipped).toHaveLength(2);
  });

  it("reports progress as compressed bytes read, ending at the file size", async () => {
    const file = join(dir, "progress.jsonl.gz");
    await writeAll(file, spamAssassinSamples(200));
    const seen: number[] = [];
    await collect(await jsonlFormat.open(file, { onProgress: (n) => seen.push(n) }));
    expect(seen.length).toBeGreaterThan(1);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe((await stat(file)).size);
  });

  it("does not buffer the file: stopping after 10 of 200,000 rows reads a sliver, a full pass keeps the heap flat", async () => {
    const file = join(dir, "big.jsonl");
    const rows = 200_000;
    await writeBigFile(file, rows);
    const size = (await stat(file)).size;

    let read = 0;
    let taken = 0;
    for await (const sample of (await jsonlFormat.open(file, { onProgress: (n) => (read = n) })).samples()) {
      expect(sample.id).toBe(`r${taken}`);
      if (++taken === 10) break;
    }
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(size / 20);

    const before = process.memoryUsage().heapUsed;
    let peak = before;
    let count = 0;
    for await (const sample of (await jsonlFormat.open(file, {})).samples()) {
      if (++count % 10_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
      if (count === rows) expect(sample.label).toBe(String((rows - 1) % 10));
    }
    expect(count).toBe(rows);
    expect(peak - before).toBeLessThan(100 * 2 ** 20);
  });
});

describe("JSONL writer", () => {
  it("creates missing directories, and names an output path it cannot create", async () => {
    const nested = join(dir, "out", "deeper", "x.jsonl");
    expect(await writeAll(nested, spamAssassinSamples(2))).toBe(2);
    expect((await readFile(nested, "utf8")).split("\n")).toHaveLength(3);
    const blocked = join(dir, "x.jsonl", "under-a-file.jsonl");
    await writeAll(join(dir, "x.jsonl"), []);
    await expectFailure(
      jsonlFormat.create!(blocked, {}),
      "USAGE",
      `${blocked}: cannot write the output file`,
    );
  });

  it("refuses feature vectors that do not match the feature names", async () => {
    const writer = await jsonlFormat.create!(join(dir, "ragged.jsonl"), { featureNames: ["a", "b"] });
    await expectFailure(writer.write(tabular("r", [1, 2, 3], null)), "USAGE", 'sample "r" has 3 features');
    await writer.close();
  });
});

describe("JSONL bad input", () => {
  it("names the path of a missing file", async () => {
    const file = join(dir, "nope.jsonl");
    await expectFailure(jsonlFormat.open(file, {}), "FILE_NOT_FOUND", file);
  });

  it("suggests the right column for a misspelled --label-column", async () => {
    const file = await lines("columns.jsonl", ['{"id":"a","text":"hello","label":"spam"}']);
    await expectFailure(
      jsonlFormat.open(file, { columns: { label: "lable" } }),
      "COLUMN_MISSING",
      /no column "lable" for --label-column\. Did you mean "label"\?/,
    );
    await expectFailure(
      jsonlFormat.open(file, { featureColumns: ["txt"] }),
      "COLUMN_MISSING",
      'Did you mean "text"?',
    );
  });

  it("names file:line for a line that is not JSON or not an object", async () => {
    const bad = await lines("bad.jsonl", ['{"text":"ok","label":"a"}', "", '{"text": "broken", label: "a"}']);
    await expectFailure(
      collect(await jsonlFormat.open(bad, {})),
      "ROW_MALFORMED",
      new RegExp(`^${escape(bad)}:3: not valid JSON`),
    );
    const array = await lines("array.jsonl", ['{"text":"ok"}', '["text","label"]']);
    await expect(collect(await jsonlFormat.open(array, {}))).rejects.toThrow(
      `${array}:2: expected a JSON object, found an array.`,
    );
  });

  it("with --on-error skip, skips and counts exactly the bad rows", async () => {
    const file = await lines("skip.jsonl", [
      '{"id":"a","text":"fine","label":"x","annotations":[]}',
      "not json at all",
      '{"id":"b","text":"fine","label":"y"}',
      "42",
      '{"id":"c","text":"fine","label":"x","annotations":[{"annotator":"","label":"x"}]}',
      '{"id":"d","text":{"nested":true},"label":"x"}',
      '{"id":"e","text":"fine","label":"y"}',
    ]);
    const skipped: AntidoteError[] = [];
    const read = await collect(
      await jsonlFormat.open(file, { onError: "skip", onSkip: (e) => skipped.push(e) }),
    );
    expect(read.map((s) => s.id)).toEqual(["a", "b", "e"]);
    expect(skipped.map((e) => e.code)).toEqual([
      "ROW_MALFORMED",
      "ROW_MALFORMED",
      "ROW_MALFORMED",
      "ROW_MALFORMED",
    ]);
    expect(skipped.map((e) => /^[^:]+:(\d+)\b/.exec(e.message)?.[1])).toEqual(["2", "4", "5", "6"]);
    expect(skipped[2]?.message).toContain('field "annotations[0].annotator"');
    expect(skipped[3]?.message).toContain('field "text"');
  });

  it("always stops on a label column with numbers and strings, naming both lines", async () => {
    const file = await lines("mixed.jsonl", ['{"text":"a","label":3}', "", '{"text":"b","label":"cat"}']);
    for (const onError of ["fail", "skip"] as const) {
      await expectFailure(
        collect(await jsonlFormat.open(file, { onError })),
        "LABEL_MIXED_TYPES",
        new RegExp(`^${escape(file)}:3: .*"cat".*${escape(file)}:1 held integers`),
      );
    }
  });

  it("names the row and field of an image cell that is not an image", async () => {
    const png = encodePng(new Uint8Array([0, 255, 255, 0]), 2, 2, 1).toString("base64");
    const file = await lines("images.jsonl", [
      JSON.stringify({ id: "ok", image: `data:image/png;base64,${png}`, label: "a" }),
      JSON.stringify({ id: "words", image: "this is not an image", label: "a" }),
      JSON.stringify({
        id: "gif",
        image: `data:image/gif;base64,${Buffer.from("GIF89a....").toString("base64")}`,
        label: "a",
      }),
    ]);
    const skipped: AntidoteError[] = [];
    const read = await collect(
      await jsonlFormat.open(file, { onError: "skip", onSkip: (e) => skipped.push(e) }),
    );
    expect(read.map((s) => s.id)).toEqual(["ok"]);
    expect(Array.from(imageToBytes(read[0]!.image!))).toEqual([0, 255, 255, 0]);
    expect(skipped.map((e) => [e.code, e.message.slice(0, `${file}:2 field "image"`.length)])).toEqual([
      ["IMAGE_UNDECODABLE", `${file}:2 field "image"`],
      ["IMAGE_UNDECODABLE", `${file}:3 field "image"`],
    ]);
    await expect(collect(await jsonlFormat.open(file, {}))).rejects.toMatchObject({
      code: "IMAGE_UNDECODABLE",
    });
  });

  it("reports corrupt gzip as INPUT_FORMAT, never skippable", async () => {
    const whole = gzipSync(
      Buffer.from(
        spamAssassinSamples(50)
          .map((s) => JSON.stringify({ text: s.text }) + "\n")
          .join(""),
      ),
    );
    const file = join(dir, "truncated.jsonl.gz");
    await writeFile(file, whole.subarray(0, Math.floor(whole.length / 2)));
    await expectFailure(
      collect(await jsonlFormat.open(file, { onError: "skip" })),
      "INPUT_FORMAT",
      `${file}: corrupt or truncated gzip data`,
    );
  });
});

describe("JSONL properties", () => {
  it("arbitrary records survive write → read", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(datasetArb(), async ({ labelKind, samples }) => {
        const file = join(dir, `prop-${run++}.jsonl${run % 3 === 0 ? ".gz" : ""}`);
        await writeAll(file, samples, { labelKind });
        const dataset = await jsonlFormat.open(file, {});
        expect((await collect(dataset)).map(view)).toEqual(samples.map(view));
        if (samples.some((s) => s.label !== null)) expect(dataset.info.labelKind).toBe(labelKind);
      }),
      { numRuns: 80 },
    );
  });

  it("arbitrary feature vectors survive bit for bit", async () => {
    let run = 0;
    const rows = fc.array(fc.array(fc.float(), { minLength: 3, maxLength: 3 }), {
      minLength: 1,
      maxLength: 6,
    });
    await fc.assert(
      fc.asyncProperty(rows, async (vectors) => {
        const samples = vectors.map((v, i) => tabular(`t${i}`, v, "x"));
        const file = join(dir, `floats-${run++}.jsonl`);
        await writeAll(file, samples);
        expect((await collect(await jsonlFormat.open(file, {}))).map(view)).toEqual(samples.map(view));
      }),
      { numRuns: 60 },
    );
  });

  it("garbage lines and bytes only ever raise AntidoteErrors", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(garbageArb(), async (bytes) => {
        const file = join(dir, `fuzz-${run++}.jsonl`);
        await writeFile(file, bytes);
        for (const onError of ["fail", "skip"] as const) {
          const skipped: unknown[] = [];
          try {
            await collect(await jsonlFormat.open(file, { onError, onSkip: (e) => skipped.push(e) }));
          } catch (e) {
            expect(e).toBeInstanceOf(AntidoteError);
          }
          for (const e of skipped) expect(e).toBeInstanceOf(AntidoteError);
        }
      }),
      { numRuns: 150 },
    );
  });
});

// --- helpers --------------------------------------------------------------------------

/** The AntidoteError a promise rejects with, checked for its code and message. */
async function expectFailure(
  promise: Promise<unknown>,
  code: string,
  message: string | RegExp,
): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AntidoteError);
  expect((error as AntidoteError).code).toBe(code);
  if (typeof message === "string") expect((error as AntidoteError).message).toContain(message);
  else expect((error as AntidoteError).message).toMatch(message);
}

/** What must survive a round trip, in a form `toEqual` compares exactly (features bit for bit). */
function view(s: Sample) {
  return {
    id: s.id,
    digest: s.digest,
    label: s.label,
    text: s.text,
    image: s.image && {
      shape: [s.image.height, s.image.width, s.image.channels],
      pixels: Buffer.from(imageToBytes(s.image)).toString("hex"),
    },
    features:
      s.features &&
      Buffer.from(s.features.buffer, s.features.byteOffset, s.features.byteLength).toString("hex"),
    source: s.source,
    annotations: s.annotations,
    metadata: s.metadata,
  };
}

async function writeAll(
  file: string,
  samples: readonly Sample[],
  options: WriteOptions = {},
): Promise<number> {
  const writer = await jsonlFormat.create!(file, options);
  for (const s of samples) await writer.write(s);
  return writer.close();
}

async function lines(name: string, content: string[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, content.join("\n") + "\n");
  return file;
}

function tabular(id: string, values: number[], label: string | null): Sample {
  const features = Float32Array.from(values);
  return {
    id,
    digest: sampleDigest({ features }),
    label,
    features,
    source: null,
    annotations: [],
    metadata: {},
  };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function writeBigFile(file: string, rows: number): Promise<void> {
  const out = createWriteStream(file);
  for (let start = 0; start < rows; start += 10_000) {
    let chunk = "";
    for (let i = start; i < start + 10_000; i++)
      chunk += `{"id":"r${i}","text":"row number ${i} of the big file","label":"${i % 10}"}\n`;
    if (!out.write(chunk)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

// Unicode with the characters that break naive writers: quotes, commas, CR/LF, tabs,
// backslashes, line separators, NUL, astral code points, and the empty string.
const tricky = fc.string({
  unit: fc.oneof(
    fc.constantFrom(
      '"',
      "'",
      ",",
      "\r",
      "\n",
      "\r\n",
      "\t",
      " ",
      "\\",
      "\u2028",
      "\u0000",
      "é",
      "😀",
      "{",
      "}",
    ),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
  maxLength: 24,
});
const nonEmpty = tricky.filter((s) => s !== "");

function datasetArb() {
  const labelArb = (kind: "integer" | "string") =>
    fc.option(kind === "integer" ? fc.integer({ min: -5, max: 1000 }).map(String) : nonEmpty, { nil: null });
  const metadata = fc.dictionary(
    fc.constantFrom("m_lang", "m_batch", "m_flag", "m_note"),
    fc.oneof(
      tricky,
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
      fc.boolean(),
      fc.constant(null),
    ) as fc.Arbitrary<JsonValue>,
  );
  const sampleArb = (kind: "integer" | "string") =>
    fc
      .record({
        id: nonEmpty,
        text: tricky,
        label: labelArb(kind),
        source: fc.option(nonEmpty, { nil: null }),
        annotations: fc.array(fc.record({ annotator: nonEmpty, label: tricky }), { maxLength: 3 }),
        metadata,
      })
      .map((r): Sample => ({ ...r, digest: sampleDigest({ text: r.text }) }));
  return fc.constantFrom("integer" as const, "string" as const).chain((labelKind) =>
    fc.record({
      labelKind: fc.constant(labelKind),
      samples: fc.array(sampleArb(labelKind), { minLength: 1, maxLength: 8 }),
    }),
  );
}

// Lines that are nearly right (objects with role keys holding odd values, image cells that
// name directories or hold junk) mixed with plain garbage; or raw bytes, gzip included.
function garbageArb(): fc.Arbitrary<Buffer> {
  const oddImage = fc.constantFrom(
    "",
    ".",
    "/",
    "..",
    "data:image/png;base64,AAAA",
    "iVBORw0KGgo=",
    "/dev/null",
  );
  const record = fc.dictionary(
    fc.constantFrom("id", "text", "image", "label", "source", "annotations", "x"),
    fc.oneof(fc.jsonValue({ maxDepth: 2 }), oddImage) as fc.Arbitrary<unknown>,
    { maxKeys: 6 },
  );
  const line = fc.oneof(
    record.map((r) => JSON.stringify(r)),
    fc.json({ maxDepth: 2 }),
    fc.string({ unit: "binary", maxLength: 40 }),
  );
  const text = fc
    .tuple(fc.array(line, { maxLength: 8 }), fc.constantFrom("\n", "\r\n", "\r"))
    .map(([ls, eol]) => Buffer.from(ls.join(eol), "utf8"));
  const bytes = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b));
  const gzipMagic = fc
    .uint8Array({ maxLength: 60 })
    .map((b) => Buffer.concat([Buffer.from([0x1f, 0x8b]), b]));
  const truncatedGzip = fc.tuple(text, fc.nat()).map(([t, cut]) => {
    const gz = gzipSync(t);
    return gz.subarray(0, cut % (gz.length + 1));
  });
  return fc.oneof(
    text,
    bytes,
    gzipMagic,
    truncatedGzip,
    text.map((t) => gzipSync(t)),
  );
}
