// The independent check every simulator test relies on: compare input and output sample by
// sample and hold the ground truth to what actually changed.
import { expect } from "vitest";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { sampleDigest, type DatasetInfo, type Sample } from "../../src/data/sample.js";
import { simulateAttack, type AttackSpec, type GroundTruth } from "../../src/attack/index.js";

export async function attack(
  input: readonly Sample[],
  spec: AttackSpec,
  info: Partial<DatasetInfo> = {},
): Promise<{ out: Sample[]; gt: GroundTruth }> {
  const writer = new MemoryWriter();
  const gt = await simulateAttack(memoryDataset(input, info), writer, spec);
  return { out: writer.samples, gt };
}

/** Positions whose content, label, source or annotations differ between input and output. */
export function changedPositions(input: readonly Sample[], out: readonly Sample[]): number[] {
  const changed: number[] = [];
  input.forEach((before, i) => {
    const after = out[i];
    if (after === undefined) throw new Error(`output is missing position ${i}`);
    if (
      before.digest !== after.digest ||
      before.label !== after.label ||
      before.source !== after.source ||
      JSON.stringify(before.annotations) !== JSON.stringify(after.annotations)
    )
      changed.push(i);
  });
  return changed;
}

/**
 * For attacks that rewrite samples in place: same ids in the same order; untouched samples
 * identical (content re-hashed, label, source); the changed set is exactly the ground
 * truth's; each record matches the output; `requested` victims.
 */
export function expectTruthful(
  input: readonly Sample[],
  out: readonly Sample[],
  gt: GroundTruth,
  requested: number,
): void {
  expect(gt.inputCount).toBe(input.length);
  expect(gt.outputCount).toBe(out.length);
  expect(out.length).toBe(input.length);
  expect(out.map((s) => s.id)).toEqual(input.map((s) => s.id));
  expect(gt.poisonedCount).toBe(requested);
  expect(gt.poisoned).toHaveLength(requested);

  const changed = changedPositions(input, out);
  const changedIds = changed.map((i) => input[i]?.id);
  expect(new Set(gt.poisoned.map((r) => r.id))).toEqual(new Set(changedIds));
  expect(changed).toHaveLength(requested);

  const at = new Map(input.map((s, i) => [s.id, i]));
  for (const r of gt.poisoned) {
    const i = at.get(r.id) ?? -1;
    const before = input[i];
    const after = out[i];
    if (before === undefined || after === undefined) throw new Error(`no sample ${r.id}`);
    expect(r.label).toBe(after.label);
    expect(r.digest).toBe(after.digest);
    expect(r.originalLabel).toBe(before.label);
    expect(r.originalDigest).toBe(before.digest);
    expect(sampleDigest(after)).toBe(after.digest); // the digest is the content's, not a stale one
  }
  const poisoned = new Set(gt.poisoned.map((r) => r.id));
  input.forEach((before, i) => {
    if (poisoned.has(before.id)) return;
    const after = out[i] as Sample;
    expect(sampleDigest(after)).toBe(before.digest);
    expect(after.label).toBe(before.label);
  });
}

/** Input positions of the ground truth's victims. */
export function victimPositions(input: readonly Sample[], gt: GroundTruth): number[] {
  const at = new Map(input.map((s, i) => [s.id, i]));
  return gt.poisoned.map((r) => at.get(r.id) ?? -1);
}

/** A copy of the samples with `source` set by position. */
export function withSources(samples: readonly Sample[], sourceOf: (i: number) => string): Sample[] {
  return samples.map((s, i) => ({ ...s, source: sourceOf(i) }));
}

export async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { code: err.code ?? "(none)", message: err.message ?? "" };
  }
  throw new Error("expected the promise to reject");
}
