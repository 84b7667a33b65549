// Antidote's library API. The CLI (src/cli) and, later, the server are thin shells over it.
export { AntidoteError, isAntidoteError, type AntidoteErrorCode } from "./errors.js";
export type {
  Sample,
  ImageTensor,
  Annotation,
  DatasetInfo,
  DatasetFormat,
  ColumnRole,
  JsonValue,
} from "./data/sample.js";
export { sampleDigest, imageToBytes, imageFromBytes } from "./data/sample.js";
export type { Dataset, DatasetWriter, ReadOptions, WriteOptions, OnError } from "./data/dataset.js";
export { DEFAULT_MAX_IMAGE_PIXELS } from "./data/dataset.js";
export { DEFAULT_TENSOR_HEADER_LIMITS, type TensorHeaderLimits } from "./robust/safetensors.js";
export type { ColumnMapping } from "./data/columns.js";
export {
  openDataset,
  createWriter,
  detectFormat,
  READABLE_FORMATS,
  WRITABLE_FORMATS,
  type OpenOptions,
} from "./data/open.js";
export { convertDataset } from "./data/convert.js";
export { summarizeDataset, type DatasetSummary } from "./data/summary.js";
export { memoryDataset, MemoryWriter, collect } from "./data/memory.js";
export {
  listBuiltinDatasets,
  resolveBuiltin,
  FASHION_MNIST_CLASSES,
  type BuiltinDataset,
} from "./data/builtin.js";
export { decodeImage, encodePng } from "./data/image-codec.js";
export * from "./attack/index.js";
export { Rng } from "./math/rng.js";
export { featurize, createFeaturizer, type FeaturizeOptions } from "./features/featurize.js";
export { TextFeaturizer, tokenize, tokenFeatures, mergeTextStats, type TextStats } from "./features/text.js";
export { RandomProjection } from "./features/projection.js";
export { ImageFeaturizer, mergeImageStats } from "./features/image.js";
export { TabularFeaturizer, mergeTabularStats } from "./features/tabular.js";
export type { FeatureMatrix, Featurizer } from "./features/matrix.js";
export type { SparseVector } from "./math/sparse.js";
export {
  openLedger,
  openLedgerReader,
  recordDigest,
  signerFromPrivateKey,
  parseSignedTreeHead,
  consistencyProof,
  verifyConsistency,
  inclusionProof,
  verifyInclusion,
  LEDGER_KEY_ENV,
  LEDGER_KEY_PASSPHRASE_ENV,
  type LedgerSigner,
} from "./ledger/index.js";
export type * from "./ledger/types.js";
export { SOURCE_KINDS } from "./ledger/types.js";
export * from "./provenance/index.js";
export * from "./monitor/index.js";
export {
  buildModelBom,
  validateCycloneDx,
  type ModelBomInput,
  type DatasetProvenance,
} from "./report/bom.js";
export {
  buildCroissant,
  CROISSANT_RAI_1_0,
  type CroissantInput,
  type SampleProvenanceRow,
} from "./report/croissant.js";
export {
  bomFromLedger,
  croissantFromLedger,
  writeCroissant,
  samplesCsvPath,
  type CroissantFromLedgerOptions,
} from "./report/ledger-documents.js";
export { datasetProvenance, modelBomInput } from "./report/from-ledger.js";
export * from "./robust/index.js";
export type { ScanTable, ScanAnnotation, Detector, DetectorResult } from "./detect/types.js";
export { scanTableFromSamples, ScanTableBuilder, type ScanTableOptions } from "./detect/table.js";
export {
  ImageSketches,
  KEEP_ALL_IMAGES,
  SMALL_IMAGES_ONLY,
  PROXY_IMAGES,
  type ImageShape,
  type ImageSketchPolicy,
} from "./data/image-sketch.js";
export { triggerTokens } from "./detect/trigger-tokens.js";
export { triggerPatches } from "./detect/trigger-patches.js";
export { nearDuplicates } from "./detect/near-duplicates.js";
export { confidentLearning } from "./detect/confident-learning.js";
export { dawidSkene } from "./detect/dawid-skene.js";
export { sourceRisk } from "./detect/source-risk.js";
export { outOfSampleProbs } from "./detect/proxy-linear.js";
export {
  scanDataset,
  scanFindings,
  DETECTORS,
  type ScanOptions,
  type ScanReport,
  type RegisteredDetector,
} from "./scan/scan.js";
export { combineResults, type EnsembleResult, type EnsembleOptions } from "./scan/ensemble.js";
export { buildReportJson, type ScanReportJson } from "./scan/report-json.js";
export { renderReportHtml } from "./scan/report-html.js";
export { spectre } from "./detect/spectre.js";
export { spectralSignature } from "./detect/spectral-signature.js";
export { activationClustering } from "./detect/activation-clustering.js";
export { featureOutliers } from "./detect/feature-outliers.js";
export { imageProxyFeatures } from "./detect/proxy-image.js";
export type { NetSpec, LayerSpec } from "./onnx/net-spec.js";
export { readOnnxModel, decodeOnnxModel, type OnnxModelFile } from "./onnx/model-file.js";
export { exportOnnx, type ExportOptions } from "./onnx/export.js";
export {
  openOnnxClassifier,
  type OnnxClassifier,
  type OnnxClassifierOptions,
  type OnnxRunResult,
} from "./onnx/classifier.js";
export { imageBatch } from "./onnx/input.js";
export { loadTf } from "./nn/tf.js";
export { defaultArchitecture, parseArchitecture, type Architecture } from "./nn/architectures.js";
export {
  trainClassifier,
  predictNet,
  netLogits,
  type TrainData,
  type TrainOptions,
  type TrainedClassifier,
} from "./nn/train.js";
export type { DifferentiableClassifier } from "./audit/types.js";
export { translateOnnx, type TranslatedModel, type TranslateOptions } from "./audit/onnx-to-tf.js";
export { checkTranslation } from "./audit/equivalence.js";
export { auditModel, auditFinding, type AuditOptions, type AuditReport } from "./audit/audit.js";
export {
  neuralCleanse,
  madAnomalyIndex,
  type NeuralCleanseOptions,
  type NeuralCleanseResult,
  type ReversedTrigger,
} from "./audit/neural-cleanse.js";
export { decideVerdict, type Verdict, type LabelVerdict } from "./audit/verdict.js";
export {
  stripEntropies,
  calibrateStrip,
  stripFlags,
  type StripOptions,
  type BatchPredictor,
} from "./audit/strip.js";
export { buildAuditReportJson, type AuditReportJson } from "./audit/report-json.js";
export { renderAuditHtml } from "./audit/report-html.js";
export {
  scanShard,
  planShards,
  shardRange,
  type ShardOptions,
  type ShardOutputs,
  type ShardPlan,
  type ShardSpec,
} from "./scan/shard.js";
export { mergeShards } from "./scan/shard-merge.js";
export { encodeShard, decodeShard } from "./scan/shard-file.js";
export { sampleTag, type PrecomputedModelOutputs } from "./scan/precomputed.js";
// The service: a typed client for `antidote serve`, and its API tokens.
export {
  AntidoteClient,
  ServiceError,
  type ClientOptions,
  type DeliverOptions,
  type DecisionRequest,
  type Page,
  type PageOptions,
} from "./client/index.js";
export {
  authenticate,
  createToken,
  revokeToken,
  type CreatedToken,
  type Authenticated,
} from "./auth/index.js";
export type { JobQueue, JobRecord, JobState, JobProgress, JobArtifact, JobRunner } from "./jobs/types.js";
export {
  sourceReputations,
  reputationOf,
  checkPolicy,
  applyPolicy,
  enforcePolicy,
  activePolicy,
  loadPolicyFile,
  recordScanCoverage,
  type SourceReputation,
  type PolicyCheck,
  type Policy,
} from "./policy/index.js";
export {
  buildEvidencePack,
  writeEvidencePack,
  verifyEvidencePack,
  evidencePackSchema,
  type EvidencePack,
  type EvidenceVerification,
} from "./evidence/index.js";
