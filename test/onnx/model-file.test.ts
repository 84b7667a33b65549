import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isAntidoteError, type AntidoteErrorCode } from "../../src/errors.js";
import { exportOnnx } from "../../src/onnx/export.js";
import {
  decodeOnnxModel,
  initializerToFloat32,
  onnx,
  readOnnxModel,
  MAX_ORT_OPSET,
} from "../../src/onnx/model-file.js";
import { editModel, randomCnn, tempDir, writeModel } from "./fixtures.js";

// Opening a model file: its digest, and one MODEL_FORMAT / FILE_NOT_FOUND message naming the file
// for each way a file can fail to be a model ONNX Runtime can run.

function failure(fn: () => unknown): { code: AntidoteErrorCode; message: string } {
  try {
    fn();
  } catch (e) {
    if (isAntidoteError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

describe("readOnnxModel", () => {
  const dir = tempDir();
  const bytes = exportOnnx(randomCnn(3));

  it("reads a model with its sha256 and opset", () => {
    const path = writeModel(dir, "cnn.onnx", bytes);
    const model = readOnnxModel(path);
    expect(model.path).toBe(path);
    expect(model.opset).toBe(13);
    expect(Buffer.from(model.bytes).equals(readFileSync(path))).toBe(true);
    expect(model.digest).toBe(createHash("sha256").update(readFileSync(path)).digest("hex"));
    const w = model.proto.graph!.initializer!.find((t) => t.name === "layer0.weight")!;
    const values = initializerToFloat32(w, "cnn.onnx layer0.weight");
    expect(values).toEqual((randomCnn(3).layers[0] as { weight: Float32Array }).weight);
  });

  it("a missing file is FILE_NOT_FOUND", () => {
    const path = join(dir, "nope.onnx");
    expect(existsSync(path)).toBe(false);
    expect(failure(() => readOnnxModel(path))).toEqual({
      code: "FILE_NOT_FOUND",
      message: `${path}: no such model file.`,
    });
  });

  it("garbage, text and truncated files are not ONNX models", () => {
    const garbage = writeModel(
      dir,
      "garbage.onnx",
      Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251),
    );
    const g = failure(() => readOnnxModel(garbage));
    expect(g.code).toBe("MODEL_FORMAT");
    expect(g.message).toMatch(new RegExp(`^${escape(garbage)}: not an ONNX model: `));

    const text = writeModel(dir, "model.onnx.json", Buffer.from('{"graph": {"node": []}}\n'));
    expect(failure(() => readOnnxModel(text)).message).toMatch(/model\.onnx\.json: not an ONNX model: /);

    const truncated = writeModel(dir, "truncated.onnx", bytes.subarray(0, Math.floor(bytes.length / 2)));
    const t = failure(() => readOnnxModel(truncated));
    expect(t.code).toBe("MODEL_FORMAT");
    expect(t.message).toMatch(/truncated\.onnx: not an ONNX model: the bytes are not a protobuf ModelProto/);

    const empty = writeModel(dir, "empty.onnx", new Uint8Array(0));
    expect(failure(() => readOnnxModel(empty)).message).toMatch(
      /empty\.onnx: not an ONNX model: the file is empty/,
    );
  });

  it("a ModelProto without a graph, inputs or outputs is refused", () => {
    const noGraph = editModel(bytes, (m) => (m.graph = null));
    expect(failure(() => decodeOnnxModel(noGraph, "a.onnx")).message).toBe(
      "a.onnx: not an ONNX model: no graph.",
    );
    const noInputs = editModel(bytes, (m) => (m.graph!.input = []));
    expect(failure(() => decodeOnnxModel(noInputs, "b.onnx")).message).toBe(
      "b.onnx: not an ONNX model: the graph has no inputs.",
    );
    const noOutputs = editModel(bytes, (m) => (m.graph!.output = []));
    expect(failure(() => decodeOnnxModel(noOutputs, "c.onnx")).message).toBe(
      "c.onnx: not an ONNX model: the graph has no outputs.",
    );
  });

  it("an opset newer than onnxruntime-node runs names both", () => {
    const opset99 = editModel(bytes, (m) => (m.opsetImport = [{ domain: "", version: 99 }]));
    const e = failure(() => decodeOnnxModel(opset99, "new.onnx"));
    expect(e.code).toBe("MODEL_FORMAT");
    expect(e.message).toBe(
      `new.onnx: uses ONNX opset 99; onnxruntime-node 1.30 runs opsets up to ${MAX_ORT_OPSET}. ` +
        `Re-export the model with opset ${MAX_ORT_OPSET} or lower.`,
    );
    // The ai.onnx alias of the default domain counts too; other domains do not.
    const aliased = editModel(bytes, (m) => (m.opsetImport = [{ domain: "ai.onnx", version: 27 }]));
    expect(failure(() => decodeOnnxModel(aliased, "x.onnx")).message).toMatch(/opset 27/);
    const mlDomain = editModel(bytes, (m) => m.opsetImport.push({ domain: "ai.onnx.ml", version: 99 }));
    expect(decodeOnnxModel(mlDomain, "ml.onnx").opset).toBe(13);
  });

  it("external-data initializers are refused, saying so", () => {
    const external = editModel(bytes, (m) => {
      const t = m.graph!.initializer![2]!;
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      t.externalData = [{ key: "location", value: "weights.bin" }];
      t.rawData = new Uint8Array(0);
    });
    const e = failure(() => decodeOnnxModel(external, "ext.onnx"));
    expect(e.code).toBe("MODEL_FORMAT");
    expect(e.message).toMatch(/^ext\.onnx: initializer 'layer3\.weight' keeps its data in an external file/);
  });

  it("initializerToFloat32 reads typed fields and checks the length against the dims", () => {
    const t: onnx.ITensorProto = { name: "w", dims: [2, 3], dataType: onnx.TensorProto.DataType.FLOAT };
    expect(initializerToFloat32({ ...t, floatData: [1, 2, 3, 4, 5, 6] }, "m.onnx 'w'")).toEqual(
      Float32Array.from([1, 2, 3, 4, 5, 6]),
    );
    expect(
      initializerToFloat32(
        { ...t, dataType: onnx.TensorProto.DataType.DOUBLE, doubleData: [0.5, 1, 2, 3, 4, 5] },
        "m.onnx 'w'",
      )[0],
    ).toBe(0.5);
    expect(failure(() => initializerToFloat32({ ...t, floatData: [1, 2, 3] }, "m.onnx 'w'")).message).toBe(
      "m.onnx 'w': holds 3 values, its dims [2, 3] need 6.",
    );
    expect(
      failure(() => initializerToFloat32({ ...t, dataType: onnx.TensorProto.DataType.STRING }, "m.onnx 'w'"))
        .message,
    ).toBe("m.onnx 'w': has element type STRING, which is not numeric.");
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
