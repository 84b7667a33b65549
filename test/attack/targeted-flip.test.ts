import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { attack, expectTruthful, rejection, victimPositions } from "./oracle.js";

let input: Sample[];
beforeAll(() => {
  input = fashionMnistSamples(2000);
});

describe("targeted-flip", () => {
  it("relabels only samples of class A, as class B", async () => {
    const { out, gt } = await attack(input, {
      kind: "targeted-flip",
      from: "Sneaker",
      to: "Sandal",
      count: 50,
      seed: 9,
    });
    expectTruthful(input, out, gt, 50);
    for (const i of victimPositions(input, gt)) {
      expect(input[i]?.label).toBe("Sneaker");
      expect(out[i]?.label).toBe("Sandal");
    }
  });

  it("takes the rate over the whole input and names classes by index into the class list", async () => {
    const { out, gt } = await attack(
      input,
      { kind: "targeted-flip", from: 7, to: "5", rate: 0.05 }, // "5": no class has that name, so an index
      { classes: FASHION_MNIST_CLASSES },
    );
    expectTruthful(input, out, gt, 100);
    for (const r of gt.poisoned) {
      expect(r.originalLabel).toBe("Sneaker");
      expect(r.label).toBe("Sandal");
    }
  });

  it("says how many samples of class A there were when asked for more", async () => {
    const sneakers = input.filter((s) => s.label === "Sneaker").length;
    const e = await rejection(
      attack(input, { kind: "targeted-flip", from: "Sneaker", to: "Bag", count: sneakers + 1 }),
    );
    expect(e.code).toBe("ATTACK_INFEASIBLE");
    expect(e.message).toContain(`only ${sneakers} samples are eligible (labeled "Sneaker")`);

    const same = await rejection(attack(input, { kind: "targeted-flip", from: "Bag", to: "Bag", count: 1 }));
    expect(same.code).toBe("USAGE");
    expect(same.message).toMatch(/to: "Bag" is the same class as from/);
  });
});
