// The CLI shells over src/policy/ (`policy check|apply|show`, `source list|show --why`),
// registered on a program of their own as src/cli/main.ts registers them: check prints what
// would change and writes nothing; apply adopts; show prints the policy in force; source list
// has the reputation column and `source show --why` the events that moved it.
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerPolicy } from "../../src/cli/commands/policy.js";
import { registerSource } from "../../src/cli/commands/source.js";
import { openLedger } from "../../src/ledger/index.js";
import { enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { POISONED, buildWorld, ingestAll, recordScanFindings } from "./fixture.js";

let dir: string;
let location: string;
beforeAll(async () => {
  dir = enterScratchDir();
  const world = await buildWorld(mkdtempSync(join(dir, "world-")));
  location = join(dir, "ledger.db");
  const ledger = await openLedger({ location, actor: "analyst" });
  await ingestAll(ledger, world);
  await recordScanFindings(ledger, world);
  await ledger.close();
}, 60_000);
afterAll(() => leaveScratchDir());

async function run(...args: string[]): Promise<string> {
  const program = new Command("antidote").exitOverride();
  registerPolicy(program);
  registerSource(program);
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(["node", "antidote", ...args, "--ledger", location]);
  } finally {
    spy.mockRestore();
  }
  return out.join("");
}

describe("antidote policy / source (CLI)", () => {
  it("checks, applies and shows a policy; lists and explains reputations", async () => {
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      "apiVersion: antidote.dev/policy/v1\nname: cli\nversion: 3\nkinds:\n  supplier:\n    minReputation: 0.5\n    autoQuarantine:\n      - findings: [poisoning-risk]\n        minScore: 0.9\n",
    );
    const before = JSON.parse(await run("policy", "show", "--json")) as unknown;
    expect(before).toBeNull();

    const check = await run("policy", "check", policy);
    expect(check).toMatch(/policy "cli" version 3 .* against 3 source\(s\); nothing written/);
    expect(check).toMatch(/initech\s+supplier\s+0\.\d+\s+0\.5\s+kinds\.supplier\.minReputation/);
    expect(check).toMatch(/would quarantine 24 sample\(s\) and 0 source\(s\)/);
    expect(await run("policy", "show", "--json")).toBe("null\n");

    const applied = await run("policy", "apply", policy);
    expect(applied).toMatch(
      /^adopted .*policy\.yaml \(event #\d+, sha256 [0-9a-f]{64}\)\n {2}quarantined 24 sample\(s\) under rule kinds\.supplier\.autoQuarantine\[0\]/,
    );
    expect(await run("policy", "show")).toMatch(
      /^policy "cli" version 3, adopted by \S+ at \S+ \(event #\d+\)/,
    );

    const list = await run("source", "list");
    expect(list).toMatch(/source\s+kind\s+trust\s+reputation/);
    expect(list).toMatch(/initech\s+supplier\s+0\.8\s+0\.\d{3}/);
    const why = await run("source", "show", POISONED, "--why");
    expect(why).toMatch(/^source "initech" \(supplier\): reputation 0\.\d{3} — prior trust 0\.8/);
    expect(why).toMatch(/#\d+\s+finding\.recorded .*24 of its 200 samples flagged/);
    expect(why).toMatch(/#\d+\s+decision\.recorded .*24 of its samples quarantined/);
    const json = JSON.parse(await run("source", "reputation", POISONED, "--json")) as {
      reputation: { score: number };
    };
    expect(json.reputation.score).toBeLessThan(0.5);
  }, 60_000);
});
