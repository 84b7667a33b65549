// Which column of a row-shaped file (JSONL, CSV, Parquet) plays which role. Users may
// name columns with --id-column etc.; otherwise we recognise the usual names.
import { AntidoteError } from "../errors.js";
import type { ColumnRole } from "./sample.js";

export type ColumnMapping = Partial<Record<ColumnRole, string>>;

/** Names we recognise for each role, most common first (compared case-insensitively). */
const CANDIDATES: Record<ColumnRole, readonly string[]> = {
  id: ["id", "sample_id", "uid", "uuid", "key", "idx", "index"],
  text: ["text", "content", "body", "sentence", "document", "message", "email", "review", "prompt"],
  image: ["image", "img", "picture", "photo", "pixels"],
  label: ["label", "labels", "class", "target", "category", "y", "fine_label"],
  source: ["source", "origin", "supplier", "provider", "vendor"],
  annotations: ["annotations", "annotator_labels", "votes"],
};

export const COLUMN_ROLES: readonly ColumnRole[] = ["id", "text", "image", "label", "source", "annotations"];

/**
 * Resolve the mapping against the columns a file actually has: explicit names must exist
 * (else COLUMN_MISSING with the closest name), missing roles are auto-detected.
 */
export function resolveColumns(
  file: string,
  available: readonly string[],
  requested: ColumnMapping,
): ColumnMapping {
  const resolved: ColumnMapping = {};
  const taken = new Set<string>();
  for (const role of COLUMN_ROLES) {
    const name = requested[role];
    if (name === undefined) continue;
    if (!available.includes(name)) throw columnMissing(file, role, name, available);
    resolved[role] = name;
    taken.add(name);
  }
  for (const role of COLUMN_ROLES) {
    if (resolved[role] !== undefined) continue;
    const lower = new Map(available.filter((c) => !taken.has(c)).map((c) => [c.toLowerCase(), c]));
    const hit = CANDIDATES[role].map((c) => lower.get(c)).find((c) => c !== undefined);
    if (hit !== undefined) {
      resolved[role] = hit;
      taken.add(hit);
    }
  }
  return resolved;
}

export function columnMissing(
  file: string,
  role: ColumnRole,
  name: string,
  available: readonly string[],
): AntidoteError {
  const guess = closest(name, available);
  const hint = guess === undefined ? "" : ` Did you mean "${guess}"?`;
  return new AntidoteError(
    "COLUMN_MISSING",
    `${file}: no column "${name}" for --${role}-column.${hint} Columns: ${available.join(", ") || "(none)"}.`,
  );
}

/** The available name nearest to `name` by edit distance, if it is near enough to be a typo. */
export function closest(name: string, available: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of available) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

// Levenshtein distance, two-row dynamic programme.
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
