// `antidote source …`: register who may deliver data, with which keys, under which policy,
// and how far its history says to trust it (reputation, src/policy/reputation.ts). A shell over
// provenance/sources.ts and policy/, which the server shares.
import { Option, type Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { SOURCE_KINDS, type SourceKind } from "../../ledger/types.js";
import { readPublicKey } from "../../provenance/keys.js";
import { defaultRequireSignature } from "../../provenance/policy.js";
import { addSource, addSourceKey, revokeSourceKey } from "../../provenance/sources.js";
import {
  REPUTATION_HALF_LIFE_DAYS,
  reputationOf,
  sourceReputations,
  type SourceReputation,
} from "../../policy/index.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const addFlags = z.object({
  kind: z.enum(SOURCE_KINDS as [SourceKind, ...SourceKind[]]),
  key: z.array(z.string().min(1)).default([]),
  trust: z.coerce.number().min(0).max(1).default(0.5),
  requireSignature: z.boolean().optional(),
  json: z.boolean().optional(),
});

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerSource(program: Command): void {
  const source = program
    .command("source")
    .description("Register data sources (suppliers, contractors, crawls, FL clients, agents) and their keys");

  addLedgerOption(
    source
      .command("add")
      .argument("<name>", "a short, stable name for the source")
      .description("Register a source with its Ed25519 public key(s) and signature policy")
      .addOption(
        new Option("--kind <kind>", "what the source is").choices(SOURCE_KINDS).makeOptionMandatory(),
      )
      .option("--key <pub.pem>", "a public key made by `antidote keygen` (repeatable)", collect)
      .option("--trust <0..1>", "prior trust in this source", "0.5")
      .option(
        "--require-signature",
        "refuse unsigned deliveries (default for supplier, contractor, fl-client, agent)",
      )
      .option("--no-require-signature", "accept unsigned deliveries (default for web, foundation-model)")
      .option("--json", "print the result as JSON")
      .addHelpText(
        "after",
        `
Examples:
  antidote keygen --out acme                       # on the supplier's side: acme.key + acme.pub
  antidote source add acme --kind supplier --key acme.pub
  antidote source add crawl-2026 --kind web         # unsigned deliveries allowed for web crawls`,
      ),
  ).action(async (name: string, flags: Record<string, unknown>) => {
    const f = parseFlags(addFlags, flags);
    const keys = await Promise.all(f.key.map((k) => readPublicKey(k)));
    const requireSignature = f.requireSignature ?? defaultRequireSignature(f.kind);
    // Said in the CLI's terms here; the library says the same in its own.
    if (requireSignature && keys.length === 0)
      throw new AntidoteError(
        "USAGE",
        `--key: a ${f.kind} source requires signed deliveries, so it needs at least one public key (or pass --no-require-signature).`,
      );
    await withLedger(flags, async (ledger) => {
      const added = await addSource(ledger, {
        name,
        kind: f.kind,
        trust: f.trust,
        requireSignature,
        publicKeysPem: keys.map((k) => k.publicKeyPem),
      });
      if (f.json)
        printJson({
          name,
          kind: f.kind,
          requireSignature,
          keys: added.keys,
          ledger: ledger.location,
        });
      else
        process.stdout.write(
          `registered source "${name}" (${f.kind}; ${requireSignature ? "signed deliveries only" : "unsigned deliveries allowed"}) with ${added.keys.length} key(s)${added.keys.map((k) => `\n  key ${k}`).join("")}\n`,
        );
    });
  });

  addLedgerOption(
    source
      .command("add-key")
      .argument("<name>", "the source")
      .requiredOption("--key <pub.pem>", "the new public key")
      .description("Add a signing key to a source (key rotation: add the new key, then revoke the old one)"),
  ).action(async (name: string, flags: Record<string, unknown>) => {
    const key = await readPublicKey(String(flags.key));
    await withLedger(flags, async (ledger) => {
      const { keyId } = await addSourceKey(ledger, name, key.publicKeyPem);
      process.stdout.write(`added key ${keyId} to source "${name}"\n`);
    });
  });

  addLedgerOption(
    source
      .command("revoke-key")
      .argument("<name>", "the source")
      .argument("<key-id>", "the key id (`antidote source list` shows them; a unique prefix will do)")
      .requiredOption("--reason <text>", "why (recorded in the ledger)")
      .description("Revoke a source's key: deliveries signed with it are refused from now on"),
  ).action(async (name: string, keyId: string, flags: Record<string, unknown>) => {
    await withLedger(flags, async (ledger) => {
      const revoked = await revokeSourceKey(ledger, name, keyId, String(flags.reason)).catch((e: unknown) => {
        throw e instanceof AntidoteError && e.code === "USAGE"
          ? new AntidoteError("USAGE", `<key-id>: ${e.message}`, { cause: e })
          : e;
      });
      process.stdout.write(
        revoked.alreadyRevoked
          ? `key ${revoked.keyId} of source "${name}" was already revoked at ${revoked.revokedAt}; nothing written\n`
          : `revoked key ${revoked.keyId} of source "${name}"\n`,
      );
    });
  });

  addLedgerReadOption(
    source
      .command("list")
      .description("List registered sources, their keys and policy")
      .option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (ledger) => {
      const sources = await ledger.listSources();
      const reputation = new Map((await sourceReputations(ledger)).map((r) => [r.source, r.score]));
      if (flags.json === true)
        return printJson(sources.map((s) => ({ ...s, reputation: reputation.get(s.name) ?? null })));
      if (sources.length === 0) {
        process.stdout.write(
          "no sources registered; add one with `antidote source add NAME --kind … --key pub.pem`\n",
        );
        return;
      }
      printTable(
        ["source", "kind", "trust", "reputation", "signature", "keys (current / revoked)"],
        sources.map((s) => [
          s.name,
          s.kind,
          s.trust,
          reputation.get(s.name)?.toFixed(3) ?? "—",
          s.requireSignature ? "required" : "optional",
          `${
            s.keys
              .filter((k) => k.revokedAt === null)
              .map((k) => k.keyId.slice(0, 16))
              .join(" ") || "—"
          } / ${s.keys.filter((k) => k.revokedAt !== null).length}`,
        ]),
      );
    });
  });

  const showReputation = async (
    name: string,
    flags: Record<string, unknown>,
    why: boolean,
  ): Promise<void> => {
    await withLedgerReader(flags, async (ledger) => {
      const source = await ledger.getSource(name);
      const rep = await reputationOf(ledger, name);
      if (flags.json === true) return printJson({ ...source, reputation: rep });
      printReputation(rep, why);
    });
  };

  addLedgerReadOption(
    source
      .command("show")
      .argument("<name>", "the source")
      .description("One source: kind, prior trust and reputation (--why: the events that moved it)")
      .option("--why", "list the ledger events that moved its reputation")
      .option("--json", "print JSON (always with the events)"),
  ).action(async (name: string, flags: Record<string, unknown>) => {
    await showReputation(name, flags, flags.why === true);
  });

  addLedgerReadOption(
    source
      .command("reputation")
      .argument("<name>", "the source")
      .description("A source's reputation and the ledger events that moved it (as `source show --why`)")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: Record<string, unknown>) => {
    await showReputation(name, flags, true);
  });
}

function printReputation(r: SourceReputation, why: boolean): void {
  const out = process.stdout;
  out.write(
    `source "${r.source}" (${r.kind}): reputation ${r.score.toFixed(3)} — prior trust ${r.prior}, ` +
      `good evidence ${r.good.toFixed(2)}, bad ${r.bad.toFixed(2)} (half-life ${REPUTATION_HALF_LIFE_DAYS} days)` +
      `${r.lastIncidentAt === null ? "; no incident" : `; last incident ${r.lastIncidentAt}`}\n`,
  );
  if (!why) return;
  if (r.events.length === 0) {
    out.write("no event has moved it: it is the prior\n");
    return;
  }
  out.write("\n");
  printTable(
    ["event", "kind", "at", "evidence", "effect", "what"],
    r.events.map((e) => [
      e.seq === null ? "—" : `#${e.seq}`,
      e.kind,
      e.at,
      e.evidence.toFixed(3),
      `${e.effect >= 0 ? "+" : ""}${e.effect.toFixed(3)}`,
      e.detail,
    ]),
  );
}
