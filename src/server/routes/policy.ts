// /v1/policy and /v1/sources/{name}/reputation: the curation policy in force (the latest
// policy.adopted event) and a source's reputation with the events that moved it — read-only
// views over src/policy/, as `antidote policy show` and `antidote source show --why` print them.
// Enforcement needs no route of its own: the delivery, export and model routes call the same
// library functions, which consult the policy in force.
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { LedgerReader } from "../../ledger/types.js";
import { activePolicy, reputationOf } from "../../policy/index.js";
import { errors, guard, json, security } from "../openapi.js";
import type { AppEnv } from "../types.js";

const policySchema = z
  .object({
    seq: z.number().int(),
    at: z.string(),
    actor: z.string(),
    digest: z.string(),
    policy: z.record(z.string(), z.unknown()),
  })
  .nullable()
  .openapi("ActivePolicy");

const reputationSchema = z
  .object({
    source: z.string(),
    kind: z.string(),
    prior: z.number(),
    score: z.number(),
    good: z.number(),
    bad: z.number(),
    lastIncidentAt: z.string().nullable(),
    events: z.array(
      z.object({
        seq: z.number().int().nullable(),
        kind: z.string(),
        at: z.string(),
        evidence: z.number(),
        effect: z.number(),
        detail: z.string(),
      }),
    ),
  })
  .openapi("SourceReputation");

const show = createRoute({
  method: "get",
  path: "/policy",
  tags: ["policy"],
  summary: "The curation policy in force and the event that adopted it (null when none was adopted)",
  security,
  middleware: guard("read"),
  responses: { 200: json(policySchema, "The policy in force"), ...errors() },
});

const reputation = createRoute({
  method: "get",
  path: "/sources/{name}/reputation",
  tags: ["sources"],
  summary: "A source's reputation and the ledger events that moved it",
  security,
  middleware: guard("read"),
  request: { params: z.object({ name: z.string().min(1).max(200) }) },
  responses: { 200: json(reputationSchema, "The reputation"), ...errors(404) },
});

export function policyRoutes(ledger: LedgerReader): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(show, async (c) => {
    const active = await activePolicy(ledger);
    return c.json(
      active === undefined
        ? null
        : {
            seq: active.seq,
            at: active.at,
            actor: active.actor,
            digest: active.digest,
            policy: active.policy,
          },
      200,
    );
  });
  app.openapi(reputation, async (c) => c.json(await reputationOf(ledger, c.req.valid("param").name), 200));
  return app;
}
