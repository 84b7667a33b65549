// The deployed loop as a user runs it, with the built CLI: `monitor init` on Fashion-MNIST test
// images, `serve --monitor` (the monitors run on every accepted batch), `fleet-sim --server`
// (agents registered through the API, each sending with its own agent token, two of them
// compromised), then `telemetry export --for-training` and `trace --source`. The backdoored CNN
// is the fixture trained on 2 % patched images, and the fleet sends its very trigger.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetTruth } from "../../src/monitor/fleet/truth.js";
import { antidote } from "../helpers/cli.js";
import { fashionModel, type FashionModel } from "../helpers/fm-models.js";
import { hasFashionMnist } from "../helpers/real-data.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");

describe.runIf(hasFashionMnist())("antidote monitor / serve --monitor / fleet-sim / telemetry export", () => {
  let dir: string;
  let fm: FashionModel;
  let serve: ChildProcessWithoutNullStreams;
  let exited: Promise<unknown>;
  let serverLog = "";
  let truth: FleetTruth;
  const ledger = () => ["--ledger", join(dir, "ledger.db")];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-monitor-cli-"));
    fm = await fashionModel({ arch: "cnn", attack: "patch", dir });
    const token = await antidote(["token", "create", "--role", "admin", "--principal", "ops", ...ledger()], {
      cwd: dir,
    });
    const secret = /adt_\S+/.exec(token.stdout)?.[0] ?? "";
    const init = await antidote(
      [
        "monitor",
        "init",
        "--model",
        fm.onnxPath,
        "--data",
        "fashion-mnist:test",
        "--validation",
        "600",
        "--out",
        join(dir, "monitor.json"),
        ...ledger(),
      ],
      { cwd: dir },
    );
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/STRIP: threshold [\d.]+ bits/);

    serve = spawn(
      process.execPath,
      [BIN, "serve", "--port", "0", "--monitor", join(dir, "monitor.json"), ...ledger()],
      { cwd: dir },
    );
    serve.stdin.end();
    serve.stderr.on("data", (d: Buffer) => (serverLog += d.toString()));
    exited = new Promise((resolve) => serve.once("exit", resolve));
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      serve.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m?.[1] !== undefined) resolve(m[1]);
      });
      serve.once("exit", () => reject(new Error(`serve exited: ${serverLog}`)));
    });
    const sim = await antidote(
      [
        "fleet-sim",
        "--server",
        url,
        "--token",
        secret,
        "--model",
        fm.onnxPath,
        "--agents",
        "6",
        "--compromised",
        "2",
        "--batches",
        "6",
        "--batch-size",
        "100",
        "--behaviours",
        "trigger,flip,replay,forge,wrong-model",
        "--seed",
        "3",
        "--truth",
        join(dir, "truth.json"),
      ],
      { cwd: dir },
    );
    expect(sim.code, sim.stderr).toBe(0);
    truth = JSON.parse(readFileSync(join(dir, "truth.json"), "utf8")) as FleetTruth;
    // SIGTERM: the server lets the monitor run in progress finish before it closes the ledger.
    serve.kill("SIGTERM");
    await exited;
  }, 180_000);

  afterAll(() => {
    if (serve?.exitCode === null) serve.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  const compromised = () =>
    truth.agents
      .filter((a) => a.compromised)
      .map((a) => a.name)
      .sort();

  it("fleet-sim's forgeries and replays were refused by the server, and the monitors ran on what it accepted", () => {
    for (const u of truth.uploads.filter((x) => x.kind === "forge" || x.kind === "replay"))
      expect(u.outcome?.accepted, u.batchId).toBe(false);
    expect(truth.uploads.filter((x) => x.kind === "batch").every((u) => u.outcome?.accepted)).toBe(true);
    expect(serverLog).toMatch(/monitor: \d+ alerts over \d+ batches/);
    expect(serverLog).not.toMatch(/monitor: run failed/);
  });

  it("telemetry export --for-training leaves the compromised agents out and records a version", async () => {
    const r = await antidote(
      [
        "telemetry",
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
        "--for-training",
        "--scan-model",
        fm.onnxPath,
        "--json",
        ...ledger(),
      ],
      { cwd: dir },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      version: string;
      excludedAgents: { agent: string; reason: string }[];
      records: { admitted: number };
    };
    expect(result.version).toMatch(/^telemetry@[0-9a-f]{12}$/);
    expect(result.excludedAgents.map((a) => a.agent).sort()).toEqual(compromised());
    expect(result.records.admitted).toBeGreaterThan(300);

    const honest = truth.agents.find((a) => !a.compromised)?.name ?? "";
    const trace = await antidote(["trace", "--source", honest, "--json", ...ledger()], { cwd: dir });
    expect(trace.code, trace.stderr).toBe(0);
    const t = JSON.parse(trace.stdout) as { datasetVersions: { version: string }[] };
    expect(t.datasetVersions.map((v) => v.version)).toContain(result.version);

    const missing = await antidote(["telemetry", "export", "--since", "2000-01-01T00:00:00Z", ...ledger()], {
      cwd: dir,
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/for-training/);
    const verify = await antidote(["ledger", "verify", ...ledger()], { cwd: dir });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});
