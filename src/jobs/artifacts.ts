// The files of a job, in the `job_artifacts` table: its inputs (an uploaded model, stored at
// submit under `input/<name>`) and what its runner produced (report.json, an export). Kept in
// the ledger database rather than on a disk, so that whichever server or worker ran the job,
// any server can hand them out.
import type { LedgerDb } from "../ledger/database.js";
import type { JobArtifact } from "./types.js";

/** Artifacts whose names start with this are the job's inputs (JobQueue.submit's `inputs`). */
export const INPUT_PREFIX = "input/";
/** The outputs of the job's parts (JobRunner.parts): working state, not results; dropped once it is done. */
export const PART_PREFIX = "part/";

/** Insert an artifact, or replace it (a rerun produces its files again). */
export async function putArtifact(db: LedgerDb, jobId: string, artifact: JobArtifact): Promise<void> {
  // better-sqlite3 binds Buffers (not bare Uint8Arrays) as blobs; pg takes them as bytea.
  const values = {
    media_type: artifact.mediaType,
    sha256: artifact.sha256,
    bytes: Buffer.from(artifact.bytes),
  };
  await db
    .insertInto("job_artifacts")
    .values({ job_id: jobId, name: artifact.name, ...values })
    .onConflict((oc) => oc.columns(["job_id", "name"]).doUpdateSet(values))
    .execute();
}

export async function readArtifact(
  db: LedgerDb,
  jobId: string,
  name: string,
): Promise<JobArtifact | undefined> {
  const row = await db
    .selectFrom("job_artifacts")
    .selectAll()
    .where("job_id", "=", jobId)
    .where("name", "=", name)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return { name: row.name, mediaType: row.media_type, sha256: row.sha256, bytes: new Uint8Array(row.bytes) };
}

export async function readInputs(db: LedgerDb, jobId: string): Promise<JobArtifact[]> {
  const rows = await db
    .selectFrom("job_artifacts")
    .selectAll()
    .where("job_id", "=", jobId)
    .where("name", "like", `${INPUT_PREFIX}%`)
    .orderBy("name")
    .execute();
  return rows.map((row) => ({
    name: row.name,
    mediaType: row.media_type,
    sha256: row.sha256,
    bytes: new Uint8Array(row.bytes),
  }));
}

/** Names of the files each job produced (its inputs and parts left out), by job. */
export async function outputNames(db: LedgerDb, jobIds: readonly string[]): Promise<Map<string, string[]>> {
  const names = new Map<string, string[]>();
  if (jobIds.length === 0) return names;
  const rows = await db
    .selectFrom("job_artifacts")
    .select(["job_id", "name"])
    .where("job_id", "in", [...jobIds])
    .where("name", "not like", `${INPUT_PREFIX}%`)
    .where("name", "not like", `${PART_PREFIX}%`)
    .orderBy("name")
    .execute();
  for (const { job_id, name } of rows) names.set(job_id, [...(names.get(job_id) ?? []), name]);
  return names;
}
