// The server's one error shape, `{ "error": { "code", "message" } }`, for every 4xx and 5xx,
// and the one place that maps a library error to an HTTP status (as cli/exit-codes.ts maps
// it to an exit code). Library errors keep their code and message (which name the field or
// record and never hold secrets or file contents); anything else is a bug, answered with a
// generic 500 and logged on the server, never sent to the client with its stack.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { isAntidoteError, type AntidoteErrorCode } from "../errors.js";

/** Codes of failures that belong to HTTP itself rather than to the library. */
export type HttpOnlyCode =
  | "UNAUTHENTICATED" // no token, or one that is malformed, unknown, revoked or expired
  | "UNSUPPORTED_MEDIA_TYPE" // the body is not in a content type the route reads
  | "RATE_LIMITED"; // the token sent more requests than its rate allows
// FORBIDDEN (the token's role may not do this), PAYLOAD_TOO_LARGE (the body is over the limit)
// and REPLAYED (the Antidote-Request-Id was used before) are library codes too: the telemetry
// intake refuses with them (a token naming another agent, a batch over its limits, a batch
// sequence number already accepted).

export type ApiErrorCode = AntidoteErrorCode | HttpOnlyCode;

export const errorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** A failure the server decides itself (auth, limits, replay); thrown by middleware and routes. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ApiErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** HTTP status of a library error. */
export function statusFor(code: AntidoteErrorCode): ContentfulStatusCode {
  switch (code) {
    case "USAGE":
    case "FILE_NOT_FOUND":
    case "INPUT_FORMAT":
    case "COLUMN_MISSING":
    case "ROW_MALFORMED":
    case "IMAGE_UNDECODABLE":
    case "IDX_HEADER":
    case "PATH_OUTSIDE_ROOT":
    case "LABEL_MIXED_TYPES":
    case "MODEL_FORMAT":
    case "MODEL_UNSUPPORTED":
      return 400;
    case "NOT_FOUND":
    case "SOURCE_UNKNOWN":
    case "DATASET_MISSING":
      return 404;
    case "SOURCE_EXISTS":
    case "REPLAYED":
      return 409;
    case "FORBIDDEN":
    case "NOT_AN_AGENT":
      return 403;
    case "PAYLOAD_TOO_LARGE":
      return 413;
    case "KEY_UNTRUSTED":
    case "SIGNATURE_INVALID":
    case "DIGEST_MISMATCH":
    case "ATTACK_INFEASIBLE":
    case "MODEL_UNKNOWN":
    case "WINDOW_IMPLAUSIBLE":
      return 422;
    case "LEDGER_UNAVAILABLE":
    case "LEDGER_TAMPERED":
      return 503;
    case "INTERNAL":
      return 500;
  }
}

const GENERIC_INTERNAL = "internal error: the server could not complete the request; its log says why.";

/** What the client is told about `error`, and what the server log should say about it. */
export function describeError(error: unknown): {
  status: ContentfulStatusCode;
  body: ErrorBody;
  headers: Record<string, string>;
  /** Set for failures the operator must see (bugs): a line for the server log. */
  log?: string;
} {
  if (error instanceof HttpError)
    return { status: error.status, body: body(error.code, error.message), headers: error.headers };
  if (isAntidoteError(error)) {
    const status = statusFor(error.code);
    if (error.code === "INTERNAL")
      return { status, body: body("INTERNAL", GENERIC_INTERNAL), headers: {}, log: stackOf(error) };
    return { status, body: body(error.code, error.message), headers: {} };
  }
  if (error instanceof HTTPException) return fromHonoException(error);
  if (error instanceof z.ZodError)
    return { status: 400, body: body("USAGE", zodMessage(error, "body")), headers: {} };
  return { status: 500, body: body("INTERNAL", GENERIC_INTERNAL), headers: {}, log: stackOf(error) };
}

/** The JSON error response for `error` (Hono's onError). */
export function errorResponse(c: Context, error: unknown, log: (line: string) => void): Response {
  const described = describeError(error);
  if (described.log !== undefined) log(`internal error on ${c.req.method} ${c.req.path}: ${described.log}`);
  for (const [name, value] of Object.entries(described.headers)) c.header(name, value);
  return c.json(described.body, described.status);
}

/** "query.limit: Too big: expected number to be <=1000" — the first issue, naming its field. */
export function zodMessage(error: z.ZodError, target: string): string {
  const issue = error.issues[0];
  if (issue === undefined) return `${target}: invalid`;
  const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  return `${target}${path}: ${issue.message}`;
}

// Hono's own exceptions: malformed JSON (from the validator), 413 and 415 from middleware.
function fromHonoException(e: HTTPException): ReturnType<typeof describeError> {
  const status = e.status;
  if (status === 400 && /json/i.test(e.message))
    return { status, body: body("INPUT_FORMAT", "the request body is not valid JSON."), headers: {} };
  const code: ApiErrorCode =
    status === 413
      ? "PAYLOAD_TOO_LARGE"
      : status === 415
        ? "UNSUPPORTED_MEDIA_TYPE"
        : status === 401
          ? "UNAUTHENTICATED"
          : status === 403
            ? "FORBIDDEN"
            : status === 404
              ? "NOT_FOUND"
              : status >= 500
                ? "INTERNAL"
                : "USAGE";
  const message = status >= 500 ? GENERIC_INTERNAL : e.message || `request refused (HTTP ${status}).`;
  return { status, body: body(code, message), headers: {} };
}

function body(code: ApiErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

function stackOf(error: unknown): string {
  return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}
