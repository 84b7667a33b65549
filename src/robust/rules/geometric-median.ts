// The geometric median z = argmin Σ‖x_i − z‖ by the smoothed Weiszfeld algorithm of RFA
// (Pillutla et al. 2022): z ← Σ w_i x_i / Σ w_i with w_i = 1 / max(ν, ‖x_i − z‖). Each
// iteration is one pass: the weights come from the previous pass's distances, and the pass that
// builds the new z also measures every client's distance to it, so the distances for the next
// weights (and the final client scores) cost nothing extra. Breakdown point 1/2: n > 2F.
import { clientScores, median, type RuleVerdict } from "../client-scores.js";
import type { BlockEngine } from "./engine.js";
import { aggregatePass } from "./passes.js";
import type { RuleOutput } from "./rule.js";

export const DEFAULT_MAX_ITERATIONS = 100;
/** Stop when the objective Σ‖x_i − z‖ changes by less than this fraction of itself. */
export const DEFAULT_TOLERANCE = 1e-6;

export function geometricMedian(
  engine: BlockEngine,
  maxIterations = DEFAULT_MAX_ITERATIONS,
  tolerance = DEFAULT_TOLERANCE,
): RuleOutput {
  const n = engine.n;
  let step = aggregatePass(engine, "geometric-median: start at the mean", {
    kind: "weighted",
    weights: new Float64Array(n).fill(1 / n),
  });
  const aggregate = step.aggregate;
  let dist = Array.from(step.sums.distanceSq, (s) => Math.sqrt(Math.max(0, s)));
  // ν keeps a weight finite when z lands on an update; scaled to the data so the rule is
  // unit-free (RFA's absolute 1e-6 is the same idea for unit-scale updates).
  const spread = median(dist) > 0 ? median(dist) : dist.reduce((a, b) => a + b, 0) / n;
  const smoothing = spread > 0 ? 1e-6 * spread : 1;
  let objective = dist.reduce((a, b) => a + b, 0);
  let weights = new Float64Array(n);
  let iterations = 0;
  let converged = false;
  while (iterations < maxIterations) {
    weights = new Float64Array(dist.map((d) => 1 / Math.max(smoothing, d)));
    const total = weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < n; i++) weights[i] = weights[i]! / total;
    iterations++;
    step = aggregatePass(
      engine,
      `geometric-median: Weiszfeld iteration ${iterations}`,
      { kind: "weighted", weights },
      aggregate,
    );
    dist = Array.from(step.sums.distanceSq, (s) => Math.sqrt(Math.max(0, s)));
    const next = dist.reduce((a, b) => a + b, 0);
    const change = Math.abs(objective - next);
    objective = next;
    if (change <= tolerance * next) {
      converged = true;
      break;
    }
  }
  const verdict: RuleVerdict = {
    ruleScore: Array.from(weights),
    selected: null,
    reasons: Array.from({ length: n }, () => []),
  };
  return {
    aggregate,
    clients: clientScores(step.sums, aggregate, verdict),
    details: {
      iterations,
      converged: converged ? "yes" : `no (stopped after ${iterations} iterations)`,
      objective,
      smoothing,
    },
  };
}
