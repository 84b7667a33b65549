// The two engines every ledger test runs on. A backend hands out fresh, empty ledgers and
// raw SQL access to them (to play the attacker who edits the database behind our back).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { openLedger, type Ledger } from "../../src/ledger/index.js";
import { POSTGRES_MISSING, skipPostgres, startPostgres, type PostgresServer } from "../helpers/postgres.js";

export interface RawSql {
  /** Run one statement; returns the rows it yields. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export interface FreshLedger {
  location: string;
  keyPath: string;
  /** A scratch directory for this ledger's test (also the working directory children use). */
  dir: string;
  open(actor?: string): Promise<Ledger>;
  raw(): Promise<RawSql>;
}

export interface Backend {
  name: "SQLite" | "PostgreSQL";
  /** Start what the engine needs (beforeAll). */
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<FreshLedger>;
}

let root: string | undefined;
let previousCwd: string | undefined;

/**
 * Run the whole test file from a scratch directory: a PostgreSQL ledger keeps its witness
 * under `.antidote/` in the working directory, which must not be the repository.
 */
export function enterScratchDir(): string {
  root = mkdtempSync(join(tmpdir(), "antidote-ledger-"));
  previousCwd = process.cwd();
  process.chdir(root);
  return root;
}

export function leaveScratchDir(): void {
  if (previousCwd !== undefined) process.chdir(previousCwd);
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
}

function scratch(prefix: string): string {
  return mkdtempSync(join(root ?? tmpdir(), prefix));
}

const sqlite: Backend = {
  name: "SQLite",
  setup: () => Promise.resolve(),
  teardown: () => Promise.resolve(),
  fresh() {
    const dir = scratch("sqlite-");
    const location = join(dir, "ledger.db");
    const keyPath = join(dir, "ledger-key.pem");
    return Promise.resolve({
      location,
      keyPath,
      dir,
      open: (actor?: string) => openLedger({ location, keyPath, ...(actor === undefined ? {} : { actor }) }),
      raw: () => {
        const db = new BetterSqlite3(location, { timeout: 30_000 });
        return Promise.resolve({
          query: <T>(text: string, params: unknown[] = []) => {
            const stmt = db.prepare(text);
            return Promise.resolve((stmt.reader ? stmt.all(...params) : (stmt.run(...params), [])) as T[]);
          },
          close: () => Promise.resolve(void db.close()),
        });
      },
    });
  },
};

function postgres(): Backend {
  let server: PostgresServer | undefined;
  // A server that cannot start fails every test that needs it (each with the reason), not
  // only the hook: a skipped test would read as nothing wrong.
  let failure: Error | undefined;
  return {
    name: "PostgreSQL",
    async setup() {
      try {
        server = await startPostgres();
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        failure = new Error(why === POSTGRES_MISSING ? why : `${POSTGRES_MISSING}\n(${why})`);
      }
    },
    async teardown() {
      await server?.stop();
    },
    async fresh() {
      if (server === undefined) throw failure ?? new Error(POSTGRES_MISSING);
      const location = await server.createDatabase();
      const dir = scratch("pg-");
      const keyPath = join(dir, "ledger-key.pem");
      return {
        location,
        keyPath,
        dir,
        open: (actor?: string) =>
          openLedger({ location, keyPath, ...(actor === undefined ? {} : { actor }) }),
        raw: async () => {
          const client = new pg.Client({ connectionString: location });
          await client.connect();
          return {
            query: async <T>(text: string, params: unknown[] = []) =>
              (
                await client.query(
                  text.replace(/\?/g, (_, i: number) => `$${placeholder(text, i)}`),
                  params,
                )
              ).rows as T[],
            close: () => client.end(),
          };
        },
      };
    },
  };
}

// Tests write SQL with `?` placeholders (SQLite's); PostgreSQL wants $1, $2, …
function placeholder(text: string, offset: number): number {
  return (text.slice(0, offset).match(/\?/g)?.length ?? 0) + 1;
}

/** SQLite always; PostgreSQL unless ANTIDOTE_SKIP_POSTGRES=1 (a missing install then fails, loudly). */
export const BACKENDS: Backend[] = skipPostgres() ? [sqlite] : [sqlite, postgres()];
