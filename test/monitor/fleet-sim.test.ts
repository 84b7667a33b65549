// The fleet simulator on real data, with a real backdoored model: Fashion-MNIST test images
// served by the fixture CNN trained with a 3×3 white patch → class 0 (ASR ≈ 0.93), 8 agents of
// which 2 compromised, 5 batches of 100. The ground truth is checked against the uploads
// themselves: triggered inputs carry the model's very trigger and mostly land on the target,
// flipped feedback labels are the target, forged batches fail the signature or the SHA-256,
// replays repeat an earlier batch byte for byte, wrong-model outputs disagree with the attested
// model, honest batches parse with the intake's parser — and a seed gives the same run twice.
// Then a small SpamAssassin fleet served by the built-in text model.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { registerFleetSim } from "../../src/cli/commands/fleet-sim.js";
import { createInProcessQueue } from "../../src/jobs/index.js";
import { startServer } from "../../src/server/serve.js";
import type { FleetSummary, FleetTruth } from "../../src/monitor/fleet/truth.js";
import { imageFromBytes } from "../../src/data/sample.js";
import { isAntidoteError } from "../../src/errors.js";
import { verifyEnvelope } from "../../src/provenance/dsse.js";
import { readTelemetryStatement } from "../../src/monitor/client.js";
import {
  loadFleetData,
  simulateFleet,
  type FleetData,
  type FleetSimResult,
} from "../../src/monitor/fleet-sim.js";
import { onnxFleetModel, textFleetModel, type FleetModel } from "../../src/monitor/fleet/model.js";
import { intakeTransport } from "../../src/monitor/fleet/transport.js";
import {
  parseTelemetryRecords,
  type TelemetryRecord,
  type TelemetryUpload,
} from "../../src/monitor/schema.js";
import { AntidoteError } from "../../src/errors.js";
import { fashionModel, type FashionModel } from "../helpers/fm-models.js";
import { hasFashionMnist } from "../helpers/real-data.js";

const BEHAVIOURS = ["trigger", "flip", "replay", "forge", "wrong-model"] as const;
const START = "2026-12-01T00:00:00.000Z";

describe.skipIf(!hasFashionMnist())("fleet-sim on Fashion-MNIST with a backdoored CNN", () => {
  let dir: string;
  let fm: FashionModel;
  let data: FleetData;
  let model: FleetModel;
  let run: FleetSimResult;

  const options = () => ({
    data,
    model,
    agents: 8,
    compromised: 2,
    rate: 0.05,
    behaviours: [...BEHAVIOURS],
    batches: 5,
    batchSize: 100,
    trigger: fm.attack as Record<string, unknown>,
    seed: 11,
    start: START,
    keepUploads: true,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-fleet-"));
    fm = await fashionModel({ arch: "cnn", attack: "patch", dir });
    data = await loadFleetData("fashion-mnist:test", { limit: 2000 });
    model = await onnxFleetModel(fm.onnxPath, data.classes);
    // A transport that accepts every batch, as an intake that checks nothing would.
    run = await simulateFleet({ ...options(), send: intakeTransport(() => Promise.resolve()) });
  });
  afterAll(async () => {
    await model.close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const uploadsOf = (kind: string) => (run.uploads ?? []).filter((u) => u.meta.kind === kind);
  const recordsOf = (upload: TelemetryUpload): TelemetryRecord[] =>
    parseTelemetryRecords(upload.records, readTelemetryStatement(upload), "batch");
  const keyOf = (agent: string) => {
    const a = run.agents.find((x) => x.name === agent);
    return [{ keyId: a?.keyId ?? "", publicKeyPem: a?.publicKeyPem ?? "" }];
  };

  it("is the same run for the same seed, byte for byte, and another run for another seed", async () => {
    const again = await simulateFleet(options());
    expect(again.truth.records).toEqual(run.truth.records);
    expect(again.truth.uploads.map((u) => u.sha256)).toEqual(run.truth.uploads.map((u) => u.sha256));
    expect(again.uploads?.map((u) => JSON.stringify(u.upload))).toEqual(
      run.uploads?.map((u) => JSON.stringify(u.upload)),
    );
    const other = await simulateFleet({ ...options(), seed: 12, batches: 1 });
    expect(other.truth.uploads[0]?.sha256).not.toBe(run.truth.uploads[0]?.sha256);
  });

  it("compromises exactly the asked agents and poisons round(rate × records) of each one's traffic", () => {
    const bad = run.truth.agents.filter((a) => a.compromised);
    expect(bad).toHaveLength(2);
    for (const a of run.truth.agents) {
      expect(a.records).toBe(500);
      expect(a.poisonedRecords).toBe(a.compromised ? 25 : 0);
      expect(a.behaviours).toEqual(a.compromised ? [...BEHAVIOURS] : []);
    }
    const poisoned = run.truth.records.filter((r) => r.how === "trigger" || r.how === "flip");
    expect(poisoned.every((r) => bad.some((a) => a.name === r.agent))).toBe(true);
    // Honest label noise: about 1 % of the ~30 % of records with feedback (4,000 records → ~12).
    const noise = run.truth.records.filter((r) => r.how === "noise");
    expect(noise.length).toBeGreaterThan(2);
    expect(noise.length).toBeLessThan(30);
    expect(noise.every((r) => !r.poisoned && r.feedback !== r.trueLabel)).toBe(true);
    // Every upload went out and was answered.
    expect(run.summary.total.sent).toBe(run.truth.uploads.length);
  });

  it("puts the model's own trigger into triggered inputs, and the backdoored model sends most to the target", () => {
    const triggered = run.truth.records.filter((r) => r.how === "trigger");
    expect(triggered.length).toBeGreaterThanOrEqual(20);
    const byId = new Map(
      (run.uploads ?? []).flatMap((u) => recordsOf(u.upload).map((r) => [`${u.meta.index}/${r.id}`, r])),
    );
    const patched = (r: TelemetryRecord): boolean => {
      const image = r.input.image;
      if (image === undefined) return false;
      const px = Buffer.from(image.pixels, "base64");
      // The fixture's patch: 3×3, value 1, bottom right with a 1-pixel margin → x, y in 24..26.
      for (let y = 24; y < 27; y++) for (let x = 24; x < 27; x++) if (px[y * 28 + x] !== 255) return false;
      return true;
    };
    for (const t of triggered) {
      const record = byId.get(`${t.upload}/${t.id}`);
      expect(record && patched(record)).toBe(true);
      expect(record?.feedback?.label).toBe(run.truth.target);
      expect(t.trueLabel).not.toBe(run.truth.target);
      expect(record?.input.digest).toBe(t.digest);
    }
    expect(run.truth.target).toBe("T-shirt/top");
    const hits = triggered.filter((t) => t.predicted === run.truth.target).length;
    expect(hits / triggered.length).toBeGreaterThan(0.75);
    // Honest inputs do not carry it.
    const honest = uploadsOf("batch").flatMap((u) => recordsOf(u.upload));
    const clean = honest.filter((r) => !triggered.some((t) => t.id === r.id));
    expect(clean.filter(patched).length / clean.length).toBeLessThan(0.01);
  });

  it("flips feedback labels to the target on records of other classes", () => {
    const flips = run.truth.records.filter((r) => r.how === "flip");
    expect(flips.length).toBeGreaterThanOrEqual(20);
    for (const f of flips) {
      expect(f.feedback).toBe(run.truth.target);
      expect(f.trueLabel).not.toBe(run.truth.target);
    }
  });

  it("sends forgeries that fail the signature (unregistered key) or the SHA-256 (altered after signing)", () => {
    const forged = uploadsOf("forge");
    expect(forged.length).toBeGreaterThanOrEqual(2);
    const kinds = new Set(forged.map((f) => run.truth.uploads[f.meta.index]?.forgery));
    expect(kinds).toEqual(new Set(["unregistered-key", "altered-records"]));
    for (const { upload, meta } of forged) {
      const truth = run.truth.uploads[meta.index];
      let refused: string;
      try {
        verifyEnvelope(upload.envelope, keyOf(meta.agent));
        const statement = readTelemetryStatement(upload);
        const sha = createHash("sha256").update(upload.records, "utf8").digest("hex");
        refused = sha === statement.records.sha256 ? "accepted" : "sha256";
      } catch (e) {
        refused = isAntidoteError(e) ? e.code : "other";
      }
      expect(refused).toBe(truth?.forgery === "altered-records" ? "sha256" : "KEY_UNTRUSTED");
      // Every record not already of the target class now says the target.
      expect(truth?.poisoned).toBeGreaterThan(50);
    }
  });

  it("replays an earlier accepted batch verbatim: an older sequence number", () => {
    const replays = uploadsOf("replay");
    expect(replays.length).toBeGreaterThanOrEqual(2);
    for (const { upload, meta } of replays) {
      const truth = run.truth.uploads[meta.index];
      const original = run.uploads?.[truth?.replayOf ?? -1];
      expect(original?.meta.agent).toBe(meta.agent);
      expect(JSON.stringify(original?.upload)).toBe(JSON.stringify(upload));
      expect(original?.meta.index).toBeLessThan(meta.index);
      expect(readTelemetryStatement(upload).sequence).toBeLessThan(meta.round);
      expect(truth?.outcome?.accepted).toBe(true); // this transport checks nothing
    }
  });

  it("serves wrong-model batches by another model under the attested digest", async () => {
    const wrong = uploadsOf("wrong-model");
    expect(wrong.length).toBeGreaterThanOrEqual(2);
    const agreement = async (upload: TelemetryUpload): Promise<number> => {
      const records = recordsOf(upload);
      expect(readTelemetryStatement(upload).model).toBe(model.digest);
      verifyEnvelope(upload.envelope, keyOf(readTelemetryStatement(upload).agent));
      const probs = await model.predict(
        records.map((r) => ({
          image: imageFromBytes(Buffer.from(r.input.image!.pixels, "base64"), 28, 28, 1),
        })),
      );
      const argmax = (row: ArrayLike<number>) => Array.from(row).indexOf(Math.max(...Array.from(row)));
      return (
        records.filter((r, i) => argmax(r.output.probs) === argmax(probs.subarray(i * 10, i * 10 + 10)))
          .length / records.length
      );
    };
    for (const { upload } of wrong) expect(await agreement(upload)).toBeLessThan(0.8);
    expect(await agreement(uploadsOf("batch")[0]!.upload)).toBe(1);
  });

  it("sends every agent's own batches in sequence order with increasing windows, each one verifying", () => {
    const byAgent = new Map<string, { sequence: number; start: number; end: number }[]>();
    for (const { upload, meta } of run.uploads ?? []) {
      if (meta.kind !== "batch" && meta.kind !== "wrong-model") continue;
      verifyEnvelope(upload.envelope, keyOf(meta.agent));
      const statement = readTelemetryStatement(upload);
      expect(recordsOf(upload)).toHaveLength(100);
      const list = byAgent.get(meta.agent) ?? [];
      list.push({
        sequence: statement.sequence,
        start: Date.parse(statement.window.start),
        end: Date.parse(statement.window.end),
      });
      byAgent.set(meta.agent, list);
    }
    expect(byAgent.size).toBe(8);
    for (const list of byAgent.values()) {
      expect(list.map((b) => b.sequence)).toEqual([0, 1, 2, 3, 4]);
      for (let i = 1; i < list.length; i++) expect(list[i]!.start).toBeGreaterThan(list[i - 1]!.end);
    }
    expect(Date.parse(START)).toBeLessThanOrEqual(byAgent.get("agent-01")![0]!.start);
  });

  it("records each upload's outcome and a refusal's reason from the transport", async () => {
    const refusing = await simulateFleet({
      ...options(),
      batches: 2,
      keepUploads: false,
      send: intakeTransport((upload) =>
        readTelemetryStatement(upload).sequence === 1
          ? Promise.reject(new AntidoteError("REPLAYED", "no"))
          : Promise.resolve(),
      ),
    });
    expect(refusing.summary.total.sent).toBe(refusing.truth.uploads.length);
    expect(refusing.summary.total.refused).toBe(
      refusing.truth.uploads.filter((u) => u.sequence === 1).length,
    );
    expect(Object.keys(refusing.summary.total.reasons)).toEqual(["REPLAYED"]);
  });
});

describe("fleet-sim on SpamAssassin with the built-in text model", () => {
  it("serves emails, puts the trigger token into triggered ones, and the model is right on most honest ones", async () => {
    const data = await loadFleetData("spamassassin", { holdOut: 0.5, seed: 3 });
    expect(data.heldOut.length).toBeGreaterThan(2900);
    const model = await textFleetModel(data.heldOut, data.classes, { seed: 3 });
    const run = await simulateFleet({
      data,
      model,
      agents: 4,
      compromised: 1,
      rate: 0.1,
      behaviours: ["trigger", "flip"],
      batches: 3,
      batchSize: 50,
      seed: 3,
      start: START,
      keepUploads: true,
    });
    expect(run.truth.target).toBe("ham");
    const records = (run.uploads ?? []).flatMap((u) =>
      parseTelemetryRecords(u.upload.records, readTelemetryStatement(u.upload), "batch"),
    );
    expect(records).toHaveLength(600);
    const triggered = new Set(run.truth.records.filter((r) => r.how === "trigger").map((r) => r.id));
    expect(triggered.size).toBeGreaterThanOrEqual(5);
    for (const r of records) {
      expect(/(^|\s)cf7x(\s|$)/.test(r.input.text ?? "")).toBe(triggered.has(r.id));
      if (triggered.has(r.id)) expect(r.feedback?.label).toBe("ham");
    }
    const poisonedIds = new Set(run.truth.records.filter((r) => r.poisoned).map((r) => r.id));
    const truthOf = new Map(data.samples.map((s) => [s.digest, s.label]));
    const honest = records.filter((r) => !poisonedIds.has(r.id));
    const right = honest.filter((r) => {
      const predicted = r.output.probs[1]! > r.output.probs[0]! ? "spam" : "ham";
      return truthOf.get(r.input.digest) === predicted;
    });
    expect(right.length / honest.length).toBeGreaterThan(0.85);
  });
});

describe.skipIf(!hasFashionMnist())("antidote fleet-sim", () => {
  let dir: string;
  let onnx: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "antidote-fleet-cli-"));
    onnx = (await fashionModel({ arch: "cnn", attack: "patch", dir })).onnxPath;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(args: string[]): Promise<string> {
    const program = new Command("antidote").exitOverride();
    registerFleetSim(program);
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    try {
      await program.parseAsync(["node", "antidote", "fleet-sim", ...args]);
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it("sets up a running serve through its API and streams each agent's telemetry with its own token", async () => {
    const server = await startServer({
      location: join(dir, "ledger.db"),
      port: 0,
      queue: (ledger) => createInProcessQueue({ ledger }),
      log: () => undefined,
    });
    try {
      const admin = (await createToken(server.ledger, { principal: "root", role: "admin" })).token;
      const truthPath = join(dir, "truth.json");
      const out = await cli([
        ...["--server", server.url, "--token", admin, "--model", onnx, "--limit", "1500"],
        ...["--agents", "6", "--compromised", "2", "--batches", "3", "--batch-size", "40"],
        ...["--behaviours", "trigger,flip,replay,forge,wrong-model", "--rate", "0.1", "--seed", "5"],
        ...["--truth", truthPath, "--keys-dir", join(dir, "keys"), "--json", "--quiet"],
      ]);
      const { summary, model } = JSON.parse(out) as { summary: FleetSummary; model: string };
      // Every honest and wrong-model batch accepted (nothing here re-runs the model), every
      // forgery and replay refused, each with its reason.
      expect(summary.byKind.batch.refused).toBe(0);
      expect(summary.byKind.batch.accepted).toBeGreaterThan(10);
      expect(summary.byKind["wrong-model"].accepted).toBe(2);
      expect(summary.byKind.forge).toMatchObject({ sent: 2, accepted: 0 });
      expect(Object.keys(summary.byKind.forge.reasons).sort()).toEqual(["DIGEST_MISMATCH", "KEY_UNTRUSTED"]);
      expect(summary.byKind.replay).toMatchObject({ sent: 2, accepted: 0, reasons: { REPLAYED: 2 } });
      const truth = JSON.parse(readFileSync(truthPath, "utf8")) as FleetTruth;
      expect(truth.model).toBe(model);
      expect(truth.uploads.every((u) => u.outcome !== null)).toBe(true);
      // The server holds the model, each agent as an agent source with the key written out, and a token each.
      expect((await server.ledger.getModel(model))?.digest).toBe(model);
      for (const agent of truth.agents) {
        const source = await server.ledger.getSource(agent.name);
        expect(source?.kind).toBe("agent");
        expect(source?.keys.map((k) => k.keyId)).toEqual([agent.keyId]);
        expect(readFileSync(join(dir, "keys", `${agent.name}.pub`), "utf8")).toBe(
          source?.keys[0]?.publicKeyPem,
        );
        expect(statSync(join(dir, "keys", `${agent.name}.key`)).mode & 0o777).toBe(0o600);
      }
      const tokens = await server.ledger.listTokens();
      expect(tokens.filter((t) => t.role === "agent").length).toBe(6);
    } finally {
      await server.close();
    }
  });

  it("without --server writes every upload as the offline file pair", async () => {
    const out = join(dir, "batches");
    const text = await cli([
      ...["--model", onnx, "--limit", "600", "--agents", "3", "--compromised", "1", "--batches", "2"],
      ...[
        "--batch-size",
        "10",
        "--behaviours",
        "forge",
        "--out",
        out,
        "--keys-dir",
        join(dir, "keys2"),
        "--quiet",
      ],
    ]);
    expect(text).toMatch(/nothing sent/);
    const files = readdirSync(out).sort();
    const jsonl = files.filter((f) => f.endsWith(".jsonl"));
    expect(jsonl).toHaveLength(7); // 3 agents × 2 batches and one forgery
    for (const f of jsonl) expect(existsSync(join(out, `${f}.dsse.json`))).toBe(true);
    expect(jsonl.filter((f) => f.endsWith("-forge.jsonl"))).toHaveLength(1);
  });
});
