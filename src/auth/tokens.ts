// API tokens of `antidote serve`. A token is `adt_<tokenId>_<secret>`: the id is public (it
// names the token in the ledger, in `token list` and in revocations), the secret is 32 random
// bytes in base64url and is shown once, when the token is made. The ledger keeps only the
// secret's SHA-256 (token.created), so a copy of the database grants nothing, and a token is
// checked by hashing what the client sent and comparing in constant time.
//
// Authentication failures are results, not throws (like Kysely's migration results): the
// server turns each into a 401 with its reason, and nothing here ever echoes the secret.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { ApiToken, ApiTokenGrant, Ledger, LedgerReader, TokenRole } from "../ledger/types.js";
import { parseRole, type RoleSpec } from "./roles.js";

const TOKEN_PATTERN = /^adt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface CreateTokenInput {
  /** The person or system the token is for; recorded as the actor of its requests. */
  principal: string;
  /** `admin`, `analyst`, `reader`, `supplier:<source>` or `agent:<source>`. */
  role: string | RoleSpec;
  /** `30d`, `12h`, `90m` from now, or an ISO-8601 time; absent or null: never. */
  expires?: string | null;
}

export interface TokenOptions {
  /** Who is making or revoking the token (the ledger event's actor). */
  actor?: string;
  /** The present, for expiry arithmetic (default: now). */
  now?: Date;
}

export interface CreatedToken {
  /** The whole token, secret included: give it to its holder; it cannot be shown again. */
  token: string;
  grant: ApiTokenGrant;
}

/** Who a valid token speaks for. */
export interface Authenticated {
  tokenId: string;
  principal: string;
  role: TokenRole;
  source: string | null;
  expiresAt: string | null;
}

export type AuthFailure = "malformed" | "unknown" | "revoked" | "expired";

export type AuthResult = ({ ok: true } & Authenticated) | { ok: false; reason: AuthFailure };

export const principalSchema = z
  .string()
  .min(1, "must not be empty")
  .max(200, "must be at most 200 characters")
  .regex(/^[^\p{Cc}]+$/u, "must not contain control characters");

/** Make a token: record its grant in the ledger and return the secret, once. */
export async function createToken(
  ledger: Ledger,
  input: CreateTokenInput,
  options: TokenOptions = {},
): Promise<CreatedToken> {
  const principal = principalSchema.safeParse(input.principal);
  if (!principal.success)
    throw new AntidoteError("USAGE", `principal: ${principal.error.issues[0]?.message ?? "invalid"}.`);
  const { role, source } = typeof input.role === "string" ? parseRole(input.role) : input.role;
  // The projection refuses an unknown source too; this says so in the caller's terms.
  if (source !== null && (await ledger.getSource(source)) === undefined)
    throw new AntidoteError(
      "SOURCE_UNKNOWN",
      `role ${role}:${source}: source "${source}" is not registered; add it first.`,
    );
  const expiresAt =
    input.expires === undefined || input.expires === null ? null : parseExpiry(input.expires, options.now);
  const tokenId = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const grant: ApiTokenGrant = {
    tokenId,
    principal: principal.data,
    role,
    source,
    secretSha256: sha256Hex(secret),
    expiresAt,
  };
  await ledger.append(
    [{ kind: "token.created", payload: grant }],
    options.actor === undefined ? {} : { actor: options.actor },
  );
  return { token: `adt_${tokenId}_${secret}`, grant };
}

/** Revoke a token by id. Revoking a revoked token writes nothing and says so. */
export async function revokeToken(
  ledger: Ledger,
  tokenId: string,
  reason: string,
  options: TokenOptions = {},
): Promise<{ token: ApiToken; alreadyRevoked: boolean }> {
  if (!/^[0-9a-f]{16}$/.test(tokenId))
    throw new AntidoteError("USAGE", `token id "${tokenId}" is not 16 lowercase hex characters.`);
  if (reason.trim() === "") throw new AntidoteError("USAGE", "reason: say why the token is revoked.");
  const existing = await ledger.getToken(tokenId);
  if (existing === undefined) throw new AntidoteError("NOT_FOUND", `token ${tokenId} does not exist.`);
  if (existing.revokedAt !== null) return { token: existing, alreadyRevoked: true };
  await ledger.append(
    [{ kind: "token.revoked", payload: { tokenId, reason } }],
    options.actor === undefined ? {} : { actor: options.actor },
  );
  const revoked = await ledger.getToken(tokenId);
  if (revoked === undefined)
    throw new AntidoteError("INTERNAL", `token ${tokenId} was revoked but cannot be read back.`);
  return { token: revoked, alreadyRevoked: false };
}

/** Check a bearer token against the ledger's grants. */
export async function authenticate(
  ledger: Pick<LedgerReader, "getToken">,
  bearer: string,
  options: { now?: Date } = {},
): Promise<AuthResult> {
  const match = TOKEN_PATTERN.exec(bearer);
  if (match === null) return { ok: false, reason: "malformed" };
  const [, tokenId = "", secret = ""] = match;
  const grant = await ledger.getToken(tokenId);
  // A wrong secret for a real id reads the same as an id that does not exist.
  if (grant === undefined || !sameDigest(sha256Hex(secret), grant.secretSha256))
    return { ok: false, reason: "unknown" };
  if (grant.revokedAt !== null) return { ok: false, reason: "revoked" };
  if (grant.expiresAt !== null && Date.parse(grant.expiresAt) <= (options.now ?? new Date()).getTime())
    return { ok: false, reason: "expired" };
  const { principal, role, source, expiresAt } = grant;
  return { ok: true, tokenId, principal, role, source, expiresAt };
}

/** The public id of a token string, or undefined when it is not shaped like one (for logs). */
export function tokenIdOf(bearer: string): string | undefined {
  return TOKEN_PATTERN.exec(bearer)?.[1];
}

const UNITS_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30d`, `12h`, `90m` after `now`, or an ISO-8601 time in the future, as ISO-8601 UTC. */
export function parseExpiry(spec: string, now: Date = new Date()): string {
  const relative = /^(\d{1,6})([mhd])$/.exec(spec.trim());
  const at = relative
    ? new Date(now.getTime() + Number(relative[1]) * UNITS_MS[relative[2] as keyof typeof UNITS_MS])
    : z.iso.datetime({ offset: true }).safeParse(spec).success
      ? new Date(spec)
      : undefined;
  if (at === undefined || Number.isNaN(at.getTime()))
    throw new AntidoteError(
      "USAGE",
      `expires: "${spec}" is neither a duration (30d, 12h, 90m) nor an ISO-8601 time.`,
    );
  if (at.getTime() <= now.getTime())
    throw new AntidoteError("USAGE", `expires: ${at.toISOString()} is not in the future.`);
  return at.toISOString();
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

// Both are hex SHA-256 digests (64 characters), so the lengths match and the comparison's
// time does not depend on where they differ.
function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}
