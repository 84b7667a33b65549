// Curation policy as code and source reputation: the public surface of src/policy/.
// reputation.ts scores sources from the ledger's history; schema.ts and load.ts read a policy
// file; evaluate.ts says what a policy means for the ledger now (the dry run); enforce.ts is
// where the policy in force acts (ingest, export, model register, the telemetry gate) and how
// it is adopted.
export {
  PRIOR_WEIGHT,
  REPUTATION_HALF_LIFE_DAYS,
  WEIGHTS,
  reputationOf,
  sourceReputations,
  type ReputationEvent,
  type ReputationOptions,
  type SourceReputation,
} from "./reputation.js";
export { POLICY_API_VERSION, policySchema, type Policy, type PolicyInput, type Rule } from "./schema.js";
export { MAX_POLICY_BYTES, loadPolicyFile, parsePolicy, type LoadedPolicy } from "./load.js";
export {
  checkPolicy,
  missingScans,
  planDecisions,
  policyActor,
  ruleFor,
  scanCoverage,
  type EffectiveRule,
  type MissingScans,
  type PlannedDecision,
  type PolicyCheck,
  type PolicyRef,
} from "./evaluate.js";
export {
  activePolicy,
  agentsBelowPolicy,
  applyPolicy,
  enforceExport,
  enforceIngest,
  enforcePolicy,
  enforceTraining,
  recordScanCoverage,
  type ActivePolicy,
  type ApplyResult,
} from "./enforce.js";
