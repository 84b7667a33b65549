// The CLI end to end, as a user runs it: a child process per command, asserting exit codes
// and that user mistakes print one clear line and never a stack trace.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readGroundTruth } from "../../src/attack/index.js";
import { openDataset } from "../../src/data/open.js";
import { collect } from "../../src/data/memory.js";
import { antidote as cli, expectUserError, type CliResult } from "../helpers/cli.js";

const antidote = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => cli(args, { env });

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote CLI", () => {
  it("lists the bundled real datasets as installed", async () => {
    const r = await antidote(["datasets", "--json"]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; available: boolean; count: number }[];
    expect(list.map((d) => [d.name, d.available, d.count])).toEqual([
      ["fashion-mnist", true, 70_000],
      ["spamassassin", true, 6_046],
    ]);
  });

  it("inspects Fashion-MNIST test: 10,000 images, 1,000 per class", async () => {
    const r = await antidote(["inspect", "fashion-mnist:test", "--json"]);
    expect(r.code).toBe(0);
    const { summary } = JSON.parse(r.stdout) as {
      summary: { count: number; labels: Record<string, number> };
    };
    expect(summary.count).toBe(10_000);
    expect(Object.values(summary.labels)).toEqual(Array(10).fill(1000));
  });

  it("says how to install a bundled dataset that is missing (exit 4)", async () => {
    const r = await antidote(["inspect", "fashion-mnist"], {
      ANTIDOTE_FASHION_MNIST_DIR: join(dir, "nowhere"),
    });
    expectUserError(r, 4, /apt-get install dataset-fashion-mnist/);
  });

  it("rejects a missing file (exit 3)", async () => {
    expectUserError(await antidote(["inspect", join(dir, "absent.csv")]), 3, /absent\.csv: no such file/);
  });

  it("rejects a file whose format it cannot tell, naming --format", async () => {
    const file = join(dir, "mystery.bin");
    writeFileSync(file, Buffer.from([1, 2, 3, 4, 5]));
    expectUserError(await antidote(["inspect", file]), 3, /mystery\.bin: cannot tell the format.*--format/);
  });

  it("suggests the closest column name for a misspelled --label-column", async () => {
    const file = join(dir, "rows.csv");
    writeFileSync(file, "id,text,label\n1,hello,ham\n2,buy now,spam\n");
    expectUserError(await antidote(["inspect", file, "--label-column", "lable"]), 3, /Did you mean "label"/);
  });

  it("names file:line of a malformed row, and skips and counts it with --on-error skip", async () => {
    const file = join(dir, "bad.jsonl");
    writeFileSync(
      file,
      '{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n{"text": oops}\n{"text":"c","label":"x"}\n',
    );
    expectUserError(await antidote(["inspect", file]), 3, /bad\.jsonl:3/);
    const skip = await antidote(["inspect", file, "--on-error", "skip", "--json"]);
    expect(skip.code).toBe(0);
    const out = JSON.parse(skip.stdout) as { summary: { count: number }; skipped: number };
    expect([out.summary.count, out.skipped]).toEqual([3, 1]);
  });

  it("rejects a label column that mixes numbers and strings", async () => {
    const file = join(dir, "mixed.jsonl");
    writeFileSync(file, '{"text":"a","label":1}\n{"text":"b","label":"cat"}\n');
    expectUserError(await antidote(["inspect", file]), 3, /mixed\.jsonl:2.*integers/);
  });

  it("names an undecodable image in an ImageFolder", async () => {
    const root = join(dir, "folder");
    mkdirSync(join(root, "cat"), { recursive: true });
    writeFileSync(join(root, "cat", "broken.png"), "not a png at all");
    expectUserError(await antidote(["inspect", root]), 3, /broken\.png/);
  });

  it("rejects an IDX file whose header is wrong", async () => {
    const file = join(dir, "train-images-idx3-ubyte");
    writeFileSync(file, Buffer.from([0, 0, 9, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]));
    expectUserError(await antidote(["inspect", file]), 3, /train-images-idx3-ubyte/);
  });

  it("rejects bad flags with exit 2 and names the flag", async () => {
    const args = ["attack", "patch", "fashion-mnist:test", "--target", "Bag", "--out", join(dir, "x.jsonl")];
    expectUserError(await antidote([...args, "--rate", "abc"]), 2, /--rate/);
    expectUserError(await antidote([...args, "--rate", "2"]), 2, /--rate/);
    expectUserError(await antidote(args), 2, /--rate.*--count/);
  });

  it("runs an attack end to end: poisoned file plus truthful ground truth", async () => {
    const out = join(dir, "fm-patch.parquet");
    const r = await antidote([
      "attack",
      "patch",
      "fashion-mnist:test",
      "--target",
      "Bag",
      "--count",
      "50",
      "--seed",
      "7",
      "--out",
      out,
    ]);
    expect(r.code).toBe(0);
    const truth = await readGroundTruth(`${out}.truth.json`);
    expect(truth.poisonedCount).toBe(50);
    const samples = await collect(await openDataset(out));
    expect(samples).toHaveLength(10_000);
    const byId = new Map(samples.map((s) => [s.id, s]));
    for (const p of truth.poisoned) {
      expect(byId.get(p.id)?.label).toBe("Bag");
      expect(byId.get(p.id)?.digest).toBe(p.digest);
    }
  });

  it("fails an infeasible attack with exit 5 and writes no ground truth", async () => {
    const out = join(dir, "too-many.jsonl");
    const r = await antidote([
      "attack",
      "targeted-flip",
      "fashion-mnist:test",
      "--from",
      "Bag",
      "--to",
      "Coat",
      "--count",
      "1500",
      "--out",
      out,
    ]);
    expectUserError(r, 5, /1,?000/);
    expect(existsSync(`${out}.truth.json`)).toBe(false);
    expect(existsSync(out)).toBe(false);
  });

  it("converts SpamAssassin to JSONL and back with the same digests", async () => {
    const out = join(dir, "spam.jsonl");
    const r = await antidote(["convert", "spamassassin", out, "--json"]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { written: number }).written).toBe(6_046);
    const original = await collect(await openDataset("spamassassin"));
    const copy = await collect(await openDataset(out));
    expect(copy.map((s) => [s.id, s.digest, s.label])).toEqual(
      original.map((s) => [s.id, s.digest, s.label]),
    );
    expect(readFileSync(out, "utf8").split("\n").filter(Boolean)).toHaveLength(6_046);
  });
});
