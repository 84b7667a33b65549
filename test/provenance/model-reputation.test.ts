// The foundation-model reputation list: a distrusted base is refused at registration with
// nothing written, trust can rest on a verified OpenSSF model signature, `requireTrustedBase`
// refuses an unlisted base, and distrusting a base lists the models already built on it.
import { generateKeyPairSync } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "../../src/ledger/index.js";
import { registerModelFile, sha256File } from "../../src/provenance/model.js";
import {
  modelReputations,
  setModelReputation,
  trustSignedModel,
} from "../../src/provenance/model-reputation.js";
import { signModel } from "../../src/provenance/model-signing.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { deliveryEvents, realSamples, sourceAdded } from "../ledger/events.js";
import { antidoteFailure } from "../helpers/errors.js";

const dir = mkdtempSync(join(tmpdir(), "antidote-mrep-"));
beforeAll(() => void enterScratchDir());
afterAll(() => {
  leaveScratchDir();
  rmSync(dir, { recursive: true, force: true });
});

/** Enough of an ONNX file for registration (which checks the ir_version tag, not the graph). */
function onnx(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([Buffer.from([0x08, 0x07]), Buffer.from(name.repeat(50))]));
  return path;
}

async function eventCount(ledger: Ledger): Promise<number> {
  let n = 0;
  for await (const _ of ledger.events()) n++;
  return n;
}

describe.each(BACKENDS)("foundation-model reputation on $name", (backend) => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it("refuses building on a distrusted base, trusts on a verified signature, and lists what inherits", async () => {
    const ledger = await (await backend.fresh()).open("alice");
    try {
      await ledger.append([sourceAdded("acme")]);
      await ledger.append(
        deliveryEvents({ deliveryId: "d1", source: "acme", samples: realSamples(200), version: "fm@1" }),
      );
      const base = await registerModelFile(ledger, {
        file: onnx("base.onnx"),
        trainedOn: ["fm@1"],
        name: "base",
      });
      const tuned = await registerModelFile(ledger, {
        file: onnx("tuned.onnx"),
        trainedOn: ["fm@1"],
        base: base.digest.slice(0, 12),
        name: "tuned",
      });

      // Distrusting the base names the model already built on it.
      const d = await setModelReputation(ledger, {
        digest: base.digest.slice(0, 10),
        verdict: "distrusted",
        reason: "backdoor found",
      });
      expect(d.lineage?.descendants.map((m) => m.digest)).toEqual([tuned.digest]);

      // A new fine-tune of it is refused, and nothing is written.
      const before = await eventCount(ledger);
      const e = await antidoteFailure(
        registerModelFile(ledger, {
          file: onnx("tuned2.onnx"),
          trainedOn: ["fm@1"],
          base: base.digest,
          name: "t2",
        }),
      );
      expect(e.code).toBe("FORBIDDEN");
      expect(e.message).toMatch(/base model .* is distrusted \(backdoor found; ledger event #\d+\)/);
      expect(await eventCount(ledger)).toBe(before);

      // Trust resting on the publisher's signature: verified first, then recorded with the publisher.
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
      const pub = join(dir, `pub-${backend.name}.pem`);
      writeFileSync(pub, publicKey.export({ type: "spki", format: "pem" }));
      const vendor = onnx(`vendor-${backend.name}.onnx`);
      const { bundle } = await signModel(vendor, privateKey);
      writeFileSync(`${vendor}.sig`, JSON.stringify(bundle));
      const t = await trustSignedModel(ledger, {
        file: vendor,
        signature: `${vendor}.sig`,
        publicKey: pub,
        reason: "vendor-signed",
      });
      expect(t.reputation.digest).toBe(await sha256File(vendor));
      expect(t.reputation.publisher).toBe(bundle.verificationMaterial.publicKey.hint);

      // A swapped file is not trusted, whatever the signature says.
      const swapped = onnx(`swapped-${backend.name}.onnx`);
      writeFileSync(`${swapped}.sig`, JSON.stringify(bundle));
      appendFileSync(swapped, "x");
      expect(
        (
          await antidoteFailure(
            trustSignedModel(ledger, {
              file: swapped,
              signature: `${swapped}.sig`,
              publicKey: pub,
              reason: "x",
            }),
          )
        ).code,
      ).toBe("DIGEST_MISMATCH");

      // requireTrustedBase: the signed vendor model may be built on; an unlisted base may not.
      await registerModelFile(ledger, { file: vendor, trainedOn: ["fm@1"], name: "vendor" });
      await registerModelFile(ledger, {
        file: onnx(`on-vendor-${backend.name}.onnx`),
        trainedOn: ["fm@1"],
        base: t.reputation.digest,
        name: "on-vendor",
        requireTrustedBase: true,
      });
      const unlisted = await registerModelFile(ledger, {
        file: onnx(`unlisted-${backend.name}.onnx`),
        trainedOn: ["fm@1"],
        name: "u",
      });
      expect(
        (
          await antidoteFailure(
            registerModelFile(ledger, {
              file: onnx(`on-unlisted-${backend.name}.onnx`),
              trainedOn: ["fm@1"],
              base: unlisted.digest,
              name: "x",
              requireTrustedBase: true,
            }),
          )
        ).message,
      ).toMatch(/not on the trusted list/);

      // Later word wins; earlier events stay; the log still verifies with the new event kind.
      await setModelReputation(ledger, {
        digest: base.digest,
        verdict: "trusted",
        reason: "false alarm, re-audited",
      });
      const now = await modelReputations(ledger);
      expect(now.get(base.digest)?.verdict).toBe("trusted");
      expect((await ledger.eventsOfKind("model.reputation-set")).map((x) => x.payload.verdict)).toEqual([
        "distrusted",
        "trusted",
        "trusted",
      ]);
      expect((await ledger.verify()).ok).toBe(true);
    } finally {
      await ledger.close();
    }
  });
});
