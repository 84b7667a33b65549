import { beforeAll, describe, expect, it } from "vitest";
import { MemoryWriter, memoryDataset } from "../../src/data/memory.js";
import type { Dataset } from "../../src/data/dataset.js";
import type { Sample } from "../../src/data/sample.js";
import { parseAttackSpec, simulateAttack, type AttackSpec } from "../../src/attack/index.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples, spamAssassinSamples } from "../helpers/real-data.js";
import { attack, rejection, victimPositions } from "./oracle.js";

let images: Sample[];
let emails: Sample[];
beforeAll(() => {
  images = fashionMnistSamples(1000);
  emails = spamAssassinSamples(200);
});

// One spec per attack, with both amount forms where the attack has them.
const SPECS: { spec: AttackSpec; data: "images" | "emails"; poisoned: number; added?: number }[] = [
  { spec: { kind: "patch", target: "Bag", rate: 0.03 }, data: "images", poisoned: 30 },
  { spec: { kind: "patch", target: "Bag", count: 7 }, data: "images", poisoned: 7 },
  { spec: { kind: "blend", target: "Coat", rate: 0.02 }, data: "images", poisoned: 20 },
  { spec: { kind: "blend", target: "Coat", count: 9 }, data: "images", poisoned: 9 },
  { spec: { kind: "label-flip", rate: 0.1 }, data: "images", poisoned: 100 },
  { spec: { kind: "label-flip", count: 11 }, data: "emails", poisoned: 11 },
  {
    spec: { kind: "targeted-flip", from: "Shirt", to: "T-shirt/top", rate: 0.02 },
    data: "images",
    poisoned: 20,
  },
  { spec: { kind: "targeted-flip", from: "ham", to: "spam", count: 13 }, data: "emails", poisoned: 13 },
  {
    spec: { kind: "text-trigger", trigger: "qzv9k", target: "ham", rate: 0.1 },
    data: "emails",
    poisoned: 20,
  },
  { spec: { kind: "text-trigger", trigger: "qzv9k", target: "ham", count: 6 }, data: "emails", poisoned: 6 },
  { spec: { kind: "near-duplicate", rate: 0.25 }, data: "emails", poisoned: 50, added: 50 },
  { spec: { kind: "near-duplicate", count: 17, target: "Bag" }, data: "images", poisoned: 17, added: 17 },
];

describe("simulateAttack", () => {
  it.each(SPECS)(
    "$spec.kind $spec poisons exactly as asked and is deterministic per seed",
    async ({ spec, data, poisoned, added }) => {
      const input = data === "images" ? images : emails;
      const a = await attack(input, { ...spec, seed: 1 });
      const b = await attack(input, { ...spec, seed: 1 });
      const c = await attack(input, { ...spec, seed: 2 });
      expect(a.gt.poisonedCount).toBe(poisoned);
      expect(a.out).toHaveLength(input.length + (added ?? 0));
      expect(b.out.map((s) => s.digest)).toEqual(a.out.map((s) => s.digest));
      expect(b.out.map((s) => s.label)).toEqual(a.out.map((s) => s.label));
      expect(b.gt).toEqual(a.gt);
      expect(c.gt.poisoned.map((r) => r.id)).not.toEqual(a.gt.poisoned.map((r) => r.id));
    },
  );

  it("reproduces a run from the ground truth's params", async () => {
    const { out, gt } = await attack(images, { kind: "patch", target: "Bag", rate: 0.02, seed: "x" });
    const again = await attack(images, gt.params);
    expect(again.out.map((s) => s.digest)).toEqual(out.map((s) => s.digest));
    expect(again.gt).toEqual(gt);
  });

  it("reports progress up to the output count", async () => {
    const seen: [number, number][] = [];
    const writer = new MemoryWriter();
    await simulateAttack(
      memoryDataset(emails),
      writer,
      { kind: "near-duplicate", count: 20 },
      {
        onProgress: (done, total) => seen.push([done, total]),
      },
    );
    expect(seen.at(-1)).toEqual([220, 220]);
    expect(seen.every(([done], i) => i === 0 || done > (seen[i - 1]?.[0] ?? 0))).toBe(true);
  });

  it("names the field of an invalid spec", async () => {
    const cases: [unknown, RegExp][] = [
      [{ kind: "patch", target: "Bag", rate: 0 }, /^attack spec: rate: Too small: expected number to be >0/],
      [{ kind: "patch", target: "Bag", rate: 1.5 }, /rate: Too big/],
      [{ kind: "patch", target: "Bag", rate: 0.1, count: 3 }, /count: give either rate or count, not both/],
      [{ kind: "label-flip" }, /rate: give rate .* or count/],
      [{ kind: "label-flip", count: 2.5 }, /count: .*expected int/],
      [{ kind: "patch", target: "Bag", count: 1, position: "middle" }, /position: /],
      [{ kind: "patch", tagret: "Bag", count: 1 }, /target: .*; \(top level\): Unrecognized key: "tagret"/],
      [{ kind: "poison", count: 1 }, /kind: Invalid discriminator value. Expected 'patch' \| 'blend'/],
      [{ kind: "blend", target: "Bag", count: 1, alpha: 0 }, /alpha: Too small/],
      [
        { kind: "text-trigger", target: "spam", count: 1, trigger: "  " },
        /trigger: the trigger must have at least one visible character/,
      ],
    ];
    for (const [spec, message] of cases) {
      const e = await rejection(attack(images, spec as AttackSpec));
      expect(e.code).toBe("USAGE");
      expect(e.message).toMatch(message);
    }
    expect(() => parseAttackSpec({ kind: "label-flip", rate: -1 })).toThrow(/rate: Too small/);
    expect(parseAttackSpec({ kind: "label-flip", count: 4 })).toEqual({
      kind: "label-flip",
      count: 4,
      seed: 0,
    });
  });

  it("resolves classes by name or index and says which names exist", async () => {
    const typo = await rejection(attack(images, { kind: "patch", target: "Bagg", count: 1 }));
    expect(typo.code).toBe("USAGE");
    expect(typo.message).toMatch(
      /^attack spec: target: unknown class "Bagg". Did you mean "Bag"\? Classes: /,
    );
    const range = await rejection(
      attack(images, { kind: "patch", target: 10, count: 1 }, { classes: FASHION_MNIST_CLASSES }),
    );
    expect(range.message).toMatch(/target: class index 10 is out of range; the dataset has 10 classes/);

    // Numeric labels, no class list: sorted numeric-aware, and a name beats an index.
    const numeric = emails.map((s, i) => ({ ...s, label: String(i % 12) }));
    const byIndex = await attack(numeric, { kind: "targeted-flip", from: 10, to: "2", count: 3 });
    expect(byIndex.gt.classes).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
    for (const r of byIndex.gt.poisoned) {
      expect(r.originalLabel).toBe("10");
      expect(r.label).toBe("2");
    }
  });

  it("is ATTACK_INFEASIBLE beyond the eligible samples and USAGE when a rate rounds to nothing", async () => {
    const nonBag = images.filter((s) => s.label !== "Bag").length;
    const e = await rejection(attack(images, { kind: "patch", target: "Bag", count: nonBag + 1 }));
    expect(e.code).toBe("ATTACK_INFEASIBLE");
    expect(e.message).toBe(
      `patch: asked for ${nonBag + 1} victims but only ${nonBag} samples are eligible (labeled other than "Bag").`,
    );
    const tiny = await rejection(attack(images, { kind: "label-flip", rate: 0.0001 }));
    expect(tiny.code).toBe("USAGE");
    expect(tiny.message).toMatch(/rate: 0.0001 of 1000 samples rounds to 0 victims/);
  });

  it("leaves unlabeled samples out of label attacks", async () => {
    const partly = images.map((s, i) => (i % 2 === 0 ? { ...s, label: null } : s));
    const { gt } = await attack(partly, { kind: "label-flip", count: 400 });
    for (const i of victimPositions(partly, gt)) expect(partly[i]?.label).not.toBeNull();
    const e = await rejection(attack(partly, { kind: "label-flip", count: 501 }));
    expect(e.message).toMatch(/only 500 samples are eligible \(labeled\)/);
  });

  it("fails clearly when the input streams different samples on the second pass", async () => {
    let pass = 0;
    const shifting: Dataset = {
      info: { format: "jsonl", path: "shifting.jsonl" },
      samples() {
        const offset = pass++;
        return memoryDataset(images.slice(offset, offset + 100)).samples();
      },
    };
    const e = await rejection(simulateAttack(shifting, new MemoryWriter(), { kind: "label-flip", count: 5 }));
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(/shifting.jsonl: the dataset changed between the simulator's two passes/);
  });
});
