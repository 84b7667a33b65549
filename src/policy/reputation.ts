// Source reputation: how far the ledger's history of a source (supplier, contractor, web
// crawl, FL client, agent, foundation model) should be trusted today, as a score in [0, 1]
// with the events that moved it. It is a beta reputation (Jøsang & Ismail, 2002) with
// forgetting: the operator's prior `Source.trust` counts as K = 2 pseudo-observations, and
// each event adds decayed good (g) or bad (b) evidence:
//
//     score = (K·trust + G) / (K + G + B),   G = Σ g_e·w_e,  B = Σ b_e·w_e,
//     w_e   = 2^(−age_e / halfLife)          (default half-life 90 days)
//
// so a source with no history scores its prior, a long clean record pulls it towards 1, an
// incident pulls it towards 0, and an incident's weight halves every half-life: "time since
// the last incident" is the decay. The evidence per event (WEIGHTS below):
//
//   good: a delivery ingested with a verified signature (1), unsigned but accepted (0.5);
//         a day of accepted telemetry batches (0.1 per batch, at most 1 a day); a release
//         of the source (1).
//   bad:  a delivery the service refused (1; delivery_refusals — except refusals by the policy
//         itself, which would ratchet the score down with every try) and a refused telemetry
//         batch (0.5; telemetry_refusals); a quarantine of the source (3), of some of its samples
//         (1 per decision) or of one of its telemetry batches (1); a revoked key (0.5); a
//         finding on the source itself (1); an FL client's flagged or rejected update (its
//         finding's score, clamped to [0.1, 1]); and its samples' findings relative to the other
//         sources — the idea of detect/source-risk.ts, on the ledger instead of one scan: with
//         f of its n samples flagged and the others flagged at rate p (Laplace-smoothed),
//         b = min(10, max(0, −log10 P(X ≥ f | X ~ Bin(n, p)) − 2)), i.e. nothing until the
//         excess is significant at 1%, then one unit per decade of p-value, decayed from the
//         latest such finding.
//
// Every figure comes from one grouped query per table (deliveries, findings joined to
// sample_origins by digest, decisions, refusals, telemetry), so scoring all sources is a
// handful of queries whatever their number — what `policy check` on a 1,000-source ledger needs (bench/policy.ts).
// Annotators are not scored here: they are not sources, and their reliability is the
// consensus detector's (detect/dawid-skene.ts).
import { sql } from "kysely";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { parseOptions } from "../features/options.js";
import { ledgerConnection } from "../ledger/index.js";
import type { LedgerReader, Source, SourceKind } from "../ledger/types.js";
import { logBinomialTail } from "../math/tails.js";

/** Default half-life of evidence, in days. */
export const REPUTATION_HALF_LIFE_DAYS = 90;
/** How many observations the operator's prior counts for. */
export const PRIOR_WEIGHT = 2;
/** Evidence per event before decay (see the header). */
export const WEIGHTS = {
  verifiedDelivery: 1,
  unsignedDelivery: 0.5,
  telemetryBatch: 0.1,
  telemetryDayCap: 1,
  sourceRelease: 1,
  deliveryRefused: 1,
  telemetryRefused: 0.5,
  sourceQuarantined: 3,
  samplesQuarantined: 1,
  batchQuarantined: 1,
  keyRevoked: 0.5,
  sourceFinding: 1,
  clientFinding: 1,
  findingsCap: 10,
} as const;

const optionsSchema = z.object({
  /** Evidence is decayed to this time (default: now). */
  now: z.date().optional(),
  /** Days after which an event counts half (default 90). */
  halfLifeDays: z.number().positive().default(REPUTATION_HALF_LIFE_DAYS),
});
export type ReputationOptions = z.input<typeof optionsSchema>;

/** One event that moved a score. */
export interface ReputationEvent {
  /** The ledger event's sequence number; null for operational records that are not events
   * (refusals), which carry their row id in `detail`. */
  seq: number | null;
  /** The event kind ("delivery.ingested", "decision.recorded" …) or "delivery.refused". */
  kind: string;
  at: string;
  /** Decayed evidence: positive is good, negative bad. */
  evidence: number;
  /** How much the score would drop (or rise) without this event. */
  effect: number;
  detail: string;
}

export interface SourceReputation {
  source: string;
  kind: SourceKind;
  /** The operator's prior (`Source.trust`). */
  prior: number;
  score: number;
  good: number;
  bad: number;
  /** The latest bad event, or null if there was none. */
  lastIncidentAt: string | null;
  /** The events that moved the score, largest effect first. */
  events: ReputationEvent[];
}

/** Every registered source's reputation, lowest first. */
export async function sourceReputations(
  ledger: LedgerReader,
  options: ReputationOptions = {},
): Promise<SourceReputation[]> {
  const o = parseOptions(optionsSchema, options, "reputation");
  const sources = await ledger.listSources();
  const raw = await gatherEvidence(ledger, sources);
  const now = (o.now ?? new Date()).getTime();
  const decay = (at: string): number =>
    0.5 ** (Math.max(0, now - Date.parse(at)) / 86_400_000 / o.halfLifeDays);
  return sources
    .map((s) => score(s, raw.get(s.name) ?? [], decay))
    .sort((a, b) => a.score - b.score || a.source.localeCompare(b.source));
}

/** One source's reputation; SOURCE_UNKNOWN when it is not registered. */
export async function reputationOf(
  ledger: LedgerReader,
  source: string,
  options: ReputationOptions = {},
): Promise<SourceReputation> {
  const found = (await sourceReputations(ledger, options)).find((r) => r.source === source);
  if (found === undefined) throw new AntidoteError("SOURCE_UNKNOWN", `source "${source}" is not registered.`);
  return found;
}

// ── scoring ──────────────────────────────────────────────────────────────────────────────
/** Undecayed evidence: `weight` > 0 good, < 0 bad. */
interface RawEvidence {
  seq: number | null;
  kind: string;
  at: string;
  weight: number;
  detail: string;
}

function score(source: Source, raw: RawEvidence[], decay: (at: string) => number): SourceReputation {
  const prior = source.trust;
  const decayed = raw.map((r) => ({ ...r, evidence: r.weight * decay(r.at) }));
  const good = sum(decayed.filter((d) => d.evidence > 0).map((d) => d.evidence));
  const bad = -sum(decayed.filter((d) => d.evidence < 0).map((d) => d.evidence));
  const value = (g: number, b: number): number => (PRIOR_WEIGHT * prior + g) / (PRIOR_WEIGHT + g + b);
  const total = value(good, bad);
  const events = decayed
    .filter((d) => d.evidence !== 0)
    .map(({ seq, kind, at, evidence, detail }) => ({
      seq,
      kind,
      at,
      evidence: round(evidence),
      effect: round(total - (evidence > 0 ? value(good - evidence, bad) : value(good, bad + evidence))),
      detail,
    }))
    .sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect) || (a.seq ?? 0) - (b.seq ?? 0));
  const incidents = raw.filter((r) => r.weight < 0).map((r) => r.at);
  return {
    source: source.name,
    kind: source.kind,
    prior,
    score: round(total),
    good: round(good),
    bad: round(bad),
    lastIncidentAt: incidents.length === 0 ? null : (incidents.sort().at(-1) ?? null),
    events,
  };
}

// ── evidence, one grouped query per table ────────────────────────────────────────────────
async function gatherEvidence(ledger: LedgerReader, sources: Source[]): Promise<Map<string, RawEvidence[]>> {
  const db = ledgerConnection(ledger);
  const out = new Map<string, RawEvidence[]>(sources.map((s) => [s.name, []]));
  const add = (source: string, e: RawEvidence): void => {
    out.get(source)?.push(e);
  };

  const deliveries = await db
    .selectFrom("deliveries")
    .select(["source", "seq", "at", "key_id", "delivery_id"])
    .execute();
  for (const d of deliveries)
    add(d.source, {
      seq: Number(d.seq),
      kind: "delivery.ingested",
      at: d.at,
      weight: d.key_id === null ? WEIGHTS.unsignedDelivery : WEIGHTS.verifiedDelivery,
      detail: `delivery ${d.delivery_id} ${d.key_id === null ? "accepted unsigned" : "verified"}`,
    });

  await findingsEvidence(ledger, add);

  // Findings on the source itself, and on an FL client's updates (robust/round.ts records one
  // only for an update it flagged or rejected; the client id is the fl-client source's name).
  const sourceFindings = await db
    .selectFrom("findings")
    .select(["subject_type", "subject_id", "seq", "at", "kind", "score"])
    .where("subject_type", "in", ["source", "client"])
    .execute();
  for (const f of sourceFindings) {
    const client = f.subject_type === "client";
    add(f.subject_id, {
      seq: Number(f.seq),
      kind: "finding.recorded",
      at: f.at,
      weight: client
        ? -WEIGHTS.clientFinding * Math.min(1, Math.max(0.1, Number(f.score)))
        : -WEIGHTS.sourceFinding,
      detail: `finding ${f.kind} (score ${round(Number(f.score))}) on ${client ? "its update" : "the source"}`,
    });
  }

  const sourceDecisions = await db
    .selectFrom("decision_subjects as ds")
    .innerJoin("decisions as d", "d.seq", "ds.seq")
    .select(["ds.subject_id as source", "d.seq", "d.at", "d.action", "d.actor"])
    .where("ds.subject_type", "=", "source")
    .execute();
  for (const d of sourceDecisions)
    add(d.source, {
      seq: Number(d.seq),
      kind: "decision.recorded",
      at: d.at,
      weight: d.action === "quarantine" ? -WEIGHTS.sourceQuarantined : WEIGHTS.sourceRelease,
      detail: `source ${d.action === "quarantine" ? "quarantined" : "released"} by ${d.actor}`,
    });

  const sampleDecisions = await sql<{ source: string; seq: number | string; at: string; n: number | string }>`
    select o.source as source, d.seq as seq, d.at as at, count(distinct ds.subject_id) as n
    from decision_subjects ds
    join decisions d on d.seq = ds.seq
    join sample_origins o on o.digest = ds.subject_id
    where ds.subject_type = 'sample' and d.action = 'quarantine'
    group by o.source, d.seq, d.at`.execute(db);
  for (const d of sampleDecisions.rows)
    add(d.source, {
      seq: Number(d.seq),
      kind: "decision.recorded",
      at: d.at,
      weight: -WEIGHTS.samplesQuarantined,
      detail: `${Number(d.n)} of its samples quarantined`,
    });

  const batchDecisions = await db
    .selectFrom("decision_subjects as ds")
    .innerJoin("decisions as d", "d.seq", "ds.seq")
    .select(["ds.subject_id as batch", "d.seq", "d.at"])
    .where("ds.subject_type", "=", "telemetry-batch")
    .where("d.action", "=", "quarantine")
    .execute();
  for (const d of batchDecisions)
    add(d.batch.slice(0, d.batch.lastIndexOf("#")), {
      seq: Number(d.seq),
      kind: "decision.recorded",
      at: d.at,
      weight: -WEIGHTS.batchQuarantined,
      detail: `telemetry batch ${d.batch} quarantined`,
    });

  const revocations = await db
    .selectFrom("events")
    .select(["seq", "at", "payload"])
    .where("kind", "=", "source.key-revoked")
    .execute();
  for (const r of revocations) {
    const p = revokedPayload.safeParse(JSON.parse(r.payload));
    if (p.success)
      add(p.data.source, {
        seq: Number(r.seq),
        kind: "source.key-revoked",
        at: r.at,
        weight: -WEIGHTS.keyRevoked,
        detail: `key ${p.data.keyId.slice(0, 16)}… revoked`,
      });
  }

  // A refusal the policy itself made (its message starts `policy "…"`) is the policy acting on
  // this very score, not new evidence: counting it would ratchet a source down with every try.
  const refused = await db
    .selectFrom("delivery_refusals")
    .select(["id", "source", "at", "code"])
    .where("message", "not like", 'policy "%')
    .execute();
  for (const r of refused)
    add(r.source, {
      seq: null,
      kind: "delivery.refused",
      at: r.at,
      weight: -WEIGHTS.deliveryRefused,
      detail: `delivery refused (${r.code}; refusal #${r.id})`,
    });
  const telemetryRefused = await db
    .selectFrom("telemetry_refusals")
    .select(["id", "agent", "at", "code"])
    .execute();
  for (const r of telemetryRefused)
    add(r.agent, {
      seq: null,
      kind: "telemetry.refused",
      at: r.at,
      weight: -WEIGHTS.telemetryRefused,
      detail: `telemetry batch refused (${r.code}; refusal #${r.id})`,
    });

  // Accepted telemetry, a day at a time (an agent may send thousands of batches a day).
  const telemetry = await sql<{
    agent: string;
    day: string;
    n: number | string;
    seq: number | string;
    at: string;
  }>`
    select agent, substr(at, 1, 10) as day, count(*) as n, max(seq) as seq, max(at) as at
    from telemetry_batches group by agent, substr(at, 1, 10)`.execute(db);
  for (const t of telemetry.rows)
    add(t.agent, {
      seq: Number(t.seq),
      kind: "telemetry.accepted",
      at: t.at,
      weight: Math.min(WEIGHTS.telemetryDayCap, WEIGHTS.telemetryBatch * Number(t.n)),
      detail: `${Number(t.n)} telemetry batch(es) accepted on ${t.day}`,
    });
  return out;
}

const revokedPayload = z.object({ source: z.string(), keyId: z.string() });

/** Flagged samples per source against the other sources' flag rate (the header's formula). */
async function findingsEvidence(
  ledger: LedgerReader,
  add: (source: string, e: RawEvidence) => void,
): Promise<void> {
  const db = ledgerConnection(ledger);
  const samples = await sql<{ source: string; n: number | string }>`
    select source, count(*) as n from source_samples group by source`.execute(db);
  const flagged = await sql<{ source: string; n: number | string; seq: number | string; at: string }>`
    select o.source as source, count(distinct f.subject_id) as n, max(f.seq) as seq, max(f.at) as at
    from findings f join sample_origins o on o.digest = f.subject_id
    where f.subject_type = 'sample'
    group by o.source`.execute(db);
  const total = sum(samples.rows.map((r) => Number(r.n)));
  const totalFlagged = sum(flagged.rows.map((r) => Number(r.n)));
  const sizes = new Map(samples.rows.map((r) => [r.source, Number(r.n)]));
  for (const f of flagged.rows) {
    const n = sizes.get(f.source) ?? 0;
    const k = Math.min(Number(f.n), n);
    if (n === 0) continue;
    // The others' rate, Laplace-smoothed so that "nobody else flagged" is not a zero.
    const others = Math.max(0, total - n);
    const p = (totalFlagged - k + 1) / (others + 2);
    const log10P = logBinomialTail(k, n, Math.min(p, 1)) / Math.LN10;
    const bad = Math.min(WEIGHTS.findingsCap, Math.max(0, -log10P - 2));
    if (bad > 0)
      add(f.source, {
        seq: Number(f.seq),
        kind: "finding.recorded",
        at: f.at,
        weight: -round(bad),
        detail: `${k} of its ${n} samples flagged (${pct(k / n)}) against ${pct(p)} of other sources' samples`,
      });
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;
}
