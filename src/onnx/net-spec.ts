// The small feed-forward classifiers Antidote trains itself (test material for audits and
// scans, the image proxy) described as plain data: a layer list with its weights. The trainer
// (src/nn) produces one, the exporter (src/onnx/export.ts) writes it as an ONNX graph, so the
// models we test on are real ONNX files that went through the same path a user's model does.
//
// Layout conventions are ONNX's, so export is a copy, not a transposition:
// - activations are NCHW (batch, channels, height, width); a flat input has shape [features];
// - dense weights are [outputs][inputs] row-major (Gemm with transB = 1);
// - conv weights are OIHW (outChannels, inChannels, kernelH, kernelW) row-major;
// - Flatten flattens C·H·W in that (NCHW) order.

export interface DenseLayer {
  readonly kind: "dense";
  readonly inputs: number;
  readonly outputs: number;
  /** [outputs][inputs] row-major. */
  readonly weight: Float32Array;
  /** [outputs]. */
  readonly bias: Float32Array;
}

export interface Conv2dLayer {
  readonly kind: "conv2d";
  readonly inChannels: number;
  readonly outChannels: number;
  /** Square kernel side. */
  readonly kernel: number;
  readonly stride: number;
  /** Zero padding on every side. */
  readonly padding: number;
  /** OIHW row-major. */
  readonly weight: Float32Array;
  /** [outChannels]. */
  readonly bias: Float32Array;
}

export interface ReluLayer {
  readonly kind: "relu";
}

export interface MaxPoolLayer {
  readonly kind: "maxpool";
  /** Square window side; stride equals the window (non-overlapping), no padding. */
  readonly size: number;
}

export interface FlattenLayer {
  readonly kind: "flatten";
}

export type LayerSpec = DenseLayer | Conv2dLayer | ReluLayer | MaxPoolLayer | FlattenLayer;

export interface NetSpec {
  /** Input shape without the batch dimension: [C, H, W] for images, [D] for flat vectors. */
  readonly inputShape: readonly number[];
  /** Class names, in output order; the last layer is dense with this many outputs (logits). */
  readonly classes: readonly string[];
  readonly layers: readonly LayerSpec[];
}
