// `antidote policy check|apply|show|enforce`: the curation policy as code. A shell over
// src/policy/: check is a dry run on a read-only ledger, apply records the policy and what it
// decides now, show prints the policy in force and the event that adopted it, enforce records
// the decisions the policy in force makes on findings recorded since.
import type { Command } from "commander";
import {
  activePolicy,
  applyPolicy,
  checkPolicy,
  enforcePolicy,
  loadPolicyFile,
  type ApplyResult,
  type PolicyCheck,
} from "../../policy/index.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { printTable } from "../table.js";

export function registerPolicy(program: Command): void {
  const policy = program
    .command("policy")
    .description(
      "Curation policy as code: check a policy file against the ledger, adopt it, show the one in force",
    );

  addLedgerReadOption(
    policy
      .command("check")
      .argument("<policy.yaml>", "the policy file (apiVersion antidote.dev/policy/v1)")
      .description("Dry run: what adopting the policy would change now (writes nothing)")
      .option("--json", "print JSON"),
  ).action(async (file: string, flags: Record<string, unknown>) => {
    const loaded = await loadPolicyFile(file);
    await withLedgerReader(flags, async (ledger) => {
      const check = await checkPolicy(ledger, { ...loaded, origin: file });
      if (flags.json === true) printJson(check);
      else printCheck(check);
    });
  });

  addLedgerOption(
    policy
      .command("apply")
      .argument("<policy.yaml>", "the policy file")
      .description("Adopt the policy (a policy.adopted event) and record the decisions it makes now")
      .option("--json", "print JSON")
      .addHelpText(
        "after",
        `
A policy applies from the event that adopts it: decisions an earlier policy made stay as they are.

Examples:
  antidote policy check examples/policy.yaml
  antidote policy apply examples/policy.yaml`,
      ),
  ).action(async (file: string, flags: Record<string, unknown>) => {
    await withLedger(flags, async (ledger) => {
      const result = await applyPolicy(ledger, file);
      if (flags.json === true) printJson(result);
      else printApplied(result, file);
    });
  });

  addLedgerOption(
    policy
      .command("enforce")
      .description("Record the decisions the policy in force makes now (after a scan recorded findings)")
      .option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedger(flags, async (ledger) => {
      const result = await enforcePolicy(ledger);
      if (flags.json === true) printJson(result);
      else printApplied(result, "the policy in force");
    });
  });

  addLedgerReadOption(
    policy
      .command("show")
      .description("Print the policy in force and the event that adopted it")
      .option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (ledger) => {
      const active = await activePolicy(ledger);
      if (flags.json === true)
        return printJson(
          active === undefined
            ? null
            : {
                seq: active.seq,
                at: active.at,
                actor: active.actor,
                digest: active.digest,
                policy: active.policy,
              },
        );
      if (active === undefined) {
        process.stdout.write("no policy adopted; adopt one with `antidote policy apply policy.yaml`\n");
        return;
      }
      process.stdout.write(
        `policy "${active.policy.name}" version ${active.policy.version}, adopted by ${active.actor} at ${active.at} (event #${active.seq})\n` +
          `digest ${active.digest}\n\n${JSON.stringify(active.policy, null, 2)}\n`,
      );
    });
  });
}

function printCheck(c: PolicyCheck): void {
  const out = process.stdout;
  out.write(
    `policy "${c.policy.name}" version ${c.policy.version} (sha256 ${c.policy.digest.slice(0, 16)}…) against ${c.sources} source(s); nothing written\n\n`,
  );
  if (c.belowMinReputation.length === 0) out.write("no source is below its minimum reputation\n");
  else {
    out.write("sources below their minimum reputation (their deliveries would be refused):\n");
    printTable(
      ["source", "kind", "reputation", "minimum", "rule"],
      c.belowMinReputation.map((b) => [b.source, b.kind, b.reputation.toFixed(3), b.minReputation, b.rule]),
    );
  }
  out.write("\n");
  if (c.missingScans.length === 0) out.write("every version has the scans its sources require\n");
  else {
    out.write("versions lacking a required scan (export and training on them would be refused):\n");
    printTable(
      ["version", "missing detectors", "rule"],
      c.missingScans.map((m) => [
        m.version,
        m.missing.map((x) => x.detector).join(", "),
        m.missing[0]?.rule ?? "",
      ]),
    );
  }
  out.write("\n");
  if (c.decisions.length === 0) out.write("nothing would be quarantined\n");
  else {
    out.write(
      `would quarantine ${c.wouldQuarantine.samples} sample(s) and ${c.wouldQuarantine.sources} source(s):\n`,
    );
    printTable(
      ["rule", "subjects", "reason"],
      c.decisions.map((d) => [d.policy.rule, `${d.subjectIds.length} ${d.subjectType}(s)`, d.reason]),
    );
  }
}

function printApplied(r: ApplyResult, what: string): void {
  const out = process.stdout;
  if (r.adopted !== null)
    out.write(`adopted ${what} (event #${r.adopted.seq}, sha256 ${r.adopted.digest})\n`);
  else out.write(`${what} is already in force; nothing adopted\n`);
  if (r.decisions.length === 0) out.write("no new decisions\n");
  for (const d of r.decisions)
    out.write(`  quarantined ${d.subjects} ${d.subjectType}(s) under rule ${d.rule} (event #${d.seq})\n`);
}
