// The one entry point: validate the spec, run the attack it names, return the ground truth.
import type { Dataset, DatasetWriter } from "../data/dataset.js";
import { assignSourcesAttack } from "./assign-sources.js";
import { blendAttack } from "./blend.js";
import type { GroundTruth } from "./ground-truth.js";
import { labelFlipAttack } from "./label-flip.js";
import { maliciousAnnotatorAttack } from "./malicious-annotator.js";
import { nearDuplicateAttack } from "./near-duplicate.js";
import { patchAttack } from "./patch.js";
import type { OnProgress } from "./select.js";
import { parseAttackSpec, type AttackSpec } from "./spec.js";
import { targetedFlipAttack } from "./targeted-flip.js";
import { textTriggerAttack } from "./text-trigger.js";

export interface SimulateOptions {
  /** Called during the second pass with samples written so far and the output count. */
  onProgress?: OnProgress;
}

/**
 * Build a poisoned variant of `input` into `output` and say exactly what was done. Streams
 * the input twice (light facts, then the rewrite); deterministic given `spec.seed`. Closes
 * `output` when every sample is written. Bad specs are USAGE errors naming the field; asking
 * for more victims than the input can supply is ATTACK_INFEASIBLE.
 */
export async function simulateAttack(
  input: Dataset,
  output: DatasetWriter,
  spec: AttackSpec,
  options: SimulateOptions = {},
): Promise<GroundTruth> {
  const resolved = parseAttackSpec(spec);
  const progress = options.onProgress;
  switch (resolved.kind) {
    case "patch":
      return patchAttack(input, output, resolved, progress);
    case "blend":
      return blendAttack(input, output, resolved, progress);
    case "label-flip":
      return labelFlipAttack(input, output, resolved, progress);
    case "targeted-flip":
      return targetedFlipAttack(input, output, resolved, progress);
    case "text-trigger":
      return textTriggerAttack(input, output, resolved, progress);
    case "near-duplicate":
      return nearDuplicateAttack(input, output, resolved, progress);
    case "malicious-annotator":
      return maliciousAnnotatorAttack(input, output, resolved, progress);
    case "assign-sources":
      return assignSourcesAttack(input, output, resolved, progress);
  }
}
