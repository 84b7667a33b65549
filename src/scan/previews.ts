// Previews of the flagged samples for the HTML report: a text excerpt around the evidence, or a
// small PNG thumbnail. Texts are in the ScanTable; images are not (the scan keeps at most 8-bit
// sketches of small ones), so the thumbnails come from a second pass over the dataset that picks
// up only the samples shown — Dataset.samples() starts a new pass each call. `previewsJson`
// writes them as a scan job's previews.json, for clients that show them (the dashboard).
import type { Dataset } from "../data/dataset.js";
import { encodePng } from "../data/image-codec.js";
import { imageToBytes, type ImageTensor } from "../data/sample.js";
import type { ScanTable } from "../detect/types.js";
import type { EnsembleResult } from "./ensemble.js";

/** A flagged sample's content, for the HTML report. */
export type SamplePreview =
  | {
      kind: "text";
      /** The excerpt shown, and where it starts in the text. */
      excerpt: string;
      start: number;
      truncatedBefore: boolean;
      truncatedAfter: boolean;
      /** Spans to highlight, relative to the excerpt. */
      highlights: { start: number; end: number; label: string }[];
    }
  | { kind: "image"; pngBase64: string; width: number; height: number };

const EXCERPT_CHARS = 600;
const CONTEXT_CHARS = 240;
const THUMBNAIL_MAX = 64;

/**
 * Previews of the `limit` flagged samples of highest risk, by table index. Image thumbnails are
 * read in a second pass over `dataset` (stopped as soon as the last one is in); a sample found
 * there under another id than the table's means the dataset changed since the scan read it, and
 * its thumbnail is left out with a warning.
 */
export async function buildPreviews(
  dataset: Dataset,
  table: ScanTable,
  ensemble: EnsembleResult,
  evidence: Map<number, Record<string, Record<string, unknown>>>,
  limit: number,
  warnings: string[],
): Promise<Map<number, SamplePreview>> {
  const order: number[] = [];
  ensemble.flagged.forEach((f, i) => f === 1 && order.push(i));
  order.sort((a, b) => (ensemble.risk[b] as number) - (ensemble.risk[a] as number) || a - b);
  const shown = order.slice(0, limit);
  const wanted = new Set(shown.filter((i) => table.images?.shape(i) !== undefined));
  const images =
    wanted.size === 0 ? new Map<number, SamplePreview>() : await thumbnails(dataset, table, wanted, warnings);
  const out = new Map<number, SamplePreview>();
  for (const i of shown) {
    const image = images.get(i);
    if (image !== undefined) out.set(i, image);
    else if (!wanted.has(i) && table.texts !== undefined)
      out.set(i, textPreview(table.texts[i] as string, evidence.get(i)));
  }
  return out;
}

// The second pass: the samples at the wanted indices, as thumbnails.
async function thumbnails(
  dataset: Dataset,
  table: ScanTable,
  wanted: ReadonlySet<number>,
  warnings: string[],
): Promise<Map<number, SamplePreview>> {
  const out = new Map<number, SamplePreview>();
  const last = Math.max(...wanted);
  let i = 0;
  for await (const s of dataset.samples()) {
    if (wanted.has(i)) {
      if (s.id !== table.ids[i] || s.image === undefined) {
        warnings.push(
          `previews: sample ${i} is "${s.id}" on a second read, "${table.ids[i]}" on the first; the dataset ` +
            "changed during the scan, so the report shows no more thumbnails.",
        );
        break;
      }
      out.set(i, imagePreview(s.image));
    }
    if (i++ >= last) break;
  }
  return out;
}

function textPreview(
  text: string,
  evidence: Record<string, Record<string, unknown>> | undefined,
): SamplePreview {
  const spans: { start: number; end: number; label: string }[] = [];
  for (const e of Object.values(evidence ?? {})) {
    const { offset, ngram } = e;
    if (typeof offset !== "number" || typeof ngram !== "string") continue;
    const end = matchEnd(text, offset, ngram);
    if (end > offset) spans.push({ start: offset, end, label: ngram });
  }
  const focus = spans[0];
  let from = 0;
  if (focus !== undefined && focus.end > EXCERPT_CHARS - CONTEXT_CHARS)
    from = Math.max(0, focus.start - CONTEXT_CHARS);
  const to = Math.min(text.length, from + EXCERPT_CHARS);
  return {
    kind: "text",
    excerpt: text.slice(from, to),
    start: from,
    truncatedBefore: from > 0,
    truncatedAfter: to < text.length,
    highlights: spans
      .filter((h) => h.start >= from && h.end <= to)
      .map((h) => ({ start: h.start - from, end: h.end - from, label: h.label })),
  };
}

// The trigger detector reports where its n-gram starts; its words may be separated by any
// punctuation or whitespace in the text, so the end is found by matching them again there.
function matchEnd(text: string, offset: number, ngram: string): number {
  const words = ngram.split(" ").map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(words.join("[^\\p{L}\\p{N}]+"), "iuy");
  pattern.lastIndex = offset;
  const m = pattern.exec(text);
  return m === null ? offset : offset + m[0].length;
}

function imagePreview(image: ImageTensor): SamplePreview {
  const small = downscale(image, THUMBNAIL_MAX);
  const bytes = imageToBytes(small);
  const png = encodePng(bytes, small.height, small.width, small.channels);
  return { kind: "image", pngBase64: png.toString("base64"), width: small.width, height: small.height };
}

// Box-filter downscale so that the longer side is at most `max` pixels (thumbnails stay small).
function downscale(image: ImageTensor, max: number): ImageTensor {
  const factor = Math.ceil(Math.max(image.height, image.width) / max);
  if (factor <= 1) return image;
  const height = Math.floor(image.height / factor);
  const width = Math.floor(image.width / factor);
  const c = image.channels;
  const data = new Float32Array(height * width * c);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let k = 0; k < c; k++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++)
          for (let dx = 0; dx < factor; dx++)
            sum += image.data[((y * factor + dy) * image.width + x * factor + dx) * c + k] as number;
        data[(y * width + x) * c + k] = sum / (factor * factor);
      }
  return { height, width, channels: c, data };
}

/** One flagged sample's preview, as the scan job's previews.json holds it. */
export interface PreviewJson {
  /** Position in the dataset, id and digest: as in report.json's `flagged`. */
  index: number;
  id: string;
  digest: string;
  preview:
    | Extract<SamplePreview, { kind: "text" }>
    | {
        kind: "image";
        /** The thumbnail as a `data:image/png;base64,…` URL. */
        src: string;
        width: number;
        height: number;
      };
}

/** The file previews.json: the previews of the flagged samples, highest risk first. */
export interface PreviewsJson {
  schema: "antidote.scan-previews";
  previews: PreviewJson[];
}

/**
 * The previews as JSON, in the order of `flagged` (report.json's): a client shows a
 * sample's content from here — text to render as text, with the spans to mark; an image as
 * a PNG data URL — instead of reading it back out of report.html.
 */
export function previewsJson(
  flagged: readonly { index: number; id: string; digest: string }[],
  previews: ReadonlyMap<number, SamplePreview>,
): PreviewsJson {
  const out: PreviewJson[] = [];
  for (const { index, id, digest } of flagged) {
    const p = previews.get(index);
    if (p === undefined) continue;
    out.push({
      index,
      id,
      digest,
      preview:
        p.kind === "text"
          ? p
          : { kind: "image", src: `data:image/png;base64,${p.pngBase64}`, width: p.width, height: p.height },
    });
  }
  return { schema: "antidote.scan-previews", previews: out };
}
