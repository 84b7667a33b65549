// Names and events shared by every step that creates a dataset version (ingest, export,
// derive), so the three agree on how a version is named and how its members are recorded.
import { createHash } from "node:crypto";
import { canonicalJson } from "../ledger/chain.js";
import type { LedgerEventInput } from "../ledger/types.js";

/** Items per `samples.added` / `dataset.members-added` event: keeps each event a few hundred KB. */
export const EVENT_BATCH = 5000;

/** A version-id-friendly form of a dataset name. */
export function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-")
      .replace(/^-+|-+$/g, "") || "dataset"
  );
}

/**
 * `<name>@<12 hex>`: readable, and determined by what makes the version what it is (its
 * parent, content and the step's parameters), so recording the same step twice names the
 * same version.
 */
export function versionId(name: string, identity: unknown): string {
  const hash = createHash("sha256").update(canonicalJson(identity)).digest("hex");
  return `${slug(name)}@${hash.slice(0, 12)}`;
}

/** The member list of a new version, in batches. */
export function memberEvents(version: string, sortedDigests: readonly string[]): LedgerEventInput[] {
  const events: LedgerEventInput[] = [];
  for (let i = 0; i < sortedDigests.length; i += EVENT_BATCH)
    events.push({
      kind: "dataset.members-added",
      payload: { version, digests: sortedDigests.slice(i, i + EVENT_BATCH) },
    });
  return events;
}
