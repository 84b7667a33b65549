// Attack simulators: poisoned variants of real datasets with exact ground truth, so that
// detectors can be scored with precision and recall.
export { simulateAttack, type SimulateOptions } from "./simulate.js";
export {
  attackSpecSchema,
  parseAttackSpec,
  ATTACK_KINDS,
  type AttackSpec,
  type AttackKind,
  type ResolvedAttackSpec,
} from "./spec.js";
export {
  checkGroundTruthOutput,
  readGroundTruth,
  writeGroundTruth,
  type GroundTruth,
  type PoisonAction,
  type PoisonRecord,
} from "./ground-truth.js";
export {
  blendPattern,
  patchValue,
  type BlendPatternKind,
  type PatchPosition,
  type PatchPattern,
} from "./patterns.js";
export { insertTrigger } from "./text-trigger.js";
export { editText } from "./near-duplicate.js";
export { annotatorNames } from "./malicious-annotator.js";
export { exactCounts } from "./assign-sources.js";
export type { PatchSpec } from "./patch.js";
export type { BlendSpec } from "./blend.js";
export type { LabelFlipSpec } from "./label-flip.js";
export type { TargetedFlipSpec } from "./targeted-flip.js";
export type { TextTriggerSpec } from "./text-trigger.js";
export type { NearDuplicateSpec } from "./near-duplicate.js";
export type { MaliciousAnnotatorSpec } from "./malicious-annotator.js";
export type { AssignSourcesSpec } from "./assign-sources.js";
