// How a federation's training data is spread over its clients: IID (every client sees the
// same label mix) or Dirichlet(α) label skew (Hsu, Qi & Brown, 2019), the usual benchmark
// for non-IID federated learning. Small α gives each client a few dominant classes, which
// makes honest updates disagree and so makes Byzantine updates harder to tell apart.
import { AntidoteError } from "../../errors.js";
import { Rng } from "../../math/rng.js";

export type SplitKind = "iid" | "dirichlet";

export interface PartitionOptions {
  clients: number;
  split: SplitKind;
  /** Dirichlet concentration; smaller is more skewed (default 0.5). */
  alpha?: number;
  seed: number | string;
}

/**
 * Assign every sample index 0..labels.length−1 to exactly one of `clients` clients; no
 * client is left empty. Returns one ascending index list per client.
 */
export function partitionClients(labels: ArrayLike<number>, options: PartitionOptions): number[][] {
  const { clients, split } = options;
  if (!Number.isInteger(clients) || clients < 1)
    throw new AntidoteError("USAGE", `clients: need a positive integer, got ${clients}.`);
  if (labels.length < clients)
    throw new AntidoteError(
      "USAGE",
      `clients: ${labels.length} samples cannot be split over ${clients} clients without leaving one empty.`,
    );
  const rng = new Rng(`${options.seed}:partition`);
  const parts =
    split === "iid"
      ? partitionIid(labels.length, clients, rng)
      : partitionDirichlet(labels, clients, options.alpha ?? 0.5, rng);
  return parts.map((p) => p.sort((a, b) => a - b));
}

/** Shuffle and deal: client sizes differ by at most one. */
export function partitionIid(count: number, clients: number, rng: Rng): number[][] {
  const order = rng.shuffle(Array.from({ length: count }, (_, i) => i));
  const parts: number[][] = Array.from({ length: clients }, () => []);
  order.forEach((sample, i) => parts[i % clients]?.push(sample));
  return parts;
}

/**
 * Per class, draw client proportions p ~ Dir(α·1) and cut that class's shuffled samples at
 * the cumulative proportions. As in the reference implementations, a draw that leaves a
 * client with fewer than `minSize` samples is redrawn (a few times), and clients already
 * holding their fair share get no more of the class, which keeps sizes from exploding; if
 * redrawing cannot satisfy the minimum, the largest clients give samples to the smallest.
 */
export function partitionDirichlet(
  labels: ArrayLike<number>,
  clients: number,
  alpha: number,
  rng: Rng,
): number[][] {
  if (!(alpha > 0) || !Number.isFinite(alpha))
    throw new AntidoteError("USAGE", `alpha: the Dirichlet concentration must be > 0, got ${alpha}.`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] ?? 0;
    const list = byClass.get(y);
    if (list === undefined) byClass.set(y, [i]);
    else list.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const fairShare = labels.length / clients;
  const minSize = Math.max(1, Math.min(10, Math.floor(fairShare / 2)));
  let parts: number[][] = [];
  for (let attempt = 0; attempt < 100; attempt++) {
    parts = Array.from({ length: clients }, () => []);
    for (const k of classes) {
      const members = rng.shuffle([...(byClass.get(k) ?? [])]);
      const p = dirichlet(clients, alpha, rng);
      let total = 0;
      for (let c = 0; c < clients; c++) {
        if ((parts[c]?.length ?? 0) >= fairShare) p[c] = 0;
        total += p[c] ?? 0;
      }
      if (total === 0) p.fill(1 / clients);
      else for (let c = 0; c < clients; c++) p[c] = (p[c] ?? 0) / total;
      let start = 0;
      let cumulative = 0;
      for (let c = 0; c < clients; c++) {
        cumulative += p[c] ?? 0;
        const end = c === clients - 1 ? members.length : Math.round(cumulative * members.length);
        for (let i = start; i < end; i++) parts[c]?.push(members[i] ?? 0);
        start = Math.max(start, end);
      }
    }
    if (parts.every((part) => part.length >= minSize)) return parts;
  }
  return rebalance(parts, minSize);
}

/** Move samples from the largest clients until every client has at least `minSize`. */
function rebalance(parts: number[][], minSize: number): number[][] {
  for (const part of parts) {
    while (part.length < minSize) {
      const donor = parts.reduce((a, b) => (b.length > a.length ? b : a));
      if (donor.length <= minSize) break;
      part.push(donor.pop() ?? 0);
    }
  }
  return parts;
}

/** A draw from Dir(α·1_k): normalized Gamma(α) draws, computed in log space so α ≪ 1 cannot underflow to all zeros. */
export function dirichlet(k: number, alpha: number, rng: Rng): number[] {
  const logs = Array.from({ length: k }, () => logGamma(alpha, rng));
  const max = Math.max(...logs);
  const w = logs.map((l) => Math.exp(l - max));
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / sum);
}

/** log of a Gamma(a, 1) draw: Marsaglia & Tsang (2000), with the U^(1/a) boost for a < 1. */
function logGamma(a: number, rng: Rng): number {
  if (a < 1) return logGamma(a + 1, rng) + Math.log(1 - rng.next()) / a;
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    const u = 1 - rng.next();
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return Math.log(d * v);
  }
}

/** Label counts of one client's samples. */
export function labelHistogram(
  indices: readonly number[],
  labels: ArrayLike<number>,
  classes: number,
): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const i of indices) {
    const y = labels[i] ?? 0;
    counts[y] = (counts[y] ?? 0) + 1;
  }
  return counts;
}

/** Shannon entropy (bits) of one client's label distribution: log2(classes) when balanced, 0 for one class. */
export function labelEntropy(indices: readonly number[], labels: ArrayLike<number>, classes: number): number {
  const counts = labelHistogram(indices, labels, classes);
  const total = indices.length;
  let h = 0;
  for (const n of counts) if (n > 0) h -= (n / total) * Math.log2(n / total);
  return h;
}
