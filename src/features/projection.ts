// Very sparse random projection (Achlioptas 2003; Li, Hastie & Church 2006): R is D × d with
// entries ±sqrt(s/d) with probability 1/(2s) each and 0 otherwise, so E‖xR‖² = ‖x‖² and inner
// products are preserved up to O(1/√d) (Johnson–Lindenstrauss). R is never stored: row i is
// regenerated from a hash of (seed, i), which makes a 2^18-dimensional hashed text space cheap
// to project and identical on every worker.
import { z } from "zod";
import { murmur3_32_int } from "../math/hash.js";
import type { SparseVector } from "../math/sparse.js";
import { parseOptions } from "./options.js";

export const projectionOptionsSchema = z.object({
  outputDims: z.number().int().min(1).max(65_536).default(256),
  /**
   * Probability 1/s that an entry is non-zero. Default 1/√D (Li et al.'s "very sparse"), but
   * never below 4/d, so that each input coordinate reaches a few outputs on average.
   */
  density: z.number().gt(0).max(1).optional(),
  seed: z.number().int().default(0),
});
export type ProjectionOptions = z.input<typeof projectionOptionsSchema>;

export class RandomProjection {
  readonly outputDims: number;
  readonly density: number;
  private readonly scale: number;
  private readonly logKeep: number;
  private readonly seed: number;

  constructor(
    readonly inputDims: number,
    options: ProjectionOptions = {},
  ) {
    const o = parseOptions(projectionOptionsSchema, options, "projection options");
    this.outputDims = o.outputDims;
    this.density = o.density ?? Math.min(1, Math.max(1 / Math.sqrt(inputDims), 4 / o.outputDims));
    this.scale = Math.sqrt(1 / (this.density * this.outputDims));
    this.logKeep = Math.log1p(-this.density);
    this.seed = o.seed >>> 0;
  }

  /** x·R for a sparse or dense x of `inputDims` coordinates. */
  project(x: SparseVector | ArrayLike<number>): Float32Array {
    const out = new Float64Array(this.outputDims);
    if (isSparse(x)) {
      for (let k = 0; k < x.indices.length; k++)
        this.addRow(out, x.indices[k] as number, x.values[k] as number);
    } else {
      for (let i = 0; i < x.length; i++) if (x[i] !== 0) this.addRow(out, i, x[i] as number);
    }
    return Float32Array.from(out);
  }

  // Row i's non-zero columns are drawn by geometric skips (each column independently non-zero
  // with probability `density`) from a counter-based stream hash(hash(seed, i), k): one draw per
  // non-zero, its low bit the sign and its upper 31 bits the uniform behind the skip.
  private addRow(out: Float64Array, i: number, value: number): void {
    const rowSeed = murmur3_32_int(i, this.seed);
    const v = value * this.scale;
    for (let draw = 0, j = -1; ; draw++) {
      const r = murmur3_32_int(draw, rowSeed);
      const u = ((r >>> 1) + 0.5) / 2147483648;
      j += this.density === 1 ? 1 : 1 + Math.floor(Math.log(u) / this.logKeep);
      if (j >= this.outputDims) return;
      out[j] = (out[j] as number) + (r & 1 ? -v : v);
    }
  }
}

function isSparse(x: SparseVector | ArrayLike<number>): x is SparseVector {
  return (x as Partial<SparseVector>).indices instanceof Uint32Array;
}
