// Norm clipping then the mean (Sun et al. 2019, "Can you really backdoor federated learning?"):
// each update is scaled down to L2 norm τ if it is longer, so a boosted (model-replacement)
// update counts no more than an honest one. τ defaults to the median client norm, which at most
// half the clients can move. Two passes: norms, then the clipped mean.
import { clientScores, median, type RuleVerdict } from "../client-scores.js";
import type { BlockEngine } from "./engine.js";
import { aggregatePass, sumsAgainstPass } from "./passes.js";
import type { RuleOutput } from "./rule.js";

export function normClipMean(engine: BlockEngine, clipNorm: number | undefined): RuleOutput {
  const n = engine.n;
  const norms = Array.from(sumsAgainstPass(engine, "norm-clip-mean: norms", null).normSq, (s) =>
    Math.sqrt(s),
  );
  const tau = clipNorm ?? median(norms);
  const factors = norms.map((nm) => (nm > tau ? tau / nm : 1));
  const { aggregate, sums } = aggregatePass(engine, "norm-clip-mean: aggregate", {
    kind: "weighted",
    weights: factors.map((c) => c / n),
  });
  const verdict: RuleVerdict = {
    ruleScore: factors,
    selected: null,
    reasons: Array.from({ length: n }, () => []),
  };
  return {
    aggregate,
    clients: clientScores(sums, aggregate, verdict),
    details: {
      clipNorm: tau,
      clipNormFrom: clipNorm === undefined ? "median client norm" : "given",
      clipped: factors.filter((c) => c < 1).length,
    },
  };
}
