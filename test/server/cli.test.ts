// `antidote token` and `antidote serve` as a user runs them: a token is created (its secret
// printed once, with the warning), listed without its secret, used against a running server,
// and revoked; the server prints its URL and how to make a first token, serves the API with
// the in-process job queue, and on TERM closes gracefully (exit 0).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openLedgerReader } from "../../src/ledger/index.js";
import { antidote, expectUserError } from "../helpers/cli.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");
let dir: string;
let ledger: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-serve-cli-"));
  ledger = join(dir, "ledger.db");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ok(r: { code: number; stdout: string; stderr: string }): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe("antidote token and serve", () => {
  it("creates a token (secret once, with a warning), lists it without the secret, refuses bad roles", async () => {
    const made = await antidote(
      ["token", "create", "--role", "reader", "--principal", "rita", "--ledger", ledger],
      { cwd: dir },
    );
    expect(made.code, made.stderr).toBe(0);
    const secret = /adt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(made.stdout)?.[0] ?? "";
    expect(secret).not.toBe("");
    expect(made.stderr).toMatch(/shown only once/);
    const list = ok(await antidote(["token", "list", "--json", "--ledger", ledger], { cwd: dir }));
    expect(list).not.toContain(secret.slice("adt_".length + 17));
    expect(list).not.toMatch(/secretSha256/);
    expect(JSON.parse(list)).toMatchObject([{ principal: "rita", role: "reader", revokedAt: null }]);
    expectUserError(
      await antidote(
        ["token", "create", "--role", "supplier:ghost", "--principal", "x", "--ledger", ledger],
        { cwd: dir },
      ),
      7,
      /source "ghost" is not registered/,
    );
  });

  it("serves the API, answers a CLI-made token, and closes on TERM", async () => {
    const { token } = JSON.parse(
      ok(
        await antidote(
          ["token", "create", "--role", "admin", "--principal", "root", "--json", "--ledger", ledger],
          { cwd: dir },
        ),
      ),
    ) as { token: string; tokenId: string };
    const child = spawn(process.execPath, [BIN, "serve", "--port", "0", "--ledger", ledger], { cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
        if (m?.[1] !== undefined) resolve(m[1]);
      });
      void exited.then(() => reject(new Error(`serve exited: ${stderr}`)));
    });
    expect(stdout).toMatch(/jobs in-process/);
    expect(stdout).toMatch(/antidote token create --role admin/);
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/v1/sources`)).status).toBe(401);
    const added = await fetch(`${url}/v1/sources`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", "antidote-request-id": "cli-test-000001" },
      body: JSON.stringify({ name: "crawl", kind: "web" }),
    });
    expect(added.status).toBe(201);
    const tokenId = token.split("_")[1] ?? "";
    ok(await antidote(["token", "revoke", tokenId, "--reason", "done", "--ledger", ledger], { cwd: dir }));
    expect((await fetch(`${url}/v1/sources`, { headers: auth })).status).toBe(401);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/closing/);
    expect(stderr).not.toContain(token);
    const reader = await openLedgerReader({ location: ledger });
    expect((await reader.verify()).ok).toBe(true);
    await reader.close();
  });
});
