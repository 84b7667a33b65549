// The API's request and response shapes, as zod schemas: Hono validates requests against
// them and the OpenAPI 3.1 document (/openapi.json) is generated from them. Where the
// library already has a schema (ledger/schemas.ts: digests, transforms, sample records,
// findings) it is reused; the records below mirror the contract types in ledger/types.ts
// and jobs/types.ts, and `satisfies` checks keep each in step with its type.
import { z } from "zod";
import "@hono/zod-openapi"; // adds .openapi() to zod schemas
import { principalSchema } from "../auth/tokens.js";
import { findingSchema, hexDigest, sampleRecordSchema, transformSchema } from "../ledger/schemas.js";
import { SOURCE_KINDS } from "../ledger/types.js";
import { JOB_STATES } from "../jobs/types.js";
import { errorBodySchema } from "./errors.js";

export const errorSchema = errorBodySchema.openapi("Error");
// Free-form JSON fields (a transform's parameters, a finding's evidence) are described as
// objects of any values: the library's `z.json()` is exact for validating what is appended,
// but its inferred type and Hono's JSON response type do not unify.
const anyJsonObject = z.record(z.string(), z.unknown());
const name = z.string().min(1, "must not be empty");
const iso = z.string();

// ── records ────────────────────────────────────────────────────────────────────────────
export const sourceSchema = z
  .object({
    name: z.string(),
    kind: z.enum(SOURCE_KINDS),
    trust: z.number(),
    requireSignature: z.boolean(),
    keys: z.array(
      z.object({ keyId: z.string(), publicKeyPem: z.string(), addedAt: iso, revokedAt: iso.nullable() }),
    ),
    addedAt: iso,
  })
  .openapi("Source");

export const deliverySchema = z
  .object({
    deliveryId: z.string(),
    source: z.string(),
    manifestDigest: z.string(),
    merkleRoot: z.string(),
    keyId: z.string().nullable(),
    sampleCount: z.number(),
    datasetVersion: z.string(),
    store: z.string().nullable(),
    at: iso,
  })
  .openapi("Delivery");

export const deliveryRefusalSchema = z
  .object({
    id: z.number().int(),
    at: iso,
    source: z.string().describe("The source the upload claimed to be from"),
    principal: z.string().describe("Who sent it (the token's principal)"),
    code: z.string().describe("The error code the client got"),
    message: z.string().describe("Why, as the client was told it"),
  })
  .openapi("DeliveryRefusal");

export const ingestResultSchema = z
  .object({
    deliveryId: z.string(),
    datasetVersion: z.string(),
    source: z.string(),
    keyId: z.string().nullable(),
    sampleCount: z.number(),
    files: z.number(),
    merkleRoot: z.string(),
    alreadyIngested: z.boolean(),
  })
  .openapi("IngestResult");

export const datasetVersionSchema = z
  .object({
    version: z.string(),
    name: z.string(),
    merkleRoot: z.string(),
    parent: z.string().nullable(),
    transform: transformSchema.extend({ parameters: anyJsonObject }),
    sampleCount: z.number(),
    createdAt: iso,
  })
  .openapi("DatasetVersion");

export const memberSchema = sampleRecordSchema
  .extend({ source: z.string().nullable(), quarantined: z.boolean() })
  .openapi("Member");

export const findingRecordSchema = findingSchema
  .extend({ evidence: anyJsonObject, seq: z.number() })
  .openapi("Finding");

export const modelSchema = z
  .object({
    digest: z.string(),
    name: z.string(),
    trainedOn: z.array(z.string()),
    baseModel: z.string().nullable(),
    format: z.string(),
    registeredAt: iso,
  })
  .openapi("Model");

const lineageEntry = modelSchema.extend({ status: z.enum(["active", "suspended"]), depth: z.number().int() });

export const modelLineageSchema = z
  .object({
    model: lineageEntry,
    ancestors: z.array(lineageEntry),
    unregisteredBase: z.string().nullable(),
    descendants: z.array(lineageEntry.extend({ base: z.string() })),
    findings: z.array(
      z.looseObject({ seq: z.number().int(), subjectId: z.string(), kind: z.string(), score: z.number() }),
    ),
  })
  .openapi("ModelLineage");

export const modelReputationSchema = z
  .object({
    digest: z.string(),
    verdict: z.enum(["trusted", "distrusted"]),
    reason: z.string(),
    publisher: z.string().nullable(),
    seq: z.number().int(),
    at: iso,
    actor: z.string(),
  })
  .openapi("ModelReputation");

export const modelReputationBody = z
  .object({
    verdict: z.enum(["trusted", "distrusted"]),
    reason: z.string().min(1, "say why (it is recorded in the ledger)").max(2_000),
  })
  .strict()
  .openapi("ModelReputationInput");

export const apiTokenSchema = z
  .object({
    tokenId: z.string(),
    principal: z.string(),
    role: z.enum(["admin", "analyst", "supplier", "agent", "reader"]),
    source: z.string().nullable(),
    expiresAt: iso.nullable(),
    createdAt: iso,
    revokedAt: iso.nullable(),
  })
  .openapi("ApiToken");

export const jobSchema = z
  .object({
    jobId: z.string(),
    kind: z.string(),
    parameters: z.record(z.string(), z.unknown()),
    state: z.enum(JOB_STATES),
    principal: z.string(),
    progress: z.object({ stage: z.string(), done: z.number(), total: z.number() }).nullable(),
    result: z.unknown(),
    error: z.string().nullable(),
    attempts: z.number(),
    artifacts: z.array(z.string()),
    createdAt: iso,
    updatedAt: iso,
  })
  .openapi("Job");

// Ledger reports are passed through as the library computes them; their fields are
// documented on VerifyReport, SignedTreeHead, SourceTrace and SampleTrace in ledger/types.ts.
export const verifyReportSchema = z
  .looseObject({
    ok: z.boolean(),
    events: z.number(),
    checkpoints: z.number(),
    root: z.string().optional(),
    firstBad: z.object({ seq: z.number(), reason: z.string() }).optional(),
    tableMismatches: z.array(z.string()),
    localWitness: z.enum(["ok", "absent", "unreadable"]),
  })
  .openapi("VerifyReport");

export const signedHeadSchema = z
  .object({
    format: z.literal("antidote-ledger-head/v1"),
    seq: z.number(),
    hash: z.string(),
    at: iso,
    root: z.string(),
    keyId: z.string(),
    signature: z.string(),
    publicKeyPem: z.string(),
    ledger: z.string(),
  })
  .openapi("SignedTreeHead");

export const sourceTraceSchema = z
  .looseObject({ source: sourceSchema, sampleCount: z.number() })
  .openapi("SourceTrace");
export const sampleTraceSchema = z
  .looseObject({ sample: sampleRecordSchema, quarantined: z.boolean() })
  .openapi("SampleTrace");
export const bomSchema = z.record(z.string(), z.unknown()).openapi("CycloneDxBom", {
  description: "A CycloneDX 1.6 JSON document, validated against the 1.6 schema before it is sent.",
});

// ── requests ───────────────────────────────────────────────────────────────────────────
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().min(1).max(512).optional(),
});

export function pageOf<T extends z.ZodType>(item: T, title: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(title);
}

export const addSourceBody = z
  .object({
    name: name.max(200),
    kind: z.enum(SOURCE_KINDS),
    trust: z.number().min(0).max(1).optional(),
    requireSignature: z.boolean().optional(),
    keys: z
      .array(z.string().max(10_000))
      .max(64)
      .default([])
      .openapi({ description: "Ed25519 public keys (PEM)" }),
  })
  .openapi("AddSource");

export const addKeyBody = z.object({ publicKeyPem: z.string().min(1).max(10_000) }).openapi("AddKey");
export const reasonBody = z.object({ reason: z.string().min(1).max(2_000) }).openapi("Reason");

export const decisionBody = z
  .object({
    action: z.enum(["quarantine", "release"]),
    sources: z.array(name).max(1_000).optional(),
    samples: z.array(name).max(100_000).optional(),
    findingsOver: z.number().optional(),
    reason: z.string().min(1).max(2_000),
  })
  .openapi("Decision");

export const decisionResultSchema = z
  .object({
    action: z.enum(["quarantine", "release"]),
    sources: z.array(z.string()),
    samples: z.number(),
    actor: z.string(),
    reason: z.string(),
  })
  .openapi("DecisionResult");

export const registerModelBody = z
  .object({
    digest: hexDigest,
    name: name.max(500),
    trainedOn: z.array(name).max(1_000),
    baseModel: z
      .string()
      .regex(/^[0-9a-f]{8,64}$/, "a model digest (hex; a unique prefix will do)")
      .optional(),
    format: name.max(50).optional(),
    /** Refuse unless the base is on the trusted list (the foundation-model reputation list). */
    requireTrustedBase: z.boolean().optional(),
  })
  .openapi("RegisterModel");

export const createTokenBody = z
  .object({
    principal: principalSchema,
    role: z
      .string()
      .regex(
        /^(admin|analyst|reader|(supplier|agent):.+)$/,
        "admin, analyst, reader, supplier:<source> or agent:<source>",
      ),
    expires: z.string().max(64).optional().openapi({ description: "30d, 12h, 90m or an ISO-8601 time" }),
  })
  .openapi("CreateToken");

export const createdTokenSchema = apiTokenSchema
  .extend({ token: z.string().openapi({ description: "The secret token: shown once, never again." }) })
  .openapi("CreatedToken");

export const submitJobBody = z
  .object({ kind: name.max(100), parameters: z.record(z.string(), z.unknown()).default({}) })
  .openapi("SubmitJob");
