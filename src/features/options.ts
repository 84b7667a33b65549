// Featurizer options are validated with zod at the boundary, since they arrive from config
// files and CLI flags as much as from code.
import type { z } from "zod";
import { AntidoteError } from "../errors.js";

/** Validates options with a zod schema, reporting the first problem as a USAGE error. */
export function parseOptions<T extends z.ZodType>(schema: T, options: unknown, what: string): z.output<T> {
  const r = schema.safeParse(options);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue?.path.join(".") ?? "";
  throw new AntidoteError(
    "USAGE",
    `${what}${path ? ` "${path}"` : ""}: ${issue?.message ?? "invalid value"}.`,
  );
}
