// One schema for every attack spec: the library, the CLI and ground-truth files share it.
// Parsing fills the defaults, so a parsed spec (stored in the ground truth) reproduces a run.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { assignSourcesSpecSchema } from "./assign-sources.js";
import { blendSpecSchema } from "./blend.js";
import { labelFlipSpecSchema } from "./label-flip.js";
import { maliciousAnnotatorSpecSchema } from "./malicious-annotator.js";
import { nearDuplicateSpecSchema } from "./near-duplicate.js";
import { patchSpecSchema } from "./patch.js";
import { targetedFlipSpecSchema } from "./targeted-flip.js";
import { textTriggerSpecSchema } from "./text-trigger.js";

export const attackSpecSchema = z.discriminatedUnion("kind", [
  patchSpecSchema,
  blendSpecSchema,
  labelFlipSpecSchema,
  targetedFlipSpecSchema,
  textTriggerSpecSchema,
  nearDuplicateSpecSchema,
  maliciousAnnotatorSpecSchema,
  assignSourcesSpecSchema,
]);

/** A spec as a caller writes it (defaults may be left out). */
export type AttackSpec = z.input<typeof attackSpecSchema>;
/** A spec with every default filled in. */
export type ResolvedAttackSpec = z.output<typeof attackSpecSchema>;
export type AttackKind = ResolvedAttackSpec["kind"];

export const ATTACK_KINDS = [
  "patch",
  "blend",
  "label-flip",
  "targeted-flip",
  "text-trigger",
  "near-duplicate",
  "malicious-annotator",
  "assign-sources",
] as const satisfies readonly AttackKind[];

/** Validate a spec from a user (config file, CLI flags, HTTP body); USAGE names each bad field. */
export function parseAttackSpec(spec: unknown): ResolvedAttackSpec {
  const parsed = attackSpecSchema.safeParse(spec);
  if (!parsed.success)
    throw new AntidoteError("USAGE", `attack spec: ${describeIssues(parsed.error.issues)}`);
  return parsed.data;
}

/** "rate: Too small: expected number to be >0; count: …" — each issue led by the field it is about. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const shown = issues.slice(0, MAX_ISSUES).map((issue) => `${fieldPath(issue.path)}: ${issue.message}`);
  const more = issues.length > MAX_ISSUES ? `; and ${issues.length - MAX_ISSUES} more` : "";
  return `${shown.join("; ")}${more}`;
}

const MAX_ISSUES = 5;

// ["poisoned", 3, "digest"] → "poisoned[3].digest".
function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(top level)";
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join("");
}
