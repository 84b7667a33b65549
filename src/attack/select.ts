// The plumbing every simulator shares. Pass 1 streams the input once and keeps only light
// facts per sample (label, source, which modalities, a hash of the id); victims are then
// chosen exactly with the seeded RNG; pass 2 streams the input again, rewrites the chosen
// samples and writes everything. Memory is a few bytes per sample, never the samples.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { closest } from "../data/columns.js";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import { sampleDigest, type ImageTensor, type JsonValue, type Sample } from "../data/sample.js";
import { Rng } from "../math/rng.js";
import type { GroundTruth, PoisonAction, PoisonRecord } from "./ground-truth.js";
import type { ResolvedAttackSpec } from "./spec.js";

/** Spec fields shared by the attacks that poison a chosen subset of the input. */
export const selectionFields = {
  seed: z.union([z.number().int(), z.string().min(1)]).default(0),
  /** Fraction of the whole input count; victims = round(rate × inputCount). */
  rate: z.number().gt(0).lte(1).optional(),
  count: z.number().int().positive().optional(),
  /** Only samples from this source may be victims (a compromised supplier). */
  fromSource: z.string().min(1).optional(),
};

/** A class named by its name or by its index in the class list. */
export const classRefSchema = z.union([z.string().min(1), z.number().int().nonnegative()]);
export type ClassRef = z.infer<typeof classRefSchema>;

/** Refinement: exactly one of `rate` and `count`. */
export function exactlyOneAmount(
  spec: { rate?: number | undefined; count?: number | undefined },
  ctx: z.RefinementCtx,
): void {
  if (spec.rate !== undefined && spec.count !== undefined) {
    ctx.addIssue({ code: "custom", path: ["count"], message: "give either rate or count, not both" });
  } else if (spec.rate === undefined && spec.count === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["rate"],
      message: "give rate (a fraction in (0, 1]) or count (a whole number)",
    });
  }
}

export const HAS_TEXT = 1;
export const HAS_IMAGE = 2;

/** What pass 1 learns about the input. Arrays are indexed by stream position. */
export interface Facts {
  path: string;
  count: number;
  /** info.classes, then any other labels seen, sorted numeric-aware. */
  classes: string[];
  /** Index into `classes`, or -1 for an unlabeled sample. */
  label: Int32Array;
  sources: string[];
  /** Index into `sources`, or -1 for a sample with no source. */
  source: Int32Array;
  /** HAS_TEXT | HAS_IMAGE bits. */
  content: Uint8Array;
  /** FNV-1a of the id, so pass 2 can tell that the input did not change under us. */
  idHash: Uint32Array;
}

/** Pass 1. `watch` sees every sample (e.g. to keep one template) without the facts holding it. */
export async function scanFacts(
  input: Dataset,
  watch?: (sample: Sample, index: number) => void,
): Promise<Facts> {
  const labels = new Interner();
  const sources = new Interner();
  const label = new IntColumn();
  const source = new IntColumn();
  const content = new IntColumn();
  const idHash = new IntColumn();
  let count = 0;
  for await (const s of input.samples()) {
    watch?.(s, count);
    label.push(s.label === null ? -1 : labels.intern(s.label));
    source.push(s.source === null ? -1 : sources.intern(s.source));
    content.push((s.text !== undefined ? HAS_TEXT : 0) | (s.image !== undefined ? HAS_IMAGE : 0));
    idHash.push(fnv1a(s.id));
    count++;
  }
  const classes = classList(input.info.classes ?? [], labels.values);
  const toClass = labels.values.map((l) => classes.indexOf(l));
  const seenLabel = label.toInt32();
  for (let i = 0; i < count; i++) {
    const l = seenLabel[i] ?? -1;
    if (l >= 0) seenLabel[i] = toClass[l] ?? -1;
  }
  return {
    path: input.info.path,
    count,
    classes,
    label: seenLabel,
    sources: sources.values,
    source: source.toInt32(),
    content: Uint8Array.from(content.toInt32()),
    idHash: Uint32Array.from(idHash.toInt32(), (h) => h >>> 0),
  };
}

/** The number of victims a spec asks for: `count`, or round(rate × inputCount). */
export function requestedCount(
  spec: { rate?: number | undefined; count?: number | undefined },
  inputCount: number,
): number {
  if (spec.count !== undefined) return spec.count;
  const rate = spec.rate ?? 0;
  const k = Math.round(rate * inputCount);
  if (k === 0) {
    throw new AntidoteError(
      "USAGE",
      `attack spec: rate: ${rate} of ${inputCount} samples rounds to 0 victims; give a larger rate or a count.`,
    );
  }
  return k;
}

/** Stream positions that may be victims: from `fromSource` (if given) and passing `keep`. */
export function eligible(
  facts: Facts,
  fromSource: string | undefined,
  keep: (index: number) => boolean,
): number[] {
  const src = fromSource === undefined ? undefined : facts.sources.indexOf(fromSource);
  const out: number[] = [];
  for (let i = 0; i < facts.count; i++) {
    if (src !== undefined && facts.source[i] !== src) continue;
    if (keep(i)) out.push(i);
  }
  return out;
}

/**
 * Exactly `k` victims drawn uniformly from `pool`, in stream order. Fewer candidates than
 * asked is ATTACK_INFEASIBLE, with the number that were eligible and why.
 */
export function chooseVictims(
  rng: Rng,
  pool: readonly number[],
  k: number,
  attack: string,
  eligibility: string,
): number[] {
  if (k > pool.length) {
    throw new AntidoteError(
      "ATTACK_INFEASIBLE",
      `${attack}: asked for ${k} victims but only ${pool.length} samples are eligible (${eligibility}).`,
    );
  }
  return rng.sample(pool, k);
}

/**
 * Victims of a dirty-label backdoor (patch, blend, text trigger): samples labeled other than
 * the target, carrying the content the trigger goes into. The returned RNG has drawn the
 * victims; attacks that need more randomness keep drawing from it.
 */
export async function backdoorVictims(
  input: Dataset,
  spec: {
    seed: number | string;
    target: ClassRef;
    fromSource?: string | undefined;
    rate?: number | undefined;
    count?: number | undefined;
  },
  attack: string,
  content: number,
): Promise<{ facts: Facts; target: string; rng: Rng; victims: number[] }> {
  const facts = await scanFacts(input);
  const target = resolveClass(spec.target, facts.classes, "target");
  const t = facts.classes.indexOf(target);
  const rng = new Rng(spec.seed);
  const pool = eligible(facts, spec.fromSource, (i) => (facts.label[i] ?? -1) >= 0 && facts.label[i] !== t);
  const rule = describeEligibility(facts, spec.fromSource, `labeled other than "${target}"`);
  const victims = chooseVictims(rng, pool, requestedCount(spec, facts.count), attack, rule);
  requireContent(facts, victims, content, attack);
  return { facts, target, rng, victims };
}

/** Words for an ATTACK_INFEASIBLE message: which samples could be victims. */
export function describeEligibility(facts: Facts, fromSource: string | undefined, rule: string): string {
  if (fromSource === undefined) return rule;
  const known = facts.sources.includes(fromSource) ? "" : `; no sample has source "${fromSource}"`;
  return `${rule}, from source "${fromSource}"${known}`;
}

/** Victims of a content attack must carry that content; say which one does not. */
export function requireContent(facts: Facts, victims: readonly number[], bit: number, attack: string): void {
  const what = bit === HAS_TEXT ? "text" : "an image";
  const bad = victims.find((i) => ((facts.content[i] ?? 0) & bit) === 0);
  if (bad !== undefined) {
    throw new AntidoteError(
      "USAGE",
      `${attack} needs samples with ${what}, but the sample at position ${bad} of ${facts.path} has none.`,
    );
  }
}

/** The image of a victim (requireContent has vouched for it; a changed input still fails clearly). */
export function imageOf(sample: Sample, attack: string): ImageTensor {
  if (sample.image === undefined)
    throw new AntidoteError("USAGE", `${attack} needs images, but sample "${sample.id}" has none.`);
  return sample.image;
}

export function textOf(sample: Sample, attack: string): string {
  if (sample.text === undefined)
    throw new AntidoteError("USAGE", `${attack} needs text, but sample "${sample.id}" has none.`);
  return sample.text;
}

/**
 * Resolve a class reference against the class list: a name wins; otherwise an integer
 * (or a string of digits) is an index. Unknown names get a "did you mean".
 */
export function resolveClass(ref: ClassRef, classes: readonly string[], field: string): string {
  if (typeof ref === "string" && classes.includes(ref)) return ref;
  const index = typeof ref === "number" ? ref : /^\d+$/.test(ref) ? Number(ref) : undefined;
  if (index !== undefined) {
    const name = classes[index];
    if (name !== undefined) return name;
    throw new AntidoteError(
      "USAGE",
      `attack spec: ${field}: class index ${index} is out of range; the dataset has ${classes.length} classes (${listClasses(classes)}).`,
    );
  }
  const guess = closest(String(ref), classes);
  const hint = guess === undefined ? "" : ` Did you mean "${guess}"?`;
  throw new AntidoteError(
    "USAGE",
    `attack spec: ${field}: unknown class "${String(ref)}".${hint} Classes: ${listClasses(classes)}.`,
  );
}

export interface RewritePlan {
  /** The sample to write for input sample `index`: the same object when untouched. */
  edit(sample: Sample, index: number): Sample;
  /** Samples to write just before input sample `index`; `index === count` means after the last. */
  insertBefore?(index: number): readonly Sample[];
}

export type OnProgress = (done: number, total: number) => void;

/**
 * Pass 2: stream the input, write each sample as `plan` says, close the writer. Returns the
 * number of samples the writer reports. Fails if the input differs from what pass 1 saw.
 */
export async function rewrite(
  input: Dataset,
  output: DatasetWriter,
  facts: Facts,
  plan: RewritePlan,
  total: number,
  onProgress?: OnProgress,
): Promise<number> {
  let index = 0;
  let written = 0;
  const put = async (s: Sample): Promise<void> => {
    await output.write(s);
    written++;
    if (onProgress !== undefined && (written % PROGRESS_EVERY === 0 || written === total))
      onProgress(written, total);
  };
  for await (const s of input.samples()) {
    if (index >= facts.count || fnv1a(s.id) !== facts.idHash[index]) throw changedUnderUs(facts, index);
    for (const extra of plan.insertBefore?.(index) ?? []) await put(extra);
    await put(plan.edit(s, index));
    index++;
  }
  if (index !== facts.count) throw changedUnderUs(facts, index);
  for (const extra of plan.insertBefore?.(index) ?? []) await put(extra);
  const closed = await output.close();
  if (closed !== written) {
    throw new AntidoteError(
      "INTERNAL",
      `the writer reports ${closed} samples but the simulator wrote ${written}.`,
    );
  }
  return written;
}

/** What a transform made of one victim. */
export interface Poisoned {
  sample: Sample;
  details?: Record<string, JsonValue>;
}

/** Pass 2 for the attacks that rewrite chosen samples in place (output count = input count). */
export async function rewriteVictims(
  input: Dataset,
  output: DatasetWriter,
  facts: Facts,
  victims: readonly number[],
  action: PoisonAction,
  transform: (sample: Sample) => Poisoned,
  onProgress?: OnProgress,
): Promise<{ outputCount: number; poisoned: PoisonRecord[] }> {
  const chosen = new Set(victims);
  const poisoned: PoisonRecord[] = [];
  const plan: RewritePlan = {
    edit(sample, index) {
      if (!chosen.has(index)) return sample;
      const { sample: after, details } = transform(sample);
      poisoned.push(poisonRecord(action, sample, after, details));
      return after;
    },
  };
  const outputCount = await rewrite(input, output, facts, plan, facts.count, onProgress);
  return { outputCount, poisoned };
}

/** A new sample with changed content and/or label, its digest recomputed; `sample` is untouched. */
export function edited(
  sample: Sample,
  changes: Partial<Pick<Sample, "text" | "image" | "label" | "source" | "annotations" | "id">>,
): Sample {
  const next: Sample = {
    ...sample,
    annotations: sample.annotations.map((a) => ({ ...a })),
    metadata: { ...sample.metadata },
    ...changes,
  };
  next.digest = sampleDigest(next);
  return next;
}

/** A copy with another label; the content, and so the digest, is unchanged. */
export function relabeled(sample: Sample, label: string): Sample {
  return {
    ...sample,
    label,
    annotations: sample.annotations.map((a) => ({ ...a })),
    metadata: { ...sample.metadata },
  };
}

export function groundTruth(
  params: ResolvedAttackSpec,
  facts: Facts,
  outputCount: number,
  poisoned: PoisonRecord[],
  extra: { summary?: Record<string, JsonValue>; classes?: boolean } = {},
): GroundTruth {
  return {
    attack: params.kind,
    params,
    inputCount: facts.count,
    outputCount,
    poisonedCount: poisoned.length,
    poisoned,
    ...(extra.classes === false ? {} : { classes: facts.classes }),
    ...(extra.summary === undefined ? {} : { summary: extra.summary }),
  };
}

/** The ground-truth line for one poisoned sample; `before` is null for a sample the attack added. */
export function poisonRecord(
  action: PoisonAction,
  before: Sample | null,
  after: Sample,
  details?: Record<string, JsonValue>,
): PoisonRecord {
  return {
    id: after.id,
    action,
    originalLabel: before === null ? null : before.label,
    label: after.label,
    ...(before === null ? {} : { originalDigest: before.digest }),
    digest: after.digest,
    source: after.source,
    ...(details === undefined ? {} : { details }),
  };
}

/** A class other than `current`, uniformly. */
export function otherClass(rng: Rng, classes: readonly string[], current: string | null): string {
  const others = classes.filter((c) => c !== current);
  return rng.pick(others);
}

/** Label-changing attacks need somewhere to send a label. */
export function requireClasses(classes: readonly string[], attack: string, atLeast = 2): void {
  if (classes.length < atLeast) {
    throw new AntidoteError(
      "ATTACK_INFEASIBLE",
      `${attack} needs at least ${atLeast} classes, but the dataset has ${classes.length} (${listClasses(classes)}).`,
    );
  }
}

const PROGRESS_EVERY = 256;

function changedUnderUs(facts: Facts, index: number): AntidoteError {
  return new AntidoteError(
    "INPUT_FORMAT",
    `${facts.path}: the dataset changed between the simulator's two passes (first difference at sample ${index}); ` +
      `a simulator needs an input that streams the same samples each time.`,
  );
}

function listClasses(classes: readonly string[]): string {
  if (classes.length === 0) return "none";
  const shown = classes
    .slice(0, 20)
    .map((c) => `"${c}"`)
    .join(", ");
  return classes.length > 20 ? `${shown}, … ${classes.length - 20} more` : shown;
}

/** info.classes in their order, then labels it does not list, sorted numeric-aware ("2" < "10"). */
export function classList(declared: readonly string[], seen: readonly string[]): string[] {
  const extra = seen.filter((l) => !declared.includes(l)).sort(numericAware);
  return [...declared, ...extra];
}

function numericAware(a: string, b: string): number {
  const na = NUMERIC.test(a) ? Number(a) : undefined;
  const nb = NUMERIC.test(b) ? Number(b) : undefined;
  if (na !== undefined && nb !== undefined) return na - nb || (a < b ? -1 : a > b ? 1 : 0);
  if (na !== undefined) return -1;
  if (nb !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
const NUMERIC = /^-?\d+(\.\d+)?$/;

// FNV-1a 32-bit over UTF-16 code units.
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

class Interner {
  readonly values: string[] = [];
  private readonly index = new Map<string, number>();
  intern(v: string): number {
    let i = this.index.get(v);
    if (i === undefined) {
      i = this.values.length;
      this.values.push(v);
      this.index.set(v, i);
    }
    return i;
  }
}

// A growable Int32 column, so pass 1 costs 4 bytes per sample per fact, not a JS array slot.
class IntColumn {
  private data = new Int32Array(1024);
  private length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Int32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }
  toInt32(): Int32Array {
    return this.data.slice(0, this.length);
  }
}
