// Update files as the aggregation server reads them: .npy written by NumPy itself (v1, v2,
// v3, Fortran 1-D), safetensors with every float dtype, directories of .npy files; the
// digest a client attests; every malformed header named by file and field; NaN/Inf and
// layout mismatches; and block reads that never read more than the block asked for.
import { createHash } from "node:crypto";
import fs, { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { encodeNpyHeader, parsePythonLiteral } from "../../src/robust/npy.js";
import { encodeSafetensorsHeader, readSafetensorsHeader } from "../../src/robust/safetensors.js";
import {
  encodeValues,
  floatToBfloat16,
  floatToHalf,
  openScannedUpdates,
  openUpdates,
  scanUpdate,
  scanUpdates,
  writeUpdateFile,
  type TensorDtype,
} from "../../src/robust/tensor-file.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-tensor-file-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

// Written by NumPy 2.4 (np.save / np.lib.format.write_array), base64 of the whole file.
const NUMPY = {
  // np.arange(6, dtype='<f4').reshape(2,3)/4, format 1.0
  v1f4: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAACAPgAAAD8AAEA/AACAPwAAoD8=",
  // np.array([[1.5,-2.25],[1e-3,3e5]], '<f8'), format 2.0
  v2f8: "k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjgnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMiksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAD4PwAAAAAAAALA/Knx0k1iUD8AAAAAgE8SQQ==",
  // np.array([0.5,-1,65504,0.000061035], '<f2'), format 3.0
  v3f2: "k05VTVBZAwB0AAAAeydkZXNjcic6ICc8ZjInLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoNCwpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAOAC8/3sABA==",
  // np.asfortranarray([1,2,3], '<f4'): 1-D, so Fortran order is C order
  fortran1d:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIA/AAAAQAAAQEA=",
  // np.asfortranarray(np.arange(6,'<f4').reshape(2,3))
  fortran2d:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAABAQAAAgD8AAIBAAAAAQAAAoEA=",
  // np.array([1,2], '>f4')
  bigEndian:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPmY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo/gAAAQAAAAA==",
};

function put(name: string, bytes: Uint8Array | string): string {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, bytes);
  return path;
}
const fromNumpy = (name: string, key: keyof typeof NUMPY) => put(name, Buffer.from(NUMPY[key], "base64"));

interface T {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  values: number[];
}

/** A safetensors file with the tensors' data in the order given (not necessarily name order). */
function safetensors(tensors: T[], metadata?: Record<string, string>): Buffer {
  const header = encodeSafetensorsHeader(tensors, metadata);
  return Buffer.concat([header, ...tensors.map((t) => encodeValues(t.dtype, t.values))]);
}

/** A hand-written safetensors file from a raw header object and data bytes. */
function rawSafetensors(header: unknown, data: Buffer, lengthOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

function npy(dtype: TensorDtype, shape: number[], values: number[]): Buffer {
  return Buffer.concat([encodeNpyHeader(dtype, shape), encodeValues(dtype, values)]);
}

function allValues(m: { dimension: number; columns(c: number, s: number, e: number): Float32Array }, c = 0) {
  return Array.from(m.columns(c, 0, m.dimension));
}

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

describe(".npy written by NumPy", () => {
  it("reads format 1.0, 2.0 and 3.0 files, f4/f8/f2, shaped and 1-D Fortran-order", async () => {
    const cases: [keyof typeof NUMPY, TensorDtype, number[], number[]][] = [
      ["v1f4", "F32", [2, 3], [0, 0.25, 0.5, 0.75, 1, 1.25]],
      ["v2f8", "F64", [2, 2], [1.5, -2.25, Math.fround(1e-3), 3e5]],
      ["v3f2", "F16", [4], [0.5, -1, 65504, 6.103515625e-5]],
      ["fortran1d", "F32", [3], [1, 2, 3]],
    ];
    for (const [key, dtype, shape, values] of cases) {
      const path = fromNumpy(`${key}.npy`, key);
      const scan = await scanUpdate(path);
      expect(scan.format).toBe("npy");
      expect(scan.layout.tensors).toEqual([{ name: "update", dtype, shape }]);
      expect(scan.digest).toBe(sha256(readFileSync(path)));
      const m = openScannedUpdates([scan], scan.layout);
      expect(allValues(m)).toEqual(values);
      m.close();
    }
  });

  it("parses the Python literal of the header, including old Python 2 longs", () => {
    expect(parsePythonLiteral("{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }  \n")).toEqual({
      descr: "<f4",
      fortran_order: false,
      shape: [3, 4],
    });
  });
});

describe("round trips", () => {
  const tensors: T[] = [
    // Data order differs from name order: flat coordinates follow the names.
    { name: "fc.weight", dtype: "F32", shape: [2, 3], values: [1, -2, 3.5, 0.125, -0.5, 7] },
    { name: "conv.bias", dtype: "F64", shape: [2], values: [0.1, -1e-7] },
    { name: "emb", dtype: "F16", shape: [3], values: [0.5, -65504, 6.103515625e-5] },
    { name: "norm", dtype: "BF16", shape: [1, 2], values: [1.5, -3.140625] },
  ];
  const flat = [0.1, -1e-7, 0.5, -65504, 6.103515625e-5, 1, -2, 3.5, 0.125, -0.5, 7, 1.5, -3.140625].map(
    (v) => Math.fround(v),
  );

  it("multi-tensor safetensors with F32, F64, F16 and BF16 reads in name order as float32", async () => {
    const path = put("multi.safetensors", safetensors(tensors, { note: "x" }));
    const scan = await scanUpdate(path);
    expect(scan.layout.tensors.map((t) => t.name)).toEqual(["conv.bias", "emb", "fc.weight", "norm"]);
    expect(scan.layout.dimension).toBe(13);
    expect(scan.digest).toBe(sha256(readFileSync(path)));
    const m = openScannedUpdates([scan], scan.layout);
    expect(allValues(m)).toEqual(flat);
    m.close();
  });

  it("a directory of .npy files is the same update; its digest is sha256 over `sha256sum` lines", async () => {
    const npyTensors = tensors.filter((t) => t.dtype !== "BF16"); // .npy has no bfloat16
    for (const t of npyTensors) put(join("dir-update", `${t.name}.npy`), npy(t.dtype, t.shape, t.values));
    put(join("dir-update", "README.txt"), "not a tensor");
    const scan = await scanUpdate(join(dir, "dir-update"));
    expect(scan.format).toBe("npy-dir");
    expect(scan.layout.tensors.map((t) => t.name)).toEqual(["conv.bias", "emb", "fc.weight"]);
    const m = openScannedUpdates([scan], scan.layout);
    expect(allValues(m)).toEqual(flat.slice(0, 11));
    m.close();
    const lines = ["conv.bias.npy", "emb.npy", "fc.weight.npy"]
      .map((n) => `${sha256(readFileSync(join(dir, "dir-update", n)))}  ${n}\n`)
      .join("");
    expect(scan.digest).toBe(sha256(lines));
  });

  it("writes the aggregate as safetensors (names, shapes, F32, metadata) and as .npy", async () => {
    const source = await scanUpdate(put("src.safetensors", safetensors(tensors)));
    const values = Float32Array.from(flat);
    const out = await writeUpdateFile(join(dir, "out", "agg.safetensors"), values, {
      layout: source.layout,
      metadata: { rule: "median", round: "7" },
    });
    const bytes = readFileSync(out.path);
    expect(out.digest).toBe(sha256(bytes));
    const header = await readSafetensorsHeader(out.path, bytes.length, (p, l) =>
      Promise.resolve(bytes.subarray(p, p + l)),
    );
    expect(header.metadata).toEqual({ rule: "median", round: "7" });
    expect(header.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(
      source.layout.tensors.map((t) => [t.name, "F32", t.shape]),
    );
    expect(header.dataStart % 8).toBe(0);
    const back = await scanUpdate(out.path);
    expect(allValues(openScannedUpdates([back], back.layout))).toEqual(flat);
    expect(fs.readdirSync(join(dir, "out"))).toEqual(["agg.safetensors"]); // no temp file left

    const shaped = await writeUpdateFile(join(dir, "out", "one.npy"), Float32Array.from([1, 2, 3, 4, 5, 6]), {
      layout: (await scanUpdate(fromNumpy("shape.npy", "v1f4"))).layout,
    });
    const again = await scanUpdate(shaped.path);
    expect(again.layout.tensors[0]?.shape).toEqual([2, 3]);
    expect(allValues(openScannedUpdates([again], again.layout))).toEqual([1, 2, 3, 4, 5, 6]);
    // NumPy's own reader accepts what we write: the header is 64-byte aligned and newline-terminated.
    const written = readFileSync(shaped.path);
    const headerEnd = 10 + written.readUInt16LE(8);
    expect(headerEnd % 64).toBe(0);
    expect(written[headerEnd - 1]).toBe(0x0a);
  });

  it("converts to float16 and bfloat16 with round-to-nearest-even, as NumPy does", () => {
    expect(floatToHalf(1)).toBe(0x3c00);
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds up to infinity
    expect(floatToHalf(2 ** -24)).toBe(0x0001);
    expect(floatToHalf(0.1)).toBe(0x2e66);
    expect(floatToHalf(-0)).toBe(0x8000);
    expect(floatToBfloat16(1)).toBe(0x3f80);
    expect(floatToBfloat16(Math.PI)).toBe(0x4049);
  });
});

describe("malformed files are refused with the file and the field", () => {
  const data8 = encodeValues("F32", [1, 2]);
  const cases: [string, () => Buffer, RegExp][] = [
    ["short.safetensors", () => Buffer.from([1, 2, 3]), /short\.safetensors: truncated: 3 bytes/],
    [
      "beyond.safetensors",
      () => rawSafetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, data8, 10_000n),
      /beyond\.safetensors: header length 10000 is beyond the file size/,
    ],
    [
      "json.safetensors",
      () => rawSafetensors('{"a": {"dtype": "F32",', data8),
      /json\.safetensors: bad JSON header/,
    ],
    [
      "overlap.safetensors",
      () =>
        rawSafetensors(
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
          },
          data8,
        ),
      /overlap\.safetensors: tensor b: data_offsets \[4, 8\] overlap tensor a's/,
    ],
    [
      "oob.safetensors",
      () => rawSafetensors({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, data8),
      /oob\.safetensors: tensor a: data_offsets \[0, 16\] are out of bounds \(the data section holds 8 bytes\)/,
    ],
    [
      "hole.safetensors",
      () => rawSafetensors({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, data8),
      /hole\.safetensors: tensor a: data_offsets \[4, 8\] leave bytes 0\.\.4/,
    ],
    [
      "trailing.safetensors",
      () => rawSafetensors({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, data8),
      /trailing\.safetensors: the tensors cover 4 bytes of the data section, the file has 8: trailing bytes/,
    ],
    [
      "dtype.safetensors",
      () => rawSafetensors({ a: { dtype: "F33", shape: [2], data_offsets: [0, 8] } }, data8),
      /dtype\.safetensors: tensor a: unknown dtype "F33"/,
    ],
    [
      "int.safetensors",
      () => rawSafetensors({ a: { dtype: "I32", shape: [2], data_offsets: [0, 8] } }, data8),
      /int\.safetensors: tensor a: dtype I32 is not a float update dtype/,
    ],
    [
      "shape.safetensors",
      () => rawSafetensors({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, data8),
      /shape\.safetensors: tensor a: shape \[3\] of F32 needs 12 bytes, data_offsets \[0, 8\] span 8/,
    ],
    [
      "field.safetensors",
      () => rawSafetensors({ a: { dtype: "F32", shape: "2", data_offsets: [0, 8] } }, data8),
      /field\.safetensors: tensor a: field shape must be an array/,
    ],
    [
      "magic.npy",
      () => Buffer.from("PK\x03\x04 not numpy at all"),
      /magic\.npy: not a NumPy \.npy file \(bad magic/,
    ],
    [
      "be.npy",
      () => Buffer.from(NUMPY.bigEndian, "base64"),
      /be\.npy: header field 'descr' is '>f4', a big-endian array/,
    ],
    [
      "object.npy",
      () => Buffer.concat([npyHeaderText("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"), data8]),
      /object\.npy: header field 'descr' is '\|O', an object array/,
    ],
    [
      "int.npy",
      () =>
        Buffer.concat([npyHeaderText("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"), data8]),
      /int\.npy: header field 'descr' is '<i4', an unsupported dtype/,
    ],
    [
      "truncated.npy",
      () => npy("F32", [4], [1, 2, 3, 4]).subarray(0, 128 + 10),
      /truncated\.npy: truncated: shape \(4\) of <f4 needs 16 data bytes, the file has 10/,
    ],
    [
      "fortran.npy",
      () => Buffer.from(NUMPY.fortran2d, "base64"),
      /fortran\.npy: header field 'fortran_order' is True for shape \(2, 3\)/,
    ],
    [
      "literal.npy",
      () => Buffer.concat([npyHeaderText("{'descr': '<f4', 'shape': (2,), 'fortran_order': Fals}"), data8]),
      /literal\.npy: bad header: unexpected "F"/,
    ],
    [
      "shapefield.npy",
      () =>
        Buffer.concat([npyHeaderText("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"), data8]),
      /shapefield\.npy: header field 'shape' /,
    ],
    [
      "hlen.npy",
      () => {
        const b = npy("F32", [2], [1, 2]);
        b.writeUInt16LE(5000, 8);
        return b;
      },
      /hlen\.npy: truncated: the header length field says 5000 bytes/,
    ],
    [
      "version.npy",
      () => {
        const b = npy("F32", [2], [1, 2]);
        b[6] = 9;
        return b;
      },
      /version\.npy: \.npy format version 9\.0 is not supported/,
    ],
  ];

  it.each(cases)("%s", async (name, bytes, message) => {
    const path = put(join("bad", name), bytes());
    const { updates } = await scanUpdates([path]);
    expect(updates[0]?.scan).toBeNull();
    expect(updates[0]?.problems).toHaveLength(1);
    expect(updates[0]?.problems[0]?.kind).toBe("malformed");
    expect(updates[0]?.problems[0]?.message).toMatch(message);
    const e = await scanUpdate(path).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AntidoteError);
    expect((e as AntidoteError).code).toBe("INPUT_FORMAT");
  });

  it("a missing path is the caller's mistake (FILE_NOT_FOUND); another extension is a malformed update", async () => {
    await expect(scanUpdates([join(dir, "nope.safetensors")])).rejects.toMatchObject({
      code: "FILE_NOT_FOUND",
    });
    const { updates } = await scanUpdates([put("u.dsse.json", "{}")]);
    expect(updates[0]?.problems[0]?.message).toMatch(/u\.dsse\.json: not an update file/);
    mkdirSync(join(dir, "empty-dir"), { recursive: true });
    const empty = await scanUpdates([join(dir, "empty-dir")]);
    expect(empty.updates[0]?.problems[0]?.message).toMatch(/empty-dir: the directory holds no \.npy files/);
  });
});

function bfloat16ToFloat(bits: number): number {
  return new Float32Array(Uint32Array.of(bits << 16).buffer)[0] ?? NaN;
}

/** A v1 .npy header from a literal dict text, padded like NumPy's. */
function npyHeaderText(dict: string): Buffer {
  const body = dict.padEnd(Math.ceil((10 + dict.length + 1) / 64) * 64 - 11, " ") + "\n";
  const b = Buffer.alloc(10 + body.length);
  b.write("\x93NUMPY", 0, "latin1");
  b[6] = 1;
  b.writeUInt16LE(body.length, 8);
  b.write(body, 10, "latin1");
  return b;
}

describe("values and layouts a round refuses", () => {
  it("finds NaN and infinity in every dtype, F64 values beyond float32 included, naming tensor and index", async () => {
    const cases: [string, Buffer, RegExp][] = [
      [
        "nan.safetensors",
        safetensors([
          { name: "a", dtype: "F32", shape: [3], values: [1, NaN, NaN] },
          { name: "b", dtype: "F32", shape: [1], values: [1] },
        ]),
        /nan\.safetensors: tensor a holds NaN at index 1 \(2 non-finite values in all\)\./,
      ],
      ["inf.npy", npy("F16", [3], [1, 2, Infinity]), /inf\.npy: tensor update holds \+Inf at index 2\./],
      [
        "bf.safetensors",
        safetensors([{ name: "w", dtype: "BF16", shape: [2], values: [-Infinity, 0] }]),
        /tensor w holds -Inf at index 0/,
      ],
      [
        "big.npy",
        npy("F64", [2], [1e300, 0]),
        /tensor update holds \+Inf \(or a value beyond float32 range\) at index 0/,
      ],
    ];
    for (const [name, bytes, message] of cases) {
      const { updates } = await scanUpdates([put(join("nonfinite", name), bytes)]);
      expect(updates[0]?.problems.map((p) => p.kind)).toEqual(["non-finite"]);
      expect(updates[0]?.problems[0]?.message).toMatch(message);
      expect(updates[0]?.scan?.digest).toBe(sha256(bytes)); // still hashed: evidence for the finding
    }
  });

  it("the round's layout is the one most updates share; the others are named by file, tensor and field", async () => {
    const make = (name: string, weightShape: number[], extra?: T, dtype: TensorDtype = "F32") => {
      const n = weightShape.reduce((a, b) => a * b, 1);
      const ts: T[] = [
        { name: "fc.weight", dtype, shape: weightShape, values: Array.from({ length: n }, (_, i) => i) },
        { name: "fc.bias", dtype: "F32", shape: [2], values: [0, 1] },
      ];
      if (extra !== undefined) ts.push(extra);
      return put(join("layout", name), safetensors(ts));
    };
    const paths = [
      make("c1.safetensors", [2, 3]),
      make("c2.safetensors", [2, 3]),
      make("c7.safetensors", [2, 4]),
      make("c8.safetensors", [2, 3], { name: "zz.extra", dtype: "F32", shape: [1], values: [0] }),
      make("c9.safetensors", [2, 3], undefined, "F16"),
      put(
        join("layout", "c10.safetensors"),
        safetensors([{ name: "fc.weight", dtype: "F32", shape: [2, 3], values: [0, 0, 0, 0, 0, 0] }]),
      ),
    ];
    const { updates, layout } = await scanUpdates(paths);
    expect(layout?.tensors.map((t) => `${t.name}:${t.shape.join("x")}`)).toEqual([
      "fc.bias:2",
      "fc.weight:2x3",
    ]);
    const messages = updates.map((u) => u.problems.map((p) => p.message).join(""));
    expect(messages[0]).toBe("");
    expect(messages[1]).toBe("");
    expect(messages[2]).toBe(`${paths[2]}: tensor fc.weight has shape [2,4], the round's is [2,3].`);
    expect(messages[3]).toMatch(
      /c8\.safetensors: tensor zz\.extra is not in the round's layout \(fc\.bias, fc\.weight\)/,
    );
    expect(messages[4]).toBe(`${paths[4]}: tensor fc.weight has dtype F16, the round's is F32.`);
    expect(messages[5]).toMatch(/c10\.safetensors: tensor fc\.bias is missing/);
    await expect(openUpdates(paths)).rejects.toMatchObject({ code: "INPUT_FORMAT" });
  });
});

describe("block reads", () => {
  it("read each block with reads no larger than the block, into one reused buffer per client", async () => {
    const d = 1000;
    const a = Array.from({ length: d }, (_, i) => Math.sin(i));
    const b = Array.from({ length: d }, (_, i) => i / 7);
    // Every client shares the layout; the tensors mix dtypes so both the direct F32 read and
    // the converting reads are exercised, with blocks straddling tensor boundaries.
    const split = (values: number[]): T[] => [
      { name: "t0", dtype: "F32", shape: [300], values: values.slice(0, 300) },
      { name: "t1", dtype: "F64", shape: [10, 50], values: values.slice(300, 800) },
      { name: "t2", dtype: "BF16", shape: [200], values: values.slice(800) },
    ];
    const expected = (values: number[]) =>
      values.map((v, i) => (i < 800 ? Math.fround(v) : bfloat16ToFloat(floatToBfloat16(v))));
    const m = await openUpdates([
      put(join("blocks", "a.safetensors"), safetensors(split(a))),
      put(join("blocks", "b.safetensors"), safetensors(split(b))),
    ]);
    const reads = vi.spyOn(fs, "readSync");
    const block = 64;
    let previous: Float32Array | undefined;
    for (let start = 0; start < d; start += block) {
      const end = Math.min(d, start + block);
      const x = m.columns(0, start, end);
      const y = m.columns(1, start, end);
      expect(Array.from(x)).toEqual(expected(a).slice(start, end));
      expect(Array.from(y)).toEqual(expected(b).slice(start, end));
      if (previous !== undefined) expect(x.buffer).toBe(previous.buffer);
      previous = x;
    }
    const sizes = reads.mock.calls.map((c) => (c as unknown[])[3] as number);
    expect(sizes.length).toBeGreaterThanOrEqual(2 * Math.ceil(d / block));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(block * 8);
    expect(previous?.buffer.byteLength).toBe(block * 4);
    m.close();
  });

  it("closes its files, and refuses a file replaced after it was hashed", async () => {
    const openFds = () => fs.readdirSync("/proc/self/fd").length;
    const path = put(join("swap", "c1.npy"), npy("F32", [4], [1, 2, 3, 4]));
    const scan = await scanUpdate(path);
    const before = openFds();
    const m = openScannedUpdates([scan], scan.layout);
    expect(Array.from(m.columns(0, 1, 3))).toEqual([2, 3]);
    expect(openFds()).toBe(before + 1);
    m.close();
    expect(openFds()).toBe(before);

    // Same size, different bytes, swapped in by rename after the hashing pass.
    put(join("swap", "c1.tmp"), npy("F32", [4], [9, 9, 9, 9]));
    renameSync(join(dir, "swap", "c1.tmp"), path);
    const again = openScannedUpdates([scan], scan.layout);
    expect(() => again.columns(0, 0, 4)).toThrow(/c1\.npy: the file changed after it was hashed/);
    again.close();
  });
});
