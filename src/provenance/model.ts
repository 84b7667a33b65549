// Registering a model: its identity is the SHA-256 of the file, its provenance the dataset
// versions it was trained on and the model it was fine-tuned from.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { AntidoteError } from "../errors.js";
import type { Ledger, LedgerReader, ModelRecord } from "../ledger/types.js";
import { registerModelDigest } from "./model-digest.js";

export interface RegisterModelOptions {
  file: string;
  trainedOn: string[];
  /** The base model's digest, or a unique prefix of it. */
  base?: string;
  name: string;
  /** Refuse unless the base model is on the trusted list (model-reputation.ts). */
  requireTrustedBase?: boolean;
}

export async function registerModelFile(ledger: Ledger, options: RegisterModelOptions): Promise<ModelRecord> {
  const { file } = options;
  if (!existsSync(file)) throw new AntidoteError("FILE_NOT_FOUND", `${file}: no such model file.`);
  if (!statSync(file).isFile())
    throw new AntidoteError("INPUT_FORMAT", `${file}: is a directory, not a model file.`);
  await requireOnnx(file);
  // Hashing the file is all that is particular to it; the checks (versions, policy, the
  // foundation-model reputation list) are those of a registration by digest, the server's.
  const { model } = await registerModelDigest(ledger, {
    digest: await sha256File(file),
    name: options.name,
    trainedOn: options.trainedOn,
    ...(options.base !== undefined && { base: options.base }),
    ...(options.requireTrustedBase === true && { requireTrustedBase: true }),
  });
  return model;
}

/** A registered model by full digest or unique prefix, among `models`. */
export function findModel(models: readonly ModelRecord[], digestOrPrefix: string): ModelRecord {
  const prefix = digestOrPrefix.toLowerCase();
  const matches = models.filter((m) => m.digest.startsWith(prefix));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0)
    throw new AntidoteError(
      "NOT_FOUND",
      `model "${digestOrPrefix}" is not registered (\`antidote model list\` shows the models).`,
    );
  throw new AntidoteError(
    "USAGE",
    `model prefix "${digestOrPrefix}" matches ${matches.length} models; give more digits.`,
  );
}

/** A registered model's full digest, from its digest or a unique prefix. */
export async function resolveModel(ledger: LedgerReader, digestOrPrefix: string): Promise<string> {
  return findModel(await ledger.listModels(), digestOrPrefix).digest;
}

// An ONNX file is a protobuf ModelProto whose first field is ir_version (field 1, varint):
// its first byte is 0x08. That rejects the usual mistakes (a .pt, a .safetensors, a JSON
// file) without parsing the graph, which is the model audit's job.
async function requireOnnx(file: string): Promise<void> {
  const handle = await open(file, "r");
  try {
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(1), 0, 1, 0);
    if (bytesRead === 0 || buffer[0] !== 0x08)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `${file}: not an ONNX model (an ONNX file starts with its ir_version field); export the model to ONNX first.`,
      );
  } finally {
    await handle.close();
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
