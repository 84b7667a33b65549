// NumPy .npy headers (format versions 1.0, 2.0 and 3.0, numpy.lib.format): the magic
// "\x93NUMPY", a version, a little-endian header length (u16 in v1, u32 in v2/v3), then a
// Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded to
// a multiple of 64 bytes, then the raw array. Only the header is parsed here; the data is
// read in blocks by tensor-file.ts. The dict is a Python literal, not JSON, so it goes
// through a small literal parser and then through zod like every other external input.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import type { TensorDtype } from "./tensor-file.js";

/** Where an array's header says its data lies: `offset` is the byte where element 0 starts. */
export interface NpyHeader {
  dtype: TensorDtype;
  shape: number[];
  fortranOrder: boolean;
  version: 1 | 2 | 3;
  /** Byte offset of the first element (the end of the header). */
  offset: number;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/**
 * numpy itself refuses headers above 10 000 bytes unless told otherwise; 1 MiB leaves room
 * for odd writers. Checked before the header is read.
 */
export const DEFAULT_NPY_MAX_HEADER_BYTES = 1 << 20;

const DESCR_TO_DTYPE: Record<string, TensorDtype> = { "<f4": "F32", "<f8": "F64", "<f2": "F16" };
const DTYPE_TO_DESCR: Partial<Record<TensorDtype, string>> = { F32: "<f4", F64: "<f8", F16: "<f2" };
const BYTES: Record<TensorDtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

const headerSchema = z.object({
  descr: z.string({ error: "must be a dtype string such as '<f4' (structured dtypes are not updates)" }),
  fortran_order: z.boolean({ error: "must be True or False" }),
  shape: z.array(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), {
    error: "must be a tuple of non-negative integers",
  }),
});

/** Bytes a reader must fetch to be sure the whole header is in hand, given the first 12 bytes. */
export function npyPreambleLength(version: 1 | 2 | 3): number {
  return version === 1 ? 10 : 12;
}

/**
 * Parse the header of an .npy file. `read(position, length)` returns up to `length` bytes at
 * `position` (fewer at the end of the file); `size` is the file's byte length. The data must
 * fill the rest of the file exactly: a short file is truncated, a long one carries bytes
 * nothing accounts for (and a digest over them would attest more than the update).
 */
export async function readNpyHeader(
  file: string,
  size: number,
  read: (position: number, length: number) => Promise<Buffer>,
  limits: { maxHeaderBytes?: number } = {},
): Promise<NpyHeader> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_NPY_MAX_HEADER_BYTES;
  const fail = (detail: string) => new AntidoteError("INPUT_FORMAT", `${file}: ${detail}`);
  const head = await read(0, 12);
  if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC))
    throw fail(`not a NumPy .npy file (bad magic: the file must start with "\\x93NUMPY").`);
  const major = head[6] ?? 0;
  const minor = head[7] ?? 0;
  if (major < 1 || major > 3 || minor !== 0)
    throw fail(`.npy format version ${major}.${minor} is not supported (1.0, 2.0 or 3.0).`);
  const version = major as 1 | 2 | 3;
  if (version !== 1 && head.length < 12) throw fail(`truncated: the file ends inside the .npy preamble.`);
  const headerLength = version === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const start = npyPreambleLength(version);
  if (headerLength > maxHeaderBytes)
    throw fail(`header length ${headerLength} is implausible (the limit is ${maxHeaderBytes} bytes).`);
  if (start + headerLength > size)
    throw fail(
      `truncated: the header length field says ${headerLength} bytes, but only ${size - start} follow the preamble.`,
    );
  const headerBytes = await read(start, headerLength);
  // v1 and v2 headers are latin-1 (in practice ASCII); v3 allows UTF-8 in field names.
  const text = headerBytes.toString(version === 3 ? "utf8" : "latin1");
  let literal: unknown;
  try {
    literal = parsePythonLiteral(text);
  } catch (e) {
    // The position, not the text: a message never quotes a file's contents.
    throw fail(`bad header: ${e instanceof Error ? e.message : String(e)}.`);
  }
  const parsed = headerSchema.safeParse(literal);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw fail(`header field '${String(issue?.path[0] ?? "")}' ${issue?.message ?? "is invalid"}.`);
  }
  const { descr, fortran_order: fortranOrder, shape } = parsed.data;
  const dtype = DESCR_TO_DTYPE[descr];
  if (dtype === undefined) throw fail(`header field 'descr' ${describeUnsupportedDescr(descr)}`);
  if (fortranOrder && shape.filter((s) => s !== 1).length > 1)
    throw fail(
      `header field 'fortran_order' is True for shape (${shape.join(", ")}); only C-order arrays (or 1-D ones) are read — save with np.ascontiguousarray.`,
    );
  const offset = start + headerLength;
  const elements = shape.reduce((a, b) => a * b, 1);
  const dataBytes = elements * BYTES[dtype];
  if (offset + dataBytes > size)
    throw fail(
      `truncated: shape (${shape.join(", ")}) of ${descr} needs ${dataBytes} data bytes, the file has ${size - offset}.`,
    );
  if (offset + dataBytes < size)
    throw fail(
      `${size - offset - dataBytes} bytes follow the array data of shape (${shape.join(", ")}); a .npy file holds one array.`,
    );
  return { dtype, shape, fortranOrder, version, offset };
}

/** The header bytes (preamble included) of a C-order little-endian array, padded to 64 bytes. */
export function encodeNpyHeader(dtype: TensorDtype, shape: readonly number[]): Buffer {
  const descr = DTYPE_TO_DESCR[dtype];
  if (descr === undefined)
    throw new AntidoteError(
      "USAGE",
      `.npy has no ${dtype} dtype; write F32, F64 or F16, or use .safetensors.`,
    );
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  // numpy pads with spaces and ends with "\n" so the data starts on a 64-byte boundary; the
  // u16 length of v1 holds any header of a realistic rank, v2 the rest.
  const pad = (preamble: number) =>
    dict.padEnd(Math.ceil((preamble + dict.length + 1) / 64) * 64 - preamble - 1, " ") + "\n";
  const v1 = pad(10).length <= 0xffff;
  const preamble = v1 ? 10 : 12;
  const header = pad(preamble);
  const out = Buffer.alloc(preamble + header.length);
  MAGIC.copy(out, 0);
  out[6] = v1 ? 1 : 2;
  out[7] = 0;
  if (v1) out.writeUInt16LE(header.length, 8);
  else out.writeUInt32LE(header.length, 8);
  out.write(header, preamble, "latin1");
  return out;
}

function describeUnsupportedDescr(descr: string): string {
  if (/^>/.test(descr))
    return `is '${descr}', a big-endian array; save it little-endian (arr.astype('<f4')).`;
  if (/O/.test(descr))
    return `is '${descr}', an object array; updates must be float arrays ('<f4', '<f8', '<f2').`;
  return `is '${descr}', an unsupported dtype; updates must be float arrays ('<f4', '<f8' or '<f2').`;
}

// ---------------------------------------------------------------------------------------
// The subset of Python literals numpy writes in headers: dicts, strings, True/False/None,
// integers (with the Python 2 "L" suffix old numpy wrote), tuples and lists.

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

export function parsePythonLiteral(text: string): PyValue {
  let i = 0;
  const skip = () => {
    while (i < text.length && /\s/.test(text[i] ?? "")) i++;
  };
  const expect = (ch: string) => {
    skip();
    if (text[i] !== ch) throw new Error(`expected "${ch}" at character ${i}`);
    i++;
  };
  const value = (): PyValue => {
    skip();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: Record<string, PyValue> = {};
      for (;;) {
        skip();
        if (text[i] === "}") {
          i++;
          return obj;
        }
        const key = value();
        if (typeof key !== "string") throw new Error(`dict keys must be strings (character ${i})`);
        expect(":");
        obj[key] = value();
        skip();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") throw new Error(`expected "," or "}" at character ${i}`);
      }
    }
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const items: PyValue[] = [];
      for (;;) {
        skip();
        if (text[i] === close) {
          i++;
          return items;
        }
        items.push(value());
        skip();
        if (text[i] === ",") i++;
        else if (text[i] !== close) throw new Error(`expected "," or "${close}" at character ${i}`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated string at character ${i}`);
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const word = /^(True|False|None|-?\d+L?)/.exec(text.slice(i));
    if (word === null)
      throw new Error(`unexpected ${c === undefined ? "end of header" : `"${c}"`} at character ${i}`);
    i += word[0].length;
    if (word[0] === "True") return true;
    if (word[0] === "False") return false;
    if (word[0] === "None") return null;
    return Number(word[0].replace(/L$/, ""));
  };
  const result = value();
  skip();
  if (i !== text.length) throw new Error(`unexpected text after the dict at character ${i}`);
  return result;
}
