// Build the ScanTable detectors read from samples already in memory: labels become class
// indices (in the dataset's class order when it has one, else sorted), annotations are
// mapped onto the same classes, and the optional parts are present only when some sample
// has them.
import { AntidoteError } from "../errors.js";
import type { Sample } from "../data/sample.js";
import type { ScanAnnotation, ScanTable } from "./types.js";

export interface ScanTableOptions {
  /** The class list in index order (DatasetInfo.classes); default: the sorted set of labels seen. */
  classes?: string[];
  /** Keep raw texts (default true when samples carry text). */
  keepTexts?: boolean;
}

export function scanTableFromSamples(samples: readonly Sample[], options: ScanTableOptions = {}): ScanTable {
  const seen = new Set<string>();
  for (const s of samples) {
    if (s.label !== null) seen.add(s.label);
    for (const a of s.annotations) seen.add(a.label);
  }
  const classes = options.classes ?? [...seen].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const index = new Map(classes.map((c, i) => [c, i]));
  const classOf = (label: string, sample: Sample, field: string): number => {
    const i = index.get(label);
    if (i === undefined)
      throw new AntidoteError(
        "ROW_MALFORMED",
        `sample ${sample.id}: ${field} "${label}" is not one of the dataset's classes (${classes.join(", ")}).`,
      );
    return i;
  };

  const n = samples.length;
  const labels = new Int32Array(n);
  const table: ScanTable = {
    ids: samples.map((s) => s.id),
    digests: samples.map((s) => s.digest),
    labels,
    classes,
  };
  samples.forEach((s, i) => {
    labels[i] = s.label === null ? -1 : classOf(s.label, s, "label");
  });
  if (samples.some((s) => s.source !== null)) table.sources = samples.map((s) => s.source);
  if (samples.some((s) => s.annotations.length > 0))
    table.annotations = samples.map((s) =>
      s.annotations.map((a): ScanAnnotation => ({
        annotator: a.annotator,
        label: classOf(a.label, s, "annotation"),
      })),
    );
  if (samples.some((s) => s.image !== undefined)) table.images = samples.map((s) => s.image);
  if ((options.keepTexts ?? true) && samples.some((s) => s.text !== undefined))
    table.texts = samples.map((s) => s.text ?? "");
  return table;
}
