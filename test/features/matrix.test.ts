import { describe, expect, it } from "vitest";
import { MatrixBuilder, matrixRow } from "../../src/features/matrix.js";

describe("MatrixBuilder", () => {
  it("grows past its size hint and keeps rows in order", () => {
    const b = new MatrixBuilder(2);
    for (let i = 0; i < 5; i++) b.push(`s${i}`, Float32Array.from([i, i * 10, -i]));
    const m = b.finish();
    expect([m.rows, m.cols, m.data.length]).toEqual([5, 3, 15]);
    expect(m.ids).toEqual(["s0", "s1", "s2", "s3", "s4"]);
    expect(Array.from(matrixRow(m, 3))).toEqual([3, 30, -3]);
  });

  it("refuses a row of another width and builds an empty matrix from no rows", () => {
    const b = new MatrixBuilder();
    b.push("a", new Float32Array(4));
    expect(() => b.push("b", new Float32Array(3))).toThrow(/"b"/);
    expect(new MatrixBuilder().finish()).toEqual({ rows: 0, cols: 0, data: new Float32Array(0), ids: [] });
  });
});
