// `antidote serve`: the library as an HTTP service over one ledger (src/server/). The server
// and the job engines load only when this command runs, so every other command starts fast.
// Ctrl-C or TERM closes it gracefully: requests in flight finish, running jobs are left to be
// resumed (in-process) or retried (BullMQ), the ledger is closed; a second signal exits at once.
import type { Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import type { Ledger } from "../../ledger/types.js";
import { DEFAULT_LOCATION } from "../../ledger/backend.js";
import { addLedgerOption } from "../ledger-options.js";
import { parseFlags } from "../options.js";

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i;
const UNIT = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

/** "1gb", "500mb", "1048576" → bytes. */
export function parseSize(text: string, flag: string): number {
  const m = SIZE.exec(text.trim());
  const bytes = m === null ? NaN : Number(m[1]) * UNIT[(m[2]?.toLowerCase() ?? "b") as keyof typeof UNIT];
  if (!Number.isFinite(bytes) || bytes < 1)
    throw new AntidoteError("USAGE", `${flag}: "${text}" is not a size (e.g. 1gb, 500mb, 1048576).`);
  return Math.floor(bytes);
}

/** "20/s", "600/min", "20" → requests per second. */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|second|m|min|minute))?$/i.exec(text.trim());
  const perSecond = m === null ? NaN : Number(m[1]) / (/^m/i.test(m[2] ?? "s") ? 60 : 1);
  if (!Number.isFinite(perSecond) || perSecond <= 0)
    throw new AntidoteError("USAGE", `--rate: "${text}" is not a rate (e.g. 20/s, 600/min).`);
  return perSecond;
}

const serveFlags = z.object({
  ledger: z.string().min(1).optional(),
  ledgerKey: z.string().min(1).optional(),
  port: z.coerce.number().int().min(0).max(65535),
  host: z.string().min(1),
  redis: z
    .string()
    .regex(/^rediss?:\/\//, "a redis:// or rediss:// URL")
    .optional(),
  maxBody: z.string(),
  maxJson: z.string(),
  rate: z.string(),
  burst: z.coerce.number().int().min(1).optional(),
  uploadDir: z.string().min(1).optional(),
  ingestThreads: z.coerce.number().int().min(1).max(64).optional(),
  monitor: z.string().min(1).optional(),
});

export function registerServe(program: Command): void {
  addLedgerOption(
    program
      .command("serve")
      .description(
        "Serve the ledger as an HTTP/JSON API with tokens, roles, limits and jobs (OpenAPI at /openapi.json)",
      )
      .option("--port <n>", "port to listen on (0: any free port)", "8600")
      .option(
        "--host <address>",
        "address to listen on; anything but loopback needs a TLS proxy in front",
        "127.0.0.1",
      )
      .option(
        "--redis <url>",
        "run jobs on BullMQ with this Redis (start `antidote worker`s); default: in-process",
      )
      .option("--max-body <size>", "largest upload: a delivery or a model (e.g. 1gb, 500mb)", "1gb")
      .option("--max-json <size>", "largest JSON body", "1mb")
      .option("--rate <n/s>", "requests per second each token may make (e.g. 20/s, 600/min)", "20/s")
      .option("--burst <n>", "requests a token may make at once after being idle (default: 2 s worth)")
      .option("--upload-dir <dir>", "where uploads are staged while verified (default: the OS temp dir)")
      .option(
        "--ingest-threads <n>",
        "threads verifying deliveries off the request loop (default: cores − 1, at most 4)",
      )
      .option(
        "--monitor <setup.json>",
        "run the monitors of this setup (`antidote monitor init`) on every accepted telemetry batch",
      )
      .addHelpText(
        "after",
        `
Examples:
  antidote serve                                          SQLite ledger, in-process jobs, 127.0.0.1:8600
  antidote serve --ledger postgres://antidote@db/antidote --redis redis://127.0.0.1:6379
  antidote serve --monitor monitor.json                   agents' telemetry watched as it arrives

Every request needs a token (\`antidote token create --role admin --principal you\`) as
Authorization: Bearer <token>; every POST, PUT, PATCH and DELETE a fresh Antidote-Request-Id.`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(serveFlags, flags);
    const ratePerSecond = parseRate(f.rate);
    const limits = {
      maxUploadBytes: parseSize(f.maxBody, "--max-body"),
      maxJsonBytes: parseSize(f.maxJson, "--max-json"),
      ratePerSecond,
      rateBurst: f.burst ?? Math.max(1, Math.ceil(ratePerSecond * 2)),
    };
    const location = f.ledger ?? (process.env.ANTIDOTE_LEDGER || undefined);
    const { startServer } = await import("../../server/serve.js");
    const monitor =
      f.monitor === undefined
        ? undefined
        : {
            setup: await (await import("../../monitor/setup.js")).readMonitorSetup(f.monitor),
            setupFile: f.monitor,
          };
    const server = await startServer({
      location,
      keyPath: f.ledgerKey,
      port: f.port,
      host: f.host,
      limits,
      uploadDir: f.uploadDir,
      ...(f.ingestThreads !== undefined ? { ingestThreads: f.ingestThreads } : {}),
      ...(monitor !== undefined ? { monitor } : {}),
      queue: (ledger) =>
        jobQueue(ledger, f.redis, {
          location: location ?? DEFAULT_LOCATION,
          ...(f.ledgerKey !== undefined ? { keyPath: f.ledgerKey } : {}),
        }),
    });
    const loopback = /^(127\.|::1$|localhost$)/.test(f.host);
    process.stdout.write(
      `antidote serve: listening on ${server.url} (ledger ${server.ledger.location}, jobs ${server.jobs.engine})\n` +
        `  API description: ${server.url}/openapi.json\n` +
        `  first token:     antidote token create --role admin --principal <you>${location === undefined ? "" : ` --ledger <the same ledger>`}\n` +
        (loopback ? "" : "  warning: not on loopback; tokens travel in headers, so serve it behind TLS.\n"),
    );
    await untilSignal();
    process.stdout.write("antidote serve: closing (requests in flight finish)…\n");
    await server.close();
  });
}

async function jobQueue(
  ledger: Ledger,
  redisUrl: string | undefined,
  isolate: { location: string; keyPath?: string },
) {
  const jobs = await import("../../jobs/index.js");
  // In-process jobs each run in a child process on the same ledger: a scan's minutes of
  // computing must not stall the requests this process answers.
  return redisUrl === undefined
    ? jobs.createInProcessQueue({ ledger, isolate })
    : jobs.createBullmqQueue({ ledger, redisUrl });
}

// The CLI's default is to exit at once on a signal (bin.ts); a server closes instead, and
// exits at once only on a second signal.
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    for (const [signal, code] of [
      ["SIGINT", 130],
      ["SIGTERM", 143],
    ] as const) {
      process.removeAllListeners(signal);
      process.once(signal, () => {
        process.once(signal, () => process.exit(code));
        resolve();
      });
    }
  });
}
