// The worker-pool hasher against a plain one-shot SHA-256 of each file, on both of its paths
// (inline for small totals, worker threads above 16 MiB), with file order, sizes, progress
// and unreadable files.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { hashFiles } from "../../src/provenance/hash-files.js";

let dir: string;
let big: string[];
let small: string[];

const oracle = (path: string) => ({
  path,
  sha256: createHash("sha256").update(readFileSync(path)).digest("hex"),
  size: readFileSync(path).length,
});

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-hash-"));
  mkdirSync(join(dir, "small"));
  // 3 × 7 MiB (plus odd tails, so blocks do not divide evenly) pushes the total past the inline threshold.
  big = [0, 1, 2].map((i) => {
    const p = join(dir, `big-${i}.bin`);
    writeFileSync(p, randomBytes(7 * 1024 * 1024 + 12_345 * (i + 1)));
    return p;
  });
  small = Array.from({ length: 40 }, (_, i) => {
    const p = join(dir, "small", `f${i}.txt`);
    writeFileSync(p, i === 0 ? Buffer.alloc(0) : randomBytes(i * 997));
    return p;
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("hashFiles", () => {
  it("matches a one-shot SHA-256 of each file, in input order, with worker threads", async () => {
    const paths = [small[3]!, big[0]!, small[0]!, big[2]!, ...small.slice(10, 20), big[1]!];
    let last = [0, 0];
    const got = await hashFiles(paths, { threads: 2, onProgress: (done, total) => (last = [done, total]) });
    expect(got).toEqual(paths.map(oracle));
    const total = paths.reduce((n, p) => n + readFileSync(p).length, 0);
    expect(last).toEqual([total, total]);
  });

  it("gives the same answer inline (small total), with one thread and with more threads than files", async () => {
    const want = small.map(oracle);
    expect(await hashFiles(small)).toEqual(want);
    expect(await hashFiles([...big, ...small], { threads: 1 })).toEqual([...big, ...small].map(oracle));
    expect(await hashFiles(big, { threads: 8 })).toEqual(big.map(oracle));
    expect(await hashFiles([])).toEqual([]);
  });

  it("hashes the empty file to SHA-256 of nothing", async () => {
    const [r] = await hashFiles([small[0]!]);
    expect(r).toEqual({
      path: small[0],
      size: 0,
      sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    });
  });

  it("fails with FILE_NOT_FOUND naming a missing file, and INPUT_FORMAT for a directory", async () => {
    const missing = join(dir, "gone.bin");
    await expect(hashFiles([...big, missing], { threads: 2 })).rejects.toMatchObject({
      code: "FILE_NOT_FOUND",
      message: `${missing}: no such file.`,
    });
    const e = await hashFiles([join(dir, "small")]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AntidoteError);
    expect((e as AntidoteError).code).toBe("INPUT_FORMAT");
    expect((e as AntidoteError).message).toContain(join(dir, "small"));
  });
});
