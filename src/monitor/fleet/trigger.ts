// The trigger a compromised agent puts into its inputs: the same image patch, blend pattern
// or text token as the project's attack simulators (src/attack/), so a fleet can serve a model
// backdoored by one of them (test/helpers/fm-models.ts trains those) and send inputs that
// carry exactly its trigger. An attack spec is accepted as it is written for `antidote
// attack`; its selection fields (rate, count, fromSource) mean nothing here and are dropped.
import { z } from "zod";
import { blendImage, blendPattern, stampPatch } from "../../attack/patterns.js";
import { classRefSchema, resolveClass } from "../../attack/select.js";
import { insertTrigger } from "../../attack/text-trigger.js";
import type { ImageTensor } from "../../data/sample.js";
import { AntidoteError } from "../../errors.js";
import { parseOptions } from "../../features/options.js";
import type { Rng } from "../../math/rng.js";

const seedSchema = z.union([z.number().int(), z.string().min(1)]);

export const fleetTriggerSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("patch"),
    target: classRefSchema,
    size: z.number().int().positive().default(3),
    position: z
      .union([
        z.enum(["bottom-right", "bottom-left", "top-left", "top-right"]),
        z.strictObject({ x: z.number().int().nonnegative(), y: z.number().int().nonnegative() }),
      ])
      .default("bottom-right"),
    margin: z.number().int().nonnegative().default(1),
    value: z.number().min(0).max(1).default(1),
    pattern: z.enum(["solid", "checkerboard"]).default("solid"),
  }),
  z.object({
    kind: z.literal("blend"),
    target: classRefSchema,
    alpha: z.number().gt(0).lte(1).default(0.1),
    pattern: z.enum(["noise", "checkerboard", "stripes"]).default("noise"),
    /** The noise pattern's seed (an attack spec's patternSeed, else its seed). */
    patternSeed: seedSchema.default(0),
    cell: z.number().int().positive().default(2),
  }),
  z.object({
    kind: z.literal("text-trigger"),
    target: classRefSchema,
    trigger: z.string().trim().min(1, "the trigger must have at least one visible character"),
    position: z.enum(["random", "start", "end"]).default("random"),
  }),
]);
export type FleetTriggerInput = z.input<typeof fleetTriggerSchema>;
export type FleetTrigger = z.output<typeof fleetTriggerSchema>;

/**
 * A trigger from an attack spec (patch, blend, text-trigger) or a trigger spec: selection
 * fields dropped, a blend's pattern seed kept as the simulator drew it (patternSeed ?? seed).
 */
export function parseFleetTrigger(spec: unknown): FleetTrigger {
  if (typeof spec !== "object" || spec === null)
    throw new AntidoteError("USAGE", "trigger: expected an object with a kind (patch, blend, text-trigger).");
  const { rate: _r, count: _c, fromSource: _f, seed, ...rest } = spec as Record<string, unknown>;
  const withSeed =
    rest.kind === "blend" && rest.patternSeed === undefined && seed !== undefined
      ? { ...rest, patternSeed: seed }
      : rest;
  return parseOptions(fleetTriggerSchema, withSeed, "trigger");
}

/** The trigger's target class name among `classes`. */
export function triggerTarget(trigger: FleetTrigger, classes: readonly string[]): string {
  return resolveClass(trigger.target, classes, "trigger target");
}

/** The input with the trigger in it: a new image or text; the input is left untouched. */
export function applyTrigger(
  trigger: FleetTrigger,
  input: { image?: ImageTensor; text?: string },
  id: string,
  rng: Rng,
): { image?: ImageTensor; text?: string } {
  switch (trigger.kind) {
    case "patch":
      return { image: stampPatch(requireImage(input, id), trigger, id).image };
    case "blend": {
      const image = requireImage(input, id);
      const pattern = blendPattern(trigger.pattern, image.height, image.width, image.channels, {
        seed: trigger.patternSeed,
        cell: trigger.cell,
      });
      return { image: blendImage(image, pattern, trigger.alpha) };
    }
    case "text-trigger": {
      if (input.text === undefined)
        throw new AntidoteError("USAGE", `input "${id}" has no text; a text trigger goes into text.`);
      return { text: insertTrigger(input.text, trigger.trigger, trigger.position, rng).text };
    }
  }
}

/** The default trigger for a modality: the fixtures' 3×3 white patch, or the token "cf7x". */
export function defaultTrigger(modality: "image" | "text", target: string): FleetTrigger {
  return modality === "image"
    ? parseFleetTrigger({ kind: "patch", target })
    : parseFleetTrigger({ kind: "text-trigger", trigger: "cf7x", target });
}

function requireImage(input: { image?: ImageTensor }, id: string): ImageTensor {
  if (input.image === undefined)
    throw new AntidoteError("USAGE", `input "${id}" has no image; an image trigger goes into images.`);
  return input.image;
}
