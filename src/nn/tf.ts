// One TensorFlow.js, initialised once, on its WebAssembly backend. Measured on this 2-core
// machine (small 28×28 CNN, batch 64, gradient with respect to the input): wasm 67 ms/step,
// the pure-JS cpu backend 565 ms/step. TF.js's Node binding (tfjs-node) would need a native
// libtensorflow download, which a fresh machine without internet cannot do.
import type * as TfModule from "@tensorflow/tfjs";
import { registerConv2dBackpropFilter } from "./conv-filter-grad.js";

let ready: Promise<Tf> | undefined;

/**
 * TF.js with the wasm backend selected (the cpu backend if wasm cannot start), imported on first
 * use: loading it costs about 0.8 s, which every CLI command that trains nothing would otherwise
 * pay at start-up.
 */
export function loadTf(): Promise<Tf> {
  ready ??= (async () => {
    const tf = await import("@tensorflow/tfjs");
    await import("@tensorflow/tfjs-backend-wasm");
    // The wasm backend has no conv filter gradient; ours makes conv layers trainable there.
    registerConv2dBackpropFilter(tf);
    const ok = await tf.setBackend("wasm").catch(() => false);
    if (!ok) await tf.setBackend("cpu");
    await tf.ready();
    return tf;
  })();
  return ready;
}

export type Tf = typeof TfModule;
