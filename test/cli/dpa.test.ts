// `antidote dpa partition|certify` as a user runs it: a child process per command, real
// Fashion-MNIST images for the partition, hand-computed vote tables for the certificate,
// and one clear line (file, row, column) for each kind of bad input.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, memoryDataset } from "../../src/data/memory.js";
import { convertDataset } from "../../src/data/convert.js";
import { openDataset } from "../../src/data/open.js";
import { partitionOf } from "../../src/robust/dpa-partition.js";
import { antidote, expectUserError } from "../helpers/cli.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-dpa-cli-"));
  // 600 real training images as an IDX file: the input of the partition tests.
  const samples = fashionMnistSamples(600);
  await convertDataset(
    memoryDataset(samples, { classes: [...FASHION_MNIST_CLASSES], labelKind: "string" }),
    join(dir, "fm-images-idx3-ubyte.gz"),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote dpa partition", () => {
  it("partitions real images into K files and an index that recomputes", async () => {
    const input = join(dir, "fm-images-idx3-ubyte.gz");
    const out = join(dir, "parts");
    const r = await antidote([
      "dpa",
      "partition",
      input,
      "--k",
      "4",
      "--out",
      out,
      "--to",
      "jsonl",
      "--json",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { k: number; samples: number; sizes: number[]; files: string[] };
    expect(summary.k).toBe(4);
    expect(summary.samples).toBe(600);
    expect(summary.files).toEqual([0, 1, 2, 3].map((p) => join(out, `part-00${p}.jsonl`)));

    const index = parse<{ id: string; digest: string; partition: string }>(
      readFileSync(join(out, "partitions.csv"), "utf8"),
      { columns: true },
    );
    const source = await collect(await openDataset(input));
    expect(index.map((row) => [row.id, row.digest])).toEqual(source.map((s) => [s.id, s.digest]));
    for (const row of index) expect(Number(row.partition)).toBe(partitionOf(row.digest, 4));

    for (const [p, file] of summary.files.entries()) {
      const part = await collect(await openDataset(file));
      expect(part.length).toBe(summary.sizes[p]);
      expect(part.length).toBe(index.filter((row) => row.partition === String(p)).length);
      expect(new Set(part.map((s) => s.label)).size).toBe(10);
    }
  });

  it("prints a summary with sizes against the binomial expectation, and warns about thin classes", async () => {
    const r = await antidote([
      "dpa",
      "partition",
      join(dir, "fm-images-idx3-ubyte.gz"),
      "--k",
      "30",
      "--out",
      join(dir, "thin"),
      "--to",
      "idx",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote 600 samples into 30 partitions/);
    expect(r.stdout).toMatch(/partition sizes: min \d+, median \d+(\.5)?, max \d+ \(expected 20\.0 ± 4\.4\)/);
    expect(r.stderr).toMatch(/^warning: 30 of 30 partitions hold fewer than 10 samples of some class/m);
    expect(existsSync(join(dir, "thin", "part-029-images-idx3-ubyte"))).toBe(true);
    const part = await collect(await openDataset(join(dir, "thin", "part-000-images-idx3-ubyte")));
    expect(part.every((s) => partitionOf(s.digest, 30) === 0)).toBe(true);
  });

  it("rejects K outside 2 … 10,000 and a directory holding an earlier run", async () => {
    const input = join(dir, "fm-images-idx3-ubyte.gz");
    const [tooMany, again] = await Promise.all([
      antidote(["dpa", "partition", input, "--k", "10001", "--out", join(dir, "bad")]),
      antidote(["dpa", "partition", input, "--k", "3", "--out", join(dir, "parts")]),
    ]);
    expectUserError(tooMany, 2, /antidote: --k: Too big: expected number to be <=10000/);
    expectUserError(again, 2, /parts: already holds partitions .*--overwrite/);
  });
});

// K = 5 models, classes a, b, c. Votes (5,0,0) ρ2 ✓; (3,1,1) ρ1 ✓; (2,2,1) → a, label b ✗; (1,3,1) ρ0 ✓.
const TABLE = [
  ["p0", "a", "a", "a", "a", "a", "a"],
  ["p1", "a", "a", "b", "a", "c", "a"],
  ["p2", "b", "b", "a", "a", "b", "c"],
  ["p3", "b", "b", "a", "b", "b", "c"],
];
const EXPECTED_CURVE = [
  { radius: 0, certifiedAccuracy: 0.75, certified: 3 },
  { radius: 1, certifiedAccuracy: 0.5, certified: 2 },
  { radius: 2, certifiedAccuracy: 0.25, certified: 1 },
];

function writeCsv(name: string, header: string[], rows: string[][], delimiter = ","): string {
  const file = join(dir, name);
  writeFileSync(file, [header, ...rows].map((r) => r.join(delimiter)).join("\n") + "\n");
  return file;
}

/** A NumPy .npy file (format 1.0), C order. */
function writeNpy(name: string, descr: string, shape: number[], values: number[]): string {
  const bytes = Number(descr.slice(2));
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const body = Buffer.alloc(values.length * bytes);
  values.forEach((v, i) => {
    if (descr === "<i8") body.writeBigInt64LE(BigInt(v), i * 8);
    else if (descr === "|u1") body.writeUInt8(v, i);
    else if (descr === "<f8") body.writeDoubleLE(v, i * 8);
    else body.writeInt32LE(v, i * 4);
  });
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  const file = join(dir, name);
  writeFileSync(file, Buffer.concat([head, Buffer.from(header, "latin1"), body]));
  return file;
}

const header = ["id", "label", "model_0", "model_1", "model_2", "model_3", "model_4"];

describe("antidote dpa certify", () => {
  it("certifies a CSV of class names: the hand-computed curve, table and per-point file", async () => {
    const file = writeCsv(
      "votes.csv",
      [...header, "note"],
      TABLE.map((r) => [...r, "x"]),
    );
    const out = join(dir, "cert", "certify.json");
    const r = await antidote([
      "dpa",
      "certify",
      file,
      "--prediction-columns",
      "model_",
      "--classes",
      "a,b,c",
      "--k",
      "5",
      "--out",
      out,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/K = 5 models on 4 points, 3 classes: accuracy 75\.0%/);
    expect(r.stdout).toMatch(/single models: mean 65\.0%, 25\.0%–100\.0%/);
    expect(r.stdout).toMatch(/median certified radius: 1 inserted or deleted training samples/);
    expect(r.stdout).toMatch(/^0 +75\.0% +3$/m);
    expect(r.stdout).toMatch(/^2 +25\.0% +1$/m);
    const written = JSON.parse(readFileSync(out, "utf8")) as {
      curve: unknown;
      certificates: { id: string; prediction: number; radius: number; votes: number[]; correct: boolean }[];
    };
    expect(written.curve).toEqual(EXPECTED_CURVE);
    expect(written.certificates.map((p) => [p.id, p.prediction, p.radius, p.correct])).toEqual([
      ["p0", 0, 2, true],
      ["p1", 0, 1, true],
      ["p2", 0, 0, false],
      ["p3", 1, 0, true],
    ]);
    expect(written.certificates[2]?.votes).toEqual([2, 2, 1]);
  });

  it("reads .npy predictions with --labels", async () => {
    const preds = TABLE.flatMap(([, , ...p]) => p.map((v) => "abc".indexOf(v)));
    const labels = TABLE.map(([, l]) => "abc".indexOf(l ?? ""));
    const p = writeNpy("preds.npy", "<i8", [4, 5], preds);
    const l = writeNpy("labels.npy", "|u1", [4], labels);
    const r = await antidote(["dpa", "certify", p, "--labels", l, "--classes", "a,b,c", "--json"]);
    expect(r.stderr).toBe("");
    const c = JSON.parse(r.stdout) as { curve: unknown; classes: string[]; predictionColumns: string[] };
    expect(c.curve).toEqual(EXPECTED_CURVE);
    expect(c.classes).toEqual(["a", "b", "c"]);
    expect(c.predictionColumns).toEqual(["0", "1", "2", "3", "4"]);
  });

  it("names the file and row of bad input, and asks for --labels with .npy predictions", async () => {
    const ragged = writeCsv("ragged.csv", header, [...TABLE.slice(0, 2), ["p2", "b", "a", "a"]]);
    const p = writeNpy("lonely.npy", "<i4", [2, 3], [0, 1, 2, 1, 1, 0]);
    const [bad, lonely] = await Promise.all([
      antidote(["dpa", "certify", ragged]),
      antidote(["dpa", "certify", p]),
    ]);
    expectUserError(bad, 3, /ragged\.csv:4: 4 fields, but the header has 7/);
    expectUserError(lonely, 2, /lonely\.npy: \.npy predictions need --labels/);
  });
});
