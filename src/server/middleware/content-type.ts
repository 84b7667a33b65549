// The content types a route reads: a body in any other type is a 415 before anything reads
// it. A request without a body passes (the route's own validation says what is missing).
import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.js";

export type MediaType = "application/json" | "multipart/form-data";

export function contentType(...accepted: MediaType[]): MiddlewareHandler {
  return async function contentType(c, next) {
    if (hasBody(c.req.raw)) {
      const given = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
      if (!accepted.some((type) => type === given))
        throw new HttpError(
          415,
          "UNSUPPORTED_MEDIA_TYPE",
          `this route reads ${accepted.join(" or ")}, not ${given === "" ? "a body without a Content-Type" : given}.`,
        );
    }
    await next();
  };
}

export function hasBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return request.headers.has("transfer-encoding") || (length !== null && length !== "0");
}
