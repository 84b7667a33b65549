// The receiver's side of a delivery: recompute every file digest and every sample digest
// and compare them with what the (already verified) statement promises. Pure: nothing is
// written anywhere; the caller decides what to keep (ingest stages the matched samples and
// drops them if anything fails later). A v2 statement's samples are in a manifest file
// (sample-manifest.ts): it is checked whole first (bytes, count, root), then streamed in
// lockstep with the data, so a 10M-sample delivery is matched in bounded memory.
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
  deliveredFiles,
  expectedSampleManifest,
  type DeliveryStatement,
  type ProgressPhase,
} from "./manifest.js";
import { merkleRoot } from "./merkle.js";
import {
  readSampleManifest,
  sampleManifestPathFor,
  verifySampleManifest,
  type ExpectedSampleManifest,
} from "./sample-manifest.js";

export interface VerifiedDelivery {
  statement: DeliveryStatement;
  statementDigest: string;
  /** The key that signed the statement, or null when it was not signed. */
  keyId: string | null;
  files: FileDigest[];
  samples: { id: string; digest: string }[];
  /** Samples matched (also when `keepSamples: false` left `samples` empty). */
  sampleCount: number;
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
  /**
   * The sample manifest file of a v2 statement that names one. Default with
   * `verifySignedDelivery`: beside the signature (`sampleManifestPathFor`).
   */
  sampleManifest?: string;
  /**
   * False: do not return the matched samples of a manifest delivery (only their count), so a
   * 10M-sample delivery is verified without holding 10M objects. Default true.
   */
  keepSamples?: boolean;
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
): Promise<{ files: FileDigest[]; samples: { id: string; digest: string }[]; sampleCount: number }> {
  checkStatementConsistency(statement);
  const manifest = expectedSampleManifest(statement);
  const files = await verifyFiles(target, statement, options);
  if (manifest !== null) {
    if (options.sampleManifest === undefined)
      throw new AntidoteError(
        "FILE_NOT_FOUND",
        `the statement lists its samples in a manifest file (subject "${statement.predicate.sampleManifest?.subject ?? ""}") and none was given; pass it with the bundle (--samples FILE).`,
      );
    await verifySampleManifest(options.sampleManifest, manifest);
    const matched = await matchManifest(target, options.sampleManifest, manifest, options);
    return { files, ...matched };
  }
  const samples = await verifySamples(target, statement, options);
  return { files, samples, sampleCount: samples.length };
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
  const verified = await verifyDelivery(target, opened.statement, {
    ...options,
    sampleManifest: options.sampleManifest ?? sampleManifestPathFor(signaturePath),
  });
  return { ...opened, ...verified };
}

// ---------------------------------------------------------------------------------------

async function verifyFiles(
  target: string,
  statement: DeliveryStatement,
  options: VerifyDeliveryOptions,
): Promise<FileDigest[]> {
  const { single, files } = await listDeliveryFiles(target);
  // The sample manifest travels beside the bundle, not among the delivered files.
  const subjects = deliveredFiles(statement);

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

/**
 * The samples of a v2 delivery, matched against its (already verified) manifest line by line
 * in read order. The manifest is streamed again, and checked again at its end, so a file
 * swapped between the two reads is still caught.
 */
async function matchManifest(
  target: string,
  path: string,
  expected: ExpectedSampleManifest,
  options: VerifyDeliveryOptions,
): Promise<{ samples: { id: string; digest: string }[]; sampleCount: number }> {
  const out: { id: string; digest: string }[] = [];
  const keep = options.keepSamples !== false;
  let n = 0;
  const progress = (done: number) => options.onProgress?.("samples", done, expected.count);
  const entries = readSampleManifest(path, expected);
  // A manifest that fails mid-stream says so itself; only the data's failures get the read hint.
  let manifestFailure: unknown;
  const nextEntry = () =>
    entries.next().catch((e: unknown) => {
      manifestFailure = e;
      throw e;
    });
  let dataset: Dataset;
  try {
    dataset = await openDataset(target, options.readOptions);
  } catch (e) {
    throw notReadable(e, target, expected.count);
  }
  try {
    for await (const s of dataset.samples()) {
      const next = await nextEntry();
      if (next.done === true)
        throw mismatch(`sample "${s.id}": present in ${target} but not in the manifest.`);
      const want = next.value;
      if (want.id !== s.id)
        throw mismatch(
          `sample "${s.id}": sample ${n + 1} read from ${target}, but the manifest lists "${want.id}" there.`,
        );
      if (want.digest !== s.digest)
        throw mismatch(
          `sample "${s.id}": digest ${short(s.digest)} but the manifest says ${short(want.digest)}.`,
        );
      await options.onSample?.(s);
      if (keep) out.push({ id: s.id, digest: s.digest });
      if (++n % 1000 === 0) progress(n);
    }
    const rest = await nextEntry();
    if (rest.done !== true)
      throw mismatch(`sample "${rest.value.id}": listed in the manifest but missing from ${target}.`);
  } catch (e) {
    if (e !== manifestFailure) await entries.throw(e).catch(() => undefined);
    if (e === manifestFailure || (isAntidoteError(e) && e.code === "DIGEST_MISMATCH")) throw e;
    throw notReadable(e, target, expected.count);
  }
  progress(n);
  return { samples: out, sampleCount: n };
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
  if (p.sampleManifest !== undefined && p.sampleManifest !== null) {
    if (p.samples !== null)
      throw new AntidoteError(
        "INPUT_FORMAT",
        "the statement lists samples inline AND names a sample manifest; which one holds is ambiguous, so it is refused.",
      );
    if (!names.has(p.sampleManifest.subject))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `the statement names the sample manifest "${p.sampleManifest.subject}" but has no subject of that name.`,
      );
    if (p.sampleCount === null || p.sampleCount < 1 || p.sampleMerkleRoot === null)
      throw mismatch(
        "the statement names a sample manifest but gives no sample count or sample Merkle root.",
      );
    return;
  }
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
