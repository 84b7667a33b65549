// `antidote source …`: register who may deliver data, with which keys, under which policy.
// A shell over provenance/sources.ts, which the server shares.
import { Option, type Command } from "commander";
import { z } from "zod";
import { AntidoteError } from "../../errors.js";
import { SOURCE_KINDS, type SourceKind } from "../../ledger/types.js";
import { readPublicKey } from "../../provenance/keys.js";
import { defaultRequireSignature } from "../../provenance/policy.js";
import { addSource, addSourceKey, revokeSourceKey } from "../../provenance/sources.js";
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
      if (flags.json === true) return printJson(sources);
      if (sources.length === 0) {
        process.stdout.write(
          "no sources registered; add one with `antidote source add NAME --kind … --key pub.pem`\n",
        );
        return;
      }
      printTable(
        ["source", "kind", "trust", "signature", "keys (current / revoked)"],
        sources.map((s) => [
          s.name,
          s.kind,
          s.trust,
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
}
