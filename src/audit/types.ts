// The contract between the ONNX → TF.js translation (src/audit/onnx-to-tf.ts) and the audit
// algorithms (Neural Cleanse, STRIP): a classifier whose output can be differentiated with
// respect to its input. The audits never see ONNX, so they work the same on any model the
// translation accepts.
import type * as tf from "@tensorflow/tfjs";

export interface DifferentiableClassifier {
  /** Input shape without the batch dimension, as the model takes it: [C, H, W] (NCHW) or [D]. */
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  /**
   * Unnormalised class scores for a batch shaped [N, ...inputShape] (NCHW for images).
   * When the model itself ends in Softmax, this returns log-probabilities instead, so
   * softmax(logits(x)) is always the model's class distribution. Must be called inside
   * tf.tidy / tf.grad scopes by the caller; allocates no state of its own.
   */
  logits(x: tf.Tensor): tf.Tensor2D;
  /** Free the weights (tf.Variables / constant tensors) the copy holds. */
  dispose(): void;
}
