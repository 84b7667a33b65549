import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { attack, expectTruthful, rejection, victimPositions } from "./oracle.js";

let input: Sample[];
beforeAll(() => {
  input = fashionMnistSamples(2000);
});

describe("patch (BadNets)", () => {
  it("poisons exactly round(rate × n) images, relabels them and reports them truthfully", async () => {
    const { out, gt } = await attack(input, { kind: "patch", target: "Bag", rate: 0.01, seed: 1 });
    expectTruthful(input, out, gt, 20);
    for (const i of victimPositions(input, gt)) {
      expect(input[i]?.label).not.toBe("Bag");
      expect(out[i]?.label).toBe("Bag");
    }
    expect(gt.params).toMatchObject({ size: 3, position: "bottom-right", margin: 1, value: 1, seed: 1 });
  });

  it("stamps white 3×3 at the bottom-right, 1 px from the edges, and changes no other pixel", async () => {
    const { out, gt } = await attack(input, { kind: "patch", target: "Bag", count: 37, seed: 2 });
    expectTruthful(input, out, gt, 37);
    for (const i of victimPositions(input, gt)) {
      const before = input[i]?.image;
      const after = out[i]?.image;
      if (before === undefined || after === undefined) throw new Error("missing image");
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const inPatch = x >= 24 && x <= 26 && y >= 24 && y <= 26;
          expect(after.data[y * 28 + x]).toBe(inPatch ? 1 : before.data[y * 28 + x]);
        }
      }
      expect(before.data).not.toBe(after.data); // the input was copied, not edited in place
    }
  });

  it("honours other corners, explicit coordinates, a checkerboard and a grey value", async () => {
    const value = 0.8;
    // With the IDX class list, index 8 is "Bag" (not the 8th name in sorted order).
    const { out, gt } = await attack(
      input,
      {
        kind: "patch",
        target: 8,
        count: 10,
        size: 4,
        position: { x: 5, y: 2 },
        pattern: "checkerboard",
        value,
      },
      { classes: FASHION_MNIST_CLASSES },
    );
    expectTruthful(input, out, gt, 10);
    for (const i of victimPositions(input, gt)) {
      const after = out[i]?.image;
      const before = input[i]?.image;
      if (before === undefined || after === undefined) throw new Error("missing image");
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const inPatch = x >= 5 && x < 9 && y >= 2 && y < 6;
          const expected = inPatch
            ? (x - 5 + y - 2) % 2 === 0
              ? value
              : 1 - value
            : before.data[y * 28 + x];
          expect(after.data[y * 28 + x]).toBe(Math.fround(expected ?? NaN));
        }
      }
      expect(out[i]?.label).toBe(FASHION_MNIST_CLASSES[8]);
    }

    const topLeft = await attack(input, {
      kind: "patch",
      target: "Bag",
      count: 5,
      position: "top-left",
      margin: 0,
    });
    for (const i of victimPositions(input, topLeft.gt)) {
      const img = topLeft.out[i]?.image;
      expect([0, 1, 2, 28, 29, 30, 56, 57, 58].map((p) => img?.data[p])).toEqual(Array(9).fill(1));
    }
  });

  it("refuses a patch that does not fit the image, and text-only data", async () => {
    const big = await rejection(
      attack(input, { kind: "patch", target: "Bag", count: 3, size: 29, margin: 0 }),
    );
    expect(big.code).toBe("USAGE");
    expect(big.message).toMatch(/position.*does not fit.*28×28/);

    const texts = input.slice(0, 100).map((s) => ({ ...s, image: undefined, text: "hello world" }));
    const noImage = await rejection(attack(texts, { kind: "patch", target: "Bag", count: 3 }));
    expect(noImage.code).toBe("USAGE");
    expect(noImage.message).toMatch(/patch needs samples with an image/);
  });
});
