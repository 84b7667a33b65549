// Image features: the normalized pixels themselves (already in [0, 1], HWC), flattened, and
// optionally standardised per channel or per pixel with moments that shards merge exactly.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { ImageTensor, Sample } from "../data/sample.js";
import {
  addObservation,
  copyMoments,
  emptyMoments,
  mergeMoments,
  momentsOfRows,
  standardDeviation,
  type Moments,
} from "../math/moments.js";
import { observeAll, type Featurizer } from "./matrix.js";
import { parseOptions } from "./options.js";

export const imageOptionsSchema = z.object({
  /** "channel": z-score each channel; "pixel": z-score each pixel position and channel; "none": raw pixels. */
  standardize: z.enum(["none", "channel", "pixel"]).default("none"),
});
export type ImageOptions = z.input<typeof imageOptionsSchema>;

export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

export interface ImageStats {
  /** Shape of every image seen, and the id of the first sample that had it; null before any. */
  shape: (ImageShape & { firstId: string }) | null;
  /** Per channel or per pixel moments, as `standardize` asks; null for "none" or before any image. */
  moments: Moments | null;
}

/** Statistics of two shards as if fitted together; the shapes must agree. */
export function mergeImageStats(a: ImageStats, b: ImageStats): ImageStats {
  if (a.shape === null) return b;
  if (b.shape === null) return a;
  checkShape(a.shape, b.shape, b.shape.firstId);
  const moments = a.moments && b.moments ? mergeMoments(a.moments, b.moments) : (a.moments ?? b.moments);
  return { shape: a.shape, moments };
}

export class ImageFeaturizer implements Featurizer<Float32Array, ImageStats> {
  private readonly mode: "none" | "channel" | "pixel";
  private current: ImageStats;
  private scaling: { mean: Float64Array; invStd: Float64Array } | null = null;

  constructor(options: ImageOptions = {}, stats?: ImageStats) {
    this.mode = parseOptions(imageOptionsSchema, options, "image options").standardize;
    this.current = stats ? copyStats(stats) : { shape: null, moments: null };
  }

  observe(sample: Sample): void {
    const image = imageOf(sample, this.current.shape);
    const shape = this.current.shape ?? { ...shapeOf(image), firstId: sample.id };
    const moments = this.current.moments ?? this.newMoments(shape);
    if (this.mode === "channel") {
      this.current = {
        shape,
        moments: mergeMoments(moments as Moments, momentsOfRows(image.data, image.channels)),
      };
    } else {
      if (moments !== null) addObservation(moments, image.data);
      this.current = { shape, moments };
    }
    this.scaling = null;
  }

  fit(samples: AsyncIterable<Sample>): Promise<void> {
    return observeAll(this, samples);
  }

  /** The flattened HWC pixels, standardised as the options ask. */
  transform(sample: Sample): Float32Array {
    const image = imageOf(sample, this.current.shape);
    if (this.mode === "none") return Float32Array.from(image.data);
    const { mean, invStd } = (this.scaling ??= this.fittedScaling());
    const out = new Float32Array(image.data.length);
    const period = mean.length;
    for (let i = 0; i < out.length; i++) {
      const d = i % period;
      out[i] = ((image.data[i] as number) - (mean[d] as number)) * (invStd[d] as number);
    }
    return out;
  }

  stats(): ImageStats {
    return copyStats(this.current);
  }

  private newMoments(shape: ImageShape): Moments | null {
    if (this.mode === "none") return null;
    return emptyMoments(
      this.mode === "channel" ? shape.channels : shape.height * shape.width * shape.channels,
    );
  }

  // A constant channel or pixel (e.g. a border that is always black) maps to 0, not NaN.
  private fittedScaling(): { mean: Float64Array; invStd: Float64Array } {
    const m = this.current.moments;
    if (m === null || m.count === 0) {
      throw new AntidoteError(
        "USAGE",
        "image standardisation needs a fit on at least one image before transform",
      );
    }
    return { mean: m.mean, invStd: standardDeviation(m).map((s) => (s > 0 ? 1 / s : 0)) };
  }
}

function copyStats({ shape, moments }: ImageStats): ImageStats {
  return { shape: shape && { ...shape }, moments: moments && copyMoments(moments) };
}

function imageOf(sample: Sample, expected: (ImageShape & { firstId: string }) | null): ImageTensor {
  const image = sample.image;
  if (image === undefined) {
    throw new AntidoteError(
      "USAGE",
      `sample "${sample.id}" has no image; image features need an image column`,
    );
  }
  if (expected !== null) checkShape(expected, shapeOf(image), sample.id);
  return image;
}

function checkShape(expected: ImageShape & { firstId: string }, actual: ImageShape, id: string): void {
  if (
    expected.height !== actual.height ||
    expected.width !== actual.width ||
    expected.channels !== actual.channels
  ) {
    throw new AntidoteError(
      "USAGE",
      `sample "${id}" is a ${describe(actual)} image but "${expected.firstId}" is ${describe(expected)}; ` +
        "image features need every image to have the same shape (resize them first)",
    );
  }
}

function shapeOf(image: ImageTensor): ImageShape {
  return { height: image.height, width: image.width, channels: image.channels };
}

function describe(s: ImageShape): string {
  return `${s.height}×${s.width}×${s.channels}`;
}
