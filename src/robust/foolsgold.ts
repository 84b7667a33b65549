// FoolsGold (Fung, Yoon & Beschastnikh 2020): sybils that push the same poisoned objective send
// updates more alike than honest clients with their own data ever are. Over each client's summed
// update history: pairwise cosine similarity, "pardoning" of honest clients who merely resemble
// a sybil, weight 1 − max similarity rescaled so the most distinct client has 1, then a logit
// with confidence κ that pushes the near-identical ones to 0. Port of Algorithm 1 and the
// authors' reference implementation (github.com/DistributedML/FoolsGold).
//
// FoolsGold assumes honest data is not IID: honest clients training on the same distribution
// also send similar updates and lose weight. Its weights multiply the learning rate of each
// client's update; fl-sim and `antidote aggregate` use them to drop the flagged clients.
import { fmt } from "./client-scores.js";
import { cosines } from "./gram.js";
import { defaultBlockSize, defaultThreads } from "./rules/engine.js";
import { gramPass, openEngine } from "./rules/passes.js";
import type { UpdateMatrix } from "./types.js";

/** A client whose FoolsGold weight is at most this is, in effect, excluded: flagged. */
export const FOOLSGOLD_WEIGHT_FLOOR = 0.01;
/** Summed histories this alike (cosine) are near-identical: flagged as likely sybils whatever the weight. */
export const SYBIL_COSINE = 0.99;

export interface FoolsGoldOptions {
  /** κ, the logit's confidence (default 1): larger pushes weights harder towards 0 or 1. */
  confidence?: number;
  blockSize?: number;
  threads?: number;
}

export interface FoolsGoldResult {
  /** Per-client weight in [0, 1]. */
  weights: number[];
  /** Each client's largest cosine similarity with another client's history (before pardoning). */
  maxSimilarity: number[];
  flagged: boolean[];
  reasons: string[][];
}

/** FoolsGold weights from each client's summed updates (one row per client), read in column blocks. */
export function foolsGold(history: UpdateMatrix, options: FoolsGoldOptions = {}): FoolsGoldResult {
  const n = history.clients;
  const d = history.dimension;
  const kappa = options.confidence ?? 1;
  const engine = openEngine(history, {
    blockSize: options.blockSize ?? defaultBlockSize(n, d),
    threads: options.threads ?? defaultThreads((n * n * d) / 2),
    gram: true,
  });
  let gram: Float64Array;
  try {
    gram = gramPass(engine, "foolsgold: pairwise similarity");
  } finally {
    engine.close();
  }
  // cs − I as in the reference: a client's own similarity counts as 0, so max similarity ≥ 0.
  const cs = cosines(gram, n);
  for (let i = 0; i < n; i++) cs[i * n + i] = 0;
  const maxSimilarity = new Array<number>(n).fill(0);
  const closest = new Array<number>(n).fill(-1);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      if (cs[i * n + j]! > maxSimilarity[i]!) {
        maxSimilarity[i] = cs[i * n + j]!;
        closest[i] = j;
      }
  // Pardoning: an honest client that resembles a sybil is less alike to it than the sybils are
  // to each other, so its similarity to a more-similar client is scaled down by the ratio.
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      if (i !== j && maxSimilarity[i]! < maxSimilarity[j]!)
        cs[i * n + j] = (cs[i * n + j]! * maxSimilarity[i]!) / maxSimilarity[j]!;
  const wv = Array.from({ length: n }, (_, i) => {
    let m = 0;
    for (let j = 0; j < n; j++) m = Math.max(m, cs[i * n + j]!);
    return Math.max(0, Math.min(1, 1 - m));
  });
  const top = Math.max(0, ...wv);
  const weights = wv.map((w) => {
    if (!(top > 0)) return 0;
    let r = w / top;
    if (r === 1) r = 0.99;
    const logit = kappa * (Math.log(r / (1 - r)) + 0.5);
    return logit > 1 ? 1 : logit > 0 ? logit : 0;
  });
  const reasons = weights.map((w, i) => {
    const out: string[] = [];
    const partner = closest[i]! >= 0 ? ` with client ${closest[i]}` : "";
    if (maxSimilarity[i]! >= SYBIL_COSINE)
      out.push(
        `summed updates near-identical${partner} (cosine ${maxSimilarity[i]!.toFixed(4)} ≥ ${SYBIL_COSINE}): likely sybils`,
      );
    if (w <= FOOLSGOLD_WEIGHT_FLOOR)
      out.push(
        `FoolsGold weight ${fmt(w)} (≤ ${FOOLSGOLD_WEIGHT_FLOOR}): its history is as alike to another's as sybils' are (max cosine ${maxSimilarity[i]!.toFixed(3)}${partner})`,
      );
    return out;
  });
  return { weights, maxSimilarity, flagged: reasons.map((r) => r.length > 0), reasons };
}
