// The evidence pack on both ledger engines (SQLite and PostgreSQL), from a ledger that has
// what fixture.ts's does not: a fine-tuned model whose base model was audited, a robust
// training step, an attack simulation run against a lineage version, and a monitor finding on
// the deployed model — so each of those controls is judged from its own events, and the pack
// verifies on the engine it was built from.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildEvidencePack,
  verifyEvidencePack,
  writeEvidencePack,
  type EvidencePack,
} from "../../src/evidence/index.js";
import type { Ledger, LedgerEvent, LedgerEventInput, SampleRecord } from "../../src/ledger/index.js";
import { hasFashionMnist, fashionMnistSamples } from "../helpers/real-data.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";

const BASE = "b".repeat(64);
const TUNED = "c".repeat(64);

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

const describeData = hasFashionMnist() ? describe.each(BACKENDS) : describe.skip.each(BACKENDS);

describeData("evidence pack on $name", (backend) => {
  let ready: Promise<{ ledger: Ledger; dir: string; seqs: Record<string, LedgerEvent> }>;
  beforeAll(async () => {
    await backend.setup();
    ready = (async () => {
      const fresh = await backend.fresh();
      const ledger = await fresh.open("dana");
      return { ledger, dir: fresh.dir, seqs: await populate(ledger) };
    })();
    ready.catch(() => undefined);
  });
  afterAll(async () => {
    await (await ready.catch(() => undefined))?.ledger.close();
    await backend.teardown();
  });

  it("judges the foundation-model audit, robust training, adversarial validation and monitoring from their events", async () => {
    const { ledger, seqs } = await ready;
    const pack = await buildEvidencePack(ledger, { model: TUNED });
    const c = (id: string) => pack.controls.find((x) => x.id === id)!;
    const linked = (id: string) => c(id).claims.flatMap((cl) => cl.events);
    const link = (e: LedgerEvent) => ({ seq: e.seq, hash: e.hash });

    expect(pack.lineage.baseModels).toEqual([BASE]);
    expect(c("foundation-model-audit").status).toBe("done");
    expect(linked("foundation-model-audit")).toEqual(
      expect.arrayContaining([link(seqs.base!), link(seqs.baseAudit!)]),
    );
    expect(c("robust-training")).toMatchObject({ status: "done", gaps: [] });
    expect(linked("robust-training")).toEqual([link(seqs.robust!)]);
    expect(linked("adversarial-validation")).toEqual([link(seqs.attack!)]);
    expect(c("continuous-monitoring").status).toBe("partial");
    expect(linked("continuous-monitoring")).toEqual([link(seqs.monitor!)]);
    expect(c("continuous-monitoring").gaps).toEqual([expect.stringContaining("No telemetry")]);
    expect(c("backdoor-detection").gaps).toEqual([
      expect.stringContaining("No backdoor detector"),
      expect.stringContaining("No model audit"),
    ]);
    expect(pack.lineage.samples).toBe(120);
  });

  it("writes a pack that verifies against the same ledger", async () => {
    const { ledger, dir } = await ready;
    const pack: EvidencePack = await buildEvidencePack(ledger, { model: TUNED });
    const out = join(dir, "pack");
    await writeEvidencePack(pack, out, ledger.signer);
    await expect(verifyEvidencePack(out, ledger)).resolves.toMatchObject({
      ok: true,
      subject: `model:${TUNED}`,
    });
  });
});

async function populate(ledger: Ledger): Promise<Record<string, LedgerEvent>> {
  const records: SampleRecord[] = fashionMnistSamples(120).map((s) => ({
    id: s.id,
    digest: s.digest,
    label: s.label,
    annotations: [],
  }));
  const digests = [...new Set(records.map((r) => r.digest))].sort();
  const transform = (kind: string) => ({
    kind,
    tool: "test",
    toolVersion: "1",
    parameters: {},
    inputDigests: [],
    outputDigests: [],
  });
  const events: LedgerEventInput[] = [
    {
      kind: "source.added",
      payload: { name: "lab", kind: "contractor", trust: 0.6, requireSignature: false, keys: [] },
    },
    {
      kind: "delivery.ingested",
      payload: {
        deliveryId: "d-lab",
        source: "lab",
        manifestDigest: "1".repeat(64),
        merkleRoot: "2".repeat(64),
        keyId: null,
        files: [{ path: "lab.parquet", sha256: "3".repeat(64), size: 1000 }],
        sampleCount: records.length,
        datasetVersion: "lab@1",
        store: null,
      },
    },
    { kind: "samples.added", payload: { deliveryId: "d-lab", source: "lab", samples: records } },
    {
      kind: "dataset.version-created",
      payload: {
        version: "lab@1",
        name: "lab",
        merkleRoot: "4".repeat(64),
        parent: null,
        sampleCount: digests.length,
        transform: transform("ingest"),
      },
    },
    { kind: "dataset.members-added", payload: { version: "lab@1", digests } },
  ];
  await ledger.append(events);
  const [base] = await ledger.append([
    {
      kind: "model.registered",
      payload: { digest: BASE, name: "foundation", trainedOn: [], baseModel: null, format: "onnx" },
    },
  ]);
  const [baseAudit] = await ledger.append(
    [
      {
        kind: "finding.recorded",
        payload: {
          subjectType: "model",
          subjectId: BASE,
          kind: "backdoor-audit-clean",
          score: 0.2,
          evidence: {},
          check: "audit",
          checkVersion: "1.0.0",
        },
      },
    ],
    { actor: "auditor" },
  );
  const [tuned, robust, attack, monitor] = await ledger.append([
    {
      kind: "model.registered",
      payload: { digest: TUNED, name: "tuned", trainedOn: ["lab@1"], baseModel: BASE, format: "onnx" },
    },
    { kind: "transform.recorded", payload: { subject: TUNED, transform: transform("dpa-partition") } },
    { kind: "transform.recorded", payload: { subject: "lab@1", transform: transform("attack:patch") } },
    {
      kind: "finding.recorded",
      payload: {
        subjectType: "model",
        subjectId: TUNED,
        kind: "drift",
        score: 0.1,
        evidence: {},
        check: "monitor/drift",
        checkVersion: "1",
      },
    },
  ]);
  return {
    base: base!,
    baseAudit: baseAudit!,
    tuned: tuned!,
    robust: robust!,
    attack: attack!,
    monitor: monitor!,
  };
}
