// Writing a signed evidence pack: evidence.json, evidence.html, the OSCAL assessment results
// and (optionally) a PDF, plus evidence.intoto.dsse.json — a DSSE envelope, signed by the
// ledger's own key, over an in-toto statement whose subjects are those files with their
// SHA-256 and whose predicate names the ledger checkpoint the pack was built from. The whole
// directory is staged and renamed into place, so a reader never sees half a pack, and a pack
// whose evidence.json would not validate is never written.
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stageOutput } from "../data/atomic-output.js";
import { AntidoteError } from "../errors.js";
import type { LedgerSigner } from "../ledger/index.js";
import { signEnvelopeWith, type DsseEnvelope } from "../provenance/dsse.js";
import { evidenceHtml } from "./html.js";
import { oscalAssessmentResults } from "./oscal.js";
import { renderPdf } from "./pdf.js";
import { evidencePackSchema, type EvidencePack } from "./schema.js";

export const PACK_FILES = {
  json: "evidence.json",
  html: "evidence.html",
  oscal: "oscal-assessment-results.json",
  pdf: "evidence.pdf",
  envelope: "evidence.intoto.dsse.json",
} as const;

export const IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const EVIDENCE_PREDICATE_TYPE = "https://antidote.dev/attestations/evidence-pack/v1";
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

export interface EvidenceStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof EVIDENCE_PREDICATE_TYPE;
  predicate: {
    subject: string;
    checkpoint: { seq: number; hash: string; root: string; keyId: string };
  };
}

export interface WriteEvidenceOptions {
  /** Also render evidence.pdf with headless Chromium. */
  pdf?: boolean;
  /** Chromium's executable (default $ANTIDOTE_CHROMIUM or /usr/bin/chromium). */
  chromium?: string;
  /** Replace an existing pack directory. */
  overwrite?: boolean;
}

export interface WrittenPack {
  dir: string;
  files: { name: string; sha256: string; bytes: number }[];
  keyId: string;
}

/** Write `pack` into the directory `out` and sign it with the ledger's key. */
export async function writeEvidencePack(
  pack: EvidencePack,
  out: string,
  signer: LedgerSigner,
  options: WriteEvidenceOptions = {},
): Promise<WrittenPack> {
  const checked = evidencePackSchema.safeParse(pack);
  if (!checked.success)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `evidence pack: ${checked.error.issues[0]?.path.join(".") ?? ""}: ${checked.error.issues[0]?.message ?? "invalid"}. Nothing was written.`,
    );
  if (signer.keyId !== pack.checkpoint.keyId)
    throw new AntidoteError(
      "KEY_UNTRUSTED",
      `the pack's checkpoint is signed by key ${pack.checkpoint.keyId.slice(0, 16)}…, not by this ledger key (${signer.keyId.slice(0, 16)}…). Nothing was written.`,
    );
  const html = evidenceHtml(pack);
  const contents: [string, Buffer][] = [
    [PACK_FILES.json, Buffer.from(JSON.stringify(pack, null, 2) + "\n")],
    [PACK_FILES.html, Buffer.from(html)],
    [PACK_FILES.oscal, Buffer.from(JSON.stringify(oscalAssessmentResults(pack), null, 2) + "\n")],
  ];
  if (options.pdf === true) contents.push([PACK_FILES.pdf, await renderPdf(html, options.chromium)]);

  const statement: EvidenceStatement = {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: contents.map(([name, bytes]) => ({ name, digest: { sha256: sha256(bytes) } })),
    predicateType: EVIDENCE_PREDICATE_TYPE,
    predicate: {
      subject:
        pack.subject.type === "model" ? `model:${pack.subject.digest}` : `dataset:${pack.subject.version}`,
      checkpoint: {
        seq: pack.checkpoint.seq,
        hash: pack.checkpoint.hash,
        root: pack.checkpoint.root,
        keyId: pack.checkpoint.keyId,
      },
    },
  };
  const envelope: DsseEnvelope = await signEnvelopeWith(
    Buffer.from(JSON.stringify(statement)),
    IN_TOTO_PAYLOAD_TYPE,
    signer,
  );

  const staged = await stageOutput(out, { kind: "directory", overwrite: options.overwrite ?? false });
  try {
    await mkdir(staged.path, { recursive: true });
    for (const [name, bytes] of contents) await writeFile(join(staged.path, name), bytes);
    await writeFile(join(staged.path, PACK_FILES.envelope), JSON.stringify(envelope, null, 2) + "\n");
    await staged.commit();
  } catch (e) {
    await staged.abort();
    throw e;
  }
  return {
    dir: out,
    files: contents.map(([name, bytes]) => ({ name, sha256: sha256(bytes), bytes: bytes.length })),
    keyId: signer.keyId,
  };
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
