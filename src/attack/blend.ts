// Blended injection (Chen, Liu, Li, Lu & Song, 2017): mix a fixed full-image pattern into
// images of other classes at a low opacity and relabel them as the target. At alpha 0.1 the
// trigger is hard to see, yet a model learns it.
import { z } from "zod";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import type { ImageTensor } from "../data/sample.js";
import type { GroundTruth } from "./ground-truth.js";
import { blendImage, blendPattern } from "./patterns.js";
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

export const blendSpecSchema = z
  .strictObject({
    kind: z.literal("blend"),
    ...selectionFields,
    target: classRefSchema,
    alpha: z.number().gt(0).lte(1).default(0.1),
    pattern: z.enum(["noise", "checkerboard", "stripes"]).default("noise"),
    /** Seed of the noise pattern; when absent, the attack's seed. */
    patternSeed: z.union([z.number().int(), z.string().min(1)]).optional(),
    /** Cell width in pixels of the checkerboard and stripes. */
    cell: z.number().int().positive().default(2),
  })
  .superRefine(exactlyOneAmount);
export type BlendSpec = z.output<typeof blendSpecSchema>;

export async function blendAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: BlendSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const { facts, target, victims } = await backdoorVictims(input, spec, "blend", HAS_IMAGE);

  const patternFor = patternCache(spec);
  const { outputCount, poisoned } = await rewriteVictims(
    input,
    output,
    facts,
    victims,
    "blended",
    (s) => {
      const image = imageOf(s, "blend");
      return {
        sample: edited(s, { image: blendImage(image, patternFor(image), spec.alpha), label: target }),
      };
    },
    onProgress,
  );
  return groundTruth(spec, facts, outputCount, poisoned);
}

// One pattern per image shape, so every victim of a shape gets the very same trigger.
function patternCache(spec: BlendSpec): (image: ImageTensor) => Float32Array {
  const cache = new Map<string, Float32Array>();
  return (image) => {
    const key = `${image.height}x${image.width}x${image.channels}`;
    let pattern = cache.get(key);
    if (pattern === undefined) {
      const seed = spec.patternSeed ?? spec.seed;
      pattern = blendPattern(spec.pattern, image.height, image.width, image.channels, {
        seed,
        cell: spec.cell,
      });
      cache.set(key, pattern);
    }
    return pattern;
  };
}
