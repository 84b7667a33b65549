// The manifest of a delivery: an in-toto Statement v1 whose subjects are the delivered files
// (name + SHA-256) and whose predicate adds the Merkle root over them and, when the delivery
// is a dataset Antidote can read, every sample's id and content digest. Signing the
// statement (bundle.ts) therefore binds the exact bytes and the exact samples received.
//
// Two predicate versions. v1 lists the samples inline (`predicate.samples`): ~92 bytes a
// sample, fine for thousands, a ~1 GB bundle for 10M. v2 may instead name a sample manifest
// file (sample-manifest.ts) that is itself a subject: the predicate then carries only the
// count and a Merkle root over it, and the bundle stays a few KB. Both are read and verified;
// `buildStatement` writes v1 unless given a manifest path.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";
import canonicalize from "canonicalize";
import { z } from "zod";
import { resolveBuiltin } from "../data/builtin.js";
import type { Dataset } from "../data/dataset.js";
import { openDataset, type OpenOptions } from "../data/open.js";
import { AntidoteError, isAntidoteError, type AntidoteErrorCode } from "../errors.js";
import { VERSION } from "../version.js";
import { hashFiles } from "./hash-files.js";
import { merkleRoot } from "./merkle.js";
import {
  MAX_BLOCK_SIZE,
  SAMPLE_MANIFEST_FORMAT,
  SAMPLE_MANIFEST_SUBJECT,
  SampleManifestWriter,
  type ExpectedSampleManifest,
} from "./sample-manifest.js";

export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const DELIVERY_PREDICATE_TYPE = "https://antidote.dev/attestations/delivery/v1";
export const DELIVERY_PREDICATE_TYPE_V2 = "https://antidote.dev/attestations/delivery/v2";

/** Where a v2 statement's samples are listed: a subject file in sample-manifest.ts's format. */
export interface SampleManifestRef {
  /** The subject that is the manifest (always SAMPLE_MANIFEST_SUBJECT). */
  subject: string;
  format: typeof SAMPLE_MANIFEST_FORMAT;
  /** Samples per Merkle leaf. */
  blockSize: number;
}

export interface DeliveryStatement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof DELIVERY_PREDICATE_TYPE | typeof DELIVERY_PREDICATE_TYPE_V2;
  predicate: {
    /** Merkle root (merkle.ts) over the subjects' digests, in subject order (the manifest included). */
    merkleRoot: string;
    /**
     * Inline samples: Merkle root over the sorted sample digests. With a sample manifest: the
     * manifest's block Merkle root, in read order (sample-manifest.ts). Null when the delivery
     * is not a readable dataset.
     */
    sampleMerkleRoot: string | null;
    sampleCount: number | null;
    /** Every sample in read order; null when the delivery is not a readable dataset or they are in a manifest. */
    samples: { id: string; digest: string }[] | null;
    /** v2 only: the samples are listed in this subject file instead. */
    sampleManifest?: SampleManifestRef | null;
    createdAt: string;
    tool: { name: "antidote"; version: string };
  };
}

export type ProgressPhase = "files" | "samples";

export interface BuildStatementOptions {
  /** How to read the target as a dataset (columns, format, split …). */
  readOptions?: OpenOptions;
  /** Hashing threads (default: every core). */
  threads?: number;
  /** Files: bytes hashed of total bytes; samples: samples read of the count (0 when not known up front). */
  onProgress?: (phase: ProgressPhase, done: number, total: number) => void;
  /** Fixed creation time (ISO 8601), e.g. to make an unsigned receiver-side statement reproducible. */
  createdAt?: string;
  /** Called when the target is not read as a dataset, with why (the statement then lists files only). */
  onNotDataset?: (reason: AntidoteError) => void;
  /**
   * Write the samples to a manifest file here (written atomically; replaced only with
   * `force`) and make a v2 statement naming it, instead of listing them inline (v1).
   */
  sampleManifest?: { path: string; force?: boolean; inputs?: string[] };
}

/** Hash every delivered file and, when the target is a readable dataset, every sample. */
export async function buildStatement(
  target: string,
  options: BuildStatementOptions = {},
): Promise<DeliveryStatement> {
  const { files } = await listDeliveryFiles(target);
  if (options.sampleManifest !== undefined && files.some((f) => f.name === SAMPLE_MANIFEST_SUBJECT))
    throw new AntidoteError(
      "USAGE",
      `${target}: holds a file named "${SAMPLE_MANIFEST_SUBJECT}", the name reserved for the sample manifest; rename it or sign with --inline-samples.`,
    );
  const digests = await hashFiles(
    files.map((f) => f.path),
    {
      ...(options.threads !== undefined && { threads: options.threads }),
      onProgress: (done, total) => options.onProgress?.("files", done, total),
    },
  );
  const subject = files.map((f, i) => ({ name: f.name, digest: { sha256: digests[i]?.sha256 ?? "" } }));

  let samples: { id: string; digest: string }[] | null = null;
  let manifest: ExpectedSampleManifest | null = null;
  const dataset = await openDeliveryDataset(target, options.readOptions, options.onNotDataset);
  if (dataset !== undefined) {
    const read: { id: string; digest: string }[] = [];
    const spec = options.sampleManifest;
    const writer =
      spec === undefined
        ? undefined
        : await SampleManifestWriter.open(spec.path, {
            overwrite: spec.force === true,
            inputs: [target, ...(spec.inputs ?? [])],
          });
    const total = dataset.info.count ?? 0;
    let n = 0;
    let unlistable: unknown;
    try {
      for await (const s of dataset.samples()) {
        if (writer === undefined) read.push({ id: s.id, digest: s.digest });
        else
          await writer.add(s.id, s.digest).catch((e: unknown) => {
            unlistable = e; // an id the manifest cannot hold: the dataset reads, so this is no "not a dataset"
            throw e;
          });
        if (++n % 1000 === 0) options.onProgress?.("samples", n, total);
      }
      options.onProgress?.("samples", n, total);
      if (n === 0) {
        await writer?.abort();
        options.onNotDataset?.(new AntidoteError("INPUT_FORMAT", `${target}: holds no samples.`));
      } else if (writer === undefined) samples = read;
      else {
        const written = await writer.close();
        manifest = written;
        subject.push({ name: SAMPLE_MANIFEST_SUBJECT, digest: { sha256: written.sha256 } });
      }
    } catch (e) {
      await writer?.abort();
      if (!readableAsFiles(e, options.readOptions) || n > 0 || e === unlistable) throw e;
      options.onNotDataset?.(e);
    }
  }

  const withManifest = options.sampleManifest !== undefined;
  return {
    _type: STATEMENT_TYPE,
    subject,
    predicateType: withManifest ? DELIVERY_PREDICATE_TYPE_V2 : DELIVERY_PREDICATE_TYPE,
    predicate: {
      merkleRoot: merkleRoot(subject.map((s) => s.digest.sha256)),
      sampleMerkleRoot:
        manifest !== null
          ? manifest.merkleRoot
          : samples === null
            ? null
            : merkleRoot(samples.map((s) => s.digest).sort()),
      sampleCount: manifest?.count ?? samples?.length ?? null,
      samples,
      ...(withManifest && {
        sampleManifest:
          manifest === null
            ? null
            : {
                subject: SAMPLE_MANIFEST_SUBJECT,
                format: SAMPLE_MANIFEST_FORMAT,
                blockSize: manifest.blockSize,
              },
      }),
      createdAt: options.createdAt ?? new Date().toISOString(),
      tool: { name: "antidote", version: VERSION },
    },
  };
}

/** The delivered files a statement lists: its subjects less its sample manifest. */
export function deliveredFiles(statement: DeliveryStatement): DeliveryStatement["subject"] {
  const manifest = statement.predicate.sampleManifest?.subject;
  return manifest === undefined ? statement.subject : statement.subject.filter((s) => s.name !== manifest);
}

/** What a statement promises about its sample manifest, or null when it lists samples inline or none. */
export function expectedSampleManifest(statement: DeliveryStatement): ExpectedSampleManifest | null {
  const p = statement.predicate;
  const ref = p.sampleManifest;
  if (ref === undefined || ref === null) return null;
  const subject = statement.subject.find((s) => s.name === ref.subject);
  if (subject === undefined || p.sampleCount === null || p.sampleMerkleRoot === null)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `the statement names the sample manifest "${ref.subject}" but lacks its subject, sampleCount or sampleMerkleRoot.`,
    );
  return {
    sha256: subject.digest.sha256,
    count: p.sampleCount,
    merkleRoot: p.sampleMerkleRoot,
    blockSize: ref.blockSize,
  };
}

/** Hex SHA-256 of the statement's RFC 8785 canonical JSON: the delivery's identity. */
export function statementDigest(statement: DeliveryStatement): string {
  return createHash("sha256").update(canonicalStatement(statement)).digest("hex");
}

/** RFC 8785 canonical JSON of a statement, as UTF-8 bytes (the payload that gets signed). */
export function canonicalStatement(statement: DeliveryStatement): Buffer {
  let text: string | undefined;
  try {
    text = canonicalize(statement);
  } catch (e) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `the delivery statement cannot be written as canonical JSON (${e instanceof Error ? e.message : String(e)}).`,
      { cause: e },
    );
  }
  if (text === undefined) throw new AntidoteError("INTERNAL", "canonical JSON of the statement is empty.");
  return Buffer.from(text, "utf8");
}

// ── validation of statements received from others ─────────────────────────────────────

/** More samples than any delivery holds (10^12): a count past it is refused unread. */
export const MAX_SAMPLE_COUNT = 1e12;

const HEX_SHA256 = z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex SHA-256 digest");

// Loose objects keep fields we do not know (a newer tool's additions, other digest
// algorithms), so the digest of a parsed statement is the digest of what was signed.
export const deliveryStatementSchema = z.looseObject({
  _type: z.literal(STATEMENT_TYPE),
  subject: z.array(
    z.looseObject({
      name: z.string().min(1),
      digest: z.looseObject({ sha256: HEX_SHA256 }),
    }),
  ),
  predicateType: z.enum([DELIVERY_PREDICATE_TYPE, DELIVERY_PREDICATE_TYPE_V2]),
  predicate: z.looseObject({
    merkleRoot: HEX_SHA256,
    sampleMerkleRoot: HEX_SHA256.nullable(),
    sampleCount: z.number().int().nonnegative().max(MAX_SAMPLE_COUNT, "is absurdly large").nullable(),
    samples: z.array(z.looseObject({ id: z.string(), digest: HEX_SHA256 })).nullable(),
    sampleManifest: z
      .looseObject({
        subject: z.literal(SAMPLE_MANIFEST_SUBJECT),
        format: z.literal(SAMPLE_MANIFEST_FORMAT),
        blockSize: z.number().int().min(1).max(MAX_BLOCK_SIZE),
      })
      .nullable()
      .optional(),
    createdAt: z.string().min(1),
    tool: z.looseObject({ name: z.literal("antidote"), version: z.string() }),
  }),
});

/** Validate a parsed statement; the message names `where` and the field at fault. */
export function parseStatement(value: unknown, where: string): DeliveryStatement {
  const r = deliveryStatementSchema.safeParse(value);
  if (r.success) {
    const p = r.data.predicate;
    if (p.sampleManifest !== undefined && r.data.predicateType === DELIVERY_PREDICATE_TYPE)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${where}: statement.predicate.sampleManifest: a v1 delivery predicate cannot name a sample manifest.`,
      );
    if (p.sampleManifest != null && p.samples !== null)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${where}: statement.predicate: lists samples inline AND names a sample manifest; which one holds is ambiguous, so it is refused.`,
      );
    return r.data;
  }
  const issue = r.error.issues[0];
  const field =
    issue === undefined
      ? ""
      : issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${where}: statement${field}: ${issue?.message ?? "invalid"} (not an Antidote delivery statement).`,
  );
}

// ── what a target is made of (shared with delivery.ts) ───────────────────────────────

export interface DeliveryFile {
  /** Name in the manifest: the base name of a single file, else the path relative to the root with "/". */
  name: string;
  /** Where it is on disk. */
  path: string;
}

/**
 * The files of a target: the file itself, every regular file under a directory (hidden ones
 * included, symbolic links not followed), or the files of a bundled dataset. Sorted by name.
 */
export async function listDeliveryFiles(target: string): Promise<{ single: boolean; files: DeliveryFile[] }> {
  const root = existsSync(target) ? target : (resolveBuiltin(target)?.path ?? target);
  const info = await stat(root).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT")
      throw new AntidoteError(
        "FILE_NOT_FOUND",
        `${target}: no such file or directory, and not a bundled dataset (see \`antidote datasets\`).`,
      );
    throw new AntidoteError("INPUT_FORMAT", `${target}: cannot read it (${e.message}).`, { cause: e });
  });
  if (info.isFile()) return { single: true, files: [{ name: basename(root), path: root }] };
  if (!info.isDirectory())
    throw new AntidoteError("INPUT_FORMAT", `${target}: neither a file nor a directory.`);
  const files: DeliveryFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) files.push({ name: relative(root, path).split(sep).join("/"), path });
    }
  };
  await walk(root);
  files.sort((a, b) => compareNames(a.name, b.name));
  return { single: false, files };
}

/** Byte order of names, independent of locale, so signer and verifier agree. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Errors that mean "this is not a dataset we can read", as opposed to "this dataset is broken".
const NOT_A_DATASET: ReadonlySet<AntidoteErrorCode> = new Set([
  "FILE_NOT_FOUND",
  "INPUT_FORMAT",
  "COLUMN_MISSING",
  "ROW_MALFORMED",
  "IMAGE_UNDECODABLE",
  "IDX_HEADER",
  "LABEL_MIXED_TYPES",
]);

/**
 * A target that fails to read as a dataset is still a valid delivery of files (model
 * weights, archives, configs), unless the user named a format: then it must read.
 */
export function readableAsFiles(e: unknown, readOptions: OpenOptions | undefined): e is AntidoteError {
  return isAntidoteError(e) && NOT_A_DATASET.has(e.code) && readOptions?.format === undefined;
}

/** The target as a dataset, or undefined (with why, to `onNotDataset`) when it is not one. */
export async function openDeliveryDataset(
  target: string,
  readOptions: OpenOptions | undefined,
  onNotDataset?: (reason: AntidoteError) => void,
): Promise<Dataset | undefined> {
  try {
    return await openDataset(target, readOptions);
  } catch (e) {
    if (!readableAsFiles(e, readOptions)) throw e;
    onNotDataset?.(e);
    return undefined;
  }
}
