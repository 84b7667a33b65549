import { describe, expect, it } from "vitest";
import { SHIFTED_VIEWS, shiftedImage } from "../../src/onnx/shifted-views.js";
import { fashionMnistSamples, hasFashionMnist } from "../helpers/real-data.js";

describe("shiftedImage", () => {
  // A 3×2 image with two channels: pixel (x, y) holds 10·y + x in channel 0 and its negative in channel 1.
  const W = 3;
  const H = 2;
  const data = new Float32Array(W * H * 2);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      data[(y * W + x) * 2] = 10 * y + x;
      data[(y * W + x) * 2 + 1] = -(10 * y + x);
    }
  const image = { height: H, width: W, channels: 2, data };
  const channel = (img: { data: Float32Array }, c: number) =>
    Array.from({ length: W * H }, (_, p) => img.data[p * 2 + c]);

  it("moves every channel by (dx, dy) and repeats the edge into the uncovered border", () => {
    // One pixel right: column 0 repeats the old column 0.
    expect(channel(shiftedImage(image, 1, 0), 0)).toEqual([0, 0, 1, 10, 10, 11]);
    expect(channel(shiftedImage(image, 1, 0), 1)).toEqual([-0, -0, -1, -10, -10, -11]);
    // One pixel up: the bottom row repeats.
    expect(channel(shiftedImage(image, 0, -1), 0)).toEqual([10, 11, 12, 10, 11, 12]);
    // Left and down together.
    expect(channel(shiftedImage(image, -1, 1), 0)).toEqual([1, 2, 2, 1, 2, 2]);
  });

  it("returns the image itself for no shift and never writes to its input", () => {
    const before = Float32Array.from(data);
    expect(shiftedImage(image, 0, 0)).toBe(image);
    for (const [dx, dy] of SHIFTED_VIEWS) shiftedImage(image, dx, dy);
    expect(data).toEqual(before);
    expect(SHIFTED_VIEWS[0]).toEqual([0, 0]);
    expect(SHIFTED_VIEWS).toHaveLength(5);
  });

  it.runIf(hasFashionMnist())(
    "moves a Fashion-MNIST image's ink by one pixel, the edge row or column repeated",
    () => {
      const [sample] = fashionMnistSamples(1);
      const img = sample!.image!;
      const ink = (d: Float32Array) => d.reduce((a, b) => a + b, 0);
      const column = (x: number) =>
        Array.from({ length: 28 }, (_, y) => img.data[y * 28 + x]!).reduce((a, b) => a + b, 0);
      const row = (y: number) =>
        Array.from({ length: 28 }, (_, x) => img.data[y * 28 + x]!).reduce((a, b) => a + b, 0);
      // Each shift loses the row or column it pushes out and repeats the one at the other edge.
      const expected: Record<string, number> = {
        "1,0": ink(img.data) - column(27) + column(0),
        "-1,0": ink(img.data) - column(0) + column(27),
        "0,1": ink(img.data) - row(27) + row(0),
        "0,-1": ink(img.data) - row(0) + row(27),
      };
      for (const [dx, dy] of SHIFTED_VIEWS.slice(1)) {
        const moved = shiftedImage(img, dx, dy);
        expect(ink(moved.data)).toBeCloseTo(expected[`${dx},${dy}`]!, 3);
        // An interior pixel comes from its neighbour.
        expect(moved.data[14 * 28 + 14]).toBe(img.data[(14 - dy) * 28 + 14 - dx]);
      }
    },
  );
});
