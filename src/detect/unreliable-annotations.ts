// What to do about an unreliable annotator, once Dawid–Skene has found one: which of its
// annotations to drop (those the consensus overrules), and which samples' labels its votes
// decided (the consensus without them names another class, or nothing at all: the label then
// rests on a worker believed to lie, or on the class prior alone), so the sample is flagged. A dataset labeled only by annotations gets
// its labels from the consensus (see scan/consensus-labels.ts), which is why "the annotator
// disagrees with the label" is not enough there: the label is the consensus it lost to.
import type { Finding } from "../ledger/types.js";
import { argmax } from "../math/linalg.js";
import type { DawidSkeneFit } from "./dawid-skene.js";
import type { ScanTable } from "./types.js";

export interface AnnotationsToDrop {
  annotator: string;
  /** Its annotations the consensus overrules: sample id and the label it gave. */
  drop: { id: string; label: string; consensusLabel: string }[];
}

export interface UnreliableAnnotations {
  perAnnotator: AnnotationsToDrop[];
  /** Samples whose consensus label only the unreliable annotators' votes carry. */
  decided: { index: number; score: number; finding: Finding }[];
}

export function unreliableAnnotations(
  table: ScanTable,
  fit: DawidSkeneFit,
  check: { name: string; version: string },
): UnreliableAnnotations {
  const unreliable = new Set(fit.annotators.filter((a) => a.unreliable).map((a) => a.annotator));
  const perAnnotator = new Map<string, AnnotationsToDrop>(
    [...unreliable].map((a) => [a, { annotator: a, drop: [] }]),
  );
  const decided: UnreliableAnnotations["decided"] = [];
  if (unreliable.size === 0) return { perAnnotator: [], decided };
  const { classes } = table;
  (table.annotations ?? []).forEach((list, i) => {
    const consensus = fit.consensus[i] as number;
    if (consensus < 0) return;
    const suspects = list.filter((a) => unreliable.has(a.annotator));
    if (suspects.length === 0) return;
    for (const a of suspects)
      if (a.label !== consensus)
        perAnnotator.get(a.annotator)?.drop.push({
          id: table.ids[i] as string,
          label: classes[a.label] as string,
          consensusLabel: classes[consensus] as string,
        });
    const without = fit.posteriorWithout(list, unreliable);
    const kept = without === null ? 0 : (without[consensus] as number);
    const other = without === null ? -1 : argmax(without);
    if (other === consensus) return;
    const score = Math.round((1 - kept) * 1e6) / 1e6;
    decided.push({
      index: i,
      score,
      finding: {
        subjectType: "sample",
        subjectId: table.digests[i] as string,
        kind: "label-decided-by-unreliable-annotator",
        score,
        evidence: {
          id: table.ids[i],
          consensusLabel: classes[consensus],
          withoutUnreliable: other < 0 ? null : classes[other],
          unreliableAnnotators: suspects.map((a) => a.annotator),
          annotations: list.map((a) => ({ annotator: a.annotator, label: classes[a.label] })),
        },
        check: check.name,
        checkVersion: check.version,
      },
    });
  });
  return { perAnnotator: [...perAnnotator.values()], decided };
}
