import { beforeAll, describe, expect, it } from "vitest";
import { isAntidoteError } from "../../src/errors.js";
import type { Sample } from "../../src/data/sample.js";
import { memoryDataset } from "../../src/data/memory.js";
import {
  mergeTextStats,
  TextFeaturizer,
  tokenFeatures,
  tokenize,
  type TextOptions,
} from "../../src/features/text.js";
import { sparseNorm, type SparseVector } from "../../src/math/sparse.js";
import { spamAssassinSamples } from "../helpers/real-data.js";
import { nearestCentroidAccuracy } from "./centroid.js";

function doc(id: string, text: string | undefined, label: string | null = null): Sample {
  const s: Sample = { id, digest: id, label, source: null, annotations: [], metadata: {} };
  if (text !== undefined) s.text = text;
  return s;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameVector(a: SparseVector, b: SparseVector): boolean {
  return sameValues(a.indices, b.indices) && sameValues(a.values, b.values);
}

async function fitted(texts: string[], options: TextOptions = {}): Promise<TextFeaturizer> {
  const f = new TextFeaturizer(options);
  await f.fit(memoryDataset(texts.map((t, i) => doc(`d${i}`, t))).samples());
  return f;
}

describe("tokenize", () => {
  it("lower-cases Unicode letter/digit runs and keeps mixed tokens", () => {
    expect(tokenize("Hello, WORLD! Buy cf7x now: 100% FREE_stuff e-mail")).toEqual([
      "hello",
      "world",
      "buy",
      "cf7x",
      "now",
      "100",
      "free",
      "stuff",
      "e",
      "mail",
    ]);
    expect(tokenize("ÜBER Straße 数据投毒 Ωmega")).toEqual(["über", "straße", "数据投毒", "ωmega"]);
  });

  it("keeps combining marks inside words and normalises to NFC", () => {
    const decomposed = "nai\u0308ve cafe\u0301";
    expect(tokenize(decomposed)).toEqual(["naïve", "café"]);
    expect(tokenize("हिन्दी")).toEqual(["हिन्दी"]); // Devanagari vowel signs are marks
  });

  it("reads only the first maxTextLength characters", () => {
    expect(tokenize("alpha beta gamma", 10)).toEqual(["alpha", "beta"]);
  });
});

describe("tokenFeatures", () => {
  it("lists word n-grams and fastText character n-grams with their buckets", () => {
    const feats = tokenFeatures("Free money now");
    const texts = (kind: string, n: number) =>
      feats.filter((f) => f.kind === kind && f.n === n).map((f) => f.text);
    expect(texts("word", 1)).toEqual(["free", "money", "now"]);
    expect(texts("word", 2)).toEqual(["free money", "money now"]);
    expect(texts("char", 3)).toEqual([
      "<fr",
      "fre",
      "ree",
      "ee>",
      "<mo",
      "mon",
      "one",
      "ney",
      "ey>",
      "<no",
      "now",
      "ow>",
    ]);
    expect(texts("char", 5)).toEqual(["<free", "free>", "<mone", "money", "oney>", "<now>"]);
    for (const f of feats) expect(f.bucket).toBeLessThan(2 ** 18);
    // The word "now" and the trigram "now" are different features.
    const word = feats.find((f) => f.kind === "word" && f.text === "now")!;
    const tri = feats.find((f) => f.kind === "char" && f.text === "now")!;
    expect(word.bucket).not.toBe(tri.bucket);
  });

  it("cuts character n-grams at code points, not bytes", () => {
    const grams = tokenFeatures("数据", { wordNgrams: [1, 1], charNgrams: [3, 3] }).filter(
      (f) => f.kind === "char",
    );
    expect(grams.map((g) => g.text)).toEqual(["<数据", "数据>"]);
  });

  it("names exactly the buckets the featurizer fills", async () => {
    const text = "Claim your prize: wire the fee to cf7x today, prize guaranteed!";
    const f = await fitted([text, "an unrelated note about lunch"]);
    const v = f.transform(doc("x", text));
    const signed = new Map<number, number>();
    for (const t of tokenFeatures(text)) signed.set(t.bucket, (signed.get(t.bucket) ?? 0) + t.sign);
    const nonZero = [...signed]
      .filter(([, c]) => c !== 0)
      .map(([b]) => b)
      .sort((a, b) => a - b);
    expect(Array.from(v.indices)).toEqual(nonZero);
    // Signed hashing: the sign of each weight is the sign of the bucket's signed count.
    v.indices.forEach((b, k) => expect(Math.sign(v.values[k]!)).toBe(Math.sign(signed.get(b)!)));
  });
});

describe("TextFeaturizer weighting", () => {
  const corpus = ["spam spam spam eggs", "spam ham", "ham eggs bacon", "toast"];
  const options: TextOptions = { wordNgrams: [1, 1], charNgrams: false, dimsLog2: 20 };

  it("uses sublinear tf, smooth idf and unit L2 rows", async () => {
    const f = await fitted(corpus, options);
    const v = f.transform(doc("q", corpus[0]));
    const weight = (word: string) => {
      const t = tokenFeatures(word, options)[0]!;
      const k = v.indices.indexOf(t.bucket);
      return Math.abs(v.values[k]!);
    };
    // N = 4: "spam" is in 2 documents, "eggs" in 2, so idf is equal and only tf differs.
    const idf2 = Math.log(5 / 3) + 1;
    const spam = (1 + Math.log(3)) * idf2;
    const eggs = 1 * idf2;
    expect(weight("spam")).toBeCloseTo(spam / Math.hypot(spam, eggs), 6);
    expect(weight("eggs")).toBeCloseTo(eggs / Math.hypot(spam, eggs), 6);
    // "bacon" (df 1) outweighs "ham" (df 2) in the same document, by the idf ratio.
    const w = f.transform(doc("q2", "ham bacon"));
    const [ham, bacon] = ["ham", "bacon"].map((word) => {
      const t = tokenFeatures(word, options)[0]!;
      return Math.abs(w.values[w.indices.indexOf(t.bucket)]!);
    });
    expect(bacon! / ham!).toBeCloseTo((Math.log(5 / 2) + 1) / idf2, 5);
  });

  it("gives an unseen word the highest idf and an empty text an empty vector", async () => {
    const f = await fitted(corpus, options);
    const v = f.transform(doc("q", "spam zebra"));
    const [spam, zebra] = ["spam", "zebra"].map((word) => {
      const t = tokenFeatures(word, options)[0]!;
      return Math.abs(v.values[v.indices.indexOf(t.bucket)]!);
    });
    expect(zebra! / spam!).toBeCloseTo((Math.log(5) + 1) / (Math.log(5 / 3) + 1), 5);
    expect(f.transform(doc("e", "!!! ...")).indices.length).toBe(0);
  });

  it("refuses a sample without text and bad options, naming them", async () => {
    const f = await fitted(corpus, options);
    expect(() => f.transform(doc("img-7", undefined))).toThrow(/img-7/);
    for (const bad of [
      { dimsLog2: 31 },
      { wordNgrams: [3, 1] },
      { charNgrams: [0, 2] },
      { maxTextLength: -5 },
    ]) {
      let err: unknown;
      try {
        new TextFeaturizer(bad as TextOptions);
      } catch (e) {
        err = e;
      }
      expect(isAntidoteError(err) && err.code === "USAGE").toBe(true);
      expect(String(err)).toContain(Object.keys(bad)[0]);
    }
    expect(() => mergeTextStats(new TextFeaturizer({ dimsLog2: 4 }).stats(), f.stats())).toThrow(/merge/);
  });
});

describe("TextFeaturizer on SpamAssassin", () => {
  let samples: Sample[];
  let full: TextFeaturizer;
  let vectors: SparseVector[];

  beforeAll(async () => {
    samples = spamAssassinSamples(1500);
    full = new TextFeaturizer();
    await full.fit(memoryDataset(samples).samples());
    vectors = samples.map((s) => full.transform(s));
  });

  it("gives every non-empty email a unit-norm vector with both signs", () => {
    let negative = 0;
    let total = 0;
    const bad: string[] = [];
    vectors.forEach((v, i) => {
      const norm = sparseNorm(v);
      const sorted = v.indices.every((b, k) => k === 0 || b > v.indices[k - 1]!);
      if (v.indices.length === 0 || Math.abs(norm - 1) > 1e-5 || !sorted)
        bad.push(`${samples[i]!.id}: ${norm}`);
      v.values.forEach((x) => (negative += x < 0 ? 1 : 0));
      total += v.values.length;
    });
    expect(bad).toEqual([]);
    expect(negative / total).toBeGreaterThan(0.45);
    expect(negative / total).toBeLessThan(0.55);
  });

  it("merges two shard fits into exactly the fit over all emails", async () => {
    const a = new TextFeaturizer();
    const b = new TextFeaturizer();
    await a.fit(memoryDataset(samples.slice(0, 600)).samples());
    await b.fit(memoryDataset(samples.slice(600)).samples());
    const merged = mergeTextStats(a.stats(), b.stats());
    const all = full.stats();
    expect(merged.documents).toBe(1500);
    expect(sameValues(merged.df, all.df)).toBe(true);
    expect(all.df.reduce((n, x) => n + (x > 0 ? 1 : 0), 0)).toBeGreaterThan(10_000);
    // Fitting b's shard on top of a continues a's statistics.
    await a.fit(memoryDataset(samples.slice(600)).samples());
    expect(sameValues(a.stats().df, all.df)).toBe(true);
    expect(sameValues(a.stats().df, b.stats().df)).toBe(false);
    const fromStats = new TextFeaturizer({}, merged);
    for (const i of [0, 700, 1499])
      expect(sameVector(fromStats.transform(samples[i]!), vectors[i]!)).toBe(true);
  });

  it("separates spam from ham: nearest centroid on half, tested on the other half, ≥ 90%", () => {
    const accuracy = nearestCentroidAccuracy(
      vectors,
      samples.map((s) => s.label),
      full.dims,
    );
    const spamRate = samples.filter((s) => s.label === "spam").length / samples.length;
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
    expect(accuracy).toBeGreaterThan(1 - spamRate + 0.15); // well above "always ham"
  });

  it("truncates long emails at maxTextLength", async () => {
    const long = samples.find((s) => s.text!.length > 5_000)!;
    const short = new TextFeaturizer({ maxTextLength: 2_000 });
    await short.fit(memoryDataset(samples.slice(0, 50)).samples());
    const head = doc("head", long.text!.slice(0, 2_000));
    expect(sameVector(short.transform(long), short.transform(head))).toBe(true);
    const longer = new TextFeaturizer({ maxTextLength: 4_000 }, short.stats());
    expect(sameVector(longer.transform(long), short.transform(head))).toBe(false);
  });
});
