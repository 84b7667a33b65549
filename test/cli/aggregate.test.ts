// `antidote sign-update` and `antidote aggregate` as a federation runs them, through the CLI:
// clients sign their Fashion-MNIST-derived updates, the server aggregates with keys from a
// directory or from the ledger, every kind of bad update is refused with its reason while
// the round still aggregates (exit 0), too few updates fail with the rule's bound (exit 2),
// and a ledger round records its findings and transform and passes `antidote ledger verify`.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runKeygen } from "../../src/cli/commands/keygen.js";
import { Command, CommanderError } from "commander";
import {
  registerAggregate,
  registerSignUpdate,
  runAggregate,
  runSignUpdate,
} from "../../src/cli/commands/aggregate.js";
import { openLedger } from "../../src/ledger/index.js";
import type { SigningKey } from "../../src/provenance/keys.js";
import { keyIdOf, readPrivateKey } from "../../src/provenance/keys.js";
import { attestUpdate } from "../../src/robust/attestation.js";
import type { RoundReport } from "../../src/robust/round.js";
import { encodeSafetensorsHeader } from "../../src/robust/safetensors.js";
import {
  openScannedUpdates,
  scanUpdate,
  scanUpdates,
  type TensorInfo,
  type UpdateScan,
} from "../../src/robust/tensor-file.js";
import { antidote, expectUserError, type CliResult } from "../helpers/cli.js";
import { fashionMnistSamples, FASHION_MNIST_CLASSES } from "../helpers/real-data.js";

const PER_CLIENT = 30;
const LAYOUT: TensorInfo[] = [
  { name: "fc.weight", dtype: "F32", shape: [10, 784] },
  { name: "fc.bias", dtype: "F32", shape: [10] },
];
const quiet = () => undefined;

let root: string;
let u: string; // updates
let keys: string; // public keys, as the server holds them
const flat = new Map<string, Float32Array>();

function ok(r: CliResult): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const cli = (args: string[]) => antidote(args, { cwd: root });

/** Client i's update from its own Fashion-MNIST images (per-class mean images, class frequencies). */
function clientUpdate(images: ReturnType<typeof fashionMnistSamples>, i: number) {
  const weight = new Float32Array(10 * 784);
  const bias = new Float32Array(10);
  for (const s of images.slice(i * PER_CLIENT, (i + 1) * PER_CLIENT)) {
    const k = FASHION_MNIST_CLASSES.indexOf(s.label ?? "");
    bias[k] = (bias[k] ?? 0) + 1 / PER_CLIENT;
    const px = s.image?.data ?? new Float32Array(784);
    for (let j = 0; j < 784; j++) weight[k * 784 + j] = (weight[k * 784 + j] ?? 0) + (px[j] ?? 0) * 0.01;
  }
  return { weight, bias };
}

function write(name: string, weight: Float32Array, bias: Float32Array, layout = LAYOUT): string {
  const path = join(u, name);
  writeFileSync(
    path,
    Buffer.concat([encodeSafetensorsHeader(layout), Buffer.from(weight.buffer), Buffer.from(bias.buffer)]),
  );
  return path;
}

/** Sign as a (possibly Byzantine) client would: whatever the file holds. */
async function signRaw(update: string, clientId: string, keyFile: string, round = 7): Promise<void> {
  const scan = (await scanUpdates([update])).updates[0]?.scan as UpdateScan;
  const key: SigningKey = await readPrivateKey(keyFile);
  const { envelope } = attestUpdate(scan, { clientId, round, federation: "default" }, key);
  writeFileSync(`${update}.dsse.json`, JSON.stringify(envelope));
}

async function values(path: string): Promise<Float32Array> {
  const scan = await scanUpdate(path);
  const m = openScannedUpdates([scan], scan.layout);
  try {
    return m.columns(0, 0, m.dimension).slice();
  } finally {
    m.close();
  }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "antidote-aggregate-cli-"));
  u = join(root, "updates");
  keys = join(root, "keys");
  mkdirSync(u);
  mkdirSync(keys);
  mkdirSync(join(root, "private"));
  for (const c of ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "mallory"]) {
    await runKeygen({ out: join(root, "private", c) }, quiet);
    if (c !== "mallory")
      writeFileSync(join(keys, `${c}.pub`), readFileSync(join(root, "private", `${c}.pub`)));
  }
  const images = fashionMnistSamples(10 * PER_CLIENT);
  for (let i = 0; i < 10; i++) {
    const { weight, bias } = clientUpdate(images, i);
    const name = `c${i + 1}`;
    const out = new Float32Array(10 + 7840);
    out.set(bias, 0);
    out.set(weight, 10);
    flat.set(name, out);
    if (name === "c8") weight[777] = NaN;
    if (name === "c9")
      write("c9.safetensors", new Float32Array(10 * 785), bias, [
        { name: "fc.weight", dtype: "F32", shape: [10, 785] },
        { name: "fc.bias", dtype: "F32", shape: [10] },
      ]);
    else write(`${name}.safetensors`, weight, bias);
  }
  // c3 … c10 sign in-process (the CLI's own code path, without a process per client); c1 and c2 use the CLI below.
  for (const c of ["c3", "c4"])
    await runSignUpdate(
      { update: join(u, `${c}.safetensors`), key: join(root, "private", `${c}.key`), client: c, round: 7 },
      quiet,
    );
  // c5: unsigned. c6: signed with mallory's key. c7: a round-6 update replayed. c8: NaN. c9: another shape.
  await signRaw(join(u, "c6.safetensors"), "c6", join(root, "private", "mallory.key"));
  await signRaw(join(u, "c7.safetensors"), "c7", join(root, "private", "c7.key"), 6);
  await signRaw(join(u, "c8.safetensors"), "c8", join(root, "private", "c8.key"));
  await signRaw(join(u, "c9.safetensors"), "c9", join(root, "private", "c9.key"));
  // c10: signed, then one byte of its weights changed.
  await signRaw(join(u, "c10.safetensors"), "c10", join(root, "private", "c10.key"));
  const bytes = readFileSync(join(u, "c10.safetensors"));
  bytes[bytes.length - 4000] = (bytes[bytes.length - 4000] ?? 0) ^ 0x01;
  writeFileSync(join(u, "c10.safetensors"), bytes);
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const all = () => Array.from({ length: 10 }, (_, i) => join(u, `c${i + 1}.safetensors`));

describe("antidote sign-update", () => {
  it("signs an update for one round, beside it by default", async () => {
    const out = ok(
      await cli([
        "sign-update",
        join(u, "c1.safetensors"),
        "--key",
        join(root, "private", "c1.key"),
        "--client",
        "c1",
        "--round",
        "7",
      ]),
    );
    expect(out).toMatch(/signed .*c1\.safetensors for client c1, round 7 \(federation default\)/);
    expect(out).toMatch(/7,850 parameters/);
    const envelope = JSON.parse(readFileSync(join(u, "c1.safetensors.dsse.json"), "utf8")) as {
      payload: string;
      payloadType: string;
    };
    expect(envelope.payloadType).toBe("application/vnd.antidote.fl-update+json");
    const printed: string[] = [];
    const json = await runSignUpdate(
      {
        update: join(u, "c2.safetensors"),
        key: join(root, "private", "c2.key"),
        client: "c2",
        round: "7",
        json: true,
      },
      (t) => void printed.push(t),
    );
    expect(JSON.parse(printed.join(""))).toEqual(json);
    expect(json.parameters).toBe(7850);
    expect(json.digest).toBe((await scanUpdate(join(u, "c2.safetensors"))).digest);
    expect(json.out).toBe(join(u, "c2.safetensors.dsse.json"));
  });

  it("refuses to sign an update holding NaN, and a bad round number", async () => {
    const sign = (update: string, round: string) =>
      runSignUpdate(
        {
          update: join(u, update),
          key: join(root, "private", "c8.key"),
          client: "c8",
          round,
          out: join(root, "x.json"),
        },
        quiet,
      );
    await expect(sign("c8.safetensors", "7")).rejects.toMatchObject({
      code: "INPUT_FORMAT",
      message: expect.stringMatching(/c8\.safetensors: tensor fc\.weight holds NaN at index 777/) as unknown,
    });
    await expect(sign("c1.safetensors", "seven")).rejects.toMatchObject({
      code: "USAGE",
      message: expect.stringMatching(/^--round: must be a round number/) as unknown,
    });
  });
});

describe("antidote aggregate with --keys", () => {
  let report: RoundReport;
  let stdout: string;

  it("refuses each bad update with its reason, aggregates the rest and exits 0", async () => {
    const r = await cli([
      "aggregate",
      ...all(),
      "--rule",
      "mean",
      "--byzantine",
      "1",
      "--round",
      "7",
      "--keys",
      keys,
      "--out",
      join(root, "agg-keys.safetensors"),
      "--report",
      join(root, "report.json"),
    ]);
    stdout = ok(r);
    report = JSON.parse(readFileSync(join(root, "report.json"), "utf8")) as RoundReport;
    expect(Object.fromEntries(report.clients.map((c) => [c.clientId, [c.status, ...c.rejections]]))).toEqual({
      c1: ["accepted"],
      c2: ["accepted"],
      c3: ["accepted"],
      c4: ["accepted"],
      c5: ["rejected", "unsigned"],
      c6: ["rejected", "untrusted-key"],
      c7: ["rejected", "replayed"],
      c8: ["rejected", "non-finite"],
      c9: ["rejected", "layout-mismatch"],
      c10: ["rejected", "tampered"],
    });
    const out = await values(join(root, "agg-keys.safetensors"));
    const honest = ["c1", "c2", "c3", "c4"].map((c) => flat.get(c) as Float32Array);
    let maxErr = 0;
    for (let j = 0; j < out.length; j++)
      maxErr = Math.max(maxErr, Math.abs((out[j] ?? 0) - honest.reduce((s, x) => s + (x[j] ?? 0), 0) / 4));
    expect(out.length).toBe(7850);
    expect(maxErr).toBeLessThan(1e-6);
  });

  it("prints a per-client table and a summary line", () => {
    const lines = stdout.split("\n");
    expect(lines[0]).toMatch(/^client\s+status\s+norm\s+distance\s+cosine\s+rule score\s+reason$/);
    expect(lines.find((l) => l.startsWith("c7 "))).toMatch(
      /rejected .*attested for round 6, this is round 7/,
    );
    expect(lines.find((l) => l.startsWith("c5 "))).toMatch(
      /rejected .*unsigned — client c5 must sign its updates/,
    );
    expect(lines.find((l) => l.startsWith("c10 "))).toMatch(
      /rejected .*the update changed after it was signed/,
    );
    expect(stdout).toMatch(
      /round 7 of federation default: mean, F=1 — 4 of 10 updates aggregated, 6 rejected; 7,850 parameters → .*agg-keys\.safetensors \(sha256 [0-9a-f]{16}…\)/,
    );
    expect(stdout).toMatch(/report: .*report\.json/);
  });

  it("fails with exit 2 and the rule's bound when too few updates remain", async () => {
    const r = await cli([
      "aggregate",
      ...all(),
      "--rule",
      "krum",
      "--byzantine",
      "1",
      "--round",
      "7",
      "--keys",
      keys,
      "--out",
      join(root, "never.safetensors"),
    ]);
    expectUserError(
      r,
      2,
      /rule krum with --byzantine 1 needs n ≥ 2F\+3 = 5 updates, but only 4 of 10 remain \(refused: c5: unsigned, c6: untrusted-key/,
    );
  });

  it("validates its flags at the boundary", async () => {
    const flags = {
      updates: all().slice(0, 1),
      rule: "mean",
      byzantine: "1",
      round: "7",
      out: join(root, "x.npy"),
      keys,
    };
    const usage = (over: Record<string, unknown>, message: RegExp) =>
      expect(
        runAggregate({ ...flags, ...over }, { write: () => true } as unknown as NodeJS.WritableStream),
      ).rejects.toMatchObject({
        code: "USAGE",
        message: expect.stringMatching(message) as unknown,
      });
    await usage({ rule: "average" }, /^--rule: /);
    await usage({ byzantine: "-1" }, /^--byzantine: /);
    await usage({ ledger: "l.db" }, /--keys and --ledger: give one/);
    await usage({ out: "x.bin" }, /--out x\.bin: write the aggregate as \.safetensors or \.npy/);
    await usage(
      { keys: undefined, allowUnsigned: true, ledger: "l.db" },
      /--allow-unsigned: with a ledger each client's own policy decides/,
    );
    await usage({ rule: "fltrust" }, /--rule fltrust needs --root-update/);
  });

  it("teaches the workflow in --help", async () => {
    const out: string[] = [];
    const program = new Command("antidote")
      .exitOverride()
      .configureOutput({ writeOut: (t) => void out.push(t) });
    registerAggregate(program);
    registerSignUpdate(program);
    for (const name of ["aggregate", "sign-update"])
      expect(
        await program.parseAsync([name, "--help"], { from: "user" }).catch((e: unknown) => e),
      ).toBeInstanceOf(CommanderError);
    const help = out.join("");
    expect(help).toMatch(/antidote keygen --out c1/);
    expect(help).toMatch(/antidote source add c1 --kind fl-client --key c1\.pub/);
    expect(help).toMatch(/antidote sign-update c1\.safetensors --key c1\.key --client c1 --round 7/);
    expect(help).toMatch(
      /antidote aggregate updates\/\*\.safetensors --rule multi-krum --byzantine 2 --round 7/,
    );
    expect(help).toMatch(/antidote sign-update c7\.safetensors --key c7\.key --client c7 --round 12/);
  });
});

describe("antidote aggregate with the ledger", () => {
  it("trusts fl-client sources, refuses a revoked key, records findings and the transform; the ledger verifies", async () => {
    const ledger = join(root, "fl", "ledger.db");
    // Registering four clients is `antidote source add cN --kind fl-client --key cN.pub` four
    // times; done in-process here to keep the test fast. The revocation goes through the CLI.
    const l = await openLedger({ location: ledger });
    const added = [];
    for (const c of ["c1", "c2", "c3", "c4"]) {
      const pem = readFileSync(join(keys, `${c}.pub`), "utf8");
      added.push({
        kind: "source.added" as const,
        payload: {
          name: c,
          kind: "fl-client" as const,
          trust: 0.5,
          requireSignature: true,
          keys: [{ publicKeyPem: pem }],
        },
      });
    }
    await l.append(added);
    await l.close();
    const c4Key = keyIdOf(readFileSync(join(keys, "c4.pub"), "utf8"));
    ok(
      await cli([
        "source",
        "revoke-key",
        "c4",
        c4Key.slice(0, 12),
        "--reason",
        "device lost",
        "--ledger",
        ledger,
      ]),
    );

    const r = await cli([
      "aggregate",
      ...all().slice(0, 5),
      "--rule",
      "median",
      "--byzantine",
      "1",
      "--round",
      "7",
      "--ledger",
      ledger,
      "--out",
      join(root, "agg-ledger.npy"),
      "--json",
    ]);
    const report = JSON.parse(ok(r)) as RoundReport;
    expect(report.clients.map((c) => [c.clientId, c.status, ...c.rejections])).toEqual([
      ["c1", "accepted"],
      ["c2", "accepted"],
      ["c3", "accepted"],
      ["c4", "rejected", "revoked-key"],
      ["c5", "rejected", "unknown-client"],
    ]);
    expect(report.clients[4]?.reasons[0]).toMatch(/has no fl-client source named "c5"/);
    expect(report.clients[3]?.reasons[0]).toMatch(
      /signed by key [0-9a-f]{16}… of client c4, which was revoked at/,
    );
    // Median of three honest updates: exactly the middle value of every coordinate.
    const out = await values(join(root, "agg-ledger.npy"));
    const honest = ["c1", "c2", "c3"].map((c) => flat.get(c) as Float32Array);
    let mismatches = 0;
    for (let j = 0; j < out.length; j++) {
      const sorted = honest.map((x) => x[j] ?? 0).sort((a, b) => a - b);
      if (out[j] !== sorted[1]) mismatches++;
    }
    expect(mismatches).toBe(0);

    const verify = await cli(["ledger", "verify", "--ledger", ledger]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/: OK — \d+ events, \d+ signed checkpoints, derived tables match/);
    const reopened = await openLedger({ location: ledger });
    const log: { kind: string; payload: Record<string, unknown> }[] = [];
    try {
      for await (const e of reopened.events())
        log.push(e as unknown as { kind: string; payload: Record<string, unknown> });
    } finally {
      await reopened.close();
    }
    const findings = log.filter((e) => e.kind === "finding.recorded").map((e) => e.payload);
    expect(findings.map((f) => [f.subjectType, f.subjectId, f.kind, f.score])).toEqual([
      ["client", "c4", "fl-update-rejected", 1],
      ["client", "c5", "fl-update-rejected", 1],
    ]);
    const transform = log.find((e) => e.kind === "transform.recorded")?.payload as {
      transform: {
        kind: string;
        inputDigests: string[];
        outputDigests: string[];
        parameters: Record<string, unknown>;
      };
    };
    expect(transform.transform).toMatchObject({
      kind: "fl-aggregate",
      parameters: { rule: "median", byzantine: 1, round: 7 },
      inputDigests: report.clients.slice(0, 3).map((c) => c.digest),
      outputDigests: [report.output.digest],
    });
  }, 120_000);
});
