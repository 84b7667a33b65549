// Request size limits → 413. JSON and other small bodies go through Hono's bodyLimit (a
// declared Content-Length over the limit is refused before reading; a chunked body is
// counted as it is read). Multipart uploads are not buffered: a declared length over the
// upload limit is refused here, and the streaming reader (multipart.ts) counts the rest.
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HttpError } from "../errors.js";

/** A route whose JSON body may be larger than the default (a telemetry batch). */
export interface RouteLimit {
  method: string;
  path: string;
  maxBytes: number;
}

export function sizeLimit(
  limits: { maxJsonBytes: number; maxUploadBytes: number },
  routes: readonly RouteLimit[] = [],
): MiddlewareHandler {
  const limited = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw tooLarge(maxSize);
      },
    });
  const small = limited(limits.maxJsonBytes);
  const larger = routes.map((r) => ({ ...r, limit: limited(r.maxBytes) }));
  return async function sizeLimit(c, next) {
    const type = (c.req.header("content-type") ?? "").toLowerCase();
    const route = larger.find((r) => r.method === c.req.method && r.path === c.req.path);
    if (route !== undefined) return route.limit(c, next);
    if (!type.startsWith("multipart/form-data")) return small(c, next);
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > limits.maxUploadBytes) throw tooLarge(limits.maxUploadBytes);
    await next();
  };
}

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    "PAYLOAD_TOO_LARGE",
    `the request body is larger than this server's limit of ${limit} bytes.`,
  );
}
