// Delivery attestations at scale: what a v2 bundle (samples in a manifest file, a Merkle root
// in the statement) costs against the v1 form (every sample inlined in the statement).
//   npx tsx bench/attestation.ts [--samples N]      (default 10,000,000; ~0.9 GB in a temp dir, removed after)
// Rows: (a) the signed bundle's size for N samples (goal ≤ 10 KB); (b) checking the manifest
// (SHA-256 + sample Merkle root + parsing every line) in MB/s against `sha256sum` on the same
// file in the same run, page cache warm (goal ≥ 0.8×); (c) the peak RSS of a process that
// only verifies the manifest; and a real-data row: sign + verify the bundled Fashion-MNIST
// train split (60,000 images) in the v1 and the v2 form.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveBuiltin } from "../src/data/builtin.js";
import { signStatement } from "../src/provenance/bundle.js";
import { verifySignedDelivery } from "../src/provenance/delivery.js";
import { generateSigningKey, readPrivateKey } from "../src/provenance/keys.js";
import {
  DELIVERY_PREDICATE_TYPE_V2,
  STATEMENT_TYPE,
  buildStatement,
  type DeliveryStatement,
} from "../src/provenance/manifest.js";
import { merkleRoot } from "../src/provenance/merkle.js";
import {
  SAMPLE_MANIFEST_FORMAT,
  SAMPLE_MANIFEST_SUBJECT,
  SampleManifestWriter,
  sampleManifestPathFor,
  verifySampleManifest,
  type ExpectedSampleManifest,
} from "../src/provenance/sample-manifest.js";
import { VERSION } from "../src/version.js";

const RUNS = 2;

async function best(run: () => unknown): Promise<number> {
  let min = Infinity;
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    await run();
    min = Math.min(min, (performance.now() - t) / 1000);
  }
  return min;
}

function sh(script: string): string {
  const r = spawnSync("sh", ["-c", script], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout;
}

/** Child mode: verify one manifest, print seconds and this process's peak RSS. */
async function child(path: string, expectedJson: string): Promise<void> {
  const expected = JSON.parse(expectedJson) as ExpectedSampleManifest;
  const t = performance.now();
  await verifySampleManifest(path, expected);
  const seconds = (performance.now() - t) / 1000;
  process.stdout.write(JSON.stringify({ seconds, maxRssKb: process.resourceUsage().maxRSS }) + "\n");
}

async function synthesize(path: string, n: number): Promise<ExpectedSampleManifest & { bytes: number }> {
  const w = await SampleManifestWriter.open(path);
  const batch = 65_536;
  for (let i = 0; i < n; i += batch) {
    const m = Math.min(batch, n - i);
    const random = randomBytes(32 * m).toString("hex");
    for (let j = 0; j < m; j++) {
      const k = i + j;
      await w.add(`shard-${String(k >> 16).padStart(4, "0")}/sample-${k}`, random.slice(64 * j, 64 * j + 64));
    }
  }
  return w.close();
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf("--samples");
  const n = flag > 0 ? Number(process.argv[flag + 1]) : 10_000_000;
  if (!Number.isInteger(n) || n < 1) throw new Error("--samples: expected a whole number ≥ 1");
  const dir = mkdtempSync(join(tmpdir(), "antidote-bench-attestation-"));
  try {
    const keys = generateSigningKey();
    writeFileSync(join(dir, "acme.key"), keys.privateKeyPem);
    const key = await readPrivateKey(join(dir, "acme.key"));
    const trusted = [{ keyId: key.keyId, publicKeyPem: key.publicKeyPem }];

    // ── synthetic manifest ──────────────────────────────────────────────────────────
    const path = join(dir, "delivery.sigstore.samples");
    process.stdout.write(`writing a ${n.toLocaleString("en-US")}-sample manifest under ${dir} …\n`);
    let t = performance.now();
    const written = await synthesize(path, n);
    const writeSeconds = (performance.now() - t) / 1000;
    const bytes = statSync(path).size;

    // (a) the signed v2 bundle for it (one data file + the manifest as subjects).
    const subject = [
      { name: "data.parquet", digest: { sha256: randomBytes(32).toString("hex") } },
      { name: SAMPLE_MANIFEST_SUBJECT, digest: { sha256: written.sha256 } },
    ];
    const statement: DeliveryStatement = {
      _type: STATEMENT_TYPE,
      subject,
      predicateType: DELIVERY_PREDICATE_TYPE_V2,
      predicate: {
        merkleRoot: merkleRoot(subject.map((s) => s.digest.sha256)),
        sampleMerkleRoot: written.merkleRoot,
        sampleCount: written.count,
        samples: null,
        sampleManifest: {
          subject: SAMPLE_MANIFEST_SUBJECT,
          format: SAMPLE_MANIFEST_FORMAT,
          blockSize: written.blockSize,
        },
        createdAt: new Date().toISOString(),
        tool: { name: "antidote", version: VERSION },
      },
    };
    const bundleBytes = Buffer.byteLength(JSON.stringify(signStatement(statement, key), null, 2) + "\n");

    // (b) throughput against sha256sum, page cache warm; (c) peak RSS in a process of its own.
    sh(`cat '${path}' > /dev/null`);
    const sha256sum = await best(() => sh(`sha256sum '${path}'`));
    const sumDigest = sh(`sha256sum '${path}'`).slice(0, 64);
    if (sumDigest !== written.sha256) throw new Error("the manifest's digest differs from sha256sum's");
    const ours = await best(() => verifySampleManifest(path, written));
    const self = fileURLToPath(import.meta.url);
    const run = spawnSync(
      process.execPath,
      [...process.execArgv, self, "--child", path, JSON.stringify(written)],
      {
        encoding: "utf8",
      },
    );
    if (run.status !== 0) throw new Error(`child verification failed: ${run.stderr}`);
    const measured = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as {
      seconds: number;
      maxRssKb: number;
    };
    const baseline = sh(
      `${process.execPath} -e 'process.stdout.write(String(process.resourceUsage().maxRSS))'`,
    );

    const mbs = (s: number) => bytes / s / 1e6;
    process.stdout.write(
      `\n${n.toLocaleString("en-US")} samples, manifest ${(bytes / 1e6).toFixed(1)} MB (${(bytes / n).toFixed(1)} B/sample), written in ${writeSeconds.toFixed(1)} s (${mbs(writeSeconds).toFixed(0)} MB/s)\n\n` +
        `| measure | value | goal |\n|---|---|---|\n` +
        `| (a) signed bundle (v2), bytes | ${bundleBytes.toLocaleString("en-US")} | ≤ 10,240 |\n` +
        `| (a) same samples inlined (v1), bytes (estimate: 92 B/sample) | ${(92 * n).toLocaleString("en-US")} | |\n` +
        `| (b) sha256sum, s / MB/s | ${sha256sum.toFixed(2)} / ${mbs(sha256sum).toFixed(0)} | |\n` +
        `| (b) verifySampleManifest (SHA-256 + Merkle + parse), s / MB/s | ${ours.toFixed(2)} / ${mbs(ours).toFixed(0)} | |\n` +
        `| (b) ratio to sha256sum | ${(sha256sum / ours).toFixed(2)}× | ≥ 0.80× |\n` +
        `| (c) peak RSS of a process verifying it, MB | ${(measured.maxRssKb / 1024).toFixed(0)} (bare node: ${(Number(baseline) / 1024).toFixed(0)}) | bounded |\n` +
        `| (c) that run's time, s | ${measured.seconds.toFixed(2)} | |\n`,
    );
    rmSync(path);

    // ── real data: Fashion-MNIST train, v1 vs v2 ───────────────────────────────────────
    if (resolveBuiltin("fashion-mnist") === undefined) {
      process.stdout.write(
        "\nFashion-MNIST is not installed (apt-get install dataset-fashion-mnist): real-data row skipped\n",
      );
      return;
    }
    const target = "fashion-mnist:train";
    const rows: string[] = [];
    for (const form of ["v1 (inline)", "v2 (manifest)"] as const) {
      const bundle = join(dir, `fm-${form.slice(0, 2)}.sigstore.json`);
      const manifest = form.startsWith("v2") ? sampleManifestPathFor(bundle) : undefined;
      t = performance.now();
      const s = await buildStatement(target, {
        ...(manifest !== undefined && { sampleManifest: { path: manifest, force: true } }),
      });
      writeFileSync(bundle, JSON.stringify(signStatement(s, key), null, 2) + "\n");
      const signSeconds = (performance.now() - t) / 1000;
      t = performance.now();
      const v = await verifySignedDelivery(target, bundle, trusted);
      const verifySeconds = (performance.now() - t) / 1000;
      const manifestBytes = manifest === undefined ? 0 : statSync(manifest).size;
      rows.push(
        `| ${form} | ${v.samples.length.toLocaleString("en-US")} | ${statSync(bundle).size.toLocaleString("en-US")} | ${manifestBytes.toLocaleString("en-US")} | ${signSeconds.toFixed(1)} | ${verifySeconds.toFixed(1)} |`,
      );
    }
    process.stdout.write(
      `\nFashion-MNIST train (${target}), sign + verify:\n\n| form | samples | bundle bytes | manifest bytes | sign s | verify s |\n|---|---|---|---|---|---|\n${rows.join("\n")}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--child") await child(process.argv[3] ?? "", process.argv[4] ?? "{}");
else await main();
