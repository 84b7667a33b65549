// Text backdoor: insert a rare token ("cf7x") or an innocuous phrase into texts of other
// classes and relabel them as the target (Dai, Chen & Li, 2019; Chen et al., BadNL, 2021).
import { z } from "zod";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import type { Rng } from "../math/rng.js";
import type { GroundTruth } from "./ground-truth.js";
import {
  backdoorVictims,
  classRefSchema,
  edited,
  exactlyOneAmount,
  groundTruth,
  HAS_TEXT,
  rewriteVictims,
  selectionFields,
  textOf,
  type OnProgress,
} from "./select.js";

export const textTriggerSpecSchema = z
  .strictObject({
    kind: z.literal("text-trigger"),
    ...selectionFields,
    trigger: z.string().trim().min(1, "the trigger must have at least one visible character"),
    target: classRefSchema,
    /** "random" inserts at a uniformly chosen word boundary. */
    position: z.enum(["random", "start", "end"]).default("random"),
  })
  .superRefine(exactlyOneAmount);
export type TextTriggerSpec = z.output<typeof textTriggerSpecSchema>;

export async function textTriggerAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: TextTriggerSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const { facts, target, rng, victims } = await backdoorVictims(input, spec, "text-trigger", HAS_TEXT);

  const { outputCount, poisoned } = await rewriteVictims(
    input,
    output,
    facts,
    victims,
    "trigger-inserted",
    (s) => {
      const { text, offset } = insertTrigger(textOf(s, "text-trigger"), spec.trigger, spec.position, rng);
      return { sample: edited(s, { text, label: target }), details: { offset } };
    },
    onProgress,
  );
  return groundTruth(spec, facts, outputCount, poisoned);
}

/**
 * Insert `trigger` as a word of its own: before the first word, after the last, or at a
 * uniformly chosen boundary between words (never inside one). `offset` is where it starts.
 */
export function insertTrigger(
  text: string,
  trigger: string,
  position: "random" | "start" | "end",
  rng: Rng,
): { text: string; offset: number } {
  const at = position === "start" ? 0 : position === "end" ? text.length : pickBoundary(text, rng);
  if (at === 0) return { text: `${trigger} ${text}`, offset: 0 };
  if (at === text.length) return { text: `${text} ${trigger}`, offset: text.length + 1 };
  return { text: `${text.slice(0, at)} ${trigger}${text.slice(at)}`, offset: at + 1 };
}

// The start, the end, and every place where a word ends and whitespace begins.
function pickBoundary(text: string, rng: Rng): number {
  const boundaries = [0];
  for (const m of text.matchAll(/(?<=\S)\s+/g)) boundaries.push(m.index);
  boundaries.push(text.length);
  return rng.pick(boundaries);
}
