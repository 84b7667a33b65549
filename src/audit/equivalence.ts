// The check that makes a TF.js translation trustworthy: run onnxruntime (the reference
// implementation) and the translation on the same batch and compare. An audit that takes
// gradients through a copy that computes something else would report on a different model, so a
// difference beyond the tolerance stops the audit rather than warning.
import * as ort from "onnxruntime-node";
import { AntidoteError } from "../errors.js";
import { loadTf } from "../nn/tf.js";
import { valueInfoShape, type OnnxModelFile } from "../onnx/model-file.js";
import type { TranslatedModel } from "./onnx-to-tf.js";

/**
 * Compare `translated` with onnxruntime on `n` samples `x` ([n, ...inputShape] row-major). When
 * the model outputs probabilities, probabilities are compared (softmax of the translation's
 * log-probabilities), else raw scores. Throws MODEL_UNSUPPORTED naming the output and the largest
 * absolute difference when it exceeds `tolerance`.
 */
export async function checkTranslation(
  model: OnnxModelFile,
  translated: TranslatedModel,
  x: Float32Array,
  n: number,
  tolerance = 1e-4,
): Promise<{ maxAbsDiff: number }> {
  const per = translated.inputShape.reduce((a, b) => a * b, 1);
  if (!Number.isInteger(n) || n <= 0 || x.length !== n * per) {
    throw new AntidoteError(
      "USAGE",
      `checkTranslation: ${x.length} values are not ${n} samples of shape [${translated.inputShape.join(", ")}].`,
    );
  }
  const reference = await runOnnxRuntime(model, translated, x, n);
  const ours = await translatedOutput(translated, x, n);
  if (reference.length !== ours.length) {
    throw new AntidoteError(
      "MODEL_UNSUPPORTED",
      `${model.path}: output "${translated.outputName}" has ${reference.length / n} values per sample in ` +
        `onnxruntime but ${ours.length / n} in the TF.js translation.`,
    );
  }
  let maxAbsDiff = 0;
  for (let i = 0; i < ours.length; i++) {
    const a = reference[i]!;
    const b = ours[i]!;
    // Non-finite values must agree exactly; any other disagreement is infinitely large.
    const d = a === b ? 0 : Number.isFinite(a) && Number.isFinite(b) ? Math.abs(a - b) : Infinity;
    if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
  }
  if (maxAbsDiff > tolerance) {
    const what = translated.outputIsProbabilities ? "probabilities" : "values";
    throw new AntidoteError(
      "MODEL_UNSUPPORTED",
      `${model.path}: the TF.js translation of output "${translated.outputName}" differs from onnxruntime by ` +
        `up to ${maxAbsDiff.toExponential(2)} in its ${what} on ${n} samples (tolerance ` +
        `${tolerance.toExponential(0)}); Antidote cannot trust gradients taken through it.`,
    );
  }
  return { maxAbsDiff };
}

async function runOnnxRuntime(
  model: OnnxModelFile,
  translated: TranslatedModel,
  x: Float32Array,
  n: number,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model.bytes);
  try {
    const inputName = session.inputNames[0]!;
    // A graph that fixes its batch size is run in chunks of that size.
    const graphInput = (model.proto.graph?.input ?? []).find((v) => v.name === inputName);
    const declared = graphInput === undefined ? undefined : valueInfoShape(graphInput)?.[0];
    const chunk = typeof declared === "number" && n % declared === 0 ? declared : n;
    const per = x.length / n;
    const parts: Float32Array[] = [];
    for (let start = 0; start < n; start += chunk) {
      const feed = new ort.Tensor("float32", x.subarray(start * per, (start + chunk) * per), [
        chunk,
        ...translated.inputShape,
      ]);
      const result = await session.run({ [inputName]: feed }, [translated.outputName]);
      const out = result[translated.outputName];
      if (out === undefined || out.type !== "float32") {
        throw new AntidoteError(
          "MODEL_FORMAT",
          `${model.path}: onnxruntime returned no float output "${translated.outputName}".`,
        );
      }
      parts.push(out.data as Float32Array);
    }
    const all = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return all;
  } finally {
    await session.release();
  }
}

async function translatedOutput(
  translated: TranslatedModel,
  x: Float32Array,
  n: number,
): Promise<Float32Array> {
  const tf = await loadTf();
  const out = tf.tidy(() => {
    const logits = translated.logits(tf.tensor(x, [n, ...translated.inputShape]));
    return translated.outputIsProbabilities ? tf.softmax(logits) : logits;
  });
  try {
    return (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
}
