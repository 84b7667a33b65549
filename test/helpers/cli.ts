// Runs the CLI as a user does — a child process per command — and checks the shape of a
// user error: the documented exit code, one line naming the problem, never a stack trace.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "vitest";

const run = promisify(execFile);
// The built CLI, the package's own `bin` — what a user runs. `npm test` builds it first
// (pretest); running the TypeScript through tsx instead cost 1.5 s more per command.
const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function antidote(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      maxBuffer: 1 << 26,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** A user mistake: the documented exit code, one line on stderr naming the problem, no stack. */
export function expectUserError(r: CliResult, code: number, message: RegExp): void {
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(code);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(
    r.stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("antidote:")),
  ).toHaveLength(1);
}
