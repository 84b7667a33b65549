// `antidote ingest`: accept a delivery only when it is signed by its source and intact.
import type { Command } from "commander";
import { z } from "zod";
import { ingestDelivery } from "../../provenance/ingest.js";
import { addLedgerOption, printJson, withLedger } from "../ledger-options.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar } from "../progress.js";

const ingestFlags = z.object({
  source: z.string().min(1),
  signature: z.string().min(1).optional(),
  samples: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
  json: z.boolean().optional(),
});

export function registerIngest(program: Command): void {
  addLedgerOption(
    addReadOptions(
      program
        .command("ingest")
        .argument("<data>", "the delivered dataset: a file, a directory, or a bundled dataset name")
        .description(
          "Verify a delivery (signature against the source's registered keys, every file and sample digest)\n" +
            "and record it in the ledger as a new dataset version; nothing is written if any check fails",
        )
        .requiredOption("--source <name>", "the registered source that delivered it")
        .option("--signature <bundle.json>", "the supplier's signature (made by `antidote sign`)")
        .option(
          "--samples <file>",
          "the sample manifest the signature names (default: beside it, x.sigstore.json → x.sigstore.samples)",
        )
        .option("--name <dataset>", "dataset name for the new version (default: the file name)")
        .option("--json", "print the result as JSON")
        .addHelpText(
          "after",
          `
Examples:
  antidote ingest delivery.parquet --source acme --signature delivery.sigstore.json
  antidote ingest crawl.jsonl --source crawl-2026          # a web source may deliver unsigned

Ingesting the same delivery twice is a no-op. Exit 6 when the signature or a digest does
not verify (the first mismatching file or sample is named), 7 for an unknown source.`,
        ),
    ),
  ).action(async (data: string, flags: Record<string, unknown>) => {
    const f = parseFlags(ingestFlags, flags);
    const bars = {
      files: progressBar({ label: "hashing files", unit: "bytes", enabled: !f.json }),
      samples: undefined as ReturnType<typeof progressBar> | undefined,
    };
    const result = await withLedger(flags, (ledger) =>
      ingestDelivery(ledger, {
        target: data,
        source: f.source,
        signaturePath: f.signature,
        ...(f.samples !== undefined && { samplesPath: f.samples }),
        name: f.name,
        readOptions: readOptionsFrom(flags),
        onProgress: (phase, done, total) => {
          if (phase === "files") bars.files.update(done);
          else {
            bars.files.stop();
            bars.samples ??= progressBar({
              label: "verifying samples",
              unit: "samples",
              total,
              enabled: !f.json,
            });
            if (done % 500 === 0 || done === total) bars.samples.update(done);
          }
        },
      }).finally(() => {
        bars.files.stop();
        bars.samples?.stop();
      }),
    );
    if (f.json) return printJson(result);
    const signed =
      result.keyId === null ? "unsigned (allowed by policy)" : `signed by key ${result.keyId.slice(0, 16)}…`;
    process.stdout.write(
      result.alreadyIngested
        ? `already ingested as ${result.deliveryId} → dataset version ${result.datasetVersion}; nothing written\n`
        : `ingested ${result.sampleCount.toLocaleString("en-US")} samples in ${result.files} file(s) from "${result.source}", ${signed}\n` +
            `  delivery ${result.deliveryId}, Merkle root ${result.merkleRoot.slice(0, 16)}…\n` +
            `  dataset version ${result.datasetVersion}\n` +
            `Next: \`antidote trace --source ${result.source}\`, or \`antidote export --dataset ${result.datasetVersion} --out clean.parquet\`\n`,
    );
  });
}
