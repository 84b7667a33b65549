// Property: whatever the files of a delivery hold, changing any single byte of any one of
// them after signing is caught, and the error names that file.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { verifyDelivery } from "../../src/provenance/delivery.js";
import { buildStatement } from "../../src/provenance/manifest.js";

let base: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "antidote-prop-"));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const NAMES = ["a.bin", "b.parquet", "sub/c.jsonl", "sub/deeper/d.csv", "e", "z/README.md"];

const delivery = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom(...NAMES),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 3000 }),
  }),
  { minLength: 1, maxLength: NAMES.length, selector: (f) => f.name },
);

describe("any single-byte change", () => {
  it("to any file of a delivery is caught as DIGEST_MISMATCH naming that file", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        delivery,
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        async (files, which, at, flip, single) => {
          const root = join(base, `run-${run++}`);
          const chosen = single ? files.slice(0, 1) : files;
          for (const f of chosen) {
            mkdirSync(dirname(join(root, f.name)), { recursive: true });
            writeFileSync(join(root, f.name), f.bytes);
          }
          const target = single ? join(root, chosen[0]!.name) : root;
          const statement = await buildStatement(target);
          await verifyDelivery(target, statement); // intact: passes

          const victim = chosen[which % chosen.length]!;
          const path = join(root, victim.name);
          const bytes = readFileSync(path);
          bytes[at % bytes.length]! ^= flip;
          writeFileSync(path, bytes);

          const e = await verifyDelivery(target, statement).then(
            () => undefined,
            (x: unknown) => x,
          );
          expect(e).toBeInstanceOf(AntidoteError);
          expect((e as AntidoteError).code).toBe("DIGEST_MISMATCH");
          expect(
            (e as AntidoteError).message.startsWith(single ? `${target}: sha256` : `${victim.name}: sha256`),
          ).toBe(true);
          rmSync(root, { recursive: true, force: true });
        },
      ),
      { numRuns: 80 },
    );
  });
});
