// The wasm backend's missing conv filter gradient (ours) against TF.js's cpu backend, which has
// its own, and the trainer's two hand-written gradients against the ops they replace.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conv2dFilterGradient, CONV2D_BACKPROP_FILTER } from "../../src/nn/conv-filter-grad.js";
import { loadTf, type Tf } from "../../src/nn/tf.js";
import { convBiasRelu, maxPool2, maxPool2Gradient } from "../../src/nn/train.js";
import { Rng } from "../../src/math/rng.js";
import type * as tfTypes from "@tensorflow/tfjs";

let tf: Tf;
beforeAll(async () => {
  tf = await loadTf();
});
afterAll(async () => {
  await tf.setBackend("wasm");
});

type Pad =
  "same" | "valid" | number | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

const CASES: Case[] = [
  { name: "3×3 same, stride 1", x: [3, 9, 11, 3], filter: [3, 3, 3, 5], strides: 1, pad: "same" },
  { name: "3×2 valid, stride 2", x: [2, 10, 9, 2], filter: [3, 2, 2, 4], strides: 2, pad: "valid" },
  { name: "5×5 same, stride 2 (odd size)", x: [2, 9, 7, 1], filter: [5, 5, 1, 3], strides: 2, pad: "same" },
  {
    name: "3×3 numeric pad 1, strides [1, 2]",
    x: [2, 8, 9, 4],
    filter: [3, 3, 4, 6],
    strides: [1, 2],
    pad: 1,
  },
  {
    name: "explicit asymmetric pads",
    x: [2, 8, 9, 2],
    filter: [3, 3, 2, 3],
    strides: [2, 1],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
];

function normals(rng: Rng, n: number, sparsity = 0): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() < sparsity ? 0 : rng.normal()));
}

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

// dL/dW of L = Σ conv2d(x, W) ⊙ dy, on whichever backend is current.
function filterGradient(
  tfx: Tf,
  c: Case,
  x: Float32Array,
  dy: Float32Array,
  dyShape: number[],
): Float32Array {
  return tfx.tidy(() => {
    const xt = tfx.tensor4d(x, c.x);
    const dyt = tfx.tensor(dy, dyShape);
    const g = tfx.grad((f: tfTypes.Tensor) =>
      tfx.sum(tfx.mul(tfx.conv2d(xt, f as tfTypes.Tensor4D, c.strides, c.pad), dyt)),
    );
    return g(tfx.zeros(c.filter)).dataSync() as Float32Array;
  });
}

function expectClose(actual: Float32Array, expected: Float32Array, rel = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expect(scale).toBeGreaterThan(0);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    expect(Math.abs((actual[i] as number) - e)).toBeLessThanOrEqual(
      rel * Math.max(Math.abs(e), 1e-2 * scale),
    );
  }
}

describe("Conv2DBackpropFilter on wasm", () => {
  it("is registered by loadTf, and the wasm backend is the one in use", () => {
    expect(tf.getBackend()).toBe("wasm");
    expect(tf.getKernel(CONV2D_BACKPROP_FILTER, "wasm")).toBeDefined();
  });

  for (const c of CASES) {
    it(`matches the cpu backend's kernel: ${c.name}`, async () => {
      const rng = new Rng(c.name);
      const x = normals(rng, size(c.x));
      await tf.setBackend("wasm");
      const dyShape = tf.tidy(
        () =>
          tf.conv2d(tf.zeros<tfTypes.Rank.R4>(c.x), tf.zeros<tfTypes.Rank.R4>(c.filter), c.strides, c.pad)
            .shape,
      );
      // Half of dy zero, as behind a ReLU, so the zero-skipping paths run too.
      const dy = normals(rng, size(dyShape), 0.5);
      const before = tf.memory().numTensors;
      const wasm = filterGradient(tf, c, x, dy, dyShape);
      expect(tf.memory().numTensors).toBe(before);
      await tf.setBackend("cpu");
      const cpu = filterGradient(tf, c, x, dy, dyShape);
      await tf.setBackend("wasm");
      expectClose(wasm, cpu);
    });
  }

  it("gives zeros when dy is all zero, and a single tap when dy and x are one-hot", () => {
    const g = {
      batch: 1,
      inHeight: 4,
      inWidth: 4,
      inChannels: 2,
      outHeight: 4,
      outWidth: 4,
      outChannels: 3,
      filterHeight: 3,
      filterWidth: 3,
      strideHeight: 1,
      strideWidth: 1,
      padTop: 1,
      padLeft: 1,
    };
    const x = new Float32Array(32);
    const dy = new Float32Array(48);
    expect(conv2dFilterGradient(x, dy, g).every((v) => v === 0)).toBe(true);
    // x[0, 2, 1, c=1] = 2 and dy[0, 1, 1, o=2] = 3: the tap at (wR, wC) = (2 − 1 + 1, 1 − 1 + 1) = (2, 1).
    x[(2 * 4 + 1) * 2 + 1] = 2;
    dy[(1 * 4 + 1) * 3 + 2] = 3;
    const w = conv2dFilterGradient(x, dy, g);
    const at = ((2 * 3 + 1) * 2 + 1) * 3 + 2;
    expect(w[at]).toBe(6);
    expect(w.reduce((s, v) => s + Math.abs(v), 0)).toBe(6);
  });
});

describe("the trainer's hand-written gradients", () => {
  it("convBiasRelu's input, filter and bias gradients equal the cpu backend's for relu(conv2d + b)", async () => {
    const rng = new Rng(7);
    const xv = normals(rng, 2 * 8 * 8 * 4);
    const fv = normals(rng, 3 * 3 * 4 * 5);
    const bv = normals(rng, 5);
    const wv = normals(rng, 2 * 8 * 8 * 5);
    const inputs = (): tfTypes.Tensor[] => [
      tf.tensor4d(xv, [2, 8, 8, 4]),
      tf.tensor4d(fv, [3, 3, 4, 5]),
      tf.tensor1d(bv),
      tf.tensor4d(wv, [2, 8, 8, 5]),
    ];
    const before = tf.memory().numTensors;
    // The op's gradient reads tensors its caller keeps alive through the backward pass.
    const kept: tfTypes.Tensor[] = [];
    const mine = tf.tidy(() => {
      const [x, f, b, w] = inputs() as [tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor];
      const grads = tf.grads((a: tfTypes.Tensor, c: tfTypes.Tensor, d: tfTypes.Tensor) =>
        tf.sum(
          tf.mul(
            convBiasRelu(tf, a, c, d, 1, true, (t) => kept.push(tf.keep(t))),
            w,
          ),
        ),
      )([x, f, b]);
      return grads.map((t) => t.dataSync() as Float32Array);
    });
    for (const t of kept) t.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await tf.setBackend("cpu");
    const theirs = tf.tidy(() => {
      const [x, f, b, w] = inputs() as [tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor];
      const grads = tf.grads((a: tfTypes.Tensor, c: tfTypes.Tensor, d: tfTypes.Tensor) =>
        tf.sum(tf.mul(tf.relu(tf.add(tf.conv2d(a as tfTypes.Tensor4D, c as tfTypes.Tensor4D, 1, 1), d)), w)),
      )([x, f, b]);
      return grads.map((t) => t.dataSync() as Float32Array);
    });
    await tf.setBackend("wasm");
    for (let k = 0; k < 3; k++) expectClose(mine[k] as Float32Array, theirs[k] as Float32Array);
  });

  // Against the cpu backend: the wasm backend's own MaxPoolGrad drops the gradient of a window
  // whose maximum is negative (seen with TF.js 4.22), so it cannot be the reference.
  it("maxPool2's gradient equals the cpu backend's max-pool gradient, odd edges and negative maxima included", async () => {
    const rng = new Rng(8);
    const shape: [number, number, number, number] = [2, 7, 6, 3];
    const values = normals(rng, size(shape));
    const dyValues = normals(rng, 2 * 3 * 3 * 3);
    const dyShape: [number, number, number, number] = [2, 3, 3, 3];
    const kept: tfTypes.Tensor[] = [];
    const mine = tf.tidy(() => {
      const dy = tf.tensor4d(dyValues, dyShape);
      const g = tf.grad((a: tfTypes.Tensor) =>
        tf.sum(
          tf.mul(
            maxPool2(tf, a, (t) => kept.push(tf.keep(t))),
            dy,
          ),
        ),
      );
      return g(tf.tensor4d(values, shape)).dataSync() as Float32Array;
    });
    for (const t of kept) t.dispose();
    await tf.setBackend("cpu");
    const theirs = tf.tidy(() => {
      const dy = tf.tensor4d(dyValues, dyShape);
      const g = tf.grad((a: tfTypes.Tensor) =>
        tf.sum(tf.mul(tf.maxPool(a as tfTypes.Tensor4D, 2, 2, "valid"), dy)),
      );
      return g(tf.tensor4d(values, shape)).dataSync() as Float32Array;
    });
    await tf.setBackend("wasm");
    expectClose(mine, theirs);
    expectClose(maxPool2Gradient(values, dyValues, 2, 7, 6, 3), theirs);
  });
});
