// The receiver's side of a delivery: recompute every file digest and every sample digest
// and compare them with what the (already verified) statement promises. Pure: nothing is
// written anywhere; the caller decides what to keep (ingest stages the matched samples and
// drops them if anything fails later).
import type { Dataset } from "../data/dataset.js";
import { openDataset, type OpenOptions } from "../data/open.js";
import type { Sample } from "../data/sample.js";
import { AntidoteError, isAntidoteError } from "../errors.js";
import { openStatement, readSignature } from "./bundle.js";
import { hashFiles, type FileDigest } from "./hash-files.js";
import type { TrustedKey } from "./keys.js";
import {
  compareNames,
  listDeliveryFiles,
  openDeliveryDataset,
  readableAsFiles,
  type DeliveryStatement,
  type ProgressPhase,
} from "./manifest.js";
import { merkleRoot } from "./merkle.js";

export interface VerifiedDelivery {
  statement: DeliveryStatement;
  statementDigest: string;
  /** The key that signed the statement, or null when it was not signed. */
  keyId: string | null;
  files: FileDigest[];
  samples: { id: string; digest: string }[];
}

export interface VerifyDeliveryOptions {
  readOptions?: OpenOptions;
  /** Hashing threads (default: every core). */
  threads?: number;
  /**
   * Called, in read order, for each sample whose digest matches the statement (every sample
   * when the statement lists none: the file digests already vouch for them). A later
   * mismatch still fails the whole delivery, so callers must treat these as provisional.
   */
  onSample?: (sample: Sample) => Promise<void>;
  onProgress?: (phase: ProgressPhase, done: number, total: number) => void;
}

/**
 * Check that `target` is exactly what `statement` describes. Throws DIGEST_MISMATCH naming
 * the first file (in manifest order) that differs, is missing or is not in the manifest,
 * then the first sample (in read order) that differs or is not in the manifest, then the
 * first manifest sample that never appeared. `files[].path` are the manifest's names.
 */
export async function verifyDelivery(
  target: string,
  statement: DeliveryStatement,
  options: VerifyDeliveryOptions = {},
): Promise<{ files: FileDigest[]; samples: { id: string; digest: string }[] }> {
  checkStatementConsistency(statement);
  const files = await verifyFiles(target, statement, options);
  const samples = await verifySamples(target, statement, options);
  return { files, samples };
}

/** Read a signature file, verify it against `trusted`, then verify the delivery it describes. */
export async function verifySignedDelivery(
  target: string,
  signaturePath: string,
  trusted: readonly TrustedKey[],
  options: VerifyDeliveryOptions = {},
): Promise<VerifiedDelivery> {
  const envelope = await readSignature(signaturePath);
  let opened: ReturnType<typeof openStatement>;
  try {
    opened = openStatement(envelope, trusted);
  } catch (e) {
    if (isAntidoteError(e)) throw new AntidoteError(e.code, `${signaturePath}: ${e.message}`, { cause: e });
    throw e;
  }
  const { files, samples } = await verifyDelivery(target, opened.statement, options);
  return { ...opened, files, samples };
}

// ---------------------------------------------------------------------------------------

async function verifyFiles(
  target: string,
  statement: DeliveryStatement,
  options: VerifyDeliveryOptions,
): Promise<FileDigest[]> {
  const { single, files } = await listDeliveryFiles(target);
  const subjects = statement.subject;

  // A single delivered file may have been saved under another name: its content is what counts.
  if (single && subjects.length === 1 && files.length === 1) {
    const subject = subjects[0]!;
    const file = files[0]!;
    const [digest] = await hashFiles([file.path], hashOptions(options));
    if (digest === undefined || digest.sha256 !== subject.digest.sha256)
      throw mismatch(
        `${target}: sha256 ${short(digest?.sha256 ?? "")} but the manifest says ${short(subject.digest.sha256)} (for "${subject.name}").`,
      );
    return [{ path: subject.name, sha256: digest.sha256, size: digest.size }];
  }

  const onDisk = new Map(files.map((f) => [f.name, f.path]));
  const present = subjects.filter((s) => onDisk.has(s.name));
  const digests = await hashFiles(
    present.map((s) => onDisk.get(s.name) ?? ""),
    hashOptions(options),
  );
  const hashed = new Map(present.map((s, i) => [s.name, digests[i]]));
  const listed = new Set(subjects.map((s) => s.name));

  // Walk the union of names in order so the first problem reported is the first by name.
  const names = [...new Set([...listed, ...onDisk.keys()])].sort(compareNames);
  const expected = new Map(subjects.map((s) => [s.name, s.digest.sha256]));
  for (const name of names) {
    const want = expected.get(name);
    const got = hashed.get(name);
    if (want === undefined) throw mismatch(`${name}: present in ${target} but not in the manifest.`);
    if (got === undefined) throw mismatch(`${name}: listed in the manifest but missing from ${target}.`);
    if (got.sha256 !== want)
      throw mismatch(`${name}: sha256 ${short(got.sha256)} but the manifest says ${short(want)}.`);
  }
  return subjects.map((s) => {
    const d = hashed.get(s.name)!;
    return { path: s.name, sha256: d.sha256, size: d.size };
  });
}

async function verifySamples(
  target: string,
  statement: DeliveryStatement,
  options: VerifyDeliveryOptions,
): Promise<{ id: string; digest: string }[]> {
  const listed = statement.predicate.samples;
  const out: { id: string; digest: string }[] = [];
  const total = statement.predicate.sampleCount ?? 0;
  const progress = (n: number) => options.onProgress?.("samples", n, total);

  if (listed === null) {
    // Files only were promised; if the content reads as a dataset, hand its samples on.
    const dataset = await openDeliveryDataset(target, options.readOptions);
    if (dataset === undefined) return out;
    try {
      for await (const s of dataset.samples()) {
        await options.onSample?.(s);
        out.push({ id: s.id, digest: s.digest });
        if (out.length % 1000 === 0) progress(out.length);
      }
    } catch (e) {
      // Not a dataset after all (as `sign` concluded) — unless samples were already handed on.
      if (out.length === 0 && readableAsFiles(e, options.readOptions)) return out;
      throw e;
    }
    progress(out.length);
    return out;
  }

  // Sample ids should be unique, but a supplier's id column may repeat one: keep each id's
  // digests in read order and match them off one by one.
  const expected = new Map<string, string[]>();
  for (const s of listed) {
    const q = expected.get(s.id);
    if (q === undefined) expected.set(s.id, [s.digest]);
    else q.push(s.digest);
  }
  let dataset: Dataset;
  try {
    dataset = await openDataset(target, options.readOptions);
  } catch (e) {
    throw notReadable(e, target, listed.length);
  }
  try {
    for await (const s of dataset.samples()) {
      const q = expected.get(s.id);
      const want = q?.shift();
      if (want === undefined)
        throw mismatch(`sample "${s.id}": present in ${target} but not in the manifest.`);
      if (want !== s.digest)
        throw mismatch(`sample "${s.id}": digest ${short(s.digest)} but the manifest says ${short(want)}.`);
      await options.onSample?.(s);
      out.push({ id: s.id, digest: s.digest });
      if (out.length % 1000 === 0) progress(out.length);
    }
  } catch (e) {
    if (isAntidoteError(e) && e.code === "DIGEST_MISMATCH") throw e;
    throw notReadable(e, target, listed.length);
  }
  progress(out.length);
  if (out.length < listed.length) {
    const missing = listed.find((s) => (expected.get(s.id)?.length ?? 0) > 0);
    throw mismatch(`sample "${missing?.id ?? "?"}": listed in the manifest but missing from ${target}.`);
  }
  return out;
}

/** A statement whose own roots and counts disagree with its lists was not made by `sign`. */
function checkStatementConsistency(statement: DeliveryStatement): void {
  const p = statement.predicate;
  const names = new Set<string>();
  for (const s of statement.subject) {
    if (names.has(s.name))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `the manifest lists "${s.name}" twice; it is not a valid delivery statement.`,
      );
    names.add(s.name);
  }
  const root = merkleRoot(statement.subject.map((s) => s.digest.sha256));
  if (root !== p.merkleRoot)
    throw mismatch(
      `the manifest's merkleRoot ${short(p.merkleRoot)} does not match its own ${statement.subject.length} subjects (${short(root)}).`,
    );
  if (p.samples === null) {
    if (p.sampleCount !== null || p.sampleMerkleRoot !== null)
      throw mismatch("the manifest gives a sample count or sample Merkle root but lists no samples.");
    return;
  }
  if (p.sampleCount !== p.samples.length)
    throw mismatch(
      `the manifest's sampleCount ${p.sampleCount} does not match the ${p.samples.length} samples it lists.`,
    );
  const sampleRoot = merkleRoot(p.samples.map((s) => s.digest).sort());
  if (sampleRoot !== p.sampleMerkleRoot)
    throw mismatch(
      `the manifest's sampleMerkleRoot ${short(p.sampleMerkleRoot ?? "null")} does not match the samples it lists (${short(sampleRoot)}).`,
    );
}

function hashOptions(options: VerifyDeliveryOptions): Parameters<typeof hashFiles>[1] {
  return {
    ...(options.threads !== undefined && { threads: options.threads }),
    onProgress: (done, total) => options.onProgress?.("files", done, total),
  };
}

function notReadable(e: unknown, target: string, listed: number): unknown {
  if (!isAntidoteError(e)) return e;
  return new AntidoteError(
    e.code,
    `${target}: the manifest lists ${listed} samples, but reading them failed (pass the read options the supplier signed with): ${e.message}`,
    { cause: e },
  );
}

function mismatch(message: string): AntidoteError {
  return new AntidoteError("DIGEST_MISMATCH", message);
}

function short(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 16)}…` : hex;
}
