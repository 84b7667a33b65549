// Where a dataset may read from. A row's image cell and an ImageFolder metadata record are
// data, and data may come from an attacker: if a cell could name any path, reading a
// dataset would read — then store, convert and export — any file this user can read
// (`../../home/me/.ssh/id_ed25519.png`, `/etc/shadow`, a symlink planted in a class
// directory). So every path a dataset names is resolved against the dataset's root after
// following links, and refused outside it unless the caller opts in. Pipes, sockets and
// devices are refused as well: a reader would block on them, or could read them only once.
import { realpathSync, statSync, type Stats } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { AntidoteError } from "../errors.js";

/**
 * A dataset's root directory: the directory holding a JSONL, CSV or Parquet file, or an
 * ImageFolder's directory. Its real path is taken once, on first use.
 */
export class DatasetRoot {
  private real: string | undefined;

  constructor(
    readonly root: string,
    private readonly allowOutside = false,
  ) {}

  /**
   * The real path of the regular file `reference` names (relative to the root unless
   * absolute), after checking that it lies inside the root. `at` says where the reference
   * was found ("data.jsonl:3 field \"image\""). The real path is what the caller should
   * read, so a link swapped after the check is not followed again.
   */
  resolveFile(reference: string, at: string): string {
    const lexical = resolve(this.root, reference);
    // Checked before touching the file system, so a refused path is refused whether or not it exists.
    if (!this.allowOutside && !isInside(resolve(this.root), lexical)) throw this.outside(reference, at);
    let real: string;
    try {
      real = realpathSync(lexical);
    } catch {
      throw new AntidoteError("FILE_NOT_FOUND", `${at}: image file ${lexical} does not exist.`);
    }
    if (!this.allowOutside && !isInside(this.realRoot(), real)) throw this.outside(reference, at, true);
    const kind = nonFileKind(statSync(real));
    if (kind !== undefined)
      throw new AntidoteError("ROW_MALFORMED", `${at}: ${quote(reference)} is ${kind}, not an image file.`);
    return real;
  }

  private realRoot(): string {
    if (this.real === undefined) {
      try {
        this.real = realpathSync(this.root);
      } catch {
        this.real = resolve(this.root);
      }
    }
    return this.real;
  }

  // The path as the dataset wrote it, never anything read from it.
  private outside(reference: string, at: string, viaLink = false): AntidoteError {
    return new AntidoteError(
      "PATH_OUTSIDE_ROOT",
      `${at}: ${quote(reference)} ${viaLink ? "leads through a link to" : "is"} a file outside the dataset's directory ${resolve(this.root)}; refused (allow it with --allow-outside-root only for a dataset you trust).`,
    );
  }
}

/**
 * Refuse a pipe, socket or device where a dataset file is expected: readers seek to the
 * start and make more than one pass, which a pipe cannot give (ESPIPE, or a silent second
 * pass over nothing).
 */
export function requireSeekable(path: string, stats: Stats = statSync(path)): void {
  if (stats.isFIFO() || stats.isSocket() || stats.isCharacterDevice() || stats.isBlockDevice()) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path} is ${nonFileKind(stats) ?? "not a file"}, not a file: a dataset is read more than once, so write it to a file first and pass that.`,
    );
  }
}

/** "a pipe", "a directory", … for anything that is not a regular file; undefined for a regular file. */
export function nonFileKind(stats: Stats): string | undefined {
  if (stats.isFile()) return undefined;
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a pipe";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  return "not a regular file";
}

// The root itself counts as inside: naming it ("", ".") is then refused as a directory.
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

// Paths are data: bounded and with control characters escaped, so a message stays one line.
function quote(reference: string): string {
  return JSON.stringify(reference.length > 200 ? `${reference.slice(0, 200)}…` : reference);
}
