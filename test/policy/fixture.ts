// A ledger built from real deliveries for the policy tests: three suppliers each deliver 200
// Fashion-MNIST images, signed with their own keys; one of them (initech) is compromised and
// its delivery carries a BadNets patch (the project's attack simulator) on 24 images. The
// findings a scan would record are recorded on the samples the attack touched, plus two false
// alarms on the honest suppliers — so which supplier ranks lowest is the ledger's conclusion,
// not a constant of the test.
import { createPrivateKey } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { simulateAttack } from "../../src/attack/simulate.js";
import { memoryDataset } from "../../src/data/memory.js";
import { createWriter } from "../../src/data/open.js";
import type { Finding, Ledger } from "../../src/ledger/types.js";
import { signStatement } from "../../src/provenance/bundle.js";
import { ingestDelivery, type IngestResult } from "../../src/provenance/ingest.js";
import { generateSigningKey, type SigningKey } from "../../src/provenance/keys.js";
import { buildStatement } from "../../src/provenance/manifest.js";
import { addSource } from "../../src/provenance/sources.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";

export const SUPPLIERS = ["acme", "globex", "initech"] as const;
export const POISONED = "initech";
export const PER_DELIVERY = 200;

export interface Delivery {
  file: string;
  bundle: string;
}

export interface World {
  keys: Map<string, { key: SigningKey; publicKeyPem: string }>;
  /** Each supplier's delivery, written and signed once per test file. */
  deliveries: Map<string, Delivery>;
  /** Digests the attack wrote (initech's poisoned images). */
  poisoned: string[];
  /** Digests of every sample per supplier. */
  digests: Map<string, string[]>;
}

export function signingKey(): { key: SigningKey; publicKeyPem: string } {
  const made = generateSigningKey();
  return {
    key: {
      keyId: made.keyId,
      privateKey: createPrivateKey(made.privateKeyPem),
      publicKeyPem: made.publicKeyPem,
    },
    publicKeyPem: made.publicKeyPem,
  };
}

/** Write and sign the three deliveries into `dir`. */
export async function buildWorld(dir: string): Promise<World> {
  const all = fashionMnistSamples(PER_DELIVERY * SUPPLIERS.length);
  const world: World = { keys: new Map(), deliveries: new Map(), poisoned: [], digests: new Map() };
  for (const [i, name] of SUPPLIERS.entries()) {
    const samples = all
      .slice(i * PER_DELIVERY, (i + 1) * PER_DELIVERY)
      .map((s) => ({ ...s, id: `${name}-${s.id}` }));
    const file = join(dir, `${name}.parquet`);
    const writer = await createWriter(file, { classes: FASHION_MNIST_CLASSES });
    if (name === POISONED) {
      const truth = await simulateAttack(memoryDataset(samples, { classes: FASHION_MNIST_CLASSES }), writer, {
        kind: "patch",
        target: "Bag",
        count: 24,
        seed: 7,
      });
      world.poisoned = truth.poisoned.map((p) => p.digest);
    } else {
      for (const s of samples) await writer.write(s);
      await writer.close();
    }
    const keys = signingKey();
    world.keys.set(name, keys);
    const bundle = join(dir, `${name}.sigstore.json`);
    writeFileSync(bundle, JSON.stringify(signStatement(await buildStatement(file), keys.key)));
    world.deliveries.set(name, { file, bundle });
  }
  return world;
}

/** Register the suppliers and ingest their deliveries; the digests per supplier are filled in. */
export async function ingestAll(ledger: Ledger, world: World): Promise<Map<string, IngestResult>> {
  const out = new Map<string, IngestResult>();
  for (const name of SUPPLIERS) {
    const keys = world.keys.get(name);
    const d = world.deliveries.get(name);
    if (keys === undefined || d === undefined) throw new Error(`no delivery for ${name}`);
    await addSource(ledger, { name, kind: "supplier", trust: 0.8, publicKeysPem: [keys.publicKeyPem] });
    const r = await ingestDelivery(ledger, { target: d.file, source: name, signaturePath: d.bundle });
    out.set(name, r);
    const digests: string[] = [];
    for await (const m of ledger.datasetMembers(r.datasetVersion)) digests.push(m.digest);
    world.digests.set(name, digests);
  }
  return out;
}

/** What a scan would record: the poisoned images flagged, and one false alarm per honest supplier. */
export async function recordScanFindings(ledger: Ledger, world: World): Promise<void> {
  const finding = (digest: string, score: number): Finding => ({
    subjectType: "sample",
    subjectId: digest,
    kind: "poisoning-risk",
    score,
    evidence: { detectors: ["spectral-signature"] },
    check: "antidote-scan",
    checkVersion: "test",
  });
  const events = world.poisoned.map((d) => finding(d, 0.92));
  for (const name of SUPPLIERS)
    if (name !== POISONED) events.push(finding(world.digests.get(name)?.[3] ?? "", 0.55));
  await ledger.append(events.map((payload) => ({ kind: "finding.recorded" as const, payload })));
}
