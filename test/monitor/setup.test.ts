// The monitor setup file and the runner's state file are inputs too: an operator edits the
// first, and whoever can write the ledger directory can edit the second. Each is attacked here:
// a setup that is not JSON or has a field wrong fails naming the file and the field (never its
// contents); a setup whose model file is not the model it names is refused; a webhook whose
// secret variable is unset is refused without printing anything secret; a state file that is
// garbage, or was saved under another setup, starts the charts afresh instead of being trusted.
import { mkdtempSync, rmSync } from "node:fs";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openLedger } from "../../src/ledger/index.js";
import type { Ledger } from "../../src/ledger/types.js";
import { createMonitorRunner } from "../../src/monitor/runner.js";
import {
  prepareMonitoring,
  readMonitorSetup,
  setupPath,
  type MonitorSetup,
} from "../../src/monitor/setup.js";
import type { AntidoteErrorCode } from "../../src/errors.js";
import { antidoteFailure } from "../helpers/errors.js";
import { fashionModel, type FashionModel } from "../helpers/fm-models.js";
import { hasFashionMnist } from "../helpers/real-data.js";

describe.skipIf(!hasFashionMnist())("monitor setup and runner state as inputs", () => {
  let dir: string;
  let fm: FashionModel;
  let other: FashionModel;
  let ledger: Ledger;
  let setupFile: string;
  let setup: MonitorSetup;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-monitor-setup-"));
    fm = await fashionModel({ arch: "cnn", attack: "patch", dir });
    other = await fashionModel({ arch: "mlp", dir });
    setupFile = join(dir, "monitor.json");
    await prepareMonitoring({
      model: fm.onnxPath,
      data: "fashion-mnist:test",
      validation: 100,
      stripCalibration: 50,
      stripBackground: 20,
      out: setupFile,
    });
    setup = await readMonitorSetup(setupFile);
    ledger = await openLedger({ location: join(dir, "ledger.db"), actor: "setup-test" });
  }, 120_000);
  afterAll(async () => {
    await ledger?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const fails = async (p: Promise<unknown>, code: AntidoteErrorCode, message: RegExp): Promise<void> => {
    const e = await antidoteFailure(p);
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  };
  const write = async (name: string, text: string): Promise<string> => {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  };

  it("writes model paths relative to the setup and keeps a bundled dataset's name", () => {
    const [digest, model] = Object.entries(setup.models)[0] ?? [];
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(model?.onnx).not.toMatch(/^\//);
    expect(setupPath(setupFile, model?.onnx ?? "")).toBe(fm.onnxPath);
    expect(model?.background?.data).toBe("fashion-mnist:test");
    expect(setupPath(setupFile, "fashion-mnist:test")).toBe("fashion-mnist:test");
  });

  it("refuses a setup that is not JSON, or has a field wrong, naming the file and the field only", async () => {
    const secretish = "sk_live_do_not_echo";
    await fails(
      readMonitorSetup(await write("bad.json", `{ "schema": ${secretish}`)),
      "INPUT_FORMAT",
      /bad\.json: not JSON/,
    );
    const e = await antidoteFailure(readMonitorSetup(await write("bad.json", `{ "schema": ${secretish}`)));
    expect(e.message).not.toContain(secretish);
    await fails(
      readMonitorSetup(await write("extra.json", JSON.stringify({ ...setup, extra: 1 }))),
      "INPUT_FORMAT",
      /extra\.json: .*Unrecognized key/i,
    );
    await fails(
      readMonitorSetup(
        await write("hook.json", JSON.stringify({ ...setup, webhook: { url: "x", secretEnv: "S" } })),
      ),
      "INPUT_FORMAT",
      /hook\.json: "webhook\.url"/,
    );
    await fails(readMonitorSetup(join(dir, "missing.json")), "FILE_NOT_FOUND", /missing\.json/);
  });

  it("refuses a setup whose model file is another model than the digest it names", async () => {
    const swapped = join(dir, "swapped.onnx");
    await copyFile(other.onnxPath, swapped);
    const [digest, model] = Object.entries(setup.models)[0] as [string, MonitorSetup["models"][string]];
    const file = await write(
      "swapped.json",
      JSON.stringify({ ...setup, models: { [digest]: { ...model, onnx: "swapped.onnx" } } }),
    );
    await fails(
      createMonitorRunner(ledger, await readMonitorSetup(file), { setupFile: file }),
      "DIGEST_MISMATCH",
      /swapped\.onnx has digest/,
    );
  });

  it("refuses a webhook whose secret variable is unset, naming the variable and nothing else", async () => {
    const file = await write(
      "webhook.json",
      JSON.stringify({
        ...setup,
        webhook: { url: "http://127.0.0.1:9/alerts", secretEnv: "ANTIDOTE_TEST_HOOK_SECRET" },
      }),
    );
    await fails(
      createMonitorRunner(ledger, await readMonitorSetup(file), { setupFile: file, env: {} }),
      "USAGE",
      /\$ANTIDOTE_TEST_HOOK_SECRET, which is not set/,
    );
  });

  it("does not trust a state file that is garbage or was saved under another setup", async () => {
    const stateFile = join(ledger.homeDir, "monitor", "state.json");
    const first = await createMonitorRunner(ledger, setup, { setupFile, sink: null });
    expect((await first.run()).restarted).toBe(false);
    await first.close();
    const saved = JSON.parse(await readFile(stateFile, "utf8")) as { setupDigest: string };
    expect(saved.setupDigest).toMatch(/^[0-9a-f]{64}$/);

    // Saved under another setup: the charts start afresh, and the result says so.
    await writeFile(stateFile, JSON.stringify({ ...saved, setupDigest: "0".repeat(64) }));
    const other = await createMonitorRunner(ledger, setup, { setupFile, sink: null });
    expect((await other.run()).restarted).toBe(true);
    await other.close();

    // Garbage: a cache miss, not a crash; the run rewrites a state it can read.
    await writeFile(stateFile, "\u0000not json");
    const again = await createMonitorRunner(ledger, setup, { setupFile, sink: null });
    const result = await again.run();
    await again.close();
    expect(result.batches).toBe(0);
    expect(JSON.parse(await readFile(stateFile, "utf8"))).toMatchObject({ setupDigest: saved.setupDigest });
  });
});
