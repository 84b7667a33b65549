// The evidence pack for auditors (issue 27): for one model or dataset version, what each of
// the nine poisoning controls did, when, by whom and with which result, every claim linked to
// the ledger events that prove it, the gaps stated, mapped to the EU AI Act, NIST AI RMF and
// AI 100-2, ISO/IEC 42001, MITRE ATLAS and OWASP LLM04; written as JSON, HTML, PDF and OSCAL,
// signed with the ledger's key, and verifiable against the ledger (`verifyEvidencePack`).
export { buildEvidencePack, type EvidenceOptions, type EvidenceTarget } from "./build.js";
export { CONTROLS, type ControlDefinition, type FrameworkRef } from "./frameworks.js";
export { evidenceHtml } from "./html.js";
export { oscalAssessmentResults, OSCAL_VERSION, uuidV5 } from "./oscal.js";
export { PACK_FILES, writeEvidencePack, type WriteEvidenceOptions, type WrittenPack } from "./pack.js";
export {
  CONTROL_IDS,
  EVIDENCE_FORMAT,
  evidencePackSchema,
  type Claim,
  type ControlAssessment,
  type ControlId,
  type EventLink,
  type EvidencePack,
} from "./schema.js";
export { verifyEvidencePack, type EvidenceVerification } from "./verify.js";
