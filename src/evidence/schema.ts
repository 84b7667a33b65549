// The evidence pack's JSON (evidence.json), as one zod schema: what `buildEvidencePack` returns,
// what `writeEvidencePack` validates before writing, and what `verifyEvidencePack` parses back
// before believing anything in it. Documented field by field in docs/evidence.md.
import { z } from "zod";

export const EVIDENCE_FORMAT = "antidote-evidence/v1";

/** The nine controls, in the order the pack lists them. */
export const CONTROL_IDS = [
  "provenance",
  "curation",
  "supplier-security",
  "anomaly-detection",
  "robust-training",
  "backdoor-detection",
  "adversarial-validation",
  "foundation-model-audit",
  "continuous-monitoring",
] as const;
export type ControlId = (typeof CONTROL_IDS)[number];

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "is not a hex SHA-256");

/** A ledger event a claim rests on: its place in the chain and its hash. */
export const eventLinkSchema = z.object({ seq: z.number().int().min(1), hash: hex64 }).strict();
export type EventLink = z.infer<typeof eventLinkSchema>;

export const claimSchema = z
  .object({
    /** What was done, in one sentence. */
    statement: z.string().min(1),
    /** The outcome (counts, scores, verdicts). */
    result: z.string(),
    /** Earliest and latest time of the events behind it (the ledger's clock). */
    from: z.string().nullable(),
    to: z.string().nullable(),
    /** The event actors (users, API token principals, `policy:<name>@<digest>`). */
    by: z.array(z.string()),
    /** The events that prove it; empty only for operational records kept outside the log. */
    events: z.array(eventLinkSchema),
    /** Set when the claim rests on a record outside the hash-chained log (refusals). */
    outsideLog: z.string().optional(),
  })
  .strict();
export type Claim = z.infer<typeof claimSchema>;

export const controlStatusSchema = z.enum(["done", "partial", "gap", "not-applicable"]);
export type ControlStatus = z.infer<typeof controlStatusSchema>;

export const controlSchema = z
  .object({
    id: z.enum(CONTROL_IDS),
    title: z.string(),
    status: controlStatusSchema,
    claims: z.array(claimSchema),
    /** What was not done (or not recorded), each stated on its own. */
    gaps: z.array(z.string()),
    /** Why the control does not apply, when status is "not-applicable". */
    notApplicable: z.string().optional(),
  })
  .strict();
export type ControlAssessment = z.infer<typeof controlSchema>;

export const checkpointSchema = z
  .object({
    seq: z.number().int().min(1),
    hash: hex64,
    root: hex64,
    at: z.string(),
    keyId: hex64,
    signature: z.string().min(1),
    publicKeyPem: z.string().min(1),
  })
  .strict();
export type PackCheckpoint = z.infer<typeof checkpointSchema>;

const subjectSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("model"),
      digest: hex64,
      name: z.string(),
      format: z.string(),
      baseModel: z.string().nullable(),
      trainedOn: z.array(z.string()),
      registeredAt: z.string(),
      event: eventLinkSchema,
    })
    .strict(),
  z
    .object({
      type: z.literal("dataset"),
      version: z.string(),
      name: z.string(),
      sampleCount: z.number().int().min(0),
      event: eventLinkSchema,
    })
    .strict(),
]);
export type PackSubject = z.infer<typeof subjectSchema>;

export const evidencePackSchema = z
  .object({
    format: z.literal(EVIDENCE_FORMAT),
    /** When the pack was built (not covered by the same-ledger-same-pack rule). */
    generatedAt: z.string(),
    tool: z.object({ name: z.literal("antidote"), version: z.string() }).strict(),
    subject: subjectSchema,
    /** The signed ledger head the pack was built from: every linked event is at or before it. */
    checkpoint: checkpointSchema,
    lineage: z
      .object({
        versions: z.array(
          z
            .object({
              version: z.string(),
              name: z.string(),
              parent: z.string().nullable(),
              sampleCount: z.number().int().min(0),
              event: eventLinkSchema,
            })
            .strict(),
        ),
        samples: z.number().int().min(0),
        sources: z.array(
          z
            .object({
              name: z.string(),
              kind: z.string(),
              trust: z.number(),
              requireSignature: z.boolean(),
              samples: z.number().int().min(0),
              event: eventLinkSchema,
            })
            .strict(),
        ),
        deliveries: z.number().int().min(0),
        baseModels: z.array(z.string()),
      })
      .strict(),
    controls: z.array(controlSchema).length(CONTROL_IDS.length),
  })
  .strict();
export type EvidencePack = z.infer<typeof evidencePackSchema>;

/** Every event link in the pack, in order of appearance. */
export function allEventLinks(pack: EvidencePack): EventLink[] {
  return [
    pack.subject.event,
    ...pack.lineage.versions.map((v) => v.event),
    ...pack.lineage.sources.map((s) => s.event),
    ...pack.controls.flatMap((c) => c.claims.flatMap((cl) => cl.events)),
  ];
}
