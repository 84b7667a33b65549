// A throwaway PostgreSQL server for tests: initdb into a fresh temp dir, start it on
// 127.0.0.1 on a free port (its unix socket inside the temp dir, so nothing is shared with
// a system server), and remove it all on stop(). Binaries are found under
// /usr/lib/postgresql/<version>/bin, where Debian installs them off PATH. As root, the
// server runs as the `postgres` OS user, because PostgreSQL refuses to run as root.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "./free-port.js";

const run = promisify(execFile);
const PG_ROOT = "/usr/lib/postgresql";

export interface PostgresServer {
  /** Superuser URL of the `postgres` database, no password (trust auth on 127.0.0.1). */
  url: string;
  /** Create a fresh empty database and return its URL. */
  createDatabase(name?: string): Promise<string>;
  stop(): Promise<void>;
}

export const POSTGRES_MISSING =
  "PostgreSQL is not installed: run `apt-get install postgresql` (the ledger's PostgreSQL tests need initdb and pg_ctl under /usr/lib/postgresql/*/bin), or set ANTIDOTE_SKIP_POSTGRES=1 to skip them.";

export function skipPostgres(): boolean {
  return process.env.ANTIDOTE_SKIP_POSTGRES === "1";
}

/** The newest installed PostgreSQL's bin directory, or undefined. */
export function postgresBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter(
      (v) => existsSync(join(PG_ROOT, v, "bin", "initdb")) && existsSync(join(PG_ROOT, v, "bin", "pg_ctl")),
    )
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(PG_ROOT, versions[0], "bin");
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error(POSTGRES_MISSING);
  const root = mkdtempSync(join(tmpdir(), "antidote-pg-"));
  const data = join(root, "data");
  const asRoot = process.getuid?.() === 0;
  const pgTool = (tool: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", "postgres", "--", join(bin, tool), ...args]) : run(join(bin, tool), args);
  try {
    if (asRoot) await run("chown", ["-R", "postgres:postgres", root]);
    await pgTool("initdb", [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    const port = await startOnFreePort(pgTool, root, data);
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    let created = 0;
    return {
      url,
      async createDatabase(name = `ledger_${process.pid}_${++created}`) {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
        } finally {
          await client.end();
        }
        return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
      },
      async stop() {
        await pgTool("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined);
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
}

// A free port can be taken between asking and binding; try a few.
async function startOnFreePort(
  pgTool: (tool: string, args: string[]) => Promise<unknown>,
  root: string,
  data: string,
): Promise<number> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    // Durability settings off: a test server is thrown away, and fsync on 2 cores is slow.
    const options = `-p ${port} -h 127.0.0.1 -k ${root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    try {
      await pgTool("pg_ctl", [
        "-D",
        data,
        "-l",
        join(root, "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
        "start",
      ]);
      return port;
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}
