// The data a scan or audit job reads: a dataset version of the ledger, copied out of the sample
// store into the job's working directory (each store file checked against the ledger as it is
// read). Jobs never read paths given by the client: a server must not open files it was told to.
import { join } from "node:path";
import { materializeVersion } from "../../provenance/materialize.js";
import type { JobContext } from "../types.js";

/** Write `version`'s members to workDir/data.parquet, reporting progress; returns the path. */
export async function versionData(ctx: JobContext, version: string): Promise<string> {
  const out = join(ctx.workDir, "data.parquet");
  ctx.progress("materialize", 0, 0);
  await materializeVersion(ctx.ledger, version, out, {
    signal: ctx.signal,
    onProgress: (done, total) => ctx.progress("materialize", done, total),
  });
  return out;
}

export function textArtifact(
  name: string,
  mediaType: string,
  text: string,
): {
  name: string;
  mediaType: string;
  bytes: Uint8Array;
} {
  return { name, mediaType, bytes: new TextEncoder().encode(text) };
}
