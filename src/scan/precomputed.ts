// Model outputs computed away from the scan — by shards (scan/shard.ts), merged in read order
// (scan/shard-merge.ts) — and handed to `scanDataset`, which then reads the dataset only for ids,
// labels, digests and sketches. Rows are matched to samples by position, so the outputs carry a
// tag per row, from the sample's id and content digest: a dataset that changed between the
// shards' reads and the scan's (a file replaced, rows reordered, a row skipped) is refused by
// position instead of giving one sample another's probabilities.
import { createHash } from "node:crypto";
import { AntidoteError } from "../errors.js";
import type { ScanTable } from "../detect/types.js";
import type { ModelOutputs } from "./model-run.js";

/** ModelOutputs for a whole dataset, in read order, with what they were computed for. */
export interface PrecomputedModelOutputs extends ModelOutputs {
  /** The class order of the probabilities' columns (the ScanTable's classes). */
  classes: string[];
  /** sampleTag(id, digest) of each row's sample, in read order. */
  sampleTags: Float64Array;
}

/**
 * 48 bits of SHA-256 over the sample's id and content digest, as an exact integer (a float64
 * holds integers below 2^53, so the tag travels in a float tensor unchanged). A changed sample
 * goes unnoticed with probability 2^-48.
 */
export function sampleTag(id: string, digest: string): number {
  const h = createHash("sha256").update(id).update("\0").update(digest).digest();
  return h.readUIntBE(0, 6);
}

/**
 * Check that `outputs` were computed for exactly the table's samples, in its order and class
 * order: DIGEST_MISMATCH naming the first position whose sample differs, or the counts; USAGE
 * when the class lists differ.
 */
export function checkPrecomputed(outputs: PrecomputedModelOutputs, table: ScanTable): void {
  const n = table.ids.length;
  const from = `the precomputed model outputs (${outputs.summary.path})`;
  if (outputs.sampleTags.length !== n || outputs.summary.samples !== n)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${from} are for ${outputs.sampleTags.length} samples, the dataset read now has ${n}: ` +
        "it changed since the shards read it, or was read with other options.",
    );
  if (!sameList(outputs.classes, table.classes))
    throw new AntidoteError(
      "USAGE",
      `${from} have columns for the classes [${outputs.classes.join(", ")}], the dataset's are ` +
        `[${table.classes.join(", ")}]; run the shards on the same dataset with the same class list.`,
    );
  for (let i = 0; i < n; i++) {
    if (outputs.sampleTags[i] === sampleTag(table.ids[i] as string, table.digests[i] as string)) continue;
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${from}: row ${i} was computed for another sample than the dataset's sample "${table.ids[i]}" at ` +
        "that position (its id or content differs): the dataset changed since the shards read it.",
    );
  }
  const C = outputs.classes.length;
  const F = outputs.features?.dims ?? 0;
  const rows = (a: Float32Array | undefined, width: number) => (a === undefined ? n : a.length / width);
  if (
    rows(outputs.probs, C) !== n ||
    rows(outputs.ownProbs, C) !== n ||
    (outputs.features !== undefined && rows(outputs.features.data, F) !== n)
  )
    throw new AntidoteError("INTERNAL", `${from}: their arrays do not have one row per sample.`);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
