// Which clause of which framework each of the nine controls answers to. An auditor reads the
// pack against one framework at a time, so every mapping names the framework's own id and its
// own title, exactly as published, and nothing else. Ids we could not confirm against a
// published source are left out rather than guessed (see docs/evidence.md, "How the mapping
// was chosen").
//
// Sources checked (2026-12-08):
// - EU AI Act: Regulation (EU) 2024/1689, Art. 10(2)(b), (f), (g), 10(3), 15(4), 15(5).
// - NIST AI RMF 1.0 (NIST AI 100-1), Core tables: MAP 4.1, MAP 4.2, MEASURE 2.4, MEASURE 2.7,
//   MANAGE 3.1, MANAGE 3.2 (text as in the AI 100-1 tables; cross-checked on
//   learn.daydream.ai/requirements/nist-ai-rmf-airmf-28/29/47/48/64 and secframe.arnav.au MEASURE-2.4).
// - NIST AI 100-2 E2023 §2.3.1–2.3.4 "Availability Poisoning", "Targeted Poisoning",
//   "Backdoor Poisoning", "Model Poisoning" (table of contents; E2025 keeps the four classes).
// - ISO/IEC 42001:2023 Annex A: A.6.2.4, A.6.2.6, A.6.2.8, A.7.2, A.7.4, A.7.5, A.7.6
//   (control statements as quoted on controlstack.au/controls/iso42001-annex-a-*). A.7.3 and
//   A.10.3 were not confirmed and are left out.
// - MITRE ATLAS (atlas.mitre.org, 2026 release): AML.T0020 Poison Training Data, AML.T0019
//   Publish Poisoned Datasets, AML.T0010.002 AI Supply Chain Compromise: Data, AML.T0018
//   Manipulate AI Model (formerly "Backdoor ML Model"), AML.T0043.004 Craft Adversarial Data:
//   Insert Backdoor Trigger; mitigations AML.M0007 Sanitize Training Data, AML.M0008 Validate
//   AI Model, AML.M0025 Maintain AI Dataset Provenance, AML.M0023 AI Bill of Materials.
// - OWASP Top 10 for LLM Applications 2025: LLM04:2025 Data and Model Poisoning.
import type { ControlId } from "./schema.js";

export type Framework =
  | "EU AI Act"
  | "NIST AI RMF 1.0"
  | "NIST AI 100-2"
  | "ISO/IEC 42001:2023"
  | "MITRE ATLAS"
  | "OWASP LLM Top 10 2025";

export interface FrameworkRef {
  framework: Framework;
  id: string;
  title: string;
}

const ref = (framework: Framework, id: string, title: string): FrameworkRef => ({ framework, id, title });

export const EU = {
  a10_2b: ref("EU AI Act", "Art. 10(2)(b)", "Data collection processes and the origin of data"),
  a10_2f: ref("EU AI Act", "Art. 10(2)(f)", "Examination in view of possible biases"),
  a10_2g: ref(
    "EU AI Act",
    "Art. 10(2)(g)",
    "Appropriate measures to detect, prevent and mitigate possible biases identified according to point (f)",
  ),
  a10_3: ref(
    "EU AI Act",
    "Art. 10(3)",
    "Data sets relevant, sufficiently representative, and to the best extent possible free of errors and complete",
  ),
  a15_4: ref("EU AI Act", "Art. 15(4)", "Resilience regarding errors, faults or inconsistencies"),
  a15_5: ref(
    "EU AI Act",
    "Art. 15(5)",
    "Resilience against attempts to alter use, outputs or performance; measures against data poisoning and model poisoning",
  ),
};

export const RMF = {
  map41: ref(
    "NIST AI RMF 1.0",
    "MAP 4.1",
    "Approaches for mapping AI technology and legal risks of its components – including the use of third-party data or software – are in place, followed, and documented",
  ),
  map42: ref(
    "NIST AI RMF 1.0",
    "MAP 4.2",
    "Internal risk controls for components of the AI system, including third-party AI technologies, are identified and documented",
  ),
  measure24: ref(
    "NIST AI RMF 1.0",
    "MEASURE 2.4",
    "The functionality and behavior of the AI system and its components – as identified in the MAP function – are monitored when in production",
  ),
  measure27: ref(
    "NIST AI RMF 1.0",
    "MEASURE 2.7",
    "AI system security and resilience – as identified in the MAP function – are evaluated and documented",
  ),
  manage31: ref(
    "NIST AI RMF 1.0",
    "MANAGE 3.1",
    "AI risks and benefits from third-party resources are regularly monitored, and risk controls are applied and documented",
  ),
  manage32: ref(
    "NIST AI RMF 1.0",
    "MANAGE 3.2",
    "Pre-trained models which are used for development are monitored as part of AI system regular monitoring and maintenance",
  ),
};

export const AML = {
  availability: ref("NIST AI 100-2", "§2.3.1", "Availability Poisoning"),
  targeted: ref("NIST AI 100-2", "§2.3.2", "Targeted Poisoning"),
  backdoor: ref("NIST AI 100-2", "§2.3.3", "Backdoor Poisoning"),
  model: ref("NIST AI 100-2", "§2.3.4", "Model Poisoning"),
};

export const ISO = {
  a624: ref("ISO/IEC 42001:2023", "A.6.2.4", "AI system verification and validation"),
  a626: ref("ISO/IEC 42001:2023", "A.6.2.6", "AI system operation and monitoring"),
  a628: ref("ISO/IEC 42001:2023", "A.6.2.8", "AI system recording of event logs"),
  a72: ref("ISO/IEC 42001:2023", "A.7.2", "Data for development and enhancement of AI system"),
  a74: ref("ISO/IEC 42001:2023", "A.7.4", "Quality of data for AI systems"),
  a75: ref("ISO/IEC 42001:2023", "A.7.5", "Data provenance"),
  a76: ref("ISO/IEC 42001:2023", "A.7.6", "Data preparation"),
};

export const ATLAS = {
  t0020: ref("MITRE ATLAS", "AML.T0020", "Poison Training Data"),
  t0019: ref("MITRE ATLAS", "AML.T0019", "Publish Poisoned Datasets"),
  t0010_002: ref("MITRE ATLAS", "AML.T0010.002", "AI Supply Chain Compromise: Data"),
  t0018: ref("MITRE ATLAS", "AML.T0018", "Manipulate AI Model"),
  t0043_004: ref("MITRE ATLAS", "AML.T0043.004", "Craft Adversarial Data: Insert Backdoor Trigger"),
  m0007: ref("MITRE ATLAS", "AML.M0007", "Sanitize Training Data"),
  m0008: ref("MITRE ATLAS", "AML.M0008", "Validate AI Model"),
  m0023: ref("MITRE ATLAS", "AML.M0023", "AI Bill of Materials"),
  m0025: ref("MITRE ATLAS", "AML.M0025", "Maintain AI Dataset Provenance"),
};

export const OWASP = {
  llm04: ref("OWASP LLM Top 10 2025", "LLM04:2025", "Data and Model Poisoning"),
};

export interface ControlDefinition {
  id: ControlId;
  title: string;
  /** What the control is, in one sentence (shown in the report). */
  purpose: string;
  mappings: FrameworkRef[];
}

/** The nine controls, each with the clauses it gives evidence for. */
export const CONTROLS: readonly ControlDefinition[] = [
  {
    id: "provenance",
    title: "Data provenance",
    purpose: "Every sample's origin, delivery, signature and the versions it went into are recorded.",
    mappings: [
      EU.a10_2b,
      RMF.map41,
      ISO.a75,
      ISO.a628,
      ATLAS.t0019,
      ATLAS.t0010_002,
      ATLAS.m0025,
      ATLAS.m0023,
      OWASP.llm04,
    ],
  },
  {
    id: "curation",
    title: "Dataset curation and filtering",
    purpose: "Data is selected, deduplicated, filtered and quarantined by recorded rules before use.",
    mappings: [EU.a10_2g, EU.a10_3, ISO.a72, ISO.a76, ATLAS.m0007, AML.availability, OWASP.llm04],
  },
  {
    id: "supplier-security",
    title: "Supplier and contractor security",
    purpose: "Sources are registered with keys, deliveries are signed and verified, bad deliveries refused.",
    mappings: [EU.a10_2b, RMF.map42, RMF.manage31, ISO.a75, ATLAS.t0010_002, ATLAS.m0025, OWASP.llm04],
  },
  {
    id: "anomaly-detection",
    title: "Statistical anomaly detection",
    purpose: "The data is scanned for label flips, outliers and near-duplicate bursts before training.",
    mappings: [
      EU.a10_2f,
      EU.a10_3,
      EU.a15_5,
      RMF.measure27,
      ISO.a74,
      ATLAS.t0020,
      ATLAS.m0007,
      AML.availability,
      AML.targeted,
      OWASP.llm04,
    ],
  },
  {
    id: "robust-training",
    title: "Robust training",
    purpose:
      "Training limits any one sample's or client's influence (partitioned training, robust aggregation).",
    mappings: [
      EU.a15_4,
      EU.a15_5,
      RMF.measure27,
      AML.availability,
      AML.targeted,
      AML.model,
      ATLAS.t0020,
      OWASP.llm04,
    ],
  },
  {
    id: "backdoor-detection",
    title: "Backdoor detection",
    purpose:
      "The data and the model are checked for backdoor triggers (spectral, activation, trigger inversion).",
    mappings: [
      EU.a15_5,
      RMF.measure27,
      ISO.a624,
      AML.backdoor,
      ATLAS.t0018,
      ATLAS.t0043_004,
      ATLAS.m0007,
      ATLAS.m0008,
      OWASP.llm04,
    ],
  },
  {
    id: "adversarial-validation",
    title: "Adversarial validation",
    purpose: "The pipeline's defences are exercised with simulated attacks and their catch rates recorded.",
    mappings: [EU.a15_5, RMF.measure27, ISO.a624, AML.targeted, AML.backdoor, ATLAS.m0008, OWASP.llm04],
  },
  {
    id: "foundation-model-audit",
    title: "Foundation-model audit",
    purpose: "A pre-trained base model is audited for backdoors before it is adopted.",
    mappings: [EU.a15_5, RMF.manage32, RMF.map42, AML.model, ATLAS.t0018, ATLAS.m0008, OWASP.llm04],
  },
  {
    id: "continuous-monitoring",
    title: "Continuous monitoring",
    purpose: "The deployed model's signed telemetry is watched for drift and trigger-like inputs.",
    mappings: [
      EU.a15_4,
      EU.a15_5,
      RMF.measure24,
      RMF.manage32,
      ISO.a626,
      ISO.a628,
      ATLAS.t0043_004,
      OWASP.llm04,
    ],
  },
];

export function controlDefinition(id: ControlId): ControlDefinition {
  const found = CONTROLS.find((c) => c.id === id);
  if (found === undefined) throw new Error(`unknown control ${id}`);
  return found;
}
