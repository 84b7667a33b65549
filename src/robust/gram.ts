// The pairwise kernel behind Krum, Multi-Krum, Bulyan and FoolsGold: the n × n Gram matrix
// G[i][j] = x_i · x_j of the client updates, accumulated in Float64 block by block. Squared
// distances and cosines both follow from it (‖x_i − x_j‖² = G_ii + G_jj − 2G_ij), and a dot
// product is one multiply-add per coordinate where a difference-then-square is two, which
// matters at n²·d/2 ≈ 5·10⁹ for 100 clients of a million parameters.
//
// The inner loop is a 3 × 3 register tile in WebAssembly SIMD (f64x2, two coordinates per step,
// assembled below: no toolchain needed), ~3× the JavaScript 4 × 4 tile, which stays as the
// fallback and handles the rows and the odd coordinate a 3 × 3 tile does not cover.
//
// Precision: float32 × float32 products are exact in Float64, and sums of at most 512 products
// are folded into the running total, so G carries ~1e-16 relative error. A squared distance
// from G loses ~log10(‖x‖²/‖x_i − x_j‖²) digits to cancellation: 1e-10 relative for updates a
// thousandth of their norm apart, which does not move any rule's decision.
import type { BlockMemory, Scratch } from "./rules/engine.js";

/** Coordinates per Gram task: 8 rows of a 4 × 4 tile fit in L1, all n rows of a chunk in L2. */
export const GRAM_CHUNK = 512;

/** The WebAssembly tile: (a, b, strideBytes, pairs, out, rowBytes) → out[r][c] += Σ a_r·b_c. */
type WasmTile = (
  a: number,
  b: number,
  strideBytes: number,
  pairs: number,
  out: number,
  rowBytes: number,
) => void;

/**
 * Engine kernel: task t adds the dot products of columns [t·512, …) (512 = GRAM_CHUNK) of the
 * current block into this thread's n × n partial (upper triangle, row-major). With the engine's
 * WebAssembly memory, 3 × 3 tiles run in `scratch.wasm.tile`; otherwise a JavaScript 4 × 4 tile,
 * where 8 loads feed 16 multiply-adds. Rows past the last whole tile go through a 1 × 4 loop.
 */
export function gramKernel(mem: BlockMemory, task: number, scratch: Scratch): void {
  const n = mem.n;
  const a = mem.block;
  const stride = mem.stride;
  const len = mem.ints[0]!;
  const k0 = task * 512;
  const k1 = Math.min(len, k0 + 512);
  const out = mem.partial;
  const base = scratch.thread * n * n;
  const tile = scratch.wasm === null ? undefined : (scratch.wasm.tile as WasmTile | undefined);
  let tiled: number;
  if (tile !== undefined) {
    tiled = n - (n % 3);
    const pairs = (k1 - k0) >> 1;
    const odd = ((k1 - k0) & 1) === 1;
    const blockAt = a.byteOffset;
    const outAt = out.byteOffset;
    for (let i = 0; i < tiled; i += 3)
      for (let j = i; j < tiled; j += 3) {
        tile(
          blockAt + (i * stride + k0) * 4,
          blockAt + (j * stride + k0) * 4,
          stride * 4,
          pairs,
          outAt + (base + i * n + j) * 8,
          n * 8,
        );
        if (odd)
          for (let r = 0; r < 3; r++)
            for (let c = 0; c < 3; c++) {
              const o = base + (i + r) * n + j + c;
              out[o] = out[o]! + a[(i + r) * stride + k1 - 1]! * a[(j + c) * stride + k1 - 1]!;
            }
      }
  } else {
    tiled = n - (n % 4);
    for (let i = 0; i < tiled; i += 4) {
      const i0 = i * stride;
      const i1 = i0 + stride;
      const i2 = i1 + stride;
      const i3 = i2 + stride;
      for (let j = i; j < tiled; j += 4) {
        const j0 = j * stride;
        const j1 = j0 + stride;
        const j2 = j1 + stride;
        const j3 = j2 + stride;
        let s00 = 0,
          s01 = 0,
          s02 = 0,
          s03 = 0,
          s10 = 0,
          s11 = 0,
          s12 = 0,
          s13 = 0,
          s20 = 0,
          s21 = 0,
          s22 = 0,
          s23 = 0,
          s30 = 0,
          s31 = 0,
          s32 = 0,
          s33 = 0;
        for (let k = k0; k < k1; k++) {
          const a0 = a[i0 + k]!;
          const a1 = a[i1 + k]!;
          const a2 = a[i2 + k]!;
          const a3 = a[i3 + k]!;
          const b0 = a[j0 + k]!;
          const b1 = a[j1 + k]!;
          const b2 = a[j2 + k]!;
          const b3 = a[j3 + k]!;
          s00 += a0 * b0;
          s01 += a0 * b1;
          s02 += a0 * b2;
          s03 += a0 * b3;
          s10 += a1 * b0;
          s11 += a1 * b1;
          s12 += a1 * b2;
          s13 += a1 * b3;
          s20 += a2 * b0;
          s21 += a2 * b1;
          s22 += a2 * b2;
          s23 += a2 * b3;
          s30 += a3 * b0;
          s31 += a3 * b1;
          s32 += a3 * b2;
          s33 += a3 * b3;
        }
        // On a diagonal tile (i == j) the entries below the diagonal land in the lower triangle,
        // which `gramFromPartials` never reads.
        const r0 = base + i * n + j;
        const r1 = r0 + n;
        const r2 = r1 + n;
        const r3 = r2 + n;
        out[r0] = out[r0]! + s00;
        out[r0 + 1] = out[r0 + 1]! + s01;
        out[r0 + 2] = out[r0 + 2]! + s02;
        out[r0 + 3] = out[r0 + 3]! + s03;
        out[r1] = out[r1]! + s10;
        out[r1 + 1] = out[r1 + 1]! + s11;
        out[r1 + 2] = out[r1 + 2]! + s12;
        out[r1 + 3] = out[r1 + 3]! + s13;
        out[r2] = out[r2]! + s20;
        out[r2 + 1] = out[r2 + 1]! + s21;
        out[r2 + 2] = out[r2 + 2]! + s22;
        out[r2 + 3] = out[r2 + 3]! + s23;
        out[r3] = out[r3]! + s30;
        out[r3 + 1] = out[r3 + 1]! + s31;
        out[r3 + 2] = out[r3 + 2]! + s32;
        out[r3 + 3] = out[r3 + 3]! + s33;
      }
    }
  }
  // The rows past the last whole tile against every row up to themselves, four at a time.
  for (let r = tiled; r < n; r++) {
    const ro = r * stride;
    let j = 0;
    for (; j + 4 <= r + 1; j += 4) {
      const j0 = j * stride;
      const j1 = j0 + stride;
      const j2 = j1 + stride;
      const j3 = j2 + stride;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      for (let k = k0; k < k1; k++) {
        const x = a[ro + k]!;
        s0 += x * a[j0 + k]!;
        s1 += x * a[j1 + k]!;
        s2 += x * a[j2 + k]!;
        s3 += x * a[j3 + k]!;
      }
      out[base + j * n + r] = out[base + j * n + r]! + s0;
      out[base + (j + 1) * n + r] = out[base + (j + 1) * n + r]! + s1;
      out[base + (j + 2) * n + r] = out[base + (j + 2) * n + r]! + s2;
      out[base + (j + 3) * n + r] = out[base + (j + 3) * n + r]! + s3;
    }
    for (; j <= r; j++) {
      const jo = j * stride;
      let s = 0;
      for (let k = k0; k < k1; k++) s += a[ro + k]! * a[jo + k]!;
      out[base + j * n + r] = out[base + j * n + r]! + s;
    }
  }
}

/** Tasks that cover a block of `len` coordinates. */
export function gramTasks(len: number): number {
  return Math.ceil(len / GRAM_CHUNK);
}

/** Sums the per-thread upper-triangle partials into a full symmetric n × n Gram matrix. */
export function gramFromPartials(partial: Float64Array, n: number, threads: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let t = 0; t < threads; t++) {
    const base = t * n * n;
    for (let i = 0; i < n; i++)
      for (let j = i; j < n; j++) g[i * n + j] = g[i * n + j]! + partial[base + i * n + j]!;
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g[i * n + j] = g[j * n + i]!;
  return g;
}

/** Squared Euclidean distances from a Gram matrix, clamped at 0 against rounding. */
export function squaredDistances(gram: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const v = gram[i * n + i]! + gram[j * n + j]! - 2 * gram[i * n + j]!;
      d[i * n + j] = v > 0 ? v : 0;
    }
  return d;
}

/** Cosine similarities from a Gram matrix; 0 where either vector is zero, 1 on the diagonal of a non-zero vector. */
export function cosines(gram: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const den = Math.sqrt(gram[i * n + i]! * gram[j * n + j]!);
      if (den > 0) c[i * n + j] = Math.max(-1, Math.min(1, gram[i * n + j]! / den));
    }
  return c;
}

// ---- The WebAssembly 3 × 3 tile, assembled by hand (the project has no wasm toolchain) ----
//
// (module
//   (import "env" "memory" (memory 1 16384 shared))
//   (func (export "tile") (param $a i32) (param $b i32) (param $stride i32) (param $pairs i32)
//                         (param $out i32) (param $row i32)
//     ;; a_r = a + r·stride, b_c = b + c·stride (r, c < 3); s_rc = f64x2 zeros
//     (loop  ;; i = 0, 8, … < pairs·8: two float32 coordinates per step
//       x_r = f64x2.promote_low_f32x4 (v128.load64_zero (a_r + i))   ;; likewise y_c from b_c
//       s_rc = f64x2.add s_rc (f64x2.mul x_r y_c))
//     ;; out[r·row + c·8] += lane 0 + lane 1 of s_rc
//   ))
//
// 9 accumulators and 6 operands fit the 16 vector registers, so nothing spills in the loop.

const uleb = (v: number): number[] => {
  const out: number[] = [];
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => vec([...Buffer.from(s, "utf8")].map((b) => [b]));
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const I32 = 0x7f;
const V128 = 0x7b;
const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
// i32.const takes signed LEB128, which equals the unsigned form for 0..63, all this module needs.
const i32Const = (v: number): number[] => [0x41, ...uleb(v)];
const simd = (opcode: number, ...imm: number[]): number[] => [0xfd, ...uleb(opcode), ...imm];
const OP = {
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32LtU: 0x49,
  i32Eqz: 0x45,
  f64Add: 0xa0,
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: 0x0b,
  f64Load: [0x2b, 3, 0],
  f64Store: [0x39, 3, 0],
  load64Zero: simd(0x5d, 3, 0),
  promoteLow: simd(0x5f),
  f64x2Add: simd(0xf0),
  f64x2Mul: simd(0xf2),
  v128Zero: simd(0x0c, ...new Array<number>(16).fill(0)),
  lane: (l: number) => simd(0x21, l),
};

/** Largest memory the tile module accepts (64 KiB pages): 1 GiB of block and partial sums. */
export const WASM_MAX_PAGES = 16384;

let tileModule: Uint8Array | undefined;

/** The WebAssembly module behind `gramKernel`'s fast path: exports `tile`, imports a shared `env.memory`. */
export function gramWasmModule(): Uint8Array {
  if (tileModule !== undefined) return tileModule;
  const T = 3;
  const [A, B, STRIDE, PAIRS, OUT, ROW, I, END] = [0, 1, 2, 3, 4, 5, 6, 7];
  const ptr = (q: number) => 8 + q; // a_0..a_2, b_0..b_2
  const acc = (r: number, c: number) => 8 + 2 * T + r * T + c;
  const x = (r: number) => 8 + 2 * T + T * T + r;
  const y = (c: number) => 8 + 2 * T + T * T + T + c;
  const body: number[] = [...get(PAIRS), ...i32Const(8), OP.i32Mul, ...set(END)];
  for (let q = 0; q < T; q++) {
    body.push(...get(A), ...get(STRIDE), ...i32Const(q), OP.i32Mul, OP.i32Add, ...set(ptr(q)));
    body.push(...get(B), ...get(STRIDE), ...i32Const(q), OP.i32Mul, OP.i32Add, ...set(ptr(T + q)));
  }
  for (let r = 0; r < T; r++) for (let c = 0; c < T; c++) body.push(...OP.v128Zero, ...set(acc(r, c)));
  body.push(...i32Const(0), ...set(I), ...OP.block, ...OP.loop);
  body.push(...get(I), ...get(END), OP.i32LtU, OP.i32Eqz, 0x0d, 1); // br_if 1: leave when i ≥ end
  for (let q = 0; q < T; q++) {
    body.push(...get(ptr(q)), ...get(I), OP.i32Add, ...OP.load64Zero, ...OP.promoteLow, ...set(x(q)));
    body.push(...get(ptr(T + q)), ...get(I), OP.i32Add, ...OP.load64Zero, ...OP.promoteLow, ...set(y(q)));
  }
  for (let r = 0; r < T; r++)
    for (let c = 0; c < T; c++)
      body.push(
        ...get(acc(r, c)),
        ...get(x(r)),
        ...get(y(c)),
        ...OP.f64x2Mul,
        ...OP.f64x2Add,
        ...set(acc(r, c)),
      );
  body.push(...get(I), ...i32Const(8), OP.i32Add, ...set(I), 0x0c, 0, OP.end, OP.end); // br 0; end loop; end block
  for (let r = 0; r < T; r++)
    for (let c = 0; c < T; c++) {
      // address = out + r·row + c·8, pushed twice: once for the store, once for the load.
      const address = [
        ...get(OUT),
        ...get(ROW),
        ...i32Const(r),
        OP.i32Mul,
        OP.i32Add,
        ...i32Const(c * 8),
        OP.i32Add,
      ];
      body.push(...address, ...address, ...OP.f64Load);
      body.push(...get(acc(r, c)), ...OP.lane(0), ...get(acc(r, c)), ...OP.lane(1), OP.f64Add, OP.f64Add);
      body.push(...OP.f64Store);
    }
  body.push(OP.end);
  const locals = vec([
    [...uleb(2 + 2 * T), I32],
    [...uleb(T * T + 2 * T), V128],
  ]);
  const fn = [...locals, ...body];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), ...vec([])]])),
    ...section(
      2,
      vec([[...name("env"), ...name("memory"), 0x02, 0x03, ...uleb(1), ...uleb(WASM_MAX_PAGES)]]),
    ),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name("tile"), 0x00, 0]])),
    ...section(10, vec([[...uleb(fn.length), ...fn]])),
  ];
  tileModule = Uint8Array.from(bytes);
  return tileModule;
}
