// Give every sample a source (supplier, contractor, crawl) in exact proportions, so that a
// later attack with fromSource can play "one compromised supplier" on data that never
// recorded where it came from. Not an attack by itself: the ground truth lists no victims,
// only how many samples each source received.
import { z } from "zod";
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import { Rng } from "../math/rng.js";
import type { GroundTruth } from "./ground-truth.js";
import { groundTruth, rewrite, scanFacts, selectionFields, type OnProgress } from "./select.js";

const SHARE_TOLERANCE = 1e-6;

export const assignSourcesSpecSchema = z
  .strictObject({
    kind: z.literal("assign-sources"),
    seed: selectionFields.seed,
    sources: z
      .array(z.strictObject({ name: z.string().min(1), share: z.number().min(0).max(1) }))
      .min(1, "give at least one source")
      .max(65_535),
  })
  .superRefine((spec, ctx) => {
    const total = spec.sources.reduce((sum, s) => sum + s.share, 0);
    if (Math.abs(total - 1) > SHARE_TOLERANCE) {
      ctx.addIssue({ code: "custom", path: ["sources"], message: `shares sum to ${total}, not 1` });
    }
    const names = spec.sources.map((s) => s.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined)
      ctx.addIssue({ code: "custom", path: ["sources"], message: `"${dup}" is listed twice` });
  });
export type AssignSourcesSpec = z.output<typeof assignSourcesSpecSchema>;

export async function assignSourcesAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: AssignSourcesSpec,
  onProgress?: OnProgress,
): Promise<GroundTruth> {
  const facts = await scanFacts(input);
  const counts = exactCounts(
    spec.sources.map((s) => s.share),
    facts.count,
  );
  const assignment = shuffled(new Rng(spec.seed), counts);
  const names = spec.sources.map((s) => s.name);
  const outputCount = await rewrite(
    input,
    output,
    facts,
    {
      edit(sample, index) {
        const source = names[assignment[index] ?? 0] ?? null;
        return sample.source === source ? sample : { ...sample, source, metadata: { ...sample.metadata } };
      },
    },
    facts.count,
    onProgress,
  );
  const perSource = Object.fromEntries(names.map((name, k) => [name, counts[k] ?? 0]));
  return groundTruth(spec, facts, outputCount, [], { summary: { sourceCounts: perSource }, classes: false });
}

/** Whole counts summing to n, each within 1 of share × n (largest remainder, ties to the earlier source). */
export function exactCounts(shares: readonly number[], n: number): number[] {
  const total = shares.reduce((a, b) => a + b, 0); // 1 within tolerance; normalise so counts never overshoot n
  const exact = shares.map((s) => (s / total) * n);
  const counts = exact.map(Math.floor);
  let left = n - counts.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((e, k) => ({ k, r: e - Math.floor(e) }))
    .sort((a, b) => b.r - a.r || a.k - b.k);
  for (const { k } of byRemainder) {
    if (left-- <= 0) break;
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

// Source index per stream position: counts[k] copies of k, Fisher–Yates shuffled (2 bytes a sample).
function shuffled(rng: Rng, counts: readonly number[]): Uint16Array {
  const total = counts.reduce((a, b) => a + b, 0);
  const out = new Uint16Array(total);
  let at = 0;
  counts.forEach((c, k) => {
    out.fill(k, at, at + c);
    at += c;
  });
  for (let i = total - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = out[i] ?? 0;
    out[i] = out[j] ?? 0;
    out[j] = tmp;
  }
  return out;
}
