// A throwaway Redis for tests: Debian's redis-server on 127.0.0.1 on a free port, with no
// persistence, in a fresh temp dir; `restart()` stops it and starts it again on the same port
// (everything it held is gone, as after a crash of an unpersisted Redis); `stop()` removes it.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";

export const REDIS_SERVER = "/usr/bin/redis-server";

export const REDIS_MISSING =
  "redis-server is not installed: run `apt-get install redis-server` (the BullMQ job tests start Debian's /usr/bin/redis-server on a free loopback port).";

export interface RedisServer {
  url: string;
  port: number;
  /** Stop it and start it again on the same port, empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** `password`: the server requires it (`--requirepass`), and `url` carries it. */
export async function startRedis(options: { password?: string } = {}): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER)) throw new Error(REDIS_MISSING);
  const dir = mkdtempSync(join(tmpdir(), "antidote-redis-"));
  let lastError: unknown;
  // A free port can be taken between asking and binding; try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      let child = await launch(port, dir, options.password);
      return {
        url: `redis://${options.password !== undefined ? `:${options.password}@` : ""}127.0.0.1:${port}`,
        port,
        async restart() {
          await halt(child);
          child = await launch(port, dir, options.password);
        },
        async stop() {
          await halt(child);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

async function launch(port: number, dir: string, password: string | undefined): Promise<ChildProcess> {
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
  ];
  if (password !== undefined) args.push("--requirepass", password);
  const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  // Its log, kept short, says why it would not start.
  let log = "";
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-2000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`redis-server on port ${port} exited at start:\n${log}`);
    if (await ping(port)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
}

function halt(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/** Whether a Redis answers PING on the port (asking for a password is an answer too). */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG") || reply.startsWith("-NOAUTH"));
    });
  });
}
