// `antidote telemetry …` and `antidote model suspend|resume|status`, run in-process through the
// CLI's own `main` (the built CLI is exercised by test/server/cli.test.ts-style suites; here the
// commands' wiring, messages and exit codes are what is checked): a signed batch file of real
// images taken offline, its replay and a tampered copy refused with exit 6 and counted, the
// lists, and a model suspended and read back. SQLite only: the intake's engines are covered by
// intake.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { openLedger } from "../../src/ledger/index.js";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { addSource } from "../../src/provenance/sources.js";
import { jsonl, makeAgent, recordsFor, signedBatch, testImages, windowEnding } from "./telemetry-batches.js";

const MODEL = "a7".repeat(32);
const agent = makeAgent("agent-cli");
let dir = "";
let ledger = "";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi
    .spyOn(process.stdout, "write")
    .mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi
    .spyOn(process.stderr, "write")
    .mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    const code = await main([...args, "--ledger", ledger]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

function writeBatch(sequence: number, name: string): string {
  const now = new Date();
  const text = jsonl(recordsFor(testImages(sequence * 10, 10), new Date(now.getTime() - 30_000)));
  const upload = signedBatch(agent, { sequence, model: MODEL, text, window: windowEnding(now) });
  const file = join(dir, name);
  writeFileSync(file, upload.records);
  writeFileSync(`${file}.dsse.json`, JSON.stringify(upload.envelope));
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-telemetry-cli-"));
  ledger = join(dir, "ledger.db");
  const l = await openLedger({ location: ledger });
  await addSource(l, { name: agent.name, kind: "agent", publicKeysPem: [agent.publicKeyPem] });
  await registerModelDigest(l, { digest: MODEL, name: "fm", trainedOn: [] });
  await l.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("antidote telemetry", () => {
  it("ingests a signed batch file, refuses its replay and a tampered copy (exit 6), and lists both", async () => {
    const file = writeBatch(0, "b0.jsonl");
    const ok = await cli("telemetry", "ingest", file, "--json");
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ batchId: "agent-cli#0", count: 10, gap: null });

    const replay = await cli("telemetry", "ingest", file);
    expect([replay.code, replay.stderr]).toEqual([
      6,
      expect.stringMatching(/^antidote: .*b0\.jsonl: a replay/),
    ]);
    expect(replay.stderr.trim().split("\n")).toHaveLength(1);

    const tampered = writeBatch(2, "b2.jsonl");
    writeFileSync(tampered, Buffer.from(jsonl(recordsFor(testImages(500, 10), new Date()))));
    const bad = await cli("telemetry", "ingest", tampered);
    expect([bad.code, bad.stderr]).toEqual([6, expect.stringMatching(/DIGEST|SHA-256|bytes/)]);
    const missing = await cli(
      "telemetry",
      "ingest",
      join(dir, "b0.jsonl"),
      "--envelope",
      join(dir, "nope.json"),
    );
    expect([missing.code, missing.stderr]).toEqual([3, expect.stringMatching(/nope\.json: no such file/)]);

    const gap = await cli("telemetry", "ingest", writeBatch(3, "b3.jsonl"));
    expect([gap.code, gap.stdout]).toEqual([0, expect.stringMatching(/gap: expected sequence 1, got 3/)]);

    const batches = JSON.parse((await cli("telemetry", "batches", "--json")).stdout) as { batchId: string }[];
    expect(batches.map((b) => b.batchId)).toEqual(["agent-cli#0", "agent-cli#3"]);
    const table = await cli("telemetry", "batches", "--agent", "agent-cli");
    expect(table.stdout).toMatch(/agent-cli#3 .* 1→3 /);
    const refusals = JSON.parse((await cli("telemetry", "refusals", "--json")).stdout) as {
      counts: { agent: string; code: string; refusals: number }[];
      refusals: { code: string }[];
    };
    expect(refusals.counts.map((c) => [c.agent, c.code, c.refusals]).sort()).toEqual([
      ["agent-cli", "DIGEST_MISMATCH", 1],
      ["agent-cli", "REPLAYED", 1],
    ]);
    expect(refusals.refusals.map((r) => r.code)).toEqual(["DIGEST_MISMATCH", "REPLAYED"]);
  });

  it("quarantines a batch and suspends, reads and resumes a model", async () => {
    expect((await cli("telemetry", "quarantine", "agent-cli#3", "--reason", "trigger alarm")).code).toBe(0);
    const listed = JSON.parse((await cli("telemetry", "batches", "--json")).stdout) as {
      quarantined: boolean;
    }[];
    expect(listed.map((b) => b.quarantined)).toEqual([false, true]);
    const noReason = await cli("model", "suspend", MODEL.slice(0, 10));
    expect(noReason.code).toBe(2);
    const suspended = await cli("model", "suspend", MODEL.slice(0, 10), "--reason", "drift on 3 agents");
    expect([suspended.code, suspended.stdout]).toEqual([0, `model ${MODEL} is now suspended\n`]);
    const status = JSON.parse((await cli("model", "status", MODEL.slice(0, 8), "--json")).stdout) as unknown;
    expect(status).toMatchObject({ digest: MODEL, status: "suspended", reason: "drift on 3 agents" });
    expect((await cli("model", "resume", MODEL, "--reason", "retrained")).stdout).toMatch(/now active/);
    const unknown = await cli("model", "status", "ffffffff");
    expect([unknown.code, unknown.stderr]).toEqual([7, expect.stringMatching(/not registered/)]);
    const l = await openLedger({ location: ledger });
    expect(await l.verify()).toMatchObject({ ok: true });
    await l.close();
  });
});
