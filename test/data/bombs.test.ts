// Hole 5 of the security issue, performed: small files whose headers declare huge things —
// a PNG or JPEG of 30000×30000 pixels, an IDX header of the same, a safetensors header of
// 300,000 tensors or of gigabytes, an .npy header length of 4 GB. Each must be refused from
// its header, before the declared memory is allocated, with a message naming the limit and
// how to raise it; and a raised limit must let a (small) legitimate case through.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import jpeg from "jpeg-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage, declaredSize, encodePng } from "../../src/data/image-codec.js";
import { collect } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import { AntidoteError } from "../../src/errors.js";
import { EXIT } from "../../src/cli/exit-codes.js";
import { readNpyHeader } from "../../src/robust/npy.js";
import { readSafetensorsHeader } from "../../src/robust/safetensors.js";
import { scanUpdate } from "../../src/robust/tensor-file.js";
import { antidote, expectUserError } from "../helpers/cli.js";
import { antidoteFailure, expectAntidoteError } from "../helpers/errors.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-bombs-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A grey PNG whose IHDR (with a valid CRC) declares width×height, followed by a little real data. */
function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grey, no interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const idat = deflateSync(Buffer.alloc(1 << 16)); // rows of zeros, as the real bomb holds
  return Buffer.concat([signature, chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", Buffer.alloc(0))]);
}

/** A baseline JPEG whose SOF0 is patched to declare width×height. */
function jpegClaiming(width: number, height: number): Buffer {
  const small = Buffer.from(
    jpeg.encode({ data: Buffer.alloc(8 * 8 * 4, 200), width: 8, height: 8 }, 90).data,
  );
  const sof = small.indexOf(Buffer.from([0xff, 0xc0]));
  small.writeUInt16BE(height, sof + 5);
  small.writeUInt16BE(width, sof + 7);
  return small;
}

/** Runs `fn` and returns how much the resident set grew, in MiB. */
async function rssGrowth(fn: () => unknown): Promise<number> {
  const before = process.memoryUsage().rss;
  await fn();
  return (process.memoryUsage().rss - before) / 2 ** 20;
}

describe("image decompression bombs", () => {
  it("reads the declared size from PNG IHDR and JPEG SOF without decoding", () => {
    expect(declaredSize("png", pngClaiming(30000, 30000))).toEqual({ width: 30000, height: 30000 });
    expect(declaredSize("jpeg", jpegClaiming(30000, 20000))).toEqual({ width: 30000, height: 20000 });
    expect(declaredSize("png", encodePng(new Uint8Array(6), 2, 3, 1))).toEqual({ width: 3, height: 2 });
  });

  it("refuses a 30000×30000 PNG and JPEG before decoding, in milliseconds and megabytes", async () => {
    for (const bomb of [pngClaiming(30000, 30000), jpegClaiming(30000, 30000)]) {
      const started = Date.now();
      const grew = await rssGrowth(() =>
        expectAntidoteError(
          () => decodeImage(bomb, "bomb.png"),
          /bomb\.png: the (PNG|JPEG) header declares 30000×30000 pixels \(900 Mpx\), over the 50 Mpx limit; refused before decoding/,
          "IMAGE_UNDECODABLE",
        ),
      );
      expect(Date.now() - started).toBeLessThan(1000);
      expect(grew).toBeLessThan(64);
    }
  });

  it("applies a configured cap through every reader that decodes images, and the CLI flag", async () => {
    const png = encodePng(new Uint8Array(100 * 100), 100, 100, 1); // 10,000 pixels
    const file = join(dir, "images.jsonl");
    const uri = `data:image/png;base64,${png.toString("base64")}`;
    writeFileSync(file, JSON.stringify({ id: 1, image: uri, label: "a" }) + "\n");
    expect(await collect(await openDataset(file))).toHaveLength(1);
    const e = await antidoteFailure(openDataset(file, { maxImagePixels: 5000 }).then(collect));
    expect([e.code, e.message]).toEqual([
      "IMAGE_UNDECODABLE",
      expect.stringContaining(`${file}:1 field "image": the PNG header declares 100×100 pixels`),
    ]);

    const bombFile = join(dir, "bomb.jsonl");
    const bombUri = `data:image/png;base64,${pngClaiming(30000, 30000).toString("base64")}`;
    writeFileSync(bombFile, JSON.stringify({ id: 1, image: bombUri, label: "a" }) + "\n");
    const r = await antidote(["inspect", bombFile]);
    expectUserError(r, EXIT.input, /30000×30000 pixels \(900 Mpx\), over the 50 Mpx limit/);
    expectUserError(await antidote(["inspect", file, "--max-image-pixels", "5000"]), EXIT.input, /100×100/);
    expectUserError(
      await antidote(["inspect", file, "--max-image-pixels", "lots"]),
      EXIT.usage,
      /--max-image-pixels: must be a whole number of pixels/,
    );
    expect((await antidote(["inspect", file, "--max-image-pixels", "20000"])).code).toBe(0);
  });

  it("refuses an IDX header declaring 8000×8000 images when the dataset is opened", async () => {
    const header = Buffer.alloc(16);
    header.set([0, 0, 8, 3]);
    header.writeUInt32BE(1, 4);
    header.writeUInt32BE(8000, 8); // 64 Mpx: under the 256 MiB record cap, over the pixel cap
    header.writeUInt32BE(8000, 12);
    const file = join(dir, "bomb-images-idx3-ubyte");
    writeFileSync(file, header);
    const e = await antidoteFailure(openDataset(file));
    expect([e.code, e.message]).toEqual([
      "IDX_HEADER",
      `${file}: image shape 8000x8000 (64000000 pixels) is over the 50000000-pixel limit (raise it with --max-image-pixels for a dataset you trust).`,
    ]);
  });
});

describe("tensor header bombs", () => {
  const readerOf = (bytes: Buffer) => (position: number, length: number) =>
    Promise.resolve(bytes.subarray(position, position + length));

  /** A safetensors file of `n` one-element F32 tensors, as the 300k-tensor header. */
  function safetensorsOf(n: number): Buffer {
    const header: Record<string, unknown> = {};
    for (let i = 0; i < n; i++)
      header[`t${i}`] = { dtype: "F32", shape: [1], data_offsets: [4 * i, 4 * i + 4] };
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([length, json, Buffer.alloc(4 * n)]);
  }

  it("refuses a 300,000-tensor header by its length before parsing it, in bounded memory", async () => {
    const bytes = safetensorsOf(300_000);
    const file = join(dir, "bomb.safetensors");
    writeFileSync(file, bytes);
    const grew = await rssGrowth(async () => {
      const e = await antidoteFailure(scanUpdate(file));
      expect(e.message).toMatch(
        /bomb\.safetensors: header length \d+ exceeds the 16777216-byte limit; refused before parsing/,
      );
    });
    expect(grew).toBeLessThan(128);
  });

  it("caps the tensor count before parsing, configurable; a raised cap reads the file", async () => {
    const bytes = safetensorsOf(2000);
    await expect(
      readSafetensorsHeader("many.safetensors", bytes.length, readerOf(bytes), { maxTensors: 1000 }),
    ).rejects.toThrow(
      /many\.safetensors: the header declares more than 1000 tensors, the limit; refused before parsing/,
    );
    const h = await readSafetensorsHeader("many.safetensors", bytes.length, readerOf(bytes), {
      maxTensors: 2000,
    });
    expect(h.tensors).toHaveLength(2000);
    const big = safetensorsOf(70_000); // ~4 MB of header: under the byte cap, over the default count
    await expect(readSafetensorsHeader("big.safetensors", big.length, readerOf(big))).rejects.toThrow(
      /more than 65536 tensors/,
    );
  });

  it("refuses a header length beyond the file and above the cap, and bad JSON without quoting it", async () => {
    const lying = Buffer.alloc(64);
    lying.writeBigUInt64LE(2n ** 40n);
    await expect(readSafetensorsHeader("lie.safetensors", lying.length, readerOf(lying))).rejects.toThrow(
      /header length 1099511627776 is beyond the file size/,
    );
    const secret = Buffer.from('{"ANTIDOTE-SECRET": 1');
    const file = Buffer.concat([Buffer.alloc(8), secret]);
    file.writeBigUInt64LE(BigInt(secret.length));
    const e = await readSafetensorsHeader("bad.safetensors", file.length, readerOf(file)).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(AntidoteError);
    expect((e as Error).message).toMatch(/bad\.safetensors: bad JSON header \(bad syntax at character 21\)/);
    expect((e as Error).message).not.toContain("ANTIDOTE");
  });

  it("refuses an .npy header length of 4 GB, and a literal error without quoting the header", async () => {
    const npy = Buffer.alloc(16);
    npy.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
    npy.writeUInt32LE(0xffffffff, 8);
    await expect(readNpyHeader("bomb.npy", 2 ** 33, readerOf(npy))).rejects.toThrow(
      /bomb\.npy: header length 4294967295 is implausible \(the limit is 1048576 bytes\)/,
    );
    await expect(readNpyHeader("small.npy", 2 ** 33, readerOf(npy), { maxHeaderBytes: 100 })).rejects.toThrow(
      /the limit is 100 bytes/,
    );
    const text = "{'descr': '<f4', 'ANTIDOTE-SECRET': ?}".padEnd(54, " ") + "\n";
    const v1 = Buffer.concat([
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, text.length, 0]),
      Buffer.from(text),
    ]);
    const e = (await readNpyHeader("q.npy", v1.length, readerOf(v1)).catch((x: unknown) => x)) as Error;
    expect(e.message).toMatch(/q\.npy: bad header: unexpected "\?" at character \d+\.$/);
    expect(e.message).not.toContain("ANTIDOTE");
  });
});
