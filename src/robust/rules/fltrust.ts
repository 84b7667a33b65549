// FLTrust (Cao et al. 2021): the server trains on a small clean root dataset and trusts each
// client by how well its update points the same way: TS_i = ReLU(cos(g_i, g0)). Each update is
// rescaled to ‖g0‖, so a large update cannot buy influence, and the aggregate is
// Σ TS_i ĝ_i / Σ TS_i. Two passes: cosines with the root update, then the aggregate.
import { clientScores, fmt, type RuleVerdict } from "../client-scores.js";
import type { BlockEngine } from "./engine.js";
import { aggregatePass, sumsAgainstPass } from "./passes.js";
import type { RuleOutput } from "./rule.js";

export function fltrust(engine: BlockEngine, root: Float32Array): RuleOutput {
  const against = sumsAgainstPass(engine, "fltrust: trust scores", root);
  let rootSq = 0;
  for (let k = 0; k < root.length; k++) rootSq += root[k]! * root[k]!;
  const rootNorm = Math.sqrt(rootSq);
  const norms = Array.from(against.normSq, (s) => Math.sqrt(s));
  const cos = norms.map((nm, i) => (nm > 0 && rootNorm > 0 ? against.dot[i]! / (nm * rootNorm) : 0));
  const trust = cos.map((c) => Math.max(0, Math.min(1, c)));
  const total = trust.reduce((a, b) => a + b, 0);
  const weights = trust.map((t, i) => (total > 0 && t > 0 ? (t * rootNorm) / norms[i]! / total : 0));
  const { aggregate, sums } = aggregatePass(engine, "fltrust: aggregate", { kind: "weighted", weights });
  const verdict: RuleVerdict = {
    ruleScore: trust,
    selected: null,
    reasons: trust.map((t, i) =>
      t > 0
        ? []
        : [
            norms[i] === 0
              ? "FLTrust trust 0: the update is the zero vector"
              : `FLTrust trust 0: cosine ${fmt(cos[i]!)} with the root update is not positive`,
          ],
    ),
  };
  const details: Record<string, number | string> = {
    rootNorm,
    trusted: trust.filter((t) => t > 0).length,
    zeroTrust: trust.filter((t) => t === 0).length,
  };
  if (total === 0)
    details.note =
      "every client's trust is 0 (no update points the way of the root update): the aggregate is the zero update";
  return { aggregate, clients: clientScores(sums, aggregate, verdict), details };
}
