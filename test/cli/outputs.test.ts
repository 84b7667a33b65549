// The CLI's outputs under attack, as a user runs it: a convert onto its own input, a convert
// that fails half-way onto an existing output, overwriting without --force, labels named like
// Object.prototype's keys, `| head` closing stdout early, and --json failures.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { antidote, expectUserError } from "../helpers/cli.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js");
const PROTO_LABELS = ["__proto__", "constructor", "hasOwnProperty", "toString"];

let dir: string;
let input: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-outputs-"));
  input = join(dir, "in.jsonl");
  const rows = Array.from({ length: 6000 }, (_, i) =>
    JSON.stringify({
      id: `s${i}`,
      text: `message ${i} about ${PROTO_LABELS[i % 4]}`,
      label: PROTO_LABELS[i % 4],
    }),
  );
  writeFileSync(input, rows.join("\n") + "\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const at = (name: string) => join(dir, name);

describe("outputs never destroy inputs or leave partial files", () => {
  it("refuses to convert a file onto itself, leaving it byte-for-byte intact", async () => {
    const before = readFileSync(input);
    for (const args of [
      [input, input],
      [input, input, "--force"],
      [input, join(dir, ".", "in.jsonl"), "--to", "jsonl"],
    ]) {
      const r = await antidote(["convert", ...args]);
      expectUserError(r, 2, /the output .*in\.jsonl is the input .*in\.jsonl/);
    }
    expect(readFileSync(input)).toEqual(before);
  });

  it("a convert that fails mid-way leaves the old output intact and no temporaries", async () => {
    const bad = at("bad.jsonl");
    writeFileSync(bad, readFileSync(input, "utf8") + "{not json\n");
    writeFileSync(at("old.csv"), "id,text,label\nold,kept,x\n");
    const r = await antidote(["convert", bad, at("old.csv"), "--force"]);
    expectUserError(r, 3, /bad\.jsonl:6001: not valid JSON/);
    expect(readFileSync(at("old.csv"), "utf8")).toBe("id,text,label\nold,kept,x\n");
    expect(readdirSync(dir).filter((n) => n.startsWith("."))).toEqual([]);
    // ImageFolder: a failure (text samples hold no image) leaves no half directory.
    const folder = await antidote(["convert", input, at("folder"), "--to", "imagefolder"]);
    expectUserError(folder, 2, /folder: sample "s0" has no image/);
    expect(readdirSync(dir).filter((n) => n.startsWith(".") || n === "folder")).toEqual([]);
  });

  it("refuses an existing output without --force and replaces it with --force", async () => {
    const out = at("out.parquet");
    expect((await antidote(["convert", input, out])).code).toBe(0);
    writeFileSync(out, "stale");
    expectUserError(await antidote(["convert", input, out]), 2, /out\.parquet already exists; pass --force/);
    expect(readFileSync(out, "utf8")).toBe("stale");
    const forced = await antidote(["convert", input, out, "--force", "--json"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ written: 6000 });
    expect(readFileSync(out).subarray(0, 4).toString()).toBe("PAR1");
  });

  it("attack checks the dataset and its ground truth before writing either", async () => {
    const out = at("flip.jsonl");
    const args = ["attack", "label-flip", input, "--rate", "0.1", "--out", out, "--json"];
    expect((await antidote(args)).code).toBe(0);
    writeFileSync(out, "previous run");
    rmSync(`${out}.truth.json`);
    expectUserError(await antidote(args.slice(0, -1)), 2, /flip\.jsonl already exists; pass --force/);
    expect(readFileSync(out, "utf8")).toBe("previous run");
    // The dataset is new but its truth file exists: refused before anything is written.
    rmSync(out);
    writeFileSync(`${out}.truth.json`, "{}");
    expectUserError(await antidote(args.slice(0, -1)), 2, /flip\.jsonl\.truth\.json already exists/);
    expect(readdirSync(dir).filter((n) => n.startsWith("flip") || n.startsWith("."))).toEqual([
      "flip.jsonl.truth.json",
    ]);
    expectUserError(
      await antidote(["attack", "label-flip", input, "--rate", "0.1", "--out", input, "--force"]),
      2,
      /is the input/,
    );
    expect((await antidote([...args, "--force"])).code).toBe(0);
  });

  it("keygen never replaces a private key without --force", async () => {
    const base = at("acme");
    expect((await antidote(["keygen", "--out", base])).code).toBe(0);
    const key = readFileSync(`${base}.key`, "utf8");
    expectUserError(await antidote(["keygen", "--out", base]), 2, /acme\.key already exists; pass --force/);
    expect(readFileSync(`${base}.key`, "utf8")).toBe(key);
    expect((await antidote(["keygen", "--out", base, "--force"])).code).toBe(0);
    expect(readFileSync(`${base}.key`, "utf8")).not.toBe(key);
  });
});

describe("labels named like Object.prototype's keys", () => {
  it("inspect, attack label-flip and scan count __proto__, constructor, hasOwnProperty and toString", async () => {
    const inspect = await antidote(["inspect", input, "--json"]);
    expect(inspect.code).toBe(0);
    const { summary } = JSON.parse(inspect.stdout) as { summary: { labels: Record<string, number> } };
    expect(Object.entries(summary.labels).sort()).toEqual(PROTO_LABELS.map((l) => [l, 1500]).sort());

    const flip = await antidote([
      "attack",
      "label-flip",
      input,
      "--count",
      "40",
      "--out",
      at("proto.jsonl"),
      "--json",
    ]);
    expect(flip.code).toBe(0);
    const truth = JSON.parse(readFileSync(at("proto.jsonl.truth.json"), "utf8")) as {
      classes: string[];
      poisoned: { originalLabel: string; label: string }[];
    };
    expect([...truth.classes].sort()).toEqual([...PROTO_LABELS].sort());
    expect(truth.poisoned).toHaveLength(40);
    for (const p of truth.poisoned) {
      expect(PROTO_LABELS).toContain(p.label);
      expect(p.label).not.toBe(p.originalLabel);
    }
    const after = JSON.parse((await antidote(["inspect", at("proto.jsonl"), "--json"])).stdout) as {
      summary: { labels: Record<string, number> };
    };
    expect(Object.values(after.summary.labels).reduce((a, b) => a + b, 0)).toBe(6000);

    const scan = await antidote(["scan", at("proto.jsonl"), "--out", at("scan"), "--json"]);
    expect(scan.stderr).toBe("");
    expect(scan.code).toBe(0);
    const report = JSON.parse(readFileSync(join(at("scan"), "report.json"), "utf8")) as {
      dataset: Record<string, unknown>;
    };
    expect(JSON.stringify(report)).not.toMatch(/"\[object Object\]"|"function /);
    for (const label of PROTO_LABELS) expect(JSON.stringify(report.dataset)).toContain(`"${label}"`);
  }, 120_000);
});

describe("stdout and failures, as scripts see them", () => {
  it("ends quietly with exit 0 when `| head` stops reading a streamed output", async () => {
    // A shell pipe (node's own child pipes are sockets, which /dev/stdout cannot be opened on).
    const script = `"$0" "$1" convert "$2" /dev/stdout --to jsonl 2>"$3" | head -n 1 >/dev/null; echo "\${PIPESTATUS[0]}"`;
    const child = spawn("bash", ["-c", script, process.execPath, BIN, input, at("head.err")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    await new Promise((r) => child.on("close", r));
    expect(stdout.trim()).toBe("0");
    expect(readFileSync(at("head.err"), "utf8")).toBe("");
  });

  it("ends quietly when stdout closes during a long JSON print", async () => {
    const big = at("big.jsonl");
    writeFileSync(
      big,
      Array.from({ length: 30000 }, (_, i) =>
        JSON.stringify({ id: `b${i}`, text: "x", label: `L${i}`, source: `s${i}` }),
      ).join("\n"),
    );
    const child = spawn(process.execPath, [BIN, "inspect", big, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdout.once("data", () => child.stdout.destroy());
    expect(await new Promise<number | null>((r) => child.on("close", r))).toBe(0);
    expect(stderr).toBe("");
  });

  it("prints one JSON error object on stdout when a --json command fails", async () => {
    const r = await antidote(["convert", input, input, "--json"]);
    expectUserError(r, 2, /is the input/);
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        code: "USAGE",
        exitCode: 2,
        message: `the output ${input} is the input ${input}; write to another path (the input would be destroyed).`,
      },
    });
    const missing = await antidote(["inspect", at("nope.jsonl"), "--json"]);
    expect(missing.code).toBe(3);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: "FILE_NOT_FOUND", exitCode: 3 } });
    const flag = await antidote(["inspect", input, "--json", "--no-such-flag"]);
    expect(flag.code).toBe(2);
    expect(JSON.parse(flag.stdout)).toMatchObject({ error: { code: "USAGE", exitCode: 2 } });
  });
});
