// A Parquet file built to stall its reader: the fixture (1,538 bytes, found by the reader
// fuzz at ANTIDOTE_FUZZ_RUNS=3000) sends hyparquet's RLE/bit-packed decoder into a loop with
// a negative run length. The read must fail with INPUT_FORMAT when the row group misses its
// deadline, and the main thread must keep serving meanwhile (the decode runs on a worker).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createParquetWriter } from "../../src/data/formats/parquet.js";
import { parquetDecoderThreads } from "../../src/data/formats/parquet-decoder.js";
import { collect } from "../../src/data/memory.js";
import { openDataset } from "../../src/data/open.js";
import { imageBytesDigest, imageFromBytes, type Sample } from "../../src/data/sample.js";
import { AntidoteError } from "../../src/errors.js";

const HOSTILE = fileURLToPath(new URL("../fixtures/hostile/hyparquet-rle-spin.parquet", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "antidote-stall-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("Parquet decoding under a deadline", () => {
  it("fails a row group that never finishes decoding, without blocking the event loop", async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    const started = Date.now();
    let error: unknown;
    try {
      const dataset = await openDataset(HOSTILE, { decodeDeadlineMs: 1_500 });
      await collect(dataset);
    } catch (e) {
      error = e;
    } finally {
      clearInterval(ticker);
    }
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(AntidoteError);
    expect((error as AntidoteError).code).toBe("INPUT_FORMAT");
    expect((error as AntidoteError).message).toMatch(
      /hyparquet-rle-spin\.parquet: rows .* did not decode within/,
    );
    expect(elapsed).toBeLessThan(15_000);
    // The main thread ran its timers throughout: at least half of the ticks it was due.
    expect(ticks).toBeGreaterThan(elapsed / 50 / 2);
  }, 30_000);

  it("reads a well-formed file exactly as before, and ends its decoder thread", async () => {
    const samples: Sample[] = [0, 1, 2, 3].map((i) => {
      const px = Uint8Array.from({ length: 16 }, (_, k) => (k * 13 + i * 7) % 256);
      return {
        id: `s${i}`,
        digest: imageBytesDigest(px, 4, 4, 1),
        label: i % 2 === 0 ? "cat" : "dog",
        source: "t",
        annotations: [],
        metadata: {},
        image: imageFromBytes(px, 4, 4, 1),
      };
    });
    const path = join(dir, "ok.parquet");
    const writer = await createParquetWriter(path, { rowGroupSize: 2 });
    for (const s of samples) await writer.write(s);
    await writer.close();
    const read = await collect(await openDataset(path));
    expect(read.map((s) => [s.id, s.digest, s.label])).toEqual(samples.map((s) => [s.id, s.digest, s.label]));
    // Two row groups, one decoder thread for the read, ended with it.
    await waitFor(() => parquetDecoderThreads() === 0);
    expect(parquetDecoderThreads()).toBe(0);
  });

  it("ends the decoder when a reader stops early", async () => {
    const path = join(dir, "ok.parquet");
    const it = (await openDataset(path)).samples()[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    expect(parquetDecoderThreads()).toBe(1);
    await it.return?.(undefined);
    await waitFor(() => parquetDecoderThreads() === 0);
    expect(parquetDecoderThreads()).toBe(0);
  });
});

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
}
