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
export { openLedger } from "./ledger/index.js";
export type * from "./ledger/types.js";
export { SOURCE_KINDS } from "./ledger/types.js";
export * from "./provenance/index.js";
export {
  buildModelBom,
  validateCycloneDx,
  type ModelBomInput,
  type DatasetProvenance,
} from "./report/bom.js";
export { buildCroissant, type CroissantInput } from "./report/croissant.js";
export { datasetProvenance, modelBomInput } from "./report/from-ledger.js";
export * from "./robust/index.js";
