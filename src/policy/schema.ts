// The curation policy's shape: one versioned document (`apiVersion: antidote.dev/policy/v1`)
// stating, per source kind or named source, what a source's data must satisfy. Every object is
// strict — a misspelt key ("minReputaton") is refused, never silently ignored, because an
// ignored rule is a control that looks present and is not. Contradictions that the types
// cannot express are refused here too (see `contradictions`), with the path of the entry at
// fault so the loader can point at its line.
//
// Precedence, field by field: a rule under `sources` that names the source exactly, else the
// rules under `sources` whose `*` patterns match it (they must agree on every field they both
// set: see evaluate.ts `ruleFor`), else `kinds.<its kind>`, else `defaults`.
import { z } from "zod";
import { SOURCE_KINDS, type SourceKind } from "../ledger/types.js";

export const POLICY_API_VERSION = "antidote.dev/policy/v1";

const token = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/, "expected a name (letters, digits, . _ : @ / -)");

const autoQuarantineSchema = z.strictObject({
  /** Finding kinds ("poisoning-risk", "spectral-signature" …) this entry acts on. */
  findings: z.array(token).min(1, "must name at least one finding kind"),
  /** A finding scored at or above this quarantines its subject. */
  minScore: z.number(),
  /** What is quarantined: the flagged sample (default) or the source it came from. */
  target: z.enum(["sample", "source"]).default("sample"),
});

export const ruleSchema = z.strictObject({
  /** Deliveries must carry a valid signature (tightens, never loosens, the source's own setting). */
  requireSignature: z.boolean().optional(),
  /** Deliveries (and an agent's telemetry, at the gate) are refused below this reputation. */
  minReputation: z.number().min(0, "must be at least 0").max(1, "must be at most 1").optional(),
  /** A delivery whose flagged share exceeds this is quarantined as a whole. */
  maxFlagRate: z.number().min(0, "must be at least 0").max(1, "must be at most 1").optional(),
  /** Detectors that must have run on a version holding this source's samples before it is
   * exported or a model trained on it is registered. */
  requiredScans: z.array(token).optional(),
  /** Findings that quarantine their subject when recorded. */
  autoQuarantine: z.array(autoQuarantineSchema).optional(),
  /** Transform kinds ("export", "dedup" …) allowed on versions holding this source's samples. */
  allowedTransforms: z.array(token).optional(),
});

const kindsSchema = z.strictObject(
  Object.fromEntries(SOURCE_KINDS.map((k) => [k, ruleSchema.optional()])) as Record<
    SourceKind,
    z.ZodOptional<typeof ruleSchema>
  >,
);

export const policySchema = z
  .strictObject({
    apiVersion: z.literal(POLICY_API_VERSION, { error: `expected "${POLICY_API_VERSION}"` }),
    name: token,
    version: z.union([token, z.number().int().min(0)]).transform(String),
    description: z.string().max(2000).optional(),
    defaults: ruleSchema.optional(),
    kinds: kindsSchema.optional(),
    /** By source name; `*` matches any run of characters. */
    sources: z
      .record(
        z
          .string()
          .regex(/^[A-Za-z0-9*][A-Za-z0-9._:@*-]{0,199}$/, "expected a source name or a pattern with *"),
        ruleSchema,
      )
      .optional(),
  })
  .superRefine((policy, ctx) => {
    for (const { path, message } of contradictions(policy)) ctx.addIssue({ code: "custom", path, message });
  });

export type Rule = z.output<typeof ruleSchema>;
export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;
export type AutoQuarantine = z.output<typeof autoQuarantineSchema>;
export type RuleField = keyof Rule;

/**
 * What no rule may say, beyond its types:
 *  - the same detector or transform listed twice in one list;
 *  - the same finding kind in two autoQuarantine entries of one rule with a different minScore
 *    or target (which one holds would depend on order);
 *  - a rule that names a source exactly and is also the pattern "*" with other values is fine
 *    (the exact name wins); two patterns matching one registered source with different values
 *    for one field are refused where sources are known (evaluate.ts `ruleFor`).
 */
function contradictions(
  policy: Omit<Policy, "version"> & { version: unknown },
): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const rules: [(string | number)[], Rule][] = [];
  if (policy.defaults !== undefined) rules.push([["defaults"], policy.defaults]);
  for (const [k, r] of Object.entries(policy.kinds ?? {})) if (r !== undefined) rules.push([["kinds", k], r]);
  for (const [k, r] of Object.entries(policy.sources ?? {})) rules.push([["sources", k], r]);
  for (const [at, rule] of rules) {
    for (const field of ["requiredScans", "allowedTransforms"] as const)
      rule[field]?.forEach((v, i, all) => {
        if (all.indexOf(v) !== i) out.push({ path: [...at, field, i], message: `"${v}" is listed twice` });
      });
    const seen = new Map<string, { j: number; entry: AutoQuarantine }>();
    rule.autoQuarantine?.forEach((entry, j) =>
      entry.findings.forEach((kind, i) => {
        const before = seen.get(kind);
        if (before === undefined) seen.set(kind, { j, entry });
        else if (before.entry.minScore !== entry.minScore || before.entry.target !== entry.target)
          out.push({
            path: [...at, "autoQuarantine", j, "findings", i],
            message: `finding kind "${kind}" is already in autoQuarantine[${before.j}] with ${before.entry.target === entry.target ? `minScore ${before.entry.minScore}` : `target ${before.entry.target}`}: contradictory rules`,
          });
      }),
    );
  }
  return out;
}
