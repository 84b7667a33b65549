// Outputs that never destroy their input and never leave a half-written file under the
// name a user asked for. Everything Antidote writes for a user (datasets, ground truth,
// bundles, keys, reports) is staged in a hidden temporary beside the output, in the same
// directory so the final step is a rename on one file system, and appears under its name
// only once complete. Before anything is written the output is checked: it may not be one
// of the inputs (`convert a.jsonl a.jsonl` used to empty a.jsonl), nor a directory that
// holds one, and an existing output is replaced only when the caller allows it.
//
// Temporaries are named `.<base>.tmp-<pid>-<8 hex>` (and `.<base>.old-<pid>-<8 hex>` for a
// directory being swapped out), so a process killed with -9 leaves names that say whose
// they were: `sweepStaleTemporaries` removes those of dead processes.
import { existsSync, lstatSync, readdirSync, realpathSync, rmSync, statSync, type Stats } from "node:fs";
import { chmod, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join, resolve, sep } from "node:path";
import { AntidoteError } from "../errors.js";
import type { DatasetWriter } from "./dataset.js";

export interface OutputOptions {
  /** Replace an existing output (the CLI's --force). Default: refuse. */
  overwrite?: boolean;
  /** Paths being read: the output may be none of them, nor a directory holding one. */
  inputs?: readonly (string | undefined)[];
}

export interface StageOptions extends OutputOptions {
  /** "directory" for an ImageFolder; "file" otherwise. */
  kind?: "file" | "directory";
  /** Files written beside the output that belong to it (an IDX labels file): committed with
   * it, refused like it, and removed when this run does not write them. */
  companions?: readonly string[];
}

/** An output being written: write under `path`, then `commit` or `abort`. */
export interface StagedOutput {
  /** Where to write: inside a hidden temporary directory, with the output's own base name. */
  readonly path: string;
  /** Move the finished output (and companions) onto their final names. */
  commit(): Promise<void>;
  /** Remove everything written. Safe to call twice, and after a failed commit. */
  abort(): Promise<void>;
}

/**
 * Refuse an output that is an input, a directory holding an input, or (without `overwrite`)
 * an existing file or non-empty directory. Nothing is written; throws USAGE naming both paths.
 */
export function checkOutput(path: string, options: StageOptions = {}): void {
  refuseInputAsOutput(path, options.inputs ?? []);
  for (const target of [path, ...(options.companions ?? [])]) {
    const info = lstatOrUndefined(target);
    if (info === undefined) continue;
    const isDir = info.isDirectory();
    if ((options.kind ?? "file") === "file" && isDir) {
      throw new AntidoteError("USAGE", `${target} is a directory; name an output file.`);
    }
    if (options.kind === "directory" && !isDir) {
      throw new AntidoteError("USAGE", `${target} exists and is not a directory; name a new directory.`);
    }
    if (isDir && readdirSync(target).length === 0) continue; // an empty directory holds nothing to lose
    if (options.overwrite !== true) {
      throw new AntidoteError("USAGE", `${target} already exists; pass --force to replace it.`);
    }
    // --force replaces what Antidote writes, not any directory a typo names.
    if (isDir && !existsSync(join(target, "metadata.jsonl"))) {
      throw new AntidoteError(
        "USAGE",
        `${target} is a non-empty directory that is not an ImageFolder Antidote wrote; remove it yourself or name a new directory.`,
      );
    }
  }
}

/** The first half of `checkOutput`: `path` may not be one of `inputs` nor a directory holding one. */
export function refuseInputAsOutput(path: string, inputs: readonly (string | undefined)[]): void {
  const out = canonical(path);
  for (const input of inputs) {
    if (input === undefined || !existsSync(input)) continue;
    const inp = realpathSync(input);
    if (inp === out || sameFile(input, path)) {
      throw new AntidoteError(
        "USAGE",
        `the output ${path} is the input ${input}; write to another path (the input would be destroyed).`,
      );
    }
    if (inp.startsWith(out.endsWith(sep) ? out : out + sep)) {
      throw new AntidoteError(
        "USAGE",
        `the output ${path} is a directory holding the input ${input}; write to another path.`,
      );
    }
  }
}

/** Check the output, then open a hidden temporary beside it for the writer. */
export async function stageOutput(path: string, options: StageOptions = {}): Promise<StagedOutput> {
  // A stream (/dev/stdout, a FIFO, a terminal) is written in place: it holds nothing to replace,
  // and renaming a file onto /dev/stdout would replace the device link itself.
  const target = statOrUndefined(path);
  if (target !== undefined && !target.isFile() && !target.isDirectory()) {
    refuseInputAsOutput(path, options.inputs ?? []);
    return { path, commit: () => Promise.resolve(), abort: () => Promise.resolve() };
  }
  checkOutput(path, options);
  const dir = dirname(resolve(path));
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new AntidoteError("USAGE", `${path}: cannot create its folder: ${reason(e)}.`, { cause: e });
  }
  await sweepStaleTemporaries(dir).catch(() => []);
  const temp = join(dir, temporaryName(path, "tmp"));
  try {
    await mkdir(temp);
  } catch (e) {
    throw new AntidoteError("USAGE", `${path}: cannot write in its folder: ${reason(e)}.`, { cause: e });
  }
  track(temp);
  let settled = false;
  const abort = async (): Promise<void> => {
    settled = true;
    await rm(temp, { recursive: true, force: true });
    untrack(temp);
  };
  return {
    path: join(temp, basename(path)),
    async commit() {
      if (settled) throw new AntidoteError("INTERNAL", `${path}: output committed or aborted twice.`);
      settled = true;
      try {
        await publish(join(temp, basename(path)), path, options.kind === "directory");
        for (const companion of options.companions ?? []) {
          const staged = join(temp, basename(companion));
          if (existsSync(staged)) await rename(staged, companion);
          else await rm(companion, { force: true }); // stale, from an earlier run
        }
      } catch (e) {
        throw e instanceof AntidoteError
          ? e
          : new AntidoteError("USAGE", `${path}: cannot move the finished output into place: ${reason(e)}.`, {
              cause: e,
            });
      } finally {
        await abort();
      }
    },
    abort,
  };
}

/**
 * A dataset writer whose output appears only on a successful `close`: `open` creates the
 * format's writer on the staged path. A failed write or close, or `abort`, removes it all.
 */
export async function stagedWriter(
  path: string,
  options: StageOptions,
  open: (stagedPath: string) => Promise<DatasetWriter>,
): Promise<DatasetWriter & { abort(): Promise<void> }> {
  const staged = await stageOutput(path, options);
  // The format's messages name the path it was given; the user named `path`.
  const named = (e: unknown): unknown => {
    if (e instanceof Error) e.message = e.message.split(staged.path).join(path);
    return e;
  };
  let inner: DatasetWriter;
  try {
    inner = await open(staged.path);
  } catch (e) {
    await staged.abort();
    throw named(e);
  }
  const abort = async (): Promise<void> => {
    await inner.abort?.().catch(() => undefined);
    await staged.abort();
  };
  return {
    async write(sample) {
      try {
        await inner.write(sample);
      } catch (e) {
        await abort();
        throw named(e);
      }
    },
    async close() {
      let written: number;
      try {
        written = await inner.close();
        await staged.commit();
      } catch (e) {
        await abort();
        throw named(e);
      }
      return written;
    },
    abort,
  };
}

/** Write a whole small file (JSON, a key, a bundle) through a temporary, after `checkOutput`. */
export async function writeOutputFile(
  path: string,
  data: string | Uint8Array,
  options: OutputOptions & { mode?: number } = {},
): Promise<void> {
  const staged = await stageOutput(path, options);
  try {
    await writeFile(staged.path, data, options.mode === undefined ? {} : { mode: options.mode });
    if (options.mode !== undefined) await chmod(staged.path, options.mode); // not narrowed by the umask
    await staged.commit();
  } catch (e) {
    await staged.abort();
    throw e instanceof AntidoteError
      ? e
      : new AntidoteError("USAGE", `${path}: cannot write: ${reason(e)}.`, { cause: e });
  }
}

/**
 * Remove this module's temporaries in `dir` whose process is gone and that are older than
 * `minAgeMs` (default a minute, so a process in another PID namespace sharing the folder
 * keeps its fresh ones). `pattern` widens what counts as a temporary: its named group `pid`
 * must capture the owner's process id. Returns the names removed; never throws.
 */
export async function sweepStaleTemporaries(
  dir: string,
  options: { minAgeMs?: number; pattern?: RegExp } = {},
): Promise<string[]> {
  const pattern = options.pattern ?? TEMPORARY;
  const minAge = options.minAgeMs ?? 60_000;
  const removed: string[] = [];
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.groups?.pid);
    if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info === undefined || Date.now() - info.mtimeMs < minAge) continue;
    await rm(join(dir, name), { recursive: true, force: true }).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}

/** `.<base>.<role>-<pid>-<8 hex>`: hidden, ours, and saying which process owns it. */
export function temporaryName(path: string, role: "tmp" | "old" = "tmp"): string {
  return `.${basename(path)}.${role}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

const TEMPORARY = /^\..*\.(?:tmp|old)-(?<pid>\d+)-[0-9a-f]{8}$/;

// A file replaces a file in one rename. A directory cannot be renamed onto a non-empty one,
// so the old one is moved aside first and put back if the new one cannot take its place.
async function publish(staged: string, final: string, directory: boolean): Promise<void> {
  const existing = lstatOrUndefined(final);
  if (!directory || existing === undefined || !existing.isDirectory() || readdirSync(final).length === 0) {
    await rename(staged, final);
    return;
  }
  const aside = join(dirname(resolve(final)), temporaryName(final, "old"));
  track(aside);
  await rename(final, aside);
  try {
    await rename(staged, final);
  } catch (e) {
    await rename(aside, final);
    untrack(aside);
    throw e;
  }
  await rm(aside, { recursive: true, force: true });
  untrack(aside);
}

// Temporaries still open when the process exits (an uncaught error, Ctrl-C through the CLI's
// signal handler, a caller that never aborted) are removed on the way out.
const live = new Set<string>();
let hooked = false;
function track(path: string): void {
  live.add(path);
  if (hooked) return;
  hooked = true;
  process.once("exit", () => {
    for (const p of live) rmSync(p, { recursive: true, force: true });
  });
}
function untrack(path: string): void {
  live.delete(path);
}

/** The real path of an output that may not exist yet: its nearest existing ancestor's, resolved. */
function canonical(path: string): string {
  const abs = resolve(path);
  let head = abs;
  const rest: string[] = [];
  while (!existsSync(head)) {
    const parent = dirname(head);
    if (parent === head) break;
    rest.unshift(basename(head));
    head = parent;
  }
  return join(existsSync(head) ? realpathSync(head) : head, ...rest);
}

// Hard links are the same file under two real paths.
function sameFile(a: string, b: string): boolean {
  const x = statOrUndefined(a);
  const y = statOrUndefined(b);
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // alive, someone else's
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
