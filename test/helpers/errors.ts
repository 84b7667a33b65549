// Assertions on the library's user-facing errors: the code callers branch on, and the words
// the user reads.
import { expect } from "vitest";
import { isAntidoteError, type AntidoteErrorCode } from "../../src/errors.js";

/** `fn` throws an AntidoteError with `code` (default USAGE) whose message matches `message`. */
export function expectAntidoteError(
  fn: () => unknown,
  message?: RegExp,
  code: AntidoteErrorCode = "USAGE",
): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isAntidoteError(caught) ? caught.code : caught).toBe(code);
  if (message !== undefined) expect((caught as Error).message).toMatch(message);
}

/** The common case: a USAGE error. */
export function expectUsage(fn: () => unknown, message?: RegExp): void {
  expectAntidoteError(fn, message, "USAGE");
}

/** The AntidoteError `p` rejects with, as code and message; fails the test if it resolves. */
export async function antidoteFailure(
  p: Promise<unknown>,
): Promise<{ code: AntidoteErrorCode; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isAntidoteError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected an AntidoteError");
}
