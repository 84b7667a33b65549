// The ledger's own connection, for the policy's grouped reads (one query per table, see
// reputation.ts). Server routes hand library functions an acting-as view of the ledger; that
// view shares its ledger's connection (ledger/index.ts `shareConnection`).
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerDb } from "../ledger/database.js";
import type { LedgerReader } from "../ledger/types.js";

export function policyDb(ledger: LedgerReader): LedgerDb {
  return ledgerConnection(ledger);
}
