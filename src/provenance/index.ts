// Signed deliveries: keys, file hashing, the in-toto delivery statement, DSSE envelopes,
// Sigstore bundles, and the receiver's verification.
export {
  generateSigningKey,
  type KeyAlgorithm,
  keyIdOf,
  readPrivateKey,
  readPublicKey,
  type SigningKey,
  type TrustedKey,
} from "./keys.js";
export { merkleRoot } from "./merkle.js";
export { hashFiles, type FileDigest, type HashFilesOptions } from "./hash-files.js";
export {
  buildStatement,
  statementDigest,
  canonicalStatement,
  parseStatement,
  DELIVERY_PREDICATE_TYPE,
  STATEMENT_TYPE,
  type BuildStatementOptions,
  type DeliveryStatement,
} from "./manifest.js";
export {
  preAuthEncoding,
  signEnvelope,
  signEnvelopeWith,
  verifyEnvelope,
  type DsseEnvelope,
} from "./dsse.js";
export {
  BUNDLE_MEDIA_TYPE,
  IN_TOTO_PAYLOAD_TYPE,
  openStatement,
  readSignature,
  signStatement,
  signStatementWith,
  type SigstoreBundleJson,
} from "./bundle.js";
export {
  verifyDelivery,
  verifySignedDelivery,
  type VerifiedDelivery,
  type VerifyDeliveryOptions,
} from "./delivery.js";
export { ingestDelivery, type IngestOptions, type IngestResult } from "./ingest.js";
export { exportVersion, type ExportOptions, type ExportResult } from "./export.js";
export { readStoredDelivery, verifyStore, type StoreProblem } from "./store.js";
export {
  findModel,
  registerModelFile,
  resolveModel,
  sha256File,
  type RegisterModelOptions,
} from "./model.js";
export { registerModelDigest, type RegisterModelDigestInput } from "./model-digest.js";
export { defaultRequireSignature } from "./policy.js";
export {
  addSource,
  addSourceKey,
  revokeSourceKey,
  type ActorOptions,
  type AddSourceInput,
  type AddedSource,
  type RevokedKey,
} from "./sources.js";
export { recordDecision, type DecisionInput, type DecisionResult } from "./decisions.js";
export { ledgerOverview, type LedgerOverview, type OverviewOptions } from "./overview.js";
export {
  recordRefusal,
  latestRefusals,
  MAX_REFUSALS,
  type DeliveryRefusal,
  type RefusalInput,
  type RefusalListOptions,
} from "./refusals.js";
export {
  verifyUrlIndex,
  urlCheckFinding,
  type UrlIndexOptions,
  type UrlCheck,
  type UrlCheckStatus,
  type UrlIndexSummary,
} from "./web.js";
export {
  deriveVersion,
  DERIVE_KINDS,
  type DeriveKind,
  type DeriveOptions,
  type DeriveResult,
} from "./derive.js";
export {
  DEFAULT_IGNORED as MODEL_SIGNING_DEFAULT_IGNORED,
  MODEL_SIGNATURE_PREDICATE,
  modelKeyHint,
  modelManifest,
  readModelPublicKey,
  readModelSigningKey,
  signModel,
  verifyModelSignature,
  type ModelFileDigest,
  type ModelManifest,
  type ModelSignatureBundle,
  type ModelSigningOptions,
  type VerifiedModelSignature,
} from "./model-signing.js";
export { traceModel, type ModelLineage, type ModelLineageEntry } from "./model-lineage.js";
export {
  checkModelReputation,
  modelReputation,
  modelReputations,
  setModelReputation,
  trustSignedModel,
  type ModelReputationRecord,
  type SetModelReputationInput,
  type SetModelReputationResult,
} from "./model-reputation.js";
export {
  DELIVERY_PREDICATE_TYPE_V2,
  expectedSampleManifest,
  deliveredFiles,
  type SampleManifestRef,
} from "./manifest.js";
export { MerkleBuilder, merkleLeafHash } from "./merkle.js";
export {
  SampleManifestWriter,
  verifySampleManifest,
  readSampleManifest,
  sampleManifestPathFor,
  SAMPLE_MANIFEST_SUBJECT,
  SAMPLE_MANIFEST_FORMAT,
  type ExpectedSampleManifest,
  type SampleManifestSummary,
} from "./sample-manifest.js";
