// The one record every reader yields and every writer, featurizer, simulator and
// detector consumes, and the content digest that identifies it across formats.
import { createHash } from "node:crypto";
import { z } from "zod";

/** A decoded image: values in [0, 1], row-major H×W×C (channels last). */
export interface ImageTensor {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly data: Float32Array;
}

export const annotationSchema = z.object({
  annotator: z.string().min(1),
  label: z.union([z.string(), z.number()]).transform((v) => String(v)),
});
export type Annotation = z.output<typeof annotationSchema>;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface Sample {
  /** Stable id: the id column when there is one, else `<file stem>:<row index>` or the relative path. */
  id: string;
  /** Hex SHA-256 over the canonical bytes of the content (see `canonicalBytes`); labels are not content. */
  digest: string;
  /** The class name, or null for an unlabeled sample. Numeric labels are kept as their decimal string. */
  label: string | null;
  text?: string;
  image?: ImageTensor;
  /** Tabular features, in the order of `DatasetInfo.featureNames`. */
  features?: Float32Array;
  source: string | null;
  annotations: Annotation[];
  metadata: Record<string, JsonValue>;
}

/** What a reader knows about a dataset before (or after) streaming it. */
export interface DatasetInfo {
  format: DatasetFormat;
  /** Path the dataset was read from. */
  path: string;
  /** Known class list, in index order; undefined when only a full pass can tell. */
  classes?: string[];
  /** Whether labels were stored as integers (class indices) or strings in the file. */
  labelKind?: "integer" | "string";
  /** Number of samples when the format says so up front (IDX, Parquet, ImageFolder). */
  count?: number;
  featureNames?: string[];
  /** The columns each role was read from, for the user's information. */
  columns?: Partial<Record<ColumnRole, string>>;
  /** Total bytes of input, for progress and throughput. */
  bytes?: number;
}

export type DatasetFormat = "jsonl" | "csv" | "parquet" | "imagefolder" | "idx" | "spamassassin";
export type ColumnRole = "id" | "text" | "image" | "label" | "source" | "annotations";

const PIXEL_SCALE = 255;

/** Quantize an image to the 8-bit pixels that formats store; the digest is taken over these. */
export function imageToBytes(image: ImageTensor): Uint8Array {
  const out = new Uint8Array(image.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = Math.round((image.data[i] ?? 0) * PIXEL_SCALE);
    out[i] = v < 0 ? 0 : v > PIXEL_SCALE ? PIXEL_SCALE : v;
  }
  return out;
}

/** 8-bit pixels (H×W×C) → an ImageTensor in [0, 1]. */
export function imageFromBytes(
  bytes: Uint8Array,
  height: number,
  width: number,
  channels: number,
): ImageTensor {
  const data = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) data[i] = (bytes[i] ?? 0) / PIXEL_SCALE;
  return { height, width, channels, data };
}

/**
 * Canonical content bytes, so that the same content read from IDX, PNG-in-Parquet or an
 * ImageFolder has the same digest: a tag per modality, then text as NFC UTF-8, the image
 * as its shape and 8-bit pixels, tabular features as little-endian float32.
 */
export function canonicalParts(content: {
  text?: string | undefined;
  imageBytes?: { bytes: Uint8Array; height: number; width: number; channels: number } | undefined;
  features?: Float32Array | undefined;
}): Uint8Array[] {
  const parts: Uint8Array[] = [];
  if (content.text !== undefined) {
    parts.push(Buffer.from("text\0"), Buffer.from(content.text.normalize("NFC"), "utf8"), Buffer.from("\0"));
  }
  if (content.imageBytes !== undefined) {
    const { bytes, height, width, channels } = content.imageBytes;
    parts.push(Buffer.from(`image\0${height}x${width}x${channels}\0`), bytes);
  }
  if (content.features !== undefined) {
    const f = content.features;
    parts.push(Buffer.from(`tabular\0${f.length}\0`), new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
  }
  return parts;
}

export function digestParts(parts: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** Digest of a sample's content as it is now (used after a simulator edits a sample). */
export function sampleDigest(sample: Pick<Sample, "text" | "image" | "features">): string {
  const img = sample.image;
  return digestParts(
    canonicalParts({
      text: sample.text,
      imageBytes: img && {
        bytes: imageToBytes(img),
        height: img.height,
        width: img.width,
        channels: img.channels,
      },
      features: sample.features,
    }),
  );
}

/** Digest when the reader already holds the stored 8-bit pixels (avoids re-quantizing). */
export function imageBytesDigest(bytes: Uint8Array, height: number, width: number, channels: number): string {
  return digestParts(canonicalParts({ imageBytes: { bytes, height, width, channels } }));
}
