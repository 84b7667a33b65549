// `antidote serve`'s size and rate flags: what they accept, and that nonsense is a usage error
// naming the flag rather than a limit of NaN or zero (which would let every body or request through
// or refuse them all).
import { describe, expect, it } from "vitest";
import { parseRate, parseSize } from "../../src/cli/commands/serve.js";
import { antidote, expectUserError } from "../helpers/cli.js";
import { antidoteFailure } from "../helpers/errors.js";

describe("serve flags", () => {
  it("reads sizes and rates in the units --help shows", () => {
    expect(parseSize("1gb", "--max-body")).toBe(1024 ** 3);
    expect(parseSize("500mb", "--max-body")).toBe(500 * 1024 ** 2);
    expect(parseSize("1048576", "--max-json")).toBe(1048576);
    expect(parseRate("20/s")).toBe(20);
    expect(parseRate("600/min")).toBe(10);
  });

  it("refuses sizes and rates that would disable or break the limits, naming the flag", async () => {
    for (const text of ["", "abc", "0", "-5mb", "1e400", "10 parsecs", "0.1b"]) {
      const e = await antidoteFailure(Promise.resolve().then(() => parseSize(text, "--max-body")));
      expect([e.code, e.message]).toEqual(["USAGE", expect.stringMatching(/^--max-body: /)]);
    }
    for (const text of ["", "fast", "0/s", "-1/s", "5/hour"]) {
      const e = await antidoteFailure(Promise.resolve().then(() => parseRate(text)));
      expect([e.code, e.message]).toEqual(["USAGE", expect.stringMatching(/^--rate: /)]);
    }
  });

  it("refuses thread counts below one for serve's ingest and a worker's jobs, naming the flag", async () => {
    for (const bad of ["0", "1.5"]) {
      expectUserError(
        await antidote(["serve", "--ingest-threads", bad, "--port", "0"]),
        2,
        /--ingest-threads/,
      );
      expectUserError(
        await antidote(["worker", "--threads", bad, "--redis", "redis://127.0.0.1:1"]),
        2,
        /--threads/,
      );
    }
  });
});
