// Engine kernels for the aggregate block: weighted sums (mean, Multi-Krum, FLTrust, norm
// clipping, Weiszfeld steps) and coordinate-wise order statistics (median, trimmed mean,
// Bulyan's coordinate phase). Self-contained for the worker threads (see engine.ts): literal
// parameter indices, no imports, helpers only from this module and listed in KERNEL_HELPERS.
//
// Order statistics run on a per-task transposed copy (columns × clients), so each coordinate's
// values are contiguous, and use a branchless Lomuto quickselect: on random data a comparison
// branch mispredicts half the time, which costs more than the partition itself.
import type { BlockMemory, Scratch } from "./engine.js";

/** Columns per task of the column-parallel kernels. */
export const COLUMNS_PER_TASK = 256;

/**
 * Rearranges t[lo, hi) so that t[k] holds the value of rank k − lo, everything before it is ≤ and
 * everything after it is ≥, and returns that value. Each step partitions around the median of
 * three, with the pivot set aside so every step shrinks the range; when a step picks the same
 * pivot value as the one before (a run of equal values, e.g. coordinates no client changed) it
 * splits three ways instead, so equal values cost one sweep, not one step each. Values are assumed
 * finite; a NaN only makes the answer NaN, never an endless loop.
 */
export function selectKth(t: Float32Array, lo: number, hi: number, k: number): number {
  let l = lo;
  let r = hi;
  let previous = NaN;
  for (;;) {
    if (r - l <= 1) return t[l]!;
    const m = (l + r) >> 1;
    const a = t[l]!;
    const b = t[m]!;
    const c = t[r - 1]!;
    const at = a < b ? (b < c ? m : a < c ? r - 1 : l) : a < c ? l : b < c ? r - 1 : m;
    const p = t[at]!;
    if (p === previous) {
      // [l, s2) ≤ p, then within it [l, s) < p: the values equal to p are [s, s2).
      let s2 = l;
      for (let i = l; i < r; i++) {
        const x = t[i]!;
        t[i] = t[s2]!;
        t[s2] = x;
        s2 += +(x <= p);
      }
      let s = l;
      for (let i = l; i < s2; i++) {
        const x = t[i]!;
        t[i] = t[s]!;
        t[s] = x;
        s += +(x < p);
      }
      if (k >= s && k < s2) return p;
      if (k < s) r = s;
      else l = s2;
      previous = NaN;
      continue;
    }
    previous = p;
    t[at] = t[r - 1]!;
    t[r - 1] = p;
    // Branchless Lomuto: [l, s) < p. The store index depends on the comparison, not a branch.
    let s = l;
    for (let i = l; i < r - 1; i++) {
      const x = t[i]!;
      t[i] = t[s]!;
      t[s] = x;
      s += +(x < p);
    }
    t[r - 1] = t[s]!;
    t[s] = p;
    if (k === s) return p;
    if (k < s) r = s;
    else l = s + 1;
  }
}

/**
 * `selectKth` on Float64Array. A copy on purpose: one function fed two array types gets
 * polymorphic element access in V8 and the median's hot loop would pay for Bulyan's deviations.
 */
export function selectKth64(t: Float64Array, lo: number, hi: number, k: number): number {
  let l = lo;
  let r = hi;
  let previous = NaN;
  for (;;) {
    if (r - l <= 1) return t[l]!;
    const m = (l + r) >> 1;
    const a = t[l]!;
    const b = t[m]!;
    const c = t[r - 1]!;
    const at = a < b ? (b < c ? m : a < c ? r - 1 : l) : a < c ? l : b < c ? r - 1 : m;
    const p = t[at]!;
    if (p === previous) {
      // [l, s2) ≤ p, then within it [l, s) < p: the values equal to p are [s, s2).
      let s2 = l;
      for (let i = l; i < r; i++) {
        const x = t[i]!;
        t[i] = t[s2]!;
        t[s2] = x;
        s2 += +(x <= p);
      }
      let s = l;
      for (let i = l; i < s2; i++) {
        const x = t[i]!;
        t[i] = t[s]!;
        t[s] = x;
        s += +(x < p);
      }
      if (k >= s && k < s2) return p;
      if (k < s) r = s;
      else l = s2;
      previous = NaN;
      continue;
    }
    previous = p;
    t[at] = t[r - 1]!;
    t[r - 1] = p;
    // Branchless Lomuto: [l, s) < p. The store index depends on the comparison, not a branch.
    let s = l;
    for (let i = l; i < r - 1; i++) {
      const x = t[i]!;
      t[i] = t[s]!;
      t[s] = x;
      s += +(x < p);
    }
    t[r - 1] = t[s]!;
    t[s] = p;
    if (k === s) return p;
    if (k < s) r = s;
    else l = s + 1;
  }
}

/**
 * Task t: columns [t·256, …) of the block; for each, the coordinate-wise median (ints[3] < 0) or
 * the mean after dropping ints[3] values from each end (trimmed mean) of the first ints[2]
 * clients listed in `subset`. Writes `vector`.
 */
export function orderStatisticKernel(mem: BlockMemory, task: number, scratch: Scratch): void {
  const len = mem.ints[0]!;
  const m = mem.ints[2]!;
  const trim = mem.ints[3]!;
  const c0 = task * 256;
  const c1 = Math.min(len, c0 + 256);
  const cols = c1 - c0;
  if (scratch.f32.length < cols * m) scratch.f32 = new Float32Array(256 * m);
  const t = scratch.f32;
  const block = mem.block;
  const stride = mem.stride;
  for (let q = 0; q < m; q++) {
    const row = mem.subset[q]! * stride + c0;
    for (let c = 0, o = q; c < cols; c++, o += m) t[o] = block[row + c]!;
  }
  const out = mem.vector;
  const h = m >> 1;
  for (let c = 0; c < cols; c++) {
    const lo = c * m;
    const hi = lo + m;
    let v: number;
    if (trim < 0) {
      v = selectKth(t, lo, hi, lo + h);
      if ((m & 1) === 0) {
        // Even count: the lower middle is the largest of the h values left of the upper one.
        let below = t[lo]!;
        for (let q = lo + 1; q < lo + h; q++) {
          const y = t[q]!;
          below = y > below ? y : below;
        }
        v = (v + below) / 2;
      }
    } else {
      if (trim > 0) {
        selectKth(t, lo, hi, lo + trim);
        selectKth(t, lo + trim, hi, hi - trim);
      }
      let s = 0;
      for (let q = lo + trim; q < hi - trim; q++) s += t[q]!;
      v = s / (m - 2 * trim);
    }
    out[c0 + c] = v;
  }
}

/**
 * Bulyan's coordinate phase (El Mhamdi et al. 2018). Task t: columns [t·256, …); for each, among
 * the θ = ints[2] selected clients in `subset`, the mean of the β = ints[3] values closest to
 * their median. The β closest are those within r of the median, r the β-th smallest deviation;
 * values exactly r away fill the remaining places with their mean, so ties stay symmetric and
 * the result does not depend on client order.
 */
export function bulyanKernel(mem: BlockMemory, task: number, scratch: Scratch): void {
  const len = mem.ints[0]!;
  const m = mem.ints[2]!;
  const beta = mem.ints[3]!;
  const c0 = task * 256;
  const c1 = Math.min(len, c0 + 256);
  const cols = c1 - c0;
  if (scratch.f32.length < 256 * m) scratch.f32 = new Float32Array(256 * m);
  if (scratch.f64.length < m) scratch.f64 = new Float64Array(Math.max(256, m));
  const t = scratch.f32;
  const dev = scratch.f64;
  const block = mem.block;
  const stride = mem.stride;
  for (let q = 0; q < m; q++) {
    const row = mem.subset[q]! * stride + c0;
    for (let c = 0, o = q; c < cols; c++, o += m) t[o] = block[row + c]!;
  }
  const out = mem.vector;
  const h = m >> 1;
  for (let c = 0; c < cols; c++) {
    const lo = c * m;
    const hi = lo + m;
    let med = selectKth(t, lo, hi, lo + h);
    if ((m & 1) === 0) {
      let below = t[lo]!;
      for (let q = lo + 1; q < lo + h; q++) {
        const y = t[q]!;
        below = y > below ? y : below;
      }
      med = (med + below) / 2;
    }
    // Deviations in Float64, so only truly equidistant values tie.
    for (let q = 0; q < m; q++) dev[q] = Math.abs(t[lo + q]! - med);
    const r = selectKth64(dev, 0, m, beta - 1);
    let sum = 0;
    let count = 0;
    let tieSum = 0;
    let ties = 0;
    for (let q = lo; q < hi; q++) {
      const x = t[q]!;
      const e = Math.abs(x - med);
      if (e < r) {
        sum += x;
        count++;
      } else if (e === r) {
        tieSum += x;
        ties++;
      }
    }
    out[c0 + c] = (sum + ((beta - count) * tieSum) / ties) / beta;
  }
}

/**
 * Task t: columns [t·256, …); vector = Σ_c weights[c] · x_c over every client with a non-zero
 * weight, in Float64 and in client order, so the result does not depend on the block size.
 */
export function weightedSumKernel(mem: BlockMemory, task: number, scratch: Scratch): void {
  const len = mem.ints[0]!;
  const c0 = task * 256;
  const c1 = Math.min(len, c0 + 256);
  const cols = c1 - c0;
  if (scratch.f64.length < 256) scratch.f64 = new Float64Array(256);
  const acc = scratch.f64;
  acc.fill(0, 0, cols);
  const block = mem.block;
  const stride = mem.stride;
  const n = mem.n;
  for (let i = 0; i < n; i++) {
    const w = mem.weights[i]!;
    if (w === 0) continue;
    const row = i * stride + c0;
    for (let c = 0; c < cols; c++) acc[c] = acc[c]! + w * block[row + c]!;
  }
  const out = mem.vector;
  for (let c = 0; c < cols; c++) out[c0 + c] = acc[c]!;
}

/** Tasks of the column-parallel kernels for a block of `len` coordinates. */
export function columnTasks(len: number): number {
  return Math.ceil(len / COLUMNS_PER_TASK);
}

export const KERNEL_HELPERS = [selectKth, selectKth64] as const;
