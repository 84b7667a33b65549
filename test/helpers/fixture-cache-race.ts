// One of the processes fixture-cache.test.ts starts at once: asks for the same slow fixture and
// prints it; the builder appends a line to the log file given, so the test can count builds.
import { appendFileSync } from "node:fs";
import { cachedFixture } from "./fixture-cache.js";

const [log, who] = process.argv.slice(2);
const value = await cachedFixture(
  "race",
  { n: 100 },
  async () => {
    appendFileSync(log!, `built by ${who}\n`);
    await new Promise((r) => setTimeout(r, 1500));
    const xs = Float64Array.from({ length: 100 }, (_, i) => i);
    return { xs };
  },
  { sources: [import.meta.url] },
);
const xs = value.xs;
process.stdout.write(
  JSON.stringify({ sum: xs.reduce((a, b) => a + b, 0), first: xs[0], last: xs[99] }) + "\n",
);
