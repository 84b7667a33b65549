// PNG and JPEG bytes ⇄ 8-bit pixels. pngjs and jpeg-js are pure JS, so they install
// anywhere; images are sniffed by magic number, never by file extension.
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { AntidoteError } from "../errors.js";

export interface DecodedPixels {
  bytes: Uint8Array; // H×W×C, 8-bit
  height: number;
  width: number;
  channels: 1 | 3;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

export function sniffImage(bytes: Uint8Array): "png" | "jpeg" | undefined {
  if (PNG_MAGIC.every((b, i) => bytes[i] === b)) return "png";
  if (JPEG_MAGIC.every((b, i) => bytes[i] === b)) return "jpeg";
  return undefined;
}

/**
 * Decode a PNG or JPEG. Grey images come back with one channel so a Fashion-MNIST PNG and
 * its IDX original have the same shape and digest; alpha is dropped after compositing on
 * black, as training pipelines do.
 */
export function decodeImage(bytes: Uint8Array, where: string): DecodedPixels {
  const kind = sniffImage(bytes);
  let rgba: Uint8Array;
  let width: number;
  let height: number;
  let color: boolean | undefined;
  try {
    if (kind === "png") {
      // The sync reader returns the header metadata too; `color` is false for grey PNGs.
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as PNG & {
        color?: boolean;
      };
      ({ width, height } = png);
      rgba = png.data;
      color = png.color;
    } else if (kind === "jpeg") {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
      ({ width, height } = img);
      rgba = img.data;
    } else {
      throw new AntidoteError(
        "IMAGE_UNDECODABLE",
        `${where}: not a PNG or JPEG image (first bytes ${hex(bytes)}).`,
      );
    }
  } catch (e) {
    if (e instanceof AntidoteError) throw e;
    const reason = e instanceof Error ? e.message : String(e);
    throw new AntidoteError("IMAGE_UNDECODABLE", `${where}: cannot decode ${kind} image: ${reason}.`, {
      cause: e,
    });
  }
  return fromRgba(rgba, width, height, color);
}

// PNG says whether it is grey; for JPEG we look: a JPEG whose channels are all equal is grey.
function fromRgba(
  rgba: Uint8Array,
  width: number,
  height: number,
  color: boolean | undefined,
): DecodedPixels {
  const n = width * height;
  let grey = color === undefined ? true : !color;
  for (let p = 0; p < n && grey && color === undefined; p++) {
    const r = rgba[4 * p];
    grey = r === rgba[4 * p + 1] && r === rgba[4 * p + 2];
  }
  const channels = grey ? 1 : 3;
  const out = new Uint8Array(n * channels);
  for (let p = 0; p < n; p++) {
    const a = rgba[4 * p + 3] ?? 255;
    for (let c = 0; c < channels; c++) {
      const v = rgba[4 * p + c] ?? 0;
      out[p * channels + c] = a === 255 ? v : Math.round((v * a) / 255);
    }
  }
  return { bytes: out, height, width, channels };
}

/** Encode 8-bit H×W×C pixels (C = 1 or 3) as PNG. */
export function encodePng(bytes: Uint8Array, height: number, width: number, channels: number): Buffer {
  if (channels !== 1 && channels !== 3) {
    throw new AntidoteError("USAGE", `cannot write a ${channels}-channel image as PNG (1 or 3 channels).`);
  }
  const png = new PNG({
    width,
    height,
    colorType: channels === 1 ? 0 : 2,
    inputColorType: channels === 1 ? 0 : 2,
    inputHasAlpha: false,
  });
  png.data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return PNG.sync.write(png, {
    colorType: channels === 1 ? 0 : 2,
    inputColorType: channels === 1 ? 0 : 2,
    inputHasAlpha: false,
  });
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ") || "(empty)";
}
