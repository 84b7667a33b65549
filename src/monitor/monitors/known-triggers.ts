// Triggers already found — by the scan (trigger-patch and trigger-token findings), by a model audit
// (Neural Cleanse's reversed mask and pattern), or known from an attack spec — as descriptions a
// production input can be matched against. One union, `KnownTrigger`, built from each source:
//
// - "image-patch": exact pixel values (luminance, [0, 1]) at a position, within a tolerance — from an
//   attack spec (`knownTriggerFromPatchSpec`) or written by hand.
// - "binary-patch": the scan's description (src/detect/trigger-patches.ts evidence): a w×w on/off
//   pattern, binarized at a luminance threshold, somewhere in a region (the bounding box of the
//   windows that were significant) — `knownTriggerFromFinding`.
// - "reversed-mask": an audit's reversed trigger x' = (1 − m)⊙x + m⊙p (src/audit/neural-cleanse.ts):
//   an input carries it when, where the mask is strong, its pixels agree with the pattern —
//   `knownTriggerFromReversed`.
// - "text-tokens": a trigger n-gram (src/detect/trigger-tokens.ts evidence), matched on the
//   featurizer's tokens (NFC, lower-cased letter/digit runs) — `knownTriggerFromFinding`.
//
// A match is evidence, not a verdict: natural images carry a white corner too (a binarized 3×3
// all-on window at the bottom right matches 0.9% of clean Fashion-MNIST test images). The trigger
// alarm charts the match rate against the natural rate `calibrateKnownTriggers` measures on clean
// inputs, so matches alone never raise an alarm.
import { z } from "zod";
import { patchOrigin, patchValue, type PatchPattern, type PatchPosition } from "../../attack/patterns.js";
import type { ImageTensor } from "../../data/sample.js";
import { AntidoteError } from "../../errors.js";
import { tokenize } from "../../features/text.js";
import type { Finding } from "../../ledger/types.js";

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const common = {
  /** Names the trigger in alerts (e.g. the finding's check and index). */
  id: z.string().min(1).max(200),
  /** The class the trigger sends inputs to, when known. */
  target: z.string().nullable().default(null),
  /** Model digests it applies to; absent: every model. */
  models: z.array(sha256Hex).optional(),
};
const int = z.number().int().min(0);

export const knownTriggerSchema = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("image-patch"),
      ...common,
      x: int,
      y: int,
      width: z.number().int().min(1),
      height: z.number().int().min(1),
      /** height × width luminance values in [0, 1], row-major. */
      values: z.array(z.number().min(0).max(1)).min(1),
      /** Largest |luminance − value| of a matching pixel. */
      tolerance: z.number().min(0).max(1).default(0.1),
    })
    .strict(),
  z
    .object({
      kind: z.literal("binary-patch"),
      ...common,
      region: z
        .object({ x: int, y: int, width: z.number().int().min(1), height: z.number().int().min(1) })
        .strict(),
      /** Rows of "#" (luminance above threshold) and "." (at or below). */
      pattern: z.array(z.string().regex(/^[#.]+$/)).min(1),
      threshold: z.number().gt(0).lt(1).default(0.5),
    })
    .strict(),
  z
    .object({
      kind: z.literal("reversed-mask"),
      ...common,
      height: z.number().int().min(1),
      width: z.number().int().min(1),
      channels: z.number().int().min(1),
      /** height × width in [0, 1]. */
      mask: z.array(z.number().min(0).max(1)).min(1),
      /** channels × height × width in [0, 1]. */
      pattern: z.array(z.number().min(0).max(1)).min(1),
      /** Pixels whose mask is at least this share of the mask's largest value are compared. */
      maskCut: z.number().gt(0).max(1).default(0.5),
      /** Largest |pixel − pattern| of an agreeing value. */
      tolerance: z.number().min(0).max(1).default(0.2),
      /** Share of the compared values that must agree. */
      minAgreement: z.number().gt(0).max(1).default(0.9),
    })
    .strict(),
  z
    .object({
      kind: z.literal("text-tokens"),
      ...common,
      /** Consecutive tokens, as `tokenize` (features/text.ts) writes them. */
      tokens: z.array(z.string().min(1)).min(1).max(16),
    })
    .strict(),
]);
export type KnownTrigger = z.output<typeof knownTriggerSchema>;
export type KnownTriggerInput = z.input<typeof knownTriggerSchema>;

/** What a trigger is matched against: a record's (or a clean sample's) content. */
export interface TriggerContent {
  image?: ImageTensor;
  text?: string;
}

/** Whether the trigger can be evaluated on this content at all (the right modality). */
export function canMatch(trigger: KnownTrigger, content: TriggerContent): boolean {
  return trigger.kind === "text-tokens" ? content.text !== undefined : content.image !== undefined;
}

/** Whether the content carries the trigger. */
export function matchesTrigger(trigger: KnownTrigger, content: TriggerContent): boolean {
  switch (trigger.kind) {
    case "image-patch":
      return content.image !== undefined && matchPixels(trigger, content.image);
    case "binary-patch":
      return content.image !== undefined && matchBinary(trigger, content.image);
    case "reversed-mask":
      return content.image !== undefined && matchMask(trigger, content.image);
    case "text-tokens":
      return content.text !== undefined && containsRun(tokenize(content.text), trigger.tokens);
  }
}

/** Natural match rate of a set of triggers on clean inputs: inputs where any applies, and where any matched. */
export interface KnownTriggerCalibration {
  n: number;
  matches: number;
  perTrigger: Record<string, number>;
}

export function calibrateKnownTriggers(
  triggers: readonly KnownTrigger[],
  clean: Iterable<TriggerContent>,
): KnownTriggerCalibration {
  const perTrigger: Record<string, number> = Object.fromEntries(triggers.map((t) => [t.id, 0]));
  let n = 0;
  let matches = 0;
  for (const content of clean) {
    const applicable = triggers.filter((t) => canMatch(t, content));
    if (applicable.length === 0) continue;
    n++;
    let any = false;
    for (const t of applicable)
      if (matchesTrigger(t, content)) {
        perTrigger[t.id] = (perTrigger[t.id] ?? 0) + 1;
        any = true;
      }
    if (any) matches++;
  }
  return { n, matches, perTrigger };
}

// ---------------------------------------------------------------------------------------------
// Builders.

/** The simulator's BadNets patch (src/attack/patch.ts spec) on images of one size, as exact values. */
export function knownTriggerFromPatchSpec(
  spec: { size?: number; position?: PatchPosition; margin?: number; value?: number; pattern?: PatchPattern },
  image: { height: number; width: number },
  options: { id?: string; target?: string | null; tolerance?: number } = {},
): KnownTrigger {
  const opts = {
    size: spec.size ?? 3,
    position: spec.position ?? "bottom-right",
    margin: spec.margin ?? 1,
    value: spec.value ?? 1,
    pattern: spec.pattern ?? "solid",
  };
  const { x, y } = patchOrigin({ ...image, channels: 1, data: new Float32Array(0) }, opts, "known trigger");
  const values: number[] = [];
  for (let dy = 0; dy < opts.size; dy++)
    for (let dx = 0; dx < opts.size; dx++) values.push(patchValue(dx, dy, opts.value, opts.pattern));
  return knownTriggerSchema.parse({
    kind: "image-patch",
    id: options.id ?? `patch@${x},${y}`,
    target: options.target ?? null,
    x,
    y,
    width: opts.size,
    height: opts.size,
    values,
    tolerance: options.tolerance,
  });
}

const patchEvidence = z.object({
  target: z.string().nullable().optional(),
  region: z.object({ x: int, y: int, width: z.number().int().min(1), height: z.number().int().min(1) }),
  pattern: z.array(z.string().regex(/^[#.]+$/)).min(1),
});
const tokenEvidence = z.object({ target: z.string().nullable().optional(), ngram: z.string().min(1) });

/**
 * A scan finding's trigger: "trigger-patch" (dataset- or sample-level, evidence region + pattern)
 * → binary-patch at the detector's binarization threshold; "trigger-token" (evidence ngram) →
 * text-tokens.
 */
export function knownTriggerFromFinding(
  finding: Pick<Finding, "kind" | "evidence"> & { subjectId?: string },
  options: { id?: string; threshold?: number } = {},
): KnownTrigger {
  const bad = (why: string): AntidoteError =>
    new AntidoteError("INPUT_FORMAT", `known trigger from a "${finding.kind}" finding: ${why}.`);
  if (finding.kind === "trigger-patch") {
    const e = patchEvidence.safeParse(finding.evidence);
    if (!e.success) throw bad(`evidence "${e.error.issues[0]?.path.join(".") ?? ""}" is missing or invalid`);
    const { region, pattern } = e.data;
    return knownTriggerSchema.parse({
      kind: "binary-patch",
      id: options.id ?? `trigger-patch@${region.x},${region.y}`,
      target: e.data.target ?? null,
      region,
      pattern,
      threshold: options.threshold,
    });
  }
  if (finding.kind === "trigger-token") {
    const e = tokenEvidence.safeParse(finding.evidence);
    if (!e.success) throw bad(`evidence "${e.error.issues[0]?.path.join(".") ?? ""}" is missing or invalid`);
    const tokens = tokenize(e.data.ngram);
    if (tokens.length === 0) throw bad("its n-gram has no tokens");
    return knownTriggerSchema.parse({
      kind: "text-tokens",
      id: options.id ?? `trigger-token:${tokens.join(" ")}`,
      target: e.data.target ?? null,
      tokens,
    });
  }
  throw bad(`only "trigger-patch" and "trigger-token" findings describe a trigger`);
}

/** An audit's reversed trigger (mask H×W, pattern C×H×W, as in the audit report) for images [C, H, W]. */
export function knownTriggerFromReversed(
  reversed: { label: number; mask: ArrayLike<number>; pattern: ArrayLike<number> },
  imageShape: readonly [number, number, number],
  options: {
    id?: string;
    classes?: readonly string[];
    maskCut?: number;
    tolerance?: number;
    minAgreement?: number;
  } = {},
): KnownTrigger {
  const [channels, height, width] = imageShape;
  if (reversed.mask.length !== height * width || reversed.pattern.length !== channels * height * width)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `known trigger from label ${reversed.label}'s reversed trigger: mask/pattern sizes do not fit ${channels}×${height}×${width}.`,
    );
  return knownTriggerSchema.parse({
    kind: "reversed-mask",
    id: options.id ?? `neural-cleanse:${reversed.label}`,
    target: options.classes?.[reversed.label] ?? String(reversed.label),
    height,
    width,
    channels,
    mask: Array.from(reversed.mask),
    pattern: Array.from(reversed.pattern),
    maskCut: options.maskCut,
    tolerance: options.tolerance,
    minAgreement: options.minAgreement,
  });
}

// ---------------------------------------------------------------------------------------------
// Matchers.

function luminance(image: ImageTensor, px: number, py: number): number {
  const { width, channels, data } = image;
  const base = (py * width + px) * channels;
  let sum = 0;
  for (let c = 0; c < channels; c++) sum += data[base + c] as number;
  return sum / channels;
}

function matchPixels(t: Extract<KnownTrigger, { kind: "image-patch" }>, image: ImageTensor): boolean {
  if (t.x + t.width > image.width || t.y + t.height > image.height) return false;
  for (let dy = 0; dy < t.height; dy++)
    for (let dx = 0; dx < t.width; dx++)
      if (
        Math.abs(luminance(image, t.x + dx, t.y + dy) - (t.values[dy * t.width + dx] as number)) > t.tolerance
      )
        return false;
  return true;
}

function matchBinary(t: Extract<KnownTrigger, { kind: "binary-patch" }>, image: ImageTensor): boolean {
  const ph = t.pattern.length;
  const pw = (t.pattern[0] as string).length;
  const { region } = t;
  const lastY = Math.min(region.y + region.height, image.height) - ph;
  const lastX = Math.min(region.x + region.width, image.width) - pw;
  for (let py = region.y; py <= lastY; py++)
    for (let px = region.x; px <= lastX; px++) {
      let ok = true;
      for (let dy = 0; dy < ph && ok; dy++) {
        const row = t.pattern[dy] as string;
        for (let dx = 0; dx < pw && ok; dx++)
          ok = luminance(image, px + dx, py + dy) > t.threshold === (row[dx] === "#");
      }
      if (ok) return true;
    }
  return false;
}

function matchMask(t: Extract<KnownTrigger, { kind: "reversed-mask" }>, image: ImageTensor): boolean {
  if (image.height !== t.height || image.width !== t.width || image.channels !== t.channels) return false;
  let top = 0;
  for (const m of t.mask) if (m > top) top = m;
  if (top <= 0) return false;
  const cut = t.maskCut * top;
  const plane = t.height * t.width;
  let compared = 0;
  let agreeing = 0;
  for (let p = 0; p < plane; p++) {
    if ((t.mask[p] as number) < cut) continue;
    for (let c = 0; c < t.channels; c++) {
      compared++;
      if (
        Math.abs((image.data[p * t.channels + c] as number) - (t.pattern[c * plane + p] as number)) <=
        t.tolerance
      )
        agreeing++;
    }
  }
  return compared > 0 && agreeing >= t.minAgreement * compared;
}

function containsRun(tokens: readonly string[], run: readonly string[]): boolean {
  outer: for (let i = 0; i + run.length <= tokens.length; i++) {
    for (let j = 0; j < run.length; j++) if (tokens[i + j] !== run[j]) continue outer;
    return true;
  }
  return false;
}
