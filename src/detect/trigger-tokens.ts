// Text backdoor triggers (Dai, Chen & Li, 2019; Chen et al., BadNL, 2021): a rare token or an
// innocuous phrase inserted into texts of other classes, which are then relabeled as the target.
// Seen from the labels alone, a trigger is an n-gram whose documents are almost all of one class.
// So are thousands of natural n-grams — in SpamAssassin every mailing-list footer and relay host
// is pure ham or pure spam — so purity against the class base rate cannot tell them apart. What
// does: a natural n-gram's documents *read like* their class without it (the footer's other words,
// the spam's other words), while a trigger's documents read like the class they were taken from.
//
// The test therefore asks, for each n-gram g and class j: given what the rest of each document
// says, how surprising is it that so many of g's documents are labeled j? "The rest" is a
// leave-one-out binarized multinomial naive Bayes over the document's words with g's own words
// removed, calibrated by a temperature and a floor fitted to its leave-one-out log loss (Guo et
// al., 2017). Two tests, and a trigger is an n-gram × class that both reject (an intersection–
// union test: its p-value is the larger of the two):
// - the share test. The null hypothesis is that g forces the label j on at most a share θ₀
//   (`triggerShare`) of its documents and the rest follow the content model; the number of g's
//   documents *not* labeled j is then a sum of independent Bernoullis (Poisson–binomial), and the
//   p-value is its exact lower tail. Each document adds at most −log θ₀ to the evidence, so the
//   naive Bayes model's clustered confident errors cannot carry it: in clean SpamAssassin "zzz
//   localhost single" is in 35 hard-ham emails (legitimate mail that resembles spam), 7 of which
//   read like spam with p(ham) < 0.05 against 0.1 expected — p = 10^−13, a trigger by the second
//   test alone.
// - the mismatched-carrier test, as trigger-patches.ts judges image carriers: g's documents
//   labeled j to which the content model without g gives j less than `maxLabelProbability`
//   (confidently another class), counted against the model's own expectation of such
//   disagreements (the sum of those documents' probabilities of j; exact Poisson–binomial upper
//   tail). This is the dirty-label signature, and what sets a trigger apart from a relay host in
//   252 spam emails that passes the share test because 13% of them read somewhat like ham: one
//   of them reads like ham confidently.
// Every n-gram in the document-frequency range is one test per class; Bonferroni over all of
// them bounds the family-wise error at `alpha`, so no poison rate is assumed. A cheap purity
// screen against the base rate (one-sided hypergeometric tail) decides which n-grams get the
// exact tests; the correction still counts every n-gram in range. Significant n-grams that
// overlap in the same documents are merged into one phrase and re-tested as a whole.
//
// Why two tests (1.1.0): 1.0 asked instead that most of g's documents read like another class
// (`minMismatch` 0.5). That fails when the attacker picks a token that is also a natural one — an
// abbreviation or a header fragment already in clean documents of the target: natural carriers
// dilute the share (60 poisoned carriers of "rpms", which is in 97 clean ham emails: 0.34, not
// found), and where they do not, every carrier was flagged, the natural ones included (1.0 on
// "iirc", in 37: precision 0.62). The mismatched carriers are not diluted. Nor is a carrier
// flagged because it holds g: the target's carriers are a mixture of the attacker's, taken from
// other classes, and natural ones that read like the target, and only those more likely the
// attacker's are flagged (`attackerCarriers`); a rare token has no natural carriers and all of
// them are. The dataset-level finding reports both counts. Measured on SpamAssassin
// (test/detect/trigger-tokens-natural.test.ts): "rpms" → ham at 1% precision 1.00, recall 0.93,
// at 0.5% 1.00 / 0.90; "gnu", in 253 clean ham emails, at 1% 1.00 / 0.88; none of their natural
// carriers flagged. The attacker's carriers it misses are spam whose own text already reads like
// ham: nothing in the text tells them from natural carriers.
//
// A trigger's dataset-level finding has the dataset's content root as subject: the Merkle root
// (provenance/merkle.ts) over its sorted unique sample digests, which is the merkleRoot of the
// ledger version holding exactly these samples.
//
// N-grams are counted level by level (Apriori, Agrawal & Srikant, 1994): an n-gram is counted
// only if both of its (n−1)-grams occur in at least `minCount` documents, which is what keeps
// the count tables small (most n-grams of e-mail are unique header ids).
//
// Tokens are the featurizers' (`tokenize` in features/text.ts): NFC, lower-cased runs of a letter
// or digit followed by letters, digits and combining marks; punctuation and whitespace separate
// tokens and are not tokens. An n-gram is n consecutive tokens, shown joined by one space.
import { z } from "zod";
import { parseOptions } from "../features/options.js";
import { tokenize } from "../features/text.js";
import type { Finding } from "../ledger/types.js";
import { merkleRoot } from "../provenance/merkle.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";
import { goldenSectionMin } from "../math/optimize.js";
import { logHypergeometricTail, logPoissonBinomialCdf } from "../math/tails.js";

export const triggerTokenOptionsSchema = z.object({
  /** Longest n-gram counted; longer phrases are found by merging overlapping n-grams. */
  maxOrder: z.number().int().min(1).max(5).default(3),
  /** N-grams in fewer labeled documents are not tested (nor extended to longer n-grams). */
  minCount: z.number().int().min(2).default(5),
  /** N-grams in more than this fraction of labeled documents are not trigger candidates. */
  maxDocumentFrequency: z.number().gt(0).lte(1).default(0.2),
  /** Family-wise error rate over all n-gram × class tests (Bonferroni). */
  alpha: z.number().gt(0).lt(1).default(0.01),
  /**
   * The null hypothesis: an n-gram decides the label of at most this share of its documents,
   * beyond what their other words say. Discriminative words decide a small share (the rest of
   * the text already says the class: "8bit" in SpamAssassin, ≈ 0.09); a trigger decides nearly
   * all. Lower is more sensitive and less specific; each trigger document adds at most
   * −log10(share) to the evidence, so about log10(tests / alpha) / −log10(share) poisoned
   * documents are needed (≈ 13 at 0.25 on SpamAssassin).
   */
  triggerShare: z.number().gt(0).lt(1).default(0.25),
  /**
   * A trigger's carrier is mismatched when the content model without the n-gram gives its label
   * less than this: confidently another class. Higher counts softly misread documents as well:
   * at 0.2 a relay host's n-gram in 252 spam emails ("by zzzzason") became a trigger in
   * SpamAssassin (poisoned with "nmh"); 0.02, 0.05 and 0.1 find the same triggers and none in
   * the clean corpus.
   */
  maxLabelProbability: z.number().gt(0).lt(1).default(0.05),
  /** Base-rate purity screen: only n-grams whose hypergeometric tail is at most this get the exact test. */
  screenP: z.number().gt(0).lte(1).default(0.01),
  /** Laplace smoothing of the content model's word probabilities. */
  smoothing: z.number().gt(0).default(1),
  /** Only the first this many UTF-16 code units of a text are tokenized. */
  maxTextLength: z.number().int().positive().default(200_000),
  /** Rows of the candidate table in the summary. */
  topCandidates: z.number().int().min(1).max(1000).default(20),
});
export type TriggerTokenOptions = z.output<typeof triggerTokenOptionsSchema>;

const NAME = "trigger-tokens";
const VERSION = "1.1.0";

export const triggerTokens: Detector<TriggerTokenOptions> = {
  name: NAME,
  version: VERSION,
  appliesTo(table) {
    if (table.texts === undefined) return "the dataset has no text";
    if (table.classes.length < 2) return "it needs at least two classes";
    let labeled = 0;
    for (const l of table.labels) if (l >= 0) labeled++;
    return labeled < 2 ? "fewer than two samples are labeled" : null;
  },
  run(table, options = {}) {
    const opts = parseOptions(triggerTokenOptionsSchema, options, `${NAME} options`);
    return detectTriggers(table, opts);
  },
};

/** One tested n-gram (or merged phrase) with its statistics. */
interface Candidate {
  tokens: number[];
  target: number;
  /** Labeled documents containing it, ascending, and the token position of its first occurrence in each. */
  docs: Int32Array;
  positions: Int32Array;
  /** Of those, how many are labeled `target`. */
  inTarget: number;
  /** ln of the base-rate hypergeometric tail (the screen). */
  logBaseP: number;
  /** ln of the content-conditional p-value, and the target count the content model expects. */
  logPShare: number;
  expected: number;
  /** Carriers (labeled `target`) the content model without the n-gram gives `target` less than the bar. */
  mismatched: number;
  /** Their count the content model expects, and ln of the upper tail of the observed count. */
  expectedMismatched: number;
  logPMismatched: number;
}

type TestResult = Pick<
  Candidate,
  "logPShare" | "expected" | "inTarget" | "mismatched" | "expectedMismatched" | "logPMismatched"
>;

function detectTriggers(table: ScanTable, opts: TriggerTokenOptions): DetectorResult {
  const texts = table.texts ?? [];
  const n = table.ids.length;
  const k = table.classes.length;
  const corpus = tokenizeCorpus(texts, table.labels, opts.maxTextLength);
  const classDocs = new Int32Array(k);
  for (const l of table.labels) if (l >= 0) classDocs[l] = (classDocs[l] ?? 0) + 1;
  const labeled = classDocs.reduce((a, b) => a + b, 0);

  const maxDf = Math.max(opts.minCount, Math.floor(opts.maxDocumentFrequency * labeled));
  const screened: Candidate[] = [];
  let tested = 0;
  const levels = [wordLevel(corpus, table.labels, k)];
  for (let order = 1; order <= opts.maxOrder; order++) {
    const level = levels[order - 1] as Level;
    if (order > 1) (levels[order - 2] as Level).rowAt = new Int32Array(0); // only needed to build this one
    const { candidates, inRange } = screenLevel(level, levels, corpus, classDocs, labeled, maxDf, opts);
    tested += inRange * k;
    screened.push(...candidates);
    if (order === opts.maxOrder || level.size === 0) break;
    levels.push(extendLevel(level, corpus, table.labels, k, opts.minCount));
  }
  const model = new ContentModel(corpus, levels[0] as Level, table.labels, classDocs, opts.smoothing);
  const logAlpha = Math.log(opts.alpha);
  const logTests = Math.log(Math.max(1, tested));
  // Exact tails where they could matter; elsewhere the Chernoff bound (see ContentModel.test).
  const logExactBelow = logAlpha - logTests + EXACT_MARGIN;
  for (const c of screened)
    Object.assign(
      c,
      model.test(c.tokens, c.target, c.docs, opts.triggerShare, logExactBelow, opts.maxLabelProbability),
    );
  // Both tests must reject (an intersection–union test: its p-value is the larger of the two).
  const isTrigger = (c: Candidate) => evidence(c) + logTests <= logAlpha;
  const triggers = mergePhrases(
    screened.filter(isTrigger),
    corpus,
    table.labels,
    model,
    opts.triggerShare,
    opts.maxLabelProbability,
  ).filter(isTrigger);
  triggers.sort((a, b) => evidence(a) - evidence(b));

  const strength = (c: Candidate) => Math.max(0, -(evidence(c) + logTests) / Math.LN10);
  const carriersMemo = new Map<Candidate, AttackerCarriers>();
  const carriersOf = (c: Candidate): AttackerCarriers => {
    let v = carriersMemo.get(c);
    if (v === undefined) carriersMemo.set(c, (v = attackerCarriers(c, model)));
    return v;
  };
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) scores[i] = (table.labels[i] ?? -1) < 0 ? NaN : 0;
  // Graded scores below the threshold from the tested n-grams that look like triggers but fall
  // short of significance, so that an ensemble can rank there too; flagged samples score above it.
  const threshold = -Math.log10(opts.alpha);
  for (const c of screened) {
    const s = strength(c);
    if (s > 0 && s < threshold)
      for (const doc of carriersOf(c).docs) scores[doc] = Math.max(scores[doc] ?? 0, s);
  }
  const datasetId = merkleRoot([...new Set(table.digests)].sort());
  const flagged = new Uint8Array(n);
  const findings: Finding[] = [];
  const shown = new Map<number, { ngram: string; offset: number | null; strength: number }>();
  const rows = new Map<Candidate, Record<string, unknown>>();
  const rowOf = (c: Candidate): Record<string, unknown> => {
    let row = rows.get(c);
    if (row === undefined) {
      const ngram = gramText(c.tokens, corpus);
      row = candidateRow(c, ngram, table.classes, classDocs, labeled, logTests, carriersOf(c));
      rows.set(c, row);
    }
    return row;
  };
  for (const c of triggers) {
    const s = strength(c);
    const ngram = gramText(c.tokens, corpus);
    findings.push({
      subjectType: "dataset",
      subjectId: datasetId,
      kind: "trigger-token",
      score: s,
      evidence: { ...rowOf(c) },
      check: NAME,
      checkVersion: VERSION,
    });
    // Only the carriers more likely the attacker's than natural ones (see attackerCarriers).
    for (const doc of carriersOf(c).docs) {
      scores[doc] = Math.max(scores[doc] ?? 0, s);
      flagged[doc] = 1;
      const prev = shown.get(doc);
      if (prev === undefined || prev.strength < s)
        shown.set(doc, { ngram, offset: matchOffset(texts[doc] ?? "", c.tokens, corpus), strength: s });
    }
  }
  for (const [doc, why] of [...shown].sort((a, b) => a[0] - b[0])) {
    findings.push({
      subjectType: "sample",
      subjectId: table.digests[doc] ?? "",
      kind: "trigger-token",
      score: why.strength,
      evidence: {
        id: table.ids[doc],
        ngram: why.ngram,
        target: table.classes[table.labels[doc] ?? 0],
        offset: why.offset,
      },
      check: NAME,
      checkVersion: VERSION,
    });
  }

  const top = [...screened].sort((a, b) => evidence(a) - evidence(b)).slice(0, opts.topCandidates);
  const warnings: string[] = [];
  if (labeled < n) warnings.push(`${n - labeled} unlabeled samples were not tested.`);
  const truncated = texts.filter((t) => t.length > opts.maxTextLength).length;
  if (truncated > 0)
    warnings.push(
      `${truncated} texts are longer than ${opts.maxTextLength} characters; only their start was read.`,
    );
  return {
    detector: NAME,
    version: VERSION,
    scores,
    flagged,
    threshold: {
      value: threshold,
      method:
        `−log10 of the Bonferroni-adjusted p-value over ${tested.toLocaleString("en-US")} n-gram × class tests ` +
        `(family-wise α = ${opts.alpha}); a sample is flagged when it carries a significant trigger and ` +
        `its target label and is more likely the attacker's carrier than a natural one`,
    },
    findings,
    summary: {
      tokenizer: "features/text.ts tokenize: NFC, lower-cased letter/digit runs",
      orders: [1, opts.maxOrder],
      tests: tested,
      screened: screened.length,
      contentModel: {
        kind: "leave-one-out binarized multinomial naive Bayes",
        temperature: model.temperature,
        floor: model.floor,
      },
      triggers: triggers.map(rowOf),
      topCandidates: top.map(rowOf),
    },
    warnings,
  };
}

// Exact p-values for candidates whose Chernoff bound is within e^20 of the significance level.
const EXACT_MARGIN = 20;

function candidateRow(
  c: Candidate,
  ngram: string,
  classes: readonly string[],
  classDocs: Int32Array,
  labeled: number,
  logTests: number,
  carriers: AttackerCarriers,
): Record<string, unknown> {
  const logP = evidence(c);
  return {
    ngram,
    target: classes[c.target],
    count: c.docs.length,
    targetCount: c.inTarget,
    // The target's carriers split: the attacker's (flagged) and those whose text reads like the target.
    flaggedCarriers: carriers.docs.length,
    naturalCarriers: c.inTarget - carriers.docs.length,
    attackerShare: carriers.share,
    purity: c.inTarget / c.docs.length,
    baseRate: (classDocs[c.target] ?? 0) / labeled,
    expectedTargetCount: c.expected,
    mismatch: mismatch(c),
    // Method of moments under "the n-gram forces the target on a share θ, the rest follow the content":
    // E[target] = θ·count + (1 − θ)·expected.
    triggerShare: c.docs.length > c.expected ? (c.inTarget - c.expected) / (c.docs.length - c.expected) : 0,
    mismatchedCarriers: c.mismatched,
    expectedMismatchedCarriers: c.expectedMismatched,
    // The trigger's p-value is the larger of its two tests'.
    pValue: Math.exp(logP),
    log10PValue: logP / Math.LN10,
    log10AdjustedPValue: Math.min(0, (logP + logTests) / Math.LN10),
    log10SharePValue: c.logPShare / Math.LN10,
    log10MismatchedPValue: c.logPMismatched / Math.LN10,
    log10BaseRatePValue: c.logBaseP / Math.LN10,
  };
}

/** ln of a candidate's p-value: both tests must reject, so the larger of the two. */
function evidence(c: Candidate): number {
  return Math.max(c.logPShare, c.logPMismatched);
}

/** Share of the n-gram's documents that the content model expects to be of another class. */
function mismatch(c: Candidate): number {
  return c.docs.length === 0 ? 0 : 1 - c.expected / c.docs.length;
}

interface AttackerCarriers {
  /** The carriers more likely the attacker's than natural, ascending. */
  docs: number[];
  /** The fitted share of the attacker's among the target's carriers. */
  share: number;
}

/**
 * Which of the n-gram's target carriers are the attacker's. They are a mixture: the attacker's,
 * taken from other classes (their text, without the n-gram, reads like another class), and natural
 * ones whose text reads like the target. With q the content model's calibrated probability of the
 * target for a carrier and π the target's base rate, its likelihood is ∝ (1 − q)/(1 − π) as the
 * attacker's and ∝ q/π as natural; the attacker's share θ is the maximum-likelihood mixing weight
 * (the log-likelihood is concave in θ), and a carrier is the attacker's when its posterior exceeds
 * one half. A rare token has no natural carriers (θ = 1) and every carrier is flagged; a natural
 * token keeps its natural carriers out.
 */
function attackerCarriers(c: Candidate, model: ContentModel): AttackerCarriers {
  const carriers = c.docs.filter((d) => model.labelOf(d) === c.target);
  const q = model.labelProbabilities(c.tokens, c.target, carriers);
  const prior = model.priorOf(c.target);
  // Likelihood ratio natural : attacker's for each carrier.
  const ratio = Float64Array.from(q, (qi) => qi / prior / ((1 - qi) / (1 - prior)));
  // d/dθ Σ ln(θ + (1 − θ)·ratio) = Σ (1 − ratio) / (θ + (1 − θ)·ratio), decreasing in θ.
  const slope = (theta: number) => {
    let s = 0;
    for (const r of ratio) s += (1 - r) / (theta + (1 - theta) * r);
    return s;
  };
  let share: number;
  if (carriers.length === 0 || slope(1) >= 0) share = carriers.length === 0 ? 0 : 1;
  else if (slope(0) <= 0) share = 0;
  else {
    let lo = 0;
    let hi = 1;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (slope(mid) > 0) lo = mid;
      else hi = mid;
    }
    share = (lo + hi) / 2;
  }
  const docs: number[] = [];
  carriers.forEach((d, i) => {
    // Posterior odds attacker's : natural = θ / ((1 − θ) · ratio).
    if (share > (1 - share) * (ratio[i] as number)) docs.push(d);
  });
  return { docs, share };
}

// ---------------------------------------------------------------------------------------------
// Corpus: every text as token ids (CSR), with the vocabulary.

interface Corpus {
  vocabulary: string[];
  /** Tokens of document d are ids[offsets[d] .. offsets[d + 1]). */
  offsets: Int32Array;
  ids: Int32Array;
}

function tokenizeCorpus(texts: readonly string[], labels: Int32Array, maxTextLength: number): Corpus {
  const index = new Map<string, number>();
  const vocabulary: string[] = [];
  const offsets = new Int32Array(texts.length + 1);
  let ids = new Int32Array(1 << 16);
  let at = 0;
  texts.forEach((text, d) => {
    // Unlabeled texts can neither carry a trigger's label nor argue against one.
    const tokens = (labels[d] ?? -1) < 0 ? [] : tokenize(text, maxTextLength);
    if (at + tokens.length > ids.length) {
      const bigger = new Int32Array(Math.max(ids.length * 2, at + tokens.length));
      bigger.set(ids);
      ids = bigger;
    }
    for (const t of tokens) {
      let id = index.get(t);
      if (id === undefined) {
        id = vocabulary.length;
        index.set(t, id);
        vocabulary.push(t);
      }
      ids[at++] = id;
    }
    offsets[d + 1] = at;
  });
  return { vocabulary, offsets, ids: ids.subarray(0, at) };
}

function gramText(tokens: readonly number[], corpus: Corpus): string {
  return tokens.map((t) => corpus.vocabulary[t] ?? "").join(" ");
}

// ---------------------------------------------------------------------------------------------
// Level-wise n-gram document frequencies per class.

/** The n-grams of one order: row r is (prefix row of order n−1, last token); order 1 rows are token ids. */
interface Level {
  order: number;
  size: number;
  prefix: Int32Array;
  last: Int32Array;
  /** Labeled documents containing the n-gram, and how many of them per class (row-major rows × k). */
  df: Int32Array;
  classDf: Int32Array;
  /** Row of the n-gram starting at each corpus position (−1: none, or not counted). */
  rowAt: Int32Array;
}

function wordLevel(corpus: Corpus, labels: Int32Array, k: number): Level {
  const v = corpus.vocabulary.length;
  const level: Level = {
    order: 1,
    size: v,
    prefix: new Int32Array(v).fill(-1),
    last: Int32Array.from({ length: v }, (_, i) => i),
    df: new Int32Array(v),
    classDf: new Int32Array(v * k),
    rowAt: corpus.ids, // read only
  };
  const lastDoc = new Int32Array(v).fill(-1);
  forEachDoc(corpus, (d, start, end) => {
    const y = labels[d] ?? -1;
    for (let p = start; p < end; p++) {
      const t = corpus.ids[p] as number;
      if (lastDoc[t] === d) continue;
      lastDoc[t] = d;
      level.df[t] = (level.df[t] as number) + 1;
      level.classDf[t * k + y] = (level.classDf[t * k + y] as number) + 1;
    }
  });
  return level;
}

/** Order n from order n−1: counted where both (n−1)-grams it contains are frequent. */
function extendLevel(prev: Level, corpus: Corpus, labels: Int32Array, k: number, minCount: number): Level {
  const order = prev.order + 1;
  const v = corpus.vocabulary.length;
  // Sized for about four n-grams per frequent (n−1)-gram, so that it rarely has to grow.
  const index = new KeyIndex(Math.min(23, Math.max(16, Math.ceil(Math.log2(prev.size * 4 + 1)))));
  const rows = new GrowableRows(k);
  const rowAt = new Int32Array(corpus.ids.length).fill(-1);
  const frequent = new Uint8Array(prev.size);
  for (let r = 0; r < prev.size; r++) frequent[r] = (prev.df[r] as number) >= minCount ? 1 : 0;
  forEachDoc(corpus, (d, start, end) => {
    const y = labels[d] ?? -1;
    for (let p = start; p + order <= end; p++) {
      const a = prev.rowAt[p] as number;
      const b = prev.rowAt[p + 1] as number;
      if (a < 0 || b < 0 || frequent[a] === 0 || frequent[b] === 0) continue;
      const token = corpus.ids[p + order - 1] as number;
      let r = index.getOrAdd(a * v + token, rows.size);
      if (r === rows.size) r = rows.add(a, token);
      rowAt[p] = r;
      rows.countDoc(r, d, y);
    }
  });
  return { order, size: rows.size, ...rows.columns(), rowAt };
}

function forEachDoc(corpus: Corpus, visit: (doc: number, start: number, end: number) => void): void {
  for (let d = 0; d + 1 < corpus.offsets.length; d++) {
    const start = corpus.offsets[d] as number;
    const end = corpus.offsets[d + 1] as number;
    if (end > start) visit(d, start, end);
  }
}

/** Tokens of row r of `level`. */
function rowTokens(levels: readonly Level[], order: number, r: number): number[] {
  const out: number[] = [];
  for (let o = order; o >= 1; o--) {
    const level = levels[o - 1] as Level;
    out.push(level.last[r] as number);
    r = level.prefix[r] as number;
  }
  return out.reverse();
}

/**
 * The n-grams of one level in the document-frequency range, and those whose purity for some
 * class passes the base-rate screen, with their documents.
 */
function screenLevel(
  level: Level,
  levels: readonly Level[],
  corpus: Corpus,
  classDocs: Int32Array,
  labeled: number,
  maxDf: number,
  opts: TriggerTokenOptions,
): { candidates: Candidate[]; inRange: number } {
  const k = classDocs.length;
  const logScreen = Math.log(opts.screenP);
  const slot = new Int32Array(level.size).fill(-1);
  const picked: { row: number; target: number; logBaseP: number }[] = [];
  let inRange = 0;
  for (let r = 0; r < level.size; r++) {
    const c = level.df[r] as number;
    if (c < opts.minCount || c > maxDf) continue;
    inRange++;
    let best = 0;
    let target = -1;
    for (let j = 0; j < k; j++) {
      const x = level.classDf[r * k + j] as number;
      // Purity below what the null gives even for documents that say nothing of their class.
      const base = (classDocs[j] as number) / labeled;
      if (x < c * (opts.triggerShare + (1 - opts.triggerShare) * base)) continue;
      const lp = logHypergeometricTail(x, labeled, classDocs[j] as number, c);
      if (lp < best) {
        best = lp;
        target = j;
      }
    }
    if (target >= 0 && best <= logScreen) {
      slot[r] = picked.length;
      picked.push({ row: r, target, logBaseP: best });
    }
  }
  // Documents (and first positions) of the picked n-grams, in one pass over the positions.
  const starts = new Int32Array(picked.length + 1);
  picked.forEach((p, i) => (starts[i + 1] = (starts[i] as number) + (level.df[p.row] as number)));
  const docs = new Int32Array(starts[picked.length] as number);
  const positions = new Int32Array(docs.length);
  const filled = new Int32Array(picked.length);
  const lastDoc = new Int32Array(picked.length).fill(-1);
  if (picked.length > 0) {
    forEachDoc(corpus, (d, start, end) => {
      for (let p = start; p < end; p++) {
        const r = level.rowAt[p] as number;
        const s = r < 0 ? -1 : (slot[r] as number);
        if (s < 0 || lastDoc[s] === d) continue;
        lastDoc[s] = d;
        const at = (starts[s] as number) + (filled[s] as number);
        docs[at] = d;
        positions[at] = p - start;
        filled[s] = (filled[s] as number) + 1;
      }
    });
  }
  const candidates = picked.map((p, s): Candidate => {
    const from = starts[s] as number;
    const to = starts[s + 1] as number;
    return {
      tokens: rowTokens(levels, level.order, p.row),
      target: p.target,
      docs: docs.subarray(from, to),
      positions: positions.subarray(from, to),
      inTarget: level.classDf[p.row * k + p.target] as number,
      logBaseP: p.logBaseP,
      logPShare: 0,
      expected: 0,
      mismatched: 0,
      expectedMismatched: 0,
      logPMismatched: 0,
    };
  });
  return { candidates, inRange };
}

// ---------------------------------------------------------------------------------------------
// The content model and the conditional test.

/**
 * Leave-one-out binarized multinomial naive Bayes (each word counted once per document; Wang &
 * Manning, 2012) over all tokens. Leave-one-out is exact for naive Bayes: subtract the document's
 * own counts. Naive Bayes is famously overconfident, the more so the longer the text, so its
 * probabilities are calibrated by a temperature T and a floor ε — with probability ε the model
 * knows nothing and the label follows the base rate π:
 *   q(j | doc) = (1 − ε) · softmax(logJoint / T)_j + ε · π_j,
 * both fitted to the leave-one-out log loss. The floor is what keeps one confidently mis-modelled
 * document from making a natural n-gram look impossible.
 */
class ContentModel {
  readonly temperature: number;
  readonly floor: number;
  private readonly k: number;
  private readonly prior: Float64Array;
  /** Per document, per class: the leave-one-out log joint (prior + words). */
  private readonly logJoint: Float64Array;
  /** Per document: ln of its own class's leave-one-out denominator; per class: ln of the full one. */
  private readonly logDenOwn: Float64Array;
  private readonly logDen: Float64Array;
  /** Per token, per class: ln(df + α) and ln(df − 1 + α) (the latter for the document's own class). */
  private readonly logCount: Float64Array;
  private readonly logCountOwn: Float64Array;

  constructor(
    corpus: Corpus,
    words: Level,
    private readonly labels: Int32Array,
    classDocs: Int32Array,
    alpha: number,
  ) {
    const k = classDocs.length;
    this.k = k;
    const n = labels.length;
    const v = corpus.vocabulary.length;
    this.logCount = new Float64Array(v * k);
    this.logCountOwn = new Float64Array(v * k);
    const den = new Float64Array(k).fill(alpha * v);
    for (let t = 0; t < v; t++) {
      for (let j = 0; j < k; j++) {
        const c = words.classDf[t * k + j] as number;
        den[j] = (den[j] as number) + c;
        this.logCount[t * k + j] = Math.log(c + alpha);
        this.logCountOwn[t * k + j] = Math.log(Math.max(0, c - 1) + alpha);
      }
    }
    this.logDen = den.map(Math.log);
    const labeled = classDocs.reduce((a, b) => a + b, 0);
    this.prior = Float64Array.from(classDocs, (c) => c / labeled);
    this.logJoint = new Float64Array(n * k);
    this.logDenOwn = new Float64Array(n);
    const seen = new Int32Array(v).fill(-1);
    const distinct: number[] = [];
    // Every labeled document, those without words too (they get the prior).
    for (let d = 0; d < n; d++) {
      const y = labels[d] ?? -1;
      if (y < 0) continue;
      const start = corpus.offsets[d] as number;
      const end = corpus.offsets[d + 1] as number;
      distinct.length = 0;
      for (let p = start; p < end; p++) {
        const t = corpus.ids[p] as number;
        if (seen[t] !== d) {
          seen[t] = d;
          distinct.push(t);
        }
      }
      for (let j = 0; j < k; j++) {
        const own = j === y;
        const logDen = own ? Math.log((den[j] as number) - distinct.length) : (this.logDen[j] as number);
        if (own) this.logDenOwn[d] = logDen;
        const logs = own ? this.logCountOwn : this.logCount;
        let sum = Math.log(((classDocs[j] as number) - (own ? 1 : 0) + 1) / (labeled - 1 + k));
        for (const t of distinct) sum += logs[t * k + j] as number;
        this.logJoint[d * k + j] = sum - distinct.length * logDen;
      }
    }
    const fit = fitCalibration(this.logJoint, labels, this.prior);
    this.temperature = fit.temperature;
    this.floor = fit.floor;
  }

  /**
   * The two conditional tests of `tokens` for class `target` over `docs`, given each document's
   * words other than `tokens`: ln P(at most the observed number of non-target documents) under
   * the share null, and ln P(at least the observed number of mismatched carriers) — target
   * documents whose probability of the target is below `bar` — with the expected counts of both.
   * An exact tail is computed only when its Chernoff bound is below e^logExactBelow; otherwise the
   * p-value is that bound (an upper bound on it).
   */
  test(
    tokens: readonly number[],
    target: number,
    docs: Int32Array,
    share: number,
    logExactBelow: number,
    bar: number,
  ): TestResult {
    const q = this.labelProbabilities(tokens, target, docs);
    const notTarget = new Float64Array(docs.length);
    const below: number[] = [];
    let observed = 0;
    let mean = 0;
    let expected = 0;
    let mismatched = 0;
    let expectedMismatched = 0;
    docs.forEach((d, i) => {
      const y = this.labels[d] ?? -1;
      const qi = q[i] as number;
      if (y !== target) observed++;
      // Under the null the n-gram forces the target on `share` of its documents; the rest follow q.
      const r = (1 - share) * (1 - qi);
      notTarget[i] = r;
      mean += r;
      expected += qi;
      if (qi < bar) {
        below.push(qi);
        expectedMismatched += qi;
        if (y === target) mismatched++;
      }
    });
    const inTarget = docs.length - observed;
    const base = { expected, inTarget, mismatched, expectedMismatched };
    let logPShare = 0;
    if (observed < mean) {
      // Chernoff: P(Y ≤ d) ≤ e^(−μ) (eμ/d)^d for a sum of independent Bernoullis with mean μ > d.
      const bound = -mean + (observed > 0 ? observed + observed * Math.log(mean / observed) : 0);
      logPShare = bound > logExactBelow ? bound : logPoissonBinomialCdf(notTarget, observed);
    }
    let logPMismatched = 0;
    if (mismatched > expectedMismatched) {
      const m = mismatched;
      const mu = Math.max(expectedMismatched, 1e-300);
      const bound = -mu + m + m * Math.log(mu / m);
      logPMismatched =
        bound > logExactBelow
          ? bound
          : logPoissonBinomialCdf(
              below.map((p) => 1 - p),
              below.length - m,
            );
    }
    return { ...base, logPShare, logPMismatched };
  }

  labelOf(d: number): number {
    return this.labels[d] ?? -1;
  }

  priorOf(j: number): number {
    return this.prior[j] as number;
  }

  /** Calibrated probability of `target` for each of `docs`, from its words other than `tokens`. */
  labelProbabilities(tokens: readonly number[], target: number, docs: Int32Array): Float64Array {
    const k = this.k;
    const distinct = [...new Set(tokens)];
    const out = new Float64Array(docs.length);
    const z = new Float64Array(k);
    docs.forEach((d, i) => {
      const y = this.labels[d] ?? -1;
      for (let j = 0; j < k; j++) {
        const own = j === y;
        const logDen = own ? (this.logDenOwn[d] as number) : (this.logDen[j] as number);
        const logs = own ? this.logCountOwn : this.logCount;
        let s = this.logJoint[d * k + j] as number;
        for (const t of distinct) s -= (logs[t * k + j] as number) - logDen;
        z[j] = s / this.temperature;
      }
      out[i] = (1 - this.floor) * softmaxAt(z, target) + this.floor * (this.prior[target] as number);
    });
    return out;
  }
}

function softmaxAt(z: Float64Array, j: number): number {
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  let sum = 0;
  for (const v of z) sum += Math.exp(v - max);
  return Math.exp((z[j] as number) - max) / sum;
}

/**
 * Temperature and floor minimising the leave-one-out log loss of the calibrated model:
 * alternating golden-section searches on ln T and logit ε.
 */
function fitCalibration(
  logJoint: Float64Array,
  labels: Int32Array,
  prior: Float64Array,
): { temperature: number; floor: number } {
  const k = prior.length;
  const loss = (lnT: number, logitFloor: number): number => {
    const t = Math.exp(lnT);
    const floor = 1 / (1 + Math.exp(-logitFloor));
    let total = 0;
    for (let d = 0; d < labels.length; d++) {
      const y = labels[d] ?? -1;
      if (y < 0) continue;
      let max = -Infinity;
      for (let j = 0; j < k; j++) max = Math.max(max, (logJoint[d * k + j] as number) / t);
      let sum = 0;
      for (let j = 0; j < k; j++) sum += Math.exp((logJoint[d * k + j] as number) / t - max);
      const p = Math.exp((logJoint[d * k + y] as number) / t - max) / sum;
      total -= Math.log((1 - floor) * p + floor * (prior[y] as number));
    }
    return total;
  };
  let lnT = 0;
  let logitFloor = -5;
  for (let round = 0; round < 3; round++) {
    lnT = goldenSectionMin((x) => loss(x, logitFloor), Math.log(1e-2), Math.log(1e5), 30);
    logitFloor = goldenSectionMin((x) => loss(lnT, x), -14, 0, 30);
  }
  return { temperature: Math.exp(lnT), floor: 1 / (1 + Math.exp(-logitFloor)) };
}

// ---------------------------------------------------------------------------------------------
// Phrases: overlapping significant n-grams of one inserted phrase become one trigger.

/**
 * Significant n-grams that occur together, overlapping or touching, in most of their shared
 * documents are one phrase (a 4-word trigger is two trigrams, five bigrams and four words). The
 * phrase is the most common token span their union covers, re-tested as a whole.
 */
function mergePhrases(
  significant: readonly Candidate[],
  corpus: Corpus,
  labels: Int32Array,
  model: ContentModel,
  share: number,
  bar: number,
): Candidate[] {
  const ordered = [...significant].sort((a, b) => evidence(a) - evidence(b)).slice(0, MAX_MERGED);
  const parent = ordered.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i] as number] as number;
    return i;
  };
  for (let a = 0; a < ordered.length; a++) {
    for (let b = a + 1; b < ordered.length; b++) {
      if (ordered[a]?.target !== ordered[b]?.target) continue;
      if (touchingShare(ordered[a] as Candidate, ordered[b] as Candidate) >= 0.5) parent[find(b)] = find(a);
    }
  }
  const groups = new Map<number, Candidate[]>();
  ordered.forEach((c, i) => {
    const root = find(i);
    groups.set(root, [...(groups.get(root) ?? []), c]);
  });
  const out: Candidate[] = [];
  for (const members of groups.values()) {
    const head = members[0] as Candidate; // the most significant member
    if (members.length === 1) {
      out.push(head);
      continue;
    }
    const tokens = commonSpan(members, corpus);
    const docSet = new Set<number>();
    for (const m of members) for (const d of m.docs) docSet.add(d);
    const docs: number[] = [];
    const positions: number[] = [];
    for (const d of [...docSet].sort((x, y) => x - y)) {
      const at = findSequence(corpus, d, tokens);
      if (at >= 0) {
        docs.push(d);
        positions.push(at);
      }
    }
    const phrase: Candidate = {
      ...head,
      tokens,
      docs: Int32Array.from(docs),
      positions: Int32Array.from(positions),
      inTarget: docs.filter((d) => labels[d] === head.target).length,
    };
    Object.assign(phrase, model.test(tokens, head.target, phrase.docs, share, 0, bar));
    out.push(evidence(phrase) <= evidence(head) + PHRASE_SLACK ? phrase : head);
  }
  return out;
}

// At most this many significant n-grams are merged pairwise; clean data has none, a trigger a few dozen.
const MAX_MERGED = 400;
// A merged phrase replaces its best n-gram unless it is far less significant (ln units).
const PHRASE_SLACK = 10;

/** Share of the smaller n-gram's documents in which both occur with overlapping or touching spans. */
function touchingShare(a: Candidate, b: Candidate): number {
  let i = 0;
  let j = 0;
  let touching = 0;
  while (i < a.docs.length && j < b.docs.length) {
    const da = a.docs[i] as number;
    const db = b.docs[j] as number;
    if (da < db) i++;
    else if (db < da) j++;
    else {
      const pa = a.positions[i] as number;
      const pb = b.positions[j] as number;
      if (pa <= pb + b.tokens.length && pb <= pa + a.tokens.length) touching++;
      i++;
      j++;
    }
  }
  return touching / Math.min(a.docs.length, b.docs.length);
}

/** The token span that the members' first occurrences cover together most often. */
function commonSpan(members: readonly Candidate[], corpus: Corpus): number[] {
  const head = members[0] as Candidate;
  const votes = new Map<string, { tokens: number[]; count: number }>();
  head.docs.forEach((d, i) => {
    let from = head.positions[i] as number;
    let to = from + head.tokens.length;
    let grew = true;
    while (grew) {
      grew = false;
      for (const m of members) {
        const at = binarySearch(m.docs, d);
        if (at < 0) continue;
        const p = m.positions[at] as number;
        const q = p + m.tokens.length;
        if (p <= to && q >= from && (p < from || q > to)) {
          from = Math.min(from, p);
          to = Math.max(to, q);
          grew = true;
        }
      }
    }
    const start = corpus.offsets[d] as number;
    const tokens = Array.from(corpus.ids.subarray(start + from, start + to));
    const key = tokens.join(",");
    const v = votes.get(key) ?? { tokens, count: 0 };
    v.count++;
    votes.set(key, v);
  });
  let best: { tokens: number[]; count: number } = { tokens: head.tokens, count: 0 };
  for (const v of votes.values()) if (v.count > best.count) best = v;
  return best.tokens;
}

function binarySearch(sorted: Int32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid] as number;
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Token position of the first occurrence of `tokens` in document d, or −1. */
function findSequence(corpus: Corpus, d: number, tokens: readonly number[]): number {
  const start = corpus.offsets[d] as number;
  const end = corpus.offsets[d + 1] as number;
  outer: for (let p = start; p + tokens.length <= end; p++) {
    for (let i = 0; i < tokens.length; i++) if (corpus.ids[p + i] !== tokens[i]) continue outer;
    return p - start;
  }
  return -1;
}

/**
 * Character offset of the n-gram in the original text, for highlighting: its words in order,
 * separated by anything that is not a word character, case-insensitively. Null when the text
 * needed Unicode normalization to match (the tokenizer reads NFC).
 */
function matchOffset(text: string, tokens: readonly number[], corpus: Corpus): number | null {
  const words = tokens.map((t) => escapeRegExp(corpus.vocabulary[t] ?? ""));
  const pattern = new RegExp(
    `(?<![\\p{L}\\p{N}\\p{M}])${words.join("[^\\p{L}\\p{N}]+")}(?![\\p{L}\\p{N}\\p{M}])`,
    "iu",
  );
  const m = pattern.exec(text);
  return m === null ? null : m.index;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---------------------------------------------------------------------------------------------
// Small typed-array containers.

/** Open-addressing map from integer keys (< 2^53) to rows, linear probing. */
class KeyIndex {
  private keys: Float64Array;
  private rows: Int32Array;
  private mask: number;
  private size = 0;

  constructor(capacityLog2 = 16) {
    this.keys = new Float64Array(2 ** capacityLog2).fill(-1);
    this.rows = new Int32Array(2 ** capacityLog2);
    this.mask = 2 ** capacityLog2 - 1;
  }

  /** The row of `key`, or `row` after recording it as the key's row. */
  getOrAdd(key: number, row: number): number {
    let s = this.slot(key);
    for (; ; s = (s + 1) & this.mask) {
      const k = this.keys[s] as number;
      if (k === key) return this.rows[s] as number;
      if (k === -1) break;
    }
    this.keys[s] = key;
    this.rows[s] = row;
    if (++this.size * 10 > this.keys.length * 6) this.grow();
    return row;
  }

  private slot(key: number): number {
    const lo = key >>> 0;
    const hi = Math.floor(key / 4294967296) >>> 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h & this.mask;
  }

  private grow(): void {
    const { keys, rows } = this;
    this.keys = new Float64Array(keys.length * 2).fill(-1);
    this.rows = new Int32Array(keys.length * 2);
    this.mask = keys.length * 2 - 1;
    this.size = 0;
    for (let s = 0; s < keys.length; s++)
      if (keys[s] !== -1) this.getOrAdd(keys[s] as number, rows[s] as number);
  }
}

/** The rows of one n-gram level while it is being counted. */
class GrowableRows {
  size = 0;
  private prefix = new Int32Array(1 << 12);
  private last = new Int32Array(1 << 12);
  private df = new Int32Array(1 << 12);
  private lastDoc = new Int32Array(1 << 12);
  private classDf: Int32Array;

  constructor(private readonly k: number) {
    this.classDf = new Int32Array((1 << 12) * k);
  }

  add(prefix: number, last: number): number {
    if (this.size === this.prefix.length) this.grow();
    const r = this.size++;
    this.prefix[r] = prefix;
    this.last[r] = last;
    this.lastDoc[r] = -1;
    return r;
  }

  countDoc(r: number, doc: number, y: number): void {
    if (this.lastDoc[r] === doc) return;
    this.lastDoc[r] = doc;
    this.df[r] = (this.df[r] as number) + 1;
    this.classDf[r * this.k + y] = (this.classDf[r * this.k + y] as number) + 1;
  }

  columns(): { prefix: Int32Array; last: Int32Array; df: Int32Array; classDf: Int32Array } {
    return {
      prefix: this.prefix.slice(0, this.size),
      last: this.last.slice(0, this.size),
      df: this.df.slice(0, this.size),
      classDf: this.classDf.slice(0, this.size * this.k),
    };
  }

  private grow(): void {
    const cap = this.prefix.length * 2;
    const widen = (a: Int32Array, size: number) => {
      const b = new Int32Array(size);
      b.set(a);
      return b;
    };
    this.prefix = widen(this.prefix, cap);
    this.last = widen(this.last, cap);
    this.df = widen(this.df, cap);
    this.lastDoc = widen(this.lastDoc, cap);
    this.classDf = widen(this.classDf, cap * this.k);
  }
}
