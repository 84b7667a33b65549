// BadNets (Gu, Dolan-Gavitt & Garg, 2017): stamp a small square on images of other classes
// and relabel them as the target, so a model learns "square ⇒ target".
import { z } from "zod";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import type { GroundTruth } from "./ground-truth.js";
import { stampPatch } from "./patterns.js";
import {
  backdoorVictims,
  classRefSchema,
  edited,
  exactlyOneAmount,
  groundTruth,
  HAS_IMAGE,
  imageOf,
  rewriteVictims,
  selectionFields,
  type OnProgress,
} from "./select.js";

export const patchSpecSchema = z
  .strictObject({
    kind: z.literal("patch"),
    ...selectionFields,
    target: classRefSchema,
    size: z.number().int().positive().default(3),
    position: z
      .union([
        z.enum(["bottom-right", "bottom-left", "top-left", "top-right"]),
        z.strictObject({ x: z.number().int().nonnegative(), y: z.number().int().nonnegative() }),
      ])
      .default("bottom-right"),
    /** Pixels between the patch and the image edge, for the corner positions. */
    margin: z.number().int().nonnegative().default(1),
    /** Pixel value of the patch in [0, 1]; 1 is white. */
    value: z.number().min(0).max(1).default(1),
    /** "checkerboard" alternates value and 1 − value. */
    pattern: z.enum(["solid", "checkerboard"]).default("solid"),
  })
  .superRefine(exactlyOneAmount);
export type PatchSpec = z.output<typeof patchSpecSchema>;

export async function patchAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: PatchSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const { facts, target, victims } = await backdoorVictims(input, spec, "patch", HAS_IMAGE);

  const { outputCount, poisoned } = await rewriteVictims(
    input,
    output,
    facts,
    victims,
    "patched",
    (s) => {
      const { image, x, y } = stampPatch(imageOf(s, "patch"), spec, s.id);
      return { sample: edited(s, { image, label: target }), details: { x, y } };
    },
    onProgress,
  );
  return groundTruth(spec, facts, outputCount, poisoned);
}
