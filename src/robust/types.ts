// The contract of robust/: client updates as a matrix that rules read in column blocks, the
// aggregation rules, and what a round of aggregation reports about each client. Rules stream
// over blocks of coordinates so a 100M-parameter model aggregates with one block per client
// in memory, whether the updates live in typed arrays (fl-sim) or in files (the CLI).

/** The aggregation rules `antidote aggregate --rule` accepts. "mean" is plain FedAvg: the baseline. */
export type AggregationRule =
  | "mean"
  | "krum"
  | "multi-krum"
  | "median"
  | "trimmed-mean"
  | "bulyan"
  | "geometric-median"
  | "fltrust"
  | "norm-clip-mean";

export const AGGREGATION_RULES: readonly AggregationRule[] = [
  "mean",
  "krum",
  "multi-krum",
  "median",
  "trimmed-mean",
  "bulyan",
  "geometric-median",
  "fltrust",
  "norm-clip-mean",
];

/**
 * n client updates of d float32 coordinates each. `columns` returns coordinates
 * [start, end) of one client as a Float32Array that stays valid until the next `columns`
 * call for the same client (in-memory matrices return a view, file-backed ones reuse one
 * buffer per client), so a rule holds at most one block per client.
 */
export interface UpdateMatrix {
  readonly clients: number;
  readonly dimension: number;
  columns(client: number, start: number, end: number): Float32Array;
}

export interface AggregateOptions {
  rule: AggregationRule;
  /** F: how many clients the rule must tolerate being Byzantine. */
  byzantine: number;
  /** multi-krum: how many best-scored clients are averaged (default n − F). */
  multiKrumSelect?: number;
  /** trimmed-mean: values trimmed from each end of every coordinate (default F). */
  trim?: number;
  /** fltrust: the server's own update on its clean root dataset (length d). Required for fltrust. */
  rootUpdate?: Float32Array;
  /** norm-clip-mean: clip each update to this L2 norm (default: the median client norm). */
  clipNorm?: number;
  /** geometric-median (Weiszfeld): iteration cap and relative tolerance. */
  maxIterations?: number;
  tolerance?: number;
  /** Coordinates per block (default chosen so one block of every client fits in cache). */
  blockSize?: number;
  /** Threads for the heavy passes, main thread included (default: every core once the round is large enough to pay for starting workers). */
  threads?: number;
  /** Called after each pass over the coordinates: stage name, blocks done, blocks total. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** What the round says about one client; these become `client` findings in the ledger. */
export interface ClientScore {
  /** Row index in the UpdateMatrix. */
  client: number;
  /** L2 norm of the update. */
  norm: number;
  /** L2 distance to the robust aggregate. */
  distance: number;
  /** Cosine similarity to the robust aggregate (0 when either is the zero vector). */
  cosine: number;
  /** The rule's own score: Krum score, FLTrust trust score, Weiszfeld weight, clip factor; null for rules without one. */
  ruleScore: number | null;
  /** Selection rules (krum, multi-krum, bulyan): whether the update took part; null for the others. */
  selected: boolean | null;
  /** Whether the client looks Byzantine: excluded by the rule, or an outlier in distance / cosine / norm. */
  flagged: boolean;
  /** Why it is flagged, in words ("not selected by multi-krum", "distance 9.1 MADs above the median"). */
  reasons: string[];
}

export interface AggregateResult {
  rule: AggregationRule;
  byzantine: number;
  /** The aggregated update, length d. */
  aggregate: Float32Array;
  clients: ClientScore[];
  /** Rule-specific numbers worth reporting (iterations, clip bound, selected count …). */
  details: Record<string, number | string>;
}
