// How a delivery was signed, judged against its source's registered keys, and that in words: what
// both the AI-BOM (bom.ts) and the Croissant export (croissant.ts) say of each delivery. Its own
// module so that the Croissant export and the CLI do not load the CycloneDX library.
import type { DeliveryRecord, Source } from "../ledger/types.js";

/** How a delivery was signed, judged against its source's registered keys. */
export type DeliverySigning =
  | { state: "unsigned" }
  | { state: "unregistered"; keyId: string }
  | { state: "active"; keyId: string }
  | { state: "revoked"; keyId: string; revokedAt: string };

export function deliverySigning(delivery: DeliveryRecord, sources: readonly Source[]): DeliverySigning {
  if (delivery.keyId === null) return { state: "unsigned" };
  const source = sources.find((s) => s.name === delivery.source);
  const key = source?.keys.find((k) => k.keyId === delivery.keyId);
  if (key === undefined) return { state: "unregistered", keyId: delivery.keyId };
  if (key.revokedAt !== null) return { state: "revoked", keyId: key.keyId, revokedAt: key.revokedAt };
  return { state: "active", keyId: key.keyId };
}

/** One line a person can read: "signed by key <id> (revoked at …)". */
export function describeSigning(signing: DeliverySigning): string {
  switch (signing.state) {
    case "unsigned":
      return "unsigned";
    case "unregistered":
      return `signed by key ${signing.keyId}, which is not registered for its source`;
    case "active":
      return `signed by key ${signing.keyId}`;
    case "revoked":
      return `signed by key ${signing.keyId}, revoked at ${signing.revokedAt}`;
  }
}
