// Where the simulated fleet's batches go, and the keys it signs them with. A transport takes
// one upload and says whether it was accepted (and why not): over HTTP to a running
// `antidote serve`, each agent with its own token and the client's retry policy; or into an
// in-process intake function (`ingestTelemetry`), whose refusals are AntidoteErrors.
//
// Keys: the simulator derives each agent's Ed25519 key from the seed so that a run is
// reproducible byte for byte — fine for a simulation, never for a real agent, whose key
// comes from `antidote keygen` (`generateSigningKey`). A caller may pass its own keys.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { AntidoteError, isAntidoteError } from "../../errors.js";
import type { SigningKey } from "../../provenance/keys.js";
import { deliverTelemetry, httpTelemetrySender, type RetryOptions } from "../agent-delivery.js";
import type { TelemetryUpload } from "../schema.js";

export type FleetUploadKind = "batch" | "wrong-model" | "forge" | "replay";

/** What the simulator tells a transport about an upload (never read by a real intake). */
export interface FleetUploadMeta {
  /** Position in the run's send order. */
  index: number;
  round: number;
  agent: string;
  sequence: number;
  kind: FleetUploadKind;
}

export interface FleetOutcome {
  accepted: boolean;
  /** The refusal's code (REPLAYED, SIGNATURE_INVALID, …); absent when accepted. */
  reason?: string;
  /** HTTP status, for the HTTP transport. */
  status?: number;
}

/** Resolves to the outcome, or null for an upload that was only kept (written, not sent). */
export type FleetSend = (upload: TelemetryUpload, meta: FleetUploadMeta) => Promise<FleetOutcome | null>;

/** Each agent's uploads POSTed with that agent's token; retries as createTelemetryClient's. */
export function httpFleetTransport(options: {
  url: string;
  /** Agent name → its `agent:<name>` API token. */
  tokens: ReadonlyMap<string, string>;
  retry?: RetryOptions;
  fetch?: typeof fetch;
}): FleetSend {
  const senders = new Map(
    [...options.tokens].map(([agent, token]) => [
      agent,
      httpTelemetrySender({ url: options.url, token, ...(options.fetch ? { fetch: options.fetch } : {}) }),
    ]),
  );
  return async (upload, meta) => {
    const send = senders.get(meta.agent);
    if (send === undefined) throw new AntidoteError("USAGE", `no API token for agent "${meta.agent}".`);
    const outcome = await deliverTelemetry(send, upload, { attempts: 4, baseDelayMs: 200, ...options.retry });
    return outcome.delivered
      ? { accepted: true, status: outcome.status }
      : { accepted: false, reason: outcome.code, status: outcome.status };
  };
}

/**
 * An in-process intake as a transport: `ingest` resolves for an accepted batch and throws an
 * AntidoteError (its code the reason) for a refused one, e.g.
 * `intakeTransport((upload) => ingestTelemetry(ledger, upload))`. Other errors propagate.
 */
export function intakeTransport(ingest: (upload: TelemetryUpload) => Promise<unknown>): FleetSend {
  return async (upload) => {
    try {
      await ingest(upload);
      return { accepted: true };
    } catch (e) {
      if (isAntidoteError(e)) return { accepted: false, reason: e.code };
      throw e;
    }
  };
}

/** An Ed25519 key derived from `seed` (simulations only: anyone with the seed has the key). */
export function seededSigningKey(seed: string): SigningKey {
  const secret = createHash("sha256").update(`antidote fleet-sim key\0${seed}`).digest();
  // PKCS#8 for Ed25519 is a fixed 16-byte prefix and the 32-byte secret (RFC 8410).
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), secret]);
  return signingKeyOf(createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
}

/** A SigningKey from a PEM private key (what `generateSigningKey` returns). */
export function signingKeyFromPem(privateKeyPem: string): SigningKey {
  return signingKeyOf(createPrivateKey(privateKeyPem));
}

function signingKeyOf(privateKey: KeyObject): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: createHash("sha256")
      .update(publicKey.export({ format: "der", type: "spki" }))
      .digest("hex"),
    privateKey,
    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
  };
}
