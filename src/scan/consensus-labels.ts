// Labels for a dataset that has none of its own, only several annotations per sample (crowd or
// contractor labels without a label column): each sample takes its Dawid–Skene consensus
// class, so the label-based detectors (confident learning, spectral and clustering detectors,
// trigger tests) can run on it at all. Dawid–Skene itself still sees every annotation and
// judges each annotator against that same consensus.
import { fitDawidSkene } from "../detect/dawid-skene.js";
import type { ScanTable } from "../detect/types.js";

/** Where the labels the detectors read came from. */
export type LabelOrigin = "given" | "consensus";

/**
 * Give `table` consensus labels when fewer than two samples carry a label of their own and
 * some sample has two or more annotations; returns where the labels now come from.
 */
export function labelsFromAnnotations(table: ScanTable): LabelOrigin {
  const labeled = table.labels.reduce((a, y) => a + (y >= 0 ? 1 : 0), 0);
  const annotations = table.annotations;
  if (labeled >= 2 || annotations === undefined || table.classes.length < 2) return "given";
  if (!annotations.some((list) => list.length >= 2)) return "given";
  const fit = fitDawidSkene(annotations, table.classes.length);
  table.labels = Int32Array.from(fit.consensus);
  return "consensus";
}
