// The ledger at a glance, for the people who answer for it (the dashboard's Overview page):
// whether the chain is intact as of its last signed checkpoint, the riskiest sources with
// their flag-rate trend, the latest deliveries (verified, and refused with the reason: see
// refusals.ts), open findings by kind and what is quarantined. Built from the ledger's
// aggregate reads (ledger/insights.ts); it verifies nothing itself — `ledger.verify()` does
// that and reads every event.
import type {
  DeliveryRecord,
  FindingCount,
  LedgerReader,
  LedgerStatus,
  QuarantineSize,
  SourceRisk,
} from "../ledger/types.js";
import { latestRefusals, type DeliveryRefusal } from "./refusals.js";

export interface LedgerOverview {
  ledger: LedgerStatus;
  quarantine: QuarantineSize;
  findings: FindingCount[];
  sources: {
    total: number;
    /** Sources with a flagged sample in any scan. */
    flagged: number;
    /** The riskiest first (see `LedgerReader.sourceRisks`), at most `top`. */
    riskiest: SourceRisk[];
  };
  deliveries: {
    total: number;
    /** Newest first, at most `latest`. */
    latest: DeliveryRecord[];
    /** Refused deliveries, newest first, at most `latest` (an operational record, not events). */
    refused: DeliveryRefusal[];
  };
  versions: number;
  models: number;
}

export interface OverviewOptions {
  /** Riskiest sources listed (default 10). */
  top?: number;
  /** Latest deliveries listed, and as many refused ones (default 10). */
  latest?: number;
}

export async function ledgerOverview(
  ledger: LedgerReader,
  options: OverviewOptions = {},
): Promise<LedgerOverview> {
  const latest = options.latest ?? 10;
  const [status, quarantine, findings, risks, deliveries, versions, models, refused] = await Promise.all([
    ledger.status(),
    ledger.quarantineSize(),
    ledger.findingCounts(),
    ledger.sourceRisks(),
    ledger.listDeliveries(),
    ledger.listDatasetVersions(),
    ledger.listModels(),
    latest === 0 ? Promise.resolve([]) : latestRefusals(ledger, { limit: latest }),
  ]);
  return {
    ledger: status,
    quarantine,
    findings,
    sources: {
      total: risks.length,
      flagged: risks.filter((r) => r.flaggedSamples > 0).length,
      riskiest: risks.slice(0, options.top ?? 10),
    },
    deliveries: {
      total: deliveries.length,
      latest: latest === 0 ? [] : deliveries.slice(-latest).reverse(),
      refused,
    },
    versions: versions.length,
    models: models.length,
  };
}
