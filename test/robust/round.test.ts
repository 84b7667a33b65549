// A round of robust aggregation over update files, as the server runs it: client updates are
// a logistic-regression-shaped model (fc.weight 10×784, fc.bias 10) computed from real
// Fashion-MNIST images, signed by each client with its own Ed25519 key. Honest rounds give
// exactly the mean / median of the inputs; every refused update is left out with its reason
// while the round still aggregates the rest; too few updates fail with the rule's bound; a
// ledger round records one finding per refused client plus the aggregation, in one append
// that verifies.
import { createHash, createPrivateKey } from "node:crypto";
import fs, { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { openLedger } from "../../src/ledger/index.js";
import type { LedgerEvent } from "../../src/ledger/types.js";
import { generateSigningKey, type SigningKey } from "../../src/provenance/keys.js";
import {
  attestationPathFor,
  attestUpdate,
  trustFromKeysDir,
  trustFromLedger,
  type ClientTrust,
} from "../../src/robust/attestation.js";
import { encodeNpyHeader } from "../../src/robust/npy.js";
import { runRound, type RoundOptions } from "../../src/robust/round.js";
import { encodeSafetensorsHeader, readSafetensorsHeader } from "../../src/robust/safetensors.js";
import {
  openScannedUpdates,
  scanUpdate,
  scanUpdates,
  type TensorInfo,
  type UpdateScan,
} from "../../src/robust/tensor-file.js";
import { fashionMnistSamples, FASHION_MNIST_CLASSES } from "../helpers/real-data.js";

const PER_CLIENT = 40;
const D = 10 * 784 + 10;
const LAYOUT: TensorInfo[] = [
  { name: "fc.weight", dtype: "F32", shape: [10, 784] },
  { name: "fc.bias", dtype: "F32", shape: [10] },
];

let dir: string;
let keysDir: string;
const keys = new Map<string, SigningKey>();
/** Each honest client's update in flat (name-sorted: fc.bias, fc.weight) order. */
const flat = new Map<string, Float32Array>();

/**
 * Client i's update from its own Fashion-MNIST images: per-class mean images scaled to a
 * weight-update magnitude, and the class frequencies as the bias. Honest clients differ as
 * their data differ.
 */
let images: ReturnType<typeof fashionMnistSamples> | undefined;
function clientUpdate(i: number): { weight: Float32Array; bias: Float32Array } {
  images ??= fashionMnistSamples(10 * PER_CLIENT);
  const samples = images.slice(i * PER_CLIENT, (i + 1) * PER_CLIENT);
  const weight = new Float32Array(10 * 784);
  const bias = new Float32Array(10);
  for (const s of samples) {
    const k = FASHION_MNIST_CLASSES.indexOf(s.label ?? "");
    bias[k] = (bias[k] ?? 0) + 1 / PER_CLIENT;
    const px = s.image?.data ?? new Float32Array(784);
    for (let j = 0; j < 784; j++) weight[k * 784 + j] = (weight[k * 784 + j] ?? 0) + (px[j] ?? 0) * 0.01;
  }
  return { weight, bias };
}

function safetensorsBytes(weight: Float32Array, bias: Float32Array, layout = LAYOUT): Buffer {
  return Buffer.concat([
    encodeSafetensorsHeader(layout),
    Buffer.from(weight.buffer, weight.byteOffset, weight.byteLength),
    Buffer.from(bias.buffer, bias.byteOffset, bias.byteLength),
  ]);
}

function flatOf(weight: Float32Array, bias: Float32Array): Float32Array {
  const out = new Float32Array(D);
  out.set(bias, 0);
  out.set(weight, 10);
  return out;
}

async function sign(update: string, clientId: string, signer: string, round = 7, federation = "default") {
  // Straight from the scan, problems and all: a Byzantine client signs whatever it likes.
  const scan = (await scanUpdates([update])).updates[0]?.scan as UpdateScan;
  const { envelope } = attestUpdate(scan, { clientId, round, federation }, keys.get(signer) as SigningKey);
  writeFileSync(attestationPathFor(update), JSON.stringify(envelope));
}

/** Write honest client `name` (update index i) as safetensors and sign it. */
async function honest(sub: string, name: string, i: number): Promise<string> {
  const { weight, bias } = clientUpdate(i);
  flat.set(name, flatOf(weight, bias));
  const path = join(dir, sub, `${name}.safetensors`);
  mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(path, safetensorsBytes(weight, bias));
  await sign(path, name, name);
  return path;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function readAll(path: string): Promise<Float32Array> {
  const scan = await scanUpdate(path);
  const m = openScannedUpdates([scan], scan.layout);
  try {
    return m.columns(0, 0, m.dimension).slice();
  } finally {
    m.close();
  }
}

let trust: ClientTrust;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-round-"));
  keysDir = join(dir, "keys");
  mkdirSync(keysDir);
  for (const name of ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "mallory"]) {
    const k = generateSigningKey();
    keys.set(name, {
      keyId: k.keyId,
      privateKey: createPrivateKey(k.privateKeyPem),
      publicKeyPem: k.publicKeyPem,
    });
    if (name !== "mallory") writeFileSync(join(keysDir, `${name}.pub`), k.publicKeyPem);
  }
  trust = await trustFromKeysDir(keysDir, { allowUnsigned: false });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const base = (updates: string[], over: Partial<RoundOptions> = {}): RoundOptions => ({
  updates,
  rule: "mean",
  byzantine: 1,
  round: 7,
  out: join(dir, "out", `agg-${Math.random().toString(36).slice(2)}.safetensors`),
  trust,
  ...over,
});

describe("an honest round", () => {
  let paths: string[];
  beforeAll(async () => {
    paths = [];
    for (let i = 0; i < 4; i++) paths.push(await honest("honest", `c${i + 1}`, i));
    // c5 sends a directory of .npy files: the same layout, another container.
    const { weight, bias } = clientUpdate(4);
    flat.set("c5", flatOf(weight, bias));
    const c5 = join(dir, "honest", "c5");
    mkdirSync(c5, { recursive: true });
    writeFileSync(
      join(c5, "fc.weight.npy"),
      Buffer.concat([encodeNpyHeader("F32", [10, 784]), Buffer.from(weight.buffer)]),
    );
    writeFileSync(
      join(c5, "fc.bias.npy"),
      Buffer.concat([encodeNpyHeader("F32", [10]), Buffer.from(bias.buffer)]),
    );
    await sign(c5, "c5", "c5");
    paths.push(c5);
  }, 60_000);

  it("mean: the aggregate is the mean of the inputs, written with the round's tensor names and shapes", async () => {
    const report = await runRound(base(paths, { out: join(dir, "out", "mean.safetensors") }));
    expect(report.clients.map((c) => [c.clientId, c.status])).toEqual(
      ["c1", "c2", "c3", "c4", "c5"].map((c) => [c, "accepted"]),
    );
    expect(report.clients.every((c) => c.keyId === keys.get(c.clientId)?.keyId)).toBe(true);
    const out = await readAll(report.output.path);
    const inputs = ["c1", "c2", "c3", "c4", "c5"].map((c) => flat.get(c) as Float32Array);
    let maxErr = 0;
    for (let j = 0; j < D; j++) {
      const want = inputs.reduce((s, u) => s + (u[j] ?? 0), 0) / inputs.length;
      maxErr = Math.max(maxErr, Math.abs((out[j] ?? 0) - want));
    }
    expect(maxErr).toBeLessThan(1e-6);
    const bytes = readFileSync(report.output.path);
    expect(report.output.digest).toBe(sha256(bytes));
    const header = await readSafetensorsHeader(report.output.path, bytes.length, (p, l) =>
      Promise.resolve(bytes.subarray(p, p + l)),
    );
    expect(header.tensors.map((t) => [t.name, t.shape])).toEqual([
      ["fc.bias", [10]],
      ["fc.weight", [10, 784]],
    ]);
    expect(header.metadata).toMatchObject({
      rule: "mean",
      round: "7",
      federation: "default",
      byzantine: "1",
    });
    expect(report.transform).toMatchObject({
      kind: "fl-aggregate",
      parameters: { rule: "mean", byzantine: 1, round: 7 },
      inputDigests: report.clients.map((c) => c.digest),
      outputDigests: [report.output.digest],
    });
    expect(report.findings).toEqual([]);
    expect(report.ledger).toBeNull();
  });

  it("median: the aggregate is the coordinate-wise median of the inputs, read in small blocks", async () => {
    const reads = vi.spyOn(fs, "readSync");
    const report = await runRound(
      base(paths, { rule: "median", blockSize: 512, out: join(dir, "out", "median.npy") }),
    );
    const sizes = reads.mock.calls.map((c) => (c as unknown[])[3] as number);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(512 * 4);
    const out = await readAll(report.output.path);
    const inputs = ["c1", "c2", "c3", "c4", "c5"].map((c) => flat.get(c) as Float32Array);
    let mismatches = 0;
    for (let j = 0; j < D; j++) {
      const sorted = inputs.map((u) => u[j] ?? 0).sort((a, b) => a - b);
      if (out[j] !== sorted[2]) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect(report.accepted).toBe(5);
  });
});

describe("attestations kept apart from the updates (--attestations DIR)", () => {
  it("finds <update>.dsse.json there, and nowhere else", async () => {
    const paths = [await honest("apart", "c1", 0), await honest("apart", "c2", 1)];
    const att = join(dir, "apart-attestations");
    mkdirSync(att, { recursive: true });
    for (const p of paths) {
      copyFileSync(attestationPathFor(p), attestationPathFor(p, att));
      rmSync(attestationPathFor(p));
    }
    const report = await runRound(base(paths, { attestationsDir: att, byzantine: 0 }));
    expect(report.clients.map((c) => c.status)).toEqual(["accepted", "accepted"]);
    const without = await runRound(base(paths, { byzantine: 0 })).catch((e: unknown) => e);
    expect(without).toMatchObject({
      code: "USAGE",
      message: expect.stringMatching(/c1: unsigned, c2: unsigned/) as unknown,
    });
  }, 60_000);
});

describe("refused updates are left out, each with its reason, and the round goes on", () => {
  let report: Awaited<ReturnType<typeof runRound>>;
  const honestNames = ["c1", "c2", "c3"];

  beforeAll(async () => {
    const paths: string[] = [];
    for (let i = 0; i < 3; i++) paths.push(await honest("mixed", honestNames[i] ?? "", i));
    const sub = join(dir, "mixed");
    const write = (name: string, bytes: Buffer) => {
      writeFileSync(join(sub, name), bytes);
      paths.push(join(sub, name));
      return join(sub, name);
    };
    const u = (i: number) => clientUpdate(i);
    // c4: no attestation.
    write("c4.safetensors", safetensorsBytes(u(3).weight, u(3).bias));
    // c5: signed with mallory's key, claiming to be c5.
    await sign(write("c5.safetensors", safetensorsBytes(u(4).weight, u(4).bias)), "c5", "mallory");
    // c6: a genuine update of round 6, replayed.
    await sign(write("c6.safetensors", safetensorsBytes(u(5).weight, u(5).bias)), "c6", "c6", 6);
    // c7: one byte of the data changed after signing.
    const c7 = write("c7.safetensors", safetensorsBytes(u(6).weight, u(6).bias));
    await sign(c7, "c7", "c7");
    const bytes = readFileSync(c7);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 0x40;
    writeFileSync(c7, bytes);
    // c8: NaN in its weights, signed.
    const nan = u(7);
    nan.weight[123] = NaN;
    await sign(write("c8.safetensors", safetensorsBytes(nan.weight, nan.bias)), "c8", "c8");
    // c9: another model (fc.weight 10×785), signed.
    const wide = new Float32Array(10 * 785);
    await sign(
      write(
        "c9.safetensors",
        safetensorsBytes(wide, u(8).bias, [
          { name: "fc.weight", dtype: "F32", shape: [10, 785] },
          { name: "fc.bias", dtype: "F32", shape: [10] },
        ]),
      ),
      "c9",
      "c9",
    );
    // c10: signed for another federation.
    await sign(write("c10.safetensors", safetensorsBytes(u(9).weight, u(9).bias)), "c10", "c10", 7, "other");
    report = await runRound(base(paths, { blockSize: 1000 }));
  }, 60_000);

  it("says why for each, and aggregates exactly the accepted updates", async () => {
    const byClient = Object.fromEntries(report.clients.map((c) => [c.clientId, c]));
    expect(Object.fromEntries(report.clients.map((c) => [c.clientId, [c.status, ...c.rejections]]))).toEqual({
      c1: ["accepted"],
      c2: ["accepted"],
      c3: ["accepted"],
      c4: ["rejected", "unsigned"],
      c5: ["rejected", "untrusted-key"],
      c6: ["rejected", "replayed"],
      c7: ["rejected", "tampered"],
      c8: ["rejected", "non-finite"],
      c9: ["rejected", "layout-mismatch"],
      c10: ["rejected", "wrong-federation"],
    });
    expect(byClient.c6?.reasons[0]).toMatch(/attested for round 6, this is round 7/);
    expect(byClient.c8?.reasons[0]).toMatch(/c8\.safetensors: tensor fc\.weight holds NaN at index 123/);
    expect(byClient.c9?.reasons[0]).toMatch(
      /c9\.safetensors: tensor fc\.weight has shape \[10,785\], the round's is \[10,784\]/,
    );
    expect(report.accepted).toBe(3);
    expect(report.rejected).toBe(7);

    const out = await readAll(report.output.path);
    const inputs = honestNames.map((c) => flat.get(c) as Float32Array);
    let maxErr = 0;
    for (let j = 0; j < D; j++)
      maxErr = Math.max(maxErr, Math.abs((out[j] ?? 0) - inputs.reduce((s, x) => s + (x[j] ?? 0), 0) / 3));
    expect(maxErr).toBeLessThan(1e-6);
    expect(report.transform.inputDigests).toEqual(honestNames.map((c) => byClient[c]?.digest));
  });

  it("makes one fl-update-rejected finding (score 1) per refused client, with the evidence", () => {
    expect(report.findings.map((f) => [f.subjectId, f.kind, f.score])).toEqual(
      ["c4", "c5", "c6", "c7", "c8", "c9", "c10"].map((c) => [c, "fl-update-rejected", 1]),
    );
    const c7 = report.findings.find((f) => f.subjectId === "c7");
    expect(c7).toMatchObject({ subjectType: "client", check: "robust/aggregate" });
    expect(c7?.evidence).toMatchObject({
      round: 7,
      federation: "default",
      rule: "mean",
      rejections: ["tampered"],
    });
    expect(c7?.evidence.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(c7?.evidence.reasons).toEqual([expect.stringMatching(/the update changed after it was signed/)]);
    expect(JSON.parse(JSON.stringify(report.findings))).toEqual(report.findings); // plain JSON, no NaN
  });
});

describe("suspicious but valid updates are flagged", () => {
  it("multi-krum leaves out a boosted sign-flipped update; it becomes an fl-update-outlier finding", async () => {
    const paths = [];
    for (let i = 0; i < 5; i++) paths.push(await honest("outlier", `c${i + 1}`, i));
    // c6 signs a genuine-looking update: the honest mean, flipped and boosted ×10.
    const mean = new Float32Array(D);
    for (const c of ["c1", "c2", "c3", "c4", "c5"]) {
      const x = flat.get(c) as Float32Array;
      for (let j = 0; j < D; j++) mean[j] = (mean[j] ?? 0) + (x[j] ?? 0) / 5;
    }
    const attack = mean.map((v) => -10 * v);
    const c6 = join(dir, "outlier", "c6.safetensors");
    writeFileSync(c6, safetensorsBytes(attack.subarray(10), attack.subarray(0, 10)));
    await sign(c6, "c6", "c6");
    const report = await runRound(base([...paths, c6], { rule: "multi-krum", byzantine: 1 }));
    const c6Report = report.clients.find((c) => c.clientId === "c6");
    expect(c6Report).toMatchObject({ status: "flagged", selected: false, rejections: [] });
    expect(c6Report?.cosine).toBeLessThan(-0.9);
    expect(c6Report?.reasons.join(" ")).toMatch(/multi-krum/);
    expect(report.clients.filter((c) => c.status === "accepted").length).toBeGreaterThanOrEqual(4);
    const finding = report.findings.find((f) => f.subjectId === "c6");
    expect(finding).toMatchObject({
      kind: "fl-update-outlier",
      subjectType: "client",
      check: "robust/aggregate",
    });
    expect(finding?.score).toBeGreaterThan(0.9);
    expect(finding?.evidence).toMatchObject({ rule: "multi-krum", selected: false });
    // The aggregate stays on the honest side: positive cosine with the honest mean.
    const out = await readAll(report.output.path);
    let dot = 0;
    for (let j = 0; j < D; j++) dot += (out[j] ?? 0) * (mean[j] ?? 0);
    expect(dot).toBeGreaterThan(0);
  }, 60_000);
});

describe("FLTrust with the server's root update", () => {
  it("scores clients against the root update, whose layout is the round's", async () => {
    const paths = [];
    for (let i = 0; i < 4; i++) paths.push(await honest("fltrust", `c${i + 1}`, i));
    const { weight, bias } = clientUpdate(6); // the server's own clean data
    const rootPath = join(dir, "fltrust", "root.safetensors");
    writeFileSync(rootPath, safetensorsBytes(weight, bias));
    const flip = flatOf(weight, bias).map((v) => -5 * v);
    const c5 = join(dir, "fltrust", "c5.safetensors");
    writeFileSync(c5, safetensorsBytes(flip.subarray(10), flip.subarray(0, 10)));
    await sign(c5, "c5", "c5");
    const report = await runRound(base([...paths, c5], { rule: "fltrust", rootUpdate: rootPath }));
    const root = await scanUpdate(rootPath);
    expect(report.transform.parameters).toMatchObject({ rule: "fltrust", rootUpdate: root.digest });
    expect(report.clients.find((c) => c.clientId === "c5")?.ruleScore).toBe(0); // ReLU(cosine) of a flipped update
    expect(report.clients.filter((c) => (c.ruleScore ?? 0) > 0).map((c) => c.clientId)).toEqual([
      "c1",
      "c2",
      "c3",
      "c4",
    ]);

    // A root update of another model: every client differs from the round's layout.
    const otherRoot = join(dir, "fltrust", "root-other.safetensors");
    writeFileSync(
      otherRoot,
      safetensorsBytes(new Float32Array(5 * 784), new Float32Array(10), [
        { name: "fc.weight", dtype: "F32", shape: [5, 784] },
        { name: "fc.bias", dtype: "F32", shape: [10] },
      ]),
    );
    const error = await runRound(base(paths, { rule: "fltrust", rootUpdate: otherRoot })).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: "USAGE",
      message: expect.stringMatching(/c1: layout-mismatch/) as unknown,
    });
  }, 60_000);
});

describe("FoolsGold with --history", () => {
  /** Client i's update centred on the whole federation's: honest clients' data differ, so their updates do. */
  function centred(i: number): Float32Array {
    const all = new Float32Array(D);
    for (let k = 0; k < 10; k++) {
      const { weight, bias } = clientUpdate(k);
      const f = flatOf(weight, bias);
      for (let j = 0; j < D; j++) all[j] = (all[j] ?? 0) + (f[j] ?? 0) / 10;
    }
    const { weight, bias } = clientUpdate(i);
    const mine = flatOf(weight, bias);
    return mine.map((v, j) => v - (all[j] ?? 0));
  }

  async function roundWith(
    r: number,
    honestIndex: (c: number) => number,
    history: string,
    over: Partial<RoundOptions> = {},
  ) {
    const sub = join(dir, `fg-${r}-${Math.random().toString(36).slice(2)}`);
    mkdirSync(sub, { recursive: true });
    const paths: string[] = [];
    const sent = new Map<string, Float32Array>();
    const poison = centred(9).map((v) => -3 * v);
    for (const [c, x] of [
      ...[1, 2, 3, 4].map((c) => [`c${c}`, centred(honestIndex(c))] as const),
      // Two sybils pushing the same poisoned direction, a hair apart.
      ["c5", poison.map((v, j) => v * (1 + 1e-4 * Math.sin(j)))] as const,
      ["c6", poison.map((v, j) => v * (1 + 1e-4 * Math.cos(j)))] as const,
    ]) {
      const path = join(sub, `${c}.safetensors`);
      writeFileSync(path, safetensorsBytes(x.subarray(10), x.subarray(0, 10)));
      await sign(path, c, c, r);
      paths.push(path);
      sent.set(c, x);
    }
    const report = await runRound(
      base(paths, { round: r, rule: "mean", byzantine: 0, historyDir: history, ...over }),
    );
    return { report, sent };
  }

  it("keeps each client's running sum, and leaves out sybils whose histories are near-identical", async () => {
    const history = join(dir, "history");
    const first = await roundWith(7, (c) => c - 1, history);
    const second = await roundWith(8, (c) => c + 3, history);
    for (const { report, sent } of [first, second]) {
      expect(report.clients.map((c) => [c.clientId, c.status])).toEqual([
        ["c1", "accepted"],
        ["c2", "accepted"],
        ["c3", "accepted"],
        ["c4", "accepted"],
        ["c5", "flagged"],
        ["c6", "flagged"],
      ]);
      expect(report.clients[4]?.reasons.join(" ")).toMatch(/FoolsGold: .*near-identical with client c6/);
      expect(report.clients[4]?.foolsGold?.weight).toBeLessThanOrEqual(0.01);
      expect(report.clients[0]?.foolsGold?.weight).toBeGreaterThan(0.01);
      expect(report.transform.inputDigests).toHaveLength(4);
      expect([report.aggregated, report.accepted, report.flagged, report.rejected]).toEqual([4, 4, 2, 0]);
      expect(report.findings.map((f) => [f.subjectId, f.kind])).toEqual([
        ["c5", "fl-update-outlier"],
        ["c6", "fl-update-outlier"],
      ]);
      // Sybils are out of the aggregate: it is the honest clients' mean.
      const out = await readAll(report.output.path);
      let maxErr = 0;
      for (let j = 0; j < D; j++) {
        const want = ["c1", "c2", "c3", "c4"].reduce((s, c) => s + (sent.get(c)?.[j] ?? 0), 0) / 4;
        maxErr = Math.max(maxErr, Math.abs((out[j] ?? 0) - want));
      }
      expect(maxErr).toBeLessThan(1e-6);
    }
    // c1's history is the sum of its two accepted updates.
    const sum = await readAll(join(history, "c1.npy"));
    const a = first.sent.get("c1") as Float32Array;
    const b = second.sent.get("c1") as Float32Array;
    let maxErr = 0;
    for (let j = 0; j < D; j++)
      maxErr = Math.max(maxErr, Math.abs((sum[j] ?? 0) - ((a[j] ?? 0) + (b[j] ?? 0))));
    expect(maxErr).toBeLessThan(1e-6);

    // A round that fails leaves the history as it was, with no partial files.
    const before = readFileSync(join(history, "c1.npy"));
    await expect(roundWith(9, (c) => c, history, { rule: "krum", byzantine: 1 })).rejects.toMatchObject({
      code: "USAGE",
    });
    expect(readFileSync(join(history, "c1.npy")).equals(before)).toBe(true);
    expect(fs.readdirSync(history).sort()).toEqual([
      "c1.npy",
      "c2.npy",
      "c3.npy",
      "c4.npy",
      "c5.npy",
      "c6.npy",
    ]);
  }, 60_000);
});

describe("one update per client per round", () => {
  it("the same bytes twice count once; two different updates from one client are both refused", async () => {
    const a = await honest("dup", "c1", 0);
    const b = await honest("dup", "c2", 1);
    const c = await honest("dup", "c3", 2);
    // A copy of c1's update with its attestation (a replay within the round).
    copyFileSync(a, join(dir, "dup", "c1-again.safetensors"));
    copyFileSync(attestationPathFor(a), attestationPathFor(join(dir, "dup", "c1-again.safetensors")));
    // c2 equivocates: a second, different update, also validly signed.
    const { weight, bias } = clientUpdate(5);
    const b2 = join(dir, "dup", "c2-b.safetensors");
    writeFileSync(b2, safetensorsBytes(weight, bias));
    await sign(b2, "c2", "c2");
    const report = await runRound(
      base([a, b, c, join(dir, "dup", "c1-again.safetensors"), b2], { rule: "mean", byzantine: 0 }),
    );
    expect(report.clients.map((x) => [x.file.split("/").pop(), x.status, ...x.rejections])).toEqual([
      ["c1.safetensors", "accepted"],
      ["c2.safetensors", "rejected", "replayed"],
      ["c3.safetensors", "accepted"],
      ["c1-again.safetensors", "rejected", "replayed"],
      ["c2-b.safetensors", "rejected", "replayed"],
    ]);
    expect(report.clients[3]?.reasons[0]).toMatch(
      /client c1 already sent this update this round .*; counted once/,
    );
    expect(report.clients[1]?.reasons[0]).toMatch(/client c2 sent 2 different updates this round/);
  }, 60_000);
});

describe("too few updates for the rule", () => {
  it("fails with the rule's bound and the refused clients, writing nothing", async () => {
    const ok = [await honest("few", "c1", 0), await honest("few", "c2", 1), await honest("few", "c3", 2)];
    const { weight, bias } = clientUpdate(3);
    const unsigned = join(dir, "few", "c4.safetensors");
    writeFileSync(unsigned, safetensorsBytes(weight, bias));
    const out = join(dir, "few", "agg.safetensors");
    const error = await runRound(base([...ok, unsigned], { rule: "median", byzantine: 2, out })).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: "USAGE",
      message: expect.stringMatching(
        /^rule median with --byzantine 2 needs n ≥ 2F\+1 = 5 updates, but only 3 of 4 remain \(refused: c4: unsigned\)/,
      ) as unknown,
    });
    expect(fs.existsSync(out)).toBe(false);
    await expect(runRound(base(ok, { rule: "krum", byzantine: 1 }))).rejects.toThrow(
      /needs n ≥ 2F\+3 = 5 updates/,
    );
  }, 60_000);
});

describe("with a ledger", () => {
  it("trusts the ledger's fl-client keys and records findings and the aggregation in one verified append", async () => {
    const paths = [];
    for (let i = 0; i < 4; i++) paths.push(await honest("ledger", `c${i + 1}`, i));
    const ledger = await openLedger({ location: join(dir, "ledger", "ledger.db") });
    try {
      await ledger.append(
        ["c1", "c2", "c3", "c4"].map((name) => ({
          kind: "source.added" as const,
          payload: {
            name,
            kind: "fl-client" as const,
            trust: 0.5,
            requireSignature: true,
            keys: [{ publicKeyPem: keys.get(name)?.publicKeyPem ?? "" }],
          },
        })),
      );
      await ledger.append([
        {
          kind: "source.key-revoked",
          payload: { source: "c4", keyId: keys.get("c4")?.keyId ?? "", reason: "compromised" },
        },
      ]);
      const before = await ledger.verify();
      const report = await runRound(base(paths, { trust: await trustFromLedger(ledger), ledger }));
      expect(report.clients.map((c) => [c.clientId, c.status, ...c.rejections])).toEqual([
        ["c1", "accepted"],
        ["c2", "accepted"],
        ["c3", "accepted"],
        ["c4", "rejected", "revoked-key"],
      ]);
      expect(report.ledger).toEqual({ location: ledger.location, events: 2 });
      const after = await ledger.verify();
      expect(after.ok).toBe(true);
      expect(after.events).toBe(before.events + 2);
      expect(after.checkpoints).toBe(before.checkpoints + 1); // one append
      const findings = [];
      for await (const f of ledger.findings({ subjectType: "client" })) findings.push(f);
      expect(findings.map((f) => [f.subjectId, f.kind, f.score])).toEqual([["c4", "fl-update-rejected", 1]]);
      const events: LedgerEvent[] = [];
      for await (const e of ledger.events(before.events + 1)) events.push(e);
      const transform = events.find((e) => e.kind === "transform.recorded");
      expect(transform?.payload).toMatchObject({
        subject: "fl:default:round-7",
        transform: { kind: "fl-aggregate", outputDigests: [report.output.digest] },
      });
    } finally {
      await ledger.close();
    }
  }, 60_000);
});
