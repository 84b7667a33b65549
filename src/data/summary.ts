// One streaming pass that says what a dataset holds: counts per class, source and
// annotator, modality and shapes. Used by `antidote inspect` and as a sanity check
// before a scan. The count tables are keyed by data (a label may be "__proto__" or
// "constructor"), so they are prototype-free objects: JSON-shaped, but no key is special.
import type { Dataset } from "./dataset.js";

export interface DatasetSummary {
  count: number;
  modalities: { text: number; image: number; tabular: number };
  labels: Record<string, number>;
  unlabeled: number;
  sources: Record<string, number>;
  annotators: Record<string, number>;
  /** "28x28x1" → count. */
  imageShapes: Record<string, number>;
  text: { minChars: number; maxChars: number; meanChars: number } | null;
  featureCount: number | null;
  /** Distinct content digests: count − distinct = exact duplicates. */
  distinctDigests: number;
}

export async function summarizeDataset(
  dataset: Dataset,
  options: { onSample?: (count: number) => void } = {},
): Promise<DatasetSummary> {
  const s: DatasetSummary = {
    count: 0,
    modalities: { text: 0, image: 0, tabular: 0 },
    labels: counts(),
    unlabeled: 0,
    sources: counts(),
    annotators: counts(),
    imageShapes: counts(),
    text: null,
    featureCount: null,
    distinctDigests: 0,
  };
  // A digest set is O(n) memory (~100 bytes a sample): fine up to tens of millions of samples.
  const digests = new Set<string>();
  let textChars = 0;
  for await (const sample of dataset.samples()) {
    s.count++;
    digests.add(sample.digest);
    if (sample.label === null) s.unlabeled++;
    else bump(s.labels, sample.label);
    if (sample.source !== null) bump(s.sources, sample.source);
    for (const a of sample.annotations) bump(s.annotators, a.annotator);
    if (sample.text !== undefined) {
      s.modalities.text++;
      const n = sample.text.length;
      textChars += n;
      s.text =
        s.text === null
          ? { minChars: n, maxChars: n, meanChars: 0 }
          : { ...s.text, minChars: Math.min(s.text.minChars, n), maxChars: Math.max(s.text.maxChars, n) };
    }
    if (sample.image !== undefined) {
      s.modalities.image++;
      bump(s.imageShapes, `${sample.image.height}x${sample.image.width}x${sample.image.channels}`);
    }
    if (sample.features !== undefined) {
      s.modalities.tabular++;
      s.featureCount = sample.features.length;
    }
    options.onSample?.(s.count);
  }
  if (s.text !== null) s.text.meanChars = textChars / s.modalities.text;
  s.distinctDigests = digests.size;
  return s;
}

function counts(): Record<string, number> {
  return Object.create(null) as Record<string, number>;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
