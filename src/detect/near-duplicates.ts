// Near-duplicate bursts: many lightly edited copies of one text — a spam run, SEO text planted
// for a web crawl — that exact-hash dedup keeps because no two copies are byte-identical, and
// that weigh on training as one voice repeated (Carlini et al., 2024, "Poisoning web-scale
// training datasets is practical"). Exact duplicates are grouped by content digest; near
// duplicates by MinHash over word 5-shingles with LSH banding (minhash.ts), each candidate pair
// verified by its estimated Jaccard similarity, and clusters are the connected components
// (union–find, single linkage).
//
// Every corpus has natural duplicate clusters (a newsletter sent twice, a mailing-list digest,
// one spam sent to many addresses), so size alone says nothing without the corpus's own cluster
// sizes. Natural duplicate-cluster sizes are heavy-tailed (Fetterly, Manasse & Najork, 2003), so
// each cluster is judged against a discrete power law (Clauset, Shalizi & Newman, 2009) fitted
// by maximum likelihood to the *other* clusters' sizes, so that a burst cannot hide itself in the
// fit: the expected number of natural clusters at least as large is E = C · P(S ≥ size), and a
// cluster with E < alpha is a burst. A burst whose members come mostly from one source (a
// one-sided binomial tail against that source's share of the dataset) implicates that source.
//
// Shingles are word 5-grams over the featurizers' tokens (`tokenize` in features/text.ts: NFC,
// lower-cased letter/digit runs), so case, punctuation and whitespace edits do not count.
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import { tokenize } from "../features/text.js";
import type { Finding } from "../ledger/types.js";
import { murmur3_32, murmur3_32_int } from "../math/hash.js";
import { MinHasher, estimateJaccard, lshBanding, lshCandidatePairs } from "./minhash.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";
import { goldenSectionMin } from "../math/optimize.js";

export const nearDuplicateOptionsSchema = z.object({
  /** Words per shingle. */
  shingleSize: z.number().int().min(1).max(16).default(5),
  /** MinHash signature length (a power of two); the Jaccard estimate's standard error is ≈ 0.5/√size. */
  signatureSize: z
    .number()
    .int()
    .min(16)
    .max(4096)
    .refine((v) => Number.isInteger(Math.log2(v)), "must be a power of two")
    .default(128),
  /**
   * Estimated Jaccard similarity of word shingles at or above which two texts are near duplicates.
   * A copy with 2% of its words edited keeps ≈ 0.8 of its shingles in common with another copy;
   * 0.7 leaves room for the estimate's error (≈ ±0.04 at 128).
   */
  threshold: z.number().gt(0).lt(1).default(0.7),
  /** A cluster is a burst when fewer than this many natural clusters that large are expected. */
  alpha: z.number().gt(0).lt(1).default(0.01),
  /** Clusters smaller than this are never bursts, however few clusters the corpus has. */
  minBurstSize: z.number().int().min(2).default(5),
  /** Only the first this many UTF-16 code units of a text are shingled. */
  maxTextLength: z.number().int().positive().default(200_000),
  seed: z.number().int().default(0),
  /** Rows of the cluster table in the summary. */
  topClusters: z.number().int().min(1).max(1000).default(20),
});
export type NearDuplicateOptions = z.output<typeof nearDuplicateOptionsSchema>;

const NAME = "near-duplicates";
const VERSION = "1.0.0";

export const nearDuplicates: Detector<NearDuplicateOptions> = {
  name: NAME,
  version: VERSION,
  appliesTo(table) {
    return table.texts === undefined ? "the dataset has no text" : null;
  },
  run(table, options = {}) {
    const opts = parseOptions(nearDuplicateOptionsSchema, options, `${NAME} options`);
    return detectBursts(table, opts);
  },
};

/** Hashed word shingles of a text (k consecutive tokens; a shorter text is one shingle of all its tokens). */
export function wordShingles(text: string, k = 5, maxTextLength = Infinity, seed = 0): Uint32Array {
  const tokens = tokenize(text, maxTextLength);
  if (tokens.length === 0) return new Uint32Array(0);
  const tokenSeed = murmur3_32("shingle-token", seed);
  const hashes = new Uint32Array(tokens.length);
  tokens.forEach((t, i) => (hashes[i] = murmur3_32(t, tokenSeed)));
  const width = Math.min(k, tokens.length);
  const out = new Uint32Array(tokens.length - width + 1);
  for (let p = 0; p < out.length; p++) {
    let h = width;
    for (let q = p; q < p + width; q++) h = murmur3_32_int(hashes[q] as number, h);
    out[p] = h;
  }
  return out;
}

interface Cluster {
  id: number;
  members: number[];
  /** Distinct content digests among the members (1: all exact duplicates). */
  distinct: number;
  /** The member with the most verified near-duplicate links. */
  representative: number;
  /** ln of the expected number of natural clusters at least this large. */
  logExpected: number;
  burst: boolean;
}

function detectBursts(table: ScanTable, opts: NearDuplicateOptions): DetectorResult {
  const texts = table.texts ?? [];
  const n = table.ids.length;
  const size = opts.signatureSize;
  const hasher = new MinHasher({ size, seed: opts.seed });
  const signatures = new Uint32Array(n * size);
  const present = new Uint8Array(n);
  texts.forEach((text, i) => {
    const shingles = wordShingles(text, opts.shingleSize, opts.maxTextLength, opts.seed);
    present[i] = hasher.signatureInto(shingles, signatures, i * size) ? 1 : 0;
  });

  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i] as number] as number;
      i = parent[i] as number;
    }
    return i;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  // Exact duplicates: same digest.
  const firstWithDigest = new Map<string, number>();
  table.digests.forEach((d, i) => {
    const first = firstWithDigest.get(d);
    if (first === undefined) firstWithDigest.set(d, i);
    else union(first, i);
  });
  // Near duplicates: LSH candidates verified by the estimated Jaccard similarity.
  const banding = lshBanding(opts.threshold, size);
  const pairs = lshCandidatePairs(signatures, n, size, banding, present);
  const degree = new Int32Array(n);
  let verified = 0;
  for (let x = 0; x < pairs.length; x += 2) {
    const a = pairs[x] as number;
    const b = pairs[x + 1] as number;
    if (estimateJaccard(signatures, signatures, size, a * size, b * size) < opts.threshold) continue;
    verified++;
    degree[a] = (degree[a] as number) + 1;
    degree[b] = (degree[b] as number) + 1;
    union(a, b);
  }

  const byRoot = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const r = find(i);
    const list = byRoot.get(r);
    if (list === undefined) byRoot.set(r, [i]);
    else list.push(i);
  }
  const clusters: Cluster[] = [];
  for (const members of byRoot.values()) {
    if (members.length < 2) continue;
    let representative = members[0] as number;
    for (const m of members)
      if ((degree[m] as number) > (degree[representative] as number)) representative = m;
    clusters.push({
      id: 0,
      members,
      distinct: new Set(members.map((m) => table.digests[m])).size,
      representative,
      logExpected: 0,
      burst: false,
    });
  }
  clusters.sort(
    (a, b) => b.members.length - a.members.length || (a.members[0] as number) - (b.members[0] as number),
  );
  clusters.forEach((c, i) => (c.id = i + 1));
  const fit = judgeSizes(clusters, opts);

  const scores = new Float64Array(n);
  const flagged = new Uint8Array(n);
  const findings: Finding[] = [];
  const logAlpha = Math.log(opts.alpha);
  const sampleFindings: Finding[] = [];
  for (const c of clusters) {
    const score = Math.max(0, -c.logExpected / Math.LN10);
    for (const m of c.members) scores[m] = score;
    if (!c.burst) continue;
    const repAt = c.representative * size;
    for (const m of c.members) {
      flagged[m] = 1;
      sampleFindings.push({
        subjectType: "sample",
        subjectId: table.digests[m] ?? "",
        kind: "near-duplicate-burst",
        score,
        evidence: {
          id: table.ids[m],
          cluster: c.id,
          clusterSize: c.members.length,
          representative: table.ids[c.representative],
          jaccard:
            m === c.representative || present[m] === 0 || present[c.representative] === 0
              ? 1
              : estimateJaccard(signatures, signatures, size, m * size, repAt),
          exactDuplicate: table.digests[m] === table.digests[c.representative],
        },
        check: NAME,
        checkVersion: VERSION,
      });
    }
  }
  const sourceRows =
    table.sources === undefined ? [] : implicatedSources(clusters, table.sources, opts.alpha);
  for (const s of sourceRows) {
    findings.push({
      subjectType: "source",
      subjectId: s.source,
      kind: "near-duplicate-burst",
      score: s.score,
      evidence: { ...s },
      check: NAME,
      checkVersion: VERSION,
    });
  }
  findings.push(...sampleFindings);

  const exactGroups = [...firstWithDigest.keys()].length;
  const duplicateSamples = n - exactGroups;
  const row = (c: Cluster) => ({
    cluster: c.id,
    size: c.members.length,
    distinctContents: c.distinct,
    representative: table.ids[c.representative],
    expectedNaturalClusters: Math.exp(c.logExpected),
    burst: c.burst,
    ...(table.sources === undefined ? {} : { sources: sourceCounts(c.members, table.sources) }),
  });
  const warnings: string[] = [];
  const truncated = texts.filter((t) => t.length > opts.maxTextLength).length;
  if (truncated > 0)
    warnings.push(
      `${truncated} texts are longer than ${opts.maxTextLength} characters; only their start was shingled.`,
    );
  if (fit.fallback)
    warnings.push(
      `only ${clusters.length} duplicate clusters: too few to learn their natural sizes, a Zipf law (exponent 2) was assumed.`,
    );
  return {
    detector: NAME,
    version: VERSION,
    scores,
    flagged,
    threshold: {
      value: -logAlpha / Math.LN10,
      method:
        `−log10 of the expected number of natural duplicate clusters at least as large (discrete power law ` +
        `fitted to the other clusters' sizes); a cluster of ≥ ${opts.minBurstSize} samples is a burst below α = ${opts.alpha}`,
    },
    findings,
    summary: {
      shingles: `word ${opts.shingleSize}-grams (features/text.ts tokenize)`,
      minhash: { size, bands: banding.bands, rows: banding.rows, threshold: opts.threshold },
      candidatePairs: pairs.length / 2,
      verifiedPairs: verified,
      exactDuplicates: { groups: exactDuplicateGroups(table.digests), extraCopies: duplicateSamples },
      clusters: clusters.length,
      samplesInClusters: clusters.reduce((a, c) => a + c.members.length, 0),
      sizeLaw: { exponent: fit.exponent, clustersFitted: clusters.length },
      bursts: clusters.filter((c) => c.burst).map(row),
      topClusters: clusters.slice(0, opts.topClusters).map(row),
      implicatedSources: sourceRows,
    },
    warnings,
  };
}

function exactDuplicateGroups(digests: readonly string[]): number {
  const counts = new Map<string, number>();
  for (const d of digests) counts.set(d, (counts.get(d) ?? 0) + 1);
  let groups = 0;
  for (const c of counts.values()) if (c > 1) groups++;
  return groups;
}

function sourceCounts(
  members: readonly number[],
  sources: readonly (string | null)[],
): Record<string, number> {
  const out = Object.create(null) as Record<string, number>; // keyed by source names: no inherited keys
  for (const m of members) {
    const s = sources[m] ?? "(none)";
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cluster sizes against a discrete power law.

const S_MIN = 2;
// The exponent assumed when there are too few other clusters to fit one: Zipf's law, a heavy tail.
const FALLBACK_EXPONENT = 2;
const MIN_CLUSTERS_TO_FIT = 10;

/**
 * Sets each cluster's expected natural count and burst flag. The exponent is fitted once per
 * tested cluster, leaving that cluster out; only clusters of at least minBurstSize are tested.
 */
function judgeSizes(
  clusters: Cluster[],
  opts: NearDuplicateOptions,
): { exponent: number; fallback: boolean } {
  const c = clusters.length;
  let sumLog = 0;
  for (const cl of clusters) sumLog += Math.log(cl.members.length);
  const fallback = c - 1 < MIN_CLUSTERS_TO_FIT;
  const exponentWithout = (size: number): number =>
    fallback ? FALLBACK_EXPONENT : fitPowerLaw(sumLog - Math.log(size), c - 1);
  const logAlpha = Math.log(opts.alpha);
  for (const cl of clusters) {
    const s = cl.members.length;
    if (s < opts.minBurstSize) {
      cl.logExpected = Math.log(c);
      continue;
    }
    const gamma = exponentWithout(s);
    cl.logExpected = Math.log(c) + Math.log(hurwitzZeta(gamma, s)) - Math.log(hurwitzZeta(gamma, S_MIN));
    cl.burst = cl.logExpected < logAlpha;
  }
  return { exponent: fallback ? FALLBACK_EXPONENT : fitPowerLaw(sumLog, c), fallback };
}

/** Maximum-likelihood exponent of a discrete power law on {2, 3, …} from n sizes with Σ ln s = sumLog. */
export function fitPowerLaw(sumLog: number, n: number): number {
  if (n === 0) return FALLBACK_EXPONENT;
  // Log-likelihood: −γ Σ ln s − n ln ζ(γ, 2); concave in γ.
  const negLogLik = (g: number) => g * sumLog + n * Math.log(hurwitzZeta(g, S_MIN));
  return goldenSectionMin(negLogLik, 1.01, 20, 60);
}

/** Hurwitz zeta ζ(s, a) = Σ_{k≥0} (a + k)^−s for s > 1, a > 0 (Euler–Maclaurin after 16 terms). */
export function hurwitzZeta(s: number, a: number): number {
  const terms = 16;
  let sum = 0;
  for (let k = 0; k < terms; k++) sum += (a + k) ** -s;
  const x = a + terms;
  // Tail ∫ + half the first term + Bernoulli corrections B2/2!, B4/4!, B6/6!.
  sum += x ** (1 - s) / (s - 1) + 0.5 * x ** -s;
  sum += (s * x ** (-s - 1)) / 12;
  sum -= (s * (s + 1) * (s + 2) * x ** (-s - 3)) / 720;
  sum += (s * (s + 1) * (s + 2) * (s + 3) * (s + 4) * x ** (-s - 5)) / 30240;
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Sources behind bursts.

interface SourceRow {
  source: string;
  /** −log10 of the combined concentration p-value (Bonferroni over bursts × sources). */
  score: number;
  clusters: number[];
  /** Burst members from this source, and all burst members. */
  members: number;
  burstSize: number;
  share: number;
  /** The source's share of the whole dataset. */
  baseShare: number;
  log10PValue: number;
}

/**
 * A source is implicated when a burst's members come from it far more often than its share of
 * the dataset predicts (one-sided binomial tail, Bonferroni over bursts × sources) and it holds
 * most of the burst.
 */
function implicatedSources(
  clusters: readonly Cluster[],
  sources: readonly (string | null)[],
  alpha: number,
): SourceRow[] {
  const bursts = clusters.filter((c) => c.burst);
  if (bursts.length === 0) return [];
  const total = new Map<string, number>();
  for (const s of sources) if (s !== null) total.set(s, (total.get(s) ?? 0) + 1);
  const n = sources.length;
  const tests = Math.max(1, bursts.length * total.size);
  const rows = new Map<string, SourceRow>();
  for (const c of bursts) {
    const counts = new Map<string, number>();
    for (const m of c.members) {
      const s = sources[m];
      if (s !== null && s !== undefined) counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    for (const [source, x] of counts) {
      const size = c.members.length;
      if (x * 2 <= size) continue; // not most of the burst
      const base = (total.get(source) ?? 0) / n;
      const logP = logBinomialTail(x, size, base) + Math.log(tests);
      if (logP > Math.log(alpha)) continue;
      const row = rows.get(source) ?? {
        source,
        score: 0,
        clusters: [],
        members: 0,
        burstSize: 0,
        share: 0,
        baseShare: base,
        log10PValue: 0,
      };
      row.clusters.push(c.id);
      row.members += x;
      row.burstSize += size;
      row.share = row.members / row.burstSize;
      row.log10PValue = Math.min(row.log10PValue, logP / Math.LN10);
      row.score = -row.log10PValue;
      rows.set(source, row);
    }
  }
  return [...rows.values()].sort((a, b) => b.score - a.score);
}

/** ln P(X ≥ x) for X ~ Binomial(n, p), summed in log space. */
export function logBinomialTail(x: number, n: number, p: number): number {
  if (x <= 0) return 0;
  if (p <= 0) return -Infinity;
  if (p >= 1) return 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  let logChoose = 0; // ln C(n, k), built up from k = 0
  for (let k = 1; k <= x; k++) logChoose += Math.log((n - k + 1) / k);
  let total = -Infinity;
  for (let k = x; k <= n; k++) {
    const term = logChoose + k * lp + (n - k) * lq;
    total =
      total === -Infinity ? term : Math.max(total, term) + Math.log1p(Math.exp(-Math.abs(total - term)));
    if (term < total - 40) break;
    logChoose += Math.log((n - k) / (k + 1));
  }
  return Math.min(0, total);
}
