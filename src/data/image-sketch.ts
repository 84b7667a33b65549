// What a scan keeps of each sample's image once the sample itself is gone: its shape always, and
// its pixels at 8 bits — the precision every image format stores and the sample digest covers —
// only where a detector or a proxy model reads them. A 28×28 grey image costs 784 bytes here
// against 3,136 as a Float32 ImageTensor, and a 224×224 photo costs nothing but its shape when
// the user's model gave the representation. All images live in a few large byte chunks, so a
// million samples are a million offsets, not a million typed-array objects.
import type { ImageTensor } from "./sample.js";

export interface ImageShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/**
 * Which images keep pixels. An image of at most `maxPixels` (height · width) and `maxValues`
 * (height · width · channels) is kept whole; a larger one is box-filtered down until it fits when
 * `reduce` is set, else only its shape is kept.
 */
export interface ImageSketchPolicy {
  maxPixels: number;
  maxValues: number;
  reduce: boolean;
}

/** Every image whole (scanTableFromSamples' default: the samples are in memory anyway). */
export const KEEP_ALL_IMAGES: ImageSketchPolicy = { maxPixels: Infinity, maxValues: Infinity, reduce: false };

/**
 * When the user's model (or their --features and --pred-probs) gives the representation: the
 * images trigger-patches reads (at most 32×32 pixels), which the exclusion check's pixel model
 * trains on too; larger images only by shape.
 */
export const SMALL_IMAGES_ONLY: ImageSketchPolicy = {
  maxPixels: 32 * 32,
  maxValues: Infinity,
  reduce: false,
};

/**
 * When the scan's own proxy models train on the pixels: every image, those over 64×64×3 values
 * (what the CNN proxy takes, CNN_PROXY_MAX_VALUES) box-filtered down to fit — a 224×224×3 photo
 * becomes 56×56×3 — since a pixel model on a million full-size photos fits no machine's memory.
 */
export const PROXY_IMAGES: ImageSketchPolicy = { maxPixels: Infinity, maxValues: 64 * 64 * 3, reduce: true };

// Kept pixels are packed into chunks of this many bytes (an image larger than that gets its own).
const CHUNK_BYTES = 16 * 1024 * 1024;
// An image's place: chunk · 2^32 + byte offset in the chunk, or −1 when its pixels are not kept.
const CHUNK_SPAN = 2 ** 32;
const PIXEL_SCALE = 255;

/** The images of a scan's samples, in sample order: shapes, and 8-bit pixels where the policy keeps them. */
export class ImageSketches {
  private readonly shapes: ImageShape[] = [];
  private readonly kept: (Kept | null)[] = [];
  private readonly shapeIndex = new Map<string, number>();
  private shapeOf: Int32Array;
  private placeOf: Float64Array;
  private count = 0;
  private readonly chunks: Uint8Array[] = [];
  private used = 0;

  constructor(
    readonly policy: ImageSketchPolicy = KEEP_ALL_IMAGES,
    expected = 0,
  ) {
    const capacity = Math.max(expected, 1024);
    this.shapeOf = new Int32Array(capacity);
    this.placeOf = new Float64Array(capacity);
  }

  /** Sketches of images already in memory. */
  static of(
    images: readonly (ImageTensor | undefined)[],
    policy: ImageSketchPolicy = KEEP_ALL_IMAGES,
  ): ImageSketches {
    const out = new ImageSketches(policy, images.length);
    for (const image of images) out.add(image);
    return out;
  }

  /** Samples so far (with or without an image). */
  get length(): number {
    return this.count;
  }

  /** Bytes of pixels kept. */
  get pixelBytes(): number {
    return this.chunks.reduce((a, c, k) => a + (k === this.chunks.length - 1 ? this.used : c.length), 0);
  }

  /** Append the next sample's image (undefined: the sample has none). */
  add(image: ImageTensor | undefined): void {
    this.reserve();
    const i = this.count++;
    if (image === undefined) {
      this.shapeOf[i] = -1;
      this.placeOf[i] = -1;
      return;
    }
    const s = this.shapeIndexOf(image);
    this.shapeOf[i] = s;
    const kept = this.kept[s] as Kept | null;
    if (kept === null) {
      this.placeOf[i] = -1;
      return;
    }
    const size = kept.height * kept.width * kept.channels;
    const { chunk, offset } = this.allocate(size);
    const out = (this.chunks[chunk] as Uint8Array).subarray(offset, offset + size);
    if (kept.factor === 1) quantize(image.data, out);
    else boxFilter(image, kept, out);
    this.placeOf[i] = chunk * CHUNK_SPAN + offset;
  }

  /** Sample i's image shape as read, or undefined when it has no image. */
  shape(i: number): ImageShape | undefined {
    const s = this.shapeOf[i] ?? -1;
    return s < 0 || i >= this.count ? undefined : this.shapes[s];
  }

  /**
   * The shape of sample i's pixels as kept: its own shape, a box-filtered reduction of it, or
   * undefined when its pixels are not kept (or it has no image).
   */
  keptShape(i: number): ImageShape | undefined {
    const s = this.shapeOf[i] ?? -1;
    const kept = s < 0 || i >= this.count ? null : (this.kept[s] ?? null);
    return kept === null ? undefined : { height: kept.height, width: kept.width, channels: kept.channels };
  }

  /** Sample i's kept 8-bit pixels (keptShape, channels last, 255 = 1.0), a view into the store. */
  pixels(i: number): Uint8Array | undefined {
    const place = this.placeOf[i] ?? -1;
    const shape = this.keptShape(i);
    if (place < 0 || shape === undefined) return undefined;
    const chunk = this.chunks[Math.floor(place / CHUNK_SPAN)] as Uint8Array;
    const offset = place % CHUNK_SPAN;
    return chunk.subarray(offset, offset + shape.height * shape.width * shape.channels);
  }

  /** Whether sample i's pixels are kept at their own size (not reduced, not dropped). */
  whole(i: number): boolean {
    const s = this.shapeOf[i] ?? -1;
    return s >= 0 && i < this.count && this.kept[s]?.factor === 1;
  }

  /** Sample i's kept pixels in [0, 1] (the Float32 values an 8-bit image reads as), or undefined. */
  values(i: number): Float32Array | undefined {
    const bytes = this.pixels(i);
    if (bytes === undefined) return undefined;
    const out = new Float32Array(bytes.length);
    for (let k = 0; k < bytes.length; k++) out[k] = (bytes[k] as number) / PIXEL_SCALE;
    return out;
  }

  private shapeIndexOf(image: ImageTensor): number {
    const key = `${image.height}x${image.width}x${image.channels}`;
    let s = this.shapeIndex.get(key);
    if (s === undefined) {
      s = this.shapes.length;
      const shape = { height: image.height, width: image.width, channels: image.channels };
      this.shapes.push(shape);
      this.kept.push(reduction(shape, this.policy));
      this.shapeIndex.set(key, s);
    }
    return s;
  }

  private allocate(size: number): { chunk: number; offset: number } {
    const last = this.chunks[this.chunks.length - 1];
    if (last === undefined || this.used + size > last.length) {
      this.chunks.push(new Uint8Array(Math.max(CHUNK_BYTES, size)));
      this.used = 0;
    }
    const offset = this.used;
    this.used += size;
    return { chunk: this.chunks.length - 1, offset };
  }

  private reserve(): void {
    if (this.count < this.shapeOf.length) return;
    const capacity = Math.ceil(this.shapeOf.length * 1.5);
    const shapes = new Int32Array(capacity);
    shapes.set(this.shapeOf);
    this.shapeOf = shapes;
    const places = new Float64Array(capacity);
    places.set(this.placeOf);
    this.placeOf = places;
  }
}

/** A kept shape and the side of the pixel blocks averaged into one kept pixel (1: the image itself). */
type Kept = ImageShape & { factor: number };

/** How an image of `shape` is kept under `policy`: whole, reduced, or not at all (null). */
function reduction(shape: ImageShape, policy: ImageSketchPolicy): Kept | null {
  const fits = (h: number, w: number) =>
    h * w <= policy.maxPixels && h * w * shape.channels <= policy.maxValues;
  if (fits(shape.height, shape.width)) return { ...shape, factor: 1 };
  if (!policy.reduce) return null;
  for (let factor = 2; factor <= Math.max(shape.height, shape.width); factor++) {
    const height = Math.floor(shape.height / factor);
    const width = Math.floor(shape.width / factor);
    if (height < 1 || width < 1) break;
    if (fits(height, width)) return { height, width, channels: shape.channels, factor };
  }
  return null;
}

// [0, 1] → 0–255, rounded and clamped: what imageToBytes gives, so that an image read from an
// 8-bit file comes back exactly (b / 255 → b).
function quantize(data: Float32Array, out: Uint8Array): void {
  for (let k = 0; k < out.length; k++) {
    const v = Math.round((data[k] ?? 0) * PIXEL_SCALE);
    out[k] = v < 0 ? 0 : v > PIXEL_SCALE ? PIXEL_SCALE : v;
  }
}

// The mean of each factor × factor block (the right and bottom remainders dropped), quantized.
function boxFilter(image: ImageTensor, kept: Kept, out: Uint8Array): void {
  const fy = kept.factor;
  const fx = kept.factor;
  const c = image.channels;
  for (let y = 0; y < kept.height; y++)
    for (let x = 0; x < kept.width; x++)
      for (let k = 0; k < c; k++) {
        let sum = 0;
        for (let dy = 0; dy < fy; dy++)
          for (let dx = 0; dx < fx; dx++)
            sum += image.data[((y * fy + dy) * image.width + x * fx + dx) * c + k] as number;
        const v = Math.round((sum / (fy * fx)) * PIXEL_SCALE);
        out[(y * kept.width + x) * c + k] = v < 0 ? 0 : v > PIXEL_SCALE ? PIXEL_SCALE : v;
      }
}
