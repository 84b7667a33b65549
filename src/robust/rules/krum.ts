// The distance-based selection rules: Krum and Multi-Krum (Blanchard et al. 2017) and Bulyan
// (El Mhamdi et al. 2018). All three need only the pairwise distances to choose, so they read the
// updates twice: pass 1 accumulates the Gram matrix, pass 2 builds the aggregate from the chosen
// updates and scores every client against it.
import { clientScores, fmt, type RuleVerdict } from "../client-scores.js";
import { squaredDistances } from "../gram.js";
import type { BlockEngine } from "./engine.js";
import { aggregatePass, gramPass } from "./passes.js";
import type { RuleOutput } from "./rule.js";

/**
 * Krum score of each member of `members`: the sum of squared distances to its `neighbours`
 * nearest other members (`dist` is the n × n squared-distance matrix). `total`, the sum over
 * every other member, breaks ties: with one neighbour the two ends of the closest pair always
 * tie, and picking by index would make the result depend on the order clients are listed in.
 */
export function krumScores(
  dist: Float64Array,
  n: number,
  members: readonly number[],
  neighbours: number,
): { score: number[]; total: number[] } {
  const row: number[] = [];
  const score: number[] = [];
  const total: number[] = [];
  for (const i of members) {
    row.length = 0;
    for (const j of members) if (j !== i) row.push(dist[i * n + j]!);
    row.sort((a, b) => a - b);
    let s = 0;
    for (let q = 0; q < neighbours && q < row.length; q++) s += row[q]!;
    score.push(s);
    total.push(row.reduce((a, b) => a + b, 0));
  }
  return { score, total };
}

/** Positions ordered by (score, total), lowest first; exact ties of both keep position order. */
function byScore(k: { score: readonly number[]; total: readonly number[] }): number[] {
  return k.score
    .map((_, i) => i)
    .sort((a, b) => k.score[a]! - k.score[b]! || k.total[a]! - k.total[b]! || a - b);
}

function ranks(order: readonly number[]): number[] {
  const r = new Array<number>(order.length);
  order.forEach((client, pos) => (r[client] = pos + 1));
  return r;
}

function allClients(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * The verdict of a Krum-family rule. Krum keeps one update and Bulyan 2F fewer than n, so "left
 * out" alone says little about a client; what each rule assumes is that the F updates with the
 * highest Krum scores may be Byzantine, and those are the ones it flags (for Multi-Krum with its
 * default m = n − F, exactly the ones it leaves out).
 */
function krumVerdict(
  rule: string,
  scores: number[],
  order: number[],
  chosen: Set<number>,
  f: number,
): RuleVerdict {
  const n = scores.length;
  const rank = ranks(order);
  return {
    ruleScore: scores,
    selected: scores.map((_, i) => chosen.has(i)),
    reasons: scores.map((s, i) =>
      rank[i]! > n - f
        ? [
            `krum score ${fmt(s)} ranks ${rank[i]} of ${n}: among the F = ${f} highest, which ${rule} treats as ` +
              `possibly Byzantine${chosen.has(i) ? "" : " (left out of the aggregate)"}`,
          ]
        : [],
    ),
  };
}

/** Krum: the one update with the lowest Krum score (n − F − 2 neighbours). */
export function krum(engine: BlockEngine, f: number): RuleOutput {
  const n = engine.n;
  const dist = squaredDistances(gramPass(engine, "krum: pairwise distances"), n);
  const neighbours = n - f - 2;
  const k = krumScores(dist, n, allClients(n), neighbours);
  const order = byScore(k);
  const best = order[0]!;
  const weights = k.score.map((_, i) => (i === best ? 1 : 0));
  const { aggregate, sums } = aggregatePass(engine, "krum: aggregate", { kind: "weighted", weights });
  const verdict = krumVerdict("krum", k.score, order, new Set([best]), f);
  return {
    aggregate,
    clients: clientScores(sums, aggregate, verdict),
    details: { selectedClient: best, krumScore: k.score[best]!, neighbours },
  };
}

/** Multi-Krum: the mean of the m = multiKrumSelect ?? n − F updates with the lowest Krum scores. */
export function multiKrum(engine: BlockEngine, f: number, select: number | undefined): RuleOutput {
  const n = engine.n;
  const dist = squaredDistances(gramPass(engine, "multi-krum: pairwise distances"), n);
  const neighbours = n - f - 2;
  const m = select ?? n - f;
  const k = krumScores(dist, n, allClients(n), neighbours);
  const order = byScore(k);
  const chosen = new Set(order.slice(0, m));
  const weights = k.score.map((_, i) => (chosen.has(i) ? 1 / m : 0));
  const { aggregate, sums } = aggregatePass(engine, "multi-krum: aggregate", { kind: "weighted", weights });
  const verdict = krumVerdict("multi-krum", k.score, order, chosen, f);
  return {
    aggregate,
    clients: clientScores(sums, aggregate, verdict),
    details: { selectedCount: m, neighbours },
  };
}

/**
 * Bulyan's selection: θ = n − 2F updates, each the Krum winner of those not yet chosen, with
 * scores recomputed on the remaining set from the one distance matrix. Krum's neighbour count
 * r − F − 2 on r remaining updates is kept at least 1 for the last few picks, where it would
 * otherwise reach 0 and every score would tie (the paper applies Krum there beyond its bound).
 */
export function bulyanSelect(dist: Float64Array, n: number, f: number): number[] {
  const theta = n - 2 * f;
  // Each client's others by distance, sorted once; a pick then only skips the removed ones,
  // so the whole selection is O(n³) additions, not θ rounds of sorting.
  const nearest = Array.from({ length: n }, (_, i) =>
    allClients(n)
      .filter((j) => j !== i)
      .sort((a, b) => dist[i * n + a]! - dist[i * n + b]! || a - b),
  );
  const removed = new Uint8Array(n);
  const selected: number[] = [];
  while (selected.length < theta) {
    const r = n - selected.length;
    const neighbours = Math.min(r - 1, Math.max(1, r - f - 2));
    let best = -1;
    let bestScore = Infinity;
    let bestTotal = Infinity;
    for (let i = 0; i < n; i++) {
      if (removed[i] === 1) continue;
      let score = 0;
      let total = 0;
      let taken = 0;
      for (const j of nearest[i]!) {
        if (removed[j] === 1) continue;
        const d = dist[i * n + j]!;
        if (taken++ < neighbours) score += d;
        total += d;
      }
      if (score < bestScore || (score === bestScore && total < bestTotal)) {
        best = i;
        bestScore = score;
        bestTotal = total;
      }
    }
    selected.push(best);
    removed[best] = 1;
  }
  return selected;
}

/** Bulyan: iterated Krum selects θ = n − 2F, then per coordinate the mean of the β = θ − 2F values nearest the median. */
export function bulyan(engine: BlockEngine, f: number): RuleOutput {
  const n = engine.n;
  const dist = squaredDistances(gramPass(engine, "bulyan: pairwise distances"), n);
  const theta = n - 2 * f;
  const beta = theta - 2 * f;
  const selected = bulyanSelect(dist, n, f);
  const chosen = new Set(selected);
  const k = krumScores(dist, n, allClients(n), n - f - 2);
  const { aggregate, sums } = aggregatePass(engine, "bulyan: aggregate", {
    kind: "bulyan",
    selected: [...selected].sort((a, b) => a - b),
    beta,
  });
  const verdict = krumVerdict("bulyan", k.score, byScore(k), chosen, f);
  return {
    aggregate,
    clients: clientScores(sums, aggregate, verdict),
    details: { theta, beta, selectionOrder: selected.join(",") },
  };
}
