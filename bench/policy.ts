// `policy check` and source reputation on a 1,000-source ledger, on SQLite and PostgreSQL:
//   npx tsx bench/policy.ts            (about a minute on 2 cores; ANTIDOTE_SKIP_POSTGRES=1 for SQLite only)
// The ledger: 1,000 sources (800 suppliers, 150 web crawls, 50 agents), each with one delivery
// of 50 samples (50,000 samples, synthetic digests) and its dataset version; a scan's findings
// on 2% of every source's samples and on 40% of 20 compromised suppliers'; a quarantine of
// those 20 suppliers' flagged samples; 100 refused deliveries; 10 revoked keys. Then, each the
// median of 5 runs: `sourceReputations` (every score with its explanation) and `checkPolicy`
// with examples/policy.yaml (reputations, required scans of 1,000 versions, planned decisions).
// The target (issue 27): policy check ≤ 2 s.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { openLedger, type Ledger, type LedgerEventInput } from "../src/ledger/index.js";
import type { SourceKind } from "../src/ledger/types.js";
import { checkPolicy, loadPolicyFile, sourceReputations } from "../src/policy/index.js";
import { generateSigningKey, keyIdOf } from "../src/provenance/keys.js";
import { recordRefusal } from "../src/provenance/refusals.js";
import { skipPostgres, startPostgres, type PostgresServer } from "../test/helpers/postgres.js";

const SOURCES = 1000;
const PER_SOURCE = 50;
const BAD = 20;
const RUNS = 5;
const POLICY = resolve("examples/policy.yaml");

interface Row {
  engine: string;
  buildSeconds: number;
  reputationMs: number;
  checkMs: number;
  below: number;
  missing: number;
  quarantine: number;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const work = mkdtempSync(join(tmpdir(), "antidote-bench-policy-"));
process.chdir(work);
let server: PostgresServer | undefined;
try {
  const rows: Row[] = [];
  rows.push(await run("SQLite", join(work, "ledger.db")));
  if (!skipPostgres()) {
    server = await startPostgres();
    rows.push(await run("PostgreSQL", await server.createDatabase()));
  }
  process.stdout.write(table(rows));
} finally {
  await server?.stop();
  process.chdir(tmpdir());
  rmSync(work, { recursive: true, force: true });
}

async function run(engine: string, location: string): Promise<Row> {
  const ledger = await openLedger({ location, keyPath: join(work, `${engine}-key.pem`), actor: "bench" });
  try {
    const t0 = performance.now();
    await build(ledger);
    const buildSeconds = (performance.now() - t0) / 1000;
    const loaded = await loadPolicyFile(POLICY);
    const ref = { ...loaded, origin: POLICY };
    const reputationMs = median(await times(() => sourceReputations(ledger)));
    let last: Awaited<ReturnType<typeof checkPolicy>> | undefined;
    const checkMs = median(
      await times(async () => {
        last = await checkPolicy(ledger, ref);
      }),
    );
    return {
      engine,
      buildSeconds,
      reputationMs,
      checkMs,
      below: last?.belowMinReputation.length ?? 0,
      missing: last?.missingScans.length ?? 0,
      quarantine: last?.wouldQuarantine.samples ?? 0,
    };
  } finally {
    await ledger.close();
  }
}

function kindOf(i: number): SourceKind {
  return i < 800 ? "supplier" : i < 950 ? "web" : "agent";
}

async function build(ledger: Ledger): Promise<void> {
  const keys = Array.from({ length: 10 }, () => generateSigningKey().publicKeyPem);
  const flaggedOf = new Map<number, string[]>();
  for (let from = 0; from < SOURCES; from += 100) {
    const events: LedgerEventInput[] = [];
    for (let i = from; i < from + 100; i++) {
      const name = `src-${String(i).padStart(4, "0")}`;
      const key = i < keys.length ? keys[i] : undefined;
      events.push({
        kind: "source.added",
        payload: {
          name,
          kind: kindOf(i),
          trust: 0.7,
          requireSignature: false,
          keys: key === undefined ? [] : [{ publicKeyPem: key }],
        },
      });
      const digests = Array.from({ length: PER_SOURCE }, (_, k) => sha256(`${name}/${k}`));
      const manifest = sha256(`manifest/${name}`);
      const version = `${name}@${manifest.slice(0, 12)}`;
      events.push(
        {
          kind: "delivery.ingested",
          payload: {
            deliveryId: `dlv-${manifest.slice(0, 16)}`,
            source: name,
            manifestDigest: manifest,
            merkleRoot: manifest,
            keyId: null,
            files: [],
            sampleCount: PER_SOURCE,
            datasetVersion: version,
            store: null,
          },
        },
        {
          kind: "samples.added",
          payload: {
            deliveryId: `dlv-${manifest.slice(0, 16)}`,
            source: name,
            samples: digests.map((digest, k) => ({
              id: `${name}-${k}`,
              digest,
              label: String(k % 10),
              annotations: [],
            })),
          },
        },
        {
          kind: "dataset.version-created",
          payload: {
            version,
            name,
            merkleRoot: manifest,
            parent: null,
            sampleCount: PER_SOURCE,
            transform: {
              kind: "ingest",
              tool: "bench",
              toolVersion: "0",
              parameters: {},
              inputDigests: [manifest],
              outputDigests: [],
            },
          },
        },
        { kind: "dataset.members-added", payload: { version, digests: [...digests].sort() } },
      );
      const share = i < BAD ? 0.4 : 0.02;
      flaggedOf.set(i, digests.slice(0, Math.round(share * PER_SOURCE)));
    }
    await ledger.append(events);
  }
  const findings: LedgerEventInput[] = [...flaggedOf.entries()].flatMap(([i, digests]) =>
    digests.map((subjectId, k) => ({
      kind: "finding.recorded" as const,
      payload: {
        subjectType: "sample" as const,
        subjectId,
        kind: "poisoning-risk",
        score: i < BAD ? 0.95 : 0.5 + (k % 4) * 0.1,
        evidence: {},
        check: "bench",
        checkVersion: "0",
      },
    })),
  );
  for (let k = 0; k < findings.length; k += 2000) await ledger.append(findings.slice(k, k + 2000));
  await ledger.append(
    Array.from({ length: BAD }, (_, i) => ({
      kind: "decision.recorded" as const,
      payload: {
        action: "quarantine" as const,
        subjectType: "sample" as const,
        subjectIds: flaggedOf.get(i) ?? [],
        actor: "analyst",
        reason: "bench",
      },
    })),
  );
  await ledger.append(
    keys.map((pem, i) => ({
      kind: "source.key-revoked" as const,
      payload: { source: `src-${String(i).padStart(4, "0")}`, keyId: keyIdOf(pem), reason: "rotation" },
    })),
  );
  for (let i = 0; i < 100; i++)
    await recordRefusal(ledger, {
      source: `src-${String(i * 7).padStart(4, "0")}`,
      principal: "bench",
      code: "DIGEST_MISMATCH",
      message: "a file changed",
    });
}

async function times(fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function table(rows: Row[]): string {
  const head =
    "| engine | build ledger (s) | sourceReputations, 1,000 sources (ms) | policy check (ms) | below minReputation | versions missing scans | samples to quarantine |\n|---|---|---|---|---|---|---|\n";
  return (
    head +
    rows
      .map(
        (r) =>
          `| ${r.engine} | ${r.buildSeconds.toFixed(1)} | ${r.reputationMs.toFixed(0)} | ${r.checkMs.toFixed(0)} | ${r.below} | ${r.missing} | ${r.quarantine} |`,
      )
      .join("\n") +
    "\n"
  );
}
