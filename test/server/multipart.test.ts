// The streaming multipart reader on its own: whatever the chunking of the body, it yields the
// same fields and the same file bytes on disk; a file name that could leave its directory, a
// part the route does not read, a field given twice, a body over the limit or cut short are
// each refused (400 or 413) with nothing written outside the upload directory.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpError } from "../../src/server/errors.js";
import {
  checkUploadName,
  checkUploadPath,
  readMultipart,
  type MultipartOptions,
} from "../../src/server/multipart.js";

const BOUNDARY = "----antidote-test-7d1f";
const TYPE = `multipart/form-data; boundary=${BOUNDARY}`;
let root: string;

beforeAll(() => void (root = mkdtempSync(join(tmpdir(), "antidote-multipart-"))));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Part = { name: string; value: string | Buffer; filename?: string };

function body(parts: Part[], boundary = BOUNDARY): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename === undefined ? "" : `; filename="${p.filename}"`}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n`));
    if (p.filename !== undefined) chunks.push(Buffer.from("Content-Type: application/octet-stream\r\n"));
    chunks.push(Buffer.from("\r\n"), Buffer.from(p.value), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

function stream(bytes: Buffer, cuts: number[] = []): ReadableStream<Uint8Array> {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    pieces.push(bytes.subarray(at, p));
    at = p;
  }
  return new ReadableStream({
    pull(controller) {
      const next = pieces.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(new Uint8Array(next));
    },
  });
}

function uploadDir(): { dir: string; options: (extra?: Partial<MultipartOptions>) => MultipartOptions } {
  const dir = mkdtempSync(join(root, "u-"));
  mkdirSync(join(dir, "data"));
  return {
    dir,
    options: (extra = {}) => ({
      files: { data: { dir: join(dir, "data"), maxCount: 4 } },
      fields: ["source", "name"],
      maxBytes: 1 << 20,
      ...extra,
    }),
  };
}

async function refusal(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(HttpError);
  const { status, message } = e as HttpError;
  return { status, message };
}

describe("readMultipart", () => {
  // Bytes that look like a boundary, CRLFs and dashes inside the file: only the real delimiter ends it.
  const tricky = Buffer.concat([
    Buffer.from(`--${BOUNDARY.slice(0, 10)}\r\n\r\n--\r\n`),
    Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256)),
    Buffer.from(`\r\n--${BOUNDARY.slice(0, -1)}`),
  ]);

  it("yields the same fields and file bytes however the body is chunked", async () => {
    const bytes = body([
      { name: "source", value: "acme" },
      { name: "data", filename: "a.bin", value: tricky },
      { name: "data", filename: "empty.csv", value: "" },
      { name: "name", value: "fm ✓" },
    ]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 40 }), async (cuts) => {
        const { dir, options } = uploadDir();
        const form = await readMultipart(stream(bytes, cuts), TYPE, options());
        expect(form.fields).toEqual({ source: "acme", name: "fm ✓" });
        expect(form.files.map((f) => [f.field, f.filename, f.size])).toEqual([
          ["data", "a.bin", tricky.length],
          ["data", "empty.csv", 0],
        ]);
        expect(readFileSync(join(dir, "data", "a.bin")).equals(tricky)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("refuses path-like and hidden file names, writing nothing", async () => {
    for (const name of [
      "../x",
      "a/b",
      "..\\x",
      "a\\b",
      "..",
      ".env",
      "a\u0000b",
      "x".repeat(256),
      "é".repeat(128),
    ]) {
      expect(checkUploadName(name)).toBeDefined();
      const { dir, options } = uploadDir();
      const r = await refusal(
        readMultipart(stream(body([{ name: "data", filename: name, value: "evil" }])), TYPE, options()),
      );
      expect(r.status).toBe(400);
      expect(readdirSync(join(dir, "data"))).toEqual([]);
      expect(readdirSync(dir)).toEqual(["data"]);
    }
    expect(checkUploadName("delivery.parquet")).toBeUndefined();
    expect(checkUploadName("x".repeat(255))).toBeUndefined();
  });

  it("takes a directory delivery's nested names where the field allows them, each segment checked", async () => {
    for (const name of [
      "../x",
      "a/../../x",
      "/abs",
      "a//b",
      "a/",
      "a/.git/x",
      "a\\b/c",
      "a/b\u0000",
      "d/".repeat(8) + "x",
    ])
      expect(checkUploadPath(name)).toBeDefined();
    const { dir, options } = uploadDir();
    const nested = options({ files: { data: { dir: join(dir, "data"), maxCount: 4, nested: true } } });
    const form = await readMultipart(
      stream(
        body([
          { name: "data", filename: "train/Bag/0.png", value: "png" },
          { name: "data", filename: "train/Coat/1.png", value: "png2" },
        ]),
      ),
      TYPE,
      nested,
    );
    expect(form.files.map((f) => f.filename)).toEqual(["train/Bag/0.png", "train/Coat/1.png"]);
    expect(readFileSync(join(dir, "data", "train", "Coat", "1.png"), "utf8")).toBe("png2");
    const r = await refusal(
      readMultipart(stream(body([{ name: "data", filename: "a/../../x", value: "evil" }])), TYPE, nested),
    );
    expect(r.status).toBe(400);
    expect(readdirSync(dir)).toEqual(["data"]);
  });

  it("refuses parts the route does not read, fields given twice, a file given twice", async () => {
    const cases: [Part[], RegExp][] = [
      [[{ name: "evil", value: "x" }], /form field "evil" is not one this route reads/],
      [[{ name: "other", filename: "a.csv", value: "x" }], /file field "other"/],
      [
        [
          { name: "source", value: "a" },
          { name: "source", value: "b" },
        ],
        /given twice/,
      ],
      [
        [
          { name: "data", filename: "a.csv", value: "1" },
          { name: "data", filename: "a.csv", value: "2" },
        ],
        /given twice/,
      ],
    ];
    for (const [parts, message] of cases) {
      const r = await refusal(readMultipart(stream(body(parts)), TYPE, uploadDir().options()));
      expect([r.status, r.message]).toEqual([400, expect.stringMatching(message)]);
    }
  });

  it("stops at the size limit (413) and refuses a body cut short or without a boundary (400)", async () => {
    const big = body([{ name: "data", filename: "big.bin", value: Buffer.alloc(200_000, 1) }]);
    const { options } = uploadDir();
    expect(
      (await refusal(readMultipart(stream(big, [1000, 5000]), TYPE, options({ maxBytes: 100_000 })))).status,
    ).toBe(413);
    const cut = big.subarray(0, big.length - 20);
    expect((await refusal(readMultipart(stream(cut), TYPE, uploadDir().options()))).message).toMatch(
      /ends before/,
    );
    expect(
      (await refusal(readMultipart(stream(big), "multipart/form-data", uploadDir().options()))).status,
    ).toBe(400);
    const stranger = body([{ name: "source", value: "x" }], "other-boundary");
    expect((await refusal(readMultipart(stream(stranger), TYPE, uploadDir().options()))).status).toBe(400);
  });

  it("lets the route refuse as soon as a field arrives, before reading the files", async () => {
    const { dir, options } = uploadDir();
    const bytes = body([
      { name: "source", value: "mallory" },
      { name: "data", filename: "a.csv", value: "x" },
    ]);
    const r = await refusal(
      readMultipart(
        stream(bytes),
        TYPE,
        options({
          onField: (name, value) => {
            if (name === "source" && value !== "acme") throw new HttpError(403, "FORBIDDEN", "not yours");
          },
        }),
      ),
    );
    expect(r.status).toBe(403);
    expect(readdirSync(join(dir, "data"))).toEqual([]);
  });
});
