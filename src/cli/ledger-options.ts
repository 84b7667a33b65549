// `--ledger` for every command that reads or writes the ledger. The default is a SQLite
// file under .antidote/ in the working directory; ANTIDOTE_LEDGER sets a team default
// (for instance a postgres:// URL) without repeating it on every command.
import type { Command } from "commander";
import { openLedger, openLedgerReader } from "../ledger/index.js";
import type { Ledger, LedgerReader } from "../ledger/types.js";

export function addLedgerOption(cmd: Command): Command {
  return cmd
    .option(
      "--ledger <location>",
      "SQLite file or postgres://user@host:port/db (default: $ANTIDOTE_LEDGER or .antidote/ledger.db)",
    )
    .option(
      "--ledger-key <path>",
      "the ledger's signing key (default: $ANTIDOTE_LEDGER_KEY, else ledger-key.pem beside the ledger;\n" +
        "an encrypted key reads its passphrase from $ANTIDOTE_LEDGER_KEY_PASSPHRASE)",
    );
}

/** `--ledger` alone, for commands that only read: they never need, create or touch the key. */
export function addLedgerReadOption(cmd: Command): Command {
  return cmd.option(
    "--ledger <location>",
    "SQLite file or postgres://user@host:port/db (default: $ANTIDOTE_LEDGER or .antidote/ledger.db); opened read-only",
  );
}

/** Open an existing ledger read-only, run `fn`, and close it: nothing is created or written. */
export async function withLedgerReader<T>(
  flags: Record<string, unknown>,
  fn: (ledger: LedgerReader) => Promise<T>,
): Promise<T> {
  const location = ledgerLocation(flags);
  const ledger = await openLedgerReader(location === undefined ? {} : { location });
  try {
    return await fn(ledger);
  } finally {
    await ledger.close();
  }
}

function ledgerLocation(flags: Record<string, unknown>): string | undefined {
  const location = typeof flags.ledger === "string" ? flags.ledger : process.env.ANTIDOTE_LEDGER;
  return location !== undefined && location !== "" ? location : undefined;
}

/** Open the ledger the flags name, run `fn`, and close it whatever happens. */
export async function withLedger<T>(
  flags: Record<string, unknown>,
  fn: (ledger: Ledger) => Promise<T>,
): Promise<T> {
  const location = ledgerLocation(flags);
  const keyPath = typeof flags.ledgerKey === "string" ? flags.ledgerKey : undefined;
  const ledger = await openLedger({
    ...(location !== undefined ? { location } : {}),
    ...(keyPath !== undefined ? { keyPath } : {}),
  });
  try {
    return await fn(ledger);
  } finally {
    await ledger.close();
  }
}

let printedJson = false;

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
  printedJson = true;
}

/** Whether the command already wrote its JSON result (a failing `ledger verify --json` writes
 * its report, which says what failed): stdout then holds that one document, no error object. */
export function jsonWritten(): boolean {
  return printedJson;
}
