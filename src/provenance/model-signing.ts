// OpenSSF model signing (sigstore/model-transparency, signature format v1.0), key-based: a
// Sigstore bundle v0.3 holding a DSSE envelope over an in-toto statement whose one subject is
// the model (its name and a SHA-256 over every file's digest, in path order) and whose
// predicate lists every file with its SHA-256 ("resources") and how the list was made
// ("serialization": method "files", hash "sha256", no symlinks, ignored paths). The signature
// is ECDSA over the DSSE pre-authentication encoding with the curve's own hash (P-256 ↔
// SHA-256, P-384 ↔ SHA-384, P-521 ↔ SHA-512), as model_signing's `sign key` / `verify key`
// do; the bundle names the key by the SHA-256 of its PEM (`publicKey.hint`). Files written by
// `model_signing sign key` verify here, and ours verify there.
//
// Verification never trusts a name in the statement: the model directory is listed and hashed
// here, and the two file lists must be equal (nothing missing, nothing extra, every digest
// the same), so a signature cannot vouch for files it does not cover. Certificate and
// Sigstore (keyless) bundles need a trust root and a transparency log this machine cannot
// reach; they are refused by name rather than half-verified.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { lstat, readFile, readdir } from "node:fs/promises";
import { basename, join, relative, resolve, sep } from "node:path";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { preAuthEncoding } from "./dsse.js";
import { hashFiles } from "./hash-files.js";
import { readKeyFile } from "./keys.js";

export const MODEL_SIGNATURE_PREDICATE = "https://model_signing/signature/v1.0";
const LEGACY_PREDICATE = "https://model_signing/Digests/v0.1";
const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
const PAYLOAD_TYPE = "application/vnd.in-toto+json";
const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
/** What model_signing leaves out of every model by default (its own signature is added). */
export const DEFAULT_IGNORED = [".git", ".gitattributes", ".github", ".gitignore"];

export interface ModelFileDigest {
  /** Path relative to the model (POSIX separators); "." when the model is a single file. */
  name: string;
  sha256: string;
}

export interface ModelManifest {
  /** The model's name: the file's or directory's base name (informative, never compared). */
  modelName: string;
  /** SHA-256 over the files' raw digests in path order: the statement's subject digest. */
  rootDigest: string;
  files: ModelFileDigest[];
  /** Paths left out, relative to the model. */
  ignored: string[];
}

export interface ModelSignatureBundle {
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  verificationMaterial: { publicKey: { hint: string }; tlogEntries: never[] };
  dsseEnvelope: {
    payload: string;
    payloadType: typeof PAYLOAD_TYPE;
    signatures: { sig: string; keyid: "" }[];
  };
}

export interface ModelSigningOptions {
  /** More paths to leave out, relative to the model or absolute (files or directories). */
  ignore?: string[];
  /** Hashing threads (default: every core). */
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

// ── keys ────────────────────────────────────────────────────────────────────────────

const CURVE_HASH: Record<string, string> = { prime256v1: "sha256", secp384r1: "sha384", secp521r1: "sha512" };

function curveHash(key: KeyObject, what: string): string {
  const curve = key.asymmetricKeyType === "ec" ? key.asymmetricKeyDetails?.namedCurve : undefined;
  const hash = curve === undefined ? undefined : CURVE_HASH[curve];
  if (hash === undefined)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${what}: a ${curve ?? key.asymmetricKeyType ?? "unknown"} key; OpenSSF model signing uses ECDSA keys on P-256, P-384 or P-521 (\`antidote keygen --algorithm ecdsa-p256\`).`,
    );
  return hash;
}

/** The bundle's key hint: SHA-256 of the public key's SPKI PEM, as model_signing writes it. */
export function modelKeyHint(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "pem" }).toString())
    .digest("hex");
}

export async function readModelSigningKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  if (!pem.includes("PRIVATE KEY-----"))
    throw new AntidoteError("INPUT_FORMAT", `${path}: not a PEM private key.`);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${path}: not a readable PEM private key.`, { cause: e });
  }
  curveHash(key, path);
  return key;
}

export async function readModelPublicKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  if (pem.includes("PRIVATE KEY-----"))
    throw new AntidoteError("INPUT_FORMAT", `${path}: is a private key; pass the public key.`);
  const block = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(pem);
  if (block === null) throw new AntidoteError("INPUT_FORMAT", `${path}: holds no "BEGIN PUBLIC KEY" block.`);
  let key: KeyObject;
  try {
    key = createPublicKey(block[0]);
  } catch (e) {
    throw new AntidoteError("INPUT_FORMAT", `${path}: not a readable PEM public key.`, { cause: e });
  }
  curveHash(key, path);
  return key;
}

// ── the manifest of a model on disk ──────────────────────────────────────────────────

/** List and hash a model file or directory as model_signing's "files" serialization does. */
export async function modelManifest(
  model: string,
  options: ModelSigningOptions = {},
): Promise<ModelManifest> {
  const root = resolve(model);
  const info = await lstat(root).catch(() => undefined);
  if (info === undefined) throw new AntidoteError("FILE_NOT_FOUND", `${model}: no such file or directory.`);
  if (info.isSymbolicLink())
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${model}: is a symbolic link; sign the file or directory itself.`,
    );
  const ignored = [...DEFAULT_IGNORED, ...(options.ignore ?? []).map((p) => relativeTo(root, p))].filter(
    (p): p is string => p !== undefined,
  );
  const found: { name: string; path: string }[] = [];
  if (info.isFile()) found.push({ name: ".", path: root });
  else if (info.isDirectory()) await walk(root, root, ignored, found);
  else throw new AntidoteError("INPUT_FORMAT", `${model}: neither a file nor a directory.`);
  if (found.length === 0) throw new AntidoteError("INPUT_FORMAT", `${model}: holds no file to sign.`);
  found.sort((a, b) => comparePaths(a.name, b.name));
  const digests = await hashFiles(
    found.map((f) => f.path),
    {
      ...(options.threads !== undefined && { threads: options.threads }),
      ...(options.onProgress !== undefined && { onProgress: options.onProgress }),
    },
  );
  const files = found.map((f, i) => ({ name: f.name, sha256: digests[i]?.sha256 ?? "" }));
  return { modelName: basename(root), rootDigest: rootDigest(files), files, ignored: [...new Set(ignored)] };
}

async function walk(
  root: string,
  dir: string,
  ignored: readonly string[],
  out: { name: string; path: string }[],
): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const name = relative(root, path).split(sep).join("/");
    if (isIgnored(name, ignored)) continue;
    // model_signing refuses links unless told otherwise; following one would sign a file
    // outside the model, and skipping it would sign a model that is not what users load.
    if (entry.isSymbolicLink())
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${path}: is a symbolic link; OpenSSF model signing refuses links.`,
      );
    if (entry.isDirectory()) await walk(root, path, ignored, out);
    else if (entry.isFile()) out.push({ name, path });
    else throw new AntidoteError("INPUT_FORMAT", `${path}: neither a file nor a directory.`);
  }
}

function relativeTo(root: string, path: string): string | undefined {
  const rel = relative(root, resolve(root, path)).split(sep).join("/");
  return rel === "" || rel.startsWith("../") || rel === ".." ? undefined : rel;
}

function isIgnored(name: string, ignored: readonly string[]): boolean {
  return ignored.some((p) => name === p || name.startsWith(`${p}/`));
}

// Python's PurePosixPath order: part by part, each part by code point.
function comparePaths(a: string, b: string): number {
  const pa = a.split("/");
  const pb = b.split("/");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const c = compareCodePoints(pa[i]!, pb[i]!);
    if (c !== 0) return c;
  }
  return pa.length - pb.length;
}

function compareCodePoints(a: string, b: string): number {
  const ca = [...a];
  const cb = [...b];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = ca[i]!.codePointAt(0)! - cb[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

function rootDigest(files: readonly { sha256: string }[]): string {
  const h = createHash("sha256");
  for (const f of files) h.update(Buffer.from(f.sha256, "hex"));
  return h.digest("hex");
}

// ── signing ──────────────────────────────────────────────────────────────────────────

/** Sign a model file or directory; `signaturePath`, when inside the model, is left out. */
export async function signModel(
  model: string,
  privateKey: KeyObject,
  options: ModelSigningOptions & { signaturePath?: string } = {},
): Promise<{ bundle: ModelSignatureBundle; manifest: ModelManifest }> {
  const hash = curveHash(privateKey, "the signing key");
  const ignore = [
    ...(options.ignore ?? []),
    ...(options.signaturePath === undefined ? [] : [options.signaturePath]),
  ];
  const manifest = await modelManifest(model, { ...options, ignore });
  const statement = {
    _type: STATEMENT_TYPE,
    subject: [{ name: manifest.modelName, digest: { sha256: manifest.rootDigest } }],
    predicateType: MODEL_SIGNATURE_PREDICATE,
    predicate: {
      serialization: {
        method: "files",
        hash_type: "sha256",
        allow_symlinks: false,
        ignore_paths: manifest.ignored,
      },
      resources: manifest.files.map((f) => ({ name: f.name, algorithm: "sha256", digest: f.sha256 })),
    },
  };
  const payload = Buffer.from(JSON.stringify(statement, null, 2), "utf8");
  const sig = sign(hash, preAuthEncoding(PAYLOAD_TYPE, payload), { key: privateKey, dsaEncoding: "der" });
  return {
    manifest,
    bundle: {
      mediaType: BUNDLE_MEDIA_TYPE,
      verificationMaterial: {
        publicKey: { hint: modelKeyHint(createPublicKey(privateKey)) },
        tlogEntries: [],
      },
      dsseEnvelope: {
        payload: payload.toString("base64"),
        payloadType: PAYLOAD_TYPE,
        signatures: [{ sig: sig.toString("base64"), keyid: "" }],
      },
    },
  };
}

// ── verification ─────────────────────────────────────────────────────────────────────

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX64 = /^[0-9a-f]{64}$/;

const bundleSchema = z.object({
  mediaType: z
    .string()
    .regex(/^application\/vnd\.dev\.sigstore\.bundle(\.v0\.[123]\+json|\+json;version=0\.[123])$/, {
      message: "is not a Sigstore bundle v0.1–v0.3 media type",
    }),
  verificationMaterial: z.looseObject({
    publicKey: z
      .looseObject({ hint: z.string().optional(), rawBytes: z.string().regex(BASE64).optional() })
      .optional(),
    certificate: z.unknown().optional(),
    x509CertificateChain: z.unknown().optional(),
  }),
  dsseEnvelope: z.object({
    payload: z.string().min(1).regex(BASE64, "is not base64"),
    payloadType: z.string(),
    signatures: z.array(z.looseObject({ sig: z.string().min(1).regex(BASE64, "is not base64") })).length(1, {
      message: "must hold exactly one signature",
    }),
  }),
});

const RESOURCE_NAME = z
  .string()
  .min(1)
  .max(4096)
  .refine(
    (n) =>
      n === "." ||
      (!n.startsWith("/") &&
        !n.split("/").some((p) => p === "" || p === "." || p === "..") &&
        ![...n].some((c) => c === "\\" || c.charCodeAt(0) < 0x20)),
    "is not a relative POSIX path inside the model",
  );

const statementSchema = z.object({
  _type: z.literal(STATEMENT_TYPE),
  subject: z
    .array(z.looseObject({ name: z.string(), digest: z.looseObject({ sha256: z.string().regex(HEX64) }) }))
    .length(1, { message: "must name exactly one model" }),
  predicateType: z.string(),
  predicate: z.looseObject({
    serialization: z.looseObject({
      method: z.string(),
      hash_type: z.string(),
      allow_symlinks: z.boolean().optional(),
      ignore_paths: z.array(z.string()).optional(),
    }),
    resources: z
      .array(z.looseObject({ name: RESOURCE_NAME, algorithm: z.string(), digest: z.string() }))
      .min(1)
      .max(1_000_000),
  }),
});

export interface VerifiedModelSignature {
  modelName: string;
  rootDigest: string;
  /** Hint of the key that signed (SHA-256 of its PEM). */
  keyHint: string;
  files: ModelFileDigest[];
}

/**
 * Verify `signaturePath` (a model_signing bundle) against `publicKey`, then check the model on
 * disk is exactly what it signs. Throws SIGNATURE_INVALID for a bundle the key did not sign,
 * INPUT_FORMAT for one that is not a v1.0 key-signed model signature, and DIGEST_MISMATCH
 * naming the first file that differs, is missing or is not covered.
 */
export async function verifyModelSignature(
  model: string,
  signaturePath: string,
  publicKey: KeyObject,
  options: ModelSigningOptions = {},
): Promise<VerifiedModelSignature> {
  const at = signaturePath;
  const bundle = parseBundle(await readBundle(signaturePath), at);
  const hash = curveHash(publicKey, "the public key");
  const hint = modelKeyHint(publicKey);
  const material = bundle.verificationMaterial;
  if (material.publicKey === undefined) {
    const kind = material.certificate !== undefined || material.x509CertificateChain !== undefined;
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${at}: signed with ${kind ? "a certificate (Sigstore keyless or PKI)" : "no public key material"}; Antidote verifies key-signed models (model_signing \`sign key\`) only.`,
    );
  }
  if (
    material.publicKey.hint !== undefined &&
    material.publicKey.hint !== "" &&
    material.publicKey.hint !== hint
  )
    throw new AntidoteError(
      "SIGNATURE_INVALID",
      `${at}: signed by another key (hint ${material.publicKey.hint.slice(0, 16)}…, this key is ${hint.slice(0, 16)}…).`,
    );
  if (material.publicKey.rawBytes !== undefined && material.publicKey.hint === undefined) {
    let same = false;
    try {
      const embedded = createPublicKey(Buffer.from(material.publicKey.rawBytes, "base64").toString("utf8"));
      same = modelKeyHint(embedded) === hint;
    } catch {
      same = false;
    }
    if (!same) throw new AntidoteError("SIGNATURE_INVALID", `${at}: the bundle names another public key.`);
  }
  const envelope = bundle.dsseEnvelope;
  if (envelope.payloadType !== PAYLOAD_TYPE)
    throw new AntidoteError("INPUT_FORMAT", `${at}: dsseEnvelope.payloadType is not ${PAYLOAD_TYPE}.`);
  const payload = Buffer.from(envelope.payload, "base64");
  const sig = Buffer.from(envelope.signatures[0]!.sig, "base64");
  let valid = false;
  try {
    valid = verify(hash, preAuthEncoding(PAYLOAD_TYPE, payload), { key: publicKey, dsaEncoding: "der" }, sig);
  } catch {
    valid = false;
  }
  if (!valid)
    throw new AntidoteError("SIGNATURE_INVALID", `${at}: the signature does not verify with this key.`);

  const statement = parseStatement(payload, at);
  const files = statement.predicate.resources.map((r, i) => {
    if (r.algorithm !== "sha256" || !HEX64.test(r.digest))
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${at}: predicate.resources[${i}]: only lowercase hex SHA-256 digests are supported (got ${r.algorithm.slice(0, 20)}).`,
      );
    return { name: r.name, sha256: r.digest };
  });
  const names = new Set<string>();
  for (const f of files) {
    if (names.has(f.name))
      throw new AntidoteError("INPUT_FORMAT", `${at}: predicate.resources names "${f.name}" twice.`);
    names.add(f.name);
  }
  // The subject digest commits to the list in the order signed; model_signing checks it so.
  const subject = statement.subject[0]!;
  if (rootDigest(files) !== subject.digest.sha256)
    throw new AntidoteError("INPUT_FORMAT", `${at}: the subject digest does not match the listed files.`);

  const signedIgnores = statement.predicate.serialization.ignore_paths ?? [];
  const onDisk = await modelManifest(model, {
    ...options,
    ignore: [...signedIgnores, ...(options.ignore ?? []), signaturePath],
  });
  compareManifests(model, files, onDisk.files);
  return { modelName: subject.name, rootDigest: subject.digest.sha256, keyHint: hint, files };
}

function compareManifests(model: string, signed: ModelFileDigest[], onDisk: ModelFileDigest[]): void {
  const want = new Map(signed.map((f) => [f.name, f.sha256]));
  for (const f of onDisk) {
    const expected = want.get(f.name);
    const where = f.name === "." ? model : `${model}: ${f.name}`;
    if (expected === undefined)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${where}: not covered by the signature (a file added after signing?).`,
      );
    if (expected !== f.sha256)
      throw new AntidoteError(
        "DIGEST_MISMATCH",
        `${where}: SHA-256 ${f.sha256.slice(0, 16)}… differs from the signed ${expected.slice(0, 16)}….`,
      );
    want.delete(f.name);
  }
  const missing = want.keys().next();
  if (!missing.done)
    throw new AntidoteError("DIGEST_MISMATCH", `${model}: "${missing.value}" is signed but missing.`);
}

// A million files' digests fit in about 150 MB of statement; a bundle beyond this is not read.
const MAX_BUNDLE_BYTES = 256 * 2 ** 20;

async function readBundle(path: string): Promise<unknown> {
  const size = (await lstat(path).catch(() => undefined))?.size ?? 0;
  if (size > MAX_BUNDLE_BYTES)
    throw new AntidoteError(
      "PAYLOAD_TOO_LARGE",
      `${path}: ${(size / 2 ** 20).toFixed(0)} MiB; a model signature over ${MAX_BUNDLE_BYTES / 2 ** 20} MiB is not read.`,
    );
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AntidoteError(
      code === "ENOENT" ? "FILE_NOT_FOUND" : "INPUT_FORMAT",
      `${path}: ${code === "ENOENT" ? "no such signature file" : "cannot read the signature file"}.`,
      { cause: e },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AntidoteError("INPUT_FORMAT", `${path}: not JSON; expected a model_signing Sigstore bundle.`);
  }
}

function parseBundle(value: unknown, at: string): z.infer<typeof bundleSchema> {
  const r = bundleSchema.safeParse(value);
  if (r.success) return r.data;
  throw new AntidoteError(
    "INPUT_FORMAT",
    `${at}: ${issueText(r.error)} (reading it as a model_signing bundle).`,
  );
}

function parseStatement(payload: Buffer, at: string): z.infer<typeof statementSchema> {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    throw new AntidoteError("INPUT_FORMAT", `${at}: the signed payload is not JSON.`);
  }
  const type = (value as { predicateType?: unknown } | null)?.predicateType;
  if (type === LEGACY_PREDICATE)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${at}: a model_signing v0.2 signature (${LEGACY_PREDICATE}); re-sign it with model_signing ≥ 1.0 or \`antidote model sign\`.`,
    );
  if (type !== MODEL_SIGNATURE_PREDICATE)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${at}: predicateType is ${JSON.stringify(type)?.slice(0, 80)}, not ${MODEL_SIGNATURE_PREDICATE}.`,
    );
  const r = statementSchema.safeParse(value);
  if (!r.success) throw new AntidoteError("INPUT_FORMAT", `${at}: statement ${issueText(r.error)}.`);
  const serialization = r.data.predicate.serialization;
  if (serialization.method !== "files" || serialization.hash_type !== "sha256")
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${at}: serialization "${serialization.method.slice(0, 40)}" with ${serialization.hash_type.slice(0, 40)}; Antidote verifies the "files" method with sha256.`,
    );
  if (serialization.allow_symlinks === true)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${at}: signed with symbolic links allowed; Antidote refuses links.`,
    );
  return r.data;
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  const field = (issue?.path ?? []).map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  return `${field.replace(/^\./, "") || "(top level)"}: ${issue?.message ?? "invalid"}`;
}
