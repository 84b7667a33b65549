import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../../src/errors.js";
import type { WriteOptions } from "../../../src/data/dataset.js";
import { csvFormat, RecordSplitter } from "../../../src/data/formats/csv.js";
import { encodePng } from "../../../src/data/image-codec.js";
import { collect } from "../../../src/data/memory.js";
import { imageToBytes, sampleDigest, type JsonValue, type Sample } from "../../../src/data/sample.js";
import { fashionMnistSamples, hasFashionMnist, spamAssassinSamples } from "../../helpers/real-data.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-csv-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("CSV round trip on real data", () => {
  it("keeps 300 SpamAssassin emails (quotes, commas, newlines, non-ASCII) intact, as CSV, gzipped CSV and TSV", async () => {
    const original = spamAssassinSamples(300);
    expect(original.some((s) => /"[^]*,|,[^]*"/.test(s.text ?? "") && (s.text ?? "").includes("\n"))).toBe(
      true,
    );
    for (const name of ["spam.csv", "spam.csv.gz", "spam.tsv"]) {
      const file = join(dir, name);
      expect(await writeAll(file, original)).toBe(300);
      const dataset = await csvFormat.open(file, {});
      expect(dataset.info).toMatchObject({
        format: "csv",
        path: file,
        columns: { id: "id", text: "text", label: "label" },
      });
      expect(dataset.info.bytes).toBe((await stat(file)).size);
      expect((await collect(dataset)).map(view)).toEqual(original.map(view));
    }
    // An independent parser agrees on the layout: header, then one record per sample.
    const records = parse<Record<string, string>>(await readFile(join(dir, "spam.csv"), "utf8"), {
      columns: true,
    });
    expect(Object.keys(records[0] ?? {})).toEqual(["id", "text", "label", "source", "annotations", "group"]);
    expect(records.map((r) => r.text)).toEqual(original.map((s) => s.text));
    expect((await readFile(join(dir, "spam.tsv"), "utf8")).split("\n")[0]).toBe(
      "id\ttext\tlabel\tsource\tannotations\tgroup",
    );
  });

  it.skipIf(!hasFashionMnist())(
    "stores Fashion-MNIST images as PNG data URIs with the original digests",
    async () => {
      const original = fashionMnistSamples(30);
      const file = join(dir, "fashion.csv");
      await writeAll(file, original);
      const read = await collect(await csvFormat.open(file, {}));
      expect(read.map((s) => s.digest)).toEqual(original.map((s) => s.digest));
      expect(read.map(view)).toEqual(original.map(view));
    },
  );

  it("infers numeric columns as features, keeps them bit for bit, and reads integer labels as integers", async () => {
    const original = [
      tabular("a", [1.5, -0, Number.NaN], "0"),
      tabular("b", [Number.POSITIVE_INFINITY, 1e-30, -3.4e38], "1"),
      tabular("c", [1 / 3, 0.1, 7], null),
    ];
    const file = join(dir, "tabular.csv");
    await writeAll(file, original, { featureNames: ["x", "y", "z"], labelKind: "integer" });
    expect((await readFile(file, "utf8")).split("\n").slice(0, 2)).toEqual([
      "id,x,y,z,label,source,annotations",
      "a,1.5,-0,NaN,0,,",
    ]);
    const dataset = await csvFormat.open(file, {});
    expect(dataset.info.featureNames).toEqual(["x", "y", "z"]);
    expect(dataset.info.labelKind).toBe("integer"); // known from the first row, before any pass
    expect((await collect(dataset)).map(view)).toEqual(original.map(view));
  });

  it("keeps sources and annotations; metadata comes back as text, with the first sample's keys", async () => {
    const original = spamAssassinSamples(9).map((s, i): Sample => {
      const group = s.metadata.group ?? null;
      const metadata: Record<string, JsonValue> =
        i === 0 ? { group, batch: 7, ok: true, gone: null } : { group, extra: "dropped" };
      return {
        ...s,
        source: i % 3 === 0 ? null : `vendor-${i % 3}`,
        annotations: Array.from({ length: i % 3 }, (_, k) => ({
          annotator: `ann,${k}`,
          label: k ? "spam" : "ham",
        })),
        metadata,
      };
    });
    const file = join(dir, "provenance.csv");
    await writeAll(file, original);
    const read = await collect(await csvFormat.open(file, {}));
    expect(read.map(view)).toEqual(
      original.map((s) =>
        view({ ...s, metadata: csvMetadata(s.metadata, ["group", "batch", "ok", "gone"]) }),
      ),
    );
    expect(read[0]?.metadata).toEqual({
      group: original[0]?.metadata.group,
      batch: "7",
      ok: "true",
      gone: "",
    });
  });
});

describe("CSV reader", () => {
  it("reads a hand-written file: BOM, CRLF, quoted delimiters, doubled quotes and newlines, blank lines", async () => {
    const file = join(dir, "hand.csv");
    const body =
      'id,text,label\r\n1,"Hello, ""world""",spam\r\n\r\n2,"two\r\nlines, here",ham\r\n3,plain,ham';
    await writeFile(file, "\uFEFF" + body);
    const read = await collect(await csvFormat.open(file, {}));
    expect(read.map((s) => [s.id, s.text, s.label])).toEqual([
      ["1", 'Hello, "world"', "spam"],
      ["2", "two\r\nlines, here", "ham"],
      ["3", "plain", "ham"],
    ]);
    expect(read[0]?.digest).toBe(sampleDigest({ text: 'Hello, "world"' }));
  });

  it("numbers generated ids by data row, counting skipped rows, and restarts on every pass", async () => {
    const file = await csv("ids.csv", "text,label\na,x\n\nb,y,extra\nc,y\n");
    const skipped: AntidoteError[] = [];
    const dataset = await csvFormat.open(file, { onError: "skip", onSkip: (e) => skipped.push(e) });
    const first = await collect(dataset);
    expect(first.map((s) => [s.id, s.text])).toEqual([
      ["ids:0", "a"],
      ["ids:2", "c"],
    ]);
    expect((await collect(dataset)).map((s) => s.id)).toEqual(["ids:0", "ids:2"]);
    expect(skipped).toHaveLength(2);
  });

  it("reports progress as compressed bytes read, ending at the file size", async () => {
    const file = join(dir, "progress.csv.gz");
    await writeAll(file, spamAssassinSamples(200));
    const seen: number[] = [];
    await collect(await csvFormat.open(file, { onProgress: (n) => seen.push(n) }));
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.at(-1)).toBe((await stat(file)).size);
  });
});

describe("CSV bad input", () => {
  it("names the path of a missing file", async () => {
    const file = join(dir, "nope.csv");
    await expectFailure(csvFormat.open(file, {}), "FILE_NOT_FOUND", file);
  });

  it("suggests the right column for a misspelled --label-column", async () => {
    const file = await csv("columns.csv", "id,text,label\n1,hi,spam\n");
    await expectFailure(
      csvFormat.open(file, { columns: { label: "lable" } }),
      "COLUMN_MISSING",
      'no column "lable" for --label-column. Did you mean "label"?',
    );
  });

  it("names file:line for an unclosed quote, bad quoting and a wrong field count", async () => {
    const unclosed = await csv(
      "unclosed.csv",
      'id,text,label\n1,"multi\nline",a\n2,"never closed,b\n3,x,c\n',
    );
    await expectFailure(
      collect(await csvFormat.open(unclosed, {})),
      "ROW_MALFORMED",
      new RegExp(`^${escape(unclosed)}:4: Quote Not Closed`),
    );
    const opening = await csv("opening.csv", 'id,text,label\n1,ok,a\n2,bro"ken,b\n');
    await expect(collect(await csvFormat.open(opening, {}))).rejects.toThrow(
      new RegExp(`^${escape(opening)}:3: Invalid Opening Quote`),
    );
    const count = await csv("count.csv", 'id,text,label\n1,"multi\nline",a\n\n2,too,many,fields\n');
    await expect(collect(await csvFormat.open(count, {}))).rejects.toMatchObject({
      code: "ROW_MALFORMED",
      message: `${count}:5: expected 3 fields as in the header, found 4.`,
    });
  });

  it("with --on-error skip, skips and counts exactly the bad rows, and bad quoting costs only its own row", async () => {
    const file = await csv(
      "skip.csv",
      [
        "id,text,label,annotations", // 1
        "a,fine,x,",
        "b,short", // 3: too few fields
        'c,bad"quote,x,', // 4: quote inside an unquoted field
        "d,fine,y,",
        "e,fine,x,not json", // 6: annotations are not JSON
        "f,1,2,3,4", // 7: too many fields
        'g,"closed"early,y,', // 8: text after a closing quote
        "h,fine,x,",
        'i,"never closed,x,', // 10: the quote would pair with the one on line 12
        "j,fine,y,",
        'k,"two',
        'lines",x,',
        "l,fine,y,",
        'm,"open to the end,x,', // 15
        "n,fine,y,",
      ].join("\n"),
    );
    const skipped: AntidoteError[] = [];
    const read = await collect(
      await csvFormat.open(file, { onError: "skip", onSkip: (e) => skipped.push(e) }),
    );
    expect(read.map((s) => s.id)).toEqual(["a", "d", "h", "j", "k", "l", "n"]);
    expect(read.find((s) => s.id === "k")?.text).toBe("two\nlines");
    expect(skipped.map((e) => /^[^:]+:(\d+)\b/.exec(e.message)?.[1])).toEqual([
      "3",
      "4",
      "6",
      "7",
      "8",
      "10",
      "15",
    ]);
    expect(skipped.every((e) => e.code === "ROW_MALFORMED")).toBe(true);
    expect(skipped[2]?.message).toContain('field "annotations"');
    expect(skipped[6]?.message).toContain("Quote Not Closed");
    // Generated ids count the skipped rows, so they do not shift.
    const noIds = await csv("skip-noid.csv", 'text,label\na,x\nb\nc"d,y\ne,y\n');
    const ids = (await collect(await csvFormat.open(noIds, { onError: "skip" }))).map((s) => s.id);
    expect(ids).toEqual(["skip-noid:0", "skip-noid:3"]);
  });

  it("always stops on a label column with numbers and strings, naming both lines", async () => {
    const file = await csv("mixed.csv", "text,label\na,cat\nb,dog\nc,3\n");
    await expectFailure(
      collect(await csvFormat.open(file, { onError: "skip" })),
      "LABEL_MIXED_TYPES",
      new RegExp(`^${escape(file)}:4: .*integers \\("3"\\).*${escape(file)}:2 held strings`),
    );
  });

  it("names the row and field of an image cell that is not an image", async () => {
    const png = encodePng(new Uint8Array([10, 20, 30, 40]), 2, 2, 1).toString("base64");
    const file = await csv(
      "images.csv",
      `id,picture,label\nok,"data:image/png;base64,${png}",a\nbad,not an image at all,a\n`,
    );
    await expectFailure(
      collect(await csvFormat.open(file, {})),
      "IMAGE_UNDECODABLE",
      `${file}:3 field "picture"`,
    );
    const skipped: AntidoteError[] = [];
    const read = await collect(
      await csvFormat.open(file, { onError: "skip", onSkip: (e) => skipped.push(e) }),
    );
    expect(Array.from(imageToBytes(read[0]!.image!))).toEqual([10, 20, 30, 40]);
    expect(skipped.map((e) => e.code)).toEqual(["IMAGE_UNDECODABLE"]);
  });

  it("rejects a header that names a column twice", async () => {
    const file = await csv("dup.csv", "id,text,text\n1,a,b\n");
    await expectFailure(csvFormat.open(file, {}), "INPUT_FORMAT", '"text" twice');
  });
});

describe("CSV properties", () => {
  it("arbitrary records survive write → read (metadata as text)", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(datasetArb(), async ({ labelKind, samples }) => {
        const file = join(dir, `prop-${run++}.${run % 2 ? "csv" : "tsv"}${run % 3 === 0 ? ".gz" : ""}`);
        await writeAll(file, samples, { labelKind });
        const dataset = await csvFormat.open(file, {});
        const header = Object.keys(samples[0]?.metadata ?? {});
        const expected = samples.map((s) => view({ ...s, metadata: csvMetadata(s.metadata, header) }));
        expect((await collect(dataset)).map(view)).toEqual(expected);
        if (samples.some((s) => s.label !== null)) expect(dataset.info.labelKind).toBe(labelKind);
      }),
      { numRuns: 80 },
    );
  });

  it("arbitrary feature vectors survive bit for bit", async () => {
    let run = 0;
    const rows = fc.array(fc.array(fc.float(), { minLength: 2, maxLength: 2 }), {
      minLength: 1,
      maxLength: 6,
    });
    await fc.assert(
      fc.asyncProperty(rows, async (vectors) => {
        const samples = vectors.map((v, i) => tabular(`t${i}`, v, "x"));
        const file = join(dir, `floats-${run++}.csv`);
        await writeAll(file, samples);
        expect((await collect(await csvFormat.open(file, {}))).map(view)).toEqual(samples.map(view));
      }),
      { numRuns: 60 },
    );
  });

  it("finds the same records however the input is cut into chunks", () => {
    const quoted = tricky.map((t) => `"${t.replace(/"/g, '""')}"`);
    const cell = fc.oneof(
      tricky,
      quoted,
      fc.constantFrom('"a""\nb"', '"x\r\ny"', '"open', 'mid"quote', '"closed"junk', '""'),
    );
    const text = fc
      .array(
        fc.array(cell, { maxLength: 4 }).map((cells) => cells.join(",")),
        { maxLength: 10 },
      )
      .map((lines) => lines.join("\n"));
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 6 }), (csvText, cuts) => {
        const whole = new RecordSplitter("x.csv", ",");
        const expected = [...whole.push(csvText), ...whole.end()];
        const pieces = new RecordSplitter("x.csv", ",");
        const got = [];
        let from = 0;
        for (const cut of [...new Set(cuts.map((c) => c % (csvText.length + 1)))].sort((a, b) => a - b)) {
          got.push(...pieces.push(csvText.slice(from, cut)));
          from = cut;
        }
        got.push(...pieces.push(csvText.slice(from)), ...pieces.end());
        expect(got).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });

  it("garbage text and bytes only ever raise AntidoteErrors", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(garbageArb(), async (bytes) => {
        const file = join(dir, `fuzz-${run++}.csv`);
        await writeFile(file, bytes);
        for (const onError of ["fail", "skip"] as const) {
          const skipped: unknown[] = [];
          try {
            await collect(await csvFormat.open(file, { onError, onSkip: (e) => skipped.push(e) }));
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

/** CSV is untyped and has one header: metadata comes back as text, under the first sample's keys. */
function csvMetadata(
  metadata: Record<string, JsonValue>,
  header: readonly string[],
): Record<string, JsonValue> {
  return Object.fromEntries(
    header.map((key) => {
      const v = metadata[key];
      return [
        key,
        v === undefined || v === null
          ? ""
          : typeof v === "string"
            ? v
            : typeof v === "object"
              ? JSON.stringify(v)
              : String(v),
      ];
    }),
  );
}

async function writeAll(
  file: string,
  samples: readonly Sample[],
  options: WriteOptions = {},
): Promise<number> {
  const writer = await csvFormat.create!(file, options);
  for (const s of samples) await writer.write(s);
  return writer.close();
}

async function csv(name: string, content: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, content);
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

// Unicode with the characters that break naive CSV writers: quotes, commas, tabs, CR/LF,
// lone CR, NUL, astral code points, and the empty string.
const tricky = fc.string({
  unit: fc.oneof(
    fc.constantFrom('"', "'", ",", "\r", "\n", "\r\n", "\t", " ", "\\", "\u2028", "\u0000", "é", "😀", "#"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
  maxLength: 24,
});
const nonEmpty = tricky.filter((s) => s !== "");

// CSV cannot tell the string "12" from the number 12, so a string-labelled dataset has no
// labels spelled as integers (those are read as integer labels, by design).
function datasetArb() {
  const labelArb = (kind: "integer" | "string") =>
    fc.option(
      kind === "integer"
        ? fc.integer({ min: -5, max: 1000 }).map(String)
        : nonEmpty.filter((s) => !/^-?\d+$/.test(s.trim())),
      { nil: null },
    );
  const metadata = fc.dictionary(
    fc.constantFrom("m_lang", "m_batch", "m_flag", "m_note"),
    fc.oneof(tricky, fc.integer(), fc.boolean(), fc.constant(null)) as fc.Arbitrary<JsonValue>,
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

// Rows that are nearly right (role columns holding odd values, quotes in odd places,
// ragged rows) mixed with plain garbage; or raw bytes, gzip included.
function garbageArb(): fc.Arbitrary<Buffer> {
  const header = fc.shuffledSubarray(["id", "text", "image", "label", "source", "annotations", "x"], {
    minLength: 1,
  });
  const cell = fc.oneof(
    fc.constantFrom(
      "",
      ".",
      "/",
      '"',
      '""',
      '"a,b"',
      '"open',
      'mid"quote',
      "[]",
      '[{"annotator":"a","label":1}]',
      "iVBORw0KGgo=",
      "12",
      "cat",
    ),
    fc.string({ unit: "binary", maxLength: 12 }),
  );
  const row = fc.array(cell, { maxLength: 8 }).map((cells) => cells.join(","));
  const text = fc
    .tuple(header, fc.array(row, { maxLength: 8 }), fc.constantFrom("\n", "\r\n", "\r"), fc.boolean())
    .map(([h, rows, eol, bom]) =>
      Buffer.from((bom ? "\uFEFF" : "") + [h.join(","), ...rows].join(eol), "utf8"),
    );
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
