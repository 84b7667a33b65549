// A running job's hold on its row: a heartbeat that renews the lease (so recovery knows the job
// is alive), carries the latest progress at most four times a second, and brings back the one
// thing the row can tell a runner — that someone asked it to stop, or that another worker has
// taken the job over. Progress is reported synchronously by runners (it sits in their inner
// loops), so it is only remembered there and written from here.
import type { JobStore } from "./store.js";
import type { JobProgress } from "./types.js";

/** At most one progress write per this many milliseconds (≤ 4 a second). */
export const PROGRESS_INTERVAL_MS = 250;

export interface LeaseEvents {
  /** The row has cancel_requested set. */
  cancel(): void;
  /** The row is no longer this owner's (another worker holds it, or it ended elsewhere). */
  lost(): void;
}

export class Lease {
  private latest: JobProgress | undefined;
  private dirty = false;
  private written = 0;
  private pending: Promise<void> = Promise.resolve();
  private writing = false;
  private trailing: NodeJS.Timeout | undefined;
  private readonly beat: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly store: JobStore,
    private readonly jobId: string,
    private readonly owner: string,
    private readonly leaseMs: number,
    private readonly events: LeaseEvents,
  ) {
    // A third of the lease: two beats may be missed (a busy event loop) before it lapses.
    this.beat = setInterval(() => this.write(false), Math.max(50, Math.floor(leaseMs / 3)));
  }

  /** Remember the latest progress; it is written as soon as the last write is old enough. */
  progress(progress: JobProgress): void {
    if (this.stopped) return;
    this.latest = progress;
    this.dirty = true;
    this.schedule();
  }

  /**
   * Stop beating, after writing the last progress reported (so a finished job's row shows how
   * far it got); nothing is written once this returns.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.beat);
    if (this.trailing !== undefined) clearTimeout(this.trailing);
    await this.pending;
    if (this.dirty && this.latest !== undefined)
      await this.store.heartbeat(this.jobId, this.owner, this.leaseMs, this.latest).catch(() => undefined);
  }

  private schedule(): void {
    if (this.trailing !== undefined || this.stopped) return;
    const wait = Math.max(0, this.written + PROGRESS_INTERVAL_MS - Date.now());
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      // A write in flight reschedules when it ends (below).
      if (!this.writing) this.write(true);
    }, wait);
  }

  private write(withProgress: boolean): void {
    if (this.stopped || this.writing) return;
    this.writing = true;
    const progress = withProgress && this.dirty ? this.latest : undefined;
    if (progress !== undefined) {
      this.written = Date.now();
      this.dirty = false;
    }
    this.pending = this.store
      .heartbeat(this.jobId, this.owner, this.leaseMs, progress)
      .then((state) => {
        if (state === undefined) this.events.lost();
        else if (state.cancelRequested) this.events.cancel();
      })
      // A failed beat is retried by the next; a lease that lapses meanwhile is recovered.
      .catch(() => undefined)
      .finally(() => {
        this.writing = false;
        if (this.dirty) this.schedule();
      });
  }
}
