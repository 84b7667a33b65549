// Hole 4 of the security issue, performed: a dataset that names files outside its own
// directory — by `..`, by an absolute path, by a symlink in an ImageFolder, by a metadata
// record — must be refused (PATH_OUTSIDE_ROOT) without reading the file, and no message may
// carry the file's bytes. `allowPathsOutsideRoot` / --allow-outside-root lets a trusted
// dataset do it. Also: a pipe where a dataset file is expected is one clear line, not ESPIPE.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteWriter, parquetWrite } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReadOptions } from "../../src/data/dataset.js";
import { encodePng } from "../../src/data/image-codec.js";
import { collect } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import { EXIT } from "../../src/cli/exit-codes.js";
import { antidote, expectUserError } from "../helpers/cli.js";
import { antidoteFailure } from "../helpers/errors.js";

// A recognisable secret: it must never appear in any message.
const SECRET = "root:$6$ANTIDOTE-SECRET-4f9c1e$hash:19000:0:99999:7:::";
let dir: string;
let data: string; // the dataset's directory
let outside: string; // a sibling directory the dataset must not reach
const png = encodePng(
  Uint8Array.from({ length: 16 }, (_, i) => i * 16),
  4,
  4,
  1,
);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-escape-"));
  data = join(dir, "data");
  outside = join(dir, "outside");
  mkdirSync(data);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.png"), SECRET); // named like an image, holds a secret
  writeFileSync(join(outside, "shadow"), SECRET); // no extension, as /etc/shadow
  writeFileSync(join(outside, "real.png"), png);
  writeFileSync(join(data, "inside.png"), png);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function jsonl(name: string, images: string[]): string {
  const file = join(data, name);
  writeFileSync(
    file,
    images.map((image, i) => JSON.stringify({ id: i, image, label: "a" })).join("\n") + "\n",
  );
  return file;
}

async function refusal(spec: string, options: ReadOptions = {}) {
  const e = await antidoteFailure(openDataset(spec, options).then(collect));
  expect(e.message).not.toContain("ANTIDOTE-SECRET");
  expect(e.message).not.toContain("72 6f 6f 74"); // "root" in hex
  return e;
}

describe("JSONL and CSV rows that name files outside the dataset", () => {
  it("refuses ../../outside/secret.png, naming the file, line, field and the path as written", async () => {
    const file = jsonl("dotdot.jsonl", ["inside.png", "../outside/secret.png"]);
    const e = await refusal(file);
    expect(e.code).toBe("PATH_OUTSIDE_ROOT");
    expect(e.message).toContain(`${file}:2 field "image": "../outside/secret.png" is a file outside`);
    expect(e.message).toContain("--allow-outside-root");
  });

  it("refuses absolute paths, with or without an image extension, and links that lead out", async () => {
    symlinkSync(join(outside, "secret.png"), join(data, "link.png"));
    for (const image of [join(outside, "secret.png"), join(outside, "shadow"), "link.png"]) {
      const e = await refusal(jsonl("abs.jsonl", [image]));
      expect(e.code).toBe("PATH_OUTSIDE_ROOT");
      expect(e.message).toContain(JSON.stringify(image));
    }
    const csv = join(data, "abs.csv");
    writeFileSync(csv, `id,image,label\n1,${join(outside, "real.png")},a\n`);
    expect((await refusal(csv)).message).toContain(`${csv}:2 field "image"`);
  });

  it("skips a refused row with onError skip, and reads it when allowed", async () => {
    const file = jsonl("mixed.jsonl", ["inside.png", "../outside/real.png", "inside.png"]);
    const skipped: string[] = [];
    const kept = await collect(
      await openDataset(file, { onError: "skip", onSkip: (e) => skipped.push(e.code) }),
    );
    expect([kept.length, skipped]).toEqual([2, ["PATH_OUTSIDE_ROOT"]]);
    const all = await collect(await openDataset(file, { allowPathsOutsideRoot: true }));
    expect(all.map((s) => s.image?.width)).toEqual([4, 4, 4]);
  });

  it("refuses a pipe named as an image instead of blocking on it", async () => {
    execFileSync("mkfifo", [join(data, "fifo.png")]);
    const e = await refusal(jsonl("fifo.jsonl", ["fifo.png"]));
    expect([e.code, e.message]).toEqual(["ROW_MALFORMED", expect.stringContaining('"fifo.png" is a pipe')]);
  });

  it("applies to Parquet image structs' paths", async () => {
    const file = join(data, "hf.parquet");
    const writer = new ByteWriter();
    await parquetWrite({
      writer,
      columnData: [{ name: "image", data: [{ bytes: null, path: "../outside/real.png" }] }],
      schema: [
        { name: "schema", num_children: 1 },
        { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
        { name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" },
        { name: "path", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      ],
    });
    writeFileSync(file, writer.getBytes());
    const e = await refusal(file);
    expect([e.code, e.message]).toEqual(["PATH_OUTSIDE_ROOT", expect.stringContaining(`${file} row 0`)]);
    expect(await collect(await openDataset(file, { allowPathsOutsideRoot: true }))).toHaveLength(1);
  });
});

describe("ImageFolder links and metadata that lead outside the root", () => {
  it("refuses a class-directory symlink to an outside file, and reads links that stay inside", async () => {
    const root = join(dir, "folder-link");
    mkdirSync(join(root, "cat"), { recursive: true });
    writeFileSync(join(root, "cat", "0.png"), png);
    symlinkSync(join(root, "cat", "0.png"), join(root, "cat", "1.png")); // inside: fine
    symlinkSync(join(outside, "secret.png"), join(root, "cat", "evil.png"));
    const e = await refusal(root);
    expect([e.code, e.message]).toEqual([
      "PATH_OUTSIDE_ROOT",
      expect.stringContaining('"cat/evil.png" leads through a link to a file outside'),
    ]);
    const skipped: string[] = [];
    const kept = await collect(
      await openDataset(root, { onError: "skip", onSkip: (x) => skipped.push(x.code) }),
    );
    expect([kept.map((s) => s.id), skipped]).toEqual([["cat/0.png", "cat/1.png"], ["PATH_OUTSIDE_ROOT"]]);
    // Allowed, the link is followed — and the secret, not being an image, is still not quoted.
    const allowed = await refusal(root, { allowPathsOutsideRoot: true });
    expect([allowed.code, allowed.message]).toEqual([
      "IMAGE_UNDECODABLE",
      expect.stringContaining("no PNG or JPEG signature"),
    ]);
  });

  it("refuses metadata file_name entries and a metadata file that lead outside", async () => {
    const root = join(dir, "folder-meta");
    mkdirSync(root);
    symlinkSync(join(outside, "secret.png"), join(root, ".hidden.png")); // hidden: not listed itself
    const meta = join(root, "metadata.jsonl");
    for (const fileName of ["../outside/real.png", join(outside, "real.png"), ".hidden.png"]) {
      writeFileSync(meta, JSON.stringify({ file_name: fileName, label: "x" }) + "\n");
      const e = await refusal(root);
      expect([e.code, e.message]).toEqual([
        "PATH_OUTSIDE_ROOT",
        expect.stringContaining(`${meta}:1 field "file_name": ${JSON.stringify(fileName)}`),
      ]);
    }
    writeFileSync(meta, JSON.stringify({ file_name: "../outside/real.png", label: "x" }) + "\n");
    expect(await collect(await openDataset(root, { allowPathsOutsideRoot: true }))).toHaveLength(1);

    const linked = join(dir, "folder-meta-link");
    mkdirSync(linked);
    writeFileSync(
      join(outside, "metadata.jsonl"),
      JSON.stringify({ file_name: "a.png", token: SECRET }) + "\n",
    );
    symlinkSync(join(outside, "metadata.jsonl"), join(linked, "metadata.jsonl"));
    expect((await refusal(linked)).code).toBe("PATH_OUTSIDE_ROOT");
  });
});

describe("the CLI", () => {
  it("refuses with exit 3 and one line, never the secret; --allow-outside-root reads it", async () => {
    const file = jsonl("cli.jsonl", ["../outside/real.png"]);
    const r = await antidote(["inspect", file]);
    expectUserError(
      r,
      EXIT.input,
      /cli\.jsonl:1 field "image": "\.\.\/outside\/real\.png" is a file outside/,
    );
    const ok = await antidote(["inspect", file, "--allow-outside-root"]);
    expect([ok.code, ok.stderr]).toEqual([0, expect.any(String)]);
    expect(ok.stdout).toMatch(/1/);

    // The issue's /etc/shadow case: the link is followed only when allowed, and even then
    // the error describes the file instead of printing its first bytes.
    const root = join(dir, "cli-folder");
    mkdirSync(join(root, "x"), { recursive: true });
    symlinkSync(join(outside, "shadow"), join(root, "x", "shadow.png"));
    for (const args of [[], ["--allow-outside-root"]]) {
      const bad = await antidote(["inspect", root, ...args]);
      expectUserError(bad, EXIT.input, /shadow\.png/);
      expect(bad.stderr).not.toMatch(/ANTIDOTE-SECRET|root:|72 6f 6f 74/);
    }
  });

  it("says a piped dataset is a pipe, not a file, instead of crashing with ESPIPE", async () => {
    const line = `'{"id":1,"text":"hello","label":"a"}'`;
    const piped = await shell(`echo ${line} | "$NODE" "$BIN" inspect /dev/stdin`);
    expectUserError(piped, EXIT.input, /\/dev\/stdin is a pipe, not a file: .*write it to a file first/);
    expect(piped.stderr).not.toMatch(/ESPIPE/);
    const substituted = await shell(`"$NODE" "$BIN" inspect <(echo ${line}) --format jsonl`);
    expectUserError(substituted, EXIT.input, /\/dev\/fd\/\d+ is a pipe, not a file/);
  });
});

// The CLI under bash, for pipes and process substitution as a user types them.
function shell(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    NODE: process.execPath,
    BIN: join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js"),
  };
  return new Promise((done) => {
    const child = spawn("bash", ["-c", script], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}
