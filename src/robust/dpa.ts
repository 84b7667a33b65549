// Deep Partition Aggregation (Levine & Feizi, ICLR 2021): a certified defence against
// poisoning. Train K models on K disjoint, content-hashed partitions of the training set
// (dpa-partition.ts), let them vote, and certify each prediction by its vote margin
// (dpa-certify.ts) from the models' predictions as users bring them (dpa-predictions.ts).
export {
  DPA_HASH_PREFIX,
  DPA_MAX_K,
  DPA_MIN_K,
  partitionDataset,
  partitionOf,
  partitionPath,
  type PartitionOptions,
  type PartitionSummary,
  type ThinClass,
} from "./dpa-partition.js";
export {
  certify,
  countVotes,
  dpaVote,
  DpaCertifier,
  radiiToShow,
  type Certification,
  type CertifiedPoint,
  type CurvePoint,
  type Vote,
} from "./dpa-certify.js";
export {
  certifyVoteTable,
  openVoteTable,
  type VoteRow,
  type VoteTable,
  type VoteTableOptions,
} from "./dpa-predictions.js";
