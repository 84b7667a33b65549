// `antidote ledger …`: check the ledger's integrity, publish its signed head, read its history
// and rotate its key. Everything but rotate-key and upgrade opens the ledger read-only.
import { chmod, copyFile, readFile, rename } from "node:fs/promises";
import type { Command } from "commander";
import { z } from "zod";
import { writeOutputFile } from "../../data/atomic-output.js";
import { AntidoteError } from "../../errors.js";
import {
  LEDGER_KEY_PASSPHRASE_ENV,
  parseLedgerPrivateKey,
  parseSignedTreeHead,
  signerFromPrivateKey,
  type LedgerSigner,
  type SignedTreeHead,
} from "../../ledger/index.js";
import { verifyStore } from "../../provenance/store.js";
import {
  addLedgerOption,
  addLedgerReadOption,
  printJson,
  withLedger,
  withLedgerReader,
} from "../ledger-options.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const verifyFlags = z.object({
  witness: z.string().min(1).optional(),
  deep: z.boolean().optional(),
  json: z.boolean().optional(),
});

const checkpointFlags = z.object({ out: z.string().min(1), force: z.boolean().optional() });

const rotateFlags = z.object({ newKey: z.string().min(1), install: z.boolean().optional() });

const logFlags = z.object({
  from: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().positive().default(50),
  json: z.boolean().optional(),
});

export function registerLedger(program: Command): void {
  const ledger = program
    .command("ledger")
    .description("Verify the ledger, publish and check its signed head, read its history, rotate its key");

  addLedgerReadOption(
    ledger
      .command("verify")
      .description(
        "Recompute every event hash, link and Merkle tree head, check every signed checkpoint and the\n" +
          "key rotations, replay the events to check the derived tables, and check the sample store\n" +
          "against the ledger; names the first bad event. Reads only: never writes, needs no key.\n" +
          "Exit 6 when anything fails, 7 when there is no ledger at --ledger.",
      )
      .option(
        "--witness <head.json>",
        "a head published earlier by `ledger checkpoint --out`: prove the ledger extends it",
      )
      .option(
        "--deep",
        "compare every sample record of every store file with the ledger (default: file digests)",
      )
      .option("--json", "print the report as JSON")
      .addHelpText(
        "after",
        `
Examples:
  antidote ledger verify
  antidote ledger checkpoint --out heads/$(date +%F).json     # publish today's head (a repo, CI artefact, another machine)
  antidote ledger verify --witness heads/2026-12-01.json      # the ledger still extends that head, unchanged`,
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(verifyFlags, flags);
    const witness = f.witness === undefined ? undefined : await readHead(f.witness);
    await withLedgerReader(flags, async (l) => {
      const report = await l.verify(witness === undefined ? {} : { witness });
      const store = await verifyStore(l, { deep: f.deep === true });
      const ok = report.ok && store.problems.length === 0;
      if (f.json) printJson({ location: l.location, ...report, ok, store });
      else if (ok)
        process.stdout.write(
          `ledger ${l.location}: OK — ${report.events} events, ${report.checkpoints} signed checkpoints, derived tables match` +
            `, tree head ${(report.root ?? "").slice(0, 16)}…` +
            (report.witness?.ok === true ? `, extends the witnessed head #${report.witness.seq}` : "") +
            `, sample store: ${store.checked} file(s) match${f.deep === true ? " record by record" : ""}` +
            (store.missing.length > 0 ? ` (${store.missing.length} pruned)` : "") +
            "\n",
        );
      if (!ok) {
        const first = report.firstBad
          ? `first bad event #${report.firstBad.seq}: ${report.firstBad.reason}`
          : "";
        const tables = report.tableMismatches.length
          ? `derived tables disagree: ${report.tableMismatches.join(", ")}`
          : "";
        const stored = store.problems.length
          ? `${store.problems.length} store file(s) do not match: ${store.problems[0]?.reason ?? ""}`
          : "";
        throw new AntidoteError(
          "LEDGER_TAMPERED",
          `ledger ${l.location} does not verify — ${[first, tables, stored].filter(Boolean).join("; ")}`,
        );
      }
    });
  });

  addLedgerReadOption(
    ledger
      .command("checkpoint")
      .description(
        "Write the ledger's latest signed tree head (seq, event hash, RFC 9162 Merkle root, signature and\n" +
          "the public key) to a file, to keep somewhere an attacker with the ledger directory cannot reach.\n" +
          "Reads only.",
      )
      .requiredOption("--out <head.json>", "where to write the head")
      .option("--force", "replace an existing file"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(checkpointFlags, flags);
    await withLedgerReader(flags, async (l) => {
      const head = await l.signedHead();
      if (head === undefined)
        throw new AntidoteError("NOT_FOUND", `ledger ${l.location} has no events, so no head to publish.`);
      await writeOutputFile(f.out, JSON.stringify(head, null, 2) + "\n", { overwrite: f.force === true });
      process.stdout.write(
        `head #${head.seq} (root ${head.root.slice(0, 16)}…, key ${head.keyId.slice(0, 16)}…) → ${f.out}\n`,
      );
    });
  });

  addLedgerOption(
    ledger
      .command("rotate-key")
      .description(
        "Hand the ledger to a new key: the current key signs an endorsement of the new one into the log,\n" +
          "and the new key signs from then on. Needs the current key (--ledger-key or $ANTIDOTE_LEDGER_KEY).",
      )
      .requiredOption("--new-key <path>", "the new private key (PEM; `antidote keygen --out NAME` makes one)")
      .option(
        "--install",
        "replace the ledger's key file with the new key once the rotation is recorded\n" +
          "(not with $ANTIDOTE_LEDGER_KEY: update that secret yourself)",
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(rotateFlags, flags);
    const next = await readNewKey(f.newKey);
    await withLedger(flags, async (l) => {
      const old = l.signer.keyId;
      await l.rotateKey(next);
      process.stdout.write(`ledger ${l.location}: key ${old.slice(0, 16)}… → ${next.keyId.slice(0, 16)}…\n`);
      if (f.install === true) {
        // Copied beside the key and renamed over it: the key file is never half-written.
        const temp = `${l.keyPath}.${process.pid}.tmp`;
        await copyFile(f.newKey, temp);
        await chmod(temp, 0o600);
        await rename(temp, l.keyPath);
        process.stdout.write(`  ${l.keyPath} now holds the new key\n`);
      } else
        process.stdout.write(`  from now on sign with ${f.newKey} (--ledger-key, or $ANTIDOTE_LEDGER_KEY)\n`);
    });
  });

  addLedgerOption(
    ledger
      .command("upgrade")
      .description("Bring a ledger written by an older Antidote to the current schema (reads never upgrade)"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedger(flags, (l) => {
      process.stdout.write(`ledger ${l.location}: schema up to date\n`);
      return Promise.resolve();
    });
  });

  addLedgerReadOption(
    ledger
      .command("log")
      .description("Print events in order (reads only)")
      .option("--from <seq>", "first event", "1")
      .option("--limit <n>", "events to print", "50")
      .option("--json", "print JSON lines, one event each"),
  ).action(async (flags: Record<string, unknown>) => {
    const f = parseFlags(logFlags, flags);
    await withLedgerReader(flags, async (l) => {
      const rows: (string | number)[][] = [];
      for await (const event of l.events(f.from)) {
        if (f.json) process.stdout.write(JSON.stringify(event) + "\n");
        else rows.push([event.seq, event.at, event.actor, event.kind, event.hash.slice(0, 16)]);
        if (event.seq >= f.from + f.limit - 1) break;
      }
      if (!f.json) printTable(["seq", "at", "actor", "kind", "hash"], rows);
    });
  });

  addLedgerReadOption(
    ledger
      .command("versions")
      .description("List dataset versions (reads only)")
      .option("--json", "print JSON"),
  ).action(async (flags: Record<string, unknown>) => {
    await withLedgerReader(flags, async (l) => {
      const versions = await l.listDatasetVersions();
      if (flags.json === true) return printJson(versions);
      printTable(
        ["version", "name", "samples", "parent", "made by", "at"],
        versions.map((v) => [
          v.version,
          v.name,
          v.sampleCount,
          v.parent ?? "—",
          v.transform.kind,
          v.createdAt,
        ]),
      );
    });
  });
}

async function readHead(path: string): Promise<SignedTreeHead> {
  const text = await readText(path);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: not JSON (expected a head written by \`antidote ledger checkpoint\`).`,
    );
  }
  return parseSignedTreeHead(value, path);
}

// --new-key is a file the user names: a wrong one is a bad input (exit 3), not an unreachable ledger.
async function readNewKey(path: string): Promise<LedgerSigner> {
  const pem = await readText(path);
  try {
    return signerFromPrivateKey(
      parseLedgerPrivateKey(pem, path, process.env[LEDGER_KEY_PASSPHRASE_ENV] || undefined),
    );
  } catch (e) {
    if (e instanceof AntidoteError)
      throw new AntidoteError("INPUT_FORMAT", `--new-key ${e.message}`, { cause: e });
    throw e;
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
    throw new AntidoteError(
      code === "ENOENT" ? "FILE_NOT_FOUND" : "INPUT_FORMAT",
      `${path}: ${code === "ENOENT" ? "no such file" : `cannot be read (${code || "error"})`}.`,
      { cause: e },
    );
  }
}
