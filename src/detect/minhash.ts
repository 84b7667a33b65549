// MinHash signatures and LSH banding (Broder, 1997; Indyk & Motwani, 1998) on typed arrays, for
// finding near-duplicate sets among many: two sets agree in one signature position with
// probability equal to their Jaccard similarity, and banding turns "many positions agree" into
// "some band hashes to the same bucket" so that only candidate pairs are ever compared.
//
// Signatures are computed by one-permutation hashing (Li, Owen & Zhang, 2012): each element is
// hashed once, the top bits choose one of `size` bins and the rest compete for the bin's minimum,
// so a signature costs one hash per element instead of `size`. Bins that no element reaches are
// filled by optimal densification (Shrivastava, 2017): bin i borrows the value of the first
// non-empty bin on its own pseudo-random probe sequence, which is the same for every set, so the
// fraction of equal positions stays an unbiased estimate of the Jaccard similarity.
import { AntidoteError } from "../errors.js";
import { murmur3_32_int } from "../math/hash.js";

export interface MinHashOptions {
  /** Signature length: a power of two from 16 to 4096 (default 128). */
  size?: number;
  /** Seeds the element permutation; signatures are comparable only under the same seed and size. */
  seed?: number;
}

export const DEFAULT_SIGNATURE_SIZE = 128;
// Densification probes per empty bin before falling back to the next filled bin in order.
const MAX_PROBES = 1024;

export class MinHasher {
  readonly size: number;
  private readonly seed: number;
  private readonly binShift: number;
  private readonly filled: Uint8Array;

  constructor(options: MinHashOptions = {}) {
    const size = options.size ?? DEFAULT_SIGNATURE_SIZE;
    if (!Number.isInteger(Math.log2(size)) || size < 16 || size > 4096) {
      throw new AntidoteError("USAGE", `MinHash size: ${size} is not a power of two from 16 to 4096.`);
    }
    this.size = size;
    this.seed = (options.seed ?? 0) >>> 0;
    this.binShift = 32 - Math.log2(size);
    this.filled = new Uint8Array(size);
  }

  /**
   * Write the signature of the set of 32-bit `elements` (repeats are harmless) into
   * `out[offset .. offset + size)`. Returns false, leaving the slot untouched, for an empty set.
   */
  signatureInto(elements: ArrayLike<number>, out: Uint32Array, offset = 0): boolean {
    if (elements.length === 0) return false;
    const { size, filled, binShift, seed } = this;
    filled.fill(0);
    out.fill(0xffffffff, offset, offset + size);
    for (let i = 0; i < elements.length; i++) {
      const h = murmur3_32_int(elements[i] as number, seed);
      const bin = h >>> binShift;
      filled[bin] = 1;
      if (h < (out[offset + bin] as number)) out[offset + bin] = h;
    }
    for (let bin = 0; bin < size; bin++) {
      if (filled[bin] === 1) continue;
      // The probe sequence depends only on the bin, so two sets with the same filled bins borrow alike.
      let from = -1;
      for (let attempt = 1; attempt <= MAX_PROBES && from < 0; attempt++) {
        const probe = murmur3_32_int(bin, (seed ^ Math.imul(attempt, 0x9e3779b1)) >>> 0) & (size - 1);
        if (filled[probe] === 1) from = probe;
      }
      // Rare (a set that fills one bin of 128 misses it 1024 times with p ≈ e^−8), and as
      // deterministic as the probes, so signatures stay comparable.
      for (let step = 1; from < 0; step++)
        if (filled[(bin + step) & (size - 1)] === 1) from = (bin + step) & (size - 1);
      out[offset + bin] = out[offset + from] as number;
    }
    return true;
  }

  signature(elements: ArrayLike<number>): Uint32Array {
    const out = new Uint32Array(this.size);
    if (!this.signatureInto(elements, out)) out.fill(0xffffffff);
    return out;
  }
}

/** Estimated Jaccard similarity: the share of equal positions of two signatures of `size` values. */
export function estimateJaccard(
  a: Uint32Array,
  b: Uint32Array,
  size = Math.min(a.length, b.length),
  aOffset = 0,
  bOffset = 0,
): number {
  let equal = 0;
  for (let i = 0; i < size; i++) if (a[aOffset + i] === b[bOffset + i]) equal++;
  return equal / size;
}

/** Exact Jaccard similarity of two sets given as arrays (repeats ignored). */
export function exactJaccard(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const sa = new Set(Array.from(a));
  const sb = new Set(Array.from(b));
  if (sa.size === 0 && sb.size === 0) return 1;
  let both = 0;
  for (const x of sa) if (sb.has(x)) both++;
  return both / (sa.size + sb.size - both);
}

export interface LshBanding {
  bands: number;
  rows: number;
}

/**
 * Bands × rows = size minimising the weighted areas of false positives below `threshold` and
 * false negatives above it under the banding S-curve P(candidate | s) = 1 − (1 − s^rows)^bands
 * (the choice datasketch makes). Weighting misses more (the default) favours recall; every
 * candidate pair is verified afterwards, so false positives cost only time.
 */
export function lshBanding(threshold: number, size: number, missWeight = 0.7): LshBanding {
  if (!(threshold > 0 && threshold < 1)) {
    throw new AntidoteError("USAGE", `LSH threshold: ${threshold} is not between 0 and 1.`);
  }
  const integrate = (f: (s: number) => number, lo: number, hi: number) => {
    const steps = 200;
    const h = (hi - lo) / steps;
    let sum = 0.5 * (f(lo) + f(hi));
    for (let i = 1; i < steps; i++) sum += f(lo + i * h);
    return sum * h;
  };
  let best: LshBanding = { bands: size, rows: 1 };
  let bestCost = Infinity;
  for (let rows = 1; rows <= size; rows++) {
    if (size % rows !== 0) continue;
    const bands = size / rows;
    const p = (s: number) => 1 - (1 - s ** rows) ** bands;
    const cost =
      (1 - missWeight) * integrate(p, 0, threshold) + missWeight * integrate((s) => 1 - p(s), threshold, 1);
    if (cost < bestCost) {
      bestCost = cost;
      best = { bands, rows };
    }
  }
  return best;
}

export interface CandidatePairOptions {
  /**
   * A bucket with more members than this (a big duplicate cluster) yields a chain through its
   * members instead of all pairs, which keeps the cluster connected at linear cost.
   */
  maxBucket?: number;
}

/**
 * Candidate pairs (i < j) of `count` signatures stored row-major in `signatures` (count × size),
 * as a flat array [i0, j0, i1, j1, …] without repeats. `present[i] === 0` excludes a row (an
 * empty set has no signature).
 */
export function lshCandidatePairs(
  signatures: Uint32Array,
  count: number,
  size: number,
  banding: LshBanding,
  present?: Uint8Array,
  options: CandidatePairOptions = {},
): Uint32Array {
  const { bands, rows } = banding;
  if (bands * rows !== size) {
    throw new AntidoteError("USAGE", `LSH banding ${bands} × ${rows} does not cover a signature of ${size}.`);
  }
  const maxBucket = options.maxBucket ?? 200;
  const members: number[] = [];
  for (let i = 0; i < count; i++) if (present === undefined || present[i] === 1) members.push(i);
  const keys = new Uint32Array(count);
  const order = Uint32Array.from(members);
  const seen = new Set<number>();
  const pairs: number[] = [];
  const emit = (a: number, b: number) => {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const key = lo * count + hi;
    if (seen.has(key)) return;
    seen.add(key);
    pairs.push(lo, hi);
  };
  for (let band = 0; band < bands; band++) {
    for (const i of members) {
      let h = band;
      const base = i * size + band * rows;
      for (let r = 0; r < rows; r++) h = murmur3_32_int(signatures[base + r] as number, h);
      keys[i] = h;
    }
    order.sort((a, b) => (keys[a] as number) - (keys[b] as number) || a - b);
    for (let start = 0; start < order.length;) {
      let end = start + 1;
      while (end < order.length && keys[order[end] as number] === keys[order[start] as number]) end++;
      const bucket = end - start;
      if (bucket > maxBucket) {
        for (let x = start + 1; x < end; x++) emit(order[x - 1] as number, order[x] as number);
      } else {
        for (let x = start; x < end; x++)
          for (let y = x + 1; y < end; y++) emit(order[x] as number, order[y] as number);
      }
      start = end;
    }
  }
  return Uint32Array.from(pairs);
}
