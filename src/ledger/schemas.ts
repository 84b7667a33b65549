// zod schemas for the events of the log, mirroring `LedgerEventInput` in types.ts. Every
// payload is checked here before anything is written, so the log only ever holds events
// the projections and every later reader understand. Unknown fields are dropped: the
// stored (and hashed) payload is exactly what these schemas describe.
import { createPublicKey } from "node:crypto";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { SOURCE_KINDS, type LedgerEventInput } from "./types.js";

const HEX64 = /^[0-9a-f]{64}$/;
/** An agent's name as telemetry may carry it (monitor/schema.ts): no path separators, no "..". */
const AGENT = "[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}";
const BATCH_ID = new RegExp(`^${AGENT}#(0|[1-9][0-9]{0,15})$`);

export const hexDigest = z.string().regex(HEX64, "expected 64 lowercase hex characters (a SHA-256)");
const name = z.string().min(1, "must not be empty");
const json = z.record(z.string(), z.json());

export const ed25519PublicKeyPem = z.string().refine(isEd25519PublicKeyPem, {
  message: "expected an Ed25519 public key in PEM (SPKI) form",
});

function isEd25519PublicKeyPem(pem: string): boolean {
  try {
    return createPublicKey(pem).asymmetricKeyType === "ed25519";
  } catch {
    return false;
  }
}

export const transformSchema = z.object({
  kind: name,
  tool: name,
  toolVersion: z.string(),
  parameters: json,
  inputDigests: z.array(name),
  outputDigests: z.array(name),
});

export const sampleRecordSchema = z.object({
  id: name,
  digest: hexDigest,
  label: z.string().nullable(),
  annotations: z.array(z.object({ annotator: name, label: z.string() })),
});

export const findingSchema = z.object({
  subjectType: z.enum([
    "sample",
    "source",
    "annotator",
    "model",
    "client",
    "delivery",
    "dataset",
    "telemetry-batch",
  ]),
  subjectId: name,
  kind: name,
  score: z.number(),
  evidence: json,
  check: name,
  checkVersion: z.string(),
});

export const decisionSchema = z
  .object({
    action: z.enum(["quarantine", "release"]),
    subjectType: z.enum(["sample", "source", "telemetry-batch"]),
    subjectIds: z.array(name).min(1, "must name at least one subject"),
    actor: name,
    reason: z.string(),
    policy: z.object({ digest: hexDigest, rule: name }).optional(),
  })
  .superRefine((d, ctx) => {
    if (d.subjectType === "source") return;
    const [pattern, message] =
      d.subjectType === "sample"
        ? [HEX64, "a sample is named by its digest: expected 64 lowercase hex characters"]
        : [BATCH_ID, 'a telemetry batch is named "<agent>#<sequence>"'];
    d.subjectIds.forEach((id, i) => {
      if (!pattern.test(id)) ctx.addIssue({ code: "custom", path: ["subjectIds", i], message });
    });
  });

/** A token id: 16 lowercase hex characters (auth/tokens.ts). */
export const tokenId = z.string().regex(/^[0-9a-f]{16}$/, "expected a token id: 16 lowercase hex characters");
export const TOKEN_ROLES = ["admin", "analyst", "supplier", "agent", "reader"] as const;

export const apiTokenGrantSchema = z
  .object({
    tokenId,
    principal: name.max(200),
    role: z.enum(TOKEN_ROLES),
    source: name.nullable(),
    secretSha256: hexDigest,
    expiresAt: z.iso.datetime().nullable(),
  })
  .refine((t) => (t.role === "supplier" || t.role === "agent") === (t.source !== null), {
    message: "a supplier or agent token names exactly one source; other roles name none",
    path: ["source"],
  });

const isoTime = z.iso.datetime({ offset: true });
const count = z.number().int().min(0);
const sequence = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** telemetry.accepted: the batch id, the agent and the store path must agree (the store path is
 * read back from disk, so it can name nothing outside the agent's own directory). */
export const telemetryBatchSchema = z
  .object({
    batchId: z.string().regex(BATCH_ID, 'expected "<agent>#<sequence>"'),
    agent: z.string().regex(new RegExp(`^${AGENT}$`), "expected an agent's source name"),
    sequence,
    keyId: hexDigest,
    model: hexDigest,
    window: z.object({ start: isoTime, end: isoTime }),
    classes: z.array(name).min(2),
    recordsSha256: hexDigest,
    count: count.min(1),
    feedbackCount: count,
    bytes: count.min(1),
    store: z.string().regex(/^[^/]+\/[A-Za-z0-9][A-Za-z0-9._-]*\.jsonl$/, 'expected "<agent>/<file>.jsonl"'),
    gap: z.object({ expected: sequence, got: sequence }).nullable(),
  })
  .superRefine((b, ctx) => {
    if (b.batchId !== `${b.agent}#${b.sequence}`)
      ctx.addIssue({ code: "custom", path: ["batchId"], message: "is not <agent>#<sequence> of this batch" });
    if (!b.store.startsWith(`${b.agent}/`) || b.store.includes(".."))
      ctx.addIssue({
        code: "custom",
        path: ["store"],
        message: "is not a file in the agent's own directory",
      });
    if (b.feedbackCount > b.count)
      ctx.addIssue({ code: "custom", path: ["feedbackCount"], message: "is more than the batch's records" });
  });

export const jobId = z.string().regex(/^job-[0-9a-f]{16}$/, "expected a job id: job- and 16 hex characters");

export const ledgerEventInputSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("source.added"),
    payload: z.object({
      name,
      kind: z.enum(SOURCE_KINDS),
      trust: z.number().min(0).max(1),
      requireSignature: z.boolean(),
      keys: z.array(z.object({ publicKeyPem: ed25519PublicKeyPem })),
    }),
  }),
  z.object({
    kind: z.literal("source.key-added"),
    payload: z.object({ source: name, publicKeyPem: ed25519PublicKeyPem }),
  }),
  z.object({
    kind: z.literal("source.key-revoked"),
    payload: z.object({ source: name, keyId: hexDigest, reason: z.string() }),
  }),
  z.object({
    kind: z.literal("delivery.ingested"),
    payload: z.object({
      deliveryId: name,
      source: name,
      manifestDigest: hexDigest,
      merkleRoot: hexDigest,
      keyId: hexDigest.nullable(),
      files: z.array(z.object({ path: name, sha256: hexDigest, size: z.number().int().min(0) })),
      sampleCount: z.number().int().min(0),
      datasetVersion: name,
      store: z.string().nullable(),
      storeSha256: hexDigest.optional(),
    }),
  }),
  z.object({
    kind: z.literal("samples.added"),
    payload: z.object({ deliveryId: name, source: name, samples: z.array(sampleRecordSchema) }),
  }),
  z.object({
    kind: z.literal("dataset.version-created"),
    payload: z.object({
      version: name,
      name,
      merkleRoot: hexDigest,
      recordsRoot: hexDigest.optional(),
      parent: name.nullable(),
      transform: transformSchema,
      sampleCount: z.number().int().min(0),
    }),
  }),
  z.object({
    kind: z.literal("dataset.members-added"),
    payload: z.object({ version: name, digests: z.array(hexDigest) }),
  }),
  z.object({
    kind: z.literal("transform.recorded"),
    payload: z.object({ subject: name, transform: transformSchema }),
  }),
  z.object({ kind: z.literal("finding.recorded"), payload: findingSchema }),
  z.object({ kind: z.literal("decision.recorded"), payload: decisionSchema }),
  z.object({
    kind: z.literal("model.registered"),
    payload: z.object({
      digest: name,
      name,
      trainedOn: z.array(name),
      baseModel: name.nullable(),
      format: name,
    }),
  }),
  z.object({
    kind: z.literal("model.status-changed"),
    payload: z.object({ digest: hexDigest, status: z.enum(["active", "suspended"]), reason: z.string() }),
  }),
  z.object({ kind: z.literal("telemetry.accepted"), payload: telemetryBatchSchema }),
  z.object({
    kind: z.literal("model.reputation-set"),
    payload: z.object({
      digest: hexDigest,
      verdict: z.enum(["trusted", "distrusted"]),
      reason: z.string().min(1),
      publisher: hexDigest.nullable(),
    }),
  }),
  z.object({
    kind: z.literal("policy.adopted"),
    payload: z.object({ name, version: name, digest: hexDigest, document: json }),
  }),
  z.object({ kind: z.literal("token.created"), payload: apiTokenGrantSchema }),
  z.object({ kind: z.literal("token.revoked"), payload: z.object({ tokenId, reason: z.string() }) }),
  z.object({
    kind: z.literal("job.submitted"),
    payload: z.object({ jobId, kind: name, parameters: json }),
  }),
  z.object({
    kind: z.literal("job.finished"),
    payload: z.object({
      jobId,
      state: z.enum(["done", "failed", "cancelled"]),
      resultDigest: hexDigest.nullable(),
      error: z.string().nullable(),
    }),
  }),
  z.object({
    kind: z.literal("ledger.key-rotated"),
    payload: z.object({
      keyId: hexDigest,
      publicKeyPem: ed25519PublicKeyPem,
      endorsement: z.object({ keyId: hexDigest, signature: z.string().min(1) }).optional(),
    }),
  }),
]);

// What the schema accepts is a contract event: this fails to compile when the contract
// changes a field the schema still describes the old way.
const _schemaMatchesContract: (e: z.output<typeof ledgerEventInputSchema>) => LedgerEventInput = (e) => e;
void _schemaMatchesContract;

/**
 * Validate a batch before anything is written. The first bad event fails the whole batch
 * with a message naming its index, its kind and the field at fault.
 */
export function parseEvents(events: readonly unknown[]): LedgerEventInput[] {
  return events.map((event, index) => {
    const result = ledgerEventInputSchema.safeParse(event);
    if (result.success) return result.data;
    const issue = result.error.issues[0];
    const kind = kindOf(event);
    const field = issue === undefined ? "" : formatPath(issue.path);
    throw new AntidoteError(
      "ROW_MALFORMED",
      `ledger event #${index} (${kind}): ${field === "" ? "" : `${field}: `}${issue?.message ?? "invalid"}` +
        " — nothing was written.",
    );
  });
}

function kindOf(event: unknown): string {
  if (typeof event === "object" && event !== null && "kind" in event && typeof event.kind === "string")
    return event.kind;
  return "no kind";
}

/** ["payload", "samples", 3, "digest"] → "payload.samples[3].digest". */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`))
    .join("");
}
