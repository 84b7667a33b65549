// Expensive test fixtures — trained models, proxy representations — built once and shared by every
// test file of a run (and by later runs while nothing they depend on changes).
//
// `cachedFixture(kind, recipe, build, { sources })` returns the value `build()` made for the same
// key, building it on first use. The key is a SHA-256 over:
//   - FIXTURE_CACHE_VERSION (bump it to drop every artefact at once);
//   - `kind` and `recipe`: everything the caller's builder takes as input (data slice, attack
//     parameters, seeds, training parameters), as canonical JSON;
//   - the code that builds it: the text of `sources` (the helper modules that define the recipe)
//     and of every module they import from this repository, transitively — so editing a trainer,
//     a simulator or a default in a helper gives a new key, never a stale artefact;
//   - package-lock.json (TF.js, onnxruntime and the other engines), the Node.js version and
//     platform, and the size and mtime of the installed Fashion-MNIST files.
// Artefacts live in .cache/test-fixtures/<kind>-<key>/ (gitignored, and outside node_modules so
// that `npm ci` keeps them); ANTIDOTE_TEST_CACHE=<folder> puts them elsewhere, and
// ANTIDOTE_TEST_CACHE=off builds every fixture afresh in each process, as before the cache.
// Vitest runs test files in parallel worker processes, so building is guarded by a lock:
// the first process to create <entry>.lock (open with "wx") builds into a private temporary folder
// and renames it to <entry> when complete (rename is atomic, so a reader sees a whole artefact or
// none); the others poll until <entry> appears, and take the lock over if its owner died. Within
// one process the decoded value is memoised: callers share it and must not modify it. Artefacts
// no run has used for a week are deleted when a new one is stored.
//
// Values are JSON with typed arrays (Float32Array, Uint8Array, …), stored as value.json plus one
// binary file; non-finite numbers and −0 survive the round trip.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FASHION_MNIST_DIR } from "./real-data.js";

/** Part of every key: bump to invalidate every cached fixture. */
export const FIXTURE_CACHE_VERSION = 1;

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface CacheOptions {
  /** Modules (file URLs or paths) whose code builds the fixture; their local imports are followed. */
  sources: readonly string[];
}

export type Recipe = Record<string, unknown>;

/** The cached value for `kind` + `recipe`, built by `build` on first use (see the module comment). */
export function cachedFixture<T>(
  kind: string,
  recipe: Recipe,
  build: () => Promise<T> | T,
  options: CacheOptions,
): Promise<T> {
  const key = fixtureKey(kind, recipe, options.sources);
  let value = memo.get(key) as Promise<T> | undefined;
  if (value === undefined) {
    value = cacheDir() === null ? Promise.resolve().then(build) : loadOrBuild(kind, recipe, key, build);
    memo.set(key, value);
    value.catch(() => memo.delete(key));
  }
  return value;
}

/** The key `cachedFixture` files a recipe under (exported for the cache's own tests). */
export function fixtureKey(kind: string, recipe: Recipe, sources: readonly string[]): string {
  return createHash("sha256")
    .update(
      canonicalJson({
        version: FIXTURE_CACHE_VERSION,
        kind,
        recipe,
        code: sources.map((s) => sourceDigest(toPath(s))),
        environment: environmentDigest(),
      }),
    )
    .digest("hex")
    .slice(0, 24);
}

/** The cache folder, or null when ANTIDOTE_TEST_CACHE=off. */
export function cacheDir(): string | null {
  const env = process.env.ANTIDOTE_TEST_CACHE;
  if (env === "off" || env === "0") return null;
  return env !== undefined && env !== "" ? resolve(env) : join(REPO_ROOT, ".cache", "test-fixtures");
}

// ---------------------------------------------------------------------------------------
// Build once across processes

const POLL_MS = 500;
const UNUSED_DAYS = 7;
const memo = new Map<string, Promise<unknown>>();

async function loadOrBuild<T>(
  kind: string,
  recipe: Recipe,
  key: string,
  build: () => Promise<T> | T,
): Promise<T> {
  const root = cacheDir()!;
  await mkdir(root, { recursive: true });
  const entry = join(root, `${kind}-${key}`);
  const lock = `${entry}.lock`;
  for (;;) {
    const cached = await readIfPresent<T>(entry);
    if (cached !== undefined) return cached.value;
    const handle = await open(lock, "wx").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EEXIST") return null;
      throw e;
    });
    if (handle === null) {
      await waitForOwner(lock, entry);
      continue;
    }
    try {
      await handle.writeFile(
        JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }),
      );
      await handle.close();
      // Another process may have finished between our check and our lock.
      const late = await readIfPresent<T>(entry);
      if (late !== undefined) return late.value;
      const value = await build();
      const tmp = `${entry}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
      await mkdir(tmp);
      try {
        await writeValue(tmp, value, { kind, key, recipe, builtAt: new Date().toISOString() });
        await rename(tmp, entry).catch((e: NodeJS.ErrnoException) => {
          // Only after a lock was wrongly taken over: the other builder's artefact is as good.
          if (e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
        });
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      await pruneUnused(root);
      return value;
    } finally {
      await rm(lock, { force: true });
    }
  }
}

/** The stored value, marked as used now; undefined when there is none (or it was just pruned). */
async function readIfPresent<T>(entry: string): Promise<{ value: T } | undefined> {
  const file = join(entry, VALUE_JSON);
  if (!existsSync(file)) return undefined;
  try {
    const now = new Date();
    await utimes(file, now, now);
    return { value: await readValue<T>(entry) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * Every new key (a recipe or the code behind it changed) adds an artefact; those no run has used
 * for a week go, so the folder does not grow without bound.
 */
async function pruneUnused(root: string): Promise<void> {
  const cutoff = Date.now() - UNUSED_DAYS * 86_400_000;
  for (const name of await readdir(root)) {
    if (name.endsWith(".lock") || name.includes(".tmp-")) continue;
    const file = join(root, name, VALUE_JSON);
    if (existsSync(file) && statSync(file).mtimeMs < cutoff)
      await rm(join(root, name), { recursive: true, force: true });
  }
}

/** Until the artefact exists or the lock is gone; removes a lock whose owner process has died. */
async function waitForOwner(lock: string, entry: string): Promise<void> {
  for (;;) {
    if (existsSync(join(entry, VALUE_JSON)) || !existsSync(lock)) return;
    const owner = readOwner(lock);
    const dead =
      owner === null
        ? Date.now() - mtimeMs(lock) > 30_000 // its owner died between creating and writing it
        : owner.host === hostname() && !alive(owner.pid);
    if (dead) {
      await rm(lock, { force: true });
      return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function readOwner(lock: string): { pid: number; host: string } | null {
  try {
    const parsed = JSON.parse(readFileSync(lock, "utf8")) as { pid: number; host: string };
    return typeof parsed.pid === "number" ? parsed : null;
  } catch {
    return null; // just created, not yet written; or gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

// ---------------------------------------------------------------------------------------
// Values on disk: value.json (JSON, typed arrays replaced by references) + arrays.bin

const VALUE_JSON = "value.json";
const ARRAYS_BIN = "arrays.bin";

const TYPED = {
  Float32Array,
  Float64Array,
  Int8Array,
  Int16Array,
  Int32Array,
  Uint8Array,
  Uint16Array,
  Uint32Array,
} as const;
type TypedName = keyof typeof TYPED;
type Typed = InstanceType<(typeof TYPED)[TypedName]>;

async function writeValue(dir: string, value: unknown, about: Record<string, unknown>): Promise<void> {
  const chunks: Buffer[] = [];
  let offset = 0;
  const encode = (v: unknown): unknown => {
    if (typeof v === "number") {
      if (Number.isFinite(v) && !Object.is(v, -0)) return v;
      return { $number: Object.is(v, -0) ? "-0" : String(v) };
    }
    if (v === null || typeof v !== "object") {
      if (typeof v === "function" || typeof v === "bigint" || typeof v === "symbol")
        throw new Error(`fixture cache: cannot store a ${typeof v}`);
      return v;
    }
    if (ArrayBuffer.isView(v)) {
      const name = typedName(v);
      const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      const pad = (8 - (offset % 8)) % 8;
      if (pad > 0) chunks.push(Buffer.alloc(pad));
      offset += pad;
      chunks.push(bytes);
      const ref = { $typed: name, offset, length: (v as Typed).length };
      offset += bytes.length;
      return ref;
    }
    if (Array.isArray(v)) return v.map(encode);
    if (Object.getPrototypeOf(v) !== Object.prototype)
      throw new Error(`fixture cache: cannot store a ${v.constructor.name}`);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  };
  const json = JSON.stringify({ about, value: encode(value) });
  await writeFile(join(dir, ARRAYS_BIN), Buffer.concat(chunks));
  await writeFile(join(dir, VALUE_JSON), json);
}

/** The value stored in an artefact folder (what a process that did not build it gets). */
export async function readValue<T>(dir: string): Promise<T> {
  const [json, bin] = await Promise.all([
    readFile(join(dir, VALUE_JSON), "utf8"),
    readFile(join(dir, ARRAYS_BIN)),
  ]);
  const decode = (v: unknown): unknown => {
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) return v.map(decode);
    const o = v as Record<string, unknown>;
    if (typeof o.$number === "string") return o.$number === "-0" ? -0 : Number(o.$number);
    if (typeof o.$typed === "string") {
      const Ctor = TYPED[o.$typed as TypedName];
      const start = o.offset as number;
      const bytes = (o.length as number) * Ctor.BYTES_PER_ELEMENT;
      // A copy with its own buffer: aligned, and not a view into the file's bytes.
      return new Ctor(bin.buffer.slice(bin.byteOffset + start, bin.byteOffset + start + bytes));
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decode(x)]));
  };
  return decode((JSON.parse(json) as { value: unknown }).value) as T;
}

function typedName(v: ArrayBufferView): TypedName {
  for (const name of Object.keys(TYPED) as TypedName[])
    if (Object.getPrototypeOf(v) === TYPED[name].prototype) return name;
  // A Buffer is a Uint8Array; anything else (DataView, BigInt arrays) is not stored.
  if (v instanceof Uint8Array) return "Uint8Array";
  throw new Error(`fixture cache: cannot store a ${v.constructor.name}`);
}

// ---------------------------------------------------------------------------------------
// What the key covers besides the recipe

const digests = new Map<string, string>();

/** SHA-256 over a module's text and, transitively, every relative import's. */
export function sourceDigest(entry: string): string {
  const cached = digests.get(entry);
  if (cached !== undefined) return cached;
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue; // packages: covered by package-lock.json
      const target = resolveLocal(resolve(dirname(file), spec));
      if (target !== null) queue.push(target);
    }
  }
  const hash = createHash("sha256");
  const base = dirname(entry);
  for (const file of [...seen].sort()) {
    hash.update(relative(base, file));
    hash.update("\0");
    hash.update(readFileSync(file));
    hash.update("\0");
  }
  const digest = hash.digest("hex");
  digests.set(entry, digest);
  return digest;
}

function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)) out.push(m[1]!);
  return out;
}

function resolveLocal(path: string): string | null {
  const candidates = [path.replace(/\.js$/, ".ts"), path, `${path}.ts`, join(path, "index.ts")];
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return c;
  return null;
}

let environment: string | undefined;

function environmentDigest(): string {
  if (environment !== undefined) return environment;
  const hash = createHash("sha256");
  hash.update(`${process.version} ${process.platform} ${process.arch}\n`);
  const lock = join(REPO_ROOT, "package-lock.json");
  if (existsSync(lock)) hash.update(readFileSync(lock));
  for (const file of [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
  ]) {
    const path = join(FASHION_MNIST_DIR, file);
    if (!existsSync(path)) continue;
    const st = statSync(path);
    hash.update(`${file} ${st.size} ${st.mtimeMs}\n`);
  }
  environment = hash.digest("hex");
  return environment;
}

function toPath(source: string): string {
  return source.startsWith("file:") ? fileURLToPath(source) : resolve(source);
}

/** JSON with object keys sorted, so equal recipes give equal keys. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (ArrayBuffer.isView(v)) throw new Error("fixture cache: a recipe must be plain JSON");
    if (v !== null && typeof v === "object" && !Array.isArray(v))
      return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return v;
  });
}
