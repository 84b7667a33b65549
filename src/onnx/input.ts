// Samples' images (H×W×C in [0, 1], channels last) laid out as a model's input batch. ONNX
// image models take NCHW, so channels move first; a flat model input takes the same C·H·W
// values in that order (what Flatten of an NCHW tensor gives). Models exported from TensorFlow
// often take channels last ([H, W, C]); that layout is recognised when its shape says so.
import { AntidoteError } from "../errors.js";
import type { Sample } from "../data/sample.js";

type Layout = "chw" | "hwc" | "flat";

/**
 * Fill `out` (or a new array) with the samples' images as a [n, ...inputShape] float32 batch.
 * inputShape is [C, H, W], [H, W, C] (channels last, recognised when only that reading fits),
 * [H, W] (one channel) or [D] with D = C·H·W (flattened in C, H, W order). A sample without an
 * image, or whose image does not fit the shape, fails with MODEL_FORMAT naming it.
 */
export function imageBatch(
  samples: readonly Sample[],
  inputShape: readonly number[],
  out?: Float32Array,
): Float32Array {
  const size = inputShape.reduce((a, b) => a * b, 1);
  const need = samples.length * size;
  if (out !== undefined && out.length < need) {
    throw new AntidoteError(
      "INTERNAL",
      `imageBatch: buffer holds ${out.length} values, ${samples.length} inputs need ${need}.`,
    );
  }
  const batch = out === undefined ? new Float32Array(need) : out.subarray(0, need);
  samples.forEach((sample, n) => {
    const image = sample.image;
    if (image === undefined) {
      throw new AntidoteError("MODEL_FORMAT", `sample "${sample.id}" has no image; the model takes images.`);
    }
    const { height: H, width: W, channels: C, data } = image;
    const layout = layoutFor(inputShape, H, W, C);
    if (layout === null) {
      throw new AntidoteError(
        "MODEL_FORMAT",
        `sample "${sample.id}" is a ${H}×${W} image with ${C} channel${C === 1 ? "" : "s"}, but the model ` +
          `takes [${inputShape.join(", ")}] (batch excluded)${hint(inputShape, H, W, C)}.`,
      );
    }
    const base = n * size;
    if (layout === "hwc" || C === 1) {
      // Channels-last, or a single channel: the stored order already is the model's.
      batch.set(data.subarray(0, size), base);
      return;
    }
    const plane = H * W;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < C; c++) batch[base + c * plane + p] = data[p * C + c] as number;
    }
  });
  return batch;
}

function layoutFor(shape: readonly number[], H: number, W: number, C: number): Layout | null {
  if (shape.length === 3) {
    if (shape[0] === C && shape[1] === H && shape[2] === W) return "chw";
    if (shape[0] === H && shape[1] === W && shape[2] === C) return "hwc";
    return null;
  }
  if (shape.length === 2) return C === 1 && shape[0] === H && shape[1] === W ? "chw" : null;
  if (shape.length === 1) return shape[0] === H * W * C ? "flat" : null;
  return null;
}

function hint(shape: readonly number[], H: number, W: number, C: number): string {
  const channels = (c: number) => `${c} channel${c === 1 ? "" : "s"}`;
  if (shape.length === 3) {
    // Read as [C, H, W], the layout ONNX image models use.
    const [c = 0, h = 0, w = 0] = shape;
    if (h === H && w === W) return `; convert the images to ${channels(c)}`;
    return `; resize the images to ${h}×${w}${c !== C ? ` with ${channels(c)}` : ""}`;
  }
  if (shape.length === 1)
    return `; a flat input needs H·W·C = ${shape[0]} values, the image has ${H * W * C}`;
  return "";
}
