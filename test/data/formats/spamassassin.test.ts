import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spamAssassinFormat } from "../../../src/data/formats/spamassassin.js";
import { collect } from "../../../src/data/memory.js";
import { AntidoteError } from "../../../src/errors.js";
import type { Sample } from "../../../src/data/sample.js";
import { spamAssassinDir, spamAssassinSamples } from "../../helpers/real-data.js";

const dataDir = spamAssassinDir();

// Counted from the package's directories, not from file_list.json, so the reader's use of
// the list is checked against what is on disk.
function groupCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    counts.set(entry.name, readdirSync(join(dataDir, entry.name)).filter((f) => f.endsWith(".json")).length);
  }
  return counts;
}

let all: Sample[];
beforeAll(async () => {
  all = await collect(await spamAssassinFormat.open(dataDir, {}));
});

describe("SpamAssassin reader on the real corpus", () => {
  it("has the groups and counts the package ships", () => {
    expect(Object.fromEntries(groupCounts())).toEqual({
      "easy-ham-1": 2500,
      "easy-ham-2": 1400,
      "hard-ham-1": 250,
      "spam-1": 500,
      "spam-2": 1396,
    });
  });

  it("reads 6,046 emails: 4,150 ham and 1,896 spam, one per file on disk", () => {
    expect(all).toHaveLength(6_046);
    const byLabel = new Map<string | null, number>();
    const byGroup = new Map<string, number>();
    for (const s of all) {
      byLabel.set(s.label, (byLabel.get(s.label) ?? 0) + 1);
      const group = s.metadata.group;
      if (typeof group !== "string") throw new Error(`${s.id}: metadata.group is not a string`);
      byGroup.set(group, (byGroup.get(group) ?? 0) + 1);
    }
    expect(Object.fromEntries(byLabel)).toEqual({ ham: 4_150, spam: 1_896 });
    expect(byGroup).toEqual(groupCounts());
    expect(new Set(all.map((s) => s.id)).size).toBe(6_046);
  });

  it("matches the independent oracle on 60 emails spread over all groups", () => {
    const oracle = spamAssassinSamples(60);
    const byId = new Map(all.map((s) => [s.id, s]));
    expect(new Set(oracle.map((s) => s.metadata.group)).size).toBe(5);
    for (const want of oracle) {
      const got = byId.get(want.id);
      expect(got).toEqual(want);
    }
  });

  it("yields the text of the JSON file byte for byte", () => {
    const sample = all[4_321];
    const [group, id] = (sample?.id ?? "").split("/");
    const file = readdirSync(join(dataDir, group ?? "")).find(
      (f) => f.startsWith(`${id}.`) && f.endsWith(".json"),
    );
    const json = JSON.parse(readFileSync(join(dataDir, group ?? "", file ?? ""), "utf8")) as { text: string };
    expect(sample?.text).toBe(json.text);
    expect(sample?.text?.length).toBeGreaterThan(100);
  });

  it("reports classes, count, bytes and progress, and opens the package root too", async () => {
    const progress: number[] = [];
    const ds = await spamAssassinFormat.open(join(dataDir, ".."), { onProgress: (n) => progress.push(n) });
    expect(ds.info).toMatchObject({
      format: "spamassassin",
      classes: ["ham", "spam"],
      labelKind: "string",
      count: 6_046,
    });
    let n = 0;
    for await (const s of ds.samples()) {
      expect(s.id).toBe(all[n]?.id);
      if (++n === 300) break;
    }
    expect(progress).toHaveLength(300);
    const firstFile =
      (JSON.parse(readFileSync(join(dataDir, "file_list.json"), "utf8")) as string[])[0] ?? "";
    expect(progress[0]).toBe(statSync(join(dataDir, firstFile.replace(/\.txt$/, ".json"))).size);
    expect(ds.info.bytes).toBeGreaterThan(progress.at(-1) ?? 0);
  });
});

describe("SpamAssassin reader errors", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "antidote-spam-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  // A three-email corpus in the package's layout, built from real emails.
  function miniCorpus(name: string, list: string[], extra: Record<string, unknown> = {}): string {
    const root = join(dir, name);
    for (const group of ["easy-ham-1", "spam-2"]) mkdirSync(join(root, group), { recursive: true });
    const real = spamAssassinSamples(3);
    real.forEach((s, i) => {
      const group = i === 2 ? "spam-2" : "easy-ham-1";
      writeFileSync(
        join(root, group, `0000${i}.abc.json`),
        JSON.stringify({ id: `0000${i}`, group, text: s.text }),
      );
    });
    for (const [file, content] of Object.entries(extra)) {
      writeFileSync(join(root, file), typeof content === "string" ? content : JSON.stringify(content));
    }
    writeFileSync(join(root, "file_list.json"), JSON.stringify(list));
    return root;
  }

  async function failure(p: Promise<unknown>): Promise<AntidoteError> {
    try {
      await p;
    } catch (e) {
      if (e instanceof AntidoteError) return e;
      throw e;
    }
    throw new Error("expected an AntidoteError");
  }

  const good = ["easy-ham-1/00000.abc.txt", "easy-ham-1/00001.abc.txt", "spam-2/00002.abc.txt"];

  it("reads a copy of the layout, with labels from the group names", async () => {
    const root = miniCorpus("ok", good);
    const got = await collect(await spamAssassinFormat.open(root, {}));
    expect(got.map((s) => [s.id, s.label])).toEqual([
      ["easy-ham-1/00000", "ham"],
      ["easy-ham-1/00001", "ham"],
      ["spam-2/00002", "spam"],
    ]);
  });

  it("says what is wrong with a directory that is not the corpus, or a missing path", async () => {
    const e = await failure(spamAssassinFormat.open(dir, {}));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toContain("not a SpamAssassin corpus directory (no file_list.json here");
    expect((await failure(spamAssassinFormat.open(join(dir, "absent"), {}))).code).toBe("FILE_NOT_FOUND");
  });

  it("refuses list entries that leave the data directory", async () => {
    const root = miniCorpus("escape", ["../../etc/passwd.txt"]);
    const e = await failure(spamAssassinFormat.open(root, {}));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toContain(`${join(root, "file_list.json")} entry 0: expected "<group>/<name>.txt"`);
  });

  it("flags a listed file that is missing or malformed, or skips it when asked", async () => {
    const root = miniCorpus("broken", [...good, "easy-ham-1/00009.abc.txt", "spam-2/00003.abc.txt"], {
      "spam-2/00003.abc.json": { id: "00003", group: "spam-2", text: 42 },
    });
    const e = await failure(collect(await spamAssassinFormat.open(root, {})));
    expect(e.code).toBe("ROW_MALFORMED");
    expect(e.message).toBe(
      `${join(root, "easy-ham-1/00009.abc.json")}: listed in file_list.json but cannot be read (ENOENT).`,
    );
    const skipped: string[] = [];
    const got = await collect(
      await spamAssassinFormat.open(root, { onError: "skip", onSkip: (err) => skipped.push(err.message) }),
    );
    expect(got).toHaveLength(3);
    expect(skipped).toHaveLength(2);
    expect(skipped[1]).toContain(`${join(root, "spam-2/00003.abc.json")} field "text":`);
  });

  it("rejects a group that is neither ham nor spam", async () => {
    const root = miniCorpus("group", ["other-1/00005.abc.txt"]);
    mkdirSync(join(root, "other-1"));
    cpSync(join(root, "easy-ham-1/00000.abc.json"), join(root, "other-1/00005.abc.json"));
    const e = await failure(collect(await spamAssassinFormat.open(root, {})));
    expect(e.message).toContain('field "group": "easy-ham-1" but the file is in other-1/');
    writeFileSync(
      join(root, "other-1/00005.abc.json"),
      JSON.stringify({ id: "00005", group: "other-1", text: "x" }),
    );
    const e2 = await failure(collect(await spamAssassinFormat.open(root, {})));
    expect(e2.message).toContain(
      '"other-1" is neither a ham group (easy-ham-*, hard-ham-*) nor a spam group (spam-*)',
    );
  });
});
