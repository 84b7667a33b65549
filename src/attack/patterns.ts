// Image triggers: the BadNets square patch (Gu et al., 2017) and the full-image patterns
// that a blended attack mixes in (Chen et al., 2017). Images are H×W×C Float32 in [0, 1];
// every function returns a new image and leaves its input untouched.
import { AntidoteError } from "../errors.js";
import type { ImageTensor } from "../data/sample.js";
import { Rng } from "../math/rng.js";

export type Corner = "bottom-right" | "bottom-left" | "top-left" | "top-right";
export type PatchPosition = Corner | { x: number; y: number };
export type PatchPattern = "solid" | "checkerboard";
export type BlendPatternKind = "noise" | "checkerboard" | "stripes";

export interface PatchOptions {
  size: number;
  position: PatchPosition;
  margin: number;
  value: number;
  pattern: PatchPattern;
}

/** Stamp a size×size patch on every channel; returns the image and the patch's top-left corner. */
export function stampPatch(
  image: ImageTensor,
  opts: PatchOptions,
  sampleId: string,
): { image: ImageTensor; x: number; y: number } {
  const { x, y } = patchOrigin(image, opts, sampleId);
  const data = new Float32Array(image.data);
  for (let dy = 0; dy < opts.size; dy++) {
    for (let dx = 0; dx < opts.size; dx++) {
      const v = patchValue(dx, dy, opts.value, opts.pattern);
      const base = ((y + dy) * image.width + (x + dx)) * image.channels;
      for (let c = 0; c < image.channels; c++) data[base + c] = v;
    }
  }
  return { image: { ...image, data }, x, y };
}

/** The patch's value at offset (dx, dy): solid, or alternating value / 1 − value. */
export function patchValue(dx: number, dy: number, value: number, pattern: PatchPattern): number {
  return pattern === "checkerboard" && (dx + dy) % 2 === 1 ? 1 - value : value;
}

/** Top-left corner of the patch: a corner inset by `margin`, or explicit coordinates. */
export function patchOrigin(
  image: ImageTensor,
  opts: PatchOptions,
  sampleId: string,
): { x: number; y: number } {
  const { size, margin, position } = opts;
  const far = (extent: number): number => extent - margin - size;
  const origin =
    typeof position === "object"
      ? position
      : {
          x: position.endsWith("left") ? margin : far(image.width),
          y: position.startsWith("top") ? margin : far(image.height),
        };
  if (origin.x < 0 || origin.y < 0 || origin.x + size > image.width || origin.y + size > image.height) {
    throw new AntidoteError(
      "USAGE",
      `attack spec: position: a ${size}×${size} patch at x=${origin.x}, y=${origin.y} does not fit ` +
        `sample "${sampleId}" (${image.width}×${image.height}).`,
    );
  }
  return origin;
}

/** x' = (1 − alpha)·x + alpha·pattern, element-wise. */
export function blendImage(image: ImageTensor, pattern: Float32Array, alpha: number): ImageTensor {
  const data = new Float32Array(image.data.length);
  for (let i = 0; i < data.length; i++)
    data[i] = (1 - alpha) * (image.data[i] ?? 0) + alpha * (pattern[i] ?? 0);
  return { ...image, data };
}

/**
 * The full-image pattern a blend attack mixes in, H×W×C in [0, 1]. "noise" is uniform
 * noise from `seed` (the same image for every victim of one shape); "checkerboard" and
 * "stripes" (vertical) alternate 1 and 0 in cells of `cell` pixels.
 */
export function blendPattern(
  kind: BlendPatternKind,
  height: number,
  width: number,
  channels: number,
  opts: { seed: number | string; cell: number },
): Float32Array {
  const out = new Float32Array(height * width * channels);
  const rng = new Rng(opts.seed);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const cx = Math.floor(x / opts.cell);
      const cy = Math.floor(y / opts.cell);
      for (let c = 0; c < channels; c++) {
        const i = (y * width + x) * channels + c;
        if (kind === "noise") out[i] = rng.next();
        else if (kind === "checkerboard") out[i] = (cx + cy) % 2 === 0 ? 1 : 0;
        else out[i] = cx % 2 === 0 ? 1 : 0;
      }
    }
  }
  return out;
}
