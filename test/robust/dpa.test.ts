// Deep Partition Aggregation: the vote certificate against hand-computed tables and a
// brute-force adversary, the content-hash partition on real Fashion-MNIST (stability under
// insertions and deletions, balance, duplicates), and DPA end to end with nearest-centroid
// models trained on real partitions.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, memoryDataset } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import type { Sample } from "../../src/data/sample.js";
import { isAntidoteError } from "../../src/errors.js";
import {
  certify,
  certifyVoteTable,
  countVotes,
  dpaVote,
  DpaCertifier,
  partitionDataset,
  partitionOf,
  openVoteTable,
  type PartitionSummary,
  type VoteTableOptions,
} from "../../src/robust/dpa.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-dpa-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fmInfo = { classes: [...FASHION_MNIST_CLASSES], labelKind: "string" as const };

function partitionsCsv(summary: PartitionSummary): Map<string, { digest: string; partition: number }> {
  const rows = parse<Record<string, string>>(readFileSync(summary.partitionsCsv, "utf8"), { columns: true });
  return new Map(rows.map((r) => [r.id ?? "", { digest: r.digest ?? "", partition: Number(r.partition) }]));
}

describe("DPA vote and certified radius", () => {
  // [votes per class, prediction, radius], worked by hand from ρ = ⌊(n_top − max_{c≠top}(n_c + 1[c<top]))/2⌋.
  const cases: [string, number[], number, number][] = [
    ["K=5 (3,1,1): top 0 beats both rivals by 2", [3, 1, 1], 0, 1],
    ["K=5 (2,2,1): tie goes to the smaller index, no margin", [2, 2, 1], 0, 0],
    ["K=5 (5,0,0): unanimous for class 0", [5, 0, 0], 0, 2],
    ["K=5 (1,3,1): runner-up class 0 has a smaller index, so needs one vote less", [1, 3, 1], 1, 0],
    ["K=5 (0,4,1): the +1 for class 0 ties with class 2's one vote", [0, 4, 1], 1, 1],
    ["K=5 (0,0,5): unanimous for the last class", [0, 0, 5], 2, 2],
    ["K=4 (4,0,0): even K, unanimous for class 0", [4, 0, 0], 0, 2],
    ["K=4 (0,0,4): even K, unanimous for class 2 — one less", [0, 0, 4], 2, 1],
    ["K=6 (3,3): even tie goes to class 0", [3, 3], 0, 0],
    ["K=6 (4,2)", [4, 2], 0, 1],
    ["K=6 (2,4): class 0 would win a tie", [2, 4], 1, 0],
    ["K=6 (6,0)", [6, 0], 0, 3],
    ["K=6 (0,6)", [0, 6], 1, 2],
    ["K=10 (6,4)", [6, 4], 0, 1],
    ["K=10 (4,6)", [4, 6], 1, 0],
  ];
  it.each(cases)("%s", (_name, votes, prediction, radius) => {
    expect(dpaVote(votes)).toEqual({ prediction, radius });
  });

  // The certificate is exact: changing any ρ models' predictions cannot change the vote, and
  // some change of ρ + 1 can. Checked against every vote table for small K, by brute force
  // over all pairs of prediction vectors, with an independent plurality.
  it.each([
    [2, 8],
    [3, 6],
    [4, 4],
  ])("matches a brute-force adversary for %i classes and K = 1 … %i", (classes, maxK) => {
    for (let k = 1; k <= maxK; k++) {
      const all = allAssignments(k, classes);
      const winner = all.map((a) => plurality(a, classes));
      for (let i = 0; i < all.length; i++) {
        let distance = Infinity;
        for (let j = 0; j < all.length; j++) {
          if (winner[j] !== winner[i]) distance = Math.min(distance, hamming(all[i] ?? [], all[j] ?? []));
        }
        const vote = dpaVote(countVotes(all[i] ?? [], classes));
        expect(vote.prediction).toBe(winner[i]);
        expect(vote.radius, `K=${k} predictions ${all[i]?.join(",")}`).toBe(distance - 1);
      }
    }
  });

  it("builds the certified accuracy curve, median radius and single-model accuracy", () => {
    // votes: (5,0,0) ρ2 correct; (3,1,1) ρ1 correct; (2,2,1) predicts 0, label 1: wrong; (1,3,1) ρ0 correct
    const predictions = [
      [0, 0, 0, 0, 0],
      [0, 1, 0, 2, 0],
      [1, 0, 0, 1, 2],
      [1, 0, 1, 1, 2],
    ];
    const { certification: c, points } = certify(predictions, [0, 0, 1, 1], ["a", "b", "c"]);
    expect(points.map((p) => [p.prediction, p.radius, p.correct])).toEqual([
      [0, 2, true],
      [0, 1, true],
      [0, 0, false],
      [1, 0, true],
    ]);
    expect(points[1]?.votes).toEqual([3, 1, 1]);
    expect(c.curve).toEqual([
      { radius: 0, certifiedAccuracy: 0.75, certified: 3 },
      { radius: 1, certifiedAccuracy: 0.5, certified: 2 },
      { radius: 2, certifiedAccuracy: 0.25, certified: 1 },
    ]);
    expect(c.accuracy).toBe(0.75);
    expect(c.medianRadius).toBe(1);
    // per model correct: 4, 1, 3, 3, 2 of 4
    expect(c.modelAccuracy).toEqual({ mean: 0.65, min: 0.25, max: 1 });
  });

  it("has no median radius when fewer than half the points are correct", () => {
    const c = new DpaCertifier(3, ["a", "b"]);
    c.add("x", 1, [0, 0, 0]);
    c.add("y", 0, [0, 0, 1]);
    c.add("z", 1, [0, 0, 0]);
    expect(c.result().accuracy).toBeCloseTo(1 / 3);
    expect(c.result().medianRadius).toBeNull();
  });

  it("rejects predictions outside the class range and rows of the wrong length", () => {
    const c = new DpaCertifier(3, ["a", "b"]);
    expect(() => c.add("p", 0, [0, 2, 1])).toThrow(/model 1 predicts 2, outside the class range 0–1/);
    expect(() => c.add("p", 0, [0, 1])).toThrow(/point p: 2 predictions, expected K = 3/);
  });
});

describe("DPA partition by content hash", () => {
  it("is the documented hash: first 8 bytes of SHA-256('antidote-dpa:' + digest) mod K", () => {
    // Recomputed with two 32-bit halves instead of a 64-bit integer: hi·2^32 + lo ≡ (hi mod K)(2^32 mod K) + lo.
    const samples = fashionMnistSamples(300);
    for (const k of [2, 3, 7, 10, 1000, 9973, 10_000]) {
      for (const s of samples) {
        const h = createHash("sha256").update(`antidote-dpa:${s.digest}`).digest();
        const expected = ((((h.readUInt32BE(0) % k) * (2 ** 32 % k)) % k) + (h.readUInt32BE(4) % k)) % k;
        expect(partitionOf(s.digest, k)).toBe(expected);
      }
    }
  });

  it("keeps every remaining sample's partition when 10% are removed and new ones added (real Fashion-MNIST)", async () => {
    const base = fashionMnistSamples(3000);
    const kept = base.filter((_, i) => i % 10 !== 3);
    const added = fashionMnistSamples(300, "t10k");
    const before = await partitionDataset(memoryDataset(base, fmInfo), {
      k: 10,
      outDir: join(dir, "stable-before"),
      format: "jsonl",
    });
    const after = await partitionDataset(memoryDataset([...added, ...[...kept].reverse()], fmInfo), {
      k: 10,
      outDir: join(dir, "stable-after"),
      format: "jsonl",
    });
    const b = partitionsCsv(before);
    const a = partitionsCsv(after);
    expect(a.size).toBe(3000 - 300 + 300);
    let compared = 0;
    for (const s of kept) {
      expect(a.get(s.id)).toEqual(b.get(s.id));
      compared++;
    }
    expect(compared).toBe(2700);
    // The new samples changed only their own partitions' sizes.
    const grown = new Array<number>(10).fill(0);
    for (const s of added) bump(grown, a.get(s.id)?.partition);
    const removed = new Array<number>(10).fill(0);
    base.forEach((s, i) => i % 10 === 3 && bump(removed, b.get(s.id)?.partition));
    expect(after.sizes).toEqual(before.sizes.map((n, p) => n - (removed[p] ?? 0) + (grown[p] ?? 0)));
  });

  it("writes each sample to the partition partitions.csv names, and only there", async () => {
    const samples = fashionMnistSamples(2000);
    const summary = await partitionDataset(memoryDataset(samples, fmInfo), {
      k: 7,
      outDir: join(dir, "files"),
      format: "parquet",
    });
    const index = partitionsCsv(summary);
    const byId = new Map(samples.map((s) => [s.id, s]));
    let total = 0;
    for (const [p, file] of summary.files.entries()) {
      expect(file).toBe(join(dir, "files", `part-00${p}.parquet`));
      const read = await collect(await openDataset(file));
      expect(read.length).toBe(summary.sizes[p]);
      for (const s of read) {
        expect(index.get(s.id)?.partition).toBe(p);
        expect(s.digest).toBe(byId.get(s.id)?.digest);
        expect(s.label).toBe(byId.get(s.id)?.label);
      }
      total += read.length;
    }
    expect(total).toBe(2000);
    expect(summary.sizes.reduce((x, y) => x + y, 0)).toBe(2000);
  });

  it("balances partition sizes within binomial tolerance (60,000 real training digests)", () => {
    const n = 60_000;
    const samples = fashionMnistSamples(n);
    for (const k of [10, 100]) {
      const sizes = new Array<number>(k).fill(0);
      for (const s of samples) bump(sizes, partitionOf(s.digest, k));
      const mean = n / k;
      const sd = Math.sqrt(n * (1 / k) * (1 - 1 / k));
      for (const size of sizes) expect(Math.abs(size - mean)).toBeLessThan(4.5 * sd);
      // χ² goodness of fit to uniform, below the 0.1% critical value (df 9: 27.88, df 99: 148.2)
      const chi2 = sizes.reduce((acc, size) => acc + (size - mean) ** 2 / mean, 0);
      expect(chi2).toBeLessThan(k === 10 ? 27.88 : 148.2);
    }
  });

  it("puts identical content in the same partition, whatever its id or label", async () => {
    const [first, ...rest] = fashionMnistSamples(200);
    if (first === undefined) throw new Error("no samples");
    const copies: Sample[] = FASHION_MNIST_CLASSES.map((label, i) => ({ ...first, id: `copy-${i}`, label }));
    const summary = await partitionDataset(memoryDataset([first, ...rest, ...copies], fmInfo), {
      k: 97,
      outDir: join(dir, "dups"),
      format: "jsonl",
    });
    const index = partitionsCsv(summary);
    const home = index.get(first.id)?.partition;
    for (const c of copies) expect(index.get(c.id)?.partition).toBe(home);
    const file = summary.files[home ?? -1] ?? "";
    const inHome = (await collect(await openDataset(file))).filter((s) => s.digest === first.digest);
    expect(inHome.map((s) => s.id).sort()).toEqual([first.id, ...copies.map((c) => c.id)].sort());
  });

  it("spools through temporary files for K above --max-open-writers, with the same output", async () => {
    const samples = fashionMnistSamples(600);
    const direct = await partitionDataset(memoryDataset(samples, fmInfo), {
      k: 12,
      outDir: join(dir, "direct"),
      format: "jsonl",
    });
    const spooled = await partitionDataset(memoryDataset(samples, fmInfo), {
      k: 12,
      outDir: join(dir, "spooled"),
      format: "jsonl",
      maxOpenWriters: 5,
    });
    expect(direct.spooled).toBe(false);
    expect(spooled.spooled).toBe(true);
    expect(spooled.sizes).toEqual(direct.sizes);
    for (let p = 0; p < 12; p++) {
      expect(readFileSync(spooled.files[p] ?? "")).toEqual(readFileSync(direct.files[p] ?? ""));
    }
    expect(readdirSync(join(dir, "spooled")).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("warns when partitions hold too few samples of a class, and writes empty partitions too", async () => {
    const samples = fashionMnistSamples(1000);
    const thin = await partitionDataset(memoryDataset(samples, fmInfo), {
      k: 40,
      outDir: join(dir, "thin"),
      format: "jsonl",
    });
    // 100 samples per class over 40 partitions: about 2.5 each, far below 10
    expect(thin.thinPartitions).toBe(40);
    expect(thin.warnings.join("\n")).toMatch(/40 of 40 partitions hold fewer than 10 samples of some class/);
    expect(thin.thinnest?.count).toBe(0);

    const wide = await partitionDataset(memoryDataset(samples, fmInfo), {
      k: 2,
      outDir: join(dir, "wide"),
      format: "jsonl",
    });
    expect(wide.warnings).toEqual([]);
    expect(wide.classes).toEqual([...FASHION_MNIST_CLASSES]);
    expect([wide.min, wide.max]).toEqual([Math.min(...wide.sizes), Math.max(...wide.sizes)]);

    const few = await partitionDataset(memoryDataset(samples.slice(0, 5), fmInfo), {
      k: 9,
      outDir: join(dir, "few"),
      format: "parquet",
    });
    expect(few.sizes.filter((n) => n === 0).length).toBeGreaterThanOrEqual(4);
    expect(few.warnings[0]).toMatch(/partitions are empty/);
    for (const f of few.files) expect(existsSync(f)).toBe(true);
  });

  it("validates K and refuses to mix with an earlier run's partitions unless asked", async () => {
    const data = memoryDataset(fashionMnistSamples(50), fmInfo);
    for (const k of [1, 10_001, 2.5]) {
      await expect(partitionDataset(data, { k, outDir: join(dir, "bad-k") })).rejects.toSatisfy(
        (e) => isAntidoteError(e) && e.code === "USAGE" && /^k: /.test(e.message),
      );
    }
    const out = join(dir, "again");
    await partitionDataset(data, { k: 12, outDir: out, format: "jsonl" });
    await expect(partitionDataset(data, { k: 3, outDir: out, format: "jsonl" })).rejects.toThrow(
      /already holds partitions.*--overwrite/,
    );
    const again = await partitionDataset(data, { k: 3, outDir: out, format: "jsonl", overwrite: true });
    expect(readdirSync(out).sort()).toEqual([
      "part-000.jsonl",
      "part-001.jsonl",
      "part-002.jsonl",
      "partitions.csv",
    ]);
    expect(again.samples).toBe(50);
  });
});

describe("DPA vote tables from files", () => {
  // The hand-computed table above, as users write it: K = 5 models, classes a, b, c.
  const TABLE = [
    ["p0", "a", "a", "a", "a", "a", "a"],
    ["p1", "a", "a", "b", "a", "c", "a"],
    ["p2", "b", "b", "a", "a", "b", "c"],
    ["p3", "b", "b", "a", "b", "b", "c"],
  ];
  const HEADER = ["id", "label", "model_0", "model_1", "model_2", "model_3", "model_4"];
  const CURVE = [0.75, 0.5, 0.25];
  const toIndex = (v: string | undefined) => "abc".indexOf(v ?? "");

  function writeTable(name: string, header: string[], rows: string[][], delimiter = ","): string {
    const file = join(dir, name);
    writeFileSync(file, [header, ...rows].map((r) => r.join(delimiter)).join("\n") + "\n");
    return file;
  }

  async function curveOf(file: string, options: VoteTableOptions = {}): Promise<number[]> {
    const c = await certifyVoteTable(await openVoteTable(file, options));
    return c.curve.map((p) => p.certifiedAccuracy);
  }

  async function failure(file: string, options: VoteTableOptions = {}): Promise<string> {
    try {
      await certifyVoteTable(await openVoteTable(file, options));
    } catch (e) {
      if (isAntidoteError(e)) return `${e.code} ${e.message}`;
      throw e;
    }
    throw new Error(`${file} was accepted`);
  }

  it("reads class names, inferring them in sorted order, from CSV and TSV", async () => {
    const csv = writeTable("names.csv", HEADER, TABLE);
    const table = await openVoteTable(csv);
    expect([table.k, table.classes, table.predictionColumns.length]).toEqual([5, ["a", "b", "c"], 5]);
    expect(await curveOf(csv)).toEqual(CURVE);
    // Names in another order change who wins ties: (2,2,1) on p2 now goes to b, and the
    // margins change with the +1 for smaller indices: p1 drops to ρ 0, p3 stays at ρ 1.
    expect(await curveOf(csv, { classes: ["b", "a", "c"] })).toEqual([1, 0.5, 0.25]);
    expect(await curveOf(writeTable("names.tsv", HEADER, TABLE, "\t"))).toEqual(CURVE);
  });

  it("reads class indices, and picks prediction columns by prefix or list", async () => {
    const rows = TABLE.map(([id, ...rest]) => [id ?? "", ...rest.map((v) => String(toIndex(v))), "9"]);
    const file = writeTable("indices.csv", ["name", "truth", "m0", "m1", "m2", "m3", "m4", "extra"], rows);
    const byList = { labelColumn: "truth", idColumn: "name", predictionColumns: "m0, m1,m2,m3,m4" };
    expect(await curveOf(file, byList)).toEqual(CURVE);
    expect(await curveOf(file, { labelColumn: "truth", predictionColumns: "m" })).toEqual(CURVE);
    const ids: string[] = [];
    await certifyVoteTable(await openVoteTable(file, byList), (p) => ids.push(p.id));
    expect(ids).toEqual(["p0", "p1", "p2", "p3"]);
    // With every other column as a prediction, "extra" is model 6 voting 9: ten classes inferred.
    const all = await openVoteTable(file, { labelColumn: "truth", idColumn: "name" });
    expect([all.k, all.classes.length]).toEqual([6, 10]);
  });

  it("reads .npy matrices of any integer width, or whole-valued floats", async () => {
    const preds = TABLE.flatMap(([, , ...p]) => p.map(toIndex));
    const labels = writeNpy(
      "labels.npy",
      "<i8",
      [4, 1],
      TABLE.map(([, l]) => toIndex(l)),
    );
    for (const descr of ["|u1", "<i2", "<i4", "<i8", ">i4", "<f4", "<f8"]) {
      const file = writeNpy(`preds-${descr.slice(1)}.npy`, descr, [4, 5], preds);
      expect(await curveOf(file, { labelsPath: labels })).toEqual(CURVE);
    }
  });

  it("names the file, row and column of what is wrong", async () => {
    const ok = writeTable("ok.csv", HEADER, TABLE);
    expect(await failure(ok, { k: 6 })).toMatch(
      /^INPUT_FORMAT .*ok\.csv: 5 prediction columns \(model_0, model_1, model_2, model_3, model_4\) but --k is 6/,
    );
    expect(await failure(ok, { labelColumn: "lable" })).toMatch(
      /^COLUMN_MISSING .*ok\.csv: no column "lable" for --label-column\. Did you mean "label"\?/,
    );
    expect(await failure(ok, { predictionColumns: "net_" })).toMatch(
      /^COLUMN_MISSING .*no column starts with "net_"/,
    );
    expect(await failure(ok, { predictionColumns: "model_0,label" })).toMatch(/is the label or id column/);

    const unknown = writeTable("unknown.csv", HEADER, [TABLE[0] ?? [], ["p1", "a", "a", "d", "a", "a", "a"]]);
    expect(await failure(unknown, { classes: ["a", "b", "c"] })).toMatch(
      /^ROW_MALFORMED .*unknown\.csv:3 column model_1: prediction "d" is not a class \(classes: a, b, c\)/,
    );
    const badLabel = writeTable("bad-label.csv", HEADER, [["p0", "z", "a", "a", "a", "a", "a"]]);
    expect(await failure(badLabel, { classes: ["a", "b"] })).toMatch(
      /bad-label\.csv:2 column label: label "z" is not a class/,
    );
    const empty = writeTable("empty-cell.csv", HEADER, [["p0", "a", "a", "", "a", "a", "a"]]);
    expect(await failure(empty, { classes: ["a", "b"] })).toMatch(
      /empty-cell\.csv:2 column model_1: empty prediction/,
    );
    expect(await failure(empty)).toMatch(
      /^INPUT_FORMAT .*empty-cell\.csv: only one class \("a"\) appears; pass --classes/,
    );
    const ragged = writeTable("ragged.csv", HEADER, [TABLE[0] ?? [], ["p1", "a", "a"]]);
    expect(await failure(ragged, { classes: ["a", "b"] })).toMatch(
      /^ROW_MALFORMED .*ragged\.csv:3: 3 fields, but the header has 7/,
    );
    expect(await failure(writeTable("dup.csv", ["label", "m", "m"], [["0", "1", "0"]]))).toMatch(
      /names column "m" twice/,
    );
    expect(await failure(writeTable("header-only.csv", HEADER, []))).toMatch(/^INPUT_FORMAT .*no data rows/);

    const preds = writeNpy("range.npy", "<i4", [2, 3], [0, 1, 2, 1, 7, 0]);
    const labels = writeNpy("range-labels.npy", "<i4", [2], [0, 1]);
    expect(await failure(preds, { labelsPath: labels, numClasses: 3 })).toMatch(
      /^ROW_MALFORMED .*range\.npy row 1 column 1: prediction 7 is outside the class range 0–2/,
    );
    const negative = writeNpy("negative.npy", "<i4", [1, 2], [0, -1]);
    const oneLabel = writeNpy("one-label.npy", "<i4", [1], [0]);
    expect(await failure(negative, { labelsPath: oneLabel })).toMatch(
      /negative\.npy row 0 column 1: prediction -1 is outside the class range/,
    );
    const fractional = writeNpy("fractional.npy", "<f8", [1, 2], [0, 1.5]);
    expect(await failure(fractional, { labelsPath: oneLabel })).toMatch(
      /row 0 column 1: prediction 1\.5 is not a class index/,
    );
    expect(await failure(preds, { labelsPath: oneLabel })).toMatch(
      /one-label\.npy: 1 labels, but the predictions have 2 rows/,
    );
    const vector = writeNpy("vector.npy", "<i4", [3], [0, 1, 0]);
    expect(await failure(vector, { labelsPath: labels })).toMatch(
      /vector\.npy: shape \(3\); expected \(N, K\)/,
    );
    const fortran = join(dir, "fortran.npy");
    writeFileSync(fortran, readFileSync(preds, "latin1").replace("False", "True "), "latin1");
    expect(await failure(fortran, { labelsPath: labels })).toMatch(/Fortran-ordered.*np\.ascontiguousarray/);
    const truncated = join(dir, "truncated.npy");
    writeFileSync(truncated, readFileSync(preds).subarray(0, -4));
    expect(await failure(truncated, { labelsPath: labels })).toMatch(
      /truncated: \d+ bytes, the header promises/,
    );
    expect(await failure(ok, { labelsPath: labels })).toMatch(
      /^USAGE .*ok\.csv carries its labels in a column/,
    );
  });
});

describe("DPA end to end on real Fashion-MNIST", () => {
  it("certifies 10 nearest-centroid models trained on 10 partitions of 10,000 images", async () => {
    const k = 10;
    const summary = await partitionDataset(memoryDataset(fashionMnistSamples(10_000), fmInfo), {
      k,
      outDir: join(dir, "e2e"),
    });
    const classes = [...FASHION_MNIST_CLASSES];
    // One nearest-centroid model per partition, trained on that partition's file only.
    const models: Float64Array[][] = [];
    for (const file of summary.files) {
      const train = await collect(await openDataset(file));
      models.push(centroids(train, classes));
    }
    const test = fashionMnistSamples(1000, "t10k");
    const labels = test.map((s) => classes.indexOf(s.label ?? ""));
    const predictions = test.map((s) => models.map((m) => nearest(m, s.image?.data ?? new Float32Array())));
    const { certification: c } = certify(predictions, labels, classes);

    // The plain ensemble: plurality of the 10 votes, ties to the smaller index, counted here.
    const ensemble = predictions.map((row) => {
      const votes = new Array<number>(classes.length).fill(0);
      for (const p of row) bump(votes, p);
      return votes.indexOf(Math.max(...votes));
    });
    const plainAccuracy = ensemble.filter((p, i) => p === labels[i]).length / test.length;
    expect(c.curve[0]?.certifiedAccuracy).toBe(plainAccuracy);
    expect(plainAccuracy).toBeGreaterThan(0.6); // nearest centroid on raw pixels: about 0.68
    expect(c.modelAccuracy.mean).toBeGreaterThan(0.55);
    expect(c.curve).toHaveLength(k / 2 + 1);
    for (let r = 1; r < c.curve.length; r++) {
      expect(c.curve[r]?.certifiedAccuracy).toBeLessThanOrEqual(c.curve[r - 1]?.certifiedAccuracy ?? 0);
    }
    expect(c.curve[1]?.certifiedAccuracy).toBeLessThan(plainAccuracy);
    expect(c.curve[1]?.certifiedAccuracy).toBeGreaterThan(0.3);
    console.log(
      `DPA K=10 on 10k Fashion-MNIST: ${c.curve.map((p) => `r=${p.radius}: ${(100 * p.certifiedAccuracy).toFixed(1)}%`).join(", ")}; ` +
        `single models ${(100 * c.modelAccuracy.mean).toFixed(1)}%; median radius ${c.medianRadius}`,
    );
  });
});

// ── helpers ────────────────────────────────────────────────────────────────────────────

/** A NumPy .npy file (format 1.0), C order. */
function writeNpy(name: string, descr: string, shape: number[], values: number[]): string {
  const bytes = Number(descr.slice(2));
  const little = !descr.startsWith(">");
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const body = Buffer.alloc(values.length * bytes);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  values.forEach((v, i) => {
    const at = i * bytes;
    const kind = descr.slice(1);
    if (kind === "u1") view.setUint8(at, v);
    else if (kind === "i2") view.setInt16(at, v, little);
    else if (kind === "i4") view.setInt32(at, v, little);
    else if (kind === "i8") view.setBigInt64(at, BigInt(v), little);
    else if (kind === "f4") view.setFloat32(at, v, little);
    else view.setFloat64(at, v, little);
  });
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  const file = join(dir, name);
  writeFileSync(file, Buffer.concat([head, Buffer.from(header, "latin1"), body]));
  return file;
}

function allAssignments(k: number, classes: number): number[][] {
  let out: number[][] = [[]];
  for (let m = 0; m < k; m++) out = out.flatMap((a) => Array.from({ length: classes }, (_, c) => [...a, c]));
  return out;
}

function plurality(assignment: number[], classes: number): number {
  const votes = new Array<number>(classes).fill(0);
  for (const c of assignment) bump(votes, c);
  return votes.indexOf(Math.max(...votes));
}

function bump(counts: number[], i: number | undefined): void {
  if (i === undefined || i < 0 || i >= counts.length) throw new Error(`index ${i} out of range`);
  counts[i] = (counts[i] ?? 0) + 1;
}

function hamming(a: number[], b: number[]): number {
  return a.reduce((d, x, i) => d + (x === b[i] ? 0 : 1), 0);
}

function centroids(train: Sample[], classes: string[]): Float64Array[] {
  const sums = classes.map(() => new Float64Array(784));
  const counts = classes.map(() => 0);
  for (const s of train) {
    const c = classes.indexOf(s.label ?? "");
    const sum = sums[c];
    if (sum === undefined || s.image === undefined) continue;
    s.image.data.forEach((v, j) => (sum[j] = (sum[j] ?? 0) + v));
    counts[c] = (counts[c] ?? 0) + 1;
  }
  return sums.map((sum, c) => sum.map((v) => v / Math.max(1, counts[c] ?? 0)));
}

function nearest(model: Float64Array[], x: Float32Array): number {
  let best = 0;
  let bestDistance = Infinity;
  model.forEach((centroid, c) => {
    let d = 0;
    for (let j = 0; j < x.length; j++) d += ((x[j] ?? 0) - (centroid[j] ?? 0)) ** 2;
    if (d < bestDistance) [best, bestDistance] = [c, d];
  });
  return best;
}
