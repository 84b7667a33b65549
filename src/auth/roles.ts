// Who may do what on `antidote serve`: each role is a set of permissions, in one table, so a
// reviewer reads the whole policy here and every route names the one permission it needs.
// A supplier or agent token is bound to one source (`supplier:acme`): it may deliver only as
// that source and read only that source's deliveries — the server checks the source, this
// table only says that delivering is allowed at all.
import { AntidoteError } from "../errors.js";
import type { TokenRole } from "../ledger/types.js";

export const PERMISSIONS = [
  /** Read anything in the ledger: sources, versions, trace, findings, models, jobs, verify. */
  "read",
  /** List deliveries (a supplier or agent sees its own source's only). */
  "deliveries:read",
  /** Upload a signed delivery (a supplier or agent as its own source only). */
  "deliver",
  /** Quarantine or release sources, samples and telemetry batches; suspend and resume models. */
  "decide",
  /** Register models. */
  "models:write",
  /** Submit and cancel scans, audits and exports. */
  "jobs:write",
  /** Register sources, add and revoke their keys. */
  "sources:write",
  /** Create, list and revoke API tokens. */
  "tokens",
  /** Send signed telemetry batches (an agent as its own agent only). */
  "telemetry",
] as const;
// Whether a model is suspended (GET /v1/models/{digest}/status) needs no permission: any valid
// token reads it, so deployments polling with their agent token stop serving a suspended model.

export type Permission = (typeof PERMISSIONS)[number];

const SUPPLIER: readonly Permission[] = ["deliver", "deliveries:read"];

export const ROLE_PERMISSIONS: Readonly<Record<TokenRole, readonly Permission[]>> = {
  reader: ["read", "deliveries:read"],
  analyst: ["read", "deliveries:read", "decide", "models:write", "jobs:write"],
  supplier: SUPPLIER,
  // An agent delivers like a supplier and sends telemetry (monitor/intake.ts), as itself only.
  agent: [...SUPPLIER, "telemetry"],
  admin: PERMISSIONS,
};

/** A role as written on the command line and in the API: `analyst`, `supplier:acme`. */
export interface RoleSpec {
  role: TokenRole;
  /** The source a supplier or agent acts as; null for the other roles. */
  source: string | null;
}

const BOUND_ROLES: readonly TokenRole[] = ["supplier", "agent"];

/** Parse `admin|analyst|reader|supplier:<source>|agent:<source>`. */
export function parseRole(spec: string): RoleSpec {
  const [role, ...rest] = spec.split(":");
  const source = rest.length === 0 ? null : rest.join(":");
  if (role === undefined || !(role in ROLE_PERMISSIONS))
    throw new AntidoteError(
      "USAGE",
      `role "${spec}" is not one of admin, analyst, reader, supplier:<source>, agent:<source>.`,
    );
  const known = role as TokenRole;
  if (BOUND_ROLES.includes(known) && (source === null || source === ""))
    throw new AntidoteError(
      "USAGE",
      `role "${spec}": a ${known} token names its source, as ${known}:<source>.`,
    );
  if (!BOUND_ROLES.includes(known) && source !== null)
    throw new AntidoteError("USAGE", `role "${spec}": only supplier and agent tokens are bound to a source.`);
  return { role: known, source };
}

/** `supplier:acme`, `analyst`: the inverse of `parseRole`. */
export function formatRole(spec: RoleSpec): string {
  return spec.source === null ? spec.role : `${spec.role}:${spec.source}`;
}

export function hasPermission(role: TokenRole, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}

/** Whether a token of this role sees only its own source's records (supplier, agent). */
export function boundToSource(role: TokenRole): boolean {
  return BOUND_ROLES.includes(role);
}
