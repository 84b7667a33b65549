import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleDigest, type Sample } from "../../src/data/sample.js";
import { scanTableFromSamples } from "../../src/detect/table.js";
import type { ScanTable } from "../../src/detect/types.js";
import { encodeNpyHeader } from "../../src/robust/npy.js";
import { buildRepresentation, readUserMatrix } from "../../src/scan/representation.js";
import { spamAssassinSamples } from "../helpers/real-data.js";
import { antidoteFailure } from "../helpers/errors.js";

// User-supplied features and probabilities on 400 real SpamAssassin emails: how they are matched
// to samples, and that every mistake names the file, the row (and its sample) and the column.

let dir: string;
let emails: Sample[];
let table: ScanTable;
const n = 400;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-rep-"));
  emails = spamAssassinSamples(n);
  table = scanTableFromSamples(emails, { classes: ["ham", "spam"] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function npy(
  name: string,
  rows: number,
  cols: number,
  fill: (i: number, j: number) => number,
  f64 = false,
): string {
  const header = encodeNpyHeader(f64 ? "F64" : "F32", [rows, cols]);
  const body = Buffer.alloc(rows * cols * (f64 ? 8 : 4));
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++)
      if (f64) body.writeDoubleLE(fill(i, j), (i * cols + j) * 8);
      else body.writeFloatLE(fill(i, j), (i * cols + j) * 4);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([header, body]));
  return path;
}

function csv(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

const failure = antidoteFailure;

// A model's probabilities: right with confidence 0.9 on every label.
const probOf = (i: number, j: number) => (j === table.labels[i] ? 0.9 : 0.1);

describe("user features and probabilities", () => {
  it("reads float32 and float64 .npy by row order, and trains a linear probe when only features are given", async () => {
    const f32 = npy("f32.npy", n, 3, (i, j) => (j === 0 ? (table.labels[i] as number) : i * 0.001 + j));
    const f64 = npy("f64.npy", n, 3, (i, j) => (j === 0 ? (table.labels[i] as number) : i * 0.001 + j), true);
    const a = readUserMatrix(f32, "--features");
    const b = readUserMatrix(f64, "--features");
    expect([a.rows, a.cols, b.rows, b.cols]).toEqual([n, 3, n, 3]);
    expect(Array.from(a.data.subarray(0, 6))).toEqual(Array.from(b.data.subarray(0, 6)));

    const rep = await buildRepresentation(table, emails, { features: f32 });
    expect(rep.featureDims).toBe(3);
    expect(rep.summary.features).toMatchObject({ dims: 3, matchedBy: "row order" });
    // Column 0 is the label itself: the out-of-sample probe must find it.
    expect(rep.summary.probabilities?.from).toMatch(/linear probe on --features/);
    expect(rep.summary.probabilities?.accuracy).toBeGreaterThan(0.95);
  });

  it("matches a CSV with an id column by id, in any row order, and reorders class-named columns", async () => {
    const order = Array.from({ length: n }, (_, i) => n - 1 - i); // reversed
    const path = csv("probs.csv", [
      "id,spam,ham",
      ...order.map((i) => `${table.ids[i]},${probOf(i, 1)},${probOf(i, 0)}`),
    ]);
    const rep = await buildRepresentation(table, emails, { predProbs: path });
    expect(rep.summary.probabilities).toMatchObject({ matchedBy: "id", accuracy: 1 });
    for (let i = 0; i < n; i++) {
      expect(rep.probs![i * 2 + (table.labels[i] as number)]).toBeCloseTo(0.9, 6);
      expect(rep.probs![i * 2 + 1 - (table.labels[i] as number)]).toBeCloseTo(0.1, 6);
    }
    expect(rep.summary.warnings).toEqual([]);
  });

  it("renormalises rows that do not sum to 1, with a warning naming the worst row", async () => {
    const path = npy("unnormalised.npy", n, 2, (i, j) => probOf(i, j) * (i === 7 ? 3 : i === 8 ? 1.2 : 1));
    const rep = await buildRepresentation(table, emails, { predProbs: path });
    expect(rep.summary.warnings.join(" ")).toMatch(
      new RegExp(
        `2 of ${n} rows did not sum to 1 \\(largest deviation 2\\.00, row 8, sample "${table.ids[7]}"\\)`,
      ),
    );
    expect(rep.probs![7 * 2]! + rep.probs![7 * 2 + 1]!).toBeCloseTo(1, 6);
  });

  it("builds the text proxy when nothing is given", async () => {
    const rep = await buildRepresentation(table, emails, { seed: 1 });
    expect(rep.summary.probabilities?.from).toMatch(/TF-IDF/);
    expect(rep.summary.probabilities?.accuracy).toBeGreaterThan(0.85); // 400 emails: measured ≈ 0.94
    expect(rep.probs).toHaveLength(n * 2);
    expect(rep.features).toBeUndefined();
  });
});

describe("user mistakes", () => {
  it("a row count that differs names both counts", async () => {
    const path = npy("short.npy", n - 1, 4, () => 0.5);
    const e = await failure(buildRepresentation(table, emails, { features: path }));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(
      new RegExp(`--features .*short\\.npy: ${n - 1} rows, but the dataset has ${n} samples`),
    );
  });

  it("NaN and infinity name the row, its sample and the column", async () => {
    const nan = npy("nan.npy", n, 4, (i, j) => (i === 41 && j === 2 ? NaN : 1));
    let e = await failure(buildRepresentation(table, emails, { features: nan }));
    expect(e.code).toBe("ROW_MALFORMED");
    expect(e.message).toContain(`nan.npy: row 42 (sample "${table.ids[41]}"), column 2 is NaN`);
    const inf = csv("inf.csv", ["a,b", ...Array.from({ length: n }, (_, i) => (i === 3 ? "1,-inf" : "1,2"))]);
    e = await failure(buildRepresentation(table, emails, { features: inf }));
    expect(e.message).toContain(`inf.csv: row 4 (sample "${table.ids[3]}"), column "b" is -Infinity`);
  });

  it("a probability width that is not the class count names both", async () => {
    const path = npy("wide.npy", n, 3, () => 1 / 3);
    const e = await failure(buildRepresentation(table, emails, { predProbs: path }));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(
      /wide\.npy: 3 columns of probabilities, but the dataset has 2 classes \(ham, spam\)/,
    );
  });

  it("logits, a missing id, a non-number cell, a missing file, a bad dtype", async () => {
    const logits = npy("logits.npy", n, 2, (i, j) => (j === 0 ? -2 : 2));
    let e = await failure(buildRepresentation(table, emails, { predProbs: logits }));
    expect(e.message).toMatch(
      /row 1 .* probabilities cannot be negative \(pass softmax\(logits\), not logits\)/,
    );

    const missing = csv("missing.csv", ["id,x", ...table.ids.slice(1).map((id) => `${id},1`)]);
    e = await failure(buildRepresentation(table, emails, { features: missing }));
    expect(e.message).toContain(`1 of the dataset's ${n} samples have no row (first: "${table.ids[0]}")`);

    const word = csv("word.csv", ["x,y", "1,2", "3,abc"]);
    e = await failure(buildRepresentation(table, emails, { features: word }));
    expect(e).toEqual({
      code: "ROW_MALFORMED",
      message: `--features ${word}:3: column "y" is "abc", not a number.`,
    });

    e = await failure(buildRepresentation(table, emails, { features: join(dir, "nope.npy") }));
    expect(e.code).toBe("FILE_NOT_FOUND");

    const ints = join(dir, "ints.npy");
    writeFileSync(
      ints,
      Buffer.concat([
        Buffer.from(encodeNpyHeader("F32", [2, 2]).toString("latin1").replace("<f4", "<i4"), "latin1"),
        Buffer.alloc(16),
      ]),
    );
    e = await failure(buildRepresentation(table, emails, { features: ints }));
    expect(e.message).toMatch(/dtype '<i4' is not supported: save float32 or float64/);
  });

  it("one class only is refused for probabilities; a handful of samples in a class is a warning", async () => {
    const hamOnly = emails.filter((s) => s.label === "ham").slice(0, 50);
    const t = scanTableFromSamples(hamOnly, { classes: ["ham"] });
    const path = npy("one.npy", 50, 1, () => 1);
    const e = await failure(buildRepresentation(t, hamOnly, { predProbs: path }));
    expect(e.code).toBe("USAGE");
    expect(e.message).toMatch(/labels have one class only \(ham\)/);
    const rep = await buildRepresentation(t, hamOnly, {});
    expect(rep.probs).toBeUndefined();
    expect(rep.summary.warnings.join(" ")).toMatch(/one class only/);

    const few = [...hamOnly, ...emails.filter((s) => s.label === "spam").slice(0, 4)];
    const t2 = scanTableFromSamples(few, { classes: ["ham", "spam"] });
    const rep2 = await buildRepresentation(t2, few, { predProbs: npy("few.npy", few.length, 2, () => 0.5) });
    expect(rep2.summary.warnings.join(" ")).toMatch(/class "spam" \(4\) has fewer than 10 labeled samples/);
  });

  it("--model on a text dataset is refused: models read images", async () => {
    const e = await failure(buildRepresentation(table, emails, { model: "m.onnx" }));
    expect(e).toMatchObject({ code: "USAGE" });
    expect(e.message).toMatch(/--model m\.onnx: sample ".*" has no image/);
  });
});

// The image proxy: the CNN joins the MLP only where it can, and says why when it cannot.
describe("the image proxy on images the CNN cannot take", () => {
  function images(count: number, size: (i: number) => number): Sample[] {
    return Array.from({ length: count }, (_, i) => {
      const side = size(i);
      const data = new Float32Array(side * side).map((_, p) => ((i * 7 + p * 3) % 11) / 10);
      const image = { height: side, width: side, channels: 1, data };
      return {
        id: `img-${i}`,
        digest: sampleDigest({ image }),
        label: i % 2 === 0 ? "a" : "b",
        image,
        source: null,
        annotations: [],
        metadata: {},
      };
    });
  }

  it("uses the MLP alone on 3×3 images, and says so", async () => {
    const samples = images(60, () => 3);
    const rep = await buildRepresentation(scanTableFromSamples(samples, { classes: ["a", "b"] }), samples);
    expect(rep.summary.probabilities?.kind).toBe("image-proxy");
    expect(rep.summary.probabilities?.from).not.toMatch(/CNN/);
    expect(rep.summary.warnings.join("\n")).toMatch(
      /the image proxy is the MLP alone \(no CNN: images of 3×3 are too small for its two 2× poolings/,
    );
  });

  it("names the first image whose shape differs (same pixel count, other sides)", async () => {
    // 36 values each: 6×6, and one 4×9 — the MLP can still take it, the CNN cannot.
    const samples = images(40, () => 6);
    samples[17] = {
      ...samples[17]!,
      image: { height: 4, width: 9, channels: 1, data: new Float32Array(36) },
    };
    const rep = await buildRepresentation(scanTableFromSamples(samples, { classes: ["a", "b"] }), samples);
    expect(rep.summary.warnings.join("\n")).toMatch(/no CNN: sample "img-17" is 4×9×1, the first 6×6×1/);
  });

  it("--image-proxy mlp: the MLP alone, without a warning", async () => {
    const samples = images(60, () => 8);
    const rep = await buildRepresentation(scanTableFromSamples(samples, { classes: ["a", "b"] }), samples, {
      imageProxy: "mlp",
    });
    expect(rep.summary.probabilities?.from).not.toMatch(/CNN/);
    expect(rep.summary.warnings).toEqual([]);
  });
});
