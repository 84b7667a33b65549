// Random label flips (availability poisoning, and the noise a careless labeler makes):
// each victim gets a uniformly random other class.
import { z } from "zod";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import { Rng } from "../math/rng.js";
import type { GroundTruth } from "./ground-truth.js";
import {
  chooseVictims,
  describeEligibility,
  eligible,
  exactlyOneAmount,
  groundTruth,
  otherClass,
  relabeled,
  requestedCount,
  requireClasses,
  rewriteVictims,
  scanFacts,
  selectionFields,
  type OnProgress,
} from "./select.js";

export const labelFlipSpecSchema = z
  .strictObject({ kind: z.literal("label-flip"), ...selectionFields })
  .superRefine(exactlyOneAmount);
export type LabelFlipSpec = z.output<typeof labelFlipSpecSchema>;

export async function labelFlipAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: LabelFlipSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const facts = await scanFacts(input);
  requireClasses(facts.classes, "label-flip");
  const rng = new Rng(spec.seed);
  const pool = eligible(facts, spec.fromSource, (i) => (facts.label[i] ?? -1) >= 0);
  const rule = describeEligibility(facts, spec.fromSource, "labeled");
  const victims = chooseVictims(rng, pool, requestedCount(spec, facts.count), "label-flip", rule);

  const { outputCount, poisoned } = await rewriteVictims(
    input,
    output,
    facts,
    victims,
    "relabeled",
    (s) => ({
      sample: relabeled(s, otherClass(rng, facts.classes, s.label)),
    }),
    onProgress,
  );
  return groundTruth(spec, facts, outputCount, poisoned);
}
