// A streaming multipart/form-data reader (RFC 7578) for uploads: file parts go straight to
// disk as they arrive, so a delivery of hundreds of megabytes never sits in memory, and the
// whole body is counted against a limit while it streams (a chunked upload has no
// Content-Length to check up front). Hono's own `parseBody` buffers every file in memory,
// which is right for forms and wrong for datasets.
//
// Only what a route expects is accepted: file parts of the named fields, each written under
// the directory that field names, with the client's file name checked by `checkUploadName`
// (no separators, no `..`, no NUL, no leading dot, at most 255 bytes) and created exclusively
// (O_EXCL), so a name can neither leave the directory nor overwrite another part; and text
// fields of the named names, each at most a few kilobytes. Anything else is a 400.
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { HttpError } from "./errors.js";

export interface UploadedFile {
  field: string;
  /** The client's file name, checked; the file is `join(dir, filename)`. */
  filename: string;
  path: string;
  size: number;
}

export interface MultipartForm {
  fields: Record<string, string>;
  files: UploadedFile[];
}

export interface MultipartOptions {
  /** File fields and where their parts are written (each directory must exist, empty). */
  files: Record<
    string,
    {
      dir: string;
      maxCount: number;
      /** Accept `checkUploadPath` names (a directory delivery). */ nested?: boolean;
    }
  >;
  /** Text fields the route reads. */
  fields: readonly string[];
  /** Most bytes the whole body may hold; more is a 413. */
  maxBytes: number;
  /** Called as each text field arrives; may throw to refuse the request before the rest is read. */
  onField?: (name: string, value: string) => void | Promise<void>;
}

const MAX_FIELD_BYTES = 64 * 1024;
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_PREAMBLE_BYTES = 1024;
const CRLF = Buffer.from("\r\n");
const HEADERS_END = Buffer.from("\r\n\r\n");

/** Why an uploaded file name is refused, or undefined when it is a plain file name. */
export function checkUploadName(name: string): string | undefined {
  if (name === "") return "is empty";
  if (Buffer.byteLength(name, "utf8") > 255) return "is longer than 255 bytes";
  if (name.includes("/") || name.includes("\\")) return "holds a path separator";
  if (name.includes("..")) return 'holds ".."';
  if (name.startsWith(".")) return "starts with a dot";
  if (/\p{Cc}/u.test(name)) return "holds a control character (NUL included)";
  return undefined;
}

/** Most directory levels a nested upload name may have (an ImageFolder delivery has one or two). */
const MAX_UPLOAD_DEPTH = 8;

/**
 * Why a nested upload name ("train/Bag/00017.png": a directory delivery's file, named as its
 * signed manifest names it) is refused, or undefined. Each `/`-separated segment must pass
 * `checkUploadName`, so no segment is empty, "..", hidden, or holds a backslash: the name
 * stays inside the upload directory however it is joined.
 */
export function checkUploadPath(name: string): string | undefined {
  if (Buffer.byteLength(name, "utf8") > 1024) return "is longer than 1024 bytes";
  const segments = name.split("/");
  if (segments.length > MAX_UPLOAD_DEPTH) return `is more than ${MAX_UPLOAD_DEPTH} levels deep`;
  for (const segment of segments) {
    const why = checkUploadName(segment);
    if (why !== undefined) return segment === "" ? "holds an empty path segment" : why;
  }
  return undefined;
}

/** The boundary of a multipart/form-data content type (RFC 2046 §5.1.1). */
export function multipartBoundary(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (boundary === undefined || !/^[0-9A-Za-z'()+_,./:=? -]*[0-9A-Za-z'()+_,./:=?-]$/.test(boundary))
    throw new HttpError(400, "USAGE", "the multipart/form-data content type has no valid boundary.");
  return boundary;
}

/** Read a multipart body, writing file parts to disk. Files written before a failure stay for the caller to remove. */
export async function readMultipart(
  body: ReadableStream<Uint8Array> | null,
  contentType: string,
  options: MultipartOptions,
): Promise<MultipartForm> {
  const parser = new Parser(multipartBoundary(contentType), options);
  try {
    if (body !== null) {
      const reader = body.getReader();
      for (;;) {
        const { done, value } = await reader.read().catch((e: unknown) => {
          // The client went away mid-upload: nothing to answer, but not a server fault either.
          throw new HttpError(400, "USAGE", "the upload was interrupted before it ended.", {}, e);
        });
        if (done) break;
        await parser.push(value);
      }
    }
    return parser.finish();
  } finally {
    await parser.abandon();
  }
}

type State = "preamble" | "after-boundary" | "headers" | "body" | "end";

interface OpenPart {
  name: string;
  file?: { handle: FileHandle; record: UploadedFile };
  text?: Buffer[];
  textBytes: number;
}

class Parser {
  private readonly dashBoundary: Buffer;
  private readonly delimiter: Buffer;
  private state: State = "preamble";
  private pending = Buffer.alloc(0);
  private total = 0;
  private part: OpenPart | undefined;
  private readonly form: MultipartForm = { fields: {}, files: [] };

  constructor(
    boundary: string,
    private readonly options: MultipartOptions,
  ) {
    this.dashBoundary = Buffer.from(`--${boundary}`);
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  async push(chunk: Uint8Array): Promise<void> {
    this.total += chunk.length;
    if (this.total > this.options.maxBytes)
      throw new HttpError(
        413,
        "PAYLOAD_TOO_LARGE",
        `the upload is larger than this server's limit of ${this.options.maxBytes} bytes.`,
      );
    if (this.state === "end") return; // the epilogue is ignored
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    while (await this.step());
  }

  finish(): MultipartForm {
    if (this.state !== "end")
      throw new HttpError(400, "USAGE", "the multipart body ends before its closing boundary.");
    return this.form;
  }

  /** Close a file left open by a failure (the request ended or was refused mid-part). */
  async abandon(): Promise<void> {
    await this.part?.file?.handle.close().catch(() => undefined);
    this.part = undefined;
  }

  // One move of the state machine over `pending`; false when it needs more bytes.
  private async step(): Promise<boolean> {
    const buf = this.pending;
    switch (this.state) {
      case "preamble": {
        const at = buf.indexOf(this.dashBoundary);
        if (at < 0) {
          if (buf.length > MAX_PREAMBLE_BYTES + this.dashBoundary.length)
            throw malformed("no boundary where the body should start");
          return false;
        }
        this.pending = buf.subarray(at + this.dashBoundary.length);
        this.state = "after-boundary";
        return true;
      }
      case "after-boundary": {
        if (buf.length < 2) return false;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          this.state = "end";
          this.pending = Buffer.alloc(0);
          return false;
        }
        if (!buf.subarray(0, 2).equals(CRLF)) throw malformed("a boundary is not followed by a line break");
        this.pending = buf.subarray(2);
        this.state = "headers";
        return true;
      }
      case "headers": {
        const end = buf.subarray(0, 2).equals(CRLF) ? -2 : buf.indexOf(HEADERS_END);
        if (end === -1) {
          if (buf.length > MAX_HEADER_BYTES) throw malformed("a part's headers are too long");
          return false;
        }
        const headers = end === -2 ? "" : buf.subarray(0, end).toString("utf8");
        this.pending = buf.subarray(end === -2 ? 2 : end + HEADERS_END.length);
        await this.beginPart(headers);
        this.state = "body";
        return true;
      }
      case "body": {
        const at = buf.indexOf(this.delimiter);
        if (at >= 0) {
          await this.write(buf.subarray(0, at));
          this.pending = buf.subarray(at + this.delimiter.length);
          await this.endPart();
          this.state = "after-boundary";
          return true;
        }
        // Keep a tail that may be the start of the delimiter; the rest is content.
        const safe = buf.length - (this.delimiter.length - 1);
        if (safe > 0) {
          await this.write(buf.subarray(0, safe));
          this.pending = buf.subarray(safe);
        }
        return false;
      }
      case "end":
        return false;
    }
  }

  private async beginPart(headerText: string): Promise<void> {
    const disposition = headerText
      .split("\r\n")
      .map((line) => /^content-disposition:\s*(.*)$/i.exec(line)?.[1])
      .find((v) => v !== undefined);
    const params = disposition === undefined ? undefined : dispositionParams(disposition);
    const name = params?.get("name");
    if (params === undefined || name === undefined || name === "")
      throw malformed("a part has no Content-Disposition: form-data name");
    const filename = params.get("filename*") ?? params.get("filename");
    if (filename === undefined) {
      if (!this.options.fields.includes(name))
        throw new HttpError(400, "USAGE", `form field "${fieldLabel(name)}" is not one this route reads.`);
      if (name in this.form.fields) throw new HttpError(400, "USAGE", `form field "${name}" is given twice.`);
      this.part = { name, text: [], textBytes: 0 };
      return;
    }
    const target = this.options.files[name];
    if (target === undefined)
      throw new HttpError(400, "USAGE", `file field "${fieldLabel(name)}" is not one this route reads.`);
    const why = target.nested === true ? checkUploadPath(filename) : checkUploadName(filename);
    if (why !== undefined)
      throw new HttpError(400, "USAGE", `upload file name ${JSON.stringify(filename)} ${why}.`);
    if (this.form.files.filter((f) => f.field === name).length >= target.maxCount)
      throw new HttpError(400, "USAGE", `file field "${name}" takes at most ${target.maxCount} file(s).`);
    const path = join(target.dir, filename);
    // Directories are made by us inside the fresh upload directory: no link can be on the way.
    if (filename.includes("/")) await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // "wx": created new, never through an existing file or link; private to the server's user.
    const handle = await open(path, "wx", 0o600).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === "EEXIST")
        throw new HttpError(400, "USAGE", `upload file name "${filename}" is given twice.`);
      throw e;
    });
    const record = { field: name, filename, path, size: 0 };
    this.form.files.push(record);
    this.part = { name, file: { handle, record }, textBytes: 0 };
  }

  private async write(bytes: Buffer): Promise<void> {
    const part = this.part;
    if (part === undefined || bytes.length === 0) return;
    if (part.file !== undefined) {
      await part.file.handle.write(bytes);
      part.file.record.size += bytes.length;
      return;
    }
    part.textBytes += bytes.length;
    if (part.textBytes > MAX_FIELD_BYTES)
      throw new HttpError(400, "USAGE", `form field "${part.name}" is longer than ${MAX_FIELD_BYTES} bytes.`);
    part.text?.push(Buffer.from(bytes));
  }

  private async endPart(): Promise<void> {
    const part = this.part;
    this.part = undefined;
    if (part === undefined) return;
    if (part.file !== undefined) {
      await part.file.handle.close();
      return;
    }
    const value = Buffer.concat(part.text ?? []).toString("utf8");
    this.form.fields[part.name] = value;
    await this.options.onField?.(part.name, value);
  }
}

// `form-data; name="data"; filename="a b.csv"` → name, filename (RFC 5987
// `filename*=UTF-8''a%20b.csv` decoded).
function dispositionParams(value: string): Map<string, string> | undefined {
  const type = /^\s*form-data\s*(;|$)/i.exec(value);
  if (type === null) return undefined;
  const params = new Map<string, string>();
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) {
    const key = (m[1] ?? "").toLowerCase();
    // Backslashes are kept, not unescaped: browsers and fetch's FormData send them raw, and a
    // name that holds one is refused anyway (checkUploadName).
    const raw = m[2] !== undefined ? m[2] : (m[3] ?? "").trim();
    if (key === "filename*") {
      const ext = /^utf-8'[^']*'(.*)$/i.exec(raw);
      if (ext === null) throw malformed("filename* is not UTF-8 (RFC 5987)");
      try {
        params.set(key, decodeURIComponent(ext[1] ?? ""));
      } catch {
        throw malformed("filename* is not valid percent-encoding");
      }
    } else params.set(key, raw);
  }
  return params;
}

function malformed(why: string): HttpError {
  return new HttpError(400, "USAGE", `the multipart body is malformed: ${why}.`);
}

// A field name is the client's text: quote at most a short, printable prefix of it.
function fieldLabel(name: string): string {
  return name.replace(/\p{Cc}/gu, "?").slice(0, 64);
}
