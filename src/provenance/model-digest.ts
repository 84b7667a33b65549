// Registering a model by its digest, when the file stays where it was trained (the server
// is told the SHA-256; it is not sent hundreds of megabytes to hash). Everything else is as
// `registerModelFile`: the dataset versions it was trained on must be in the ledger, a base
// model is named by digest or unique prefix, and registering the same digest twice writes
// nothing.
import { AntidoteError } from "../errors.js";
import type { Ledger, ModelRecord } from "../ledger/types.js";
import { unknownVersion } from "./export.js";
import { resolveModel } from "./model.js";
import { appendOptions, type ActorOptions } from "./sources.js";

export interface RegisterModelDigestInput {
  /** Hex SHA-256 of the model file. */
  digest: string;
  name: string;
  trainedOn: string[];
  /** The base model's digest, or a unique prefix of it. */
  base?: string;
  /** Default "onnx". */
  format?: string;
}

export async function registerModelDigest(
  ledger: Ledger,
  input: RegisterModelDigestInput,
  options: ActorOptions = {},
): Promise<{ model: ModelRecord; alreadyRegistered: boolean }> {
  const digest = input.digest.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(digest))
    throw new AntidoteError("USAGE", `digest: "${input.digest}" is not a SHA-256 (64 hex characters).`);
  for (const version of input.trainedOn)
    if ((await ledger.getDatasetVersion(version)) === undefined)
      throw unknownVersion(version, await ledger.listDatasetVersions());
  const baseModel = input.base === undefined ? null : await resolveModel(ledger, input.base);
  const existing = await ledger.getModel(digest);
  if (existing !== undefined) return { model: existing, alreadyRegistered: true };
  await ledger.append(
    [
      {
        kind: "model.registered",
        payload: {
          digest,
          name: input.name,
          trainedOn: input.trainedOn,
          baseModel,
          format: input.format ?? "onnx",
        },
      },
    ],
    appendOptions(options),
  );
  const model = await ledger.getModel(digest);
  if (model === undefined)
    throw new AntidoteError("INTERNAL", `model ${digest} was appended but cannot be read back.`);
  return { model, alreadyRegistered: false };
}
