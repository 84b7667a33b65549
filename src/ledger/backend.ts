// Where the ledger lives: an embedded SQLite file (default) or a shared PostgreSQL database.
// Both are the same Kysely `Database` with the same migrations; this module is the only
// place that knows how each engine serializes writers, takes a consistent snapshot, and
// how its location is written for people.
import { existsSync, mkdirSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import {
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteAdapter,
  SqliteDialect,
  sql,
  type DialectAdapter,
} from "kysely";
import { AntidoteError } from "../errors.js";
import { sha256Hex } from "./chain.js";
import type { Database, LedgerDb } from "./database.js";
import { LATEST_MIGRATION, migrationProvider } from "./migrations.js";

export const DEFAULT_LOCATION = join(".antidote", "ledger.db");

/** How long a writer waits for another process's append to finish before giving up. */
const BUSY_TIMEOUT_MS = 120_000;
/**
 * Bound values per multi-row insert. The hard limits are 32766 (SQLite) and 65535
 * (PostgreSQL), but statements of about this size measured fastest on both: larger ones
 * cost more to parse and plan than they save in round trips.
 */
const STATEMENT_PARAMS = 10_000;
/** Advisory-lock key that serializes PostgreSQL writers (ASCII "antidote" folded to 31 bits). */
export const PG_WRITE_LOCK = 0x616e7469;

/** "write" creates and upgrades; "read" opens an existing, up-to-date ledger and can never write. */
export type OpenMode = "read" | "write";

export interface Backend {
  readonly engine: "sqlite" | "postgres";
  readonly mode: OpenMode;
  readonly db: LedgerDb;
  /** "sqlite:<absolute path>" or the URL without its password. */
  readonly location: string;
  readonly homeDir: string;
  /** The witness file holding the latest checkpoint (see witness.ts). */
  readonly witnessPath: string;
  /** Most bound parameters one statement may carry. */
  readonly maxParams: number;
  /** Run `fn` in one transaction holding the ledger's write lock, other processes included. */
  writeTransaction<T>(fn: (trx: LedgerDb) => Promise<T>): Promise<T>;
  /** Let the query planner see the table sizes after a large append (PostgreSQL). */
  refreshStatistics?(): Promise<void>;
  /** Run `fn` against one consistent snapshot of the database. */
  snapshot<T>(fn: (trx: LedgerDb) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** PostgreSQL connections a ledger holds at most (a CLI command needs few; a server more). */
export const DEFAULT_POOL_SIZE = 4;

export async function openBackend(
  location: string | undefined,
  mode: OpenMode = "write",
  poolSize = DEFAULT_POOL_SIZE,
): Promise<Backend> {
  const backend =
    location !== undefined && isPostgresUrl(location)
      ? await openPostgres(location, mode, poolSize)
      : openSqlite(location, mode);
  if (mode === "write") await migrate(backend);
  else await requireCurrentSchema(backend);
  return backend;
}

function openSqlite(location: string | undefined, mode: OpenMode): Backend {
  const file = resolve(location ?? DEFAULT_LOCATION);
  const display = `sqlite:${file}`;
  // A read of a mistyped path must say so, not create an empty ledger and call it intact.
  if (mode === "read" && !existsSync(file))
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `no ledger at ${display} (nothing was created): check --ledger or $ANTIDOTE_LEDGER.`,
    );
  let database: BetterSqlite3.Database;
  try {
    if (mode === "read")
      database = new BetterSqlite3(file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    else {
      mkdirSync(dirname(file), { recursive: true });
      database = new BetterSqlite3(file, { timeout: BUSY_TIMEOUT_MS });
      // WAL lets readers (trace, verify) run while another process appends. Durability: an
      // append is on disk before append() returns, but the fsync that makes it so is ours
      // (syncWal, on libuv's threads), not SQLite's: with synchronous = FULL SQLite fsyncs
      // inside COMMIT, on the one thread that also answers every request — a server's reads
      // then waited behind the disk (10–95 ms a commit, measured under bench:serve). NORMAL
      // leaves the WAL unsynced at commit and the database consistent after a crash at any
      // point (SQLite's guarantee); syncWal then makes the commit durable.
      database.pragma("journal_mode = WAL");
      database.pragma("synchronous = NORMAL");
    }
  } catch (e) {
    throw unavailable(display, e);
  }
  const db = new Kysely<Database>({ dialect: new LockingSqliteDialect(database) });
  const homeDir = basename(dirname(file)) === ".antidote" ? dirname(file) : join(dirname(file), ".antidote");
  return {
    engine: "sqlite",
    mode,
    db,
    location: display,
    homeDir,
    witnessPath: `${file}.head.json`,
    maxParams: STATEMENT_PARAMS,
    // BEGIN IMMEDIATE takes SQLite's write lock before the first read, so the chain head
    // read inside is the one this transaction extends; other processes wait (busy_timeout).
    writeTransaction: async (fn) => {
      const result = await db.connection().execute(async (conn) => {
        await sql`begin immediate`.execute(conn);
        try {
          const result = await fn(conn);
          await sql`commit`.execute(conn);
          return result;
        } catch (e) {
          if (database.inTransaction) await sql`rollback`.execute(conn);
          throw e;
        }
      });
      // Outside the connection: other queries (reads) go on while the disk syncs.
      await syncWal(file, display);
      return result;
    },
    snapshot: (fn) =>
      db.connection().execute(async (conn) => {
        await sql`begin`.execute(conn);
        try {
          return await fn(conn);
        } finally {
          if (database.inTransaction) await sql`commit`.execute(conn);
        }
      }),
    close: () => db.destroy(),
  };
}

/**
 * fsync the SQLite file's write-ahead log, where a committed transaction's pages are (the
 * main file when there is no WAL: another journal mode set behind our back). On libuv's
 * thread pool: the event loop keeps running. A failed sync means the disk did not confirm
 * the commit: the append is reported failed although it may be on disk, as with SQLite's own
 * fsync failing inside COMMIT.
 */
async function syncWal(file: string, display: string): Promise<void> {
  const wal = `${file}-wal`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(existsSync(wal) ? wal : file, "r+");
    await handle.sync();
  } catch (e) {
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `${display}: the disk did not confirm the append (fsync: ${e instanceof Error ? e.message : String(e)}).`,
      { cause: e },
    );
  } finally {
    await handle?.close();
  }
}

// Kysely's SQLite adapter assumes one process; a ledger file may be opened by several at
// once (two ingests), so migrations run under SQLite's write lock like every append.
class LockingSqliteDialect extends SqliteDialect {
  constructor(private readonly database: BetterSqlite3.Database) {
    super({ database });
  }
  override createAdapter(): DialectAdapter {
    const database = this.database;
    return new (class extends SqliteAdapter {
      override async acquireMigrationLock(db: Kysely<unknown>): Promise<void> {
        await sql`begin immediate`.execute(db);
      }
      override async releaseMigrationLock(db: Kysely<unknown>): Promise<void> {
        if (database.inTransaction) await sql`commit`.execute(db);
      }
    })();
  }
}

async function openPostgres(url: string, mode: OpenMode, poolSize: number): Promise<Backend> {
  const display = withoutPassword(url);
  // Loaded only for a PostgreSQL ledger: every CLI command opens the module, most never need pg.
  const { default: pg } = await import("pg");
  // A reader's sessions are read-only on the server itself, whatever a bug here might try.
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    ...(mode === "read" ? { options: "-c default_transaction_read_only=on" } : {}),
  });
  // An idle client whose server went away emits 'error' on the pool; the next query
  // reports it as LEDGER_UNAVAILABLE instead of the process crashing.
  pool.on("error", () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw unavailable(display, e);
  }
  const homeDir = resolve(".antidote");
  const writes = new Serial();
  return {
    engine: "postgres",
    mode,
    db,
    location: display,
    homeDir,
    // The database is shared, so this machine keeps its own witness of the head it last
    // saw: a rollback of the shared log below that head is still detected here.
    witnessPath: join(homeDir, `ledger-${sha256Hex(display).slice(0, 16)}.head.json`),
    maxParams: STATEMENT_PARAMS,
    // Appends queue here, in this process, before they take a connection: they run one at a
    // time anyway (the advisory lock), and each one waiting inside a transaction held a pooled
    // connection that reads then waited for (measured under bench:serve: with 32 clients
    // delivering, reads that take 4 ms waited up to 430 ms for a connection).
    writeTransaction: (fn) =>
      writes.run(() =>
        db.transaction().execute(async (trx) => {
          await sql`select pg_advisory_xact_lock(${PG_WRITE_LOCK})`.execute(trx);
          // Every lookup an append makes is keyed by an index. Rows this transaction wrote
          // have no planner statistics yet, and without them `digest = any(…)` over a
          // million-row table is planned as a sequential scan (measured: 3.5× slower
          // ingest of 1M samples). Local to this transaction.
          await sql`set local enable_seqscan = off`.execute(trx);
          return fn(trx);
        }),
      ),
    // After a large append, refresh statistics now rather than when autovacuum gets to it,
    // so reads that follow (export, trace) are planned on the new table sizes.
    refreshStatistics: async () => {
      await sql`analyze samples, sample_origins, source_samples, dataset_members, version_sources`.execute(
        db,
      );
    },
    snapshot: (fn) =>
      db.transaction().setIsolationLevel("repeatable read").setAccessMode("read only").execute(fn),
    close: () => db.destroy(),
  };
}

/** Runs the functions given to it one at a time, in the order given. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    // The next waits for this one to settle, whether it succeeded or not.
    this.tail = result.catch(() => undefined);
    return result;
  }
}

// Reading never upgrades: a ledger from an older Antidote is upgraded by a command that
// writes (any append, or `antidote ledger upgrade`), and a database without our tables is
// not a ledger at all.
async function requireCurrentSchema(backend: Backend): Promise<void> {
  let applied: string[];
  try {
    const rows = await sql<{ name: string }>`select name from kysely_migration`.execute(backend.db);
    applied = rows.rows.map((r) => r.name);
  } catch (e) {
    await backend.close().catch(() => undefined);
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `${backend.location} is not an Antidote ledger (no schema).`,
      {
        cause: e,
      },
    );
  }
  if (applied.includes(LATEST_MIGRATION)) return;
  await backend.close().catch(() => undefined);
  throw new AntidoteError(
    "LEDGER_UNAVAILABLE",
    `ledger ${backend.location} was written by an older Antidote; upgrade it once with \`antidote ledger upgrade\` (reads never change a ledger).`,
  );
}

async function migrate(backend: Backend): Promise<void> {
  const { error, results } = await new Migrator({
    db: backend.db,
    provider: migrationProvider,
  }).migrateToLatest();
  if (error === undefined) return;
  await backend.close().catch(() => undefined);
  const failed = results?.find((r) => r.status === "Error")?.migrationName;
  throw unavailable(backend.location, error, failed === undefined ? "" : ` (migration ${failed})`);
}

/** The PostgreSQL URL as shown to people and stored in reports: never the password. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = "";
    return parsed.toString();
  } catch {
    throw new AntidoteError(
      "USAGE",
      `ledger location "${url.replace(/:[^:@/]*@/, ":***@")}" is not a valid URL.`,
    );
  }
}

export function unavailable(location: string, e: unknown, detail = ""): AntidoteError {
  const why = describe(e);
  return new AntidoteError("LEDGER_UNAVAILABLE", `ledger ${location} cannot be opened${detail}: ${why}`, {
    cause: e,
  });
}

// Node reports a refused connection to a host with several addresses as an AggregateError
// with an empty message; its parts say what happened.
function describe(e: unknown): string {
  if (e instanceof AggregateError && e.message === "") return e.errors.map(describe).join("; ");
  if (e instanceof Error) return e.message || ("code" in e ? String(e.code) : e.name);
  return String(e);
}
