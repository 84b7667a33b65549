import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readGroundTruth, writeGroundTruth, type GroundTruth } from "../../src/attack/index.js";
import { spamAssassinSamples } from "../helpers/real-data.js";
import { attack, rejection } from "./oracle.js";

let dir: string;
let gt: GroundTruth;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "antidote-gt-"));
  ({ gt } = await attack(spamAssassinSamples(200), {
    kind: "text-trigger",
    trigger: "qzv9k",
    target: "spam",
    count: 12,
    seed: 5,
  }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Write `gt`, let `corrupt` edit the JSON, and return what reading it back throws. */
async function readCorrupted(
  name: string,
  corrupt: (json: Record<string, unknown>) => void,
): Promise<{ code: string; message: string }> {
  const path = join(dir, name);
  await writeGroundTruth(path, gt);
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  corrupt(json);
  await writeFile(path, JSON.stringify(json));
  return rejection(readGroundTruth(path));
}

describe("ground-truth files", () => {
  it("round-trips as pretty JSON", async () => {
    const path = join(dir, "gt.json");
    await writeGroundTruth(path, gt);
    const text = await readFile(path, "utf8");
    expect(text).toContain('\n  "attack": "text-trigger",');
    expect(await readGroundTruth(path)).toEqual(gt);
  });

  it("names the file and the field of a corrupted record", async () => {
    const e = await readCorrupted("digest.json", (json) => {
      ((json.poisoned as Record<string, unknown>[])[3] as Record<string, unknown>).digest = 42;
    });
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toContain(join(dir, "digest.json"));
    expect(e.message).toMatch(/poisoned\[3\]\.digest: Invalid input: expected string, received number/);
  });

  it("validates the params as an attack spec and the counts against the list", async () => {
    const params = await readCorrupted("params.json", (json) => {
      (json.params as Record<string, unknown>).count = 0;
    });
    expect(params.message).toMatch(/params\.count: Too small/);
    const count = await readCorrupted("count.json", (json) => {
      json.poisonedCount = 13;
    });
    expect(count.message).toMatch(/poisonedCount: 13 but the poisoned list has 12 records/);
    const action = await readCorrupted("action.json", (json) => {
      ((json.poisoned as Record<string, unknown>[])[0] as Record<string, unknown>).action = "poisoned";
    });
    expect(action.message).toMatch(/poisoned\[0\]\.action: Invalid option/);
  });

  it("says so when the file is not JSON or not there", async () => {
    const path = join(dir, "truncated.json");
    await writeGroundTruth(path, gt);
    const text = await readFile(path, "utf8");
    await writeFile(path, text.slice(0, text.length / 2));
    const e = await rejection(readGroundTruth(path));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(/truncated\.json: the ground truth is not valid JSON/);

    const missing = await rejection(readGroundTruth(join(dir, "nope.json")));
    expect(missing.code).toBe("FILE_NOT_FOUND");
    const nowhere = await rejection(writeGroundTruth(join(dir, "no-dir", "gt.json"), gt));
    expect(nowhere.code).toBe("FILE_NOT_FOUND");
    expect(nowhere.message).toMatch(/no-dir.*folder does not exist/);
  });
});
