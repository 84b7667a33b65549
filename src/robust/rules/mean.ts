// Plain FedAvg: the unweighted mean, no Byzantine tolerance. The baseline every robust rule is
// compared with, and what fl-sim shows an attack doing when nothing defends against it.
import { clientScores, emptyVerdict } from "../client-scores.js";
import type { BlockEngine } from "./engine.js";
import { aggregatePass } from "./passes.js";
import type { RuleOutput } from "./rule.js";

export function mean(engine: BlockEngine): RuleOutput {
  const n = engine.n;
  const weights = new Float64Array(n).fill(1 / n);
  const { aggregate, sums } = aggregatePass(engine, "mean: aggregate", { kind: "weighted", weights });
  return { aggregate, clients: clientScores(sums, aggregate, emptyVerdict(n)), details: {} };
}
