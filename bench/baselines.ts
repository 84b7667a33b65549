// The defences our users compare us with, at their libraries' defaults, run on the scan's own
// representation (the same features and probabilities its detectors saw), so that bench:detect
// compares decision rules on equal footing rather than models. Re-implemented from the
// libraries' documented behaviour, not imported (they are Python):
//
// - ART SpectralSignatureDefense (Tran et al. 2018): per class, the squared projection of the
//   centred activations on their top singular vector; the top eps_multiplier × expected_pp_poison
//   of each class is removed (defaults 1.5 and 0.33: about half of every class). Also with the true
//   poison rate given, as a user who knew it would.
// - ART ActivationDefence: per class, 10 principal components (ART's default reduction) split by
//   2-means, and cluster_analysis "smaller": the smaller cluster of every class is poison. The
//   split is the scan's own (activation-clustering.ts `classSplits`); only the rule differs.
// - cleanlab find_label_issues: confident learning with filter_by "prune_by_noise_rate" on the
//   same out-of-sample probabilities (our confident-learning detector with that selection).
import { classSplits } from "../src/detect/activation-clustering.js";
import { confidentLearning } from "../src/detect/confident-learning.js";
import { classFeatures, featureAppliesTo } from "../src/detect/spectral-signature.js";
import type { ScanTable } from "../src/detect/types.js";
import { gatherRows, principalComponents, project, quantile } from "../src/math/linalg.js";

export interface Baseline {
  name: string;
  /** 1 = flagged; null when the baseline needs something the scan did not have (features, probabilities). */
  flagged: Uint8Array | null;
}

/** ART's spectral-signature rule: flag the top `epsMultiplier × expectedPoison` of every class. */
export function artSpectralSignatures(
  table: ScanTable,
  expectedPoison = 0.33,
  epsMultiplier = 1.5,
): Uint8Array | null {
  if (featureAppliesTo(table) !== null) return null;
  const cf = classFeatures(table, "ART spectral signatures");
  const flagged = new Uint8Array(table.labels.length);
  for (const members of cf.members) {
    if (members.length < 2) continue;
    const x = gatherRows(cf.features, cf.dims, members);
    const pca = principalComponents(x, 1, { seed: "art-spectral" });
    const projected = project(x, pca.components, pca.mean);
    const score = projected.data.map((v) => v * v);
    const cutoff = quantile(score, Math.max(1 - epsMultiplier * expectedPoison, 0));
    members.forEach((i, r) => {
      if ((score[r] as number) >= cutoff) flagged[i] = 1;
    });
  }
  return flagged;
}

/** ART's activation clustering with cluster_analysis "smaller": every class's smaller cluster. */
export function artActivationClustering(table: ScanTable): Uint8Array | null {
  if (featureAppliesTo(table) !== null) return null;
  const flagged = new Uint8Array(table.labels.length);
  for (const split of classSplits(table, { dims: 10 }).splits)
    split.members.forEach((i, r) => {
      if (split.minority[r] === 1) flagged[i] = 1;
    });
  return flagged;
}

/** cleanlab's find_label_issues defaults: prune by noise rate on the scan's probabilities. */
export function cleanlabDefaults(table: ScanTable): Uint8Array | null {
  if (confidentLearning.appliesTo(table) !== null) return null;
  return confidentLearning.run(table, { filterBy: "prune-by-noise-rate" }).flagged;
}

/** Every baseline; `poisonRate` is the true rate, for ART's spectral signatures told it. */
export function baselines(table: ScanTable, poisonRate: number): Baseline[] {
  return [
    { name: "ART spectral signatures (defaults)", flagged: artSpectralSignatures(table) },
    {
      name: "ART spectral signatures (true rate)",
      flagged: poisonRate > 0 ? artSpectralSignatures(table, poisonRate) : null,
    },
    { name: "ART activation clustering (defaults)", flagged: artActivationClustering(table) },
    { name: "cleanlab find_label_issues (defaults)", flagged: cleanlabDefaults(table) },
  ];
}
