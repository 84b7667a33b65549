// Where uploads are staged: a fresh directory per request (mkdtemp: a random name, mode
// 0700), removed when the request ends however it ends. Library errors about files inside
// it are reworded to name the uploaded file, not the server's temporary path. A server
// killed mid-request (kill -9, power loss) cannot remove its directory; the name carries the
// server's pid, so the next server to start sweeps the directories of servers that are gone.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { sweepStaleTemporaries } from "../data/atomic-output.js";
import { AntidoteError } from "../errors.js";

const UPLOAD_DIR = /^antidote-upload-(?<pid>\d+)-/;

/** The subdirectories routes stage parts in (one per file field). */
export const UPLOAD_PARTS = ["delivery", "signature", "input"] as const;

export async function withUploadDir<T>(
  base: string | undefined,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(base ?? tmpdir(), `antidote-upload-${process.pid}-`));
  try {
    return await fn(dir);
  } catch (e) {
    throw e instanceof AntidoteError ? withoutDir(e, dir) : e;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Remove the upload directories of servers no longer running, older than a minute (a server
 * in another PID namespace sharing the folder keeps its fresh ones). Never throws.
 */
export function sweepStaleUploads(base: string | undefined): Promise<string[]> {
  return sweepStaleTemporaries(base ?? tmpdir(), { pattern: UPLOAD_DIR });
}

// "/tmp/antidote-upload-x/delivery/a.parquet: digest mismatch" → "a.parquet: digest mismatch".
function withoutDir(e: AntidoteError, dir: string): AntidoteError {
  if (!e.message.includes(dir)) return e;
  let message = e.message;
  for (const part of UPLOAD_PARTS) message = message.replaceAll(`${dir}${sep}${part}${sep}`, "");
  for (const part of UPLOAD_PARTS) message = message.replaceAll(`${dir}${sep}${part}`, "the upload");
  return new AntidoteError(e.code, message.replaceAll(dir, "the upload"), { cause: e });
}
