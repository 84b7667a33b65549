// Outputs that cannot destroy their input or leave half a file: each test performs the
// failure the security report described and checks what is left on disk.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweepStaleTemporaries, writeOutputFile } from "../../src/data/atomic-output.js";
import { convertDataset } from "../../src/data/convert.js";
import { memoryDataset } from "../../src/data/memory.js";
import { createWriter, openDataset } from "../../src/data/open.js";
import { sampleDigest, type Sample } from "../../src/data/sample.js";
import { isAntidoteError } from "../../src/errors.js";

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-atomic-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh, empty folder per case, so "no temporaries left" means an empty listing. */
function caseDir(): string {
  const d = join(dir, `case-${n++}`);
  mkdirSync(d);
  return d;
}

function textSample(i: number, label = "a"): Sample {
  const text = `sample ${i}`;
  return {
    id: `s${i}`,
    text,
    label,
    source: null,
    annotations: [],
    metadata: {},
    digest: sampleDigest({ text }),
  };
}

function imageSample(i: number, label: string | null = "1"): Sample {
  const data = new Float32Array(4).fill((i % 10) / 10);
  return {
    id: `img-${i}`,
    image: { height: 2, width: 2, channels: 1, data },
    label,
    source: null,
    annotations: [],
    metadata: {},
    digest: `sha256:${i}`,
  };
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isAntidoteError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a failure");
}

// A dataset whose stream breaks after `good` samples, as a malformed row would.
function breaksAfter(good: number, make: (i: number) => Sample = textSample) {
  const base = memoryDataset([]);
  return {
    info: base.info,
    async *samples() {
      for (let i = 0; i < good; i++) yield await Promise.resolve(make(i));
      throw new Error("row 5001 is malformed");
    },
  };
}

describe("atomic dataset outputs", () => {
  it("a convert that fails mid-way leaves the old output as it was and no temporaries", async () => {
    const d = caseDir();
    const out = join(d, "out.jsonl");
    writeFileSync(out, "old output\n");
    await expect(convertDataset(breaksAfter(5000), out, { overwrite: true })).rejects.toThrow(/malformed/);
    expect(readFileSync(out, "utf8")).toBe("old output\n");
    expect(readdirSync(d)).toEqual(["out.jsonl"]);
  });

  it("a failed first write leaves no output at all (Parquet, IDX pair, ImageFolder)", async () => {
    for (const name of ["out.parquet", "x-images-idx3-ubyte", "folder"]) {
      const d = caseDir();
      await expect(
        convertDataset(
          breaksAfter(300, (i) => imageSample(i)),
          join(d, name),
        ),
      ).rejects.toThrow(/malformed/);
      expect(readdirSync(d)).toEqual([]);
    }
  });

  it("a writer's own error (IDX shape, ImageFolder without image) removes its temporary", async () => {
    const d = caseDir();
    const idx = await createWriter(join(d, "x-images-idx3-ubyte"));
    await idx.write(imageSample(1));
    const bad = { ...imageSample(2), image: { height: 3, width: 1, channels: 1, data: new Float32Array(3) } };
    const shape = await failure(idx.write(bad));
    // The message names the output the user asked for, not the hidden temporary.
    expect(shape.message).toMatch(new RegExp(`^${join(d, "x-images-idx3-ubyte")}: sample "img-2" is 3x1x1`));
    const folder = await createWriter(join(d, "folder"));
    for (let i = 0; i < 50; i++) await folder.write(imageSample(i));
    expect((await failure(folder.write(textSample(99)))).message).toMatch(/no image/);
    expect(readdirSync(d)).toEqual([]);
  });

  it("abort() throws away what was written; close() makes it appear whole", async () => {
    const d = caseDir();
    const writer = await createWriter(join(d, "a.csv"));
    await writer.write(textSample(1));
    expect(readdirSync(d)).toHaveLength(1); // the hidden temporary only
    expect(readdirSync(d)[0]).toMatch(/^\.a\.csv\.tmp-\d+-[0-9a-f]{8}$/);
    await writer.abort();
    expect(readdirSync(d)).toEqual([]);
    const ok = await createWriter(join(d, "a.csv"));
    await ok.write(textSample(1));
    expect(await ok.close()).toBe(1);
    expect(readdirSync(d)).toEqual(["a.csv"]);
  });

  it("refuses an existing output unless overwrite is set, then replaces it", async () => {
    const d = caseDir();
    const out = join(d, "out.jsonl");
    writeFileSync(out, "precious\n");
    const refused = await failure(createWriter(out));
    expect(refused.code).toBe("USAGE");
    expect(refused.message).toBe(`${out} already exists; pass --force to replace it.`);
    expect(readFileSync(out, "utf8")).toBe("precious\n");
    const { written } = await convertDataset(memoryDataset([textSample(1), textSample(2)]), out, {
      overwrite: true,
    });
    expect(written).toBe(2);
    expect((await openDataset(out)).info.count ?? 2).toBe(2);
    expect(readFileSync(out, "utf8")).toContain('"id":"s2"');
  });

  it("replaces an ImageFolder it wrote, but never a directory that is not one", async () => {
    const d = caseDir();
    const folder = join(d, "folder");
    await convertDataset(memoryDataset([imageSample(1, "cat")]), folder);
    await convertDataset(memoryDataset([imageSample(2, "dog")]), folder, { overwrite: true });
    expect(readdirSync(folder).sort()).toEqual(["dog", "metadata.jsonl"]);
    expect(readdirSync(d)).toEqual(["folder"]);
    const home = join(d, "home");
    mkdirSync(home);
    writeFileSync(join(home, "notes.txt"), "mine");
    const e = await failure(convertDataset(memoryDataset([imageSample(1)]), home, { overwrite: true }));
    expect(e.message).toMatch(/not an ImageFolder Antidote wrote/);
    expect(readFileSync(join(home, "notes.txt"), "utf8")).toBe("mine");
  });

  it("refuses the input as output: the same path, another spelling, a hard link, a directory holding it", async () => {
    const d = caseDir();
    const input = join(d, "in.jsonl");
    await convertDataset(memoryDataset([textSample(1)]), input);
    const before = readFileSync(input);
    const dataset = await openDataset(input);
    linkSync(input, join(d, "link.jsonl"));
    for (const out of [input, join(d, ".", "x", "..", "in.jsonl"), join(d, "link.jsonl")]) {
      const e = await failure(convertDataset(dataset, out, { overwrite: true }));
      expect(e.code).toBe("USAGE");
      expect(e.message).toContain(`is the input ${input}`);
    }
    const e = await failure(convertDataset(dataset, d, { format: "imagefolder", overwrite: true }));
    expect(e.message).toBe(
      `the output ${d} is a directory holding the input ${input}; write to another path.`,
    );
    expect(readFileSync(input)).toEqual(before);
  });

  it("writes a small file whole, with its mode, and refuses to replace it without overwrite", async () => {
    const d = caseDir();
    const key = join(d, "k.key");
    await writeOutputFile(key, "secret", { mode: 0o600 });
    expect((await import("node:fs")).statSync(key).mode & 0o777).toBe(0o600);
    expect((await failure(writeOutputFile(key, "other"))).message).toMatch(/already exists/);
    expect(readFileSync(key, "utf8")).toBe("secret");
    await writeOutputFile(key, "other", { overwrite: true });
    expect(readFileSync(key, "utf8")).toBe("other");
    expect(readdirSync(d)).toEqual(["k.key"]);
  });
});

describe("sweepStaleTemporaries", () => {
  it("removes a dead process's old temporaries, keeps live and fresh ones and other files", async () => {
    const d = caseDir();
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    const old = Date.now() / 1000 - 3600;
    const stale = `.out.parquet.tmp-${dead}-0123abcd`;
    mkdirSync(join(d, stale));
    writeFileSync(join(d, stale, "out.parquet"), "half");
    writeFileSync(join(d, `.folder.old-${dead}-89abcdef`), "");
    const fresh = `.fresh.jsonl.tmp-${dead}-00000000`;
    const live = `.live.jsonl.tmp-${process.pid}-11111111`;
    for (const name of [fresh, live, ".staging-x.parquet", "data.jsonl"]) writeFileSync(join(d, name), "");
    for (const name of [stale, `.folder.old-${dead}-89abcdef`, live, ".staging-x.parquet", "data.jsonl"])
      utimesSync(join(d, name), old, old);
    const removed = await sweepStaleTemporaries(d);
    expect(removed.sort()).toEqual([`.folder.old-${dead}-89abcdef`, stale]);
    expect(readdirSync(d).sort()).toEqual(
      [
        ".fresh.jsonl.tmp-" + dead + "-00000000",
        ".live.jsonl.tmp-" + process.pid + "-11111111",
        ".staging-x.parquet",
        "data.jsonl",
      ].sort(),
    );
    // A wider pattern, e.g. for the ledger store's staging files, names where the pid is.
    const staging = `.staging-${dead}-abc.parquet`;
    writeFileSync(join(d, staging), "");
    utimesSync(join(d, staging), old, old);
    expect(await sweepStaleTemporaries(d, { pattern: /^\.staging-(?<pid>\d+)-/ })).toEqual([staging]);
  });

  it("runs when a writer starts in that folder", async () => {
    const d = caseDir();
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    const stale = join(d, `.out.jsonl.tmp-${dead}-deadbeef`);
    writeFileSync(stale, "left by kill -9");
    utimesSync(stale, 1, 1);
    await convertDataset(memoryDataset([textSample(1)]), join(d, "out.jsonl"));
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(d)).toEqual(["out.jsonl"]);
  });
});
