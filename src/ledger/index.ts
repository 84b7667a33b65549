// The ledger: one append-only, hash-chained event log with queryable projections, in an
// embedded SQLite file or a shared PostgreSQL database (see backend.ts). Modules talk to it
// only through the `Ledger` contract in types.ts.
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { appendEvents, type AppendContext } from "./append.js";
import { openBackend, type Backend } from "./backend.js";
import { loadOrCreateLedgerKey, type LedgerKey } from "./keys.js";
import * as q from "./queries.js";
import { traceSample, traceSource } from "./trace.js";
import type {
  AppendOptions,
  DatasetVersion,
  DeliveryRecord,
  Finding,
  Ledger,
  LedgerEvent,
  LedgerEventInput,
  ModelRecord,
  OpenLedgerOptions,
  SampleRecord,
  SampleTrace,
  Source,
  SourceTrace,
  VerifyReport,
} from "./types.js";
import { verifyLedger } from "./verify.js";

export * from "./types.js";
export { GENESIS_HASH, canonicalJson, eventHash } from "./chain.js";
export { keyIdOf } from "./keys.js";

/**
 * Open (creating when needed) the ledger at `options.location`: a SQLite file path (default
 * `.antidote/ledger.db`) or a `postgres://` URL. Brings the schema up to date, loads or
 * creates the ledger's checkpoint key and records it in the log when it is new.
 */
export async function openLedger(options: OpenLedgerOptions = {}): Promise<Ledger> {
  const backend = await openBackend(options.location);
  try {
    const keyPath = resolve(options.keyPath ?? join(backend.homeDir, "ledger-key.pem"));
    const key = loadOrCreateLedgerKey(keyPath);
    const ledger = new SqlLedger(backend, key, keyPath, options.actor ?? defaultActor());
    await ledger.recordKey();
    return ledger;
  } catch (e) {
    await backend.close().catch(() => undefined);
    throw e;
  }
}

class SqlLedger implements Ledger {
  readonly location: string;
  readonly homeDir: string;
  private readonly context: AppendContext;
  private closed = false;

  constructor(
    private readonly backend: Backend,
    private readonly key: LedgerKey,
    readonly keyPath: string,
    private readonly actor: string,
  ) {
    this.location = backend.location;
    this.homeDir = backend.homeDir;
    this.context = { backend, key };
  }

  /** Record this opener's checkpoint key, once, however many processes open at the same time. */
  async recordKey(): Promise<void> {
    const { keyId, publicKeyPem } = this.key;
    const recorded = (trx: Backend["db"]) =>
      trx
        .selectFrom("ledger_keys")
        .select("key_id")
        .where("key_id", "=", keyId)
        .executeTakeFirst()
        .then((r) => r !== undefined);
    if (await recorded(this.backend.db)) return;
    await appendEvents(
      this.context,
      [{ kind: "ledger.key-rotated", payload: { keyId, publicKeyPem } }],
      this.actor,
      recorded,
    );
  }

  append(events: LedgerEventInput[], options: AppendOptions = {}): Promise<LedgerEvent[]> {
    return appendEvents(this.context, events, options.actor ?? this.actor);
  }

  verify(): Promise<VerifyReport> {
    return verifyLedger(this.backend);
  }

  events(fromSeq?: number): AsyncIterable<LedgerEvent> {
    return q.events(this.backend.db, fromSeq);
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
  ): AsyncIterable<SampleRecord & { source: string | null; quarantined: boolean }> {
    return q.datasetMembers(this.backend.db, version);
  }

  getModel(digest: string): Promise<ModelRecord | undefined> {
    return q.getModel(this.backend.db, digest);
  }

  listModels(): Promise<ModelRecord[]> {
    return q.listModels(this.backend.db);
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
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
