// GET /v1/telemetry/fleet: the deployed fleet at a glance, for the dashboard's Telemetry page —
// each agent's keys, quarantine, batches, gaps, refusals by reason and monitor findings (the
// riskiest first), each model's status and telemetry, and the monitors' latest alerts. The
// library computes it (monitor/fleet-status.ts); this file validates the query and documents
// the reply. It needs "read": an agent token reads its own batches and refusals on the
// /v1/telemetry routes, never the fleet's.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { findingSchema } from "../../ledger/schemas.js";
import type { LedgerReader } from "../../ledger/types.js";
import { fleetStatus, type FleetStatus } from "../../monitor/fleet-status.js";
import { TELEMETRY_REFUSAL_CODES } from "../../monitor/refusals.js";
import { errors, guard, json, security } from "../openapi.js";
import type { AppEnv } from "../types.js";

const iso = z.string();
const count = z.number().int();

const byCode = z.object({ code: z.enum(TELEMETRY_REFUSAL_CODES), refusals: count, lastAt: iso });

const agentSchema = z
  .object({
    name: z.string(),
    trust: z.number(),
    addedAt: iso,
    keys: z.object({ current: count, revoked: count }),
    quarantined: z.boolean().describe("The agent is quarantined: its telemetry is refused and left out"),
    batches: count,
    quarantinedBatches: count.describe("Directly, or through the agent"),
    records: count,
    feedback: count.describe("Records carrying a feedback label"),
    lastBatch: z.object({ batchId: z.string(), sequence: count, at: iso, model: z.string() }).nullable(),
    gaps: z
      .object({ batches: count, missing: count })
      .describe("Batches that skipped sequence numbers, and the numbers skipped in all"),
    models: z.array(z.string()).describe("Digests of the models its batches attest"),
    refusals: z.object({ total: count, byCode: z.array(byCode) }),
    findings: z
      .object({
        count,
        onAgent: count,
        onBatches: count,
        maxScore: z.number().nullable(),
        latest: z
          .object({
            seq: count,
            check: z.string(),
            kind: z.string(),
            score: z.number(),
            subjectId: z.string(),
          })
          .nullable(),
      })
      .describe("Monitor findings (check monitor/…) on the agent and on its batches"),
  })
  .openapi("FleetAgent");

const modelSchema = z
  .object({
    digest: z.string(),
    name: z.string(),
    status: z.enum(["active", "suspended"]),
    since: iso,
    reason: z.string().nullable(),
    actor: z.string().nullable(),
    batches: count,
    records: count,
    agents: count.describe("Distinct agents whose batches attest it"),
    lastBatchAt: iso.nullable(),
    findings: count.describe("Monitor findings on the model itself"),
  })
  .openapi("FleetModel");

const alertSchema = z
  .object({
    seq: count,
    at: iso,
    check: z.string().describe('"monitor/<name>"'),
    kind: z.string(),
    subjectType: findingSchema.shape.subjectType,
    subjectId: z.string(),
    score: z.number(),
    batchId: z.string().nullable().describe("The batch whose arrival raised it"),
    agent: z.string().nullable().describe("The agent it concerns; null for a model"),
  })
  .openapi("FleetAlert");

export const fleetStatusSchema = z
  .object({
    totals: z.object({
      agents: count,
      batches: count,
      records: count,
      refusals: count,
      monitorFindings: count,
      suspendedModels: count,
    }),
    agents: z.array(agentSchema).describe("Riskiest first: most monitor findings, then most refusals"),
    models: z.array(modelSchema),
    unattributedRefusals: z
      .array(byCode.extend({ agent: z.string() }))
      .describe('Refusals under names that are not registered agents ("" for unregistered names)'),
    alerts: z.array(alertSchema).describe("The latest monitor findings, newest first"),
  })
  .openapi("FleetStatus");

// The schema and the library's type must describe the same reply (a compile error when they part).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const inStep: Same<z.output<typeof fleetStatusSchema>, FleetStatus> = true;
void inStep;

const fleet = createRoute({
  method: "get",
  path: "/telemetry/fleet",
  tags: ["telemetry"],
  summary:
    "The deployed fleet: agents riskiest first (batches, gaps, refusals by reason, monitor findings), models' status, latest monitor alerts",
  security,
  middleware: guard("read"),
  request: {
    query: z.object({
      alerts: z.coerce.number().int().min(0).max(1000).default(20).describe("Latest alerts to list"),
    }),
  },
  responses: { 200: json(fleetStatusSchema, "The fleet"), ...errors(400) },
});

export function fleetRoutes(ledger: LedgerReader): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(fleet, async (c) => c.json(await fleetStatus(ledger, c.req.valid("query")), 200));
  return app;
}
