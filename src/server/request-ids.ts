// Used request ids (the `request_ids` table): every mutating request carries an
// `Antidote-Request-Id`, and one already used is refused as a replay. An id is claimed
// before the request runs — atomically, by its primary key, so two copies racing each other
// cannot both pass — and given back when the request fails, so it is recorded only for a
// request that was accepted and the client may retry a failed one with the same id.
//
// The store works on the ledger's own connection (`ledgerConnection`): a second SQLite
// connection in this process, waiting for the write lock inside better-sqlite3's call, would
// block the event loop the ledger's own append (holding that lock across an await) needs.
import type { Kysely } from "kysely";
import type { RequestIdsTable } from "../ledger/database.js";
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerReader } from "../ledger/types.js";

export interface RequestIdStore {
  /** Record `requestId` as used by `tokenId`; false when it was used before. */
  claim(requestId: string, tokenId: string, at: Date): Promise<boolean>;
  /** Forget a claim whose request failed. */
  release(requestId: string): Promise<void>;
  close(): Promise<void>;
}

type Db = Kysely<{ request_ids: RequestIdsTable }>;

/** The store of the ledger's database, on the ledger's own connection. */
export function openRequestIdStore(ledger: LedgerReader): RequestIdStore {
  return sqlStore(ledgerConnection(ledger) as unknown as Db);
}

function sqlStore(db: Db): RequestIdStore {
  return {
    async claim(requestId, tokenId, at) {
      const result = await db
        .insertInto("request_ids")
        .values({ request_id: requestId, token_id: tokenId, at: at.toISOString() })
        .onConflict((oc) => oc.column("request_id").doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
    },
    async release(requestId) {
      await db.deleteFrom("request_ids").where("request_id", "=", requestId).execute();
    },
    // The connection is the ledger's: whoever opened the ledger closes it.
    close: () => Promise.resolve(),
  };
}
