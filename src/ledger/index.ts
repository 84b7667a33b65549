// The ledger: one append-only, hash-chained event log with queryable projections, in an
// embedded SQLite file or a shared PostgreSQL database (see backend.ts). Modules talk to it
// only through the `Ledger` contract in types.ts.
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { AntidoteError } from "../errors.js";
import { appendEvents, type AppendContext } from "./append.js";
import { openBackend, type Backend } from "./backend.js";
import type { LedgerDb } from "./database.js";
import { rotationMessage } from "./chain.js";
import { deliveryEvidence } from "./evidence.js";
import {
  LEDGER_KEY_ENV,
  createLedgerKeyFile,
  describeOrigin,
  readLedgerKey,
  type LedgerSigner,
} from "./keys.js";
import * as insights from "./insights.js";
import * as q from "./queries.js";
import { lastSequence, sourceQuarantined } from "./project-telemetry.js";
import * as tq from "./telemetry-queries.js";
import { traceSample, traceSource } from "./trace.js";
import type {
  ApiToken,
  AppendOptions,
  BlastRadius,
  FindingCount,
  LedgerStatus,
  QuarantineSize,
  SampleSummary,
  SourceRisk,
  VersionSummary,
  DatasetVersion,
  DeliveryEvidence,
  DeliveryRecord,
  Finding,
  Ledger,
  LedgerEvent,
  LedgerEventKind,
  LedgerReader,
  LedgerEventInput,
  ModelRecord,
  ModelStatus,
  TelemetryBatchFilter,
  TelemetryBatchRecord,
  OpenLedgerOptions,
  SampleRecord,
  SampleTrace,
  SignedTreeHead,
  Source,
  SourceTrace,
  VerifyOptions,
  VerifyReport,
} from "./types.js";
import { signedHead, verifyLedger } from "./verify.js";

export * from "./types.js";
export { GENESIS_HASH, canonicalJson, eventHash, recordDigest } from "./chain.js";
export {
  LEDGER_KEY_ENV,
  LEDGER_KEY_PASSPHRASE_ENV,
  keyIdOf,
  parseLedgerPrivateKey,
  signerFromPrivateKey,
  writePrivateKeyFile,
  type LedgerSigner,
} from "./keys.js";
export { consistencyProof, inclusionProof, verifyConsistency, verifyInclusion } from "./tree.js";
export { parseSignedTreeHead } from "./verify.js";

/**
 * Open (creating when needed) the ledger at `options.location` for writing: a SQLite file path
 * (default `.antidote/ledger.db`) or a `postgres://` URL. Brings the schema up to date and
 * loads the ledger's key — creating it only for a ledger with no events yet. A ledger whose
 * key is missing or is not the key its log endorses is refused, never re-keyed.
 */
export async function openLedger(options: OpenLedgerOptions = {}): Promise<Ledger> {
  const backend = await openBackend(options.location, "write", options.poolSize);
  try {
    const keyPath = resolve(options.keyPath ?? join(backend.homeDir, "ledger-key.pem"));
    const ledger = new SqlLedger(
      backend,
      await ledgerSigner(backend, keyPath, options.signer),
      keyPath,
      options.actor ?? defaultActor(),
    );
    await ledger.recordGenesisKey();
    return ledger;
  } catch (e) {
    await backend.close().catch(() => undefined);
    throw e;
  }
}

/**
 * Open an existing ledger for reading only: nothing is created, migrated, appended or keyed
 * (a SQLite file is opened read-only, PostgreSQL sessions are read-only), so `verify`, `log`
 * and `trace` can run where the key is absent and can never change what they look at.
 */
export async function openLedgerReader(
  options: Pick<OpenLedgerOptions, "location"> = {},
): Promise<LedgerReader> {
  return new SqlLedgerReader(await openBackend(options.location, "read"));
}

// Which key signs: a caller's signer, else $ANTIDOTE_LEDGER_KEY, else the key file. A new key
// is made only while the log is empty; after that the key must be the one the log endorses.
async function ledgerSigner(
  backend: Backend,
  keyPath: string,
  given: LedgerSigner | undefined,
): Promise<LedgerSigner> {
  const recorded = await backend.db
    .selectFrom("ledger_keys")
    .select(["key_id", "seq"])
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  const empty =
    (await backend.db.selectFrom("events").select("seq").limit(1).executeTakeFirst()) === undefined;
  const found =
    given !== undefined ? { signer: given, origin: { kind: "signer" as const } } : readLedgerKey(keyPath);
  if (found === undefined) {
    if (empty) return createLedgerKeyFile(keyPath);
    throw new AntidoteError(
      "LEDGER_UNAVAILABLE",
      `the key of ledger ${backend.location} is missing: ${keyPath} does not exist and $${LEDGER_KEY_ENV} is not set. ` +
        `Nothing was written, and no new key was made: restore the ledger's key (id ${recorded?.key_id.slice(0, 16) ?? "unknown"}…). Reading commands (ledger verify, ledger log, trace) need no key.`,
    );
  }
  if (recorded !== undefined && recorded.key_id !== found.signer.keyId)
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `${describeOrigin(found.origin)} holds key ${found.signer.keyId.slice(0, 16)}…, but ledger ${backend.location} is signed by key ` +
        `${recorded.key_id.slice(0, 16)}… (recorded at #${recorded.seq}). Nothing was written: use the ledger's key; a ledger changes key only with \`antidote ledger rotate-key\`, endorsed by its current key.`,
    );
  return found.signer;
}

// The database connection behind each ledger this module opened (see `ledgerConnection`).
const CONNECTIONS = new WeakMap<LedgerReader, LedgerDb>();

/**
 * The ledger's own database connection, for the service's operational tables (jobs, job
 * artifacts, used request ids) — never for events or the tables projected from them, which
 * only `append` writes. Why not a second connection: on SQLite, better-sqlite3 waits for the
 * write lock inside the call, so a second connection in this process that finds the ledger
 * mid-append (between two of its awaits) would block the very event loop the append needs to
 * finish. On one connection, Kysely queues the query until the append commits.
 */
/** Make `view` (a wrapper of `ledger`, e.g. the server's acting-as Proxy) answer `ledgerConnection` as `ledger` does. */
export function shareConnection<T extends LedgerReader>(view: T, ledger: LedgerReader): T {
  const db = CONNECTIONS.get(ledger);
  if (db !== undefined) CONNECTIONS.set(view, db);
  return view;
}

export function ledgerConnection(ledger: LedgerReader): LedgerDb {
  const db = CONNECTIONS.get(ledger);
  if (db === undefined)
    throw new AntidoteError(
      "INTERNAL",
      "ledgerConnection: the ledger was not opened by openLedger or openLedgerReader.",
    );
  return db;
}

class SqlLedgerReader implements LedgerReader {
  readonly location: string;
  readonly homeDir: string;
  private closed = false;

  constructor(protected readonly backend: Backend) {
    this.location = backend.location;
    this.homeDir = backend.homeDir;
    CONNECTIONS.set(this, backend.db);
  }

  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    return verifyLedger(this.backend, options);
  }

  signedHead(): Promise<SignedTreeHead | undefined> {
    return signedHead(this.backend);
  }

  deliveryEvidence(deliveryId: string): Promise<DeliveryEvidence> {
    return this.backend.snapshot((db) => deliveryEvidence(db, deliveryId, this.trustedKeyPem()));
  }

  /** The key evidence must be signed by; a reader derives it from the log's endorsed key chain. */
  protected trustedKeyPem(): string | undefined {
    return undefined;
  }

  events(fromSeq?: number): AsyncIterable<LedgerEvent> {
    return q.events(this.backend.db, fromSeq);
  }

  async eventsOfKind<K extends LedgerEventKind>(
    kind: K,
    options?: { newestFirst?: boolean; limit?: number },
  ): Promise<Extract<LedgerEvent, { kind: K }>[]> {
    return (await q.eventsOfKind(this.backend.db, kind, options)) as Extract<LedgerEvent, { kind: K }>[];
  }

  async getEvent(seq: number): Promise<LedgerEvent | undefined> {
    const row = await this.backend.db
      .selectFrom("events")
      .selectAll()
      .where("seq", "=", seq)
      .executeTakeFirst();
    return row === undefined ? undefined : q.eventFromRow(row);
  }

  async getSource(name: string): Promise<Source | undefined> {
    return (await q.listSources(this.backend.db, name))[0];
  }

  listSources(): Promise<Source[]> {
    return q.listSources(this.backend.db);
  }

  findDelivery(manifestDigest: string): Promise<{ deliveryId: string; datasetVersion: string } | undefined> {
    return q.findDelivery(this.backend.db, manifestDigest);
  }

  listDeliveries(): Promise<DeliveryRecord[]> {
    return q.listDeliveries(this.backend.db);
  }

  getDatasetVersion(version: string): Promise<DatasetVersion | undefined> {
    return q.getDatasetVersion(this.backend.db, version);
  }

  listDatasetVersions(): Promise<DatasetVersion[]> {
    return q.listDatasetVersions(this.backend.db);
  }

  datasetMembers(
    version: string,
    options?: { after?: string; limit?: number },
  ): AsyncIterable<SampleRecord & { source: string | null; quarantined: boolean }> {
    return q.datasetMembers(this.backend.db, version, options);
  }

  getModel(digest: string): Promise<ModelRecord | undefined> {
    return q.getModel(this.backend.db, digest);
  }

  listModels(): Promise<ModelRecord[]> {
    return q.listModels(this.backend.db);
  }

  getModelStatus(digest: string): Promise<ModelStatus | undefined> {
    return tq.getModelStatus(this.backend.db, digest);
  }

  listTelemetryBatches(filter?: TelemetryBatchFilter): Promise<TelemetryBatchRecord[]> {
    return tq.listTelemetryBatches(this.backend.db, filter);
  }

  getTelemetryBatch(batchId: string): Promise<TelemetryBatchRecord | undefined> {
    return tq.getTelemetryBatch(this.backend.db, batchId);
  }

  lastTelemetrySequence(agent: string): Promise<number | null> {
    return lastSequence(this.backend.db, agent);
  }

  isSourceQuarantined(name: string): Promise<boolean> {
    return sourceQuarantined(this.backend.db, name);
  }

  async isQuarantined(digest: string): Promise<boolean> {
    return (await q.quarantinedAmong(this.backend.db, [digest])).has(digest);
  }

  findings(filter?: {
    subjectType?: Finding["subjectType"];
    minScore?: number;
  }): AsyncIterable<Finding & { seq: number }> {
    return q.findings(this.backend.db, filter);
  }

  traceSource(name: string, options?: { limit?: number }): Promise<SourceTrace> {
    return traceSource(this.backend.db, name, options);
  }

  traceSample(idOrDigest: string): Promise<SampleTrace | undefined> {
    return traceSample(this.backend.db, idOrDigest);
  }

  status(): Promise<LedgerStatus> {
    return insights.ledgerStatus(this.backend.db);
  }

  sourceRisks(options: { source?: string } = {}): Promise<SourceRisk[]> {
    return insights.sourceRisks(this.backend.db, options.source);
  }

  findingCounts(): Promise<FindingCount[]> {
    return insights.findingCounts(this.backend.db);
  }

  quarantineSize(): Promise<QuarantineSize> {
    return insights.quarantineSize(this.backend.db);
  }

  sourceSamples(
    source: string,
    options: { after?: string; limit: number },
  ): Promise<{ items: SampleSummary[]; nextCursor: string | null }> {
    return insights.sourceSamplesPage(this.backend.db, source, options);
  }

  sourceAnnotators(source: string): Promise<{ annotator: string; samples: number }[]> {
    return insights.sourceAnnotators(this.backend.db, source);
  }

  versionSummary(version: string): Promise<VersionSummary> {
    return insights.versionSummary(this.backend.db, version);
  }

  blastRadius(source: string): Promise<BlastRadius> {
    return insights.blastRadius(this.backend.db, source);
  }

  listTokens(): Promise<ApiToken[]> {
    return q.listTokens(this.backend.db);
  }

  async getToken(tokenId: string): Promise<ApiToken | undefined> {
    return (await q.listTokens(this.backend.db, tokenId))[0];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
  }
}

class SqlLedger extends SqlLedgerReader implements Ledger {
  private context: AppendContext;

  constructor(
    backend: Backend,
    private currentSigner: LedgerSigner,
    readonly keyPath: string,
    private readonly actor: string,
  ) {
    super(backend);
    this.context = { backend, signer: currentSigner };
  }

  get signer(): LedgerSigner {
    return this.currentSigner;
  }

  protected override trustedKeyPem(): string {
    return this.currentSigner.publicKeyPem;
  }

  /** A new ledger's first event records its key, once, however many processes open it at once. */
  async recordGenesisKey(): Promise<void> {
    const { keyId, publicKeyPem } = this.currentSigner;
    const anyKey = (trx: Backend["db"]) =>
      trx
        .selectFrom("ledger_keys")
        .select("key_id")
        .limit(1)
        .executeTakeFirst()
        .then((r) => r !== undefined);
    if (await anyKey(this.backend.db)) return;
    await appendEvents(
      this.context,
      [{ kind: "ledger.key-rotated", payload: { keyId, publicKeyPem } }],
      this.actor,
      anyKey,
    );
    // Another process may have created the ledger with its own key in the meantime.
    await ledgerSigner(this.backend, this.keyPath, this.currentSigner);
  }

  append(events: LedgerEventInput[], options: AppendOptions = {}): Promise<LedgerEvent[]> {
    const job = options.onceForJob;
    const skipIf =
      job === undefined
        ? undefined
        : async (trx: Backend["db"]) =>
            (await trx
              .selectFrom("job_outcomes")
              .select("job_id")
              .where("job_id", "=", job)
              .executeTakeFirst()) !== undefined;
    return appendEvents(this.context, events, options.actor ?? this.actor, skipIf);
  }

  async rotateKey(next: LedgerSigner, options: AppendOptions = {}): Promise<LedgerEvent[]> {
    const incoming = { keyId: next.keyId, publicKeyPem: next.publicKeyPem };
    const signature = Buffer.from(await this.currentSigner.sign(rotationMessage(incoming))).toString(
      "base64",
    );
    const written = await appendEvents(
      { ...this.context, nextSigner: next },
      [
        {
          kind: "ledger.key-rotated",
          payload: { ...incoming, endorsement: { keyId: this.currentSigner.keyId, signature } },
        },
      ],
      options.actor ?? this.actor,
    );
    this.currentSigner = next;
    this.context = { backend: this.backend, signer: next };
    return written;
  }
}

function defaultActor(): string {
  try {
    return userInfo().username;
  } catch {
    // A container user without a passwd entry has no name.
    return process.env.USER ?? `uid:${process.getuid?.() ?? "unknown"}`;
  }
}
