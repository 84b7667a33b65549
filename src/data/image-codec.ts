// PNG and JPEG bytes ⇄ 8-bit pixels. pngjs and jpeg-js are pure JS, so they install
// anywhere; images are sniffed by magic number, never by file extension. A few hundred
// bytes of PNG can declare 30000×30000 pixels (a decompression bomb: 60 s and 6 GB to
// decode), so the declared size is read from the header and checked against a cap before
// any pixel is allocated. Messages describe the bytes, never quote them: an image path may
// have led to a file that is not an image at all.
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { AntidoteError } from "../errors.js";
import { DEFAULT_MAX_IMAGE_PIXELS } from "./dataset.js";

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
export function decodeImage(
  bytes: Uint8Array,
  where: string,
  limits: { maxPixels?: number | undefined } = {},
): DecodedPixels {
  const kind = sniffImage(bytes);
  const maxPixels = limits.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  if (kind !== undefined) checkDeclaredSize(kind, bytes, where, maxPixels);
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
      // jpeg-js's own caps stay as a second line behind checkDeclaredSize.
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: Math.ceil(maxPixels / 1e6),
        maxMemoryUsageInMB: Math.max(512, Math.ceil((maxPixels * 8) / 2 ** 20)),
      });
      ({ width, height } = img);
      rgba = img.data;
    } else {
      throw new AntidoteError(
        "IMAGE_UNDECODABLE",
        `${where}: not a PNG or JPEG image (${bytes.length === 0 ? "the file is empty" : "no PNG or JPEG signature at the start"}).`,
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

/**
 * The width and height an image's header declares, without decoding: PNG's IHDR (always
 * the first chunk), JPEG's first start-of-frame marker. Undefined when the header is cut
 * short or malformed — the decoder then reports it.
 */
export function declaredSize(
  kind: "png" | "jpeg",
  bytes: Uint8Array,
): { width: number; height: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (kind === "png") {
    // 8-byte signature, then length (4) and type "IHDR" (4), then width and height, big-endian.
    if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") return undefined;
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  // JPEG: walk marker segments from after SOI (FF D8) to the first SOFn (C0–CF but C4 DHT,
  // C8 JPG, CC DAC), whose payload is length (2), precision (1), height (2), width (2).
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1] ?? 0;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2; // markers without a length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // end of image, or scan data before any frame
    const length = view.getUint16(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > bytes.length) return undefined;
      return { height: view.getUint16(i + 5), width: view.getUint16(i + 7) };
    }
    i += 2 + length;
  }
  return undefined;
}

function checkDeclaredSize(kind: "png" | "jpeg", bytes: Uint8Array, where: string, maxPixels: number): void {
  const size = declaredSize(kind, bytes);
  if (size === undefined) return;
  const pixels = size.width * size.height;
  if (pixels <= maxPixels) return;
  throw new AntidoteError(
    "IMAGE_UNDECODABLE",
    `${where}: the ${kind.toUpperCase()} header declares ${size.width}×${size.height} pixels (${megapixels(pixels)}), over the ${megapixels(maxPixels)} limit; refused before decoding (raise the limit with --max-image-pixels for a dataset you trust).`,
  );
}

function megapixels(pixels: number): string {
  return `${Number((pixels / 1e6).toPrecision(3))} Mpx`;
}
