// The k nearest neighbours of every row of a feature matrix among a set of reference rows, by
// cosine similarity, with ONNX Runtime doing the arithmetic: a MatMul of each batch of
// L2-normalised rows against the normalised references, then a TopK over the products. At the
// scan's largest size (60k rows against 20k references of 64 dimensions: 7.7·10¹⁰ multiply-adds)
// a scalar typed-array loop took 5.3 s for 2,000 rows' products alone, about 160 s for 60k; this
// takes 1.2–1.6 s for all 60k, top-k included (bench/detect.ts --speed, this 2-core machine).
import * as ort from "onnxruntime-node";
import { AntidoteError } from "../errors.js";
import { encodeOnnxModel, onnx } from "./model-file.js";

export interface NeighbourQuery {
  /** Row-major rows × dims. */
  data: Float32Array;
  rows: number;
  dims: number;
}

/** Rows per MatMul: bounds the similarity block (batch × references floats) at about 40 MB. */
const BLOCK_VALUES = 10_000_000;

/**
 * For every row, the indices (into the rows) of its `k` most cosine-similar rows among
 * `reference`, most similar first, never the row itself: row-major rows × k. A row that is all
 * zeros is equally far from everything; its neighbours are then arbitrary but valid.
 */
export async function cosineNeighbours(
  features: NeighbourQuery,
  reference: Int32Array,
  k: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Int32Array> {
  const { data, rows, dims } = features;
  if (!Number.isInteger(k) || k < 1 || k >= reference.length)
    throw new AntidoteError(
      "INTERNAL",
      `cosineNeighbours: k = ${k} needs 1 ≤ k < ${reference.length} (the reference rows)`,
    );
  const unit = normalisedRows(data, rows, dims);
  const M = reference.length;
  // The references transposed (dims × M), the MatMul's right-hand side.
  const referenceT = new Float32Array(dims * M);
  reference.forEach((r, m) => {
    for (let d = 0; d < dims; d++) referenceT[d * M + m] = unit[r * dims + d] as number;
  });
  const session = await ort.InferenceSession.create(neighbourGraph(dims, M, referenceT), {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  try {
    // k + 1: a row that is itself a reference finds itself first, and is dropped.
    const take = k + 1;
    const out = new Int32Array(rows * k);
    const batch = Math.max(1, Math.min(rows, Math.floor(BLOCK_VALUES / M)));
    const kTensor = new ort.Tensor("int64", BigInt64Array.from([BigInt(take)]), [1]);
    for (let start = 0; start < rows; start += batch) {
      const count = Math.min(batch, rows - start);
      const queries = new ort.Tensor("float32", unit.subarray(start * dims, (start + count) * dims), [
        count,
        dims,
      ]);
      const result = await session.run({ queries, k: kTensor });
      const indices = (result.indices as ort.Tensor).data as BigInt64Array;
      for (let q = 0; q < count; q++) {
        const row = start + q;
        let filled = 0;
        for (let t = 0; t < take && filled < k; t++) {
          const neighbour = reference[Number(indices[q * take + t])] as number;
          if (neighbour === row) continue;
          out[row * k + filled++] = neighbour;
        }
      }
      onProgress?.(start + count, rows);
    }
    return out;
  } finally {
    await session.release();
  }
}

function normalisedRows(data: Float32Array, rows: number, dims: number): Float32Array {
  const unit = new Float32Array(rows * dims);
  for (let i = 0; i < rows; i++) {
    let sq = 0;
    for (let d = 0; d < dims; d++) sq += (data[i * dims + d] as number) ** 2;
    const scale = sq > 0 ? 1 / Math.sqrt(sq) : 0;
    for (let d = 0; d < dims; d++) unit[i * dims + d] = (data[i * dims + d] as number) * scale;
  }
  return unit;
}

// queries [B, dims] · referenceT [dims, M] → similarities [B, M] → TopK(k) along M.
function neighbourGraph(dims: number, M: number, referenceT: Float32Array): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const INT64 = onnx.TensorProto.DataType.INT64;
  const model: onnx.IModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: "", version: 13 }],
    producerName: "antidote",
    graph: {
      name: "cosine_neighbours",
      node: [
        { opType: "MatMul", name: "similarity", input: ["queries", "referenceT"], output: ["similarities"] },
        {
          opType: "TopK",
          name: "nearest",
          input: ["similarities", "k"],
          output: ["values", "indices"],
          attribute: [
            { name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: -1 },
            { name: "largest", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
            { name: "sorted", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
          ],
        },
      ],
      initializer: [
        {
          name: "referenceT",
          dataType: FLOAT,
          dims: [dims, M],
          rawData: new Uint8Array(referenceT.buffer, referenceT.byteOffset, referenceT.byteLength),
        },
      ],
      input: [tensorInfo("queries", FLOAT, ["B", dims]), tensorInfo("k", INT64, [1])],
      output: [tensorInfo("values", FLOAT, ["B", "K"]), tensorInfo("indices", INT64, ["B", "K"])],
    },
  };
  return encodeOnnxModel(model);
}

function tensorInfo(name: string, elemType: number, shape: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
