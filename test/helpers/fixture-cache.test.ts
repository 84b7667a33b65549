// The shared fixture cache: values survive the disk round trip, the key covers the recipe and the
// code, and processes started together build a fixture once (the others wait for it).
import { execFile } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { cachedFixture, canonicalJson, fixtureKey, readValue, REPO_ROOT } from "./fixture-cache.js";

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), "antidote-fixture-cache-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const HERE = import.meta.url;

/** Runs `fn` with ANTIDOTE_TEST_CACHE pointing at a fresh folder. */
async function withCache<T>(name: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = join(root, name);
  const before = process.env.ANTIDOTE_TEST_CACHE;
  process.env.ANTIDOTE_TEST_CACHE = dir;
  try {
    return await fn(dir);
  } finally {
    if (before === undefined) delete process.env.ANTIDOTE_TEST_CACHE;
    else process.env.ANTIDOTE_TEST_CACHE = before;
  }
}

describe("cachedFixture", () => {
  it("stores JSON with typed arrays, non-finite numbers and −0, and reads back equal values", async () => {
    const value = {
      net: {
        layers: [{ kind: "dense", weight: Float32Array.from([1.5, -2, 3e-8]), bias: new Float32Array(0) }],
      },
      labels: Int32Array.from([-1, 0, 9]),
      y: Uint8Array.from([0, 255]),
      scores: Float64Array.from([NaN, Infinity, -Infinity, 0.1]),
      nan: NaN,
      negativeZero: -0,
      nothing: null,
      text: "ok",
      list: [1, [2, { deep: Uint32Array.from([7]) }]],
    };
    await withCache("roundtrip", async (dir) => {
      let builds = 0;
      const recipe = { n: 3, attack: { kind: "patch" } };
      const first = await cachedFixture("roundtrip", recipe, () => (builds++, value), { sources: [HERE] });
      expect(first).toBe(value);
      const [entry] = readdirSync(dir);
      expect(entry).toMatch(/^roundtrip-[0-9a-f]{24}$/);
      // A fresh process would read it from disk: decode it as one would.
      const read = await readValue<typeof value>(join(dir, entry!));
      expect(read).toEqual(value);
      expect(read.net.layers[0]!.weight).toBeInstanceOf(Float32Array);
      expect(read.labels).toBeInstanceOf(Int32Array);
      expect(Object.is(read.negativeZero, -0)).toBe(true);
      expect(builds).toBe(1);
    });
  });

  it("keys by recipe, whatever the order of its fields, and by the code that builds it", () => {
    const a = fixtureKey("m", { seed: 0, train: 6000, attack: { rate: 0.02, kind: "patch" } }, [HERE]);
    expect(fixtureKey("m", { attack: { kind: "patch", rate: 0.02 }, train: 6000, seed: 0 }, [HERE])).toBe(a);
    expect(fixtureKey("m", { seed: 1, train: 6000, attack: { rate: 0.02, kind: "patch" } }, [HERE])).not.toBe(
      a,
    );
    expect(fixtureKey("m", { seed: 0, train: 6000, attack: { rate: 0.01, kind: "patch" } }, [HERE])).not.toBe(
      a,
    );
    expect(
      fixtureKey("other", { seed: 0, train: 6000, attack: { rate: 0.02, kind: "patch" } }, [HERE]),
    ).not.toBe(a);
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');

    // The code: a builder module and what it imports, transitively.
    const builder = (dep: string): string => {
      const src = mkdtempSync(join(root, "src-"));
      writeFileSync(join(src, "builder.ts"), `import { x } from "./dep.js";\nexport const y = x;\n`);
      writeFileSync(join(src, "dep.ts"), dep);
      return join(src, "builder.ts");
    };
    const key = fixtureKey("m", { seed: 0 }, [builder("export const x = 1;\n")]);
    expect(fixtureKey("m", { seed: 0 }, [builder("export const x = 1;\n")])).toBe(key);
    expect(fixtureKey("m", { seed: 0 }, [builder("export const x = 2;\n")])).not.toBe(key);
  });

  it("three processes asking at once build the fixture once; all get the same value", async () => {
    await withCache("race", async (dir) => {
      const log = join(root, "race-builds.log");
      writeFileSync(log, "");
      const script = join(import.meta.dirname, "fixture-cache-race.ts");
      const tsx = join(REPO_ROOT, "node_modules", ".bin", "tsx");
      const outs = await Promise.all(
        [0, 1, 2].map((i) =>
          run(tsx, [script, log, String(i)], { env: { ...process.env, ANTIDOTE_TEST_CACHE: dir } }),
        ),
      );
      const values = outs.map((o) => o.stdout.trim());
      expect(new Set(values).size).toBe(1);
      expect(JSON.parse(values[0]!)).toEqual({ sum: 4950, first: 0, last: 99 });
      expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(1);
      // The finished artefact, and no lock or temporary folder left behind.
      expect(readdirSync(dir)).toEqual([expect.stringMatching(/^race-[0-9a-f]{24}$/)]);
    });
  }, 60_000);

  it("builds again when the owner of a lock died without finishing", async () => {
    await withCache("stale", async (dir) => {
      const key = fixtureKey("stale", { n: 1 }, [HERE]);
      mkdirSync(dir, { recursive: true });
      // A pid that is not running: the lock of a worker killed mid-build.
      writeFileSync(
        join(dir, `stale-${key}.lock`),
        JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), since: "" }),
      );
      const value = await cachedFixture("stale", { n: 1 }, () => ({ built: true }), { sources: [HERE] });
      expect(value).toEqual({ built: true });
      expect(readdirSync(dir).sort()).toEqual([`stale-${key}`]);
    });
  });

  it("deletes artefacts no run has used for a week when it stores a new one", async () => {
    await withCache("prune", async (dir) => {
      const old = new Date(Date.now() - 8 * 86_400_000);
      await cachedFixture("prune-a", { n: 1 }, () => ({ a: 1 }), { sources: [HERE] });
      await cachedFixture("prune-b", { n: 1 }, () => ({ b: 1 }), { sources: [HERE] });
      const [a, b] = readdirSync(dir).sort();
      // a unused for 8 days; b too, but then read (a read marks the artefact used).
      for (const entry of [a!, b!]) utimesSync(join(dir, entry, "value.json"), old, old);
      utimesSync(join(dir, b!, "value.json"), new Date(), new Date());
      await cachedFixture("prune-c", { n: 1 }, () => ({ c: 1 }), { sources: [HERE] });
      expect(readdirSync(dir).sort()).toEqual([b, expect.stringMatching(/^prune-c-[0-9a-f]{24}$/)]);
    });
  });

  it("refuses values it could not read back as they were", async () => {
    await withCache("refuse", async () => {
      await expect(
        cachedFixture("refuse", { n: 1 }, () => ({ m: new Map() }), { sources: [HERE] }),
      ).rejects.toThrow(/cannot store a Map/);
    });
  });
});
