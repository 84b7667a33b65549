#!/usr/bin/env node
// The executable. Besides running `main`, it makes the process behave like a Unix tool at
// its edges: a reader that goes away (`antidote … | head`) ends the output quietly instead
// of crashing on EPIPE, and Ctrl-C or a TERM exits through the normal path, so the
// temporaries of unfinished outputs are removed (see src/data/atomic-output.ts).
import { main } from "./main.js";

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE" && e.code !== "ERR_STREAM_DESTROYED") throw e;
  // Nobody is reading: drop the rest of the output. The command still finishes (an output
  // file it is writing is completed, not abandoned) and its exit status stands.
  process.stdout.write = (_chunk: unknown, encoding?: unknown, callback?: unknown) => {
    const done = typeof encoding === "function" ? encoding : callback;
    if (typeof done === "function") process.nextTick(done);
    return true;
  };
});
for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  process.once(signal, () => process.exit(code));
}

process.exitCode = await main(process.argv.slice(2));
