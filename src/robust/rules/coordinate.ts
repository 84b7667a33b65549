// Coordinate-wise rules: the median (Yin et al. 2018; the mean of the two middle values when n
// is even) and the trimmed mean (drop the `trim` largest and smallest values of every
// coordinate, average the rest). One pass: each block is transposed per task and reduced with
// a quickselect (kernels.ts), then every client is scored against the finished block.
import { clientScores, emptyVerdict } from "../client-scores.js";
import type { BlockEngine } from "./engine.js";
import { aggregatePass } from "./passes.js";
import type { RuleOutput } from "./rule.js";

export function coordinateMedian(engine: BlockEngine): RuleOutput {
  const { aggregate, sums } = aggregatePass(engine, "median: aggregate", { kind: "median" });
  return { aggregate, clients: clientScores(sums, aggregate, emptyVerdict(engine.n)), details: {} };
}

export function trimmedMean(engine: BlockEngine, trim: number): RuleOutput {
  const { aggregate, sums } = aggregatePass(engine, "trimmed-mean: aggregate", {
    kind: "trimmed-mean",
    trim,
  });
  return {
    aggregate,
    clients: clientScores(sums, aggregate, emptyVerdict(engine.n)),
    details: { trim, averaged: engine.n - 2 * trim },
  };
}
