// A near-duplicate campaign: many lightly edited copies of one template (a spam run, SEO
// text planted for a web crawl). Each copy differs from the template and from the others,
// so exact-hash dedup keeps them all, yet they share most word 5-shingles, so MinHash LSH
// groups them (Broder, 1997). Copies are inserted at seeded random places in the stream.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import type { ImageTensor, Sample } from "../data/sample.js";
import { Rng } from "../math/rng.js";
import type { GroundTruth, PoisonRecord } from "./ground-truth.js";
import {
  HAS_IMAGE,
  HAS_TEXT,
  classRefSchema,
  describeEligibility,
  edited,
  eligible,
  exactlyOneAmount,
  groundTruth,
  poisonRecord,
  requestedCount,
  resolveClass,
  rewrite,
  scanFacts,
  selectionFields,
  type Facts,
  type OnProgress,
} from "./select.js";

export const nearDuplicateSpecSchema = z
  .strictObject({
    kind: z.literal("near-duplicate"),
    ...selectionFields,
    /** Id of the sample to copy, or "random": a seeded pick (from fromSource, labeled other than target). */
    template: z.string().min(1).default("random"),
    /** Label of the copies; the template's label when absent. */
    target: classRefSchema.optional(),
    /**
     * Fraction of the template's words substituted, deleted or duplicated in each copy. Each
     * edit changes about 5 of the word 5-shingles around it. On SpamAssassin, 0.02 keeps 92% of
     * the template's shingles on average (Jaccard ≈ 0.84, worst 88%); 0.05 keeps 80% on average
     * (Jaccard ≈ 0.67, worst 73%), below the usual 0.8 near-duplicate threshold.
     */
    editRate: z.number().min(0).max(0.5).default(0.02),
    /** End each text copy with a varying reference line ("Ref: 3fa9c1d0"), as campaigns do. */
    suffix: z.boolean().default(true),
    /** Image templates: each pixel gets uniform noise in ±pixelNoise. */
    pixelNoise: z.number().gt(0).lte(0.5).default(0.03),
    /** Source of the copies. */
    source: z.string().min(1).default("campaign"),
  })
  .superRefine(exactlyOneAmount);
export type NearDuplicateSpec = z.output<typeof nearDuplicateSpecSchema>;

export async function nearDuplicateAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: NearDuplicateSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  let template: { sample: Sample; index: number } | undefined;
  const facts = await scanFacts(input, (s, index) => {
    if (spec.template !== "random" && template === undefined && s.id === spec.template)
      template = { sample: s, index };
  });
  if (spec.template !== "random" && template === undefined) {
    throw new AntidoteError(
      "USAGE",
      `attack spec: template: no sample has id "${spec.template}" in ${facts.path}.`,
    );
  }
  const target = spec.target === undefined ? undefined : resolveClass(spec.target, facts.classes, "target");
  const rng = new Rng(spec.seed);
  const templateIndex = template?.index ?? pickTemplate(facts, spec, target, rng);
  if (((facts.content[templateIndex] ?? 0) & (HAS_TEXT | HAS_IMAGE)) === 0) {
    throw new AntidoteError(
      "USAGE",
      `attack spec: template: sample "${spec.template}" has neither text nor an image to vary.`,
    );
  }
  const copies = requestedCount(spec, facts.count);
  const slots = insertionSlots(rng, facts.count, copies);
  // Pass 2 meets the template at its own position; a copy due earlier needs it fetched first.
  if (template === undefined && (slots[0] ?? Infinity) <= templateIndex) {
    template = { sample: await sampleAt(input, templateIndex), index: templateIndex };
  }

  const poisoned: PoisonRecord[] = [];
  const seen = new Set<string>();
  let made = 0;
  const makeCopy = (): Sample => {
    if (template === undefined)
      throw new AntidoteError("INTERNAL", "near-duplicate: template not loaded in time.");
    const t = template.sample;
    seen.add(t.digest);
    const position = (slots[made] ?? 0) + made; // output position: the slot plus the copies before it
    const copy = distinctCopy(t, `${t.id}~dup${++made}`, target ?? t.label, spec, rng, seen);
    poisoned.push(poisonRecord("duplicate-added", null, copy, { template: t.id, position }));
    return copy;
  };
  const outputCount = await rewrite(
    input,
    output,
    facts,
    {
      edit(sample, index) {
        if (index === templateIndex) template ??= { sample, index };
        return sample;
      },
      insertBefore(index) {
        const due: Sample[] = [];
        while (slots[made] === index) due.push(makeCopy());
        return due;
      },
    },
    facts.count + copies,
    onProgress,
  );
  const t = template;
  const summary =
    t === undefined
      ? undefined
      : { template: t.sample.id, templateLabel: t.sample.label, templateDigest: t.sample.digest, copies };
  return groundTruth(spec, facts, outputCount, poisoned, summary === undefined ? {} : { summary });
}

/** A seeded template: a sample with text or an image, from fromSource, labeled other than target. */
function pickTemplate(facts: Facts, spec: NearDuplicateSpec, target: string | undefined, rng: Rng): number {
  const t = target === undefined ? -2 : facts.classes.indexOf(target);
  const pool = eligible(
    facts,
    spec.fromSource,
    (i) => ((facts.content[i] ?? 0) & (HAS_TEXT | HAS_IMAGE)) !== 0 && facts.label[i] !== t,
  );
  if (pool.length === 0) {
    const rule =
      target === undefined
        ? "with text or an image"
        : `with text or an image, labeled other than "${target}"`;
    throw new AntidoteError(
      "ATTACK_INFEASIBLE",
      `near-duplicate: no sample can serve as the template (0 eligible: ${describeEligibility(facts, spec.fromSource, rule)}).`,
    );
  }
  return rng.pick(pool);
}

/**
 * Where the copies go: N distinct positions among the n + N output slots, uniformly, given
 * as the input index each copy is written before (n = after the last), in order.
 */
function insertionSlots(rng: Rng, inputCount: number, copies: number): number[] {
  const outputSlots = Array.from({ length: inputCount + copies }, (_, i) => i);
  return rng.sample(outputSlots, copies).map((position, j) => position - j);
}

/** One copy that is not byte-identical to the template or to an earlier copy. */
function distinctCopy(
  template: Sample,
  id: string,
  label: string | null,
  spec: NearDuplicateSpec,
  rng: Rng,
  seen: Set<string>,
): Sample {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const copy = edited(template, {
      id,
      label,
      source: spec.source,
      annotations: [],
      ...(template.text === undefined ? {} : { text: editText(template.text, spec, rng) }),
      ...(template.image === undefined ? {} : { image: jitter(template.image, spec.pixelNoise, rng) }),
    });
    if (!seen.has(copy.digest) || attempt === MAX_ATTEMPTS - 1) {
      seen.add(copy.digest);
      return copy;
    }
  }
  throw new AntidoteError("INTERNAL", "near-duplicate: unreachable");
}
const MAX_ATTEMPTS = 20;

/** round(editRate × words) distinct words substituted, deleted or duplicated, then the suffix. */
export function editText(text: string, opts: { editRate: number; suffix: boolean }, rng: Rng): string {
  const tokens = text.split(/(\s+)/); // words at even positions, the whitespace between them at odd
  const words = tokens.flatMap((t, i) => (i % 2 === 0 && t !== "" ? [i] : []));
  const vocabulary = words.map((i) => tokens[i] ?? "");
  for (const i of rng.sample(words, Math.round(opts.editRate * words.length))) {
    const word = tokens[i] ?? "";
    const kind = rng.int(3);
    if (kind === 0) tokens[i] = substitute(word, vocabulary, rng);
    else if (kind === 1) {
      tokens[i] = "";
      if (i + 1 < tokens.length) tokens[i + 1] = "";
      else if (i > 0) tokens[i - 1] = "";
    } else tokens[i] = `${word} ${word}`;
  }
  const body = tokens.join("");
  return opts.suffix ? `${body}\n\nRef: ${rng.nextUint32().toString(16).padStart(8, "0")}` : body;
}

// Another word of the same text, so the copy's vocabulary stays the template's.
function substitute(word: string, vocabulary: readonly string[], rng: Rng): string {
  for (let attempt = 0; attempt < 8; attempt++) {
    const other = rng.pick(vocabulary);
    if (other !== word) return other;
  }
  return `${word}s`;
}

/** The image plus uniform noise in ±amount per value, clipped to [0, 1]. */
function jitter(image: ImageTensor, amount: number, rng: Rng): ImageTensor {
  const data = new Float32Array(image.data.length);
  for (let i = 0; i < data.length; i++) {
    const v = (image.data[i] ?? 0) + (rng.next() * 2 - 1) * amount;
    data[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return { ...image, data };
}

/** The sample at stream position `index` (a partial pass that stops there). */
async function sampleAt(input: Dataset, index: number): Promise<Sample> {
  let i = 0;
  for await (const s of input.samples()) {
    if (i++ === index) return s;
  }
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${input.info.path}: the dataset changed between passes (sample ${index} is gone).`,
  );
}
