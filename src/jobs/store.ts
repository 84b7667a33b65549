// The job queue's working rows: the `jobs` table of the ledger database (and, through
// artifacts.ts, `job_artifacts`), shared by both engines. Each row says where a job is (queued,
// running, done …), who holds it (a lease: owner and until when, renewed by a heartbeat), how
// far it got, whether someone asked it to stop, and what it produced. These rows are
// operational, not evidence — they change in place — so every write here is a single guarded
// statement (`… where state = 'queued'`, `… and lease_owner = ?`): two servers or workers
// racing for one job see one winner, and a worker that lost its lease cannot overwrite the row
// of the one that took over.
//
// The store works on the ledger's own connection (`ledgerConnection`): a second SQLite
// connection in the same process could block the event loop waiting for a lock the ledger's
// append holds across an await.
import type { Selectable } from "kysely";
import type { LedgerDb } from "../ledger/database.js";
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerReader } from "../ledger/types.js";
import { canonicalJson } from "../ledger/chain.js";
import type { JobsTable } from "../ledger/database.js";
import type { JsonValue } from "../data/sample.js";
import { createHash } from "node:crypto";
import { PART_PREFIX, outputNames, putArtifact, readArtifact, readInputs } from "./artifacts.js";
import {
  TERMINAL_STATES,
  type JobArtifact,
  type JobListFilter,
  type JobProgress,
  type JobRecord,
  type JobState,
} from "./types.js";

export type JobRow = Selectable<JobsTable>;

export { INPUT_PREFIX } from "./artifacts.js";

const TERMINAL = [...TERMINAL_STATES];

export class JobStore {
  private readonly backend: { db: LedgerDb };

  /** The jobs tables of `ledger`, on the ledger's own connection (see `ledgerConnection`). */
  constructor(ledger: LedgerReader) {
    this.backend = { db: ledgerConnection(ledger) };
  }

  /** A new queued row and its input files, in one transaction. */
  async insert(job: {
    jobId: string;
    kind: string;
    parameters: Record<string, JsonValue>;
    principal: string;
    inputs: readonly JobArtifact[];
  }): Promise<void> {
    const now = new Date().toISOString();
    await this.backend.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("jobs")
        .values({
          job_id: job.jobId,
          kind: job.kind,
          parameters: canonicalJson(job.parameters),
          state: "queued",
          principal: job.principal,
          progress: null,
          result: null,
          error: null,
          attempts: 0,
          lease_owner: null,
          lease_until: null,
          cancel_requested: 0,
          created_at: now,
          updated_at: now,
        })
        .execute();
      for (const input of job.inputs) await putArtifact(trx, job.jobId, input);
    });
  }

  async row(jobId: string): Promise<JobRow | undefined> {
    return this.backend.db.selectFrom("jobs").selectAll().where("job_id", "=", jobId).executeTakeFirst();
  }

  async get(jobId: string): Promise<JobRecord | undefined> {
    const row = await this.row(jobId);
    return row === undefined ? undefined : (await this.records([row]))[0];
  }

  /** Newest first. */
  async list(filter: JobListFilter = {}): Promise<JobRecord[]> {
    let query = this.backend.db.selectFrom("jobs").selectAll();
    if (filter.state !== undefined) query = query.where("state", "=", filter.state);
    if (filter.kind !== undefined) query = query.where("kind", "=", filter.kind);
    const rows = await query
      .orderBy("created_at", "desc")
      .orderBy("job_id")
      .limit(Math.min(Math.max(filter.limit ?? 100, 1), 1000))
      .offset(Math.max(filter.offset ?? 0, 0))
      .execute();
    return this.records(rows);
  }

  /** Rows in `state` (oldest first): what start-up recovery and reconciliation walk. */
  async inState(state: JobState): Promise<JobRow[]> {
    return this.backend.db
      .selectFrom("jobs")
      .selectAll()
      .where("state", "=", state)
      .orderBy("created_at")
      .execute();
  }

  /** Take the oldest queued job for `owner` (the in-process loop). */
  async claimNext(owner: string, leaseMs: number): Promise<JobRow | undefined> {
    const next = await this.backend.db
      .selectFrom("jobs")
      .select("job_id")
      .where("state", "=", "queued")
      .orderBy("created_at")
      .orderBy("job_id")
      .limit(1)
      .executeTakeFirst();
    return next === undefined ? undefined : this.claim(next.job_id, owner, leaseMs, ["queued"]);
  }

  /**
   * Mark a job running for `owner`, one more attempt. `from` says which states may be taken
   * over: queued only in-process; queued or running under BullMQ, whose lock already decided
   * that this worker holds the job (the previous holder died or stalled).
   */
  async claim(
    jobId: string,
    owner: string,
    leaseMs: number,
    from: readonly JobState[] = ["queued"],
  ): Promise<JobRow | undefined> {
    const now = new Date();
    return this.backend.db
      .updateTable("jobs")
      .set((eb) => ({
        state: "running",
        attempts: eb("attempts", "+", 1),
        lease_owner: owner,
        lease_until: new Date(now.getTime() + leaseMs).toISOString(),
        updated_at: now.toISOString(),
      }))
      .where("job_id", "=", jobId)
      .where("state", "in", [...from])
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Renew `owner`'s lease, and write progress when given. Returns whether a cancel was asked
   * for, or undefined when the lease is no longer this owner's (another worker took the job).
   */
  async heartbeat(
    jobId: string,
    owner: string,
    leaseMs: number,
    progress?: JobProgress,
  ): Promise<{ cancelRequested: boolean } | undefined> {
    const now = new Date();
    const row = await this.backend.db
      .updateTable("jobs")
      .set({
        lease_until: new Date(now.getTime() + leaseMs).toISOString(),
        ...(progress !== undefined
          ? { progress: canonicalJson(progress), updated_at: now.toISOString() }
          : {}),
      })
      .where("job_id", "=", jobId)
      .where("lease_owner", "=", owner)
      .where("state", "=", "running")
      .returning("cancel_requested")
      .executeTakeFirst();
    return row === undefined ? undefined : { cancelRequested: Number(row.cancel_requested) === 1 };
  }

  /**
   * Progress of a job still queued while its parts run elsewhere (the row has no lease to
   * heartbeat under yet). No effect once the job has been claimed or has ended.
   */
  async queuedProgress(jobId: string, progress: JobProgress): Promise<void> {
    await this.backend.db
      .updateTable("jobs")
      .set({ progress: canonicalJson(progress), updated_at: new Date().toISOString() })
      .where("job_id", "=", jobId)
      .where("state", "=", "queued")
      .execute();
  }

  /** A part's output (JobRunner.parts), if computed. */
  async part(jobId: string, part: string): Promise<Uint8Array | undefined> {
    return (await readArtifact(this.backend.db, jobId, `${PART_PREFIX}${part}`))?.bytes;
  }

  /** Store a part's output (replacing it: two workers that both computed it wrote the same). */
  async putPart(jobId: string, part: string, bytes: Uint8Array): Promise<void> {
    await putArtifact(this.backend.db, jobId, {
      name: `${PART_PREFIX}${part}`,
      mediaType: "application/octet-stream",
      sha256: createHash("sha256").update(bytes).digest("hex"),
      bytes,
    });
  }

  /** Names of the parts computed so far. */
  async partNames(jobId: string): Promise<string[]> {
    const rows = await this.backend.db
      .selectFrom("job_artifacts")
      .select("name")
      .where("job_id", "=", jobId)
      .where("name", "like", `${PART_PREFIX}%`)
      .execute();
    return rows.map((r) => r.name.slice(PART_PREFIX.length));
  }

  /** Drop a job's parts: its outcome is recorded and its result no longer needs them. */
  async dropParts(jobId: string): Promise<void> {
    await this.backend.db
      .deleteFrom("job_artifacts")
      .where("job_id", "=", jobId)
      .where("name", "like", `${PART_PREFIX}%`)
      .execute();
  }

  /** Ask a running job to stop; false when it is not running. */
  async requestCancel(jobId: string): Promise<boolean> {
    const r = await this.backend.db
      .updateTable("jobs")
      .set({ cancel_requested: 1, updated_at: new Date().toISOString() })
      .where("job_id", "=", jobId)
      .where("state", "=", "running")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Put a job back in the queue (its runner was stopped by a shutdown) while `owner` holds it. */
  async requeue(jobId: string, owner: string): Promise<boolean> {
    const r = await this.backend.db
      .updateTable("jobs")
      .set({ state: "queued", lease_owner: null, lease_until: null, updated_at: new Date().toISOString() })
      .where("job_id", "=", jobId)
      .where("state", "=", "running")
      .where("lease_owner", "=", owner)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Take back a running job whose lease ran out before `now` (its holder died): back to the
   * queue, or ended (failed after too many attempts, cancelled when asked). The lease is checked
   * again in the statement, so a holder that renewed it meanwhile keeps the job.
   */
  async releaseExpired(
    jobId: string,
    now: string,
    outcome: { state: "queued" } | { state: "failed" | "cancelled"; error: string | null },
  ): Promise<boolean> {
    const r = await this.backend.db
      .updateTable("jobs")
      .set({
        state: outcome.state,
        error: outcome.state === "queued" ? null : outcome.error,
        lease_owner: null,
        lease_until: null,
        updated_at: new Date().toISOString(),
      })
      .where("job_id", "=", jobId)
      .where("state", "=", "running")
      .where("lease_until", "<", now)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Jobs ended in their row (cancelled while queued, failed by recovery) more than `graceMs`
   * ago whose outcome the ledger does not hold: the process that ended them stopped before
   * recording it (a live one records within milliseconds, and its own append names its actor).
   */
  async unrecorded(graceMs: number): Promise<JobRow[]> {
    return this.backend.db
      .selectFrom("jobs")
      .leftJoin("job_outcomes", "job_outcomes.job_id", "jobs.job_id")
      .selectAll("jobs")
      .where("jobs.state", "in", ["failed", "cancelled"])
      .where("jobs.updated_at", "<", new Date(Date.now() - graceMs).toISOString())
      .where("job_outcomes.job_id", "is", null)
      .execute();
  }

  /**
   * Set a job's final state, unless it already has one. `from` limits which states it may end
   * from (cancelling a queued job must not end one a worker has just claimed).
   */
  async finish(
    jobId: string,
    outcome: { state: JobState; result?: JsonValue | null; error?: string | null },
    from?: readonly JobState[],
  ): Promise<boolean> {
    let query = this.backend.db
      .updateTable("jobs")
      .set({
        state: outcome.state,
        result:
          outcome.result === undefined || outcome.result === null ? null : canonicalJson(outcome.result),
        error: outcome.error ?? null,
        lease_owner: null,
        lease_until: null,
        updated_at: new Date().toISOString(),
      })
      .where("job_id", "=", jobId)
      .where("state", "not in", TERMINAL);
    if (from !== undefined) query = query.where("state", "in", [...from]);
    return Number((await query.executeTakeFirst()).numUpdatedRows) === 1;
  }

  /** Store (or, on a rerun, replace) files a job produced. */
  async putArtifacts(jobId: string, artifacts: readonly JobArtifact[]): Promise<void> {
    if (artifacts.length === 0) return;
    await this.backend.db.transaction().execute(async (trx) => {
      for (const artifact of artifacts) await putArtifact(trx, jobId, artifact);
    });
  }

  artifact(jobId: string, name: string): Promise<JobArtifact | undefined> {
    return readArtifact(this.backend.db, jobId, name);
  }

  /** The job's inputs (artifacts named input/…). */
  inputs(jobId: string): Promise<JobArtifact[]> {
    return readInputs(this.backend.db, jobId);
  }

  /** The outcome the ledger holds for a job (job_outcomes and its job.finished event), if any. */
  async recordedOutcome(
    jobId: string,
  ): Promise<{ state: JobState; resultDigest: string | null; error: string | null } | undefined> {
    const row = await this.backend.db
      .selectFrom("job_outcomes")
      .innerJoin("events", "events.seq", "job_outcomes.seq")
      .select(["job_outcomes.state", "job_outcomes.result_digest", "events.payload"])
      .where("job_outcomes.job_id", "=", jobId)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const payload = JSON.parse(row.payload) as { error?: string | null };
    return { state: row.state as JobState, resultDigest: row.result_digest, error: payload.error ?? null };
  }

  /** The connection is the ledger's: whoever opened the ledger closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  private async records(rows: readonly JobRow[]): Promise<JobRecord[]> {
    const names = await outputNames(
      this.backend.db,
      rows.map((r) => r.job_id),
    );
    return rows.map((row) => toRecord(row, names.get(row.job_id) ?? []));
  }
}

function toRecord(row: JobRow, artifacts: string[]): JobRecord {
  return {
    jobId: row.job_id,
    kind: row.kind,
    parameters: JSON.parse(row.parameters) as Record<string, JsonValue>,
    state: row.state as JobState,
    principal: row.principal,
    progress: row.progress === null ? null : (JSON.parse(row.progress) as JobProgress),
    result: row.result === null ? null : (JSON.parse(row.result) as JsonValue),
    error: row.error,
    attempts: Number(row.attempts),
    artifacts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
