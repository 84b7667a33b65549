// Hashing throughput of `hashFiles` (the worker pool behind `antidote sign` / `verify`)
// against GNU sha256sum, on a multi-GiB delivery of a few large files and ~2,000 small ones.
//   npx tsx bench/hash.ts        (first run writes ~2.5 GiB under .cache/bench/hash; reused after)
// Files are read once before timing so every method sees a warm page cache: this measures
// hashing, not the disk. The goal: per core, hashFiles at least 0.8× one sha256sum process.
import { execFileSync, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
  closeSync,
} from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { hashFiles } from "../src/provenance/hash-files.js";

const DIR = join(process.cwd(), ".cache", "bench", "hash");
const LARGE = { count: 4, bytes: 512 * 1024 * 1024 };
const SMALL = { count: 2000, minBytes: 4 * 1024, maxBytes: 512 * 1024 };
const LAYOUT = JSON.stringify({ LARGE, SMALL, v: 1 });
const RUNS = 2;

function prepare(): string[] {
  const marker = join(DIR, ".layout.json");
  if (!existsSync(marker) || readFileSync(marker, "utf8") !== LAYOUT) {
    process.stdout.write(`writing the benchmark delivery under ${DIR} …\n`);
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(join(DIR, "large"), { recursive: true });
    mkdirSync(join(DIR, "small"), { recursive: true });
    const block = Buffer.allocUnsafe(16 * 1024 * 1024);
    for (let i = 0; i < LARGE.count; i++) {
      const fd = openSync(join(DIR, "large", `shard-${i}.bin`), "w");
      for (let done = 0; done < LARGE.bytes; done += block.length) writeSync(fd, randomFillSync(block));
      closeSync(fd);
    }
    // Sizes spread evenly over [min, max] by a fixed rule, so every machine builds the same layout.
    for (let i = 0; i < SMALL.count; i++) {
      const size =
        SMALL.minBytes +
        ((i * 7919) % SMALL.count) * Math.floor((SMALL.maxBytes - SMALL.minBytes) / SMALL.count);
      const fd = openSync(join(DIR, "small", `part-${String(i).padStart(4, "0")}.bin`), "w");
      writeSync(fd, randomFillSync(block.subarray(0, size)));
      closeSync(fd);
    }
    execFileSync("sh", ["-c", `printf '%s' '${LAYOUT}' > '${marker}'`]);
  }
  const files = [
    ...readdirSync(join(DIR, "large")).map((f) => join(DIR, "large", f)),
    ...readdirSync(join(DIR, "small")).map((f) => join(DIR, "small", f)),
  ].sort();
  return files;
}

/** Best wall time of RUNS runs, in seconds. */
async function best(run: () => unknown): Promise<number> {
  let min = Infinity;
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    await run();
    min = Math.min(min, (performance.now() - t) / 1000);
  }
  return min;
}

function shell(script: string): string {
  const r = spawnSync("sh", ["-c", script], { cwd: DIR, maxBuffer: 1 << 28, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout;
}

async function main(): Promise<void> {
  const files = prepare();
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
  const cores = availableParallelism();
  process.stdout.write(
    `${files.length} files, ${(bytes / 2 ** 30).toFixed(2)} GiB (${LARGE.count} × ${LARGE.bytes / 2 ** 20} MiB + ${SMALL.count} small), ${cores} cores\n`,
  );
  shell("find . -type f ! -name '.*' -print0 | xargs -0 cat > /dev/null"); // warm the page cache

  // Correctness first: every digest agrees with sha256sum.
  const ours = await hashFiles(files);
  const theirs = new Map(
    shell("find . -type f ! -name '.*' -print0 | xargs -0 sha256sum")
      .trim()
      .split("\n")
      .map((l) => [join(DIR, l.slice(66).replace(/^\.\//, "")), l.slice(0, 64)] as const),
  );
  const wrong = ours.filter((d) => theirs.get(d.path) !== d.sha256);
  if (wrong.length > 0)
    throw new Error(`${wrong.length} digests differ from sha256sum, e.g. ${wrong[0]?.path}`);

  const rows: { method: string; threads: number; seconds: number }[] = [];
  rows.push({
    method: "sha256sum (one process)",
    threads: 1,
    seconds: await best(() => shell("find . -type f ! -name '.*' -print0 | xargs -0 sha256sum > /dev/null")),
  });
  rows.push({
    method: `xargs -P${cores} sha256sum`,
    threads: cores,
    // One large file per process, then the small ones in batches, so no process gets all the big files.
    seconds: await best(() =>
      shell(
        `{ find large -type f -print0 | xargs -0 -n 1 -P${cores} sha256sum; ` +
          `find small -type f -print0 | xargs -0 -n 32 -P${cores} sha256sum; } > /dev/null`,
      ),
    ),
  });
  // OpenSSL's SHA-256 (SHA-NI where the CPU has it) is what node:crypto uses: the fair per-core ceiling.
  if (spawnSync("sh", ["-c", "command -v openssl"]).status === 0)
    rows.push({
      method: "openssl dgst -sha256 (one process)",
      threads: 1,
      seconds: await best(() =>
        shell("find . -type f ! -name '.*' -print0 | xargs -0 openssl dgst -sha256 > /dev/null"),
      ),
    });
  rows.push({
    method: "hashFiles, 1 thread",
    threads: 1,
    seconds: await best(() => hashFiles(files, { threads: 1 })),
  });
  rows.push({
    method: `hashFiles, ${cores} threads`,
    threads: cores,
    seconds: await best(() => hashFiles(files)),
  });

  const baseline = bytes / rows[0]!.seconds / 1e9;
  process.stdout.write(
    `\n| method | threads | seconds | GB/s | GB/s per core | per core vs sha256sum |\n|---|---|---|---|---|---|\n`,
  );
  for (const r of rows) {
    const gbs = bytes / r.seconds / 1e9;
    process.stdout.write(
      `| ${r.method} | ${r.threads} | ${r.seconds.toFixed(2)} | ${gbs.toFixed(2)} | ${(gbs / r.threads).toFixed(2)} | ${(gbs / r.threads / baseline).toFixed(2)} |\n`,
    );
  }
  const all = rows[rows.length - 1]!;
  const ratio = bytes / all.seconds / 1e9 / all.threads / baseline;
  process.stdout.write(
    `\nhashFiles on ${cores} cores: ${ratio.toFixed(2)}× sha256sum per core (goal ≥ 0.80): ${ratio >= 0.8 ? "met" : "NOT met"}\n`,
  );
}

await main();
