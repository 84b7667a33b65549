// The provenance half of the main job: a supplier signs a delivery (the patch-poisoned
// Fashion-MNIST the demo just built), we ingest it into a fresh ledger, a tampered copy is
// refused, `antidote scan` finds the poisoned samples (scored against the simulator's ground
// truth), what it flags is quarantined and a clean, signed version is exported.
import { readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import { basename, join } from "node:path";
import { readGroundTruth } from "../attack/index.js";
import { openDataset } from "../data/open.js";
import { scanDataset } from "../scan/scan.js";
import { verifyStore } from "../provenance/store.js";
import { isAntidoteError } from "../errors.js";
import { openLedger } from "../ledger/index.js";
import { signStatement } from "../provenance/bundle.js";
import { exportVersion } from "../provenance/export.js";
import { ingestDelivery } from "../provenance/ingest.js";
import { generateSigningKey, readPrivateKey } from "../provenance/keys.js";
import { buildStatement } from "../provenance/manifest.js";
import { progressBar } from "./progress.js";

export async function runProvenanceDemo(outDir: string, delivery: string): Promise<void> {
  const o = process.stdout;
  const home = join(outDir, "provenance");
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });

  o.write(
    `\n== Provenance: supplier "acme" signs ${basename(delivery)}; we verify, ingest, trace and clean it\n`,
  );
  const keys = generateSigningKey();
  writeFileSync(join(home, "acme.key"), keys.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(home, "acme.pub"), keys.publicKeyPem);
  const key = await readPrivateKey(join(home, "acme.key"));
  const statement = await buildStatement(delivery);
  const signature = join(home, "delivery.sigstore.json");
  writeFileSync(signature, JSON.stringify(signStatement(statement, key), null, 2) + "\n");
  o.write(
    `  signed: ${statement.predicate.sampleCount ?? 0} samples, key ${keys.keyId.slice(0, 16)}…, ${signature}\n`,
  );

  const ledger = await openLedger({ location: join(home, ".antidote", "ledger.db") });
  try {
    await ledger.append([
      {
        kind: "source.added",
        payload: {
          name: "acme",
          kind: "supplier",
          trust: 0.5,
          requireSignature: true,
          keys: [{ publicKeyPem: keys.publicKeyPem }],
        },
      },
    ]);
    const bar = progressBar({
      label: "  verifying and ingesting",
      unit: "samples",
      total: statement.predicate.sampleCount ?? undefined,
      enabled: true,
    });
    const ingested = await ingestDelivery(ledger, {
      target: delivery,
      source: "acme",
      signaturePath: signature,
      name: "fashion-mnist-acme",
      onProgress: (phase, done) => phase === "samples" && done % 1000 === 0 && bar.update(done),
    });
    bar.stop();
    o.write(`  ingested ${ingested.sampleCount} samples as dataset version ${ingested.datasetVersion}\n`);

    // One byte changed after signing: refused, nothing written.
    const tampered = join(home, "tampered", basename(delivery));
    mkdirSync(join(home, "tampered"), { recursive: true });
    copyFileSync(delivery, tampered);
    const bytes = readFileSync(tampered);
    const middle = bytes.length >> 1;
    bytes[middle] = (bytes[middle] ?? 0) ^ 1;
    writeFileSync(tampered, bytes);
    try {
      await ingestDelivery(ledger, { target: tampered, source: "acme", signaturePath: signature });
      o.write("  UNEXPECTED: the tampered copy was accepted\n");
    } catch (e) {
      if (!isAntidoteError(e)) throw e;
      o.write(`  tampered copy refused (${e.code}): ${e.message}\n`);
    }

    const trace = await ledger.traceSource("acme", { limit: 0 });
    o.write(
      `  trace --source acme: ${trace.sampleCount} samples in ${trace.datasetVersions.length} dataset version(s)\n`,
    );

    // The scan finds the poison; the simulator's ground truth only scores it.
    o.write("  scanning the delivery (antidote scan --image-proxy mlp: the fast path, about a minute)\n");
    const scan = await scanDataset(await openDataset(delivery), {
      seed: 0,
      imageProxy: "mlp",
      ledger,
      // Stage names on a terminal, as `antidote scan` shows them; nothing in a log.
      onStage: (name) => void (process.stderr.isTTY && process.stderr.write(`    ${name}…\n`)),
    });
    const flagged = scan.table.digests.filter((_, i) => scan.ensemble.flagged[i] === 1);
    const truth = await readGroundTruth(`${delivery}.truth.json`);
    const poisoned = new Set(truth.poisoned.map((p) => p.id));
    const caught = scan.table.ids.filter(
      (id, i) => scan.ensemble.flagged[i] === 1 && poisoned.has(id),
    ).length;
    o.write(
      `  scan flagged ${flagged.length} of ${scan.dataset.samples} samples in ${scan.seconds.toFixed(0)} s: ` +
        `precision ${(caught / Math.max(flagged.length, 1)).toFixed(3)}, recall ${(caught / poisoned.size).toFixed(3)} ` +
        `against the simulator's ground truth (${poisoned.size} poisoned)\n`,
    );
    const digests = [...new Set(flagged)];
    if (digests.length > 0)
      await ledger.append([
        {
          kind: "decision.recorded",
          payload: {
            action: "quarantine",
            subjectType: "sample",
            subjectIds: digests,
            actor: "demo",
            reason: `flagged by antidote scan (${scan.results.map((r) => r.detector).join(", ")})`,
          },
        },
      ]);
    const clean = join(home, "fashion-mnist-clean.parquet");
    const exported = await exportVersion(ledger, {
      version: ingested.datasetVersion,
      out: clean,
      excludeQuarantined: true,
    });
    o.write(
      `  quarantined ${digests.length} samples; exported ${exported.written} clean samples to ${clean}\n` +
        `  new version ${exported.version} (parent ${exported.parent}), signed manifest ${exported.signature}\n`,
    );
    const report = await ledger.verify();
    const store = await verifyStore(ledger, { deep: true });
    o.write(
      `  ledger verify --deep: ${report.ok && store.problems.length === 0 ? "OK" : "FAILED"} — ${report.events} events, ` +
        `${report.checkpoints} signed tree heads, sample store checked record by record (${store.checked} file(s))\n`,
    );
    o.write(`  explore: antidote trace --source acme --ledger ${join(home, ".antidote", "ledger.db")}\n`);
  } finally {
    await ledger.close();
  }
}
