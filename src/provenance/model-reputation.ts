// The foundation-model reputation list: which models (by SHA-256) the team trusts to build on
// and which it does not, each with a reason, in the ledger. A base model's poisoning is
// inherited by every model fine-tuned from it, so the list is checked where that inheritance
// starts: `model register --base` refuses a distrusted base (and, with `requireTrustedBase`,
// any base not explicitly trusted), and a model that is itself distrusted is not registered.
// Trust can rest on a verified OpenSSF model signature: the publisher's key hint is recorded.
// The latest `model.reputation-set` event per digest is in force; nothing earlier is rewritten.
import { AntidoteError } from "../errors.js";
import type { Ledger, LedgerReader, ModelReputation } from "../ledger/types.js";
import { traceModel, type ModelLineage } from "./model-lineage.js";
import { readModelPublicKey, verifyModelSignature } from "./model-signing.js";
import { findModel, sha256File } from "./model.js";
import { appendOptions, type ActorOptions } from "./sources.js";

export interface ModelReputationRecord extends ModelReputation {
  /** The event that set it. */
  seq: number;
  at: string;
  actor: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Every model's reputation in force, by digest. */
export async function modelReputations(ledger: LedgerReader): Promise<Map<string, ModelReputationRecord>> {
  const out = new Map<string, ModelReputationRecord>();
  for (const e of await ledger.eventsOfKind("model.reputation-set"))
    out.set(e.payload.digest, { ...e.payload, seq: e.seq, at: e.at, actor: e.actor });
  return out;
}

export async function modelReputation(
  ledger: LedgerReader,
  digest: string,
): Promise<ModelReputationRecord | undefined> {
  return (await modelReputations(ledger)).get(digest);
}

export interface SetModelReputationInput {
  /** A full SHA-256 (the model need not be registered: foundation models often are not), or a
   * unique prefix of a registered model's digest. */
  digest: string;
  verdict: ModelReputation["verdict"];
  reason: string;
  publisher?: string | null;
}

export interface SetModelReputationResult {
  reputation: ModelReputationRecord;
  /** Registered models built on it (when it was distrusted, these inherit the suspicion). */
  lineage: ModelLineage | null;
}

export async function setModelReputation(
  ledger: Ledger,
  input: SetModelReputationInput,
  options: ActorOptions = {},
): Promise<SetModelReputationResult> {
  if (input.reason.trim() === "")
    throw new AntidoteError("USAGE", "model reputation: say why (the reason is recorded in the ledger).");
  const digest = await resolveDigest(ledger, input.digest);
  const [event] = await ledger.append(
    [
      {
        kind: "model.reputation-set",
        payload: { digest, verdict: input.verdict, reason: input.reason, publisher: input.publisher ?? null },
      },
    ],
    appendOptions(options),
  );
  if (event === undefined) throw new AntidoteError("INTERNAL", "the reputation event was not appended.");
  const registered = (await ledger.listModels()).some((m) => m.digest === digest);
  return {
    reputation: {
      digest,
      verdict: input.verdict,
      reason: input.reason,
      publisher: input.publisher ?? null,
      seq: event.seq,
      at: event.at,
      actor: event.actor,
    },
    lineage: registered ? await traceModel(ledger, digest) : null,
  };
}

/**
 * Trust a model file because its publisher signed it (OpenSSF model signing, key-based): the
 * signature is verified against the key and the file first; only then is the file's digest
 * recorded as trusted, with the publisher's key hint.
 */
export async function trustSignedModel(
  ledger: Ledger,
  input: { file: string; signature: string; publicKey: string; reason: string },
): Promise<SetModelReputationResult> {
  const key = await readModelPublicKey(input.publicKey);
  const verified = await verifyModelSignature(input.file, input.signature, key);
  if (verified.files.length !== 1 || verified.files[0]?.name !== ".")
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${input.file}: the signature covers ${verified.files.length} files; a model registered in the ledger is one file (its SHA-256 is its identity).`,
    );
  const digest = await sha256File(input.file);
  return setModelReputation(ledger, {
    digest,
    verdict: "trusted",
    reason: input.reason,
    publisher: verified.keyHint,
  });
}

/**
 * What `model register` checks: the model itself is not distrusted; its base (if any) is not
 * distrusted, and is explicitly trusted when `requireTrustedBase`.
 */
export async function checkModelReputation(
  ledger: LedgerReader,
  model: { digest: string; base: string | null; requireTrustedBase?: boolean },
): Promise<void> {
  const reputations = await modelReputations(ledger);
  const own = reputations.get(model.digest);
  if (own?.verdict === "distrusted")
    throw new AntidoteError(
      "FORBIDDEN",
      `model ${model.digest.slice(0, 16)} is distrusted (${own.reason}; ledger event #${own.seq}); it is not registered.`,
    );
  if (model.base === null) {
    if (model.requireTrustedBase === true)
      throw new AntidoteError(
        "USAGE",
        "a trusted base is required, but no base model was named (give --base, or drop --require-trusted-base).",
      );
    return;
  }
  const base = reputations.get(model.base);
  if (base?.verdict === "distrusted")
    throw new AntidoteError(
      "FORBIDDEN",
      `base model ${model.base.slice(0, 16)} is distrusted (${base.reason}; ledger event #${base.seq}): a model built on it is not registered.`,
    );
  if (model.requireTrustedBase === true && base?.verdict !== "trusted")
    throw new AntidoteError(
      "FORBIDDEN",
      `base model ${model.base.slice(0, 16)} is not on the trusted list (\`antidote model trust\`, e.g. after verifying its publisher's signature).`,
    );
}

async function resolveDigest(ledger: LedgerReader, digestOrPrefix: string): Promise<string> {
  const d = digestOrPrefix.toLowerCase();
  if (HEX64.test(d)) return d;
  if (!/^[0-9a-f]{8,63}$/.test(d))
    throw new AntidoteError(
      "USAGE",
      `"${digestOrPrefix.slice(0, 80)}" is not a SHA-256 digest or a prefix of one.`,
    );
  return findModel(await ledger.listModels(), d).digest;
}
