// Registering a model by its digest, when the file stays where it was trained (the server
// is told the SHA-256; it is not sent hundreds of megabytes to hash). Everything else is as
// `registerModelFile`, which hashes the file and comes here: the dataset versions it was
// trained on must be in the ledger and pass the curation policy's required scans, a base model
// is named by digest or unique prefix and must not be distrusted (the foundation-model
// reputation list), and registering the same digest twice writes nothing.
import { AntidoteError } from "../errors.js";
import type { Ledger, ModelRecord } from "../ledger/types.js";
import { unknownVersion } from "./export.js";
import { enforceTraining } from "../policy/enforce.js";
import { resolveModel } from "./model.js";
import { checkModelReputation } from "./model-reputation.js";
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
  /** Refuse unless the base model is on the trusted list (model-reputation.ts). */
  requireTrustedBase?: boolean;
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
  // The curation policy in force (src/policy/), if any: required scans on the training data.
  await enforceTraining(ledger, input.trainedOn);
  const baseModel = input.base === undefined ? null : await resolveModel(ledger, input.base);
  // A distrusted base (or model) is refused here, where inheriting its poisoning would start.
  await checkModelReputation(ledger, {
    digest,
    base: baseModel,
    ...(input.requireTrustedBase === true && { requireTrustedBase: true }),
  });
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
