// `antidote token …`: API tokens for `antidote serve`. `create` prints the secret once — the
// ledger keeps only its hash — and `list` never shows a secret. A shell over auth/tokens.ts.
import { Option, type Command } from "commander";
import { z } from "zod";
import { createToken, revokeToken } from "../../auth/tokens.js";
import { formatRole } from "../../auth/roles.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const createFlags = z.object({
  role: z.string().min(1),
  principal: z.string().min(1),
  expires: z.string().min(1).optional(),
  json: z.boolean().optional(),
});

export function registerToken(program: Command): void {
  const token = program
    .command("token")
    .description("Create, list and revoke API tokens for `antidote serve`");

  addLedgerOption(
    token
      .command("create")
      .description("Create an API token; its secret is printed once and cannot be shown again")
      .addOption(
        new Option(
          "--role <role>",
          "admin | analyst | reader | supplier:<source> | agent:<source>",
        ).makeOptionMandatory(),
      )
      .requiredOption("--principal <name>", "who the token is for (recorded as the actor of its requests)")
      .option("--expires <when>", "30d, 12h, 90m, or an ISO-8601 time (default: never)")
      .option("--json", "print JSON (the secret is in it: handle the output as a secret)")
      .addHelpText(
        "after",
        `
Roles:
  reader             read everything, change nothing
  analyst            read, quarantine/release, register models, run scans, audits and exports
  supplier:<source>  deliver as <source> only, and list its own deliveries
  agent:<source>     like supplier (telemetry comes later)
  admin              everything, including sources, keys and tokens

Examples:
  antidote token create --role admin --principal alice
  antidote token create --role supplier:acme --principal acme-ci --expires 90d`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(createFlags, flags);
    const { token: secret, grant } = await withLedger(flags, (ledger) =>
      createToken(ledger, { principal: f.principal, role: f.role, expires: f.expires }),
    );
    const { secretSha256: _, ...shown } = grant;
    if (f.json) return printJson({ ...shown, token: secret });
    process.stdout.write(
      `created token ${grant.tokenId} for ${grant.principal} (${formatRole(grant)}), ` +
        `${grant.expiresAt === null ? "never expires" : `expires ${grant.expiresAt}`}\n${secret}\n`,
    );
    process.stderr.write(
      "This secret is shown only once and cannot be recovered: store it now (a secret manager, not a file in git).\n",
    );
  });

  addLedgerReadOption(
    token.command("list").description("List API tokens (never their secrets)").option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (ledger) => {
      const tokens = (await ledger.listTokens()).map(({ secretSha256: _, ...t }) => t);
      if (flags.json === true) return printJson(tokens);
      if (tokens.length === 0) {
        process.stdout.write(
          "no tokens; make one with `antidote token create --role admin --principal NAME`\n",
        );
        return;
      }
      printTable(
        ["token", "principal", "role", "expires", "created", "revoked"],
        tokens.map((t) => [
          t.tokenId,
          t.principal,
          formatRole(t),
          t.expiresAt ?? "never",
          t.createdAt,
          t.revokedAt ?? "—",
        ]),
      );
    });
  });

  addLedgerOption(
    token
      .command("revoke")
      .argument("<token-id>", "the token's id (`antidote token list` shows them)")
      .requiredOption("--reason <text>", "why (recorded in the ledger)")
      .description("Revoke an API token: it is refused from the next request on"),
  ).action(async (tokenId: string, flags: Record<string, unknown>) => {
    const { token: revoked, alreadyRevoked } = await withLedger(flags, (ledger) =>
      revokeToken(ledger, tokenId, String(flags.reason)),
    );
    process.stdout.write(
      alreadyRevoked
        ? `token ${revoked.tokenId} was already revoked at ${revoked.revokedAt ?? "?"}; nothing written\n`
        : `revoked token ${revoked.tokenId} (${revoked.principal})\n`,
    );
  });
}
