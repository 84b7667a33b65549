// A labeling contractor with one bad worker: several annotators label every sample (or k of
// them each), the honest ones right with probability honestAccuracy, and one malicious
// annotator lies on exactly flipRate of its annotations. The samples' own labels stay the
// truth, so consensus and per-annotator reliability (Dawid & Skene, 1979) can be scored.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import type { Annotation, JsonValue } from "../data/sample.js";
import { Rng } from "../math/rng.js";
import type { GroundTruth, PoisonRecord } from "./ground-truth.js";
import {
  chooseVictims,
  classRefSchema,
  groundTruth,
  otherClass,
  poisonRecord,
  requireClasses,
  resolveClass,
  rewrite,
  scanFacts,
  selectionFields,
  type OnProgress,
} from "./select.js";

export const maliciousAnnotatorSpecSchema = z
  .strictObject({
    kind: z.literal("malicious-annotator"),
    seed: selectionFields.seed,
    /** How many annotators, named "annotator-1" … "annotator-N". */
    annotators: z.number().int().min(2).max(1000).default(6),
    /** Which one lies; the last when absent. */
    malicious: z.string().min(1).optional(),
    /** An honest annotation is the true label with this probability, else a random other class. */
    honestAccuracy: z.number().min(0).max(1).default(0.95),
    /** Exact fraction of the malicious annotator's annotations that are deliberate lies. */
    flipRate: z.number().gt(0).lte(1).default(0.4),
    /** Lie towards this class instead of a random other one. */
    target: classRefSchema.optional(),
    /** Each sample is labeled by this many annotators, chosen at random; all of them when absent. */
    annotatorsPerSample: z.number().int().positive().optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.annotatorsPerSample !== undefined && spec.annotatorsPerSample > spec.annotators) {
      ctx.addIssue({
        code: "custom",
        path: ["annotatorsPerSample"],
        message: `${spec.annotatorsPerSample} is more than the ${spec.annotators} annotators`,
      });
    }
    if (spec.malicious !== undefined && !annotatorNames(spec.annotators).includes(spec.malicious)) {
      ctx.addIssue({
        code: "custom",
        path: ["malicious"],
        message: `"${spec.malicious}" is not one of annotator-1 … annotator-${spec.annotators}`,
      });
    }
  });
export type MaliciousAnnotatorSpec = z.output<typeof maliciousAnnotatorSpecSchema>;

export async function maliciousAnnotatorAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: MaliciousAnnotatorSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const facts = await scanFacts(input);
  requireClasses(facts.classes, "malicious-annotator");
  const target = spec.target === undefined ? undefined : resolveClass(spec.target, facts.classes, "target");
  const names = annotatorNames(spec.annotators);
  const bad = spec.malicious === undefined ? names.length - 1 : names.indexOf(spec.malicious);
  const rng = new Rng(spec.seed);

  const panel = choosePanels(rng, facts.label, spec.annotators, spec.annotatorsPerSample);
  const itsSamples = Array.from(facts.label.keys()).filter((i) => panel.includes(i, bad));
  const lies = Math.round(spec.flipRate * itsSamples.length);
  if (lies === 0) {
    throw new AntidoteError(
      "USAGE",
      `attack spec: flipRate: ${spec.flipRate} of the ${itsSamples.length} annotations by ${names[bad]} rounds to 0 lies.`,
    );
  }
  const t = target === undefined ? -2 : facts.classes.indexOf(target);
  const pool = itsSamples.filter((i) => facts.label[i] !== t);
  const rule =
    target === undefined
      ? `annotated by ${names[bad]}`
      : `annotated by ${names[bad]}, true label other than "${target}"`;
  const victims = new Set(chooseVictims(rng, pool, lies, "malicious-annotator", rule));

  const tally = names.map(() => ({ annotations: 0, disagreements: 0 }));
  const poisoned: PoisonRecord[] = [];
  const outputCount = await rewrite(
    input,
    output,
    facts,
    {
      edit(sample, index) {
        if (sample.label === null) return sample;
        const truth = sample.label;
        const annotations: Annotation[] = panel.members(index).map((a) => {
          const lie = a === bad && victims.has(index);
          const label = lie
            ? (target ?? otherClass(rng, facts.classes, truth))
            : rng.next() < spec.honestAccuracy
              ? truth
              : otherClass(rng, facts.classes, truth);
          const count = tally[a];
          if (count !== undefined) {
            count.annotations++;
            if (label !== truth) count.disagreements++;
          }
          return { annotator: names[a] ?? "", label };
        });
        const after = { ...sample, annotations, metadata: { ...sample.metadata } };
        if (victims.has(index)) {
          const given = annotations.find((a) => a.annotator === names[bad])?.label ?? "";
          poisoned.push(
            poisonRecord("annotator-flipped", sample, after, { annotator: names[bad] ?? "", given }),
          );
        }
        return after;
      },
    },
    facts.count,
    onProgress,
  );
  const perAnnotator: Record<string, JsonValue> = Object.fromEntries(
    names.map((name, a) => [name, tally[a] ?? null]),
  );
  return groundTruth(spec, facts, outputCount, poisoned, {
    summary: { malicious: names[bad] ?? "", annotators: perAnnotator },
  });
}

export function annotatorNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `annotator-${i + 1}`);
}

interface Panels {
  /** The annotators (indices, ascending) who label sample `index`. */
  members(index: number): number[];
  includes(index: number, annotator: number): boolean;
}

/** Who labels what: everyone labels every labeled sample, or k chosen per sample (k bytes each). */
function choosePanels(
  rng: Rng,
  label: Int32Array,
  annotators: number,
  perSample: number | undefined,
): Panels {
  const everyone = Array.from({ length: annotators }, (_, a) => a);
  if (perSample === undefined || perSample === annotators) {
    return {
      members: (i) => ((label[i] ?? -1) >= 0 ? everyone : []),
      includes: (i) => (label[i] ?? -1) >= 0,
    };
  }
  const k = perSample;
  const chosen = new Uint16Array(label.length * k);
  for (let i = 0; i < label.length; i++) {
    if ((label[i] ?? -1) >= 0) chosen.set(rng.sample(everyone, k), i * k);
  }
  const members = (i: number): number[] =>
    (label[i] ?? -1) >= 0 ? Array.from(chosen.subarray(i * k, (i + 1) * k)) : [];
  return { members, includes: (i, a) => members(i).includes(a) };
}
