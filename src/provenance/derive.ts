// Lineage for processing done outside Antidote: a team deduplicates, filters, splits or
// samples a dataset version with its own tools and records the result as a new version
// with its parent, the tool, its version and its parameters, and the input and output
// digests. Only selections of what the ledger already holds can be recorded this way.
// New or changed content (augmentation, re-encoding) and new labels (a relabelling pass)
// have an origin of their own — a tool run, an annotation contractor — and must arrive
// through `ingest` from that source, so no sample or label enters without provenance.
import { openDataset, type OpenOptions } from "../data/open.js";
import { AntidoteError } from "../errors.js";
import type { Ledger, LedgerEventInput } from "../ledger/types.js";
import { unknownVersion } from "./export.js";
import { hashFiles } from "./hash-files.js";
import { listDeliveryFiles } from "./manifest.js";
import { merkleRoot } from "./merkle.js";
import { memberEvents, versionId } from "./versions.js";

/** Processing steps that select existing samples. */
export const DERIVE_KINDS = ["dedup", "filter", "split", "sample"] as const;
export type DeriveKind = (typeof DERIVE_KINDS)[number];

export interface DeriveOptions {
  /** The dataset the user's tool produced. */
  data: string;
  parent: string;
  kind: DeriveKind;
  tool: string;
  toolVersion: string;
  parameters?: Record<string, string>;
  name?: string;
  readOptions?: OpenOptions;
  onProgress?: (samples: number) => void;
}

export interface DeriveResult {
  version: string;
  parent: string;
  samples: number;
  /** Parent members left out. */
  removed: number;
  merkleRoot: string;
  alreadyRecorded: boolean;
}

export async function deriveVersion(ledger: Ledger, options: DeriveOptions): Promise<DeriveResult> {
  const parent = await ledger.getDatasetVersion(options.parent);
  if (parent === undefined) throw unknownVersion(options.parent, await ledger.listDatasetVersions());
  const labels = new Map<string, string | null>();
  for await (const m of ledger.datasetMembers(parent.version)) labels.set(m.digest, m.label);

  const dataset = await openDataset(options.data, options.readOptions);
  const digests = new Set<string>();
  let relabeled = 0;
  let seen = 0;
  for await (const sample of dataset.samples()) {
    if (!labels.has(sample.digest))
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${options.data}: sample "${sample.id}" (digest ${sample.digest.slice(0, 16)}…) is not in ${parent.version}; ` +
          "`derive` records selections of existing samples — new or changed content must come in through `antidote ingest`.",
      );
    if (!digests.has(sample.digest) && labels.get(sample.digest) !== sample.label) relabeled++;
    digests.add(sample.digest);
    if (++seen % 1000 === 0) options.onProgress?.(seen);
  }
  if (relabeled > 0)
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${options.data}: ${relabeled} sample(s) carry a different label than in ${parent.version}; ` +
        "new labels have an origin of their own — ingest them from the annotator's source (`antidote ingest --source …`).",
    );

  const sorted = [...digests].sort();
  const root = merkleRoot(sorted);
  const { files: listed } = await listDeliveryFiles(options.data);
  const files = await hashFiles(listed.map((f) => f.path));
  const parameters = { ...(options.parameters ?? {}) };
  const name = options.name ?? parent.name;
  const version = versionId(name, {
    parent: parent.version,
    root,
    kind: options.kind,
    tool: options.tool,
    parameters,
  });
  const result = {
    version,
    parent: parent.version,
    samples: sorted.length,
    removed: labels.size - sorted.length,
    merkleRoot: root,
  };
  if ((await ledger.getDatasetVersion(version)) !== undefined) return { ...result, alreadyRecorded: true };

  const events: LedgerEventInput[] = [
    {
      kind: "dataset.version-created",
      payload: {
        version,
        name,
        merkleRoot: root,
        parent: parent.version,
        sampleCount: sorted.length,
        transform: {
          kind: options.kind,
          tool: options.tool,
          toolVersion: options.toolVersion,
          parameters: { ...parameters, removed: result.removed },
          inputDigests: [parent.merkleRoot],
          outputDigests: [root, ...files.map((f) => f.sha256)],
        },
      },
    },
  ];
  events.push(...memberEvents(version, sorted));
  await ledger.append(events);
  return { ...result, alreadyRecorded: false };
}
