// The witness file: the latest checkpoint, kept outside the database. Deleting trailing
// events together with their checkpoints leaves a self-consistent shorter log; the
// witness still names the head that was there, so `verify` notices.
import { readFileSync, renameSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import type { Checkpoint } from "./types.js";

const checkpointSchema = z.object({
  seq: z.number().int().min(1),
  hash: z.string(),
  at: z.string(),
  root: z.string().optional(),
  keyId: z.string(),
  signature: z.string(),
});

export type WitnessRead =
  { state: "absent" } | { state: "ok"; checkpoint: Checkpoint } | { state: "unreadable"; why: string };

export function readWitness(path: string): WitnessRead {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (typeof e === "object" && e !== null && "code" in e && e.code === "ENOENT") return { state: "absent" };
    return { state: "unreadable", why: e instanceof Error ? e.message : String(e) };
  }
  try {
    const parsed = checkpointSchema.safeParse(JSON.parse(text));
    if (parsed.success) return { state: "ok", checkpoint: parsed.data };
    return { state: "unreadable", why: parsed.error.issues[0]?.message ?? "not a checkpoint" };
  } catch (e) {
    return { state: "unreadable", why: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Record `checkpoint` as the head, unless the witness already names a later one (another
 * process may have appended and written its witness first). Written to a temporary file
 * and renamed, so a crash leaves the old witness or the new one, never half of one.
 */
export function writeWitness(path: string, checkpoint: Checkpoint): void {
  const current = readWitness(path);
  if (current.state === "ok" && current.checkpoint.seq >= checkpoint.seq) return;
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(checkpoint, null, 2) + "\n");
  renameSync(temp, path);
}
