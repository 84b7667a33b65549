// Robust training: Byzantine-robust aggregation of attested federated updates, FoolsGold,
// the federated-attack simulator, and Deep Partition Aggregation certificates.
export * from "./types.js";
export { aggregate } from "./aggregate.js";
export { inMemoryUpdates } from "./matrix.js";
export { foolsGold, type FoolsGoldOptions, type FoolsGoldResult } from "./foolsgold.js";
export {
  attestUpdate,
  checkAttestation,
  readAttestation,
  trustFromKeysDir,
  trustFromLedger,
  attestationPathFor,
  clientIdFromPath,
  type UpdateAttestation,
  type Rejection,
  type RejectionReason,
  type ClientTrust,
  type TrustedClient,
} from "./attestation.js";
export {
  runRound,
  minimumClients,
  type RoundOptions,
  type RoundReport,
  type ClientReport,
  type ClientStatus,
} from "./round.js";
export {
  scanUpdates,
  openUpdates,
  writeUpdateFile,
  type TensorLayout,
  type TensorInfo,
  type TensorDtype,
  type UpdateCheck,
  type FileUpdateMatrix,
} from "./tensor-file.js";
export {
  simulateFederation,
  loadFlData,
  flSimOptionsSchema,
  type FlSimOptions,
  type FlSimResult,
  type FlRunResult,
} from "./fl/simulate.js";
export { partitionClients, type PartitionOptions as FlPartitionOptions } from "./fl/partition.js";
export type { FlAttack } from "./fl/attacks.js";
export * from "./dpa.js";
