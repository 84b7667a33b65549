// Image backdoor patches (BadNets, Gu, Dolan-Gavitt & Garg, 2017): a small fixed pattern stamped at
// one place on images of other classes, which are then relabeled as the target. A model that has
// learned the pattern gives it away in its features (spectre.ts, activation-clustering.ts). One that
// has not learned it — a rare patch, a short training run — does not, yet the next model trained on
// the same data may. So this detector reads the pixels, the way trigger-tokens.ts reads the words.
//
// Tokens: every w×w window of every image, binarized at `threshold` on luminance, at every position;
// a token is (position, bit pattern), so a stamped patch is one token in every image that carries it.
// Windows are class-specific by nature (the gap between a trouser's legs is pure Trouser), and a
// white patch in a corner is also the corner of many a bright boot or bag, so neither purity nor a
// token's share of a label can tell a trigger. What does is the dirty-label signature: a trigger's
// carriers are labeled j while, without the trigger, they look like another class.
//
// "Look like" is a content model of our own, not the scan's representation (a model trained on the
// poison has learned the trigger, and its probabilities say "Bag" for every patched shirt): a
// softmax regression on the binarized pixels. Its scores are sums over pixels, so the model without
// a window is its scores minus the window's contribution, one vector per token. For each token and
// class j the test counts the token's *mismatched carriers* — images with the token, labeled j, to
// which the model without the window gives j less than `maxLabelProbability` (confidently another
// class, not a borderline image that any window tips) — against what the model's own confident
// disagreements predict: a carrier it takes for c is labeled j with the rate P(j | c, p(j) below
// the bar) measured over the whole dataset. The p-value is the Chernoff bound on the
// Poisson–binomial upper tail, with Bonferroni over every token × class in the document-frequency
// range, so the family-wise error is at most `alpha` and no poison rate is assumed; the count must
// also exceed its expectation `minExcess`-fold.
//
// The windows of one patch (the window on it and those overlapping it, whose other pixels are
// background) are significant together and are merged into one group when they overlap and share
// most of their mismatched carriers; the group's region is their bounding box, its carriers those of
// its strongest window (the one on the pattern itself: the edge windows also match images that
// merely have similar background there). A group is a trigger only when the content model *with*
// the window in place puts most of its carriers (`minExplained`) back in their label: the model has
// learned the pattern as the label's cue, which is what a trigger is. Where the model merely fails
// on a style of image, the carriers stay mismatched with the window too — on all 60k clean
// Fashion-MNIST images 32 such groups are significant and explain none of their carriers; 3×3
// patches at 0.5–1 % explain 0.68–1.0. Each carrier of a trigger is then judged on its own
// (`judgeCarriers`): without the whole pattern, does it look like the target the way the target's
// own images do, or the way other classes' images do? A natural image that holds the pattern and
// looks like its label is no evidence and is not flagged. On all 60k Fashion-MNIST images with a
// 3×3 patch at 0.5 / 1 / 2 % this took the detector from 0.965 / 0.91 (precision / recall; the
// flags were the mismatched carriers) to 0.967 / 0.973, 0.980 / 0.978 and 0.979 / 0.989, and a 4×4
// checkerboard, which no 3×3 window covers, from 1.00 / 0.66 to 1.00 / 1.00.
//
// What it does not see: triggers spread over the whole image (a blended pattern: no window is the
// same in every poisoned image — SPECTRE's case), patches placed at random positions, and patterns
// the binarization erases (a patch of mid-grey on mid-grey). Cost: a softmax regression on up to
// `contentSamples` images and four passes over the n · (H − w + 1) · (W − w + 1) windows (12 s for
// 60k Fashion-MNIST images on this 2-core machine, 3 s for 12k).
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import type { Finding } from "../ledger/types.js";
import { merkleRoot } from "../provenance/merkle.js";
import { argmax } from "../math/linalg.js";
import { Rng } from "../math/rng.js";
import { fitSoftmax, softmaxInPlace, type FittedSoftmax } from "./proxy-linear.js";
import { round, sampleFinding } from "./spectral-signature.js";
import type { Detector, DetectorResult, ScanTable } from "./types.js";

export const triggerPatchOptionsSchema = z.object({
  /** Side of the square windows, in pixels: 2^(window²) patterns per position. */
  window: z.number().int().min(2).max(3).default(3),
  /** Luminance (mean over channels, images in [0, 1]) above which a pixel is "on". */
  threshold: z.number().gt(0).lt(1).default(0.5),
  /** A token × class is tested only with at least this many mismatched carriers. */
  minCount: z.number().int().min(2).default(5),
  /** Tokens in more than this fraction of labeled images are not trigger candidates. */
  maxDocumentFrequency: z.number().gt(0).lte(1).default(0.2),
  /** Family-wise error rate over all token × class tests (Bonferroni). */
  alpha: z.number().gt(0).lt(1).default(0.01),
  /** Mismatched carriers must outnumber the content model's expectation this many times. */
  minExcess: z.number().min(1).default(4),
  /**
   * A carrier is mismatched when the content model without the window gives its label less than
   * this probability: confidently another class, not a borderline image that any window tips.
   */
  maxLabelProbability: z.number().gt(0).lt(1).default(0.05),
  /**
   * A significant group of windows is a trigger only when the content model, with the window in
   * place, puts at least this share of its mismatched carriers in their label: it has learned the
   * pattern as the label's cue. Where the model simply fails on a style of image, the carriers stay
   * mismatched with the window too (measured: 0 for the 32 such groups in 60k clean Fashion-MNIST
   * images, 0.68–1.0 for 3×3 patches at 0.5–1 %).
   */
  minExplained: z.number().min(0).max(1).default(0.5),
  /**
   * A trigger's carrier with its label is flagged when the posterior that it was poisoned is above
   * this (see judgeCarriers). Below one half because the costs are not equal: a poisoned image left
   * in keeps the backdoor in the next model, a clean one flagged is one image quarantined. On all
   * 60k Fashion-MNIST images with a 3×3 patch at 0.5 % it took recall from 0.947 to 0.973 for
   * precision 0.986 → 0.967 (1 %: 0.977 → 0.978, 0.980 either way).
   */
  minCarrierPosterior: z
    .number()
    .gt(0)
    .lt(1)
    .default(1 / 3),
  /** The content model is trained on at most this many labeled images (a random subset). */
  contentSamples: z.number().int().min(100).default(20_000),
  /** Seed of the content model's training order and subset. */
  seed: z.union([z.number().int(), z.string()]).default(0),
  /** Rows of the candidate table in the summary. */
  topCandidates: z.number().int().min(1).max(1000).default(20),
});
export type TriggerPatchOptions = z.input<typeof triggerPatchOptionsSchema>;
type Options = z.output<typeof triggerPatchOptionsSchema>;

const NAME = "trigger-patches";
// 1.1.0: carriers judged without the whole pattern, by Bayes' rule against the two reference densities.
const VERSION = "1.1.0";
// At most this many significant token × class pairs are merged into triggers.
const MAX_MERGED = 500;
// Larger images are skipped: the content model holds n × pixels floats twice (standardized), 0.5 GB
// for 60k images of 32×32.
const MAX_PIXELS = 32 * 32;
// Window patterns are kept between passes up to this many windows (2 bytes each).
const TOKEN_CACHE_LIMIT = 100_000_000;

export const triggerPatches: Detector<TriggerPatchOptions> = {
  name: NAME,
  version: VERSION,
  appliesTo(table) {
    if (table.images === undefined) return "the dataset has no images";
    if (table.classes.length < 2) return "it needs at least two classes";
    const shape = imageShape(table);
    if (typeof shape === "string") return shape;
    if (shape.height * shape.width > MAX_PIXELS)
      return (
        `its images are ${shape.width}×${shape.height}; it reads images of at most ${MAX_PIXELS} pixels ` +
        `(32×32), whose pixel model and window counts fit in memory`
      );
    let labeled = 0;
    for (const l of table.labels) if (l >= 0) labeled++;
    return labeled < 2 ? "fewer than two samples are labeled" : null;
  },
  run(table, options = {}) {
    const opts = parseOptions(triggerPatchOptionsSchema, options, `${NAME} options`);
    return detectPatches(table, opts);
  },
};

interface Shape {
  height: number;
  width: number;
  channels: number;
}

/** The one image shape of the table, or why there is none. */
function imageShape(table: ScanTable): Shape | string {
  const images = table.images;
  const n = images?.length ?? 0;
  let first: Shape | undefined;
  for (let i = 0; i < n && first === undefined; i++) first = images?.shape(i);
  if (images === undefined || first === undefined) return "the dataset has no images";
  for (let i = 0; i < n; i++) {
    const im = images.shape(i);
    if (im === undefined) return `sample "${table.ids[i]}" has no image`;
    if (im.height !== first.height || im.width !== first.width || im.channels !== first.channels)
      return (
        `images differ in size (${first.width}×${first.height}×${first.channels}, and ` +
        `${im.width}×${im.height}×${im.channels} for "${table.ids[i]}"); windows need one size`
      );
  }
  // The scan keeps the 8-bit pixels of every image this small (data/image-sketch.ts).
  if (first.height * first.width <= MAX_PIXELS && !images.whole(0))
    return "the scan did not keep its images' pixels";
  return { height: first.height, width: first.width, channels: first.channels };
}

/** Sample i's 8-bit pixels (imageShape said every image has them). */
function pixelsOf(table: ScanTable, i: number): Uint8Array {
  const bytes = table.images?.pixels(i);
  if (bytes === undefined) throw new AntidoteError("INTERNAL", `${NAME}: sample ${i} has no pixels`);
  return bytes;
}

// An 8-bit pixel value b as the [0, 1] float32 an ImageTensor holds for it (b / 255), so that the
// sums compared with the threshold are the ones the Float32 image gave.
const LEVELS = Float32Array.from({ length: 256 }, (_, b) => b / 255);

/** Window tokens of one image size: token = position · patterns + bit pattern. */
class Windows {
  readonly columns: number;
  readonly rows: number;
  readonly patterns: number;
  private readonly bits: Uint8Array;

  constructor(
    private readonly shape: Shape,
    private readonly w: number,
    private readonly threshold: number,
  ) {
    this.columns = shape.width - w + 1;
    this.rows = shape.height - w + 1;
    this.patterns = 2 ** (w * w);
    this.bits = new Uint8Array(shape.height * shape.width);
  }

  get size(): number {
    return this.columns > 0 && this.rows > 0 ? this.columns * this.rows * this.patterns : 0;
  }

  get pixels(): number {
    return this.shape.height * this.shape.width;
  }

  get imageWidth(): number {
    return this.shape.width;
  }

  /** The image's on/off pixels, row-major (a buffer reused by the next call); `image` is 8-bit H×W×C. */
  binarize(image: Uint8Array): Uint8Array {
    const { channels } = this.shape;
    const limit = this.threshold * channels;
    for (let p = 0; p < this.pixels; p++) {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += LEVELS[image[p * channels + c] as number] as number;
      this.bits[p] = sum > limit ? 1 : 0;
    }
    return this.bits;
  }

  /** Calls visit(token) for every window of the image, row by row. */
  forEach(image: Uint8Array, visit: (token: number) => void): void {
    const bits = this.binarize(image);
    const { width } = this.shape;
    const w = this.w;
    for (let y = 0; y < this.rows; y++) {
      for (let x = 0; x < this.columns; x++) {
        let code = 0;
        for (let dy = 0; dy < w; dy++) {
          const base = (y + dy) * width + x;
          for (let dx = 0; dx < w; dx++) code |= (bits[base + dx] as number) << (dy * w + dx);
        }
        visit((y * this.columns + x) * this.patterns + code);
      }
    }
  }

  /** The pixels of a token's window (row-major index) and whether each is on. */
  cells(token: number): { pixel: number; on: boolean }[] {
    const { x, y } = this.origin(token);
    const code = token % this.patterns;
    const out: { pixel: number; on: boolean }[] = [];
    for (let dy = 0; dy < this.w; dy++)
      for (let dx = 0; dx < this.w; dx++)
        out.push({
          pixel: (y + dy) * this.shape.width + x + dx,
          on: ((code >> (dy * this.w + dx)) & 1) === 1,
        });
    return out;
  }

  /** Top-left corner of a token's window. */
  origin(token: number): { x: number; y: number } {
    const position = Math.floor(token / this.patterns);
    return { x: position % this.columns, y: Math.floor(position / this.columns) };
  }

  /** The token's bit pattern as rows of "#" (on) and "." (off), top row first. */
  pattern(token: number): string[] {
    const code = token % this.patterns;
    const out: string[] = [];
    for (let dy = 0; dy < this.w; dy++) {
      let row = "";
      for (let dx = 0; dx < this.w; dx++) row += (code >> (dy * this.w + dx)) & 1 ? "#" : ".";
      out.push(row);
    }
    return out;
  }
}

/** One tested token and class. */
interface Candidate {
  token: number;
  target: number;
  /** Labeled images with the token, and of those the mismatched carriers (labeled target, look otherwise). */
  count: number;
  mismatched: number;
  /** The content model's expected count of mismatched carriers. */
  expected: number;
  logP: number;
  /** The mismatched carriers, ascending (significant candidates only). */
  docs: Int32Array | null;
}

/** Significant tokens of one patch, merged. */
interface Trigger {
  members: Candidate[];
  target: number;
  docs: Int32Array;
  logP: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

function detectPatches(table: ScanTable, opts: Options): DetectorResult {
  const n = table.ids.length;
  const k = table.classes.length;
  const shape = imageShape(table);
  if (typeof shape === "string") throw new AntidoteError("INTERNAL", `${NAME}: ${shape}`); // appliesTo said so first
  const windows = new Windows(shape, opts.window, opts.threshold);
  const scores = new Float64Array(n);
  const flagged = new Uint8Array(n);
  const classDocs = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    const y = table.labels[i] as number;
    if (y < 0) scores[i] = NaN;
    else classDocs[y] = (classDocs[y] as number) + 1;
  }
  const labeled = classDocs.reduce((a, b) => a + b, 0);
  const warnings: string[] = [];
  if (labeled < n) warnings.push(`${n - labeled} unlabeled samples were not tested.`);
  if (windows.size === 0) {
    warnings.push(
      `images of ${shape.width}×${shape.height} are smaller than the ${opts.window}×${opts.window} window.`,
    );
    return emptyResult(scores, flagged, warnings);
  }
  // Every pass visits every window of every labeled image. The first one binarizes and keeps the
  // window patterns (two bytes a window: 81 MB for 60k Fashion-MNIST images) when they fit in
  // TOKEN_CACHE_LIMIT windows; the others read them back.
  const positions = windows.columns * windows.rows;
  const cache = n * positions <= TOKEN_CACHE_LIMIT ? new Uint16Array(n * positions) : null;
  let cached = false;
  const eachLabeled = (visit: (i: number, y: number, token: number) => void): void => {
    for (let i = 0; i < n; i++) {
      const y = table.labels[i] as number;
      if (y < 0) continue;
      if (cache !== null && cached) {
        const base = i * positions;
        for (let pos = 0; pos < positions; pos++)
          visit(i, y, pos * windows.patterns + (cache[base + pos] as number));
      } else if (cache !== null) {
        let pos = i * positions;
        windows.forEach(pixelsOf(table, i), (token) => {
          cache[pos++] = token % windows.patterns;
          visit(i, y, token);
        });
      } else windows.forEach(pixelsOf(table, i), (token) => visit(i, y, token));
    }
    cached = cache !== null;
  };

  const content = PixelLinearModel.fit(table, windows, classDocs, opts);
  const logBar = Math.log(opts.maxLabelProbability);
  const z = new Float64Array(k);
  // Pass 1: in how many labeled images each token occurs (once per image: one window per position).
  const df = new Int32Array(windows.size);
  eachLabeled((_i, _y, token) => {
    df[token] = (df[token] as number) + 1;
  });
  const maxDf = Math.max(opts.minCount, Math.floor(opts.maxDocumentFrequency * labeled));
  const rowOf = new Int32Array(windows.size).fill(-1);
  const tokenOf: number[] = [];
  for (let t = 0; t < windows.size; t++) {
    const d = df[t] as number;
    if (d >= opts.minCount && d <= maxDf) {
      rowOf[t] = tokenOf.length;
      tokenOf.push(t);
    }
  }
  const inRange = tokenOf.length;
  const tests = inRange * k;
  const logTests = Math.log(Math.max(1, tests));
  const logAlpha = Math.log(opts.alpha);
  const removal = content.removals(tokenOf, windows);

  // Pass 2: mismatched carriers per token in range and class — images with the token, labeled the
  // class, that the content model without the token's own pixels takes for another class.
  const mismatchedCounts = new Int32Array(inRange * k);
  eachLabeled((i, y, token) => {
    const r = rowOf[token] as number;
    if (r < 0) return;
    const best = content.scoresWithout(i, removal, r, z);
    if (probabilityBelow(z, y, best, logBar))
      mismatchedCounts[r * k + y] = (mismatchedCounts[r * k + y] as number) + 1;
  });
  const candidates: Candidate[] = [];
  const firstOfRow = new Int32Array(inRange).fill(-1);
  const nextOf: number[] = [];
  for (let r = 0; r < inRange; r++) {
    for (let j = 0; j < k; j++) {
      const m = mismatchedCounts[r * k + j] as number;
      if (m < opts.minCount) continue;
      nextOf.push(firstOfRow[r] as number);
      firstOfRow[r] = candidates.length;
      const token = tokenOf[r] as number;
      candidates.push({
        token,
        target: j,
        count: df[token] as number,
        mismatched: m,
        expected: 0,
        logP: 0,
        docs: null,
      });
    }
  }

  // Pass 3: the expected count of mismatched carriers — a carrier taken for class c has label j with
  // the chance P(j | c) that the content model's confusion matrix gives — then the Chernoff bound on
  // the upper tail: P(Y ≥ m) ≤ e^(−μ) (eμ/m)^m for a sum of independent Bernoullis with mean μ < m.
  if (candidates.length > 0)
    eachLabeled((i, _y, token) => {
      const r = rowOf[token] as number;
      if (r < 0 || (firstOfRow[r] as number) < 0) return;
      const seenAs = content.scoresWithout(i, removal, r, z);
      for (let c = firstOfRow[r] as number; c >= 0; c = nextOf[c] as number) {
        const cand = candidates[c] as Candidate;
        if (probabilityBelow(z, cand.target, seenAs, logBar))
          cand.expected += content.labelGiven(cand.target, seenAs);
      }
    });
  for (const c of candidates) {
    const { mismatched: m, expected: mu } = c;
    c.logP = m <= mu ? 0 : -mu + m + m * Math.log(Math.max(mu, 1e-300) / m);
  }
  const significant = candidates.filter(
    (c) => c.logP + logTests <= logAlpha && c.mismatched >= opts.minExcess * c.expected,
  );
  significant.sort((a, b) => a.logP - b.logP).splice(MAX_MERGED);

  // Pass 4: the mismatched carriers of the significant candidates.
  const significantOfToken = new Map<number, Candidate[]>();
  for (const c of significant)
    significantOfToken.set(c.token, [...(significantOfToken.get(c.token) ?? []), c]);
  const docLists = new Map<Candidate, number[]>(significant.map((c) => [c, []]));
  if (significant.length > 0)
    eachLabeled((i, y, token) => {
      const list = significantOfToken.get(token);
      if (list === undefined) return;
      const seenAs = content.scoresWithout(i, removal, rowOf[token] as number, z);
      if (!probabilityBelow(z, y, seenAs, logBar)) return;
      for (const c of list) if (c.target === y) (docLists.get(c) as number[]).push(i);
    });
  for (const c of significant) c.docs = Int32Array.from(docLists.get(c) as number[]);
  const groups = mergeWindows(significant, windows, opts.window);
  // Carriers the content model *with* the window puts in their label: the window is what makes them fit.
  const explainedShare = (t: Trigger): number =>
    t.docs.length === 0 ? 0 : t.docs.filter((d) => content.predict(d) === t.target).length / t.docs.length;
  const triggers = groups.filter((t) => explainedShare(t) >= opts.minExplained);
  const dismissed = groups.filter((t) => explainedShare(t) < opts.minExplained);
  const strength = (logP: number): number => Math.max(0, -(logP + logTests) / Math.LN10);

  const datasetId = merkleRoot([...new Set(table.digests)].sort());
  const findings: Finding[] = [];
  const triggerRows: Record<string, unknown>[] = [];
  const why = new Map<number, { trigger: number; strength: number }>();
  const judged = triggers.map((t) => judgeCarriers(t, table, windows, content, opts.minCarrierPosterior));
  triggers.forEach((t, index) => {
    const s = strength(t.logP);
    const verdict = judged[index] as CarrierVerdict;
    for (const d of verdict.flagged) {
      flagged[d] = 1;
      if (s > (scores[d] as number)) scores[d] = s;
      const prev = why.get(d);
      if (prev === undefined || prev.strength < s) why.set(d, { trigger: index, strength: s });
    }
    const row = {
      ...triggerRow(t, windows, table.classes, logTests, explainedShare(t)),
      carriers: verdict.summary,
    };
    triggerRows.push(row);
    findings.push({
      subjectType: "dataset",
      subjectId: datasetId,
      kind: "trigger-patch",
      score: s,
      evidence: row,
      check: NAME,
      checkVersion: VERSION,
    });
  });
  for (const [d, w] of [...why].sort((a, b) => a[0] - b[0])) {
    const t = triggers[w.trigger] as Trigger;
    const lead = t.members[0] as Candidate;
    const seen = (judged[w.trigger] as CarrierVerdict).seen.get(d);
    findings.push(
      sampleFinding(table, d, "trigger-patch", NAME, VERSION, w.strength, {
        target: table.classes[t.target],
        region: { x: t.x, y: t.y, width: t.width, height: t.height },
        pattern: windows.pattern(lead.token),
        // What the content model takes the image for with the pattern's pixels left out.
        looksLike: seen === undefined ? null : table.classes[seen.looksLike],
        labelProbabilityWithout: seen === undefined ? null : round(seen.labelProbability),
      }),
    );
  }

  const top = [...candidates].sort((a, b) => a.logP - b.logP).slice(0, opts.topCandidates);
  return {
    detector: NAME,
    version: VERSION,
    scores,
    flagged,
    threshold: {
      value: -Math.log10(opts.alpha),
      method:
        `−log10 of the Bonferroni-adjusted p-value over ${tests.toLocaleString("en-US")} window × class tests ` +
        `(family-wise α = ${opts.alpha}); a pattern is a trigger when the pixel model without it gives the label ` +
        `less than ${opts.maxLabelProbability} on significantly many carriers and with it puts at least ` +
        `${opts.minExplained} of those in their label; a carrier with the label is flagged when, without the ` +
        `pattern's pixels, it looks more like the images of other classes than like the label's own (Bayes' rule, ` +
        `the poisoned share fitted by EM; see each trigger's "carriers")`,
    },
    findings,
    summary: {
      window: opts.window,
      threshold: opts.threshold,
      positions: windows.columns * windows.rows,
      tokensInRange: inRange,
      tests,
      candidates: candidates.length,
      contentModel: {
        kind: "softmax regression on the binarized pixels (in sample), the tested window at its average",
        accuracy: round(content.accuracy),
      },
      triggers: triggerRows,
      // Significant groups of windows whose carriers stay mismatched with the window in place: places
      // where the content model fails (a style of bag it takes for a shirt), not patterns that carry a label.
      dismissed: dismissed.map((t) => triggerRow(t, windows, table.classes, logTests, explainedShare(t))),
      topCandidates: top.map((c) => candidateRow(c, windows, table.classes, logTests)),
    },
    warnings,
  };
}

/**
 * The content model: a softmax regression on the binarized pixels, standardized. Its scores are
 * sums over pixels, so the model without a window is its scores minus what the window's pixels
 * add against their averages — the same for every image that carries the token. It is trained on
 * the labels it tests (in sample): what it learns of a trigger sits in the trigger's own pixels,
 * which are exactly what is taken out. It is far from calibrated on images it fits, so the test
 * reads only its decision, and what a decision is worth comes from its own confusion matrix over
 * the whole dataset: P(label j | taken for c).
 */
class PixelLinearModel {
  private constructor(
    private readonly k: number,
    private readonly model: FittedSoftmax,
    /** Row-major n × k class scores of every image. */
    private readonly logits: Float64Array,
    /** Row-major k × k: P(label j | taken for c) at [c · k + j]. */
    private readonly confusion: Float64Array,
  ) {}

  get accuracy(): number {
    return this.model.accuracy;
  }

  static fit(table: ScanTable, windows: Windows, classDocs: Int32Array, opts: Options): PixelLinearModel {
    const bar = opts.maxLabelProbability;
    const n = table.ids.length;
    const k = classDocs.length;
    const pixels = windows.pixels;
    // Trained on at most `contentSamples` labeled images (a random subset, in dataset order), then
    // every image scored from its sketch one at a time: the binarized pixels of only the training
    // images are ever held (20k × pixels floats), whatever the dataset's size.
    const labeledRows = [...table.labels.keys()].filter((i) => (table.labels[i] as number) >= 0);
    let trainRows = labeledRows;
    if (labeledRows.length > opts.contentSamples) {
      new Rng(`${String(opts.seed)}/${NAME}`).shuffle(labeledRows);
      trainRows = labeledRows.slice(0, opts.contentSamples).sort((a, b) => a - b);
    }
    const data = new Float32Array(trainRows.length * pixels);
    trainRows.forEach((i, r) => data.set(windows.binarize(pixelsOf(table, i)), r * pixels));
    const trainLabels = Int32Array.from(trainRows, (i) => table.labels[i] as number);
    const model = fitSoftmax({ rows: trainRows.length, cols: pixels, data }, trainLabels, k, {
      seed: opts.seed,
    });
    const logits = new Float64Array(n * k);
    const scored = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      model.rowScores(windows.binarize(pixelsOf(table, i)), scored);
      logits.set(scored, i * k);
    }
    // P(label j | taken for c, with p(j) below the bar): among the images the model takes for c and
    // gives j less than `bar`, the share labeled j — the rate of confident disagreement the
    // model has anyway, with one pseudo-image spread by the class prior so no label is impossible.
    const agree = new Float64Array(k * k);
    const total = new Float64Array(k * k);
    const p = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const y = table.labels[i] as number;
      if (y < 0) continue;
      p.set(logits.subarray(i * k, (i + 1) * k));
      softmaxInPlace(p);
      const c = argmax(p);
      for (let j = 0; j < k; j++) {
        if ((p[j] as number) >= bar) continue;
        total[c * k + j] = (total[c * k + j] as number) + 1;
        if (j === y) agree[c * k + j] = (agree[c * k + j] as number) + 1;
      }
    }
    const labeled = classDocs.reduce((a, b) => a + b, 0);
    const confusion = new Float64Array(k * k);
    for (let c = 0; c < k; c++)
      for (let j = 0; j < k; j++)
        confusion[c * k + j] =
          ((agree[c * k + j] as number) + (classDocs[j] as number) / labeled) /
          ((total[c * k + j] as number) + 1);
    return new PixelLinearModel(k, model, logits, confusion);
  }

  /** For each token, what its window's pixels add to each class's score (row-major tokens × k). */
  removals(tokens: readonly number[], windows: Windows): Float64Array {
    const k = this.k;
    const out = new Float64Array(tokens.length * k);
    tokens.forEach((token, r) => {
      for (const { pixel, on } of windows.cells(token))
        for (let j = 0; j < k; j++)
          out[r * k + j] = (out[r * k + j] as number) + this.model.contribution(pixel, on ? 1 : 0, j);
    });
    return out;
  }

  /** Class scores of image i without the window of row r of `removal` into `out`; returns the argmax. */
  scoresWithout(i: number, removal: Float64Array, r: number, out: Float64Array): number {
    const k = this.k;
    const logits = this.logits;
    let best = 0;
    for (let j = 0; j < k; j++) {
      out[j] = (logits[i * k + j] as number) - (removal[r * k + j] as number);
      if ((out[j] as number) > (out[best] as number)) best = j;
    }
    return best;
  }

  /**
   * Class scores of image i with the given pixels at their average (`bits`: the image's binarized
   * pixels) into `out`; returns the argmax.
   */
  scoresWithoutPixels(i: number, pixels: readonly number[], bits: Uint8Array, out: Float64Array): number {
    const k = this.k;
    let best = 0;
    for (let j = 0; j < k; j++) {
      let v = this.logits[i * k + j] as number;
      for (const p of pixels) v -= this.model.contribution(p, bits[p] as number, j);
      out[j] = v;
      if (v > (out[best] as number)) best = j;
    }
    return best;
  }

  /** The class image i is taken for, whole. */
  predict(i: number): number {
    return argmax(this.logits.subarray(i * this.k, (i + 1) * this.k));
  }

  /** P(label j | taken for c, p(j) below the bar), over all labeled images. */
  labelGiven(j: number, c: number): number {
    return this.confusion[c * this.k + j] as number;
  }
}

/** Which carriers of a trigger are flagged, and why. */
interface CarrierVerdict {
  flagged: number[];
  /** Per judged carrier: what the content model takes it for without the pattern, and p(target). */
  seen: Map<number, { looksLike: number; labelProbability: number }>;
  summary: Record<string, unknown>;
}

// Bins of q = p(target | image without the pattern's pixels) for the two reference densities.
const Q_EDGES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9];
// A region pixel belongs to the pattern when this share of the lead window's mismatched carriers agree on it.
const PATTERN_AGREEMENT = 0.95;

/**
 * Which images carrying a trigger were put in its label by it. The test above counts only the
 * carriers the content model confidently takes for another class (below `maxLabelProbability`):
 * that keeps the test specific, but a weak pixel model leaves about one poisoned carrier in ten
 * between that bar and certainty, and an image that truly is of the target class and happens to
 * hold the pattern (a bag with a bright corner) sometimes falls below it. So each carrier is judged
 * again, by Bayes' rule on q — what the content model gives the target once the pattern's pixels
 * (those the trigger's mismatched carriers agree on, in its region: the whole pattern, not one
 * window of it) are set to their average. A natural carrier's q is distributed like that of the
 * other images labeled the target with the same pixels left out; a poisoned one's like that of the
 * images of other classes (where it was taken from). The share of poisoned carriers is fitted by EM
 * on the carriers' q, and a carrier is flagged where, going up from the lowest q, the posterior
 * that it was poisoned stays above `minCarrierPosterior`.
 */
function judgeCarriers(
  t: Trigger,
  table: ScanTable,
  windows: Windows,
  content: PixelLinearModel,
  minPosterior: number,
): CarrierVerdict {
  const n = table.ids.length;
  const k = table.classes.length;
  const lead = t.members[0] as Candidate;
  const leadCells = windows.cells(lead.token);
  // The pattern: the lead window's pixels, and the region's pixels its mismatched carriers share.
  const width = windows.imageWidth;
  const onCount = new Int32Array(t.width * t.height);
  for (const d of t.docs) {
    const bits = windows.binarize(pixelsOf(table, d));
    for (let dy = 0; dy < t.height; dy++)
      for (let dx = 0; dx < t.width; dx++)
        onCount[dy * t.width + dx] =
          (onCount[dy * t.width + dx] as number) + (bits[(t.y + dy) * width + t.x + dx] as number);
  }
  const pattern = new Set(leadCells.map((c) => c.pixel));
  for (let dy = 0; dy < t.height; dy++)
    for (let dx = 0; dx < t.width; dx++) {
      const share = (onCount[dy * t.width + dx] as number) / Math.max(1, t.docs.length);
      if (share >= PATTERN_AGREEMENT || share <= 1 - PATTERN_AGREEMENT)
        pattern.add((t.y + dy) * width + t.x + dx);
    }
  const pixels = [...pattern].sort((a, b) => a - b);

  // q for every labeled image; carriers are the labeled-target images holding the lead window.
  const bins = Q_EDGES.length + 1;
  const binOf = (q: number): number => {
    let b = 0;
    while (b < Q_EDGES.length && q >= (Q_EDGES[b] as number)) b++;
    return b;
  };
  const natural = new Float64Array(bins).fill(0.5);
  const other = new Float64Array(bins).fill(0.5);
  const carriers: { i: number; q: number; bin: number; looksLike: number }[] = [];
  const z = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const y = table.labels[i] as number;
    if (y < 0) continue;
    const bits = windows.binarize(pixelsOf(table, i));
    const best = content.scoresWithoutPixels(i, pixels, bits, z);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp((z[j] as number) - (z[best] as number));
    const q = Math.exp((z[t.target] as number) - (z[best] as number)) / sum;
    const bin = binOf(q);
    if (y !== t.target) other[bin] = (other[bin] as number) + 1;
    else if (leadCells.every((c) => (bits[c.pixel] === 1) === c.on))
      carriers.push({ i, q, bin, looksLike: best });
    else natural[bin] = (natural[bin] as number) + 1;
  }
  const normalize = (h: Float64Array): void => {
    const total = h.reduce((a, b) => a + b, 0);
    for (let b = 0; b < bins; b++) h[b] = (h[b] as number) / total;
  };
  normalize(natural);
  normalize(other);
  // EM for the poisoned share among the carriers.
  let share = Math.min(0.99, Math.max(0.01, t.docs.length / Math.max(1, carriers.length)));
  const posterior = (bin: number, pi: number): number => {
    const a = pi * (other[bin] as number);
    return a / (a + (1 - pi) * (natural[bin] as number));
  };
  for (let iter = 0; iter < 200 && carriers.length > 0; iter++) {
    let sum = 0;
    for (const c of carriers) sum += posterior(c.bin, share);
    const next = Math.min(0.999, Math.max(0.001, sum / carriers.length));
    if (Math.abs(next - share) < 1e-6) break;
    share = next;
  }
  let flagBins = 0;
  while (flagBins < bins && posterior(flagBins, share) > minPosterior) flagBins++;
  const flagged: number[] = [];
  const seen = new Map<number, { looksLike: number; labelProbability: number }>();
  for (const c of carriers) {
    seen.set(c.i, { looksLike: c.looksLike, labelProbability: c.q });
    if (c.bin < flagBins) flagged.push(c.i);
  }
  return {
    flagged,
    seen,
    summary: {
      labeled: carriers.length,
      flagged: flagged.length,
      patternPixels: pixels.length,
      poisonedShare: round(share),
      // Carriers whose q (p(target) without the pattern) is below this are flagged.
      flaggedBelow: flagBins === 0 ? 0 : flagBins > Q_EDGES.length ? 1 : Q_EDGES[flagBins - 1],
    },
  };
}

function emptyResult(scores: Float64Array, flagged: Uint8Array, warnings: string[]): DetectorResult {
  return {
    detector: NAME,
    version: VERSION,
    scores,
    flagged,
    threshold: { value: Infinity, method: "not tested" },
    findings: [],
    summary: {},
    warnings,
  };
}

/**
 * Significant windows of one patch: same target, overlapping, and sharing at least half of the
 * smaller one's mismatched carriers with another member (union–find). The trigger's region is the
 * members' bounding box; its p-value and its carriers are its strongest member's.
 */
function mergeWindows(significant: readonly Candidate[], windows: Windows, w: number): Trigger[] {
  const ordered = [...significant].sort((a, b) => a.logP - b.logP);
  const parent = ordered.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i] as number] as number;
    return i;
  };
  for (let a = 0; a < ordered.length; a++) {
    for (let b = a + 1; b < ordered.length; b++) {
      const ca = ordered[a] as Candidate;
      const cb = ordered[b] as Candidate;
      if (ca.target !== cb.target) continue;
      // Only windows that share pixels: a trigger's victims also carry the shapes of the classes
      // they were taken from, elsewhere in the image, and those windows are not the trigger.
      const oa = windows.origin(ca.token);
      const ob = windows.origin(cb.token);
      if (Math.abs(oa.x - ob.x) >= w || Math.abs(oa.y - ob.y) >= w) continue;
      const da = ca.docs as Int32Array;
      const db = cb.docs as Int32Array;
      if (sharedCount(da, db) * 2 >= Math.min(da.length, db.length)) parent[find(b)] = find(a);
    }
  }
  const groups = new Map<number, Candidate[]>();
  ordered.forEach((c, i) => {
    const root = find(i);
    groups.set(root, [...(groups.get(root) ?? []), c]);
  });
  return [...groups.values()].map((members) => {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const m of members) {
      const { x, y } = windows.origin(m.token);
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x + w);
      y1 = Math.max(y1, y + w);
    }
    // The carriers are the strongest window's: the window on the pattern itself, which every
    // poisoned image holds whatever surrounds it. The windows at its edges hold some background
    // too, and images that match them there (a bag the model fails on, with a bright corner)
    // are not carriers of the pattern.
    const lead = members[0] as Candidate;
    return {
      members,
      target: lead.target,
      docs: lead.docs as Int32Array,
      logP: lead.logP,
      x: x0,
      y: y0,
      width: x1 - x0,
      height: y1 - y0,
    };
  });
}

/** Size of the intersection of two ascending lists. */
function sharedCount(a: Int32Array, b: Int32Array): number {
  let i = 0;
  let j = 0;
  let shared = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as number;
    const y = b[j] as number;
    if (x === y) {
      shared++;
      i++;
      j++;
    } else if (x < y) i++;
    else j++;
  }
  return shared;
}

function candidateRow(
  c: Candidate,
  windows: Windows,
  classes: readonly string[],
  logTests: number,
): Record<string, unknown> {
  const { x, y } = windows.origin(c.token);
  return {
    x,
    y,
    pattern: windows.pattern(c.token),
    target: classes[c.target],
    images: c.count,
    mismatchedCarriers: c.mismatched,
    expectedMismatchedCarriers: round(c.expected),
    log10PValue: c.logP / Math.LN10,
    log10AdjustedPValue: Math.min(0, (c.logP + logTests) / Math.LN10),
  };
}

function triggerRow(
  t: Trigger,
  windows: Windows,
  classes: readonly string[],
  logTests: number,
  explainedShare: number,
): Record<string, unknown> {
  const lead = t.members[0] as Candidate;
  return {
    target: classes[t.target],
    region: { x: t.x, y: t.y, width: t.width, height: t.height },
    pattern: windows.pattern(lead.token),
    windows: t.members.length,
    // Images labeled the target that carry one of its windows and look like another class: flagged.
    mismatchedCarriers: t.docs.length,
    expectedMismatchedCarriers: round(lead.expected),
    // Share of them the content model with the window in place puts in the label.
    explainedShare: round(explainedShare),
    log10AdjustedPValue: Math.min(0, (t.logP + logTests) / Math.LN10),
  };
}

/**
 * Whether softmax(z)[j] is below e^logBar, z's largest entry being at `best`. The gap to the largest
 * score bounds it from both sides (e^gap / k ≤ p_j ≤ e^gap), which settles most windows without
 * a single exp.
 */
function probabilityBelow(z: Float64Array, j: number, best: number, logBar: number): boolean {
  const top = z[best] as number;
  const gap = (z[j] as number) - top;
  if (gap < logBar) return true;
  if (gap >= logBar + Math.log(z.length)) return false;
  let sum = 0;
  for (const v of z) sum += Math.exp(v - top);
  return gap - Math.log(sum) < logBar;
}
