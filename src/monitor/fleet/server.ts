// Preparing a running `antidote serve` for a simulated fleet, through its HTTP API only and
// with an admin token: the served model registered by digest, each agent registered as a
// source of kind agent with its public key, and an `agent:<name>` token made for each, so
// every agent then sends with its own token as a deployed one would. The typed client has
// the sources calls; models and tokens are plain requests here.
import { randomUUID } from "node:crypto";
import { AntidoteClient, ServiceError } from "../../client/index.js";
import { AntidoteError } from "../../errors.js";

export interface FleetServerSetup {
  url: string;
  /** A token with the admin role (sources, tokens, models). */
  adminToken: string;
  model: { digest: string; name: string };
  agents: readonly { name: string; publicKeyPem: string }[];
  /** Lifetime of the agents' tokens ("30d", "12h", an ISO time); default 1 day. */
  tokenExpires?: string;
  fetch?: typeof fetch;
  onAgent?: (done: number, total: number) => void;
}

/** Register the model, the agents and their tokens; returns agent name → token secret. */
export async function setupFleetOnServer(setup: FleetServerSetup): Promise<Map<string, string>> {
  const client = new AntidoteClient({
    url: setup.url,
    token: setup.adminToken,
    ...(setup.fetch ? { fetch: setup.fetch } : {}),
  });
  const post = adminPost(setup);
  await post("/v1/models", { digest: setup.model.digest, name: setup.model.name, trainedOn: [] });
  const tokens = new Map<string, string>();
  let done = 0;
  for (const agent of setup.agents) {
    try {
      await client.addSource({
        name: agent.name,
        kind: "agent",
        requireSignature: true,
        keys: [agent.publicKeyPem],
      });
    } catch (e) {
      if (e instanceof ServiceError && e.status === 409)
        throw new AntidoteError(
          "SOURCE_EXISTS",
          `source "${agent.name}" is already registered on ${setup.url}; use another agent prefix or a fresh ledger.`,
          { cause: e },
        );
      throw e;
    }
    const created = (await post("/v1/tokens", {
      principal: agent.name,
      role: `agent:${agent.name}`,
      expires: setup.tokenExpires ?? "1d",
    })) as { token?: unknown };
    if (typeof created.token !== "string")
      throw new AntidoteError("INTERNAL", `the server made no token for agent "${agent.name}".`);
    tokens.set(agent.name, created.token);
    setup.onAgent?.(++done, setup.agents.length);
  }
  return tokens;
}

function adminPost(setup: FleetServerSetup): (path: string, body: unknown) => Promise<unknown> {
  const base = setup.url.replace(/\/+$/, "");
  const fetchFn = setup.fetch ?? fetch;
  return async (path, body) => {
    let response: Response;
    try {
      response = await fetchFn(`${base}${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${setup.adminToken}`,
          "content-type": "application/json",
          "antidote-request-id": randomUUID(),
        },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new AntidoteError(
        "LEDGER_UNAVAILABLE",
        `server ${base} cannot be reached (${e instanceof Error ? e.message : String(e)}).`,
        { cause: e },
      );
    }
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const message = typeof error?.message === "string" ? error.message : `HTTP ${response.status}`;
      throw new AntidoteError(
        response.status === 401 || response.status === 403 ? "USAGE" : "INPUT_FORMAT",
        `POST ${path}: ${message}`,
      );
    }
    return parsed;
  };
}
