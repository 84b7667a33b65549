// A ledger as a governance owner would find it before asking for an evidence pack: two
// sources deliver real Fashion-MNIST images — supplier "acme" 300 signed clean ones, web source
// "crawl" 600 unsigned with 5 % of them poisoned by the project's BadNets simulator — the
// crawl delivery is scanned (findings recorded), the flagged samples quarantined, a model
// registered as trained on both versions (by digest: no training), and an audit finding
// recorded on it in the form `antidote audit` records. Returns what each step wrote, so tests
// can check that claims link exactly those events.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simulateAttack } from "../../src/attack/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { createWriter, openDataset } from "../../src/data/open.js";
import { openLedger, type Ledger, type LedgerEvent } from "../../src/ledger/index.js";
import { addSource, buildStatement, ingestDelivery, signStatement } from "../../src/provenance/index.js";
import { DETECTORS, scanDataset } from "../../src/scan/scan.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { supplierKey } from "../server/helpers.js";

export interface EvidenceLedger {
  dir: string;
  location: string;
  ledger: Ledger;
  acmeVersion: string;
  crawlVersion: string;
  modelDigest: string;
  poisoned: number;
  events: {
    acmeDelivery: LedgerEvent;
    crawlDelivery: LedgerEvent;
    findings: LedgerEvent[];
    quarantine: LedgerEvent;
    model: LedgerEvent;
    audit: LedgerEvent;
  };
}

export async function evidenceLedger(images = 300): Promise<EvidenceLedger> {
  const dir = mkdtempSync(join(tmpdir(), "antidote-evidence-"));
  const location = join(dir, "ledger.db");
  const ledger = await openLedger({ location, actor: "alice" });
  const acme = supplierKey();
  await addSource(ledger, { name: "acme", kind: "supplier", publicKeysPem: [acme.publicKeyPem], trust: 0.8 });
  await addSource(ledger, { name: "crawl", kind: "web", publicKeysPem: [], trust: 0.3 });

  const all = fashionMnistSamples(images * 3);
  const classes = [...FASHION_MNIST_CLASSES];
  // acme: clean, signed.
  const acmeDir = join(dir, "acme");
  mkdirSync(acmeDir);
  const acmeFile = join(acmeDir, "fashion.parquet");
  await writeSamples(acmeFile, all.slice(0, images), classes);
  const acmeSig = join(acmeDir, "fashion.parquet.sigstore.json");
  writeFileSync(acmeSig, JSON.stringify(signStatement(await buildStatement(acmeFile), acme.key)));
  const acmeIngest = await ingestDelivery(ledger, {
    target: acmeFile,
    source: "acme",
    signaturePath: acmeSig,
  });

  // crawl: 5 % BadNets patch relabelled "Bag", unsigned.
  const writer = new MemoryWriter();
  const truth = await simulateAttack(memoryDataset(all.slice(images), { classes }), writer, {
    kind: "patch",
    target: "Bag",
    rate: 0.05,
    seed: 3,
  });
  const crawlDir = join(dir, "crawl");
  mkdirSync(crawlDir);
  const crawlFile = join(crawlDir, "fashion.parquet");
  await writeSamples(crawlFile, writer.samples, classes);
  const crawlIngest = await ingestDelivery(ledger, { target: crawlFile, source: "crawl" });

  const before = (await ledger.status()).events;
  // Two detectors, one statistical and one for backdoors, keep the scan to seconds; six
  // hundred images are enough for the trigger search to see a 5 % patch.
  await scanDataset(await openDataset(crawlFile), {
    ledger,
    registry: DETECTORS.filter((d) => ["confident-learning", "trigger-patches"].includes(d.detector.name)),
  });
  const findings = await eventsAfter(ledger, before);

  const flagged = new Set<string>();
  for await (const f of ledger.findings({ subjectType: "sample", minScore: 0.5 })) flagged.add(f.subjectId);
  const [quarantine] = await ledger.append(
    [
      {
        kind: "decision.recorded",
        payload: {
          action: "quarantine",
          subjectType: "sample",
          subjectIds: [...flagged],
          actor: "alice",
          reason: "scan findings over 0.5",
        },
      },
    ],
    { actor: "alice" },
  );

  const modelDigest = createHash("sha256").update("evidence-test-model").digest("hex");
  const [model] = await ledger.append(
    [
      {
        kind: "model.registered",
        payload: {
          digest: modelDigest,
          name: "fm-classifier",
          trainedOn: [acmeIngest.datasetVersion, crawlIngest.datasetVersion],
          baseModel: null,
          format: "onnx",
        },
      },
    ],
    { actor: "bob" },
  );
  const [audit] = await ledger.append(
    [
      {
        kind: "finding.recorded",
        payload: {
          subjectType: "model",
          subjectId: modelDigest,
          kind: "backdoor-audit-clean",
          score: 0.4,
          evidence: { method: "mad", labels: [] },
          check: "audit",
          checkVersion: "1.0.0",
        },
      },
    ],
    { actor: "carol" },
  );
  const deliveryEvents = await eventsOfKind(ledger, "delivery.ingested");
  return {
    dir,
    location,
    ledger,
    acmeVersion: acmeIngest.datasetVersion,
    crawlVersion: crawlIngest.datasetVersion,
    modelDigest,
    poisoned: truth.poisoned.length,
    events: {
      acmeDelivery: deliveryEvents[0] as LedgerEvent,
      crawlDelivery: deliveryEvents[1] as LedgerEvent,
      findings,
      quarantine: quarantine as LedgerEvent,
      model: model as LedgerEvent,
      audit: audit as LedgerEvent,
    },
  };
}

async function writeSamples(path: string, samples: Parameters<typeof memoryDataset>[0], classes: string[]) {
  const out = await createWriter(path, { format: "parquet", classes });
  for (const s of samples) await out.write(s);
  await out.close();
}

async function eventsAfter(ledger: Ledger, seq: number): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  for await (const e of ledger.events(seq + 1)) out.push(e);
  return out;
}

async function eventsOfKind(ledger: Ledger, kind: string): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  for await (const e of ledger.events()) if (e.kind === kind) out.push(e);
  return out;
}
