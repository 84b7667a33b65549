// Receiving a delivery: check who sent it and that it is intact, keep a copy of its
// samples in the ledger's sample store, and record it — in that order. Nothing reaches the
// ledger or the store until the signature and every file and sample digest have been
// checked, so a tampered delivery leaves no trace but the error. The ledger write is one
// atomic append, so a crash leaves the ledger at its last complete event; a store file
// without a ledger record is an orphan `export` never reads, and the store file's SHA-256
// is in the record, so an edited store is caught on every read (store.ts).
import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { sweepStaleTemporaries } from "../data/atomic-output.js";
import { createWriter, openDataset, type OpenOptions } from "../data/open.js";
import { AntidoteError } from "../errors.js";
import type { Ledger, LedgerEventInput, SampleRecord, Source } from "../ledger/types.js";
import { VERSION } from "../version.js";
import { buildStatement, deliveredFiles, statementDigest, type DeliveryStatement } from "./manifest.js";
import { openStatement, readSignature } from "./bundle.js";
import { verifyDelivery } from "./delivery.js";
import { merkleRoot } from "./merkle.js";
import { sampleManifestPathFor } from "./sample-manifest.js";
import { sha256File } from "./model.js";
import { recordDigest } from "../ledger/chain.js";
import { EVENT_BATCH, memberEvents, slug } from "./versions.js";
import { enforceIngest } from "../policy/enforce.js";

export interface IngestOptions {
  /** The delivered data: a file, directory or anything `openDataset` reads. */
  target: string;
  source: string;
  /** A Sigstore bundle or DSSE envelope over the delivery's manifest. */
  signaturePath?: string;
  /**
   * The sample manifest file a v2 statement names (sample-manifest.ts); default: beside the
   * signature (`sampleManifestPathFor`).
   */
  samplesPath?: string;
  /** Dataset name for the new version (default: the target's base name). */
  name?: string;
  readOptions?: OpenOptions;
  onProgress?: (phase: "files" | "samples", done: number, total: number) => void;
}

export interface IngestResult {
  deliveryId: string;
  datasetVersion: string;
  source: string;
  keyId: string | null;
  sampleCount: number;
  files: number;
  merkleRoot: string;
  /** True when this exact delivery (same manifest) was already in the ledger: nothing was written. */
  alreadyIngested: boolean;
}

/**
 * The CPU-heavy steps of an ingest: reading the signature, hashing and decoding every file,
 * writing the store file, building the events. None touches the ledger, so a server can run
 * them off its event loop (ingest-threads.ts) while the ledger work stays where the ledger
 * is. `ingestDelivery` runs them in the calling thread unless given others.
 */
export interface IngestStages {
  /** The delivery's statement, checked against the source's current keys (built, if unsigned). */
  statement(source: Source, options: IngestOptions): Promise<TrustedStatement>;
  /** A delivery whose manifest the ledger knows: check these bytes are the ones it describes. */
  verifyKnown(options: IngestOptions, statement: DeliveryStatement): Promise<void>;
  /** Verify every file and sample, write the store file, and build the events to append. */
  stage(
    source: Source,
    trusted: TrustedStatement,
    options: IngestOptions,
    storeDir: string,
  ): Promise<StagedDelivery>;
}

export interface TrustedStatement {
  statement: DeliveryStatement;
  keyId: string | null;
  manifestDigest: string;
}

/** A verified delivery ready to record: its store file is written, its events built. */
export interface StagedDelivery {
  events: LedgerEventInput[];
  /** The store file the events name; removed if the append fails or loses a race. */
  storeFile: string;
  result: IngestResult;
}

/** The stages run in the calling thread (the CLI, the library's default). */
export const inThreadStages: IngestStages = {
  statement: trustedStatement,
  verifyKnown: async (options, statement) => {
    await verifyDelivery(options.target, statement, {
      readOptions: options.readOptions,
      onProgress: options.onProgress,
      ...samplesOption(options),
    });
  },
  stage: stageDelivery,
};

export async function ingestDelivery(
  ledger: Ledger,
  options: IngestOptions,
  stages: IngestStages = inThreadStages,
): Promise<IngestResult> {
  const source = await ledger.getSource(options.source);
  if (source === undefined)
    throw new AntidoteError(
      "SOURCE_UNKNOWN",
      `source "${options.source}" is not registered; add it first with \`antidote source add ${options.source} --kind … --key pub.pem\`.`,
    );
  // The curation policy in force (src/policy/), if any: signature and minimum reputation.
  await enforceIngest(ledger, source, options.signaturePath !== undefined);
  const trusted = await stages.statement(source, options);
  const existing = await ledger.findDelivery(trusted.manifestDigest);
  if (existing !== undefined) {
    // A known manifest says nothing about whether these bytes are the ones it describes:
    // verify them too before answering "already ingested".
    await stages.verifyKnown(options, trusted.statement);
    return alreadyIngested(existing, source, trusted.keyId, trusted.statement);
  }

  const staged = await stages.stage(source, trusted, options, join(ledger.homeDir, "store"));
  const appended = await ledger.append(staged.events).catch(async (e: unknown) => {
    await rm(staged.storeFile, { force: true });
    throw e;
  });
  if (appended.length === 0) {
    // Another ingest of the same delivery won the race; its store file is the one recorded.
    await rm(staged.storeFile, { force: true }).catch(() => undefined);
    const winner = await ledger.findDelivery(trusted.manifestDigest);
    if (winner !== undefined) return alreadyIngested(winner, source, trusted.keyId, trusted.statement);
  }
  return staged.result;
}

async function stageDelivery(
  source: Source,
  { statement, keyId, manifestDigest }: TrustedStatement,
  options: IngestOptions,
  storeDir: string,
): Promise<StagedDelivery> {
  const deliveryId = `dlv-${manifestDigest.slice(0, 16)}`;
  const dataset = await openDataset(options.target, options.readOptions);
  // A name of its own per attempt: two ingests of the same delivery racing each write their
  // own file, and the one whose append loses removes only its own.
  const storeName = `${deliveryId}-${randomUUID().slice(0, 8)}.parquet`;
  const storeFile = join(storeDir, storeName);
  await mkdir(storeDir, { recursive: true });
  // Temporaries of ingests killed mid-write (kill -9, power loss) are cleared here.
  await sweepStaleTemporaries(storeDir);
  const samples: SampleRecord[] = [];
  let files: { path: string; sha256: string; size: number }[];
  // The store file appears under its name only once complete (createWriter stages it).
  const writer = await createWriter(storeFile, { format: "parquet", classes: dataset.info.classes });
  try {
    const verified = await verifyDelivery(options.target, statement, {
      readOptions: options.readOptions,
      onProgress: options.onProgress,
      ...samplesOption(options),
      keepSamples: false,
      onSample: async (sample) => {
        await writer.write(sample);
        const { id, digest, label, annotations } = sample;
        samples.push({ id, digest, label, annotations });
      },
    });
    files = verified.files;
    if (verified.sampleCount === 0)
      throw new AntidoteError("INPUT_FORMAT", `${options.target}: the delivery holds no samples to ingest.`);
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  // The digest the ledger records: every later read of the store is checked against it.
  const storeSha256 = await sha256File(storeFile);

  const name = options.name ?? basename(options.target).replace(/\.[^.]+$/, "");
  const datasetVersion = `${slug(name)}@${manifestDigest.slice(0, 12)}`;
  // A version is a set of contents: the same bytes delivered twice are one member.
  const digests = [...new Set(samples.map((s) => s.digest))].sort();
  const sampleRoot = merkleRoot(digests);
  const recordsRoot = merkleRoot([...new Set(samples.map(recordDigest))].sort());
  const events: LedgerEventInput[] = [
    {
      kind: "delivery.ingested",
      payload: {
        deliveryId,
        source: source.name,
        manifestDigest,
        merkleRoot: statement.predicate.merkleRoot,
        keyId,
        files,
        sampleCount: samples.length,
        datasetVersion,
        store: storeName,
        storeSha256,
      },
    },
  ];
  for (let i = 0; i < samples.length; i += EVENT_BATCH)
    events.push({
      kind: "samples.added",
      payload: { deliveryId, source: source.name, samples: samples.slice(i, i + EVENT_BATCH) },
    });
  events.push({
    kind: "dataset.version-created",
    payload: {
      version: datasetVersion,
      name,
      merkleRoot: sampleRoot,
      recordsRoot,
      parent: null,
      sampleCount: digests.length,
      transform: {
        kind: "ingest",
        tool: "antidote",
        toolVersion: VERSION,
        parameters: { source: source.name, signed: keyId !== null, target: basename(options.target) },
        inputDigests: [manifestDigest],
        outputDigests: [sampleRoot],
      },
    },
  });
  events.push(...memberEvents(datasetVersion, digests));
  return {
    events,
    storeFile,
    result: {
      deliveryId,
      datasetVersion,
      source: source.name,
      keyId,
      sampleCount: samples.length,
      files: deliveredFiles(statement).length,
      merkleRoot: statement.predicate.merkleRoot,
      alreadyIngested: false,
    },
  };
}

// The signature policy: a signed delivery must be signed by one of the source's current
// keys; an unsigned one is accepted only from a source whose policy allows it, and then we
// build the manifest ourselves so the ledger still records exactly what was received.
async function trustedStatement(source: Source, options: IngestOptions): Promise<TrustedStatement> {
  if (options.signaturePath === undefined) {
    if (source.requireSignature)
      throw new AntidoteError(
        "SIGNATURE_INVALID",
        `source "${source.name}" (${source.kind}) requires signed deliveries: pass --signature with the supplier's bundle (made by \`antidote sign\`).`,
      );
    // The receiver's own manifest of an unsigned delivery carries a fixed time, so the same
    // content always yields the same manifest digest and a re-delivery is recognised.
    const statement = await buildStatement(options.target, {
      readOptions: options.readOptions,
      createdAt: new Date(0).toISOString(),
    });
    return { statement, keyId: null, manifestDigest: statementDigest(statement) };
  }
  const envelope = await readSignature(options.signaturePath);
  const current = source.keys.filter((k) => k.revokedAt === null);
  const revoked = source.keys.filter((k) => k.revokedAt !== null);
  for (const sig of envelope.signatures) {
    const hit = revoked.find((k) => k.keyId === sig.keyid);
    if (hit !== undefined && !current.some((k) => k.keyId === sig.keyid))
      throw new AntidoteError(
        "KEY_UNTRUSTED",
        `${options.signaturePath}: signed by key ${sig.keyid.slice(0, 16)}… of source "${source.name}", which was revoked at ${hit.revokedAt}.`,
      );
  }
  try {
    const opened = openStatement(envelope, current);
    return {
      statement: opened.statement,
      keyId: opened.keyId,
      manifestDigest: statementDigest(opened.statement),
    };
  } catch (e) {
    if (e instanceof AntidoteError && e.code === "KEY_UNTRUSTED")
      throw new AntidoteError(
        "KEY_UNTRUSTED",
        `${options.signaturePath}: not signed by any current key of source "${source.name}" (${e.message}).`,
        { cause: e },
      );
    throw e;
  }
}

/** Where a v2 statement's sample manifest is: as given, else beside the signature. */
function samplesOption(options: IngestOptions): { sampleManifest?: string } {
  const path =
    options.samplesPath ??
    (options.signaturePath === undefined ? undefined : sampleManifestPathFor(options.signaturePath));
  return path === undefined ? {} : { sampleManifest: path };
}

function alreadyIngested(
  existing: { deliveryId: string; datasetVersion: string },
  source: Source,
  keyId: string | null,
  statement: DeliveryStatement,
): IngestResult {
  return {
    deliveryId: existing.deliveryId,
    datasetVersion: existing.datasetVersion,
    source: source.name,
    keyId,
    sampleCount: statement.predicate.sampleCount ?? 0,
    files: deliveredFiles(statement).length,
    merkleRoot: statement.predicate.merkleRoot,
    alreadyIngested: true,
  };
}
