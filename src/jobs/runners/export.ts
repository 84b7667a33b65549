// The `export` job: a clean version of a dataset version, as `antidote export` writes it — the
// members minus quarantined samples or whole sources, signed with the ledger's key and recorded
// as a new version — kept as the job's artifacts (the file and its .sigstore.json) for the
// client to download. `exportVersion` appends the new version itself, outside the job's
// once-only batch; that append is idempotent by version id (an identical export is recorded
// once, `alreadyRecorded` on a rerun), so a job rerun after a crash records no second version.
// An optional `reason` is recorded with the request (job.submitted) and not used otherwise.
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { z } from "zod";
import { exportVersion } from "../../provenance/export.js";
import type { JobRunner } from "../types.js";

export const EXPORT_FORMATS = ["parquet", "jsonl", "csv"] as const;

const MEDIA_TYPES: Record<(typeof EXPORT_FORMATS)[number], string> = {
  parquet: "application/vnd.apache.parquet",
  jsonl: "application/x-ndjson",
  csv: "text/csv",
};

export const exportParameters = z
  .object({
    version: z.string().min(1),
    excludeQuarantined: z.boolean().default(false),
    excludeSources: z.array(z.string().min(1)).default([]),
    format: z.enum(EXPORT_FORMATS).default("parquet"),
    /** Name of the new version (default: the parent's). */
    name: z.string().min(1).optional(),
    /**
     * Why the export was asked for. Recorded with the request (`job.submitted` keeps the
     * parameters) and otherwise unused: the export itself does not depend on it.
     */
    reason: z.string().min(1, "must not be empty").max(500, "must be at most 500 characters").optional(),
  })
  .strict();

export const exportRunner: JobRunner<typeof exportParameters> = {
  kind: "export",
  description: "Export a clean, signed version of a dataset version (the file and its .sigstore.json)",
  parameters: exportParameters,
  async run(p, ctx) {
    const out = join(ctx.workDir, `clean.${p.format}`);
    ctx.progress("export", 0, 0);
    const result = await exportVersion(ctx.ledger, {
      version: p.version,
      out,
      format: p.format,
      excludeQuarantined: p.excludeQuarantined,
      excludeSources: p.excludeSources,
      ...(p.name !== undefined ? { name: p.name } : {}),
      signal: ctx.signal,
      actor: ctx.principal,
      onProgress: (done, total) => ctx.progress("export", done, total),
    });
    const file = basename(out);
    return {
      result: {
        version: result.version,
        parent: result.parent,
        file,
        signature: `${file}.sigstore.json`,
        written: result.written,
        excluded: result.excluded,
        merkleRoot: result.merkleRoot,
        alreadyRecorded: result.alreadyRecorded,
      },
      artifacts: [
        { name: file, mediaType: MEDIA_TYPES[p.format], bytes: await readFile(out) },
        {
          name: `${file}.sigstore.json`,
          mediaType: "application/json",
          bytes: await readFile(result.signature),
        },
      ],
      events: [],
    };
  },
};
