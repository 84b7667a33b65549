// `antidote evidence verify DIR`: does this pack say what the ledger says? Five steps, each
// refusing with the thing that failed named:
//   1. the envelope is signed by a key this ledger records as its own (a pack built from
//      another ledger, or re-signed by anyone else, stops here: KEY_UNTRUSTED);
//   2. every file the signed statement lists has the SHA-256 it lists (an edited claim, an
//      edited HTML: DIGEST_MISMATCH naming the file), and evidence.json is one of them;
//   3. evidence.json is a well-formed pack whose checkpoint is the one the statement signs;
//   4. the checkpoint is one this ledger has: its signature verifies under the ledger's key,
//      the ledger has at least that many events, and the RFC 9162 root over its first
//      `seq` event hashes is the checkpoint's root (a truncated or rewritten ledger fails);
//   5. every event the pack links is in the ledger with that hash, and the stored event still
//      re-hashes to it (a swapped hash or an event edited behind the ledger's back fails).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { AntidoteError, jsonSyntaxReason } from "../errors.js";
import { eventHashOfCanonical } from "../ledger/chain.js";
import { ledgerConnection } from "../ledger/index.js";
import { checkpointSignatureValid } from "../ledger/keys.js";
import { EMPTY_FRONTIER, extendFrontier, frontierRoot, leafHash } from "../ledger/tree.js";
import type { LedgerReader } from "../ledger/types.js";
import { verifyEnvelope, type DsseEnvelope } from "../provenance/dsse.js";
import {
  EVIDENCE_PREDICATE_TYPE,
  IN_TOTO_PAYLOAD_TYPE,
  IN_TOTO_STATEMENT_TYPE,
  PACK_FILES,
  sha256,
} from "./pack.js";
import { allEventLinks, evidencePackSchema, type EvidencePack } from "./schema.js";

export interface EvidenceVerification {
  ok: true;
  subject: string;
  keyId: string;
  checkpoint: { seq: number; root: string };
  files: string[];
  /** Distinct linked events checked against the ledger. */
  events: number;
}

const envelopeSchema = z.object({
  payload: z.string().min(1),
  payloadType: z.literal(IN_TOTO_PAYLOAD_TYPE),
  signatures: z.array(z.object({ keyid: z.string().default(""), sig: z.string().min(1) })).min(1),
});

const statementSchema = z.object({
  _type: z.literal(IN_TOTO_STATEMENT_TYPE),
  subject: z
    .array(
      z.object({
        name: z.string().regex(/^[A-Za-z0-9._-]+$/, "is not a plain file name"),
        digest: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
      }),
    )
    .min(1),
  predicateType: z.literal(EVIDENCE_PREDICATE_TYPE),
  predicate: z.object({
    subject: z.string(),
    checkpoint: z.object({ seq: z.number().int(), hash: z.string(), root: z.string(), keyId: z.string() }),
  }),
});

const PAGE = 10_000;

export async function verifyEvidencePack(dir: string, ledger: LedgerReader): Promise<EvidenceVerification> {
  const db = ledgerConnection(ledger);
  const keys = await db.selectFrom("ledger_keys").select(["key_id", "public_key_pem"]).execute();
  const trusted = keys.map((k) => ({ keyId: k.key_id, publicKeyPem: k.public_key_pem }));

  // 1. Who signed it.
  const envelopePath = join(dir, PACK_FILES.envelope);
  const envelope = parseJson(envelopeSchema, await readText(envelopePath), envelopePath) as DsseEnvelope;
  let signed: { keyId: string; payload: Buffer };
  try {
    signed = verifyEnvelope(envelope, trusted);
  } catch (e) {
    if (e instanceof AntidoteError)
      throw new AntidoteError(
        e.code,
        `${envelopePath}: ${e.message} The pack was not built from ledger ${ledger.location}, or was re-signed.`,
        { cause: e },
      );
    throw e;
  }
  const statement = parseJson(
    statementSchema,
    signed.payload.toString("utf8"),
    `${envelopePath} (signed statement)`,
  );

  // 2. The files are the signed ones.
  for (const s of statement.subject) {
    const path = join(dir, s.name);
    const bytes = await readBytes(path);
    if (sha256(bytes) !== s.digest.sha256)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${path}: its SHA-256 is not the one the signed statement lists: the file was changed after the pack was signed.`,
      );
  }
  if (!statement.subject.some((s) => s.name === PACK_FILES.json))
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${envelopePath}: the signed statement does not cover ${PACK_FILES.json}.`,
    );

  // 3. The pack, and the checkpoint it claims.
  const jsonPath = join(dir, PACK_FILES.json);
  const pack: EvidencePack = parseJson(evidencePackSchema, await readText(jsonPath), jsonPath);
  const cp = pack.checkpoint;
  const signedCp = statement.predicate.checkpoint;
  if (
    signedCp.seq !== cp.seq ||
    signedCp.root !== cp.root ||
    signedCp.hash !== cp.hash ||
    signedCp.keyId !== cp.keyId
  )
    throw new AntidoteError(
      "DIGEST_MISMATCH",
      `${jsonPath}: its checkpoint is not the one the signed statement names.`,
    );

  // 4. The checkpoint is this ledger's.
  const key = trusted.find((k) => k.keyId === cp.keyId);
  if (key === undefined || !checkpointSignatureValid({ ...cp }, key.publicKeyPem))
    throw new AntidoteError(
      "SIGNATURE_INVALID",
      `${jsonPath}: checkpoint #${cp.seq} is not signed by a key of ledger ${ledger.location}.`,
    );
  await checkTreeRoot(ledger, cp.seq, cp.root, cp.hash, jsonPath);

  // 5. Every linked event is in the ledger with that hash.
  const links = new Map<number, string>();
  for (const l of allEventLinks(pack)) {
    const seen = links.get(l.seq);
    if (seen !== undefined && seen !== l.hash)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${jsonPath}: event #${l.seq} is linked with two different hashes.`,
      );
    links.set(l.seq, l.hash);
  }
  const seqs = [...links.keys()].sort((a, b) => a - b);
  for (let i = 0; i < seqs.length; i += 5_000) {
    const rows = await db
      .selectFrom("events")
      .select(["seq", "at", "actor", "kind", "payload", "prev_hash", "hash"])
      .where("seq", "in", seqs.slice(i, i + 5_000))
      .execute();
    const bySeq = new Map(rows.map((r) => [r.seq, r]));
    for (const seq of seqs.slice(i, i + 5_000)) {
      const want = links.get(seq) as string;
      const row = bySeq.get(seq);
      if (seq > cp.seq || row === undefined)
        throw new AntidoteError(
          "LEDGER_TAMPERED",
          `${jsonPath}: linked event #${seq} is not in ledger ${ledger.location} at or before checkpoint #${cp.seq}.`,
        );
      if (row.hash !== want)
        throw new AntidoteError(
          "DIGEST_MISMATCH",
          `${jsonPath}: linked event #${seq} has hash ${want.slice(0, 16)}…, but the ledger's event #${seq} has ${row.hash.slice(0, 16)}….`,
        );
      const rehashed = eventHashOfCanonical(row.prev_hash, { ...row, payloadJson: row.payload });
      if (rehashed !== row.hash)
        throw new AntidoteError(
          "LEDGER_TAMPERED",
          `ledger ${ledger.location}: event #${seq}, linked by ${jsonPath}, no longer hashes to its stored hash: it was edited behind the ledger's back.`,
        );
    }
  }
  return {
    ok: true,
    subject: statement.predicate.subject,
    keyId: signed.keyId,
    checkpoint: { seq: cp.seq, root: cp.root },
    files: statement.subject.map((s) => s.name),
    events: links.size,
  };
}

// The RFC 9162 root over the first `size` event hashes, streamed in pages.
async function checkTreeRoot(
  ledger: LedgerReader,
  size: number,
  root: string,
  headHash: string,
  what: string,
): Promise<void> {
  const db = ledgerConnection(ledger);
  let frontier = EMPTY_FRONTIER;
  let last: string | undefined;
  for (let after = 0; after < size;) {
    const rows = await db
      .selectFrom("events")
      .select(["seq", "hash"])
      .where("seq", ">", after)
      .where("seq", "<=", size)
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r.seq !== frontier.size + 1)
        throw new AntidoteError(
          "LEDGER_TAMPERED",
          `ledger ${ledger.location}: event #${frontier.size + 1} is missing.`,
        );
      frontier = extendFrontier(frontier, leafHash(r.hash));
      last = r.hash;
      after = r.seq;
    }
  }
  if (frontier.size < size)
    throw new AntidoteError(
      "LEDGER_TAMPERED",
      `${what}: the pack's checkpoint is at #${size}, but ledger ${ledger.location} has only ${frontier.size} events: the ledger was truncated, or it is another ledger.`,
    );
  if (last !== headHash || frontierRoot(frontier).toString("hex") !== root)
    throw new AntidoteError(
      "LEDGER_TAMPERED",
      `${what}: ledger ${ledger.location} does not extend the pack's checkpoint #${size}: its tree root over the first ${size} events differs, so its history was rewritten.`,
    );
}

async function readText(path: string): Promise<string> {
  return (await readBytes(path)).toString("utf8");
}

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new AntidoteError(
      "FILE_NOT_FOUND",
      `${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? "error"}).`,
      {
        cause: e,
      },
    );
  }
}

function parseJson<T extends z.ZodType>(schema: T, text: string, what: string): z.output<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${what}: not JSON (${jsonSyntaxReason(e)}).`, { cause: e });
  }
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${what}: ${issue?.path.join(".") || "value"}: ${issue?.message ?? "invalid"}.`,
  );
}
