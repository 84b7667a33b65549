// Hashed TF-IDF for text: word n-grams and fastText-style character n-grams (Bojanowski et
// al., 2017), hashed with MurmurHash3 into 2^dimsLog2 buckets with a sign bit (Weinberger et
// al., 2009) so that collisions cancel in expectation instead of adding up. Weighting follows
// scikit-learn's TfidfTransformer(sublinear_tf=True, smooth_idf=True): tf → 1 + ln tf,
// idf = ln((1 + N) / (1 + df)) + 1, each row scaled to unit L2 norm. The fitted statistics
// are document frequencies, which add up across shards.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Sample } from "../data/sample.js";
import { murmur3_32, murmur3_32_int } from "../math/hash.js";
import type { SparseVector } from "../math/sparse.js";
import { observeAll, type Featurizer } from "./matrix.js";
import { parseOptions } from "./options.js";

const ngramRange = z
  .tuple([z.number().int().min(1).max(16), z.number().int().min(1).max(16)])
  .refine(([lo, hi]) => lo <= hi, "the range must be [min, max] with min ≤ max");

export const textOptionsSchema = z.object({
  /** Number of hash buckets, as a power of two (bit 31 of the hash is the sign, so at most 30). */
  dimsLog2: z.number().int().min(1).max(30).default(18),
  /** Word n-gram orders, inclusive: [1, 2] is unigrams and bigrams. */
  wordNgrams: ngramRange.default([1, 2]),
  /** Character n-gram orders over "<word>", inclusive, or false for none. */
  charNgrams: z.union([z.literal(false), ngramRange]).default([3, 5]),
  /** Only the first this many UTF-16 code units of a text are read (long emails cost time, add little). */
  maxTextLength: z.number().int().positive().default(20_000),
  seed: z.number().int().default(0),
});
export type TextOptions = z.input<typeof textOptionsSchema>;
type ResolvedTextOptions = z.output<typeof textOptionsSchema>;

/** Mergeable IDF statistics: how many documents were seen and in how many each bucket occurred. */
export interface TextStats {
  documents: number;
  df: Uint32Array;
}

/** The statistics of two shards fitted with the same options, as if fitted together. */
export function mergeTextStats(a: TextStats, b: TextStats): TextStats {
  if (a.df.length !== b.df.length) {
    throw new AntidoteError(
      "USAGE",
      `cannot merge text statistics of ${a.df.length} and ${b.df.length} buckets`,
    );
  }
  const df = new Uint32Array(a.df.length);
  for (let i = 0; i < df.length; i++) df[i] = (a.df[i] as number) + (b.df[i] as number);
  return { documents: a.documents + b.documents, df };
}

export class TextFeaturizer implements Featurizer<SparseVector, TextStats> {
  readonly dims: number;
  private readonly opts: ResolvedTextOptions;
  private readonly hasher: FeatureHasher;
  private documents = 0;
  private readonly df: Uint32Array;
  private idf: Float32Array | null = null;

  constructor(options: TextOptions = {}, stats?: TextStats) {
    this.opts = parseOptions(textOptionsSchema, options, "text options");
    this.dims = 2 ** this.opts.dimsLog2;
    this.hasher = new FeatureHasher(this.opts);
    this.df = new Uint32Array(this.dims);
    if (stats !== undefined) {
      if (stats.df.length !== this.dims) {
        throw new AntidoteError(
          "USAGE",
          `text statistics have ${stats.df.length} buckets, options ask for ${this.dims}`,
        );
      }
      this.df.set(stats.df);
      this.documents = stats.documents;
    }
  }

  observe(sample: Sample): void {
    const { indices } = this.hasher.counts(textOf(sample), this.opts.maxTextLength, false);
    for (const i of indices) this.df[i] = (this.df[i] as number) + 1;
    this.documents++;
    this.idf = null;
  }

  fit(samples: AsyncIterable<Sample>): Promise<void> {
    return observeAll(this, samples);
  }

  /** The sample's TF-IDF vector with unit L2 norm (empty for a text with no tokens). */
  transform(sample: Sample): SparseVector {
    const idf = (this.idf ??= idfWeights(this.documents, this.df));
    const { indices, counts } = this.hasher.counts(textOf(sample), this.opts.maxTextLength);
    const values = new Float32Array(indices.length);
    let norm = 0;
    for (let k = 0; k < indices.length; k++) {
      const tf = counts[k] as number;
      const w = Math.sign(tf) * (1 + Math.log(Math.abs(tf))) * (idf[indices[k] as number] as number);
      values[k] = w;
      norm += w * w;
    }
    norm = Math.sqrt(norm);
    if (norm > 0) for (let k = 0; k < values.length; k++) values[k] = (values[k] as number) / norm;
    return { indices, values };
  }

  stats(): TextStats {
    return { documents: this.documents, df: this.df.slice() };
  }
}

/** Lower-cased word tokens: a letter or digit, then letters, digits and combining marks ("cf7x", "naïve"). */
export function tokenize(text: string, maxTextLength = Infinity): string[] {
  const head = text.length > maxTextLength ? text.slice(0, maxTextLength) : text;
  return head.normalize("NFC").toLowerCase().match(TOKEN) ?? [];
}

export interface TokenFeature {
  /** The n-gram's text: its words joined by one space, or characters of "<word>". */
  text: string;
  kind: "word" | "char";
  /** Order of the n-gram. */
  n: number;
  bucket: number;
  sign: 1 | -1;
}

/**
 * Every hashed feature of a text with its bucket and sign, repeats included (word n-grams
 * by order, then each token's character n-grams), for explaining which words put weight on
 * a suspicious bucket.
 */
export function tokenFeatures(text: string, options: TextOptions = {}): TokenFeature[] {
  const opts = parseOptions(textOptionsSchema, options, "text options");
  const hasher = new FeatureHasher(opts);
  const tokens = tokenize(text, opts.maxTextLength);
  const th = tokens.map((t) => hasher.tokenHash(t));
  const out: TokenFeature[] = [];
  const push = (hash: number, kind: "word" | "char", n: number, gram: string) =>
    out.push({ text: gram, kind, n, bucket: hash & hasher.mask, sign: hash >>> 31 ? -1 : 1 });
  const [lo, hi] = opts.wordNgrams;
  for (let n = lo; n <= hi; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      push(hasher.wordGram(th, i, n), "word", n, tokens.slice(i, i + n).join(" "));
    }
  }
  for (const t of tokens) {
    hasher.charGrams(t, (hash, n, from, to) => push(hash, "char", n, hasher.gramText(from, to)));
  }
  return out;
}

const TOKEN = /[\p{L}\p{N}][\p{L}\p{N}\p{M}]*/gu;
const encoder = new TextEncoder();
// Distinct tokens whose hashes are remembered; e-mail vocabularies repeat heavily, so a
// bounded cache saves most of the character n-gram hashing.
const CACHE_LIMIT = 1 << 17;

// Hashes token lists into signed bucket counts. Each feature family has its own seed, so the
// word "the" and the character trigram "the" land in unrelated buckets. A word n-gram's hash
// chains its tokens' hashes, so no joined string is built.
class FeatureHasher {
  readonly mask: number;
  private readonly tokenSeed: number;
  private readonly wordSeeds: number[];
  private readonly charSeed: number;
  // Allocated on the first `counts`, so that explaining a text (tokenFeatures) stays cheap.
  private acc = new Float64Array(0);
  private seen = new Uint8Array(0);
  // Per token: [its hash, then the hashes of its character n-grams].
  private readonly cache = new Map<string, Uint32Array>();
  private bytes = new Uint8Array(64);
  private starts = new Int32Array(64);

  constructor(private readonly opts: ResolvedTextOptions) {
    this.mask = (2 ** opts.dimsLog2 - 1) >>> 0;
    this.tokenSeed = murmur3_32("token", opts.seed);
    this.wordSeeds = Array.from({ length: opts.wordNgrams[1] + 1 }, (_, n) =>
      murmur3_32(`word${n}`, opts.seed),
    );
    this.charSeed = murmur3_32("char", opts.seed);
  }

  /** Buckets with a non-zero signed count (in increasing order unless `sorted` is false), and those counts. */
  counts(text: string, maxTextLength: number, sorted = true): { indices: Uint32Array; counts: Float64Array } {
    if (this.acc.length === 0) {
      this.acc = new Float64Array(this.mask + 1);
      this.seen = new Uint8Array(this.mask + 1);
    }
    const tokens = tokenize(text, maxTextLength);
    const touched: number[] = [];
    const add = (hash: number) => {
      const b = hash & this.mask;
      if (this.seen[b] === 0) {
        this.seen[b] = 1;
        touched.push(b);
      }
      this.acc[b] = (this.acc[b] as number) + (hash >>> 31 ? -1 : 1);
    };
    const th = new Uint32Array(tokens.length);
    tokens.forEach((t, i) => {
      const hashes = this.hashesOf(t);
      th[i] = hashes[0] as number;
      for (let k = 1; k < hashes.length; k++) add(hashes[k] as number);
    });
    const [lo, hi] = this.opts.wordNgrams;
    for (let n = lo; n <= hi; n++) for (let i = 0; i + n <= th.length; i++) add(this.wordGram(th, i, n));
    return this.drain(sorted ? Uint32Array.from(touched).sort() : touched);
  }

  tokenHash(token: string): number {
    return murmur3_32(token, this.tokenSeed);
  }

  /** Hash of the word n-gram tokens[i, i+n), from the tokens' hashes. */
  wordGram(th: ArrayLike<number>, i: number, n: number): number {
    let h = this.wordSeeds[n] as number;
    for (let k = i; k < i + n; k++) h = murmur3_32_int(th[k] as number, h);
    return h;
  }

  // fastText's subwords: n-grams of characters (code points, not bytes) of "<token>", hashed as
  // UTF-8 byte ranges of one encoded buffer so that no substring is allocated.
  charGrams(token: string, emit: (hash: number, n: number, from: number, to: number) => void): void {
    if (this.opts.charNgrams === false) return;
    const [lo, hi] = this.opts.charNgrams;
    const word = `<${token}>`;
    if (word.length * 3 > this.bytes.length) this.bytes = new Uint8Array(word.length * 3);
    const { written } = encoder.encodeInto(word, this.bytes);
    if (written + 1 > this.starts.length) this.starts = new Int32Array(written + 1);
    let chars = 0;
    for (let i = 0; i < written; i++)
      if (((this.bytes[i] as number) & 0xc0) !== 0x80) this.starts[chars++] = i;
    this.starts[chars] = written;
    for (let n = lo; n <= hi; n++) {
      for (let i = 0; i + n <= chars; i++) {
        const from = this.starts[i] as number;
        const to = this.starts[i + n] as number;
        emit(murmur3_32(this.bytes, this.charSeed, from, to), n, from, to);
      }
    }
  }

  /** The text of the character n-gram just emitted by `charGrams`. */
  gramText(from: number, to: number): string {
    return Buffer.from(this.bytes.subarray(from, to)).toString("utf8");
  }

  private hashesOf(token: string): Uint32Array {
    let hashes = this.cache.get(token);
    if (hashes === undefined) {
      const list = [this.tokenHash(token)];
      this.charGrams(token, (hash) => list.push(hash));
      hashes = Uint32Array.from(list);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(token, hashes);
    }
    return hashes;
  }

  // Collects the non-zero accumulated counts of the touched buckets and clears the accumulator.
  private drain(buckets: ArrayLike<number>): { indices: Uint32Array; counts: Float64Array } {
    let kept = 0;
    for (let j = 0; j < buckets.length; j++) if (this.acc[buckets[j] as number] !== 0) kept++;
    const indices = new Uint32Array(kept);
    const counts = new Float64Array(kept);
    let k = 0;
    for (let j = 0; j < buckets.length; j++) {
      const b = buckets[j] as number;
      const c = this.acc[b] as number;
      if (c !== 0) {
        indices[k] = b;
        counts[k++] = c;
      }
      this.acc[b] = 0;
      this.seen[b] = 0;
    }
    return { indices, counts };
  }
}

function idfWeights(documents: number, df: Uint32Array): Float32Array {
  const idf = new Float32Array(df.length);
  for (let i = 0; i < df.length; i++) idf[i] = Math.log((1 + documents) / (1 + (df[i] as number))) + 1;
  return idf;
}

function textOf(sample: Sample): string {
  if (sample.text === undefined) {
    throw new AntidoteError("USAGE", `sample "${sample.id}" has no text; text features need a text column`);
  }
  return sample.text;
}
