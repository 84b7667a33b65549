// `antidote sign-update` (client side) and `antidote aggregate` (server side) of robust
// federated learning. A client signs each round's update with its key; the server verifies
// every update against the client's registered keys, leaves out what fails with its reason,
// aggregates the rest with a Byzantine-robust rule, and records the round in the ledger.
import { Option, type Command } from "commander";
import { z } from "zod";
import { checkOutput, writeOutputFile } from "../../data/atomic-output.js";
import { AntidoteError } from "../../errors.js";
import { readPrivateKey } from "../../provenance/keys.js";
import {
  attestationPathFor,
  attestUpdate,
  clientIdSchema,
  DEFAULT_FEDERATION,
  federationSchema,
  roundSchema,
  trustFromKeysDir,
  trustFromLedger,
  unsignedOnlyTrust,
  type UpdateAttestation,
} from "../../robust/attestation.js";
import { runRound, type RoundOptions, type RoundReport } from "../../robust/round.js";
import { scanUpdate } from "../../robust/tensor-file.js";
import { AGGREGATION_RULES, type AggregationRule } from "../../robust/types.js";
import { addLedgerOption, withLedger } from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { progressBar, type ProgressBar } from "../progress.js";
import { printTable } from "../table.js";

// ---------------------------------------------------------------------------------------
// sign-update

const signUpdateFlags = z.object({
  key: z.string().min(1),
  client: clientIdSchema,
  round: roundSchema,
  federation: federationSchema.default(DEFAULT_FEDERATION),
  out: z.string().min(1).optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export interface SignUpdateOptions {
  update: string;
  /** The client's private key (CLIENT.key from `antidote keygen`). */
  key: string;
  client: string;
  round: number | string;
  federation?: string;
  /** Default: `<update>.dsse.json`. */
  out?: string;
  /** Replace an existing attestation at `out`. */
  force?: boolean;
  json?: boolean;
}

/** The attestation as signed, where it was written, and by which key. */
export type SignUpdateResult = UpdateAttestation & { out: string; keyId: string };

export function registerSignUpdate(program: Command): void {
  program
    .command("sign-update")
    .argument(
      "<update>",
      "this round's update: a .safetensors file, a .npy file or a directory of .npy files",
    )
    .description(
      "Federated client: sign an update for one round (DSSE envelope binding its digest to the round)",
    )
    .requiredOption("--key <CLIENT.key>", "the client's private key, made by `antidote keygen`")
    .requiredOption("--client <id>", "the client id the server knows this client by")
    .requiredOption("--round <n>", "the round this update is for (a replay in another round is refused)")
    .option("--federation <name>", `the federation (default "${DEFAULT_FEDERATION}")`)
    .option("--out <file>", "where to write the attestation (default: <update>.dsse.json)")
    .option("--force", "replace an existing attestation")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      `
Examples:
  antidote keygen --out c7                                        once: c7.key (secret) + c7.pub (to the server)
  antidote sign-update c7.safetensors --key c7.key --client c7 --round 12
                                                                  writes c7.safetensors.dsse.json; send both

The attestation signs {clientId, round, federation, digest, parameters, layoutDigest}: the
server refuses it for another round or federation, and refuses the update if one byte changed.`,
    )
    .action(async (update: string, flags: Record<string, unknown>) => {
      await runSignUpdate({ ...(flags as Omit<SignUpdateOptions, "update">), update });
    });
}

export async function runSignUpdate(
  options: SignUpdateOptions,
  write: (text: string) => void = (t) => void process.stdout.write(t),
): Promise<SignUpdateResult> {
  const f = parseFlags(signUpdateFlags, options);
  const key = await readPrivateKey(f.key);
  // A client refuses to sign what the server would refuse anyway: a malformed or NaN update.
  const scan = await scanUpdate(options.update);
  const { attestation, envelope } = attestUpdate(
    scan,
    { clientId: f.client, round: f.round, federation: f.federation },
    key,
  );
  const out = f.out ?? attestationPathFor(options.update);
  await writeOutputFile(out, JSON.stringify(envelope, null, 2) + "\n", {
    overwrite: f.force === true,
    inputs: [options.update, f.key],
  });
  const result: SignUpdateResult = { out, ...attestation, keyId: key.keyId };
  if (f.json === true) write(JSON.stringify(result, null, 2) + "\n");
  else
    write(
      `signed ${options.update} for client ${result.clientId}, round ${result.round} (federation ${result.federation})\n` +
        `  sha256 ${result.digest}, ${result.parameters.toLocaleString("en-US")} parameters\n` +
        `  key id ${result.keyId}\n` +
        `  wrote ${out}\n`,
    );
  return result;
}

// ---------------------------------------------------------------------------------------
// aggregate

const count = (min: number) => z.coerce.number().int(`must be a whole number`).min(min);

const aggregateFlags = z.object({
  rule: z.enum(AGGREGATION_RULES as [AggregationRule, ...AggregationRule[]]),
  byzantine: count(0),
  round: roundSchema,
  out: z.string().min(1),
  federation: federationSchema.default(DEFAULT_FEDERATION),
  keys: z.string().min(1).optional(),
  ledger: z.string().min(1).optional(),
  ledgerKey: z.string().min(1).optional(),
  attestations: z.string().min(1).optional(),
  allowUnsigned: z.boolean().optional(),
  rootUpdate: z.string().min(1).optional(),
  clipNorm: z.coerce.number().positive("must be a positive number").optional(),
  multiKrumSelect: count(1).optional(),
  trim: count(0).optional(),
  blockSize: count(1).optional(),
  history: z.string().min(1).optional(),
  report: z.string().min(1).optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export interface AggregateCliOptions {
  updates: string[];
  rule: string;
  byzantine: number | string;
  round: number | string;
  out: string;
  federation?: string;
  keys?: string;
  ledger?: string;
  ledgerKey?: string;
  attestations?: string;
  allowUnsigned?: boolean;
  rootUpdate?: string;
  clipNorm?: number | string;
  multiKrumSelect?: number | string;
  trim?: number | string;
  blockSize?: number | string;
  history?: string;
  report?: string;
  json?: boolean;
}

export function registerAggregate(program: Command): void {
  addLedgerOption(
    program
      .command("aggregate")
      .argument("<updates...>", "client updates: .safetensors files, .npy files or directories of .npy files")
      .description(
        "Federated server: verify signed client updates and aggregate them with a Byzantine-robust rule",
      )
      .addOption(
        new Option("--rule <rule>", "aggregation rule").choices(AGGREGATION_RULES).makeOptionMandatory(),
      )
      .requiredOption("--byzantine <F>", "how many Byzantine (malicious) clients the rule must tolerate")
      .requiredOption("--round <n>", "this round's number (updates attested for another round are refused)")
      .requiredOption("--out <agg.safetensors|agg.npy>", "where to write the aggregated update")
      .option("--federation <name>", `the federation (default "${DEFAULT_FEDERATION}")`)
      .option(
        "--keys <dir>",
        "trusted client keys as DIR/CLIENT.pub, instead of the ledger's fl-client sources",
      )
      .option(
        "--attestations <dir>",
        "where the <update>.dsse.json attestations are (default: beside each update)",
      )
      .option("--allow-unsigned", "without a ledger: accept updates that carry no attestation")
      .option(
        "--root-update <file>",
        "the server's own update on its clean root dataset (fltrust; fixes the layout)",
      )
      .option(
        "--clip-norm <x>",
        "norm-clip-mean: clip every update to this L2 norm (default: the median norm)",
      )
      .option("--multi-krum-select <m>", "multi-krum: average the m best-scored updates (default n − F)")
      .option(
        "--trim <k>",
        "trimmed-mean: drop the k largest and k smallest values per coordinate (default F)",
      )
      .option("--block-size <n>", "coordinates read per block (memory ≈ one block per client)")
      .option(
        "--history <dir>",
        "FoolsGold: keep each client's running sum here and leave out suspected sybils",
      )
      .option("--report <report.json>", "write the per-client report as JSON")
      .option("--force", "replace an existing --out update and --report file")
      .option("--json", "print the report as JSON"),
  )
    .addHelpText(
      "after",
      `
The workflow, with the ledger (default .antidote/ledger.db):
  antidote keygen --out c1                                        on each client, once: c1.key + c1.pub
  antidote source add c1 --kind fl-client --key c1.pub            server, once per client
  antidote sign-update c1.safetensors --key c1.key --client c1 --round 7
                                                                  client, every round: c1.safetensors.dsse.json
  antidote aggregate updates/*.safetensors --rule multi-krum --byzantine 2 --round 7 --out global-7.safetensors

Without a ledger, trust the keys in a directory (keys/c1.pub, keys/c2.pub, …):
  antidote aggregate u/*.npy --rule median --byzantine 1 --round 7 --keys keys/ --out agg.npy
FLTrust scores every client against the server's own update:
  antidote aggregate u/*.safetensors --rule fltrust --byzantine 3 --round 7 --root-update server.safetensors --out agg.safetensors

Rules: mean (FedAvg baseline), krum and multi-krum (n ≥ 2F+3), median and geometric-median
(n ≥ 2F+1), trimmed-mean (n ≥ 2·trim+1), bulyan (n ≥ 4F+3), fltrust, norm-clip-mean.
An update is refused — and left out, not failing the round — when it is unsigned where its
client must sign, signed by an unknown, untrusted or revoked key, badly signed, attested for
another round or federation, changed since it was signed, sent twice, holds NaN/Inf, or has
other tensors than the round's. Exit 0 when the round aggregated; 2 when too few updates remain.`,
    )
    .action(async (updates: string[], flags: Record<string, unknown>) => {
      await runAggregate({ ...(flags as Omit<AggregateCliOptions, "updates">), updates });
    });
}

export async function runAggregate(
  options: AggregateCliOptions,
  stdout: NodeJS.WritableStream = process.stdout,
): Promise<RoundReport> {
  const f = parseFlags(aggregateFlags, options);
  if (options.updates.length === 0) throw new AntidoteError("USAGE", "give the client updates to aggregate.");
  // Checked before the round runs: an aggregated update must not replace a client's (or an old one silently).
  const guard = { overwrite: f.force === true, inputs: [...options.updates, f.rootUpdate] };
  checkOutput(f.out, guard);
  if (f.report !== undefined) checkOutput(f.report, { ...guard, inputs: [...guard.inputs, f.out] });
  const envLedger = process.env.ANTIDOTE_LEDGER;
  const ledgerNamed = f.ledger !== undefined || (envLedger !== undefined && envLedger !== "");
  if (f.keys !== undefined && f.ledger !== undefined)
    throw new AntidoteError(
      "USAGE",
      "--keys and --ledger: give one — trusted keys come from the ledger's fl-client sources, or from --keys DIR without a ledger.",
    );
  if (f.allowUnsigned === true && f.keys === undefined && ledgerNamed)
    throw new AntidoteError(
      "USAGE",
      "--allow-unsigned: with a ledger each client's own policy decides; register the client with `antidote source add ID --kind fl-client --no-require-signature` instead.",
    );

  let bar: ProgressBar | undefined;
  const round: Omit<RoundOptions, "trust"> = {
    updates: options.updates,
    rule: f.rule,
    byzantine: f.byzantine,
    round: f.round,
    federation: f.federation,
    out: f.out,
    ...(f.attestations !== undefined && { attestationsDir: f.attestations }),
    ...(f.rootUpdate !== undefined && { rootUpdate: f.rootUpdate }),
    ...(f.clipNorm !== undefined && { clipNorm: f.clipNorm }),
    ...(f.multiKrumSelect !== undefined && { multiKrumSelect: f.multiKrumSelect }),
    ...(f.trim !== undefined && { trim: f.trim }),
    ...(f.blockSize !== undefined && { blockSize: f.blockSize }),
    ...(f.history !== undefined && { historyDir: f.history }),
    onHashProgress: (done, total) => {
      bar ??= progressBar({ label: "hashing updates", unit: "bytes", total, enabled: f.json !== true });
      bar.update(done);
    },
  };

  let report: RoundReport;
  try {
    if (f.keys !== undefined)
      report = await runRound({
        ...round,
        trust: await trustFromKeysDir(f.keys, { allowUnsigned: f.allowUnsigned === true }),
      });
    else if (f.allowUnsigned === true) report = await runRound({ ...round, trust: unsignedOnlyTrust() });
    else
      report = await withLedger(options as unknown as Record<string, unknown>, async (ledger) =>
        runRound({ ...round, trust: await trustFromLedger(ledger), ledger }),
      );
  } finally {
    bar?.stop();
  }

  if (f.report !== undefined) await writeOutputFile(f.report, JSON.stringify(report, null, 2) + "\n", guard);
  if (f.json === true) stdout.write(JSON.stringify(report, null, 2) + "\n");
  else printRound(report, f.report, stdout);
  return report;
}

function printRound(r: RoundReport, reportPath: string | undefined, stdout: NodeJS.WritableStream): void {
  const num = (v: number | null, digits = 4) => (v === null ? "—" : formatNumber(v, digits));
  printTable(
    ["client", "status", "norm", "distance", "cosine", "rule score", "reason"],
    r.clients.map((c) => [
      c.clientId,
      c.status,
      num(c.norm),
      num(c.distance),
      num(c.cosine, 3),
      num(c.ruleScore),
      c.reasons.join("; ") || (c.selected === true ? "selected" : ""),
    ]),
    stdout,
  );
  const flagged = r.flagged > 0 ? `, ${r.flagged} flagged` : "";
  stdout.write(
    `\nround ${r.round} of federation ${r.federation}: ${r.rule}, F=${r.byzantine} — ` +
      `${r.aggregated} of ${r.clients.length} updates aggregated${flagged}, ${r.rejected} rejected; ` +
      `${r.dimension.toLocaleString("en-US")} parameters → ${r.output.path} (sha256 ${r.output.digest.slice(0, 16)}…)\n`,
  );
  if (r.ledger !== null)
    stdout.write(
      `ledger: ${r.findings.length} finding(s) and the aggregation recorded in ${r.ledger.location}\n`,
    );
  if (reportPath !== undefined) stdout.write(`report: ${reportPath}\n`);
}

function formatNumber(v: number, digits: number): string {
  if (v === 0) return "0";
  const abs = Math.abs(v);
  return abs >= 1e5 || abs < 1e-3 ? v.toExponential(2) : v.toPrecision(digits);
}
