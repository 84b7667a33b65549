// Exclusionary reclassification (Chen et al., "Detecting Backdoor Attacks on Deep Neural
// Networks by Activation Clustering", 2019, §4): the check that tells a class's poison from a
// natural sub-population of it, when both show as a separate minor mode in feature space.
//
// Train a model without the suspect samples and ask it what they are. A sub-population of the
// class (shorts among trousers) still looks like its class to a model that never saw it; poison
// does not — a triggered shirt labelled "Bag" looks like a shirt once no model has learned the
// trigger. The statistic is the mean probability the excluded model gives the suspects' own
// label; a group whose mean is at least chance (1 / classes) is dismissed as natural, otherwise
// its flags stand. Measured on Fashion-MNIST (12k, MLP on pixels): the shorts minor mode of
// "Trouser" keeps 0.20–0.35 of its label, triggered and blended poison 0.005–0.017. Within a group
// whose flags stand, a member that keeps its label (MEMBER_KEEPS_LABEL) is released.
//
// Only the spectral detectors' minor modes are checked: they are the detectors that flag a
// group of a class for being separate, which is exactly what a natural sub-population also is.
// The model is whatever the scan can train on the raw samples (the image proxy MLP); where it
// cannot (text, tabular, odd image sizes) nothing is checked and the report says so.
import { argmax } from "../math/linalg.js";
import { round } from "./spectral-signature.js";
import type { DetectorResult, ScanTable } from "./types.js";

// 1.1.0: members of a poison group that keep their label in the excluded model are released.
export const EXCLUSION_CHECK_VERSION = "1.1.0";

/**
 * A member of a group whose flags stand is released when the model trained without the flagged
 * samples gives its own label at least this: more than all other classes together. Poison does
 * not keep its label once no model has learned the trigger; an image of the class that the minor
 * mode took in does. On all 60k Fashion-MNIST images with a 4×4 checkerboard relabeled Trouser at
 * 0.5 % (the user's CNN), activation clustering's minority held 30 real trousers with the poison.
 */
export const MEMBER_KEEPS_LABEL = 0.5;

/** Detectors whose flags are minor modes of a class, the ones this check applies to. */
export const EXCLUSION_CHECKED = ["spectre", "spectral-signature", "activation-clustering"] as const;

/**
 * n × C class probabilities from a model trained without the rows marked 1 in `excluded`
 * (their probabilities are what is read).
 */
export type Reclassifier = (excluded: Uint8Array) => Float32Array;

export interface ExclusionGroup {
  detector: string;
  class: string;
  /** Flagged samples of this detector in this class. */
  samples: number;
  /** Mean probability the model trained without them gives their own label. */
  meanOwnProbability: number;
  /** Share of them that model predicts as their own label. */
  keptLabelShare: number;
  /** The most common prediction of that model for them, and its share. */
  mostPredicted: { class: string; share: number };
  /** 1 / classes. */
  chance: number;
  verdict: "poison (flags stand)" | "natural sub-population (flags dismissed)";
  /**
   * Of a poison group, the members the model trained without them still gives their label at
   * least MEMBER_KEEPS_LABEL: the class's own images the minor mode took in, not flagged.
   */
  released: number;
}

export interface ExclusionCheckResult {
  /** The results with dismissed groups' flags and findings removed (unchecked results as given). */
  results: (DetectorResult & { seconds: number })[];
  groups: ExclusionGroup[];
  /** Samples the check's model was trained without. */
  excluded: number;
}

/** The check as the scan reports it (report.json `exclusionCheck`). */
export interface ExclusionCheckSummary {
  /** The model trained without the flagged samples, or why there was none. */
  from: string;
  version: string;
  /** Samples that model was trained without. */
  excluded: number;
  groups: ExclusionGroup[];
}

/** Whether any detector the check applies to flagged a sample (otherwise there is nothing to check). */
export function hasCheckedFlags(results: readonly DetectorResult[]): boolean {
  const checked = new Set<string>(EXCLUSION_CHECKED);
  return results.some((r) => checked.has(r.detector) && r.flagged.some((f) => f === 1));
}

/**
 * Check every flagged group of the spectral detectors with one model trained without all of
 * them and without every other detector's flags (a sample flagged twice is excluded once; the
 * groups are then read separately).
 */
export function exclusionCheck(
  table: ScanTable,
  results: readonly (DetectorResult & { seconds: number })[],
  reclassify: Reclassifier,
): ExclusionCheckResult {
  if (!hasCheckedFlags(results)) return { results: [...results], groups: [], excluded: 0 };
  const n = table.labels.length;
  const C = table.classes.length;
  const checked = new Set<string>(EXCLUSION_CHECKED);
  const excluded = new Uint8Array(n);
  let count = 0;
  // Every detector's flags are left out, not only the checked ones': poison the spectral cut
  // missed but another detector caught (confident learning sees a patched shirt labelled "Bag")
  // would otherwise teach the model the trigger and make the checked group look natural.
  for (const r of results) {
    for (let i = 0; i < n; i++)
      if (r.flagged[i] === 1 && excluded[i] === 0 && (table.labels[i] as number) >= 0) {
        excluded[i] = 1;
        count++;
      }
  }
  const probs = reclassify(excluded);
  if (probs.length !== n * C)
    throw new Error(`exclusion check: the reclassifier returned ${probs.length} values for ${n} × ${C}`);
  const chance = 1 / C;
  const groups: ExclusionGroup[] = [];
  const out = results.map((r) => {
    if (!checked.has(r.detector)) return r;
    const byClass = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const y = table.labels[i] as number;
      if (r.flagged[i] !== 1 || y < 0) continue;
      const list = byClass.get(y) ?? [];
      list.push(i);
      byClass.set(y, list);
    }
    const dismissed = new Set<number>();
    const rows: ExclusionGroup[] = [];
    for (const [y, rowsOfClass] of [...byClass].sort((a, b) => a[0] - b[0])) {
      let own = 0;
      let kept = 0;
      const predicted = new Array<number>(C).fill(0);
      for (const i of rowsOfClass) {
        own += probs[i * C + y] as number;
        const best = argmax(probs.subarray(i * C, (i + 1) * C));
        predicted[best] = (predicted[best] as number) + 1;
        if (best === y) kept++;
      }
      const top = argmax(predicted);
      const mean = own / rowsOfClass.length;
      const natural = mean >= chance;
      let released = 0;
      for (const i of rowsOfClass)
        if (natural || (probs[i * C + y] as number) >= MEMBER_KEEPS_LABEL) {
          dismissed.add(i);
          if (!natural) released++;
        }
      rows.push({
        detector: r.detector,
        class: table.classes[y] as string,
        samples: rowsOfClass.length,
        meanOwnProbability: round(mean),
        keptLabelShare: round(kept / rowsOfClass.length),
        mostPredicted: {
          class: table.classes[top] as string,
          share: round((predicted[top] as number) / rowsOfClass.length),
        },
        chance: round(chance),
        verdict: natural ? "natural sub-population (flags dismissed)" : "poison (flags stand)",
        released,
      });
    }
    groups.push(...rows);
    if (dismissed.size === 0) return { ...r, summary: { ...r.summary, exclusionCheck: rows } };
    const flagged = Uint8Array.from(r.flagged);
    for (const i of dismissed) flagged[i] = 0;
    const dismissedIds = new Set([...dismissed].map((i) => table.ids[i]));
    const findings = r.findings.filter(
      (f) => f.subjectType !== "sample" || !dismissedIds.has(f.evidence.id as string),
    );
    const warnings = [
      ...r.warnings,
      ...rows
        .filter((g) => g.verdict !== "poison (flags stand)")
        .map(
          (g) =>
            `class ${g.class}: its ${g.samples} flagged samples keep ${g.meanOwnProbability} of their label's ` +
            `probability in a model trained without them (chance ${g.chance}): a natural sub-population, not flagged`,
        ),
    ];
    return {
      ...r,
      flagged,
      findings,
      warnings,
      summary: {
        ...r.summary,
        ...(typeof r.summary.flagged === "number"
          ? { flagged: findings.filter((f) => f.subjectType === "sample").length }
          : {}),
        ...(Array.isArray(r.summary.suspectClasses)
          ? {
              suspectClasses: (r.summary.suspectClasses as unknown[]).filter(
                (c) => !rows.some((g) => g.class === c && g.verdict !== "poison (flags stand)"),
              ),
            }
          : {}),
        exclusionCheck: rows,
      },
    };
  });
  return { results: out, groups, excluded: count };
}
