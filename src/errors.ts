// One error class for the whole library, with a closed set of codes. Callers branch on
// `code`; users read `message`, which names the file, the record and the field at fault.
// The CLI maps each code to an exit code (see src/cli/exit-codes.ts) and never prints a
// stack for an AntidoteError.

export type AntidoteErrorCode =
  | "USAGE" // a flag or argument is wrong
  | "FILE_NOT_FOUND" // a path does not exist
  | "INPUT_FORMAT" // the file is not in the format we expected or the format is unknown
  | "COLUMN_MISSING" // a mapped column is not in the file
  | "ROW_MALFORMED" // one record cannot be parsed or has a field of the wrong type
  | "IMAGE_UNDECODABLE" // an image's bytes are not a PNG/JPEG we can decode
  | "IDX_HEADER" // an IDX file's magic number or dimensions are wrong, or images/labels disagree
  | "PATH_OUTSIDE_ROOT" // a row or metadata record names a file outside the dataset's directory (after links)
  | "LABEL_MIXED_TYPES" // a label column holds numbers in some rows and strings in others
  | "DATASET_MISSING" // a bundled dataset is not installed
  | "ATTACK_INFEASIBLE" // a simulator cannot poison as many samples as asked
  | "SOURCE_UNKNOWN" // a source name is not registered in the ledger
  | "SOURCE_EXISTS" // a source with this name is already registered (with different details)
  | "KEY_UNTRUSTED" // a signing key is not registered for the source, or was revoked
  | "SIGNATURE_INVALID" // an envelope's signature does not verify, or it is unsigned where policy requires one
  | "DIGEST_MISMATCH" // a file or sample does not match the digest its manifest promises
  | "LEDGER_TAMPERED" // the ledger's hash chain, checkpoints or derived tables do not recompute
  | "LEDGER_UNAVAILABLE" // the ledger database cannot be opened or reached
  | "NOT_FOUND" // a dataset version, model, sample or delivery is not in the ledger
  | "MODEL_FORMAT" // a model file is not ONNX, uses an unknown opset, or is not a classifier we can run
  | "MODEL_UNSUPPORTED" // a model uses an operator (or a form of one) Antidote cannot translate
  | "FORBIDDEN" // the caller may not act as this subject (a token bound to another source, a quarantined agent)
  | "PAYLOAD_TOO_LARGE" // an upload is over a size limit (bytes or records)
  | "REPLAYED" // something that may be used once was used again (a telemetry sequence number, a request id)
  | "NOT_AN_AGENT" // telemetry names a source that is registered, but not as an agent
  | "MODEL_UNKNOWN" // telemetry attests a model that is not registered in the ledger
  | "WINDOW_IMPLAUSIBLE" // a telemetry batch's time window is inverted, too long, in the future or too old
  | "INTERNAL"; // a bug: report it

export class AntidoteError extends Error {
  override readonly name = "AntidoteError";
  constructor(
    readonly code: AntidoteErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isAntidoteError(e: unknown): e is AntidoteError {
  return e instanceof AntidoteError;
}

/** "file.csv:12" or "file.parquet row 12" — the place a message points the user to. */
export function where(file: string, line?: number, kind: "line" | "row" = "line"): string {
  if (line === undefined) return file;
  return kind === "line" ? `${file}:${line}` : `${file} row ${line}`;
}

/**
 * Why JSON.parse failed, without the text it failed on: V8 quotes the start of the input
 * ("Unexpected token 'r', \"root:x:0:0\"... is not valid JSON"), and a message must never
 * carry a file's contents. Keeps the position when V8 gives one.
 */
export function jsonSyntaxReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (/Unexpected end of JSON input/i.test(message)) return "it ends early";
  const position = /at position (\d+)/.exec(message);
  return position === null ? "bad syntax" : `bad syntax at character ${position[1]}`;
}
