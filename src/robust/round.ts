// One round of robust federated aggregation over update files: hash and parse every update,
// verify who sent it and that it is what they signed, leave out every update that fails
// (with its reason), aggregate the rest with a Byzantine-robust rule, write the aggregate,
// and record what happened — a finding per refused or suspicious client and the
// aggregation as a transform — in the ledger in one append.
//
// A refused client does not fail the round: rounds run on whoever shows up. The round fails
// only when too few updates remain for the rule to tolerate F Byzantine clients.
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { AntidoteError, isAntidoteError } from "../errors.js";
import type { Finding, Ledger, LedgerEventInput, Transform } from "../ledger/types.js";
import { VERSION } from "../version.js";
import { aggregate } from "./aggregate.js";
import { foolsGold } from "./foolsgold.js";
import {
  attestationPathFor,
  checkAttestation,
  clientIdFromPath,
  DEFAULT_FEDERATION,
  readAttestation,
  type ClientTrust,
  type Rejection,
  type RejectionReason,
} from "./attestation.js";
import {
  createNpyBlockWriter,
  openScannedUpdates,
  readUpdateValues,
  scanOfWrittenNpy,
  scanUpdate,
  scanUpdates,
  type TensorLayout,
  type UpdateScan,
  type WrittenFile,
  writeUpdateFile,
} from "./tensor-file.js";
import { AGGREGATION_RULES, type AggregateOptions, type AggregationRule, type ClientScore } from "./types.js";

export const CHECK_NAME = "robust/aggregate";

export interface RoundOptions {
  /** Update files or directories, one per client. */
  updates: readonly string[];
  rule: AggregationRule;
  /** F: Byzantine clients the rule must tolerate. */
  byzantine: number;
  round: number;
  federation?: string;
  /** Where to write the aggregate (.safetensors or .npy). */
  out: string;
  /** Who may send updates (trustFromLedger, trustFromKeysDir, unsignedOnlyTrust). */
  trust: ClientTrust;
  /** Record findings and the aggregation here (one append). */
  ledger?: Ledger;
  /** Where attestations live (default: `<update>.dsse.json` beside each update). */
  attestationsDir?: string;
  /** The server's own update on its root dataset: required by fltrust, and it fixes the round's layout. */
  rootUpdate?: string;
  clipNorm?: number;
  multiKrumSelect?: number;
  trim?: number;
  blockSize?: number;
  /** FoolsGold: keep each client's running sum of accepted updates here (CLIENT.npy) and screen sybils. */
  historyDir?: string;
  /** Bytes hashed in the first pass, over all updates. */
  onHashProgress?: (done: number, total: number) => void;
  onAggregateProgress?: AggregateOptions["onProgress"];
}

export type ClientStatus = "accepted" | "flagged" | "rejected";

export interface ClientReport {
  clientId: string;
  /** The update as given. */
  file: string;
  status: ClientStatus;
  /** The attested digest of the update (null when it could not be parsed). */
  digest: string | null;
  /** The key that signed it (null when unsigned or refused before its signature verified). */
  keyId: string | null;
  norm: number | null;
  distance: number | null;
  cosine: number | null;
  ruleScore: number | null;
  selected: boolean | null;
  /** Rejection codes (empty unless rejected). */
  rejections: RejectionReason[];
  /** Why it was rejected or flagged, in words. */
  reasons: string[];
  /** FoolsGold, with --history: the client's weight (0 = sybil) and its largest similarity to another client. */
  foolsGold: { weight: number; maxSimilarity: number } | null;
}

export interface RoundReport {
  round: number;
  federation: string;
  rule: AggregationRule;
  byzantine: number;
  dimension: number;
  layoutDigest: string;
  clients: ClientReport[];
  /** Updates that went into the rule (accepted and flagged ones; FoolsGold's suspected sybils excepted). */
  aggregated: number;
  /** Clients by status. */
  accepted: number;
  flagged: number;
  rejected: number;
  output: WrittenFile;
  details: Record<string, number | string>;
  transform: Transform;
  findings: Finding[];
  /** Where findings and the transform were recorded, with the number of events; null without a ledger. */
  ledger: { location: string; events: number } | null;
}

/** The fewest accepted updates a rule needs to tolerate F Byzantine ones, and the bound in words. */
export function minimumClients(
  rule: AggregationRule,
  byzantine: number,
  options: { trim?: number } = {},
): { clients: number; bound: string } {
  const f = byzantine;
  switch (rule) {
    case "median":
    case "geometric-median":
      return { clients: 2 * f + 1, bound: "n ≥ 2F+1" };
    case "trimmed-mean": {
      const k = options.trim ?? f;
      return { clients: 2 * k + 1, bound: options.trim === undefined ? "n ≥ 2F+1" : "n ≥ 2·trim+1" };
    }
    case "krum":
    case "multi-krum":
      return { clients: 2 * f + 3, bound: "n ≥ 2F+3" };
    case "bulyan":
      return { clients: 4 * f + 3, bound: "n ≥ 4F+3" };
    case "mean":
    case "fltrust":
    case "norm-clip-mean":
      return { clients: 1, bound: "n ≥ 1" };
  }
}

export async function runRound(options: RoundOptions): Promise<RoundReport> {
  const federation = options.federation ?? DEFAULT_FEDERATION;
  validate(options);

  // The server's root update is trusted: when given, its layout is the round's.
  const root = options.rootUpdate === undefined ? undefined : await scanUpdate(options.rootUpdate);
  const scanned = await scanUpdates(options.updates, {
    ...(root !== undefined && { layout: root.layout }),
    ...(options.onHashProgress !== undefined && { onProgress: options.onHashProgress }),
  });
  const layout = scanned.layout;

  const entries: Entry[] = [];
  for (const u of scanned.updates) {
    const attestationPath = attestationPathFor(u.path, options.attestationsDir);
    let rejections: Rejection[];
    let identity: { clientId: string; keyId: string | null };
    try {
      const envelope = await readAttestation(attestationPath);
      const check = checkAttestation({
        update: u.path,
        attestationPath,
        envelope,
        scan: u.scan,
        round: options.round,
        federation,
        trust: options.trust,
      });
      rejections = check.rejections;
      identity = check;
    } catch (e) {
      if (!isAntidoteError(e) || e.code !== "INPUT_FORMAT") throw e;
      rejections = [{ reason: "malformed", message: e.message }];
      identity = { clientId: clientIdFromPath(u.path), keyId: null };
    }
    rejections.push(...u.problems.map((p) => ({ reason: p.kind, message: p.message })));
    entries.push({
      path: u.path,
      scan: u.scan,
      clientId: identity.clientId,
      keyId: identity.keyId,
      rejections,
    });
  }
  rejectDuplicates(entries);

  let accepted = entries.filter((e) => e.rejections.length === 0);
  requireEnough(options, accepted.length, entries);
  if (layout === null) throw new AntidoteError("INTERNAL", "accepted updates without a layout");

  const history =
    options.historyDir === undefined
      ? undefined
      : await screenSybils(options.historyDir, accepted, layout, options.blockSize);
  try {
    if (history !== undefined) {
      accepted = accepted.filter((e) => e.foolsGold === undefined || !e.foolsGold.flagged);
      requireEnough(options, accepted.length, entries, "after FoolsGold left out suspected sybils");
    }

    const matrix = openScannedUpdates(
      accepted.map((e) => e.scan as UpdateScan),
      layout,
    );
    let result;
    try {
      result = aggregate(matrix, {
        rule: options.rule,
        byzantine: options.byzantine,
        ...(options.multiKrumSelect !== undefined && { multiKrumSelect: options.multiKrumSelect }),
        ...(options.trim !== undefined && { trim: options.trim }),
        ...(options.clipNorm !== undefined && { clipNorm: options.clipNorm }),
        ...(options.blockSize !== undefined && { blockSize: options.blockSize }),
        ...(root !== undefined && { rootUpdate: readUpdateValues(root) }),
        ...(options.onAggregateProgress !== undefined && { onProgress: options.onAggregateProgress }),
      });
    } finally {
      matrix.close();
    }
    const ids = accepted.map((e) => e.clientId);
    accepted.forEach((e, i) => {
      const score = result.clients.find((c) => c.client === i);
      e.score =
        score === undefined
          ? undefined
          : { ...score, reasons: score.reasons.map((r) => nameClients(r, ids)) };
    });

    const output = await writeAggregateFile(options, federation, result.aggregate, layout, accepted.length);

    const clients = entries.map((e) => clientReport(e));
    const findings = buildFindings(clients, options, federation);
    const transform: Transform = {
      kind: "fl-aggregate",
      tool: "antidote",
      toolVersion: VERSION,
      parameters: {
        rule: options.rule,
        byzantine: options.byzantine,
        round: options.round,
        federation,
        accepted: accepted.length,
        rejected: clients.filter((c) => c.status === "rejected").length,
        ...(options.multiKrumSelect !== undefined && { multiKrumSelect: options.multiKrumSelect }),
        ...(options.trim !== undefined && { trim: options.trim }),
        ...(options.clipNorm !== undefined && { clipNorm: options.clipNorm }),
        ...(root !== undefined && { rootUpdate: root.digest }),
        ...(history !== undefined && { foolsGold: true }),
      },
      inputDigests: accepted.map((e) => (e.scan as UpdateScan).digest),
      outputDigests: [output.digest],
    };
    let ledger: RoundReport["ledger"] = null;
    if (options.ledger !== undefined) {
      const events: LedgerEventInput[] = [
        ...findings.map((f): LedgerEventInput => ({ kind: "finding.recorded", payload: f })),
        {
          kind: "transform.recorded",
          payload: { subject: `fl:${federation}:round-${options.round}`, transform },
        },
      ];
      await options.ledger.append(events);
      ledger = { location: options.ledger.location, events: events.length };
    }
    // The history moves on only once the round is written and recorded.
    await history?.commit();
    return {
      round: options.round,
      federation,
      rule: options.rule,
      byzantine: options.byzantine,
      dimension: layout.dimension,
      layoutDigest: layout.digest,
      clients,
      aggregated: accepted.length,
      accepted: clients.filter((c) => c.status === "accepted").length,
      flagged: clients.filter((c) => c.status === "flagged").length,
      rejected: clients.filter((c) => c.status === "rejected").length,
      output,
      details: result.details,
      transform,
      findings,
      ledger,
    };
  } finally {
    await history?.discard();
  }
}

// ---------------------------------------------------------------------------------------

interface Entry {
  path: string;
  scan: UpdateScan | null;
  clientId: string;
  keyId: string | null;
  rejections: Rejection[];
  score?: ClientScore | undefined;
  foolsGold?: { weight: number; maxSimilarity: number; flagged: boolean; reasons: string[] };
}

function validate(options: RoundOptions): void {
  if (!AGGREGATION_RULES.includes(options.rule))
    throw new AntidoteError(
      "USAGE",
      `--rule ${String(options.rule)}: not one of ${AGGREGATION_RULES.join(", ")}.`,
    );
  if (!Number.isInteger(options.byzantine) || options.byzantine < 0)
    throw new AntidoteError("USAGE", `--byzantine: must be a whole number ≥ 0, got ${options.byzantine}.`);
  if (options.rule === "fltrust" && options.rootUpdate === undefined)
    throw new AntidoteError(
      "USAGE",
      "--rule fltrust needs --root-update: the server's own update on its clean root dataset, which scores every client.",
    );
  if (options.updates.length === 0) throw new AntidoteError("USAGE", "give at least one update file.");
}

function requireEnough(options: RoundOptions, remaining: number, entries: readonly Entry[], when = ""): void {
  const need = minimumClients(options.rule, options.byzantine, {
    ...(options.trim !== undefined && { trim: options.trim }),
  });
  if (remaining >= need.clients) return;
  const refused = entries.filter((e) => e.rejections.length > 0);
  const listed = refused
    .slice(0, 8)
    .map((e) => `${e.clientId}: ${e.rejections[0]?.reason ?? "?"}`)
    .join(", ");
  throw new AntidoteError(
    "USAGE",
    `rule ${options.rule} with --byzantine ${options.byzantine} needs ${need.bound} = ${need.clients} updates, ` +
      `but only ${remaining} of ${entries.length} remain${when === "" ? "" : ` ${when}`}` +
      (refused.length > 0 ? ` (refused: ${listed}${refused.length > 8 ? ", …" : ""})` : "") +
      "; lower --byzantine or wait for more clients.",
  );
}

/**
 * One update per client per round. The same bytes twice (a replay of this round's update)
 * keep the first; different updates from one client (equivocation) are all refused, since
 * there is no telling which one the client meant.
 */
function rejectDuplicates(entries: Entry[]): void {
  const byClient = new Map<string, Entry[]>();
  for (const e of entries) {
    if (e.rejections.length > 0) continue;
    byClient.set(e.clientId, [...(byClient.get(e.clientId) ?? []), e]);
  }
  for (const [clientId, group] of byClient) {
    if (group.length < 2) continue;
    const digests = new Set(group.map((e) => e.scan?.digest));
    const files = group.map((e) => e.path).join(", ");
    if (digests.size === 1) {
      for (const e of group.slice(1))
        e.rejections.push({
          reason: "replayed",
          message: `${e.path}: client ${clientId} already sent this update this round (${group[0]?.path ?? ""}); counted once.`,
        });
    } else {
      for (const e of group)
        e.rejections.push({
          reason: "replayed",
          message: `${e.path}: client ${clientId} sent ${group.length} different updates this round (${files}); all are refused.`,
        });
    }
  }
}

async function writeAggregateFile(
  options: RoundOptions,
  federation: string,
  values: Float32Array,
  layout: TensorLayout,
  clients: number,
): Promise<WrittenFile> {
  return writeUpdateFile(options.out, values, {
    layout,
    metadata: {
      producer: `antidote ${VERSION}`,
      rule: options.rule,
      byzantine: String(options.byzantine),
      round: String(options.round),
      federation,
      clients: String(clients),
    },
  });
}

function clientReport(e: Entry): ClientReport {
  const s = e.score;
  const rejected = e.rejections.length > 0;
  const fg = e.foolsGold;
  const flaggedBy = [
    ...(s?.flagged ? s.reasons : []),
    ...(fg?.flagged ? fg.reasons.map((r) => `FoolsGold: ${r}`) : []),
  ];
  return {
    clientId: e.clientId,
    file: e.path,
    status: rejected ? "rejected" : s?.flagged === true || fg?.flagged === true ? "flagged" : "accepted",
    digest: e.scan?.digest ?? null,
    keyId: e.keyId,
    norm: finite(s?.norm),
    distance: finite(s?.distance),
    cosine: finite(s?.cosine),
    ruleScore: finite(s?.ruleScore),
    selected: s?.selected ?? null,
    rejections: e.rejections.map((r) => r.reason),
    reasons: rejected ? e.rejections.map((r) => r.message) : flaggedBy,
    foolsGold: fg === undefined ? null : { weight: fg.weight, maxSimilarity: fg.maxSimilarity },
  };
}

/**
 * A finding per rejected client (score 1: it was refused) and per flagged one. A flagged
 * client's score is in [0, 1]: the larger of (1 − cosine)/2 — 1 when it points against the
 * aggregate — and d/(d + median d) for its distance d to the aggregate — ½ at the typical
 * client's distance, → 1 far beyond it.
 */
function buildFindings(
  clients: readonly ClientReport[],
  options: RoundOptions,
  federation: string,
): Finding[] {
  const distances = clients
    .filter((c) => c.status !== "rejected" && c.distance !== null)
    .map((c) => c.distance as number)
    .sort((a, b) => a - b);
  const median = distances.length === 0 ? 0 : (distances[Math.floor((distances.length - 1) / 2)] ?? 0);
  const findings: Finding[] = [];
  for (const c of clients) {
    if (c.status === "accepted") continue;
    const evidence = {
      round: options.round,
      federation,
      rule: options.rule,
      file: c.file,
      digest: c.digest,
      keyId: c.keyId,
      norm: c.norm,
      distance: c.distance,
      cosine: c.cosine,
      ruleScore: c.ruleScore,
      selected: c.selected,
      reasons: c.reasons,
      ...(c.status === "rejected" && { rejections: c.rejections }),
      ...(c.foolsGold !== null && { foolsGold: c.foolsGold }),
    };
    let score = 1;
    if (c.status === "flagged") {
      const byCosine = c.cosine === null ? 0 : (1 - c.cosine) / 2;
      const d = c.distance ?? 0;
      const byDistance = d === 0 ? 0 : median === 0 ? 1 : d / (d + median);
      score = Math.min(1, Math.max(byCosine, byDistance, c.foolsGold?.weight === 0 ? 1 : 0));
    }
    findings.push({
      subjectType: "client",
      subjectId: c.clientId,
      kind: c.status === "rejected" ? "fl-update-rejected" : "fl-update-outlier",
      score,
      evidence,
      check: CHECK_NAME,
      checkVersion: VERSION,
    });
  }
  return findings;
}

/** Rules name clients by matrix row ("client 3"); the report names them by id. */
function nameClients(reason: string, ids: readonly string[]): string {
  return reason.replace(/\bclient (\d+)\b/g, (whole, index: string) => {
    const id = ids[Number(index)];
    return id === undefined ? whole : `client ${id}`;
  });
}

function finite(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}

// ---------------------------------------------------------------------------------------
// FoolsGold history

/**
 * Add each accepted update to its client's running sum (DIR/CLIENT.npy, written block by
 * block beside the old one and renamed only when the round succeeds), then score the sums
 * with FoolsGold: sybils pushing the same objective have near-identical histories.
 */
async function screenSybils(
  dir: string,
  accepted: Entry[],
  layout: TensorLayout,
  blockSize: number | undefined,
): Promise<{ commit(): Promise<void>; discard(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const d = layout.dimension;
  const pending: { partial: string; final: string }[] = [];
  const discard = async () => {
    await Promise.all(pending.map((p) => rm(p.partial, { force: true })));
    pending.length = 0;
  };
  try {
    const written: WrittenFile[] = [];
    for (const e of accepted) {
      const final = join(dir, `${encodeURIComponent(e.clientId)}.npy`);
      const partial = `${final}.partial-${process.pid}`;
      pending.push({ partial, final });
      const previous =
        (await stat(final).catch(() => undefined)) === undefined ? undefined : await scanUpdate(final);
      if (previous !== undefined && previous.layout.dimension !== d)
        throw new AntidoteError(
          "USAGE",
          `--history ${dir}: ${final} sums updates of ${previous.layout.dimension} parameters, this round's have ${d}; use a new --history directory for a new model.`,
        );
      const current = openScannedUpdates([e.scan as UpdateScan], layout);
      const prior = previous === undefined ? undefined : openScannedUpdates([previous], previous.layout);
      const writer = createNpyBlockWriter(partial, d);
      try {
        const block = 1 << 16;
        const sum = new Float32Array(block);
        for (let start = 0; start < d; start += block) {
          const end = Math.min(d, start + block);
          const out = sum.subarray(0, end - start);
          out.set(current.columns(0, start, end));
          if (prior !== undefined) {
            const p = prior.columns(0, start, end);
            for (let j = 0; j < out.length; j++) out[j] = (out[j] ?? 0) + (p[j] ?? 0);
          }
          writer.write(out);
        }
      } finally {
        current.close();
        prior?.close();
      }
      written.push(writer.close());
    }
    const sums = await Promise.all(written.map((w) => scanOfWrittenNpy(w, d)));
    const matrix = openScannedUpdates(sums, sums[0]?.layout ?? layout);
    try {
      const fg = foolsGold(matrix, blockSize === undefined ? {} : { blockSize });
      const ids = accepted.map((e) => e.clientId);
      accepted.forEach((e, i) => {
        e.foolsGold = {
          weight: fg.weights[i] ?? 1,
          maxSimilarity: fg.maxSimilarity[i] ?? 0,
          flagged: fg.flagged[i] ?? false,
          reasons: (fg.reasons[i] ?? []).map((r) => nameClients(r, ids)),
        };
      });
    } finally {
      matrix.close();
    }
  } catch (e) {
    await discard();
    throw e;
  }
  return {
    async commit() {
      for (const p of pending) await rename(p.partial, p.final);
      pending.length = 0;
    },
    discard,
  };
}
