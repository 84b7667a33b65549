// Targeted label flips: samples of class A are relabeled B, so the model confuses A with B
// while its accuracy on other classes barely moves.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import { Rng } from "../math/rng.js";
import type { GroundTruth } from "./ground-truth.js";
import {
  chooseVictims,
  classRefSchema,
  describeEligibility,
  eligible,
  exactlyOneAmount,
  groundTruth,
  relabeled,
  requestedCount,
  resolveClass,
  rewriteVictims,
  scanFacts,
  selectionFields,
  type OnProgress,
} from "./select.js";

export const targetedFlipSpecSchema = z
  .strictObject({
    kind: z.literal("targeted-flip"),
    ...selectionFields,
    from: classRefSchema,
    to: classRefSchema,
  })
  .superRefine(exactlyOneAmount);
export type TargetedFlipSpec = z.output<typeof targetedFlipSpecSchema>;

export async function targetedFlipAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: TargetedFlipSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const facts = await scanFacts(input);
  const from = resolveClass(spec.from, facts.classes, "from");
  const to = resolveClass(spec.to, facts.classes, "to");
  if (from === to) throw new AntidoteError("USAGE", `attack spec: to: "${to}" is the same class as from.`);
  const a = facts.classes.indexOf(from);
  const rng = new Rng(spec.seed);
  const pool = eligible(facts, spec.fromSource, (i) => facts.label[i] === a);
  const rule = describeEligibility(facts, spec.fromSource, `labeled "${from}"`);
  const victims = chooseVictims(rng, pool, requestedCount(spec, facts.count), "targeted-flip", rule);

  const { outputCount, poisoned } = await rewriteVictims(
    input,
    output,
    facts,
    victims,
    "relabeled",
    (s) => ({
      sample: relabeled(s, to),
    }),
    onProgress,
  );
  return groundTruth(spec, facts, outputCount, poisoned);
}
